//! FHIR R4 at `/fhir` (JSON, `application/fhir+json`): the archive's documents as US Core
//! `DocumentReference`s with their originals as `Binary`, and its patients as `Patient`s.
//! A front end over the same services as `/api/v1`: the same bearer tokens and SMART
//! scopes, the same policy function, the same audit.
//!
//! Promises:
//! - a read is authorised and audited as the API's reads are (the FHIR interaction in the
//!   audit detail); a resource out of the caller's scope is `404`, as in the API;
//! - a search names its patient (`patient`, `patient.identifier`) or an `_id`; a patient
//!   out of scope finds nothing (the answer does not confirm the patient exists);
//! - every error is an `OperationOutcome`, without PHI;
//! - query strings (they carry MRNs) are never logged (the request log names the route).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Form, Router};
use serde_json::{json, Value};

use crate::access::audit::{authorize, AuditEvent};
use crate::access::lookup::document_in_scope;
use crate::access::policy::{decide, Action, Principal, Resource};
use crate::domain::{DocumentStatus, PatientId};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::state::AppState;
use crate::store::documents::Document;
use crate::store::objects::ObjectRef;
use crate::store::patients::Patient;
use crate::store::prelude::*;

mod resources;

pub use resources::{CATEGORY_SYSTEM, TYPE_SYSTEM};

/// The media type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json";

/// Every FHIR route: method, path under `/fhir`, handler. The router is built from this
/// table and nothing else, so the access-control test, which walks [`route_table`], covers
/// every route there is.
fn fhir_routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/metadata", get(metadata)),
        (Method::GET, "/DocumentReference", get(search_documents_get)),
        (Method::POST, "/DocumentReference", post(create_document)),
        (
            Method::POST,
            "/DocumentReference/_search",
            post(search_documents_post),
        ),
        (Method::GET, "/DocumentReference/{id}", get(read_document)),
        (Method::GET, "/Binary/{id}", get(read_binary)),
        (Method::GET, "/Patient", get(search_patients_get)),
        (Method::POST, "/Patient/_search", post(search_patients_post)),
        (Method::GET, "/Patient/{id}", get(read_patient)),
    ]
}

