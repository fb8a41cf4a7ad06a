//! An encrypted index written by chartvault before object format version 2 (every file a
//! version-1 object: 32-byte header, no salt) stays readable, searchable and verifiable.
//!
//! `tests/fixtures/index-v1/` was made by the index code of commit 54e4359 (format version
//! 1): an `EncryptedDirectory` over an `MmapDirectory`, the data key `KEY` and key id
//! `KEY_ID` below, a writer committing two batches (document `0xa` pages 1 and 2; documents
//! `0xb` and `0xc` page 1 each), then deleting document `0xc` (hence a `.del` file), then
//! shutting down. The lock files were left out. Never regenerate it: it stands for indexes
//! already on disk.

use std::path::Path;

use chartvault_index::{verify_index_dir, EncryptedDirectory, SearchIndex, SearchRequest};
use chartvault_storage::{DataKey, KeyId};
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
