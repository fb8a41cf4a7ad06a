//! The same original for the same patient is one document: a second upload is answered with
//! the existing id (`200`), nothing stored, unless the caller insists.

use chartvault::store::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_upload_of_the_same_original_returns_the_existing_document() {
    let app = spawn_app().await;
    let scan = png_of(&scanned_page(
        &["Referral letter", "Marker tamarisk"],
        0.0,
        81,
    ));
    let meta = metadata("DU-1", "Dora Duplicate", "letter");
    let first = app.upload(scan.clone(), &meta).await;
    let blobs_before = files_under(&app.data_dir.join("blobs")).len();

    let again = app.upload_as(&app.records, scan.clone(), &meta).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first.as_str());
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        files_under(&app.data_dir.join("blobs")).len(),
        blobs_before,
        "nothing stored"
    );

    // The same bytes for another patient are that patient's document.
    let other = app
        .upload_as(
            &app.records,
            scan.clone(),
            &metadata("DU-2", "Otto Other", "letter"),
        )
        .await;
    assert_eq!(other.status(), 202);
    // Insisting stores a second copy.
    let mut insist = meta.clone();
    insist["allow_duplicate"] = json!(true);
    let second = app.upload(scan, &insist).await;
    assert_ne!(second, first);

    app.wait_indexed(&first).await;
    app.wait_indexed(&second).await;
    let chart: Value = app
        .post_json(
            &app.records,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "DU-1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        chart["documents"].as_array().unwrap().len(),
        2,
        "first and the insisted copy"
    );
    let audit = app.state.db.audit_rows(0).await.unwrap();
    assert!(audit.iter().any(|r| r.action == "ingest"
        && r.outcome == "duplicate"
        && r.document_id.as_deref() == Some(first.as_str())));
}
