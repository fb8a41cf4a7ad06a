//! `chartvault verify` on the data directory of a live server that ingested generated scans:
//! clean when nothing is wrong, and each kind of damage reported by kind and by name.

use std::path::{Path, PathBuf};
use std::process::Command;

use chartvault::domain::DocumentId;
use chartvault::ops::findings::{FindingKind, Severity, VerifyReport};
use chartvault::ops::verify::verify;
use chartvault::store::vault::ObjectRef;
use serde_json::Value;

use crate::helpers::*;

const PATIENT: &str = "Verity Quinlan";

/// A live app with one generated one-page scan ingested and indexed.
async fn archive_with_one_document(marker: &str) -> (TestApp, DocumentId) {
    let app = spawn_app().await;
    let page = scanned_page(
        &[
            "Outpatient clinic letter",
            &format!("Marker word {marker} appears here"),
        ],
        0.4,
        11,
    );
    let id = app
        .upload(png_of(&page), &metadata("00555", PATIENT, "clinic-letter"))
        .await;
    app.wait_indexed(&id).await;
    (app, id.parse().unwrap())
}

fn blob_path(app: &TestApp, object: ObjectRef) -> PathBuf {
    app.data_dir.join("blobs").join(object.blob_name().as_str())
}

fn flip_byte_in_the_middle(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

async fn verify_app(app: &TestApp) -> VerifyReport {
    let report = verify(&app.config()).await.expect("verify runs");
    eprintln!("{}", report.summary());
    report
}

fn names(report: &VerifyReport, kind: FindingKind) -> Vec<String> {
    report
        .of_kind(kind)
        .filter_map(|f| f.blob.clone().or(f.file.clone()))
        .collect()
}

/// Runs the built binary: (exit code, parsed JSON report from stdout, stderr).
fn verify_binary(app: &TestApp) -> (i32, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chartvault"))
        .args(["verify", "--json", "--data-dir"])
        .arg(&app.data_dir)
        .env(
            "CHARTVAULT__KEYS__KEK_FILE",
            app.data_dir.with_extension("key"),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json prints a JSON report ({e}): {stdout}"));
    (
        output.status.code().expect("exit code"),
        json,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_archive_verifies_clean_even_while_a_document_is_being_ingested() {
    let (app, id) = archive_with_one_document("pelican").await;
    let report = verify_app(&app).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.exit_code(), 0);
    let checked = &report.checked;
    assert_eq!(checked.documents, 1);
    assert_eq!(checked.pages, 1);
    assert_eq!(
        checked.blobs, 4,
        "original + image, text and words of one page"
    );
    assert_eq!(checked.originals_hashed, 1);
    assert!(checked.blob_bytes > 10_000);
    assert!(
        checked.index_files >= 3,
        "meta.json and segment files: {checked:?}"
    );
    assert_eq!(checked.indexed_pages, 1);

    // The binary agrees, in JSON on stdout, with the summary on stderr; no patient data.
    let (code, json, stderr) = verify_binary(&app);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["checked"]["blobs"], 4);
    assert!(stderr.contains("clean"), "{stderr}");
    let text = json.to_string();
    for secret in [PATIENT, "Verity", "00555", "pelican"] {
        assert!(!text.contains(secret), "{secret} in the report");
    }

    // While another document is uploaded and processed, verify reports no errors: staging
    // objects and temp files are notices, unrecorded page artifacts are work in progress.
    let page = scanned_page(&["Second letter", "Marker word marigold here"], 0.2, 12);
    let second = app
        .upload(png_of(&page), &metadata("00555", PATIENT, "clinic-letter"))
        .await;
    let mut rounds = 0;
    loop {
        let report = verify(&app.config()).await.expect("verify runs");
        assert_eq!(report.errors(), 0, "{}", report.summary());
        rounds += 1;
        let status = app
            .get(&app.records, &format!("/api/v1/documents/{second}"))
            .await
            .json::<Value>()
            .await
            .unwrap();
        if status["status"] == "indexed" {
            break;
        }
        assert!(rounds < 400, "the second document was not indexed");
    }
    let report = verify_app(&app).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.checked.documents, 2);
    assert_eq!(report.checked.blobs, 8);
    assert_eq!(report.checked.indexed_pages, 2);
    let _ = id;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_an_original_is_blob_corrupt_and_exits_1() {
    let (app, id) = archive_with_one_document("juniper").await;
    let original = ObjectRef::Original(id);
    flip_byte_in_the_middle(&blob_path(&app, original));

    let report = verify_app(&app).await;
    assert_eq!(
        names(&report, FindingKind::BlobCorrupt),
        vec![original.blob_name().to_string()]
    );
    let finding = report.of_kind(FindingKind::BlobCorrupt).next().unwrap();
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(
        finding.document_id.as_deref(),
        Some(id.to_string().as_str())
    );
    assert_eq!(
        report.errors(),
        1,
        "only the original: {:?}",
        report.findings
    );
    assert_eq!(report.exit_code(), 1);

    let (code, json, stderr) = verify_binary(&app);
    assert_eq!(code, 1, "{stderr}");
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json}");
    assert_eq!(findings[0]["kind"], "blob_corrupt");
    assert_eq!(findings[0]["severity"], "error");
    assert_eq!(findings[0]["blob"], original.blob_name().as_str());
    assert!(stderr.contains("blob_corrupt"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_page_text_is_blob_corrupt() {
    let (app, id) = archive_with_one_document("saffron").await;
    let text = ObjectRef::PageText(id, 1);
    flip_byte_in_the_middle(&blob_path(&app, text));
    let report = verify_app(&app).await;
    assert_eq!(
        names(&report, FindingKind::BlobCorrupt),
        vec![text.blob_name().to_string()]
    );
    let finding = report.of_kind(FindingKind::BlobCorrupt).next().unwrap();
    assert_eq!(finding.page, Some(1));
    assert_eq!(report.errors(), 1, "{:?}", report.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_page_image_is_blob_missing() {
    let (app, id) = archive_with_one_document("tangerine").await;
    let image = ObjectRef::PageImage(id, 1);
    std::fs::remove_file(blob_path(&app, image)).unwrap();
    let report = verify_app(&app).await;
    assert_eq!(
        names(&report, FindingKind::BlobMissing),
        vec![image.blob_name().to_string()]
    );
    // Its key is now referenced by nothing: a notice, not an error.
    assert_eq!(report.of_kind(FindingKind::OrphanKey).count(), 1);
    assert_eq!(report.errors(), 1, "{:?}", report.findings);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_copied_under_a_new_valid_name_is_an_orphan() {
    let (app, id) = archive_with_one_document("obsidian").await;
    let stranger = ObjectRef::Original(DocumentId::new_random());
    let target = blob_path(&app, stranger);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(blob_path(&app, ObjectRef::Original(id)), &target).unwrap();
    // And a page artifact beyond the document's last page.
    let extra_page = ObjectRef::PageWords(id, 7);
    std::fs::copy(
        blob_path(&app, ObjectRef::PageWords(id, 1)),
        blob_path(&app, extra_page),
    )
    .unwrap();

    let report = verify_app(&app).await;
    let mut orphans = names(&report, FindingKind::OrphanBlob);
    orphans.sort();
    let mut expected = vec![
        stranger.blob_name().to_string(),
        extra_page.blob_name().to_string(),
    ];
    expected.sort();
    assert_eq!(orphans, expected, "{:?}", report.findings);
    // The originals they were copied from are intact and not reported.
    assert_eq!(report.of_kind(FindingKind::BlobCorrupt).count(), 0);
    assert_eq!(report.checked.blobs, 4);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_an_interrupted_upload_are_notices_not_errors() {
    let (app, id) = archive_with_one_document("lavender").await;
    let staged = DocumentId::new_random();
    let staging = app
        .data_dir
        .join("blobs")
        .join(ObjectRef::staging_name(staged).as_str());
    std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
    std::fs::copy(blob_path(&app, ObjectRef::Original(id)), &staging).unwrap();
    let temp =
        blob_path(&app, ObjectRef::PageText(id, 1)).with_file_name(".tmp-0123456789abcdef01234567");
    std::fs::write(&temp, b"partial").unwrap();

    let report = verify_app(&app).await;
    let mut leftovers = names(&report, FindingKind::InterruptedUpload);
    leftovers.sort();
    let temp_name = format!(
        "{}/.tmp-0123456789abcdef01234567",
        ObjectRef::PageText(id, 1)
            .blob_name()
            .as_str()
            .rsplit_once('/')
            .unwrap()
            .0
    );
    let mut expected = vec![format!("staging/{staged}"), temp_name];
    expected.sort();
    assert_eq!(leftovers, expected, "{:?}", report.findings);
    assert!(report
        .of_kind(FindingKind::InterruptedUpload)
        .all(|f| f.severity == Severity::Notice));
    assert_eq!(report.of_kind(FindingKind::OrphanBlob).count(), 0);
    assert_eq!(report.exit_code(), 0, "notices alone keep the exit code 0");
    let (code, json, _) = verify_binary(&app);
    assert_eq!(code, 0);
    assert_eq!(json["findings"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_file_is_a_usage_error_not_a_finding() {
    let (app, _) = archive_with_one_document("walnut").await;
    let mut config = app.config();
    let other = tempfile::tempdir().unwrap();
    config.keys.kek_file = other.path().join("other.key");
    chartvault_storage::KeyFile::load_or_create(&config.keys.kek_file).unwrap();
    let error = verify(&config)
        .await
        .expect_err("a foreign KEK cannot verify");
    assert!(format!("{error:#}").contains("KEK"), "{error:#}");
    // A missing key file is not created by verify.
    config.keys.kek_file = other.path().join("absent.key");
    assert!(verify(&config).await.is_err());
    assert!(!config.keys.kek_file.exists());
    let output = Command::new(env!("CARGO_BIN_EXE_chartvault"))
        .args(["verify", "--data-dir"])
        .arg(&app.data_dir)
        .env("CHARTVAULT__KEYS__KEK_FILE", &config.keys.kek_file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// Shreds a document the way the coming DELETE endpoint will leave it: a tombstone row with
/// status `deleted`, and no blobs, pages rows, keyring rows or index entries. Keeps the
/// blobs in `keep`, and the index entries unless `purge_index`.
pub async fn shred_leaving(app: &TestApp, id: DocumentId, keep: &[ObjectRef], purge_index: bool) {
    let mut objects = vec![ObjectRef::Original(id)];
    objects.extend(ObjectRef::page_artifacts(id, 1));
    let pool = &app.sql;
    for object in &objects {
        let path = blob_path(app, *object);
        let key_id =
            chartvault_storage::read_key_id(&mut std::fs::File::open(&path).unwrap()).unwrap();
        sqlx::query("DELETE FROM keyring WHERE key_id = $1")
            .bind(key_id.to_hex())
            .execute(pool)
            .await
            .unwrap();
        if !keep.contains(object) {
            std::fs::remove_file(path).unwrap();
        }
    }
    sqlx::query("DELETE FROM pages WHERE document_id = $1")
        .bind(id.to_string())
        .execute(pool)
        .await
        .unwrap();
    // This branch's CHECK constraint does not know `deleted` yet.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE documents SET status = 'deleted' WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = OFF")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    if purge_index {
        app.state
            .index_writer()
            .unwrap()
            .purge_document(id.0)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shredded_documents_tombstone_expects_nothing_but_a_leftover_blob_is_an_orphan() {
    let (app, id) = archive_with_one_document("cobalt").await;
    let leftover = ObjectRef::PageImage(id, 1);
    shred_leaving(&app, id, &[leftover], false).await;

    let report = verify_app(&app).await;
    assert_eq!(report.checked.deleted_documents, 1);
    assert_eq!(
        names(&report, FindingKind::OrphanBlob),
        vec![leftover.blob_name().to_string()]
    );
    let finding = report.of_kind(FindingKind::OrphanBlob).next().unwrap();
    assert!(finding.description.contains("deleted"), "{finding:?}");
    let in_index: Vec<_> = report
        .of_kind(FindingKind::IndexPageWithoutRow)
        .map(|f| (f.document_id.clone().unwrap(), f.page))
        .collect();
    assert_eq!(in_index, vec![(id.to_string(), Some(1))]);
    assert_eq!(
        report.errors(),
        2,
        "nothing is missing: {:?}",
        report.findings
    );

    app.state
        .index_writer()
        .unwrap()
        .purge_document(id.0)
        .await
        .unwrap();
    std::fs::remove_file(blob_path(&app, leftover)).unwrap();
    let report = verify_app(&app).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_an_index_file_is_index_file_corrupt() {
    let (app, _) = archive_with_one_document("hazelnut").await;
    let index_dir = app.data_dir.join("index");
    let largest = files_under(&index_dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && name != "meta.json"
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("segment files");
    flip_byte_in_the_middle(&largest);
    let report = verify_app(&app).await;
    let name = largest.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(names(&report, FindingKind::IndexFileCorrupt), vec![name]);
    assert_eq!(report.of_kind(FindingKind::BlobCorrupt).count(), 0);
    assert_eq!(report.exit_code(), 1);
    let (code, json, _) = verify_binary(&app);
    assert_eq!(code, 1);
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "index_file_corrupt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_missing_from_the_index_is_row_page_not_indexed() {
    let (app, id) = archive_with_one_document("basalt").await;
    app.state
        .index_writer()
        .unwrap()
        .delete_document(id.0)
        .await
        .unwrap();
    let report = verify_app(&app).await;
    let missing: Vec<_> = report
        .of_kind(FindingKind::RowPageNotIndexed)
        .map(|f| (f.document_id.clone().unwrap(), f.page))
        .collect();
    assert_eq!(missing, vec![(id.to_string(), Some(1))]);
    assert_eq!(report.errors(), 1, "{:?}", report.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_that_does_not_hash_to_its_recorded_sha256_is_a_checksum_mismatch() {
    let (app, id) = archive_with_one_document("meadow").await;
    sqlx::query("UPDATE documents SET sha256 = $1 WHERE id = $2")
        .bind("0".repeat(64))
        .bind(id.to_string())
        .execute(&app.sql)
        .await
        .unwrap();
    let report = verify_app(&app).await;
    assert_eq!(
        names(&report, FindingKind::ChecksumMismatch),
        vec![ObjectRef::Original(id).blob_name().to_string()]
    );
    assert_eq!(report.errors(), 1, "{:?}", report.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_whose_keyring_row_is_gone_is_key_missing() {
    let (app, id) = archive_with_one_document("orchard").await;
    let words = ObjectRef::PageWords(id, 1);
    let key_id =
        chartvault_storage::read_key_id(&mut std::fs::File::open(blob_path(&app, words)).unwrap())
            .unwrap();
    sqlx::query("DELETE FROM keyring WHERE key_id = $1")
        .bind(key_id.to_hex())
        .execute(&app.sql)
        .await
        .unwrap();
    let report = verify_app(&app).await;
    let missing: Vec<_> = report
        .of_kind(FindingKind::KeyMissing)
        .map(|f| (f.blob.clone().unwrap(), f.key_id.clone().unwrap()))
        .collect();
    assert_eq!(
        missing,
        vec![(words.blob_name().to_string(), key_id.to_hex())]
    );
    assert_eq!(report.errors(), 1, "{:?}", report.findings);
}
