//! `chartvault backup` while documents keep arriving, and `chartvault restore` into a new
//! data directory: every document acknowledged before the backup began comes back
//! searchable with its original byte for byte, unfinished jobs resume, the restored archive
//! verifies clean, and the backup holds no key and no readable page text.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chartvault::config::Config;
use chartvault::ops::backup::{read_manifest, restore};
use chartvault::ops::verify::verify;
use serde_json::json;

use crate::helpers::*;

const INDEXED_MARKERS: [&str; 3] = ["pelican", "marigold", "juniper"];
const LOOP_MARKERS: [&str; 8] = [
    "saffron",
    "tangerine",
    "obsidian",
    "walnut",
    "lavender",
    "cobalt",
    "hazelnut",
    "basalt",
];
const PATIENTS: [(&str, &str); 2] = [
    ("BK-00881", "Rosalind Featherstone"),
    ("BK-00882", "Barnaby Quill"),
];

#[derive(Clone, Debug)]
struct Uploaded {
    id: String,
    marker: &'static str,
    original: Vec<u8>,
}

fn scan_with_marker(marker: &str, seed: u64) -> Vec<u8> {
    png_of(&scanned_page(
        &[
            "Community health clinic progress note",
            &format!("Marker word {marker} appears here"),
        ],
        0.3,
        seed,
    ))
}

fn patient(i: usize) -> serde_json::Value {
    let (mrn, name) = PATIENTS[i % PATIENTS.len()];
    metadata(mrn, name, "progress-note")
}

