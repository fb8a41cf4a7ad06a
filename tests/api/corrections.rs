//! Misfiled documents: a correction files the document again as a new version; the old one
//! is entered in error, out of search, readable to records alone, and both steps are audited.

use chartvault::store::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misfiled_document_is_corrected_as_a_new_version_and_the_old_one_is_entered_in_error() {
    let app = spawn_app().await;
    let scan = png_of(&scanned_page(
        &[
            "Cardiology clinic letter",
            "Marker word for this page: pelargonium",
        ],
        0.0,
        41,
    ));
    let wrong = app
        .upload(
            scan.clone(),
            &metadata("CR-1", "Fiona Wrongly", "clinic-letter"),
        )
        .await;
    app.wait_indexed(&wrong).await;
    let other = app
        .upload(
            png_of(&scanned_page(&["Admission form", "Nothing else"], 0.0, 42)),
            &metadata("CR-2", "Gordon Rightly", "admission"),
        )
        .await;
    app.wait_indexed(&other).await;

    let path = format!("/api/v1/documents/{wrong}/corrections");
    let response = app
        .post_json(
            &app.records,
            &path,
            &json!({ "mrn": "CR-2", "service_date": "2019-06-30", "reason": "scanned into the wrong chart" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let corrected: Value = response.json().await.unwrap();
    assert_eq!(corrected["supersedes"], wrong.as_str());
    let new = corrected["id"].as_str().unwrap().to_string();
    assert_eq!(
        location,
        format!("/api/v1/documents/{new}"),
        "where the new version is"
    );
    assert_ne!(new, wrong);
    let new_doc = app.wait_indexed(&new).await;
    assert_eq!(new_doc["service_date"], "2019-06-30");
    assert_eq!(new_doc["document_type"], "clinic-letter");
    assert_eq!(new_doc["supersedes"], wrong.as_str());

    // Found under the right patient, not the wrong one, and only once.
    let under = |mrn: &'static str| {
        let app = &app;
        async move {
            app.search(&app.records, json!({ "query": "pelargonium", "mrn": mrn }))
                .await
        }
    };
    let right = under("CR-2").await;
    assert_eq!(right["total"], 1, "{right}");
    assert_eq!(right["hits"][0]["document_id"], new.as_str());
    assert_eq!(right["hits"][0]["page"], 1);
    assert_eq!(under("CR-1").await["total"], 0);
    let anywhere = app
        .search(&app.records, json!({ "query": "pelargonium" }))
        .await;
    assert_eq!(anywhere["total"], 1, "{anywhere}");

    // The new version is the same original, byte for byte.
    let original = app
        .get(&app.records, &format!("/api/v1/documents/{new}/original"))
        .await;
    assert_eq!(original.status(), 200);
    assert_eq!(original.bytes().await.unwrap().to_vec(), scan);

    // The old version: records read it as entered in error; a clinician gets 404.
    let old: Value = app
        .get(&app.records, &format!("/api/v1/documents/{wrong}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(old["status"], "entered-in-error", "{old}");
    assert_eq!(old["superseded_by"], new.as_str());
    assert_eq!(old["correction_reason"], "scanned into the wrong chart");
    let text = app
        .get(
            &app.records,
            &format!("/api/v1/documents/{wrong}/pages/1/text"),
        )
        .await;
    assert_eq!(text.status(), 200);
    assert!(text.text().await.unwrap().contains("pelargonium"));
    let clinician_old = app
        .get(&app.clinician, &format!("/api/v1/documents/{wrong}"))
        .await;
    assert_eq!(clinician_old.status(), 404);
    let clinician_new = app
        .get(&app.clinician, &format!("/api/v1/documents/{new}"))
        .await;
    assert_eq!(clinician_new.status(), 200);
    let clinician_search = app
        .search(&app.clinician, json!({ "query": "pelargonium" }))
        .await;
    assert_eq!(clinician_search["total"], 1);
    assert_eq!(clinician_search["hits"][0]["document_id"], new.as_str());

    // A version entered in error is not corrected again; nor is a change of nothing made.
    let again = app
        .post_json(
            &app.records,
            &path,
            &json!({ "mrn": "CR-2", "reason": "again" }),
        )
        .await;
    assert_eq!(again.status(), 409);
    let nothing = app
        .post_json(
            &app.records,
            &format!("/api/v1/documents/{new}/corrections"),
            &json!({ "mrn": "CR-2", "reason": "no change" }),
        )
        .await;
    assert_eq!(nothing.status(), 400);
    // Only records corrects.
    let clinician_try = app
        .post_json(
            &app.clinician,
            &format!("/api/v1/documents/{new}/corrections"),
            &json!({ "mrn": "CR-1", "reason": "x" }),
        )
        .await;
    assert_eq!(clinician_try.status(), 403);

    // Both steps are in the audit: the correction (about the new patient, naming the old
    // one) and records' read of the version entered in error.
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let correction = rows
        .iter()
        .find(|r| r.action == "correct-document" && r.outcome == "ok")
        .expect("the correction is audited");
    assert_eq!(correction.document_id.as_deref(), Some(wrong.as_str()));
    assert!(correction.detail.as_deref().unwrap().contains("patient"));
    assert!(rows.iter().any(|r| r.action == "read"
        && r.outcome == "ok"
        && r.document_id.as_deref() == Some(wrong.as_str())
        && r.seq > correction.seq));

    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
}

/// Deleting a corrected document destroys every copy of it: the version it corrects (entered
/// in error, the same pages) goes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shredding_a_corrected_document_destroys_the_version_it_corrects() {
    let app = spawn_app().await;
    let wrong = app
        .upload(
            text_pdf_of(&[&["Cardiology clinic letter", "Marker word heliotrope"]]),
            &metadata("CS-7", "Hana Copies", "clinic-letter"),
        )
        .await;
    app.wait_indexed(&wrong).await;
    let response = app
        .post_json(
            &app.records,
            &format!("/api/v1/documents/{wrong}/corrections"),
            &json!({ "document_type": "referral", "reason": "filed as the wrong type" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let corrected: Value = response.json().await.unwrap();
    let new = corrected["id"].as_str().unwrap().to_string();
    app.wait_indexed(&new).await;
    let blobs_of = |id: &str| {
        files_under(&app.config().blobs_dir())
            .iter()
            .filter(|path| path.to_string_lossy().contains(id))
            .count()
    };
    assert!(blobs_of(&wrong) > 0 && blobs_of(&new) > 0);

    let deleted = app
        .delete(
            &app.records,
            &format!("/api/v1/documents/{new}"),
            &json!({ "reason": "patient request, duplicate record" }),
        )
        .await;
    assert_eq!(deleted.status(), 200, "{}", deleted.text().await.unwrap());
    for id in [&wrong, &new] {
        let doc: Value = app
            .get(&app.records, &format!("/api/v1/documents/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(doc["status"], "deleted", "{doc}");
        assert_eq!(blobs_of(id), 0, "no blob of {id} is left");
    }
}
