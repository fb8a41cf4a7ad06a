//! Batch uploads through the whole service: a duplex-scanned G4 TIFF of several documents,
//! each behind a barcode cover sheet, is split into documents by itself; what it cannot file
//! goes to the QA queue, where a person files or rejects it. The batch file is destroyed once
//! every page has a home.

use chartvault::store::prelude::*;
use chartvault_ocr::{render_cover_page, CoverSheetFormat, Symbology};
use image::GrayImage;
use serde_json::{json, Value};

use crate::helpers::*;

/// A duplex scanner's blank back, the width of the generated text pages.
fn blank_back(seed: u64) -> GrayImage {
    crate::helpers::blank_back(2100, 1500, seed)
}

fn text_page(title: &str, marker: &str, seed: u64) -> GrayImage {
    scanned_page(
        &[
            title,
            "The patient was seen in clinic and examined today",
            &format!("Marker word for this page: {marker}"),
        ],
        0.0,
        seed,
    )
}

fn cover(symbology: Symbology, text: &str) -> GrayImage {
    render_cover_page(symbology, text)
}

/// Creates the patient (through an ordinary upload) so a cover sheet's MRN is known.
async fn admit(app: &TestApp, mrn: &str, name: &str, seed: u64) {
    let id = app
        .upload(
            png_of(&text_page("Admission form", "admission", seed)),
            &metadata(mrn, name, "admission"),
        )
        .await;
    app.wait_indexed(&id).await;
}

/// The one document search hit for `word` as records, under `mrn`: (document id, page).
async fn only_hit(app: &TestApp, word: &str, mrn: &str) -> (String, u64) {
    let found = app
        .search(&app.records, json!({ "query": word, "mrn": mrn }))
        .await;
    assert_eq!(found["total"], 1, "{word} under its patient: {found}");
    let hit = &found["hits"][0];
    (
        hit["document_id"].as_str().unwrap().to_string(),
        hit["page"].as_u64().unwrap(),
    )
}

