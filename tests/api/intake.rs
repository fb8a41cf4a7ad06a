//! Scanner hot folders through the whole service: a batch written slowly, in pieces, is
//! taken once and whole and filed by its cover sheets; the same scan dropped again (what a
//! restart between the archive's commit and the file's deletion leaves) is stored no second
//! time; a broken file and a document without its metadata go to quarantine with a reason;
//! a document with its sidecar is filed; nothing is left in plaintext.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chartvault::config::{IntakeFolder, IntakeKind};
use chartvault::store::prelude::*;
use chartvault_ocr::{render_cover_page, CoverSheetFormat, Symbology};
use image::GrayImage;
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::*;

fn text_page(title: &str, marker: &str, seed: u64) -> GrayImage {
    scanned_page(
        &[title, &format!("Marker word for this page: {marker}")],
        0.0,
        seed,
    )
}

/// The receipts in `done/`, parsed.
fn receipts(folder: &Path) -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder.join("done"))
        .map(|dir| dir.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Waits until `file` is gone from the folder and there are `count` receipts.
async fn wait_taken(folder: &Path, file: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let receipts = receipts(folder);
        if !folder.join(file).exists() && receipts.len() == count {
            return receipts;
        }
        assert!(Instant::now() < deadline, "{file} not taken: {receipts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_quarantined(folder: &Path, file: &str) -> String {
    let reason = folder.join("quarantine").join(format!("{file}.reason.txt"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reason.exists() {
        assert!(Instant::now() < deadline, "{file} not quarantined");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!folder.join(file).exists());
    assert!(folder.join("quarantine").join(file).exists());
    std::fs::read_to_string(reason).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_folders_take_each_scan_once_whole_and_quarantine_what_they_cannot() {
    let mut folders = (PathBuf::new(), PathBuf::new());
    let app = spawn_app_with(|config| {
        let batches = config.data_dir.with_file_name("scans-ward-3");
        let documents = config.data_dir.with_file_name("scans-front-desk");
        for dir in [&batches, &documents] {
            std::fs::create_dir_all(dir).unwrap();
        }
        config.intake.poll_interval_ms = 100;
        config.intake.settle_ms = 1500;
        config.intake.sidecar_wait_secs = 3;
        config.intake.folders = vec![
            IntakeFolder {
                path: batches.clone(),
                kind: IntakeKind::Batches,
                user: "rec".into(),
            },
            IntakeFolder {
                path: documents.clone(),
                kind: IntakeKind::Documents,
                user: "rec".into(),
            },
        ];
        folders = (batches, documents);
    })
    .await;
    let (batches, documents) = folders;
    // The patients are known (ordinary uploads), so their cover sheets file without QA.
    for (mrn, name, seed) in [("HF-1", "Hana Folder", 1), ("HF-2", "Hugo Folder", 2)] {
        let id = app
            .upload(
                png_of(&text_page("Admission", "admission", seed)),
                &metadata(mrn, name, "admission"),
            )
            .await;
        app.wait_indexed(&id).await;
    }

    let rec_id: String = sqlx::query_scalar("SELECT id FROM users WHERE name = 'rec'")
        .fetch_one(&app.sql)
        .await
        .unwrap();
    let ingests_by_rec = || async {
        let rows = app.state.db.audit_rows(0).await.unwrap();
        rows.iter()
            .filter(|r| r.user_id.as_deref() == Some(rec_id.as_str()) && r.action == "ingest")
            .count()
    };
    let before = ingests_by_rec().await;

    // 1. A batch written in three pieces, slower than a poll but faster than the settle time.
    let format = CoverSheetFormat::default();
    let pages = vec![
        render_cover_page(
            Symbology::DataMatrix,
            &format.encode("HF-1", "progress-note", None, None),
        ),
        text_page("Progress note", "heron", 11),
        render_cover_page(
            Symbology::Code128,
            &format.encode("HF-2", "lab-report", None, None),
        ),
        text_page("Laboratory report", "walrus", 12),
        text_page("Laboratory report continued", "otter", 13),
    ];
    let batch_file = g4_tiff_of(&pages);
    let sha256 = hex::encode(sha2::Sha256::digest(&batch_file));
    {
        let mut file = std::fs::File::create(batches.join("ward3-0001.tif")).unwrap();
        for piece in batch_file.chunks(batch_file.len() / 3 + 1) {
            file.write_all(piece).unwrap();
            file.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(receipts(&batches).is_empty(), "taken before it was whole");
        }
    }
    let taken = wait_taken(&batches, "ward3-0001.tif", 1).await;
    let receipt = &taken[0];
    assert_eq!(receipt["kind"], "batches");
    assert_eq!(
        receipt["sha256"],
        sha256.as_str(),
        "the whole file was taken"
    );
    assert_eq!(receipt["pages"], 5);
    assert_eq!(receipt["duplicate"], false);
    assert!(
        !serde_json::to_string(receipt).unwrap().contains("ward3"),
        "receipts do not carry file names"
    );
    let batch_id = receipt["id"].as_str().unwrap().to_string();
    let batch = app.wait_split(&batch_id).await;
    let filed: Vec<&str> = batch["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(filed, ["filed", "filed"], "{batch}");
    for segment in batch["segments"].as_array().unwrap() {
        app.wait_indexed(segment["document_id"].as_str().unwrap())
            .await;
    }
    for (word, mrn) in [("heron", "HF-1"), ("walrus", "HF-2"), ("otter", "HF-2")] {
        let found = app
            .search(&app.records, json!({ "query": word, "mrn": mrn }))
            .await;
        assert_eq!(found["total"], 1, "{word} under {mrn}: {found}");
    }
    // Taken as the folder's user, audited as theirs.
    assert!(
        ingests_by_rec().await > before,
        "the intake is audited as the folder's user"
    );

    // 2. The same scan again: recognised by its hash, stored no second time, removed.
    std::fs::write(batches.join("ward3-0001-again.tif"), &batch_file).unwrap();
    let taken = wait_taken(&batches, "ward3-0001-again.tif", 2).await;
    let again = taken
        .iter()
        .find(|r| r["duplicate"] == true)
        .expect("a duplicate receipt");
    assert_eq!(again["id"], batch_id.as_str());
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM batches")
        .fetch_one(&app.sql)
        .await
        .unwrap();
    assert_eq!(stored, 1);

    // 3. Not a scan: quarantined with the reason.
    std::fs::write(
        batches.join("broken.tif"),
        b"II*\0this is not really a TIFF",
    )
    .unwrap();
    let reason = wait_quarantined(&batches, "broken.tif").await;
    assert!(!reason.trim().is_empty());

    // 4. A document and its metadata: filed; a document without metadata: quarantined.
    let letter = png_of(&text_page("Referral letter", "pelican", 21));
    std::fs::write(documents.join("referral.png"), &letter).unwrap();
    std::fs::write(
        documents.join("referral.png.json"),
        metadata("HF-1", "Hana Folder", "referral").to_string(),
    )
    .unwrap();
    std::fs::write(
        documents.join("orphan.png"),
        png_of(&text_page("Orphan", "gannet", 22)),
    )
    .unwrap();
    let taken = wait_taken(&documents, "referral.png", 1).await;
    assert!(
        !documents.join("referral.png.json").exists(),
        "the sidecar goes with its file"
    );
    assert_eq!(taken[0]["kind"], "documents");
    app.wait_indexed(taken[0]["id"].as_str().unwrap()).await;
    let found = app
        .search(&app.records, json!({ "query": "pelican", "mrn": "HF-1" }))
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let reason = wait_quarantined(&documents, "orphan.png").await;
    assert!(reason.contains("sidecar"), "{reason}");

    // Nothing of the scans lingers in the folders but what is quarantined.
    for folder in [&batches, &documents] {
        let left: Vec<PathBuf> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// The service killed while a scanner is half-way through writing a batch, and started
/// again: the batch is taken once, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_a_scan_is_being_written_takes_it_once_and_whole() {
    let scans = tempfile::tempdir().unwrap();
    let folder = scans.path().join("ward-5");
    let folders = format!(
        "[{{path=\"{}\",kind=\"batches\",user=\"rec\"}}]",
        folder.display()
    );
    let server = ChildServer::start(&[
        ("CHARTVAULT__INTAKE__FOLDERS", folders.as_str()),
        ("CHARTVAULT__INTAKE__POLL_INTERVAL_MS", "100"),
        ("CHARTVAULT__INTAKE__SETTLE_MS", "1500"),
    ]);
    let records = server.user("rec", "records");
    let pages: Vec<GrayImage> = (0..3)
        .map(|i| text_page("Nursing record", &format!("kestrel{i}"), 40 + i))
        .collect();
    let batch_file = g4_tiff_of(&pages);
    let sha256 = hex::encode(sha2::Sha256::digest(&batch_file));
    let (first, rest) = batch_file.split_at(batch_file.len() / 2);
    let path = folder.join("ward5-0042.tif");
    while !folder.is_dir() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&path, first).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = server.restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(rest)
        .unwrap();
    let taken = wait_taken(&folder, "ward5-0042.tif", 1).await;
    assert_eq!(taken[0]["sha256"], sha256.as_str(), "the whole file");
    assert_eq!(taken[0]["duplicate"], false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receipts(&folder).len(), 1, "taken once");
    let batch: Value = reqwest::Client::new()
        .get(server.url(&format!(
            "/api/v1/batches/{}",
            taken[0]["id"].as_str().unwrap()
        )))
        .bearer_auth(&records)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch["page_count"], 3, "{batch}");
}