/// (method, path under `/fhir`) of every FHIR route.
pub fn route_table() -> Vec<(Method, &'static str)> {
    fhir_routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The `/fhir` routes (nested under `/fhir` by the service's router, which bounds bodies
/// to `limits.max_json_bytes`): a create carries its original inline, in base64, so its
/// body may be `upload_limit` (`fhir.max_inline_bytes`, at most `limits.max_upload_bytes`)
/// and a third more.
pub fn routes(upload_limit: u64) -> Router<AppState> {
    let create_limit =
        usize::try_from(upload_limit.saturating_mul(4) / 3 + 64 * 1024).unwrap_or(usize::MAX);
    fhir_routes()
        .into_iter()
        .fold(Router::new(), |router, (method, path, handler)| {
            let handler = if method == Method::POST && path == "/DocumentReference" {
                handler.layer(axum::extract::DefaultBodyLimit::max(create_limit))
            } else {
                handler
            };
            router.route(path, handler)
        })
        // A resource type or path this server does not have: 404, an OperationOutcome too.
        .fallback(|| async { AppError::not_found() })
        .layer(middleware::from_fn(operation_outcomes))
}

/// A FHIR resource as the answer.
struct Fhir(Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        (
            [
                (header::CONTENT_TYPE, FHIR_JSON),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// Every error of a FHIR route becomes an `OperationOutcome` with the same status (the
/// API's `{code, message}` body is read back; it never holds PHI).
async fn operation_outcomes(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let error: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
        .to_string();
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid",
        StatusCode::UNAUTHORIZED => "login",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::GONE => "deleted",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too-costly",
        _ if status.is_server_error() => "exception",
        _ => "processing",
    };
    let outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": message }],
    });
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    if status == StatusCode::UNAUTHORIZED {
        parts
            .headers
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    Response::from_parts(parts, Body::from(outcome.to_string()))
}

/// The base URL of the FHIR endpoint: `server.public_url` + `/fhir`, else from the request's
/// `Host`.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    state.absolute_link(headers, "/fhir")
}

/// `GET /fhir/metadata`: what this server does (no token needed, as FHIR clients expect).
async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Fhir {
    Fhir(resources::capability_statement(
        &base_url(&state, &headers),
        state.config.auth.jwt_issuer.as_deref(),
    ))
}

/// The audit detail of a FHIR interaction.
fn interaction(kind: &str, resource: &str) -> Value {
    json!({ "fhir": format!("{kind} {resource}") })
}

/// A document the caller may read, as FHIR shows documents: indexed (current) or entered in
/// error; a deleted one is gone (410); one still in work or in QA is not there (404).
async fn fhir_document(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
) -> AppResult<Document> {
    authorize(&state.db, principal, Action::ReadDocument, None).await?;
    let doc = document_in_scope(state, principal, Action::ReadDocument, raw_id).await?;
    match doc.status {
        DocumentStatus::Indexed
        | DocumentStatus::EnteredInError
        | DocumentStatus::Accepted
        | DocumentStatus::Processing => Ok(doc),
        DocumentStatus::Deleted => Err(AppError::new(
            ErrorCode::Gone,
            "the document was deleted; only its tombstone remains",
        )),
        _ => Err(AppError::not_found()),
    }
}

/// `GET /fhir/DocumentReference/{id}`.
async fn read_document(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AppResult<Fhir> {
    let doc = fhir_document(&state, &principal, &id).await?;
    let patient = state
        .db
        .patient(doc.patient_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    AuditEvent::new(&principal, Action::ReadDocument)
        .patient(doc.patient_id)
        .document(doc.id)
        .detail(interaction("read", "DocumentReference"))
        .record(&state.db)
        .await?;
    Ok(Fhir(resources::document_reference(
        &state.config,
        &base_url(&state, &headers),
        &doc,
        &patient,
    )))
}

/// `POST /fhir/DocumentReference`: a document with its original inline
/// (`content[0].attachment.data`, base64) filed as an upload is (records, or a SMART
/// `system/DocumentReference.write` token): the subject a patient of the archive (by
/// `Patient/<id>` or by MRN identifier), the type from `type` (the archive's code, or a
/// LOINC code `fhir.type_codes` maps), the category, `context.period.start` as the service
/// date, `context.encounter` as the visit. `201` with `Location`; the same original for
/// the same patient again is `200` with the existing document. Readable at once
/// (`docStatus` `preliminary` until its pages are indexed).
async fn create_document(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AppResult<Response> {
    authorize(&state.db, &principal, Action::Ingest, None).await?;
    let resource: Value = serde_json::from_slice(&body)
        .map_err(|_| AppError::invalid("the body is not a JSON FHIR resource"))?;
    let request = resources::NewDocumentReference::read(&state.config, &resource)
        .map_err(AppError::invalid)?;
    let patient = match &request.subject {
        resources::Subject::Id(id) => match id.parse::<PatientId>() {
            Ok(id) => state.db.patient(id).await?,
            Err(_) => None,
        },
        resources::Subject::Identifier(token) => {
            match state.config.patients.mrn_of_fhir_token(token) {
                Some(mrn) => state.db.patient_by_mrn(&mrn).await?,
                None => None,
            }
        }
    }
    .ok_or_else(|| {
        AppError::invalid("subject names no patient of this archive (register them first)")
    })?;
    let limit = state
        .config
        .fhir
        .max_inline_bytes
        .min(state.config.limits.max_upload_bytes);
    if request.data.len() as u64 > limit {
        return Err(crate::ingest::upload::too_large(limit));
    }
    let mut staging = crate::ingest::upload::StagingUpload::begin(&state.vault, limit)?;
    if let Err(error) = staging.push(axum::body::Bytes::from(request.data)).await {
        staging.abort().await;
        return Err(error);
    }
    let staged = staging.finish().await?;
    let metadata = crate::ingest::upload::ValidMetadata {
        mrn: patient.mrn.clone(),
        name: patient.name.clone(),
        birth_date: patient.birth_date,
        document_type: request.document_type,
        category: request.category,
        service_date: request.service_date,
        encounter: request.encounter,
        allow_duplicate: false,
        declared_pages: None,
    };
    let accepted = crate::ingest::upload::accept(&state, staged, metadata, &principal).await?;
    let doc = state
        .db
        .document(accepted.id)
        .await?
        .ok_or_else(AppError::not_found)?;
    let base = base_url(&state, &headers);
    let location = format!("{base}/DocumentReference/{}", doc.id);
    let status = if accepted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (
        status,
        Fhir(resources::document_reference(
            &state.config,
            &base,
            &doc,
            &patient,
        )),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /fhir/Binary/{id}`: the original, decrypted as it streams (`{id}` a document's
/// id), or its pages' text (`{id}-text`, pages separated by form feeds). With `Accept:
/// application/fhir+json`, a `Binary` resource with the bytes in `data`.
async fn read_binary(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (raw_id, text) = match id.strip_suffix("-text") {
        Some(raw) => (raw, true),
        None => (id.as_str(), false),
    };
    let doc = fhir_document(&state, &principal, raw_id).await?;
    AuditEvent::new(&principal, Action::ReadDocument)
        .patient(doc.patient_id)
        .document(doc.id)
        .detail(json!({
            "fhir": "read Binary",
            "artifact": if text { "text" } else { "original" },
        }))
        .record(&state.db)
        .await?;
    let security_context = format!("DocumentReference/{}", doc.id);
    let (content_type, bytes): (String, Option<Vec<u8>>) = if text {
        let mut all = Vec::new();
        for page in state.db.pages(doc.id).await? {
            if !all.is_empty() {
                all.push(0x0c);
            }
            all.extend(
                state
                    .vault
                    .get(ObjectRef::PageText(doc.id, page.page))
                    .await?,
            );
        }
        ("text/plain; charset=utf-8".into(), Some(all))
    } else {
        (doc.content_type.clone(), None)
    };
    let wants_resource = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains(FHIR_JSON) || a.contains("application/json"));
    if wants_resource {
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => {
                let reader = state.vault.open(ObjectRef::Original(doc.id)).await?;
                tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    let mut reader = reader;
                    let mut all = Vec::new();
                    std::io::Read::read_to_end(&mut reader, &mut all)?;
                    Ok(all)
                })
                .await?
                .map_err(AppError::internal)?
            }
        };
        use base64::Engine;
        return Ok(Fhir(json!({
            "resourceType": "Binary",
            "id": id,
            "contentType": content_type,
            "securityContext": { "reference": security_context },
            "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        }))
        .into_response());
    }
    let mut response = match bytes {
        Some(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        None => {
            let reader = state.vault.open(ObjectRef::Original(doc.id)).await?;
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CONTENT_LENGTH, doc.size_bytes.to_string()),
                ],
                Body::from_stream(crate::http::decrypting_stream(reader, doc.id.0)),
            )
                .into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&security_context) {
        headers.insert("x-security-context", value);
    }
    Ok(response)
}

/// `GET /fhir/Patient/{id}`.
async fn read_patient(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Fhir> {
    authorize(&state.db, &principal, Action::LookupPatient, None).await?;
    let found = match id.parse::<PatientId>() {
        Ok(id) => state.db.patient(id).await?,
        Err(_) => None,
    };
    let Some(patient) = found else {
        AuditEvent::new(&principal, Action::LookupPatient)
            .outcome(crate::domain::Outcome::NotFound)
            .detail(interaction("read", "Patient"))
            .record(&state.db)
            .await?;
        return Err(AppError::not_found());
    };
    // Out of scope: audited as refused, and 404 as for no patient.
    authorize(
        &state.db,
        &principal,
        Action::LookupPatient,
        Some(&Resource::patient(patient.id)),
    )
    .await?;
    AuditEvent::new(&principal, Action::LookupPatient)
        .patient(patient.id)
        .detail(interaction("read", "Patient"))
        .record(&state.db)
        .await?;
    Ok(Fhir(resources::patient(&state.config, &patient)))
}

fn patient_visible(principal: &Principal, patient: PatientId) -> bool {
    decide(
        principal,
        Action::LookupPatient,
        Some(&Resource::patient(patient)),
    )
    .is_allow()
}

/// A search's parameters, as the query string or a form body gives them (a name may come
/// more than once: `date=ge2020&date=le2021`).
type Params = Vec<(String, String)>;

async fn search_documents_get(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> AppResult<Fhir> {
    search_documents(&state, &principal, &headers, params).await
}

async fn search_documents_post(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> AppResult<Fhir> {
    search_documents(&state, &principal, &headers, params).await
}

async fn search_patients_get(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> AppResult<Fhir> {
    search_patients(&state, &principal, &headers, params).await
}

async fn search_patients_post(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> AppResult<Fhir> {
    search_patients(&state, &principal, &headers, params).await
}

/// Paging: `_count` (1–500, default 50) and the server's own `_offset`.
fn paging(params: &Params) -> AppResult<(usize, usize)> {
    let number = |name: &str, default: usize, range: std::ops::RangeInclusive<usize>| match params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
    {
        None => Ok(default),
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "{name} must be a number from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    };
    Ok((
        number("_count", 50, 1..=500)?,
        number("_offset", 0, 0..=usize::MAX)?,
    ))
}

/// The patient a search names (`patient`, `subject`, `patient.identifier`): `Ok(None)`
/// when the search names none; `Ok(Some(None))` when it names one the caller cannot see or
/// who does not exist (the search then finds nothing).
async fn searched_patient(
    state: &AppState,
    principal: &Principal,
    params: &Params,
) -> AppResult<Option<Option<Patient>>> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let found = if let Some(reference) = get("patient").or(get("subject")) {
        let id = reference
            .trim()
            .strip_prefix("Patient/")
            .unwrap_or(reference.trim());
        match id.parse::<PatientId>() {
            Ok(id) => state.db.patient(id).await?,
            Err(_) => None,
        }
    } else if let Some(token) = get("patient.identifier").or(get("subject.identifier")) {
        match resources::mrn_of_token(&state.config, token) {
            Some(mrn) => state.db.patient_by_mrn(&mrn).await?,
            None => None,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(found.filter(|p| patient_visible(principal, p.id))))
}

/// `DocumentReference` search (see [`resources::DocumentFilter`] for the parameters).
async fn search_documents(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    params: Params,
) -> AppResult<Fhir> {
    authorize(&state.db, principal, Action::Search, None).await?;
    let (count, offset) = paging(&params)?;
    let filter = resources::DocumentFilter::parse(&params).map_err(AppError::invalid)?;
    let patient = searched_patient(state, principal, &params).await?;
    // `_content`: words on the pages, through the encrypted index, scoped as `/search`.
    let content = params
        .iter()
        .find(|(k, _)| k == "_content")
        .map(|(_, v)| v.as_str());
    let matching = match (content, &patient) {
        (Some(_), Some(None)) => Some(Vec::new()),
        (Some(words), Some(Some(patient))) => Some(
            crate::search::documents_matching(state, principal, words, Some(patient.id)).await?,
        ),
        (Some(words), None) => {
            Some(crate::search::documents_matching(state, principal, words, None).await?)
        }
        (None, _) => None,
    };
    let candidates: Vec<Document> = match (&patient, &filter.id, matching) {
        (Some(None), _, _) => Vec::new(),
        (_, _, Some(found)) => documents_by_id(state, found).await?,
        (Some(Some(patient)), _, None) => state.db.documents_of_patient(patient.id).await?,
        (None, Some(ids), None) => {
            let ids = ids.iter().filter_map(|id| id.trim().parse().ok()).collect();
            documents_by_id(state, ids).await?
        }
        (None, None, None) => {
            return Err(AppError::invalid(
                "a DocumentReference search names a patient (patient, patient.identifier), \
                 an _id or _content",
            ))
        }
    };
    let mut matches: Vec<Document> = candidates
        .into_iter()
        .filter(|doc| {
            matches!(
                doc.status,
                DocumentStatus::Indexed | DocumentStatus::EnteredInError
            ) && decide(principal, Action::ReadDocument, Some(&doc.resource())).is_allow()
                && filter.matches(&state.config, doc)
        })
        .collect();
    // Newest first.
    matches.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.0.cmp(&a.id.0)));
    let total = matches.len();
    let page: Vec<Document> = matches.into_iter().skip(offset).take(count).collect();
    let mut patients: BTreeMap<PatientId, Patient> = BTreeMap::new();
    for doc in &page {
        if !patients.contains_key(&doc.patient_id) {
            if let Some(patient) = state.db.patient(doc.patient_id).await? {
                patients.insert(patient.id, patient);
            }
        }
    }
    let base = base_url(state, headers);
    let entries: Vec<Value> = page
        .iter()
        .filter_map(|doc| {
            let patient = patients.get(&doc.patient_id)?;
            Some(resources::document_reference(
                &state.config,
                &base,
                doc,
                patient,
            ))
        })
        .collect();
    let mut audit = AuditEvent::new(principal, Action::Search).detail(json!({
        "fhir": "search-type DocumentReference",
        "documents": page.iter().map(|d| d.id).collect::<Vec<_>>(),
    }));
    if let Some(Some(patient)) = &patient {
        audit = audit.patient(patient.id);
    }
    audit.record(&state.db).await?;
    Ok(Fhir(resources::searchset(
        &format!("{base}/DocumentReference"),
        &params,
        (total, offset, count),
        entries,
    )))
}

async fn documents_by_id(
    state: &AppState,
    ids: Vec<crate::domain::DocumentId>,
) -> AppResult<Vec<Document>> {
    let mut docs = Vec::with_capacity(ids.len());
    for id in ids {
        docs.extend(state.db.document(id).await?);
    }
    Ok(docs)
}

/// `Patient` search: `identifier` (`system|MRN`), `name` (through the name index), `_id`.
async fn search_patients(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    params: Params,
) -> AppResult<Fhir> {
    authorize(&state.db, principal, Action::LookupPatient, None).await?;
    let (count, offset) = paging(&params)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut found: Vec<Patient> = Vec::new();
    if let Some(token) = get("identifier") {
        if let Some(mrn) = resources::mrn_of_token(&state.config, token) {
            found.extend(state.db.patient_by_mrn(&mrn).await?);
        }
    } else if let Some(id) = get("_id") {
        if let Ok(id) = id.parse::<PatientId>() {
            found.extend(state.db.patient(id).await?);
        }
    } else if let Some(name) = get("name") {
        if name.chars().count() > 200 {
            return Err(AppError::invalid("name must be at most 200 characters"));
        }
        for (id, _) in crate::search::patients_named(state, principal, name, 100).await? {
            found.extend(state.db.patient(id).await?);
        }
    } else {
        return Err(AppError::invalid(
            "a Patient search names an identifier, a name or an _id",
        ));
    }
    found.retain(|p| patient_visible(principal, p.id));
    found.dedup_by_key(|p| p.id);
    let total = found.len();
    let page: Vec<&Patient> = found.iter().skip(offset).take(count).collect();
    let mut audit = AuditEvent::new(principal, Action::LookupPatient).detail(json!({
        "fhir": "search-type Patient",
        "patients": page.iter().map(|p| p.id).collect::<Vec<_>>(),
    }));
    if let [one] = page.as_slice() {
        audit = audit.patient(one.id);
    }
    audit.record(&state.db).await?;
    let base = base_url(state, headers);
    let entries = page
        .iter()
        .map(|p| resources::patient(&state.config, p))
        .collect();
    Ok(Fhir(resources::searchset(
        &format!("{base}/Patient"),
        &params,
        (total, offset, count),
        entries,
    )))
}
