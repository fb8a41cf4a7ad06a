//! What sends an ordinary upload to the QA queue besides DICOM: a page count that differs
//! from the one declared at upload, and OCR too unsure of what it read.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

fn page(marker: &str, seed: u64) -> image::GrayImage {
    scanned_page(
        &[
            "Outpatient clinic note",
            &format!("Marker word for this page: {marker}"),
        ],
        0.0,
        seed,
    )
}

async fn status_for(app: &TestApp, token: &str, id: &str) -> u16 {
    app.get(token, &format!("/api/v1/documents/{id}"))
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_count_other_than_the_declared_one_goes_to_qa() {
    let app = spawn_app().await;
    let mut meta = metadata("QC-1", "Hana Counter", "clinic-note");
    meta["declared_pages"] = json!(3);
    let id = app
        .upload(tiff_of(&[page("saffron", 61), page("nutmeg", 62)]), &meta)
        .await;
    let doc = app
        .wait_processed_within(&id, Duration::from_secs(120))
        .await;
    assert_eq!(doc["status"], "qa", "{doc}");
    let reason = doc["qa_reason"].as_str().unwrap();
    assert!(
        reason.contains("2 pages") && reason.contains("3 were declared"),
        "{reason}"
    );
    // The treating clinician does not see it until a person has looked.
    assert_eq!(status_for(&app, &app.clinician, &id).await, 404);
    let queue: Value = app
        .get(&app.records, "/api/v1/qa")
        .await
        .json()
        .await
        .unwrap();
    assert!(queue["documents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["id"] == id.as_str()));
    let accepted = app
        .post_json(
            &app.records,
            &format!("/api/v1/qa/{id}"),
            &json!({ "action": "accept" }),
        )
        .await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(status_for(&app, &app.clinician, &id).await, 200);

    // The same count as declared: filed at once.
    let mut meta = metadata("QC-1", "Hana Counter", "clinic-note");
    meta["declared_pages"] = json!(1);
    let id = app.upload(png_of(&page("cardamom", 63)), &meta).await;
    let doc = app
        .wait_processed_within(&id, Duration::from_secs(120))
        .await;
    assert_eq!(doc["status"], "indexed", "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocr_below_the_confidence_threshold_goes_to_qa() {
    // No real scan reads at 99.9 on average: every OCRed document goes to QA.
    let app = spawn_app_with(|config| config.ocr.qa_min_confidence = 99.9).await;
    let id = app
        .upload(
            png_of(&page("turmeric", 64)),
            &metadata("QC-2", "Ivo Unsure", "clinic-note"),
        )
        .await;
    let doc = app
        .wait_processed_within(&id, Duration::from_secs(120))
        .await;
    assert_eq!(doc["status"], "qa", "{doc}");
    assert!(doc["qa_reason"]
        .as_str()
        .unwrap()
        .contains("mean OCR confidence"));
    let found = app
        .search(&app.clinician, json!({ "query": "turmeric" }))
        .await;
    assert_eq!(found["total"], 0);
    // A page with its own text layer is not OCR: not held back.
    let id = app
        .upload(
            text_pdf_of(&[&["Discharge letter", "Marker word cinnamon"]]),
            &metadata("QC-2", "Ivo Unsure", "letter"),
        )
        .await;
    let doc = app
        .wait_processed_within(&id, Duration::from_secs(120))
        .await;
    assert_eq!(doc["status"], "indexed", "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_over_the_ocr_time_limit_fails_its_document_with_a_reason() {
    let app = spawn_app_with(|config| config.ocr.page_timeout_ms = 1).await;
    let id = app
        .upload(
            png_of(&page("allspice", 65)),
            &metadata("QC-3", "Jon Slow", "clinic-note"),
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let doc = loop {
        let doc: Value = app
            .get(&app.records, &format!("/api/v1/documents/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if doc["status"] == "failed" {
            break doc;
        }
        assert!(std::time::Instant::now() < deadline, "{doc}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = doc["failure_reason"].as_str().unwrap();
    assert!(reason.contains("page 1 took longer than 1 ms"), "{reason}");
    // The server goes on serving.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