fn chartvault_command(kek_file: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chartvault"));
    command
        .env("CHARTVAULT__KEYS__KEK_FILE", kek_file)
        .env("RUST_LOG", "warn");
    command
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_ingest_restores_every_acknowledged_document() {
    let app = Arc::new(spawn_app().await);
    let kek_file = app.data_dir.with_extension("key");

    // Three documents, indexed.
    let mut indexed = Vec::new();
    for (i, marker) in INDEXED_MARKERS.into_iter().enumerate() {
        let original = scan_with_marker(marker, i as u64);
        let id = app.upload(original.clone(), &patient(i)).await;
        indexed.push(Uploaded {
            id,
            marker,
            original,
        });
    }
    for doc in &indexed {
        app.wait_indexed(&doc.id).await;
    }

    // More uploads keep arriving while the backup runs.
    let acknowledged: Arc<Mutex<Vec<Uploaded>>> = Arc::new(Mutex::new(indexed.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let ingest_loop = {
        let (app, acknowledged, stop) = (app.clone(), acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            for (i, marker) in LOOP_MARKERS.into_iter().enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let original = scan_with_marker(marker, 100 + i as u64);
                let id = app.upload(original.clone(), &patient(i)).await;
                acknowledged.lock().unwrap().push(Uploaded {
                    id,
                    marker,
                    original,
                });
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < INDEXED_MARKERS.len() + 2 {
        assert!(Instant::now() < deadline, "uploads are not acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_backup: Vec<Uploaded> = acknowledged.lock().unwrap().clone();

    let backup_root = tempfile::tempdir().unwrap();
    let backup_dir = backup_root.path().join("backup");
    let mut command = chartvault_command(&kek_file);
    command
        .arg("backup")
        .arg(&backup_dir)
        .arg("--data-dir")
        .arg(&app.data_dir);
    let output = run(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "backup failed: {stderr}");
    assert!(stderr.contains("KEK is not in the backup"), "{stderr}");
    stop.store(true, Ordering::SeqCst);
    ingest_loop.await.unwrap();
    app.stop_server();
    let all_uploaded: Vec<Uploaded> = acknowledged.lock().unwrap().clone();

    let manifest = read_manifest(&backup_dir).unwrap();
    assert!(manifest.counts.documents >= before_backup.len());
    assert!(
        manifest.counts.open_jobs >= 1,
        "the snapshot should catch documents not yet processed: {:?}",
        manifest.counts
    );
    assert!(manifest.missing_blobs.is_empty());
    assert!(manifest.counts.index_files >= 3, "{:?}", manifest.counts);

    // The backup holds no key and no readable page text or patient name.
    let key_text = std::fs::read_to_string(&kek_file).unwrap();
    let key_lines: Vec<&str> = key_text
        .lines()
        .filter(|l| l.starts_with('v'))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert!(!key_lines.is_empty());
    // The manifest lists every file of the backup (and nothing else is there).
    let backup_files = files_under(&backup_dir);
    let mut on_disk: Vec<String> = backup_files
        .iter()
        .map(|p| {
            p.strip_prefix(&backup_dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| p != "MANIFEST.json" && p != "MANIFEST.mac")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert_eq!(
        listed.len(),
        1 + manifest.counts.blobs + manifest.counts.index_files
    );
    for path in &backup_files {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!name.ends_with(".key"), "a key file in the backup: {name}");
        let bytes = std::fs::read(path).unwrap();
        for key in &key_lines {
            assert!(!contains_ignore_case(&bytes, key), "the KEK is in {name}");
        }
        for marker in INDEXED_MARKERS.iter().chain(&LOOP_MARKERS) {
            assert!(
                !contains_ignore_case(&bytes, marker),
                "{marker} readable in {}",
                path.display()
            );
        }
        for (mrn, patient_name) in PATIENTS {
            for secret in [mrn, patient_name] {
                assert!(
                    !contains_in_any_encoding(&bytes, secret),
                    "{secret} readable in {}",
                    path.display()
                );
            }
        }
    }

    // Restore next to a copy of the same key file, into a new data directory.
    let restored_root = tempfile::tempdir().unwrap();
    let restored = restored_root.path().join("data");
    let restored_key = restored.with_extension("key");
    std::fs::copy(&kek_file, &restored_key).unwrap();
    let mut command = chartvault_command(&restored_key);
    command
        .arg("restore")
        .arg(&backup_dir)
        .arg("--data-dir")
        .arg(&restored);
    let output = run(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "restore failed: {stderr}");
    assert!(stderr.contains("restore:"), "{stderr}");

    // A restore refuses a non-empty target.
    let mut again = chartvault_command(&restored_key);
    again
        .arg("restore")
        .arg(&backup_dir)
        .arg("--data-dir")
        .arg(&restored);
    let output = run(again).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not empty"));

    // Jobs the snapshot caught running (their server was busy with them) are requeued when
    // the restored server starts, and finish.
    let running: Vec<String> = {
        let snapshot = crate::helpers::sql_pool(&backup_dir.join("chartvault.db"), true).await;
        let running = sqlx::query_scalar("SELECT document_id FROM jobs WHERE state = 'running'")
            .fetch_all(&snapshot)
            .await
            .unwrap();
        snapshot.close().await;
        running
    };
    assert!(
        !running.is_empty(),
        "the backup should catch a job in progress"
    );

    let restored_app = spawn_app_on(restored_root, &restored, &restored_key, &app).await;
    for id in &running {
        restored_app.wait_indexed(id).await;
    }
    for doc in &before_backup {
        restored_app.wait_indexed(&doc.id).await;
    }
    for doc in &before_backup {
        let hits = restored_app
            .search(&restored_app.clinician, json!({ "query": doc.marker }))
            .await;
        assert_eq!(hits["total"], 1, "{}: {hits}", doc.marker);
        assert_eq!(hits["hits"][0]["document_id"], doc.id.as_str());
        let download = restored_app
            .get(
                &restored_app.clinician,
                &format!("/api/v1/documents/{}/original", doc.id),
            )
            .await;
        assert_eq!(download.status(), 200);
        assert_eq!(download.bytes().await.unwrap().to_vec(), doc.original);
    }
    // Documents acknowledged during the backup are either wholly in it or not at all.
    for doc in all_uploaded.iter().skip(before_backup.len()) {
        let response = restored_app
            .get(
                &restored_app.records,
                &format!("/api/v1/documents/{}", doc.id),
            )
            .await;
        if response.status() == 404 {
            continue;
        }
        restored_app.wait_indexed(&doc.id).await;
        let hits = restored_app
            .search(&restored_app.records, json!({ "query": doc.marker }))
            .await;
        assert_eq!(hits["total"], 1, "{}: {hits}", doc.marker);
    }

    let report = verify(&restored_app.config()).await.unwrap();
    eprintln!("{}", report.summary());
    assert_eq!(report.errors(), 0, "{}", report.summary());
    assert_eq!(report.exit_code(), 0);

    restore_refuses_a_tampered_backup_and_a_foreign_kek(&backup_dir, &restored_key).await;
}

async fn restore_refuses_a_tampered_backup_and_a_foreign_kek(backup: &Path, kek_file: &Path) {
    let scratch = tempfile::tempdir().unwrap();

    // A foreign KEK: refused after the hashes, before anything is left in the target.
    let mut config = Config::for_data_dir(&scratch.path().join("foreign"));
    config.keys.kek_file = scratch.path().join("foreign.key");
    chartvault_storage::KeyFile::load_or_create(&config.keys.kek_file).unwrap();
    let error = restore(&config, backup).await.expect_err("a foreign KEK");
    assert!(format!("{error:#}").contains("KEK"), "{error:#}");
    assert!(files_under(&config.data_dir).is_empty());

    // A flipped byte in a copied blob: refused before anything is written.
    let tampered = scratch.path().join("tampered");
    copy_tree(backup, &tampered);
    let manifest = read_manifest(&tampered).unwrap();
    let blob = manifest
        .files
        .iter()
        .find(|f| f.path.starts_with("blobs/originals/"))
        .unwrap();
    let path = tampered.join(&blob.path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    let mut config = Config::for_data_dir(&scratch.path().join("target"));
    config.keys.kek_file = kek_file.to_path_buf();
    let error = restore(&config, &tampered)
        .await
        .expect_err("a tampered backup");
    let message = format!("{error:#}");
    assert!(message.contains("does not match its manifest"), "{message}");
    assert!(message.contains(&blob.path), "{message}");
    assert!(!config.data_dir.exists());

    // A manifest changed after the backup (its hashes recomputed to match a swapped file, or
    // only a word changed): refused, since only the archive's key makes its MAC.
    let edited = scratch.path().join("edited");
    copy_tree(backup, &edited);
    let manifest_path = edited.join("MANIFEST.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        text.replace("\"format_version\": 1", "\"format_version\":1"),
    )
    .unwrap();
    let error = restore(&config, &edited)
        .await
        .expect_err("an edited manifest");
    assert!(format!("{error:#}").contains("MAC"), "{error:#}");
    assert!(!config.data_dir.exists());
    std::fs::remove_file(edited.join("MANIFEST.mac")).unwrap();
    assert!(
        restore(&config, &edited).await.is_err(),
        "nor without its MAC"
    );

    // A backup without its manifest is incomplete.
    std::fs::remove_file(tampered.join("MANIFEST.json")).unwrap();
    assert!(restore(&config, &tampered).await.is_err());
}

fn copy_tree(from: &Path, to: &Path) {
    for file in files_under(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_purges_shredded_documents_and_rebuilds_an_index_that_does_not_open() {
    let app = spawn_app().await;
    let kept = app
        .upload(scan_with_marker("granite", 7), &patient(0))
        .await;
    let shredded = app.upload(scan_with_marker("harbor", 8), &patient(1)).await;
    app.wait_indexed(&kept).await;
    app.wait_indexed(&shredded).await;
    // Shredded in the database and blob store, but still in the index.
    crate::verify::shred_leaving(&app, shredded.parse().unwrap(), &[], false).await;

    // A backup inside the data directory would copy itself: refused, and nothing is left.
    let inside = app.data_dir.join("backup");
    assert!(chartvault::ops::backup::backup(&app.config(), &inside)
        .await
        .is_err());
    assert!(!inside.exists());

    let backup_root = tempfile::tempdir().unwrap();
    let backup_dir = backup_root.path().join("backup");
    let summary = chartvault::ops::backup::backup(&app.config(), &backup_dir)
        .await
        .unwrap();
    assert_eq!(summary.manifest.counts.deleted_documents, 1);
    assert_eq!(summary.manifest.counts.blobs, 4, "only the kept document's");
    // The index was copied holding the shredded document; the backup's copy does not.
    assert_eq!(summary.index_documents_purged, 1);
    app.stop_server();

    let restored_root = tempfile::tempdir().unwrap();
    let restored = restored_root.path().join("data");
    let mut config = Config::for_data_dir(&restored);
    config.keys.kek_file = app.data_dir.with_extension("key");
    let summary = restore(&config, &backup_dir).await.unwrap();
    eprintln!("{}", summary.describe());
    assert!(!summary.reconcile.rebuilt);
    assert_eq!(
        summary.reconcile.removed_documents, 0,
        "the backup's index held only what its snapshot holds"
    );
    assert_eq!(summary.reconcile.reindexed_pages, 0);
    let report = verify(&config).await.unwrap();
    assert!(report.findings.is_empty(), "{}", report.summary());
    assert_eq!(report.checked.indexed_pages, 1);

    // An index whose meta.json no longer decrypts is rebuilt from the page texts.
    let meta = restored.join("index/meta.json");
    let mut bytes = std::fs::read(&meta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&meta, bytes).unwrap();
    let report = verify(&config).await.unwrap();
    assert!(
        report
            .of_kind(chartvault::ops::findings::FindingKind::IndexFileCorrupt)
            .count()
            >= 1
    );
    let reconciled = chartvault::ops::backup::reconcile_index(&config)
        .await
        .unwrap();
    assert!(reconciled.rebuilt);
    assert_eq!(reconciled.reindexed_pages, 1);
    let report = verify(&config).await.unwrap();
    assert!(report.findings.is_empty(), "{}", report.summary());

    let kek_file = config.keys.kek_file.clone();
    let restored_app = spawn_app_on(restored_root, &restored, &kek_file, &app).await;
    let hits = restored_app
        .search(&restored_app.clinician, json!({ "query": "granite" }))
        .await;
    assert_eq!(hits["total"], 1, "{hits}");
    assert_eq!(hits["hits"][0]["document_id"], kept.as_str());
    let hits = restored_app
        .search(&restored_app.clinician, json!({ "query": "harbor" }))
        .await;
    assert_eq!(hits["total"], 0, "{hits}");
}
