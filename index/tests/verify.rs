//! [`verify_index_dir`] on a real encrypted index: clean when intact, and names exactly the
//! file that is tampered with, missing, foreign or under another key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chartvault_index::{
    verify_index_dir, EncryptedDirectory, IndexFileProblem, IndexVerifyReport, IndexWriterService,
    PageRecord, SearchIndex,
};
use chartvault_storage::{read_header, DataKey, KeyId, CHUNK_SIZE};
use tantivy::directory::MmapDirectory;
use uuid::Uuid;

/// A sealed chunk on disk: ciphertext plus its 16-byte tag.
const SEALED_CHUNK: usize = CHUNK_SIZE + 16;

/// The length of the header `file` starts with (of whichever format version it names).
fn header_len(file: &[u8]) -> usize {
    read_header(&mut &file[..]).expect("object header").len()
}

fn page(document_id: Uuid, page: u32, text: String) -> PageRecord {
    PageRecord {
        document_id,
        page,
        patient_id: Uuid::from_u128(0x5eed),
        patient_name: "Test Patient".to_string(),
        document_type: "progress-note".to_string(),
        category: "general".to_string(),
        service_date: None,
        text,
    }
}

/// An encrypted index of two segments (the writer shut down), some of whose files span
/// several chunks; returns the dir, key and key id.
async fn build() -> (tempfile::TempDir, DataKey, KeyId) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, key_id) = (DataKey::generate(), KeyId::generate());
    let mmap = MmapDirectory::open(dir.path()).expect("mmap");
    let index =
        SearchIndex::open_in_directory(EncryptedDirectory::new(mmap, key.clone(), key_id, 1 << 20))
            .expect("index");
    let writer =
        IndexWriterService::start(&index, Duration::from_millis(20), 100_000).expect("writer");
    let document = Uuid::new_v4();
    for batch in 0..2u32 {
        let pages = (1..800)
            .map(|number| {
                let number = batch * 1000 + number;
                let words: Vec<String> = (0..200)
                    .map(|word| format!("w{}", (number * 7919 + word * 104_729) % 50_000))
                    .collect();
                page(document, number, words.join(" "))
            })
            .collect();
        writer.index_pages(pages).await.expect("pages index");
    }
    writer.shutdown().await.expect("shutdown");
    drop(index);
    (dir, key, key_id)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn is_lock(path: &Path) -> bool {
    name(path).ends_with(".lock")
}

/// The largest segment file (several chunks long).
fn largest_segment_file(dir: &Path) -> PathBuf {
    files(dir)
        .into_iter()
        .filter(|path| !is_lock(path) && !name(path).ends_with(".json"))
        .max_by_key(|path| std::fs::metadata(path).expect("metadata").len())
        .expect("a segment file")
}

fn verify(dir: &Path, key: &DataKey, key_id: KeyId) -> IndexVerifyReport {
    verify_index_dir(dir, key, key_id).expect("directory lists")
}

fn problem(file: &str, problem: &str) -> IndexFileProblem {
    IndexFileProblem {
        file: file.to_string(),
        problem: problem.to_string(),
    }
}

#[tokio::test]
async fn an_intact_index_has_no_problems_and_every_file_is_counted() {
    let (dir, key, key_id) = build().await;
    let report = verify(dir.path(), &key, key_id);
    assert!(report.is_clean(), "{report:?}");
    let checked: Vec<PathBuf> = files(dir.path())
        .into_iter()
        .filter(|path| !is_lock(path))
        .collect();
    assert!(
        checked.len() >= 2 * 6 + 2,
        "two segments plus metadata: {checked:?}"
    );
    assert_eq!(report.files_checked, checked.len());
    assert_eq!(
        report.bytes_checked,
        checked
            .iter()
            .map(|path| std::fs::metadata(path).expect("metadata").len())
            .sum::<u64>()
    );
}

#[tokio::test]
async fn a_flipped_byte_in_a_middle_chunk_names_that_file_and_chunk() {
    let (dir, key, key_id) = build().await;
    let target = largest_segment_file(dir.path());
    let mut bytes = std::fs::read(&target).expect("read");
    let header_len = header_len(&bytes);
    let chunks = (bytes.len() - header_len).div_ceil(SEALED_CHUNK);
    assert!(chunks >= 3, "need a middle chunk; file has {chunks}");
    let chunk = chunks / 2;
    bytes[header_len + chunk * SEALED_CHUNK + 1000] ^= 0x01;
    std::fs::write(&target, &bytes).expect("tamper");

    let report = verify(dir.path(), &key, key_id);
    assert_eq!(
        report.problems,
        vec![problem(
            &name(&target),
            &format!("chunk {chunk} fails authentication")
        )]
    );
}

