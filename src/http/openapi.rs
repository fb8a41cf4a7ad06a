//! The API's OpenAPI 3.1 document, served at `GET /api/v1/openapi.json` (no token needed: it
//! describes the interface, never a record). Generated from the code: each handler's
//! `#[utoipa::path]` annotation beside it, each body's type (`ToSchema`), one document per
//! handler file merged here. What every operation shares is added once, by [`Conventions`]:
//! the bearer security scheme, the RFC 9457 problem answers (`400`, `401`, `403`, `404`,
//! `413`, `503`), and the POST forms of the DELETEs that carry a body.
//!
//! The route table is the truth: a test fails when one of its routes has no operation here,
//! or when an operation answers a free-form (untyped) body.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};

use super::{
    access, admin, audit, batches, documents, holds, patients, qa, releases, retention, search,
};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "chartvault",
        description = "The scanned-record archive's API: ingest, search, retrieval, access, \
                       QA, holds, releases, retention and the audit. Every route needs a \
                       bearer token (an API token or an OIDC/SMART access token); a record \
                       out of the caller's scope is 404, exactly as one that does not exist.",
    ),
    servers((url = "/api/v1")),
    components(schemas(super::error::ErrorBody)),
    modifiers(&Conventions),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The document (built once).
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        for part in [
            documents::ApiDoc::openapi(),
            patients::ApiDoc::openapi(),
            access::ApiDoc::openapi(),
            admin::ApiDoc::openapi(),
            audit::ApiDoc::openapi(),
            qa::ApiDoc::openapi(),
            batches::ApiDoc::openapi(),
            holds::ApiDoc::openapi(),
            releases::ApiDoc::openapi(),
            retention::ApiDoc::openapi(),
            search::ApiDoc::openapi(),
        ] {
            doc.merge(part);
        }
        Conventions.modify(&mut doc);
        doc
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| document().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// The routes a DELETE with a body is also reachable at, as a POST (proxies may strip the
/// body of a DELETE): (the DELETE's path, the POST's path).
const POST_FORMS: &[(&str, &str)] = &[
    ("/documents/{id}", "/documents/{id}/delete"),
    ("/category-grants", "/category-grants/revoke"),
    (
        "/releases/{id}/exclusions",
        "/releases/{id}/exclusions/remove",
    ),
];

/// What every operation shares (see the module doc).
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`chartvault users create`) or an OIDC / SMART v2 \
                         access token",
                    ))
                    .build(),
            ),
        );
        // Operation ids are the handlers' names, which repeat from file to file (`list`):
        // each is prefixed with its tag, so that generated clients get one method each.
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let tag = operation.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut()) {
                    *id = format!("{tag}_{id}");
                }
            }
        }
        for (delete_path, post_path) in POST_FORMS {
            let delete = openapi
                .paths
                .paths
                .get(*delete_path)
                .and_then(|item| item.delete.clone());
            if let Some(mut operation) = delete {
                operation.operation_id = operation.operation_id.map(|id| format!("{id}_post"));
                let item = openapi
                    .paths
                    .paths
                    .entry(post_path.to_string())
                    .or_insert_with(PathItem::default);
                item.post = Some(operation);
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let creates_without_address = NO_LOCATION.contains(&path.as_str());
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_problems(operation);
                add_headers(operation, !creates_without_address);
            }
        }
    }
}

/// The routes whose `201` has no address to give (a grant is a user and a category; a
/// disclosure has no route of its own).
const NO_LOCATION: &[&str] = &["/category-grants", "/disclosures"];

/// The headers answers carry: `Location` on a `201`/`202` (where there is an address),
/// `WWW-Authenticate` on a `401`, `Retry-After` on a `503`.
fn add_headers(operation: &mut Operation, located: bool) {
    let header = |description: &str| {
        utoipa::openapi::header::HeaderBuilder::new()
            .schema(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            )
            .description(Some(description))
            .build()
    };
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let (name, description) = match status.as_str() {
            "201" | "202" if located => (
                "Location",
                "Where the new resource (or the document being processed) is",
            ),
            "401" => ("WWW-Authenticate", "`Bearer`"),
            "503" => ("Retry-After", "Seconds to wait before trying again"),
            _ => continue,
        };
        response
            .headers
            .entry(name.to_string())
            .or_insert_with(|| header(description));
    }
}

