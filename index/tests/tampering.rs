//! Tampering with an encrypted index on disk, one byte in one file at a time, for every file
//! of a multi-segment index (each segment's postings, positions, term dictionary, doc store,
//! fast fields, field norms and delete bitset, plus `meta.json` and `.managed.json`).
//!
//! For each file, the flipped byte sits in a chunk that the untampered run of the query set
//! is seen to read (a recording directory under the `EncryptedDirectory` logs every
//! ciphertext range read), preferring a chunk that only the searches read (so the search,
//! not the open, must notice), then one other than the last (tantivy reads every file's
//! footer on open, so the last chunk is the easy case). The tampered run must read that
//! chunk again and end in an `Err` from opening or searching: never a panic, never a result
//! list that differs from the untampered one.

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chartvault_index::{
    EncryptedDirectory, IndexError, IndexWriterService, PageRecord, SearchIndex, SearchRequest,
};
use chartvault_storage::{read_header, DataKey, KeyId, CHUNK_SIZE};
use chrono::NaiveDate;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, OwnedBytes, WatchCallback,
    WatchHandle, WritePtr,
};
use tantivy::HasLen;
use uuid::Uuid;

/// A sealed chunk on disk: ciphertext plus its 16-byte tag.
const SEALED_CHUNK: usize = CHUNK_SIZE + 16;

/// Every ciphertext range read, per file: `atomic_read`s count as reading the whole file.
type ReadLog = Arc<Mutex<Vec<(PathBuf, Range<usize>)>>>;

/// A directory that passes everything to `inner` and logs the byte ranges read from it.
#[derive(Clone, Debug)]
struct RecordingDirectory {
    inner: MmapDirectory,
    reads: ReadLog,
}

#[derive(Debug)]
struct RecordingHandle {
    inner: Arc<dyn FileHandle>,
    path: PathBuf,
    reads: ReadLog,
}

fn log_read(reads: &ReadLog, path: &Path, range: Range<usize>) {
    reads
        .lock()
        .expect("read log lock")
        .push((path.to_path_buf(), range));
}

impl HasLen for RecordingHandle {
    fn len(&self) -> usize {
        self.inner.len()
    }
}

impl FileHandle for RecordingHandle {
    fn read_bytes(&self, range: Range<usize>) -> std::io::Result<OwnedBytes> {
        log_read(&self.reads, &self.path, range.clone());
        self.inner.read_bytes(range)
    }
}

impl Directory for RecordingDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(Arc::new(RecordingHandle {
            inner: self.inner.get_file_handle(path)?,
            path: path.to_path_buf(),
            reads: Arc::clone(&self.reads),
        }))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        self.inner.open_write(path)
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let bytes = self.inner.atomic_read(path)?;
        log_read(&self.reads, path, 0..bytes.len());
        Ok(bytes)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        self.inner.atomic_write(path, data)
    }

    fn sync_directory(&self) -> std::io::Result<()> {
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 3, day).expect("valid date")
}

fn patient(number: u32) -> Uuid {
    Uuid::from_u128(0xfeed_0000 + u128::from(number % 3))
}

