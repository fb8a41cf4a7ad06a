//! FHIR R4 at `/fhir`, read by FHIR's own client (fhirclient) with every resource checked
//! against FHIR's models (fhir.resources), in the tests' Python environment
//! (`tests/fhir/client.py`): searches by patient, identifier, category, type, dates and
//! status with paging, the originals read through the DocumentReference byte for byte, the
//! patient read and found, and a clinician kept to their care list with OperationOutcomes.

use chartvault::store::prelude::*;
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_clients_search_and_read_documents_within_the_callers_scope() {
    let Some(python) = crate::hl7::python() else {
        return;
    };
    let app = spawn_app_with(|config| {
        config
            .fhir
            .type_codes
            .insert("discharge-summary".into(), "18842-5".into());
        config.fhir.custodian = Some("Test Hospital HIM".into());
        config.fhir.max_inline_bytes = 1024 * 1024;
        config.patients.default_fhir_system = Some("urn:oid:2.16.840.1.113883.19.5".into());
    })
    .await;
    let mut originals = std::collections::BTreeMap::new();
    let mut sha1s = std::collections::BTreeMap::new();
    let mut ids = Vec::new();
    for (n, (document_type, service_date, marker)) in [
        ("discharge-summary", "2019-03-01", "kittiwake"),
        ("discharge-summary", "2020-06-15", "razorbill"),
        ("letter", "2019-11-20", "guillemot"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut meta = metadata("F-1", "FIONA FHIR", document_type);
        meta["service_date"] = json!(service_date);
        let file = png_of(&scanned_page(
            &["Summary", &format!("Marker word: {marker}")],
            0.0,
            90 + n as u64,
        ));
        let id = app.upload(file.clone(), &meta).await;
        originals.insert(id.clone(), hex::encode(sha2::Sha256::digest(&file)));
        sha1s.insert(id.clone(), hex::encode(sha1::Sha1::digest(&file)));
        ids.push(id);
    }
    // Another patient, not on the clinician's care list (uploaded without the helper that
    // puts its patient there).
    let response = app
        .upload_as(
            &app.records,
            png_of(&scanned_page(&["Letter", "Marker word: fulmar"], 0.0, 95)),
            &metadata("F-2", "OTTO OTHER", "letter"),
        )
        .await;
    assert_eq!(response.status(), 202);
    let other = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for id in ids.iter().chain([&other]) {
        app.wait_indexed(id).await;
    }
    let (_, chart) = json_of(
        app.post_json(
            &app.records,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "F-1" }),
        )
        .await,
    )
    .await;
    let patient = chart["patient"]["id"].as_str().unwrap().to_string();

    assert_eq!(
        app.get(&app.clinician, &format!("/api/v1/documents/{other}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&app.clinician, &format!("/fhir/DocumentReference/{other}"))
            .await
            .status(),
        404
    );
    let new_scan = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(png_of(&scanned_page(
            &["Discharge summary", "Marker word: shearwater"],
            0.0,
            96,
        )))
    };
    let request = json!({
        "base": app.url("/fhir"), "token": app.records, "clinician": app.clinician,
        "patient": patient, "mrn": "F-1", "system": "urn:oid:2.16.840.1.113883.19.5",
        "other_document": other,
        "new_scan": new_scan,
    });
    let out = crate::hl7::run_client(&python, "tests/fhir/client.py", &request);
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<String>>()
    };
    let all = sorted(ids.iter().collect());
    assert_eq!(
        out["capability"],
        json!(["Binary", "DocumentReference", "Patient"])
    );
    assert_eq!(out["first_page_entries"], 1);
    assert_eq!(out["documents"], json!(all));
    assert_eq!(
        (out["total"].as_u64(), out["pages"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(out["statuses"], json!(["current"]));
    assert_eq!(out["by_identifier"], json!(all));
    assert_eq!(out["clinical_notes"], json!(all));
    assert_eq!(
        out["discharge_by_loinc"],
        json!(sorted(vec![&ids[0], &ids[1]]))
    );
    assert_eq!(out["letters"], json!([ids[2]]));
    assert_eq!(out["posted_search"], json!([ids[2]]));
    assert_eq!(out["archived_since_2000"], json!(all));
    assert_eq!(out["archived_before_2000"], json!([]));
    assert_eq!(out["served_2019"], json!(sorted(vec![&ids[0], &ids[2]])));
    assert_eq!(out["current"], json!(all));
    assert_eq!(out["content"], json!([ids[1]]), "the word is on its page");
    assert_eq!(out["content_anywhere"], json!([ids[1]]));
    for id in &ids {
        assert_eq!(
            out["sha256"][id], originals[id],
            "the original of {id}, byte for byte"
        );
    }
    assert!(out["text_words"].as_u64().unwrap() >= 3, "{out}");
    assert_eq!(out["patient"]["identifier"][0]["value"], "F-1");
    assert_eq!(out["patient"]["name"][0]["family"], "FHIR");
    assert_eq!(out["patients_by_identifier"], json!([patient]));
    // Out of the clinician's scope: 404, as in the API; their patient's documents they see.
    assert_eq!(
        out["out_of_scope"]["status"], 404,
        "{}",
        out["out_of_scope"]
    );
    assert_eq!(out["out_of_scope"]["body"]["issue"][0]["code"], "not-found");
    assert_eq!(out["clinician_sees"], 3);
    assert_eq!(out["no_patient"]["status"], 400);
    // Created through FHIR: filed as an upload (under the patient, the LOINC code's type,
    // the period's date), the same original again the same document.
    let created = &out["created"];
    assert_eq!(created["status"], 201, "{created}");
    let new_id = created["id"].as_str().unwrap();
    assert!(created["location"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/fhir/DocumentReference/{new_id}")));
    assert_eq!(created["read"], 200);
    assert_eq!(out["created_again"], json!({ "status": 200, "id": new_id }));
    assert_eq!(out["create_without_data"]["status"], 400);
    assert_eq!(
        out["create_too_large"]["status"], 413,
        "{}",
        out["create_too_large"]
    );
    let filed = app.wait_indexed(new_id).await;
    assert_eq!(filed["patient_id"], patient.as_str());
    assert_eq!(filed["document_type"], "discharge-summary");
    assert_eq!(filed["service_date"], "2021-04-05");
    assert_eq!(out["bad_token"]["status"], 401);
    assert_eq!(out["unknown_type"]["status"], 404);
    assert_eq!(out["unknown_type"]["body"]["issue"][0]["code"], "not-found");

    // A document from before SHA-1s were recorded gets its own filled in.
    sqlx::query("UPDATE documents SET sha1 = NULL WHERE id = $1")
        .bind(&ids[0])
        .execute(&app.sql)
        .await
        .unwrap();
    let (_, before) = json_of(
        app.get(&app.records, &format!("/fhir/DocumentReference/{}", ids[0]))
            .await,
    )
    .await;
    assert!(
        before["content"][0]["attachment"].get("hash").is_none(),
        "{before}"
    );
    assert_eq!(
        chartvault::ingest::hashes::backfill(&app.state)
            .await
            .unwrap(),
        1
    );
    let stored: Option<String> = sqlx::query_scalar("SELECT sha1 FROM documents WHERE id = $1")
        .bind(&ids[0])
        .fetch_one(&app.sql)
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), Some(&sha1s[&ids[0]]));

    // Every read was audited with its FHIR interaction; no query string in the log.
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let fhir = |what: &str| {
        rows.iter()
            .filter(|r| r.detail.as_deref().is_some_and(|d| d.contains(what)))
            .count()
    };
    assert!(fhir("read Binary") >= 3);
    assert!(fhir("search-type DocumentReference") >= 10);
    assert!(fhir("read Patient") >= 1);
    let log = std::fs::read_to_string(trace_log_path()).unwrap();
    assert!(
        log.contains("route=/fhir/DocumentReference"),
        "the requests are logged by route"
    );
    assert!(
        !log.contains("F-1") && !log.contains("patient.identifier="),
        "query strings in the log"
    );
}