/// The problem answers an operation may give, where it does not describe them itself.
fn add_problems(operation: &mut Operation) {
    let problems = [
        (
            "400",
            "The request is malformed or a field is invalid (the detail names it)",
        ),
        ("401", "No valid bearer token (`WWW-Authenticate: Bearer`)"),
        ("403", "The caller's role does not allow the action"),
        (
            "404",
            "No such record, or one outside the caller's scope (indistinguishable)",
        ),
        ("413", "The body is larger than the route allows"),
        (
            "503",
            "The audit log or the store cannot be written: nothing was done (`Retry-After`)",
        ),
    ];
    for (status, description) in problems {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/problem+json",
                            ContentBuilder::new()
                                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                                    "Problem",
                                ))))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn json() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    /// A schema that says nothing of its value: `{}`, `true`, or an object with no
    /// properties, no additional-properties schema and no composition.
    fn free_form(schema: &Value, doc: &Value) -> bool {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/components/schemas/");
            return match doc["components"]["schemas"].get(name) {
                Some(target) => free_form(target, doc),
                None => true,
            };
        }
        let Some(object) = schema.as_object() else {
            return schema != &Value::Bool(false);
        };
        if ["allOf", "oneOf", "anyOf", "enum", "const"]
            .iter()
            .any(|k| object.contains_key(*k))
        {
            return false;
        }
        match object.get("type") {
            None => true,
            Some(t)
                if t == "object" || t.as_array().is_some_and(|a| a.contains(&"object".into())) =>
            {
                !object.contains_key("properties")
                    && !object
                        .get("additionalProperties")
                        .is_some_and(|a| a.is_object() && !free_form(a, doc))
            }
            Some(t) if t == "array" => object
                .get("items")
                .is_none_or(|items| free_form(items, doc)),
            Some(_) => false,
        }
    }

    #[test]
    fn every_route_has_an_operation_with_typed_bodies_and_nothing_else_is_described() {
        let doc = json();
        let paths = doc["paths"].as_object().unwrap();
        let table = super::super::routes::api_route_table();
        let mut missing = Vec::new();
        for (method, path) in &table {
            let operation =
                &paths.get(*path).unwrap_or(&Value::Null)[method.as_str().to_lowercase()];
            if operation.is_null() {
                missing.push(format!("{method} {path}"));
            }
        }
        assert!(
            missing.is_empty(),
            "routes without an operation: {missing:?}"
        );
        let mut stale = Vec::new();
        let mut untyped = Vec::new();
        for (path, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                if !table
                    .iter()
                    .any(|(m, p)| p == path && m.as_str().eq_ignore_ascii_case(method))
                {
                    stale.push(format!("{method} {path}"));
                }
                let bodies = operation["responses"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .flat_map(|(status, response)| {
                        response["content"].as_object().into_iter().flatten().map(
                            move |(media, content)| {
                                (format!("{status} {media}"), &content["schema"])
                            },
                        )
                    })
                    .chain(
                        operation["requestBody"]["content"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(media, content)| {
                                (format!("request {media}"), &content["schema"])
                            }),
                    );
                for (what, schema) in bodies {
                    if free_form(schema, &doc) {
                        untyped.push(format!("{method} {path}: {what}"));
                    }
                }
                assert!(
                    operation["responses"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .any(|status| status.starts_with('2')),
                    "{method} {path} describes no success"
                );
            }
        }
        assert!(stale.is_empty(), "operations of no route: {stale:?}");
        let mut ids: Vec<&str> = paths
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|operation| operation["operationId"].as_str().unwrap())
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "operation ids are unique");
        assert!(untyped.is_empty(), "free-form bodies: {untyped:?}");
        // Every operation is under the bearer scheme, and errors are problems.
        assert_eq!(doc["security"][0]["bearer"], Value::Array(vec![]));
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
        assert!(doc["components"]["schemas"]["Problem"]["properties"]["request_id"].is_object());
        // JSON Schema 2020-12, as OpenAPI 3.1 has it: no draft-4 tuple `items` arrays.
        fn tuple_items(value: &Value) -> bool {
            match value {
                Value::Object(map) => map
                    .iter()
                    .any(|(k, v)| (k == "items" && v.is_array()) || tuple_items(v)),
                Value::Array(values) => values.iter().any(tuple_items),
                _ => false,
            }
        }
        assert!(!tuple_items(&doc), "a schema uses draft-4 tuple items");
    }

    #[test]
    fn a_free_form_body_is_told_apart_from_a_typed_one() {
        let doc = serde_json::json!({ "components": { "schemas": {
            "Typed": { "type": "object", "properties": { "id": { "type": "string" } } },
            "Loose": { "type": "object" },
        } } });
        let free = |schema: Value| free_form(&schema, &doc);
        assert!(free(serde_json::json!({})));
        assert!(free(
            serde_json::json!({ "$ref": "#/components/schemas/Loose" })
        ));
        assert!(free(serde_json::json!({ "type": "array", "items": {} })));
        assert!(!free(
            serde_json::json!({ "$ref": "#/components/schemas/Typed" })
        ));
        assert!(!free(
            serde_json::json!({ "type": "string", "format": "binary" })
        ));
        assert!(!free(
            serde_json::json!({ "type": "array", "items": { "$ref": "#/components/schemas/Typed" } })
        ));
    }
}
