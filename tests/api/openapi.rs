//! The API's OpenAPI document, served without a token, and the API held to it by
//! schemathesis (in the tests' Python environment): every operation exercised with
//! generated requests as `records`, with no server error and no answer that its schema
//! does not describe.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(python) = crate::hl7::python() else {
        return;
    };
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "public, as FHIR's metadata is");
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        operations,
        chartvault::http::routes::api_route_table().len(),
        "one operation per route"
    );
    assert_eq!(
        doc["paths"]["/documents/{id}/delete"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"],
        "#/components/schemas/DeleteBody",
        "the POST form of a DELETE with a body is described as the DELETE is"
    );

    // A 201 says where the new resource is.
    app.upload(
        png_of(&scanned_page(&["Ward note"], 0.0, 3)),
        &metadata("OA-1", "Olive Api", "ward-note"),
    )
    .await;
    let created = app
        .post_json(
            &app.records,
            "/api/v1/care-relationships",
            &serde_json::json!({ "user": "doc", "mrn": "OA-1", "starts_on": "2030-01-01" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let body: Value = created.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "/api/v1/care-relationships/{}",
            body["id"].as_str().unwrap()
        )
    );

    // As each role: between them every operation is reached past its role check (records:
    // documents, QA, batches, retention; legal: holds, releases; the auditor: the audit
    // and break-the-glass reviews; the admin: keys and grants; a clinician: break-the-glass).
    let schemathesis = python.with_file_name("schemathesis");
    // It keeps a cache of what it found in its working directory: a temporary one.
    let workdir = tempfile::tempdir().unwrap();
    for token in [
        &app.records,
        &app.legal,
        &app.auditor,
        &app.admin,
        &app.clinician,
    ] {
        let output = std::process::Command::new(&schemathesis)
            .args([
                "run",
                &app.url("/api/v1/openapi.json"),
                "--url",
                &app.url("/api/v1"),
                "--header",
                &format!("Authorization: Bearer {token}"),
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance,response_headers_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "8",
                "--generation-deterministic",
                "--workers",
                "1",
            ])
            .env("NO_COLOR", "1")
            .current_dir(workdir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis found failures:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("passed"), "{stdout}");
    }
}