#[tokio::test]
async fn a_truncated_file_is_reported() {
    let (dir, key, key_id) = build().await;
    let target = largest_segment_file(dir.path());
    let bytes = std::fs::read(&target).expect("read");
    // Cut at a chunk boundary (a plausible length), then by a few bytes (an impossible one).
    std::fs::write(&target, &bytes[..header_len(&bytes) + SEALED_CHUNK]).expect("truncate");
    let report = verify(dir.path(), &key, key_id);
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].file, name(&target));
    assert!(report.problems[0]
        .problem
        .contains("chunk 0 fails authentication"));

    std::fs::write(&target, &bytes[..bytes.len() - 3]).expect("truncate");
    let report = verify(dir.path(), &key, key_id);
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].file, name(&target));
    assert!(report.problems[0].problem.contains("truncated"));
}

#[tokio::test]
async fn a_file_cut_inside_its_header_is_reported() {
    let (dir, key, key_id) = build().await;
    let target = largest_segment_file(dir.path());
    let bytes = std::fs::read(&target).expect("read");
    // 40 bytes: more than a version-1 header, less than the version-2 header it starts.
    for cut in [5, 40, header_len(&bytes) - 1] {
        std::fs::write(&target, &bytes[..cut]).expect("truncate");
        let report = verify(dir.path(), &key, key_id);
        assert_eq!(
            report.problems,
            vec![problem(
                &name(&target),
                "not an encrypted index file (shorter than a header)"
            )],
            "cut at {cut}"
        );
    }
}

#[tokio::test]
async fn a_deleted_segment_file_is_reported_missing() {
    let (dir, key, key_id) = build().await;
    let target = largest_segment_file(dir.path());
    std::fs::remove_file(&target).expect("delete");
    let report = verify(dir.path(), &key, key_id);
    assert_eq!(
        report.problems,
        vec![problem(&name(&target), "segment file missing")]
    );
}

#[tokio::test]
async fn a_plain_junk_file_is_reported() {
    let (dir, key, key_id) = build().await;
    std::fs::write(
        dir.path().join("notes.txt"),
        "plain text that is no encrypted index file at all",
    )
    .expect("junk");
    std::fs::write(dir.path().join("empty"), "").expect("empty junk");
    let report = verify(dir.path(), &key, key_id);
    assert_eq!(report.problems.len(), 2, "{report:?}");
    assert_eq!(report.problems[0].file, "empty");
    assert_eq!(
        report.problems[1],
        problem("notes.txt", "not an encrypted index file")
    );
}

#[tokio::test]
async fn another_key_or_key_id_is_reported_for_every_file() {
    let (dir, key, key_id) = build().await;
    let checked = files(dir.path())
        .into_iter()
        .filter(|path| !is_lock(path))
        .count();

    let report = verify(dir.path(), &key, KeyId::generate());
    assert_eq!(report.problems.len(), checked);
    assert!(report
        .problems
        .iter()
        .all(|found| found.problem == "written under another key"));

    let report = verify(dir.path(), &DataKey::generate(), key_id);
    assert_eq!(report.problems.len(), checked);
    assert!(report
        .problems
        .iter()
        .all(|found| found.problem == "chunk 0 fails authentication"));
}

#[tokio::test]
async fn a_file_renamed_over_another_fails_authentication() {
    let (dir, key, key_id) = build().await;
    let target = largest_segment_file(dir.path());
    let meta = dir.path().join("meta.json");
    std::fs::copy(&meta, &target).expect("swap");
    let report = verify(dir.path(), &key, key_id);
    assert_eq!(
        report.problems,
        vec![problem(&name(&target), "chunk 0 fails authentication")]
    );
}

#[tokio::test]
async fn a_missing_directory_is_an_error_and_an_empty_one_holds_no_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = DataKey::generate();
    assert!(verify_index_dir(&dir.path().join("absent"), &key, KeyId::generate()).is_err());
    let report = verify(dir.path(), &key, KeyId::generate());
    assert_eq!(report.files_checked, 0);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].file, "meta.json");
}