fn blanks(doc: &Value) -> Vec<bool> {
    doc["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["blank"].as_bool().unwrap())
        .collect()
}

fn blob_exists_for(app: &TestApp, id: &str) -> bool {
    files_under(&app.config().blobs_dir())
        .iter()
        .any(|path| path.to_string_lossy().contains(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_page_g4_batch_with_three_cover_sheets_becomes_three_documents() {
    let app = spawn_app().await;
    admit(&app, "BA-1001", "Amos Batchelor", 1).await;
    admit(&app, "BA-1002", "Beatrix Batchelor", 2).await;
    admit(&app, "BA-1003", "Cyril Batchelor", 3).await;
    let format = CoverSheetFormat::default();
    let a = format.encode("BA-1001", "progress-note", None, Some("1998-03-02"));
    let b = format.encode("BA-1002", "discharge-summary", Some("general"), None);
    let c = format.encode("BA-1003", "lab-report", None, None);
    let pages = vec![
        cover(Symbology::DataMatrix, &a), // 1
        blank_back(11),                   // 2: the cover's back
        text_page("Progress note", "heron", 12),
        blank_back(13),
        text_page("Progress note continued", "badger", 14),
        blank_back(15),           // 6
        cover(Symbology::Qr, &b), // 7
        blank_back(16),
        text_page("Discharge summary", "walrus", 17), // 9
        text_page("Discharge medication list", "otter", 18),
        blank_back(19),
        text_page("Discharge follow up plan", "ferret", 20),
        blank_back(21),                // 13
        cover(Symbology::Code128, &c), // 14
        blank_back(22),
        text_page("Laboratory report", "quince", 23), // 16
        blank_back(24),
        text_page("Laboratory report haematology", "lychee", 25),
        blank_back(26),
        text_page("Continue metformin twice daily", "damson", 27), // 20
    ];
    assert_eq!(pages.len(), 20);
    let batch_file = g4_tiff_of(&pages);

    let (status, accepted) =
        json_of(app.upload_batch_as(&app.records, batch_file.clone()).await).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["pages"], 20);
    let batch_id = accepted["id"].as_str().unwrap().to_string();
    // The same file again is the same batch.
    let (status, again) = json_of(app.upload_batch_as(&app.records, batch_file).await).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], batch_id.as_str());

    let batch = app.wait_split(&batch_id).await;
    let segments = batch["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3, "{batch}");
    let ranges: Vec<(u64, u64, u64, &str)> = segments
        .iter()
        .map(|s| {
            (
                s["first_page"].as_u64().unwrap(),
                s["last_page"].as_u64().unwrap(),
                s["cover_page"].as_u64().unwrap(),
                s["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            (3, 6, 1, "filed"),
            (9, 13, 7, "filed"),
            (16, 20, 14, "filed")
        ],
        "{batch}"
    );

    let mut docs = Vec::new();
    for segment in segments {
        let id = segment["document_id"].as_str().unwrap().to_string();
        docs.push(app.wait_indexed(&id).await);
    }
    let (doc_a, doc_b, doc_c) = (&docs[0], &docs[1], &docs[2]);
    assert_eq!(doc_a["page_count"], 4);
    assert_eq!(doc_a["document_type"], "progress-note");
    assert_eq!(doc_a["service_date"], "1998-03-02");
    assert_eq!(blanks(doc_a), [false, true, false, true]);
    assert_eq!(doc_b["page_count"], 5);
    assert_eq!(doc_b["document_type"], "discharge-summary");
    assert_eq!(blanks(doc_b), [false, false, true, false, true]);
    assert_eq!(doc_c["page_count"], 5);
    assert_eq!(doc_c["document_type"], "lab-report");
    assert_eq!(blanks(doc_c), [false, true, false, true, false]);

    // Each page is found under its patient, on its page of its document.
    let id = |doc: &Value| doc["id"].as_str().unwrap().to_string();
    assert_eq!(only_hit(&app, "heron", "BA-1001").await, (id(doc_a), 1));
    assert_eq!(only_hit(&app, "badger", "BA-1001").await, (id(doc_a), 3));
    assert_eq!(only_hit(&app, "walrus", "BA-1002").await, (id(doc_b), 1));
    assert_eq!(only_hit(&app, "ferret", "BA-1002").await, (id(doc_b), 4));
    assert_eq!(only_hit(&app, "quince", "BA-1003").await, (id(doc_c), 1));
    assert_eq!(only_hit(&app, "damson", "BA-1003").await, (id(doc_c), 5));
    // ...and under no other patient.
    let elsewhere = app
        .search(&app.records, json!({ "query": "walrus", "mrn": "BA-1001" }))
        .await;
    assert_eq!(elsewhere["total"], 0);

    // A document's original is its own pages of the batch: a TIFF of that many pages.
    let original = app
        .get(
            &app.records,
            &format!("/api/v1/documents/{}/original", id(doc_b)),
        )
        .await;
    assert_eq!(original.status(), 200);
    let bytes = original.bytes().await.unwrap().to_vec();
    let checked = chartvault_ocr::preflight(
        std::io::Cursor::new(bytes),
        &chartvault_ocr::Limits::default(),
    )
    .unwrap();
    assert_eq!(checked.format, chartvault_ocr::ScanFormat::Tiff);
    assert_eq!(checked.pages.len(), 5);

    // Every page has its home: the batch file (several patients' pages) is destroyed.
    let batch: Value = app
        .get(&app.records, &format!("/api/v1/batches/{batch_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(batch["original_destroyed_at"].is_string(), "{batch}");
    assert!(!blob_exists_for(&app, &batch_id), "batch blobs left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_cannot_be_filed_wait_in_qa_until_a_person_files_or_rejects_them() {
    let app = spawn_app().await;
    admit(&app, "BA-2001", "Dora Quayle", 4).await;
    let pages = vec![
        text_page("Loose page before any cover", "lantern", 31), // 1: before the first cover
        // 2: a cover code with the prefix but no TYPE field: unreadable.
        cover(Symbology::Pdf417, "CV|MRN=BA-2001"),
        text_page("Referral letter", "osprey", 32), // 3
        // 4: a readable cover of an MRN no patient has.
        cover(Symbology::Code39, "CV|MRN=BA-2999|TYPE=letter"),
        text_page("Letter from the family doctor", "tamarind", 33), // 5
    ];
    let (status, accepted) =
        json_of(app.upload_batch_as(&app.records, g4_tiff_of(&pages)).await).await;
    assert_eq!(status, 202, "{accepted}");
    let batch_id = accepted["id"].as_str().unwrap().to_string();
    let batch = app.wait_split(&batch_id).await;
    let statuses: Vec<&str> = batch["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["qa", "qa", "qa"], "{batch}");

    // The archive verifies clean while the batch holds the pages: its file and page
    // artifacts are accounted for.
    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
    // What the cover sheet says (an MRN) and the pages' words are nowhere in plaintext.
    for path in files_under(&app.data_dir) {
        let Some(bytes) = read_live(&path) else {
            continue;
        };
        for secret in ["BA-2999", "BA-2001", "osprey", "tamarind", "lantern"] {
            assert!(
                !contains_in_any_encoding(&bytes, secret),
                "{secret} in plaintext in {}",
                path.display()
            );
        }
    }

    // Nothing of it is searchable yet, not even for records.
    for word in ["lantern", "osprey", "tamarind"] {
        let found = app.search(&app.records, json!({ "query": word })).await;
        assert_eq!(found["total"], 0, "{word}: {found}");
    }

    // The queue says what is wrong with each range.
    let (status, queue) = json_of(app.get(&app.records, "/api/v1/qa").await).await;
    assert_eq!(status, 200);
    let ranges = queue["page_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 3, "{queue}");
    let reason = |i: usize| ranges[i]["qa_reason"].as_str().unwrap().to_string();
    assert!(
        reason(0).contains("before the first cover sheet"),
        "{}",
        reason(0)
    );
    assert!(reason(1).contains("could not be read"), "{}", reason(1));
    assert!(reason(1).contains("TYPE"), "{}", reason(1));
    assert!(
        reason(2).contains("not that of a known patient"),
        "{}",
        reason(2)
    );
    assert_eq!(ranges[2]["cover"]["mrn"], "BA-2999");
    let range_id = |i: usize| ranges[i]["id"].as_str().unwrap().to_string();

    // The person resolving it sees the pages; a clinician does not.
    let image = app
        .get(
            &app.records,
            &format!("/api/v1/qa/{}/pages/1/image", range_id(1)),
        )
        .await;
    assert_eq!(image.status(), 200);
    assert!(image.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let image = app
        .get(
            &app.clinician,
            &format!("/api/v1/qa/{}/pages/1/image", range_id(1)),
        )
        .await;
    assert_eq!(image.status(), 403);

    // The unreadable cover's pages: filed under the patient the person names.
    let (status, filed) = json_of(
        app.post_json(
            &app.records,
            &format!("/api/v1/qa/{}", range_id(1)),
            &json!({ "action": "assign", "mrn": "BA-2001", "document_type": "referral" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{filed}");
    let referral = app.wait_indexed(filed["id"].as_str().unwrap()).await;
    assert_eq!(referral["document_type"], "referral");
    assert_eq!(referral["page_count"], 1);
    assert_eq!(
        only_hit(&app, "osprey", "BA-2001").await,
        (filed["id"].as_str().unwrap().to_string(), 1)
    );

    // The unknown MRN: accepting needs the patient to exist; assigning with a name creates it.
    let unknown = format!("/api/v1/qa/{}", range_id(2));
    let (status, refused) = json_of(
        app.post_json(&app.records, &unknown, &json!({ "action": "accept" }))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let (status, filed) = json_of(
        app.post_json(
            &app.records,
            &unknown,
            &json!({ "action": "assign", "mrn": "BA-2999", "name": "Edgar Quayle" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{filed}");
    let letter = app.wait_indexed(filed["id"].as_str().unwrap()).await;
    assert_eq!(
        letter["document_type"], "letter",
        "the type comes from the cover sheet"
    );
    only_hit(&app, "tamarind", "BA-2999").await;

    // The loose page is rejected: destroyed, never searchable.
    let (status, rejected) = json_of(
        app.post_json(
            &app.records,
            &format!("/api/v1/qa/{}", range_id(0)),
            &json!({ "action": "reject", "reason": "scanned by mistake" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["status"], "deleted");
    // A second resolution is refused.
    let again = app
        .post_json(
            &app.records,
            &format!("/api/v1/qa/{}", range_id(0)),
            &json!({ "action": "reject", "reason": "again" }),
        )
        .await;
    assert_eq!(again.status(), 409);

    let (_, queue) = json_of(app.get(&app.records, "/api/v1/qa").await).await;
    assert_eq!(queue["page_ranges"].as_array().unwrap().len(), 0, "{queue}");
    let found = app
        .search(&app.records, json!({ "query": "lantern" }))
        .await;
    assert_eq!(found["total"], 0);
    let batch: Value = app
        .get(&app.records, &format!("/api/v1/batches/{batch_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(batch["original_destroyed_at"].is_string(), "{batch}");
    assert!(!blob_exists_for(&app, &batch_id), "batch blobs left behind");
    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());

    // Each resolution is in the audit, before the act.
    let resolutions: Vec<String> = app
        .state
        .db
        .audit_rows(0)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == "review-qa")
        .filter_map(|r| r.detail.clone())
        .filter(|d| d.contains("resolution"))
        .collect();
    assert_eq!(resolutions.len(), 3, "{resolutions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_splits_and_merges_page_ranges_before_filing_them() {
    let app = spawn_app().await;
    admit(&app, "BA-3001", "Flora Splitter", 5).await;
    // No cover sheet at all: the whole batch is one page range in the queue.
    let pages = vec![
        text_page("Telephone message", "kestrel", 51),
        text_page("Operation note", "pangolin", 52),
        text_page("Operation note continued", "wombat", 53),
        text_page("Operation note signature", "narwhal", 54),
    ];
    let (status, accepted) =
        json_of(app.upload_batch_as(&app.records, g4_tiff_of(&pages)).await).await;
    assert_eq!(status, 202, "{accepted}");
    let batch_id = accepted["id"].as_str().unwrap().to_string();
    app.wait_split(&batch_id).await;
    let ranges = qa_ranges(&app).await;
    assert_eq!(ranges.len(), 1);
    assert_eq!((ranges[0].1, ranges[0].2), (1, 4));
    let resolve = |id: String, body: Value| {
        let app = &app;
        async move {
            json_of(
                app.post_json(&app.records, &format!("/api/v1/qa/{id}"), &body)
                    .await,
            )
            .await
        }
    };

    // Out-of-range cuts are refused; a cut before page 3 makes two ranges.
    let (status, _) = resolve(ranges[0].0.clone(), json!({ "action": "split", "at": [5] })).await;
    assert_eq!(status, 400);
    let (status, split) =
        resolve(ranges[0].0.clone(), json!({ "action": "split", "at": [3] })).await;
    assert_eq!(status, 200, "{split}");
    assert_eq!(split["status"], "split");
    let ranges = qa_ranges(&app).await;
    let shape: Vec<(u64, u64)> = ranges.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(shape, [(1, 2), (3, 4)]);
    // The old range is gone from the queue: resolving it again is a conflict.
    let (status, _) = resolve(
        split["id"].as_str().unwrap().to_string(),
        json!({ "action": "split", "at": [2] }),
    )
    .await;
    assert_eq!(status, 409);

    // Merged back, then cut after the telephone message instead.
    let (status, merged) = resolve(
        ranges[1].0.clone(),
        json!({ "action": "merge", "with": ranges[0].0 }),
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    let ranges = qa_ranges(&app).await;
    let shape: Vec<(u64, u64)> = ranges.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(shape, [(1, 4)]);
    let (status, _) = resolve(ranges[0].0.clone(), json!({ "action": "split", "at": [2] })).await;
    assert_eq!(status, 200);
    let ranges = qa_ranges(&app).await;
    let shape: Vec<(u64, u64)> = ranges.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(shape, [(1, 1), (2, 4)]);

    // The operation note is filed (its type must be given: it has no cover sheet).
    let (status, refused) = resolve(
        ranges[1].0.clone(),
        json!({ "action": "assign", "mrn": "BA-3001" }),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let (status, filed) = resolve(
        ranges[1].0.clone(),
        json!({ "action": "assign", "mrn": "BA-3001", "document_type": "operation-note" }),
    )
    .await;
    assert_eq!(status, 200, "{filed}");
    let note_id = filed["id"].as_str().unwrap().to_string();
    let note = app.wait_indexed(&note_id).await;
    assert_eq!(note["page_count"], 3);
    assert_eq!(only_hit(&app, "wombat", "BA-3001").await, (note_id, 2));
    let (status, _) = resolve(
        ranges[0].0.clone(),
        json!({ "action": "reject", "reason": "a telephone message, not part of the chart" }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(qa_ranges(&app).await.is_empty());
    let found = app
        .search(&app.records, json!({ "query": "kestrel" }))
        .await;
    assert_eq!(found["total"], 0);
    assert!(!blob_exists_for(&app, &batch_id), "batch blobs left behind");
}

/// The page ranges in the QA queue: (id, first batch page, last batch page).
async fn qa_ranges(app: &TestApp) -> Vec<(String, u64, u64)> {
    let (_, queue) = json_of(app.get(&app.records, "/api/v1/qa").await).await;
    queue["page_ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["first_page"].as_u64().unwrap(),
                r["last_page"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keep_cover_sheet_the_cover_sheet_is_page_0_and_the_pages_still_start_at_1() {
    let app = spawn_app_with(|config| config.batches.keep_cover_sheet = true).await;
    admit(&app, "BA-4001", "Gwen Keeper", 6).await;
    let code = CoverSheetFormat::default().encode("BA-4001", "consent", None, None);
    let pages = vec![
        cover(Symbology::Qr, &code),
        blank_back(71),
        text_page("Consent to treatment", "marmoset", 72),
        text_page("Consent witnessed", "tapir", 73),
    ];
    let (status, accepted) =
        json_of(app.upload_batch_as(&app.records, g4_tiff_of(&pages)).await).await;
    assert_eq!(status, 202, "{accepted}");
    let batch = app.wait_split(accepted["id"].as_str().unwrap()).await;
    let segment = &batch["segments"][0];
    assert_eq!(segment["status"], "filed", "{batch}");
    let id = segment["document_id"].as_str().unwrap().to_string();
    let doc = app.wait_indexed(&id).await;
    assert_eq!(doc["page_count"], 2);
    let numbers: Vec<u64> = doc["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["page"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(only_hit(&app, "tapir", "BA-4001").await, (id.clone(), 2));
    let cover_image = app
        .get(
            &app.records,
            &format!("/api/v1/documents/{id}/pages/0/image"),
        )
        .await;
    assert_eq!(cover_image.status(), 200);
    let original = app
        .get(&app.records, &format!("/api/v1/documents/{id}/original"))
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let checked = chartvault_ocr::preflight(
        std::io::Cursor::new(original),
        &chartvault_ocr::Limits::default(),
    )
    .unwrap();
    assert_eq!(
        checked.pages.len(),
        3,
        "the cover sheet, then pages 1 and 2"
    );
    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
}

/// Shredding a document filed from a batch destroys the batch file too, which still holds
/// its pages while another range waits in QA; that range is then filed from its own stored
/// pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shredding_a_document_of_a_batch_destroys_the_batch_file_that_still_held_it() {
    let app = spawn_app().await;
    admit(&app, "BS-1", "Basil Shred", 61).await;
    let format = CoverSheetFormat::default();
    let known = format.encode("BS-1", "letter", None, None);
    let unknown = format.encode("BS-404", "letter", None, None);
    let pages = vec![
        cover(Symbology::DataMatrix, &known),
        text_page("Clinic letter", "tamarind", 62),
        cover(Symbology::DataMatrix, &unknown),
        text_page("Clinic letter for someone else", "kumquat", 63),
    ];
    let (status, accepted) =
        json_of(app.upload_batch_as(&app.records, g4_tiff_of(&pages)).await).await;
    assert_eq!(status, 202);
    let batch_id = accepted["id"].as_str().unwrap().to_string();
    let batch = app.wait_split(&batch_id).await;
    let segments = batch["segments"].as_array().unwrap();
    assert_eq!(segments[0]["status"], "filed", "{batch}");
    assert_eq!(segments[1]["status"], "qa", "{batch}");
    assert!(
        batch["original_destroyed_at"].is_null(),
        "a range still waits"
    );
    assert!(blob_exists_for(&app, &batch_id));
    let filed = segments[0]["document_id"].as_str().unwrap().to_string();
    app.wait_indexed(&filed).await;

    let deleted = app
        .delete(
            &app.records,
            &format!("/api/v1/documents/{filed}"),
            &json!({ "reason": "scanned for the wrong hospital" }),
        )
        .await;
    assert_eq!(deleted.status(), 200);
    let (_, batch) = json_of(
        app.get(&app.records, &format!("/api/v1/batches/{batch_id}"))
            .await,
    )
    .await;
    assert!(!batch["original_destroyed_at"].is_null(), "{batch}");
    let original = files_under(&app.config().blobs_dir()).into_iter().any(|p| {
        let path = p.to_string_lossy();
        path.contains("originals/") && path.contains(&batch_id)
    });
    assert!(!original, "the batch file is gone");

    // The range still waiting is filed from its own pages.
    let range = segments[1]["id"].as_str().unwrap().to_string();
    let (status, resolved) = json_of(
        app.post_json(
            &app.records,
            &format!("/api/v1/qa/{range}"),
            &json!({ "action": "assign", "mrn": "BS-2", "name": "Bella Other", "document_type": "letter" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{resolved}");
    let doc = app.wait_indexed(resolved["id"].as_str().unwrap()).await;
    assert_eq!(doc["page_count"], 1, "{doc}");
    let hits = app
        .search(&app.records, json!({ "query": "kumquat", "mrn": "BS-2" }))
        .await;
    assert_eq!(hits["total"], 1, "{hits}");
}