/// Deterministic filler words, `w0`..`w999`, skewed towards small numbers.
fn filler(seed: u32, count: u32) -> String {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let word = (state % 1000) * (state % 1000) / 1000;
            format!("w{word}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Three segments (one per commit), a deleted document (so delete bitsets exist), dates and
/// patients for the filters, and files long enough to span several chunks.
async fn build(dir: &Path, key: &DataKey, key_id: KeyId) {
    let mmap = MmapDirectory::open(dir).expect("mmap");
    let index =
        SearchIndex::open_in_directory(EncryptedDirectory::new(mmap, key.clone(), key_id, 1 << 20))
            .expect("index");
    let writer =
        IndexWriterService::start(&index, Duration::from_millis(20), 100_000).expect("writer");
    let deleted = Uuid::new_v4();
    for segment in 0..3u32 {
        let document = Uuid::from_u128(u128::from(segment) + 1);
        let mut pages: Vec<PageRecord> = (1..=1500u32)
            .map(|number| {
                let mut text = filler(segment * 1000 + number, 250);
                if number % 7 == 0 {
                    text.push_str(" Patient started on metformin 500 mg.");
                }
                if number % 11 == 0 {
                    text.push_str(" Metformis is a misspelling; metforminic too.");
                }
                PageRecord {
                    document_id: document,
                    page: number,
                    patient_id: patient(number),
                    patient_name: "Test Patient".to_string(),
                    document_type: "progress-note".to_string(),
                    category: "general".to_string(),
                    service_date: Some(date(1 + number % 28)),
                    text,
                }
            })
            .collect();
        pages.push(PageRecord {
            document_id: deleted,
            page: segment + 1,
            patient_id: patient(0),
            patient_name: "Test Patient".to_string(),
            document_type: "progress-note".to_string(),
            category: "general".to_string(),
            service_date: None,
            text: "metformin w1 w2 w3".to_string(),
        });
        writer.index_pages(pages).await.expect("pages index");
    }
    writer.delete_document(deleted).await.expect("delete");
    writer.shutdown().await.expect("shutdown");
}

fn requests() -> Vec<SearchRequest> {
    let request = |query: &str| SearchRequest {
        query: query.to_string(),
        limit: 50,
        ..SearchRequest::default()
    };
    vec![
        request("metformin"),
        request("\"started on metformin\""),
        request("metf*"),
        request("w1 w2"),
        request("w900"),
        SearchRequest {
            patient_ids: Some(vec![patient(1)]),
            ..request("metformin")
        },
        SearchRequest {
            from: Some(date(3)),
            to: Some(date(9)),
            ..request("w5")
        },
        SearchRequest {
            limit: 0,
            ..request("w0")
        },
    ]
}

/// Per request: the total and the hits (document, page, score bits).
type Outcome = Vec<(usize, Vec<(Uuid, u32, u32)>)>;

/// What one run read: every ciphertext range, and how many of them opening the index took.
struct Reads {
    all: Vec<(PathBuf, Range<usize>)>,
    while_opening: usize,
}

/// Opens the index on a fresh `EncryptedDirectory` (empty cache) over a recording directory,
/// runs every request, and returns the outcome and the ranges read.
fn open_and_search(
    dir: &Path,
    key: &DataKey,
    key_id: KeyId,
) -> (Result<Outcome, IndexError>, Reads) {
    let reads = ReadLog::default();
    let recording = RecordingDirectory {
        inner: MmapDirectory::open(dir).expect("mmap"),
        reads: Arc::clone(&reads),
    };
    // Stays 0 when opening fails.
    let mut while_opening = 0;
    let outcome: Result<Outcome, IndexError> = (|| {
        let index = SearchIndex::open_in_directory(EncryptedDirectory::new(
            recording,
            key.clone(),
            key_id,
            64 * 1024 * 1024,
        ))?;
        while_opening = reads.lock().expect("read log lock").len();
        requests()
            .iter()
            .map(|request| {
                let results = index.search(request)?;
                let hits = results
                    .hits
                    .iter()
                    .map(|hit| (hit.document_id, hit.page, hit.score.to_bits()))
                    .collect();
                Ok((results.total, hits))
            })
            .collect()
    })();
    let all = reads.lock().expect("read log lock").clone();
    (outcome, Reads { all, while_opening })
}

/// Indexes of the chunks of `file`, whose header is `header_len` bytes long, that `reads`
/// touched (a read of chunk `i` also peeks at the first byte of chunk `i + 1`; only bytes
/// past a chunk's start + 1 count).
fn chunks_read(reads: &[(PathBuf, Range<usize>)], file: &Path, header_len: usize) -> Vec<usize> {
    let mut chunks: Vec<usize> = reads
        .iter()
        .filter(|(path, range)| path == file && range.end > header_len)
        .flat_map(|(_, range)| {
            let start = range.start.max(header_len) - header_len;
            let end = range.end - header_len;
            // Chunks with a byte other than their first in start..end.
            (start / SEALED_CHUNK..=(end - 1) / SEALED_CHUNK).filter(move |chunk| {
                let chunk_start = chunk * SEALED_CHUNK;
                end > chunk_start + 1 && start < chunk_start + SEALED_CHUNK
            })
        })
        .collect();
    chunks.sort_unstable();
    chunks.dedup();
    chunks
}

fn read_touches(reads: &[(PathBuf, Range<usize>)], file: &Path, position: usize) -> bool {
    reads
        .iter()
        .any(|(path, range)| path == file && range.contains(&position))
}

#[tokio::test]
async fn a_flipped_byte_in_any_index_file_is_an_error_never_a_panic_or_different_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, key_id) = (DataKey::generate(), KeyId::generate());
    build(dir.path(), &key, key_id).await;

    let (baseline, baseline_reads) = open_and_search(dir.path(), &key, key_id);
    let baseline = baseline.expect("untampered index opens and searches");
    for (request, (total, _)) in requests().iter().zip(&baseline) {
        assert!(*total > 0, "{:?} finds nothing untampered", request.query);
    }

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|entry| PathBuf::from(entry.expect("entry").file_name()))
        .filter(|name| !name.to_string_lossy().ends_with(".lock"))
        .collect();
    files.sort();
    let extensions: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|name| name.extension())
        .map(|extension| extension.to_string_lossy().into_owned())
        .collect();
    for expected in [
        "idx",
        "pos",
        "term",
        "store",
        "fast",
        "fieldnorm",
        "del",
        "json",
    ] {
        assert!(extensions.contains(expected), "no .{expected}: {files:?}");
    }
    assert!(
        files.len() >= 3 * 7 + 2,
        "three segments of seven files plus two JSON files: {files:?}"
    );

    let mut flipped_chunks_read_only_by_searches = 0;
    for file in &files {
        let path = dir.path().join(file);
        let original = std::fs::read(&path).expect("read");
        let header_len = read_header(&mut &original[..]).expect("header").len();
        let chunks = (original.len() - header_len).div_ceil(SEALED_CHUNK);
        let read = chunks_read(&baseline_reads.all, file, header_len);
        let read_opening = chunks_read(
            &baseline_reads.all[..baseline_reads.while_opening],
            file,
            header_len,
        );
        // Prefer a chunk only the searches read, then one other than the last (which
        // tantivy reads on every open, for the file's footer), then any chunk read.
        let chunk = *read
            .iter()
            .find(|chunk| !read_opening.contains(chunk))
            .or_else(|| read.iter().find(|chunk| **chunk + 1 < chunks))
            .or(read.last())
            .unwrap_or_else(|| panic!("untampered run never read {file:?}"));
        if !read_opening.contains(&chunk) {
            flipped_chunks_read_only_by_searches += 1;
        }
        let chunk_start = header_len + chunk * SEALED_CHUNK;
        let chunk_end = original.len().min(chunk_start + SEALED_CHUNK);
        let position = (chunk_start + chunk_end) / 2;

        let mut tampered = original.clone();
        tampered[position] ^= 0x04;
        std::fs::write(&path, &tampered).expect("tamper");
        let run = catch_unwind(AssertUnwindSafe(|| {
            open_and_search(dir.path(), &key, key_id)
        }));
        std::fs::write(&path, &original).expect("restore");

        let (outcome, reads) = run.unwrap_or_else(|_| panic!("flip in {file:?} panicked"));
        assert!(
            read_touches(&reads.all, file, position),
            "tampered run of {file:?} never read the flipped chunk {chunk}"
        );
        match outcome {
            Err(_) => {}
            Ok(results) => {
                panic!(
                "flip in chunk {chunk} of {file:?} went unnoticed; results {} the untampered ones",
                if results == baseline { "equal" } else { "differ from" }
            )
            }
        }
    }
    assert!(
        flipped_chunks_read_only_by_searches >= 3,
        "some flips should hit chunks only searches read, not just what opening reads"
    );

    let (restored, _) = open_and_search(dir.path(), &key, key_id);
    assert_eq!(restored.expect("restored index searches"), baseline);
}
