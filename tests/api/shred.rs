//! Crypto-shredding: `DELETE /api/v1/documents/{id}` by records, with a reason. Afterwards
//! nothing of the document can be found or read, its keys and blobs are gone, other
//! documents are untouched, and the tombstone remains.

use chartvault::store::prelude::*;
use serde_json::json;

use crate::helpers::*;

async fn keyring_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM keyring")
        .fetch_one(&app.sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shredded_document_is_gone_and_only_its_tombstone_remains() {
    let app = spawn_app().await;
    let doomed_pages = [
        scanned_page(&["Misfiled referral letter", "Marker wolfsbane"], 0.2, 21),
        scanned_page(
            &["Second page of the misfiled letter", "Marker larkspur"],
            -0.2,
            22,
        ),
    ];
    let doomed_original = tiff_of(&doomed_pages);
    let doomed = app
        .upload(
            doomed_original.clone(),
            &metadata("SH-1", "Iris Vantongeren", "letter"),
        )
        .await;
    let kept = app
        .upload(
            png_of(&scanned_page(
                &["Operative note", "Marker hollyhock"],
                0.0,
                23,
            )),
            &metadata("SH-1", "Iris Vantongeren", "operative-note"),
        )
        .await;
    app.wait_indexed(&doomed).await;
    app.wait_indexed(&kept).await;
    let found = app
        .search(&app.clinician, json!({ "query": "wolfsbane" }))
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let blobs_before = files_under(&app.data_dir.join("blobs"));
    assert!(blobs_before
        .iter()
        .any(|p| p.to_string_lossy().contains(&doomed)));
    let keys_before = keyring_rows(&app).await;
    let path = format!("/api/v1/documents/{doomed}");

    // Who may, and with what.
    for token in [&app.clinician, &app.legal, &app.auditor, &app.admin] {
        let response = app
            .delete(token, &path, &json!({ "reason": "misfiled" }))
            .await;
        assert_eq!(response.status(), 403);
    }
    let response = app.delete(&app.records, &path, &json!({})).await;
    assert_eq!(response.status(), 400);
    // Errors are RFC 9457 problems that keep the first API's fields.
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["code"], "invalid_request");
    assert_eq!(problem["detail"], problem["message"]);
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with(":invalid_request"));
    let anonymous = app.http.delete(app.url(&path)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let response = app
        .delete(&app.records, &path, &json!({ "reason": "  " }))
        .await;
    assert_eq!(response.status(), 400);
    let response = app
        .delete(
            &app.records,
            &format!("/api/v1/documents/{}", uuid::Uuid::new_v4()),
            &json!({ "reason": "misfiled" }),
        )
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        app.search(&app.clinician, json!({ "query": "wolfsbane" }))
            .await["total"],
        1,
        "refused requests destroyed nothing"
    );

    // Through the POST form (a proxy may strip a DELETE's body).
    let response = app
        .post_json(
            &app.records,
            &format!("{path}/delete"),
            &json!({ "reason": "misfiled: belongs to another patient" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let tombstone: serde_json::Value = response.json().await.unwrap();
    assert_eq!(tombstone["status"], "deleted");
    assert_eq!(tombstone["id"], doomed.as_str());
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&doomed_original));
    assert_eq!(tombstone["sha256"], sha);

    // Nothing of it is found, for any role, by any of its words.
    for token in [&app.clinician, &app.records, &app.legal] {
        for word in ["wolfsbane", "larkspur", "misfiled"] {
            let hits = app.search(token, json!({ "query": word })).await;
            assert_eq!(hits["total"], 0, "{word}: {hits}");
        }
    }
    // ... and its terms left the index files: no segment's term dictionary holds them.
    for word in ["wolfsbane", "larkspur"] {
        assert!(
            !app.state
                .index()
                .unwrap()
                .term_in_any_segment(word)
                .unwrap(),
            "{word} is still in a segment"
        );
    }
    assert!(app
        .state
        .index()
        .unwrap()
        .term_in_any_segment("hollyhock")
        .unwrap());

    // Its artifacts are gone for good; its tombstone remains.
    for artifact in ["original", "pages/1/image", "pages/1/text", "pages/2/words"] {
        let response = app.get(&app.clinician, &format!("{path}/{artifact}")).await;
        assert_eq!(response.status(), 410, "{artifact}");
    }
    let meta: serde_json::Value = app.get(&app.records, &path).await.json().await.unwrap();
    assert_eq!(meta["status"], "deleted");
    assert_eq!(meta["sha256"], sha);
    assert_eq!(
        meta["deletion_reason"],
        "misfiled: belongs to another patient"
    );
    assert!(meta["deleted_at"].is_string() && meta["deleted_by"].is_string());
    assert_eq!(meta["pages"].as_array().unwrap().len(), 0);
    let again = app
        .delete(&app.records, &path, &json!({ "reason": "twice" }))
        .await;
    assert_eq!(again.status(), 410);

    // Its blobs and keyring rows are gone (an original and 3 artifacts per page).
    let blobs_after = files_under(&app.data_dir.join("blobs"));
    assert!(!blobs_after
        .iter()
        .any(|p| p.to_string_lossy().contains(&doomed)));
    assert_eq!(blobs_before.len() - blobs_after.len(), 1 + 3 * 2);
    assert_eq!(keys_before - keyring_rows(&app).await, 1 + 3 * 2);

    // The other document of the same patient is untouched.
    let hits = app
        .search(&app.clinician, json!({ "query": "hollyhock" }))
        .await;
    assert_eq!(hits["total"], 1);
    let original = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{kept}/original"),
        )
        .await;
    assert_eq!(original.status(), 200);

    // The archive is consistent afterwards: no orphan, nothing missing, index = rows.
    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{}", report.summary());
    assert_eq!(report.checked.deleted_documents, 1, "{}", report.summary());

    // The destruction is in the audit log, with ids and no reason text.
    let audit = app.state.db.audit_rows(0).await.unwrap();
    let row = audit
        .iter()
        .find(|r| r.action == "delete" && r.outcome == "ok")
        .expect("an audit row for the deletion");
    assert_eq!(row.document_id.as_deref(), Some(doomed.as_str()));
    assert!(!row.detail.as_deref().unwrap_or("").contains("misfiled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_still_being_processed_cannot_be_deleted() {
    let app = spawn_app().await;
    let pages: Vec<_> = (0..4)
        .map(|i| {
            scanned_page(
                &["A long chart still in OCR", "Marker foxglove"],
                0.0,
                30 + i,
            )
        })
        .collect();
    let id = app
        .upload(tiff_of(&pages), &metadata("SH-2", "Rowan Example", "chart"))
        .await;
    let response = app
        .delete(
            &app.records,
            &format!("/api/v1/documents/{id}"),
            &json!({ "reason": "too early" }),
        )
        .await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "conflict");
    // Nothing was lost: it finishes and is found.
    app.wait_indexed(&id).await;
    let hits = app
        .search(&app.clinician, json!({ "query": "foxglove" }))
        .await;
    assert_eq!(hits["total"], 4);
}

/// Destroyed keyring rows must not survive in the WAL: its truncation is retried while a
/// reader holds it back (SQLite reports that as a busy checkpoint, not an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_truncated_once_no_reader_holds_it_back() {
    let app = spawn_app().await;
    let db = &app.state.db;
    assert!(db.truncate_wal().await.unwrap(), "nothing holds the WAL");
    // A reader inside a transaction keeps an older snapshot: a write after it cannot be
    // checkpointed away under it.
    let mut reader = app.sql.begin().await.unwrap();
    let _: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM documents")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    // (Any write that changes a page; SQLite writes nothing for an update to equal values.)
    sqlx::query("CREATE TABLE wal_probe (x)")
        .execute(&app.sql)
        .await
        .unwrap();
    assert!(
        !db.truncate_wal().await.unwrap(),
        "a reader holds the WAL back"
    );
    reader.rollback().await.unwrap();
    assert!(db.truncate_wal().await.unwrap());
    let wal = app.config().db_path().with_extension("db-wal");
    assert_eq!(std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0), 0);
}
