//! An encrypted index written by chartvault before object format version 2 (every file a
//! version-1 object: 32-byte header, no salt) stays readable, searchable and verifiable,
//! and writing to it adds version-2 files beside the version-1 ones.
//!
//! `tests/fixtures/index-v1/` was made by the index code of commit 54e4359 (format version
//! 1): an `EncryptedDirectory` over an `MmapDirectory`, the data key `KEY` and key id
//! `KEY_ID` below, a writer committing two batches (document `0xa` pages 1 and 2; documents
//! `0xb` and `0xc` page 1 each), then deleting document `0xc` (hence a `.del` file), then
//! shutting down. The lock files were left out. Never regenerate it: it stands for indexes
//! already on disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chartvault_index::{
    verify_index_dir, EncryptedDirectory, IndexWriterService, PageRecord, SearchIndex,
    SearchRequest,
};
use chartvault_storage::{DataKey, FormatVersion, KeyId};
use tantivy::directory::MmapDirectory;
use uuid::Uuid;

const KEY: [u8; 32] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const KEY_ID: [u8; 16] = [0x1d; 16];

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/index-v1")
}

/// A copy of the fixture in a temp dir (opening an index creates lock files, writing adds
/// segments: the committed fixture is never touched).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(fixture_dir()).expect("fixture dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

fn open(dir: &Path) -> SearchIndex {
    let mmap = MmapDirectory::open(dir).expect("mmap");
    SearchIndex::open_in_directory(EncryptedDirectory::new(
        mmap,
        DataKey::from_bytes(KEY),
        KeyId::from_bytes(KEY_ID),
        1 << 20,
    ))
    .expect("the version-1 index opens")
}

fn hits(index: &SearchIndex, query: &str) -> Vec<(Uuid, u32)> {
    let results = index
        .search(&SearchRequest {
            query: query.to_string(),
            limit: 100,
            ..SearchRequest::default()
        })
        .expect("search");
    results
        .hits
        .iter()
        .map(|hit| (hit.document_id, hit.page))
        .collect()
}

#[test]
fn every_fixture_file_is_a_version_1_object() {
    let mut files = 0;
    for entry in std::fs::read_dir(fixture_dir()).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[..8], b"CVAULT\0\x01", "{}", path.display());
        assert_eq!(&bytes[8..24], &KEY_ID, "{}", path.display());
        files += 1;
    }
    assert_eq!(
        files, 15,
        "two segments of six files, a delete bitset, two JSON files"
    );
}

#[test]
fn a_version_1_index_opens_and_searches() {
    let dir = fixture_copy();
    let index = open(dir.path());
    assert_eq!(hits(&index, "metformin"), vec![(Uuid::from_u128(0xa), 1)]);
    assert_eq!(hits(&index, "pelican"), vec![(Uuid::from_u128(0xa), 2)]);
    assert_eq!(hits(&index, "insulin"), vec![(Uuid::from_u128(0xb), 1)]);
    assert_eq!(hits(&index, "warfarin"), vec![], "document 0xc was deleted");
    assert_eq!(index.page_count().expect("count"), 3);
}

#[test]
fn a_version_1_index_verifies_clean() {
    let dir = fixture_copy();
    let report = verify_index_dir(
        dir.path(),
        &DataKey::from_bytes(KEY),
        KeyId::from_bytes(KEY_ID),
    )
    .expect("directory lists");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.files_checked, 15);
}

/// The format version of every encrypted file in `dir`, by name (lock files left out).
fn versions(dir: &Path) -> BTreeMap<String, FormatVersion> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry"))
        .filter(|entry| !entry.file_name().to_string_lossy().ends_with(".lock"))
        .map(|entry| {
            let bytes = std::fs::read(entry.path()).expect("read");
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = FormatVersion::of_object(&bytes)
                .unwrap_or_else(|| panic!("{name} is not an encrypted index file"));
            (name, version)
        })
        .collect()
}

fn page(document_id: Uuid, page: u32, text: &str) -> PageRecord {
    PageRecord {
        document_id,
        page,
        patient_id: Uuid::from_u128(0x5eed),
        patient_name: "Test Patient".to_string(),
        document_type: "progress-note".to_string(),
        category: "general".to_string(),
        service_date: None,
        text: text.to_string(),
    }
}

/// Files of the fixture are never rewritten in place: each file in `now` is either a
/// segment file of the fixture, still version 1, or written since, in version 2 (the JSON
/// files are rewritten at every commit).
fn assert_fixture_files_stay_version_1_and_new_files_are_version_2(
    fixture: &BTreeMap<String, FormatVersion>,
    now: &BTreeMap<String, FormatVersion>,
) {
    for (name, version) in now {
        let from_fixture = fixture.contains_key(name) && !name.ends_with(".json");
        let expected = if from_fixture {
            FormatVersion::V1
        } else {
            FormatVersion::V2
        };
        assert_eq!(*version, expected, "{name}");
    }
}

fn assert_verifies_clean(dir: &Path) {
    let report = verify_index_dir(dir, &DataKey::from_bytes(KEY), KeyId::from_bytes(KEY_ID))
        .expect("directory lists");
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn writing_to_a_version_1_index_adds_version_2_files_and_the_mix_works() {
    let dir = fixture_copy();
    let before = versions(dir.path());
    let index = open(dir.path());
    let writer =
        IndexWriterService::start(&index, Duration::from_millis(20), 1000).expect("writer starts");
    writer
        .index_pages(vec![page(Uuid::from_u128(0xd), 1, "Metformin refilled.")])
        .await
        .expect("pages index");

    let after = versions(dir.path());
    assert_fixture_files_stay_version_1_and_new_files_are_version_2(&before, &after);
    for name in ["meta.json", ".managed.json"] {
        assert_eq!(
            after[name],
            FormatVersion::V2,
            "{name} is rewritten at commit"
        );
    }
    assert!(after.len() > before.len(), "a new segment was written");
    let mut found = hits(&index, "metformin");
    found.sort();
    assert_eq!(
        found,
        vec![(Uuid::from_u128(0xa), 1), (Uuid::from_u128(0xd), 1)]
    );
    assert_eq!(hits(&index, "pelican"), vec![(Uuid::from_u128(0xa), 2)]);
    assert_verifies_clean(dir.path());

    // Shredding rewrites the segments that held the document: as version 2.
    writer
        .purge_document(Uuid::from_u128(0xa))
        .await
        .expect("purge");
    writer.shutdown().await.expect("shutdown");
    assert_eq!(hits(&index, "pelican"), vec![]);
    assert_eq!(hits(&index, "metformin"), vec![(Uuid::from_u128(0xd), 1)]);
    assert_eq!(hits(&index, "insulin"), vec![(Uuid::from_u128(0xb), 1)]);
    drop(index);
    let merged = versions(dir.path());
    assert_fixture_files_stay_version_1_and_new_files_are_version_2(&before, &merged);
    assert!(
        before.keys().any(|name| !merged.contains_key(name)),
        "the segment that held document 0xa is gone: {merged:?}"
    );
    assert_verifies_clean(dir.path());
    let reopened = open(dir.path());
    assert_eq!(reopened.page_count().expect("count"), 2);
}
