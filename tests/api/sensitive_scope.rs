//! Scope holds on every path, whatever a category is written like and whatever state a
//! document is in: a cover sheet's `CAT=HIV` is the sensitive category `hiv`; a document
//! flagged for QA at upload is records-only before, during and after processing; a name
//! search, the QA queue and a retention run show nothing the caller may not see; a
//! break-the-glass lookup shows the chart it was opened for.

use chartvault::store::prelude::*;
use chartvault_ocr::{render_cover_page, Symbology};
use serde_json::{json, Value};

use crate::helpers::*;

fn meta(mrn: &str, name: &str, document_type: &str, category: &str) -> Value {
    json!({
        "patient": { "mrn": mrn, "name": name, "birth_date": "1950-02-01" },
        "document_type": document_type,
        "category": category,
        "service_date": "1990-05-01",
    })
}

fn page(title: &str, marker: &str, seed: u64) -> image::GrayImage {
    scanned_page(&[title, &format!("Marker word {marker}")], 0.0, seed)
}

async fn grant(app: &TestApp, user: &str, category: &str) {
    let response = app
        .post_json(
            &app.admin,
            "/api/v1/category-grants",
            &json!({ "user": user, "category": category }),
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cover_sheets_upper_case_category_is_the_sensitive_category_everywhere() {
    let app = spawn_app().await;
    // The patient exists (and is on the clinician's care list).
    let general = app
        .upload(
            text_pdf_of(&[&["Clinic letter", "Marker word plover"]]),
            &meta("CS-1", "Cora Sheet", "letter", "general"),
        )
        .await;
    app.wait_indexed(&general).await;
    let pages = vec![
        render_cover_page(Symbology::DataMatrix, "CV|MRN=CS-1|TYPE=LETTER|CAT=HIV"),
        page("Infectious diseases clinic", "nightjar", 3),
        // A cover for an MRN nobody has: its range waits in QA, its cover saying CAT=HIV.
        render_cover_page(Symbology::DataMatrix, "CV|MRN=CS-404|TYPE=Letter|CAT=Hiv"),
        page("Infectious diseases follow up", "kestrel", 5),
    ];
    let (status, accepted) =
        json_of(app.upload_batch_as(&app.records, g4_tiff_of(&pages)).await).await;
    assert_eq!(status, 202, "{accepted}");
    let batch = app.wait_split(accepted["id"].as_str().unwrap()).await;
    let segments = batch["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{batch}");
    assert_eq!(segments[0]["status"], "filed", "{batch}");
    assert_eq!(segments[1]["status"], "qa", "{batch}");
    let filed = segments[0]["document_id"].as_str().unwrap().to_string();
    let range = segments[1]["id"].as_str().unwrap().to_string();

    // Filed as the type `letter` in the category `hiv`: nobody without the grant sees it.
    let (status, _) = json_of(
        app.get(&app.clinician, &format!("/api/v1/documents/{filed}"))
            .await,
    )
    .await;
    assert_eq!(status, 404, "a clinician without the hiv grant");
    let (status, _) = json_of(
        app.get(&app.records, &format!("/api/v1/documents/{filed}"))
            .await,
    )
    .await;
    assert_eq!(status, 404, "records without the hiv grant");
    let found = app
        .search(&app.clinician, json!({ "query": "nightjar" }))
        .await;
    assert_eq!(found["total"], 0, "{found}");
    // The QA queue does not show the range whose cover says CAT=Hiv, nor its pages.
    let (status, queue) = json_of(app.get(&app.records, "/api/v1/qa").await).await;
    assert_eq!(status, 200);
    assert!(
        queue["page_ranges"].as_array().unwrap().is_empty(),
        "{queue}"
    );
    let (status, _) = json_of(
        app.get(&app.records, &format!("/api/v1/qa/{range}/pages/1/image"))
            .await,
    )
    .await;
    assert_eq!(status, 404);

    // With the grant, records sees both, normalised.
    grant(&app, "rec", "hiv").await;
    let (status, doc) = json_of(
        app.get(&app.records, &format!("/api/v1/documents/{filed}"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["category"], "hiv");
    assert_eq!(doc["document_type"], "letter");
    let (_, queue) = json_of(app.get(&app.records, "/api/v1/qa").await).await;
    let ranges = queue["page_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{queue}");
    assert_eq!(ranges[0]["id"], range.as_str());
    let (status, _) = json_of(
        app.get(&app.records, &format!("/api/v1/qa/{range}/pages/1/image"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagged_uploads_are_records_only_in_every_state_and_failed_ones_can_be_retried() {
    // Every OCRed page runs over a 1 ms limit: documents fail (a PDF with its own text
    // layer needs no OCR and is indexed).
    let app = spawn_app_with(|config| config.ocr.page_timeout_ms = 1).await;
    let first = app
        .upload(
            text_pdf_of(&[&["Clinic letter", "Marker word gannet"]]),
            &meta("FL-1", "Nora Quill", "letter", "general"),
        )
        .await;
    app.wait_indexed(&first).await;

    // The same MRN with another name: flagged for QA at upload, records-only at once.
    let response = app
        .upload_as(
            &app.records,
            png_of(&page("Referral", "grebe", 7)),
            &meta("FL-1", "Someone Else", "letter", "general"),
        )
        .await;
    let (status, accepted) = json_of(response).await;
    assert_eq!(status, 202, "{accepted}");
    let mismatched = accepted["id"].as_str().unwrap().to_string();
    let (status, _) = json_of(
        app.get(&app.clinician, &format!("/api/v1/documents/{mismatched}"))
            .await,
    )
    .await;
    assert_eq!(status, 404, "records-only while accepted or processing");
    // A page count other than the declared one: flagged too.
    let mut declared = meta("FL-1", "Nora Quill", "letter", "general");
    declared["declared_pages"] = json!(3);
    let (status, accepted) = json_of(
        app.upload_as(
            &app.records,
            png_of(&page("Referral", "shag", 8)),
            &declared,
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let miscounted = accepted["id"].as_str().unwrap().to_string();

    // Both fail (the OCR time limit); still records-only, with their QA reasons kept.
    for (id, why) in [(&mismatched, "name"), (&miscounted, "declared")] {
        let doc = app.wait_status(id, "failed").await;
        assert!(
            doc["qa_reason"].as_str().unwrap_or("").contains(why),
            "{doc}"
        );
        let (status, _) = json_of(
            app.get(&app.clinician, &format!("/api/v1/documents/{id}"))
                .await,
        )
        .await;
        assert_eq!(status, 404, "records-only once failed");
    }

    // Retry: records only, audited, 409 unless failed.
    let retry = |token: String, id: String| {
        let app = &app;
        async move {
            json_of(
                app.post_json(&token, &format!("/api/v1/documents/{id}/retry"), &json!({}))
                    .await,
            )
            .await
        }
    };
    let (status, _) = retry(app.clinician.clone(), miscounted.clone()).await;
    assert_eq!(status, 403);
    let (status, body) = retry(app.records.clone(), first.clone()).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = retry(app.records.clone(), miscounted.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    // It runs again (and, the limit being what it is, fails again with its reason).
    let doc = app.wait_status(&miscounted, "failed").await;
    assert!(
        doc["failure_reason"]
            .as_str()
            .unwrap()
            .contains("took longer than 1 ms"),
        "{doc}"
    );
    let (_, entries) = json_of(
        app.post_json(
            &app.auditor,
            "/api/v1/audit/query",
            &json!({ "action": "ingest", "limit": 1000 }),
        )
        .await,
    )
    .await;
    let retries: Vec<(&str, &str)> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["retry"] == true)
        .map(|e| {
            (
                e["document_id"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        retries,
        vec![(first.as_str(), "refused"), (miscounted.as_str(), "ok")],
        "{entries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_search_qa_and_retention_show_only_what_the_caller_may_see() {
    let app = spawn_app_with(|config| {
        config.retention.today = Some("2030-01-01".parse().unwrap());
        config.retention.rules = vec![chartvault::config::RetentionRule {
            document_type: "*".into(),
            jurisdiction: None,
            years: 10,
            minor_years_after_majority: None,
        }];
    })
    .await;
    let hidden = app
        .upload(
            text_pdf_of(&[&["HIV clinic letter", "Marker word osprey"]]),
            &meta("NS-1", "Quillon Hidden", "letter", "hiv"),
        )
        .await;
    let open = app
        .upload(
            text_pdf_of(&[&["Clinic letter", "Marker word puffin"]]),
            &meta("NS-2", "Quillon Open", "letter", "general"),
        )
        .await;
    let open_sensitive = app
        .upload(
            text_pdf_of(&[
                &["HIV clinic letter", "Marker word razorbill"],
                &["HIV clinic letter", "page two"],
            ]),
            &meta("NS-2", "Quillon Open", "letter", "hiv"),
        )
        .await;
    let mut flagged_meta = meta("NS-3", "Quillon Flagged", "letter", "general");
    flagged_meta["declared_pages"] = json!(5);
    let flagged = app
        .upload(
            text_pdf_of(&[&["Clinic letter", "Marker word skua"]]),
            &flagged_meta,
        )
        .await;
    for id in [&hidden, &open, &open_sensitive, &flagged] {
        app.wait_processed_in_db(id).await;
    }

    // The clinician (care for all three) finds only the patient they may see, with only the
    // pages they may see counted.
    let (status, found) = json_of(
        app.post_json(
            &app.clinician,
            "/api/v1/patients/search",
            &json!({ "name": "quillon" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let patients = found["patients"].as_array().unwrap();
    assert_eq!(patients.len(), 1, "{found}");
    assert_eq!(patients[0]["mrn"], "NS-2");
    assert_eq!(patients[0]["pages"], 1, "the two hiv pages are not counted");
    // Records sees the flagged one too (not the hiv-only patient: no grant).
    let (_, found) = json_of(
        app.post_json(
            &app.records,
            "/api/v1/patients/search",
            &json!({ "name": "quillon", "limit": 2 }),
        )
        .await,
    )
    .await;
    let mrns: Vec<&str> = found["patients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mrn"].as_str().unwrap())
        .collect();
    assert_eq!(mrns.len(), 2, "{found}");
    assert!(mrns.contains(&"NS-2") && mrns.contains(&"NS-3"), "{found}");

    // The QA queue: the flagged document is listed; an hiv one in QA is not, without the grant.
    let mut sensitive_flagged = meta("NS-2", "Quillon Open", "letter", "hiv");
    sensitive_flagged["declared_pages"] = json!(9);
    let sensitive_qa = app
        .upload(
            text_pdf_of(&[&["HIV clinic letter", "Marker word fulmar"]]),
            &sensitive_flagged,
        )
        .await;
    app.wait_processed_in_db(&sensitive_qa).await;
    let (_, queue) = json_of(app.get(&app.records, "/api/v1/qa").await).await;
    let listed: Vec<&str> = queue["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![flagged.as_str()], "{queue}");

    // Retention (records, no grant): the expired hiv letters are not listed.
    let (status, report) = json_of(
        app.post_json(&app.records, "/api/v1/retention/runs", &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let expired: Vec<&str> = report["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["document_id"].as_str().unwrap())
        .collect();
    assert_eq!(expired, vec![open.as_str()], "{report}");

    // A break-the-glass lookup lists the chart it opens (what the clinician may see of it).
    let outsider = chartvault::cli::user_add(
        &app.config(),
        "doc_night",
        chartvault::domain::Role::Clinician,
    )
    .await
    .unwrap();
    let (status, chart) = json_of(
        app.post_json(
            &outsider,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "NS-2" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "off the care list: {chart}");
    let (status, _) = json_of(
        app.post_json(
            &outsider,
            "/api/v1/break-glass",
            &json!({ "mrn": "NS-2", "reason_code": "emergency", "reason": "collapsed on the ward" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let (status, chart) = json_of(
        app.post_json(
            &outsider,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "NS-2" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{chart}");
    let documents: Vec<&str> = chart["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(documents, vec![open.as_str()], "{chart}");
}

/// A document filed before categories were normalised (a cover sheet's `CAT=HIV` stored, and
/// indexed, as written) is normalised and indexed again at start: the index's category
/// filter then hides it like the policy does, totals included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_stored_before_normalisation_are_normalised_and_reindexed() {
    let app = spawn_app().await;
    let id = app
        .upload(
            text_pdf_of(&[&["Clinic letter", "Marker word garganey"]]),
            &meta("OLD-1", "Olive Older", "letter", "general"),
        )
        .await;
    app.wait_indexed(&id).await;
    // As an older version left it: the category as the cover sheet wrote it, in the
    // database and in the index.
    sqlx::query("UPDATE documents SET category = 'HIV' WHERE id = $1")
        .bind(&id)
        .execute(&app.sql)
        .await
        .unwrap();
    let doc = app
        .state
        .db
        .document(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    app.state
        .index_writer()
        .unwrap()
        .index_pages(vec![chartvault_index::PageRecord {
            document_id: doc.id.0,
            page: 1,
            patient_id: doc.patient_id.0,
            patient_name: "Olive Older".to_string(),
            document_type: "letter".to_string(),
            category: "HIV".to_string(),
            service_date: doc.service_date,
            text: "Clinic letter Marker word garganey".to_string(),
        }])
        .await
        .unwrap();
    let before = app
        .search(&app.clinician, json!({ "query": "garganey" }))
        .await;
    assert_eq!(before["hits"], json!([]), "the policy hides it already");
    assert_eq!(before["total"], 1, "but the index counted it: {before}");

    let changed = chartvault::ingest::pages::normalise_stored_labels(&app.state)
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let after = app
        .search(&app.clinician, json!({ "query": "garganey" }))
        .await;
    assert_eq!(after["total"], 0, "{after}");
    let doc = app
        .state
        .db
        .document(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.category.as_str(), "hiv");
    assert_eq!(
        chartvault::ingest::pages::normalise_stored_labels(&app.state)
            .await
            .unwrap(),
        0,
        "nothing left to do"
    );
}
