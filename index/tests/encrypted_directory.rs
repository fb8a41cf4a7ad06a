//! [`EncryptedDirectory`]: tantivy's directory conformance cases (run against tantivy's own
//! `RamDirectory` too, to prove the cases themselves), plaintext reads across chunk
//! boundaries, the chunk cache, and a whole index kept encrypted on disk: no plaintext at
//! rest, tampering, wrong keys and swapped files all fail.

use chartvault_index::EncryptedDirectory;
use chartvault_storage::{
    is_object, read_header, DataKey, EncryptWriter, FormatVersion, KeyId, ObjectHeader, CHUNK_SIZE,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use tantivy::directory::error::OpenReadError;
use tantivy::directory::{Directory, FileHandle, MmapDirectory, RamDirectory, TerminatingWrite};
use tantivy::HasLen;

const CACHE_BYTES: usize = 4 * CHUNK_SIZE;

fn encrypted(inner: impl Into<Box<dyn Directory>>) -> EncryptedDirectory {
    EncryptedDirectory::new(inner, DataKey::generate(), KeyId::generate(), CACHE_BYTES)
}

/// Writes `data` to `path` through `directory` and terminates the writer.
fn write_file(directory: &dyn Directory, path: &Path, data: &[u8]) {
    let mut writer = directory.open_write(path).expect("open_write");
    writer.write_all(data).expect("write");
    writer.terminate().expect("terminate");
}

/// The length of the header `object` starts with (of whichever format version it names).
fn header_len(object: &[u8]) -> usize {
    read_header(&mut &object[..]).expect("object header").len()
}

/// Deterministic test bytes (xorshift), so failures reproduce.
fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The cases of tantivy's private `src/directory/tests.rs` (0.27), ported to run against any
/// directory, plus the atomic-file and ranged-read cases its other tests rely on.
mod conformance {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    use tantivy::directory::error::OpenReadError;
    use tantivy::directory::{Directory, Lock, TerminatingWrite, WatchCallback};
    use tantivy::HasLen;

    pub fn simple(directory: &dyn Directory) {
        let test_path = Path::new("some_path_for_test");
        let mut write_file = directory.open_write(test_path).expect("open_write");
        write_file.write_all(&[4]).expect("write");
        write_file.write_all(&[3]).expect("write");
        write_file.write_all(&[7, 3, 5]).expect("write");
        write_file.terminate().expect("terminate");
        let read_file = directory
            .open_read(test_path)
            .expect("open_read")
            .read_bytes()
            .expect("read_bytes");
        assert_eq!(read_file.as_slice(), &[4u8, 3u8, 7u8, 3u8, 5u8]);
        drop(read_file);
        assert!(directory.delete(test_path).is_ok());
        assert!(!directory.exists(test_path).expect("exists"));
    }

    pub fn rewrite_forbidden(directory: &dyn Directory) {
        let test_path = Path::new("some_path_for_test");
        let writer = directory.open_write(test_path).expect("open_write");
        assert!(directory.open_write(test_path).is_err());
        writer.terminate().expect("terminate");
        assert!(directory.exists(test_path).expect("exists"));
        assert!(directory.open_write(test_path).is_err());
        assert!(directory.delete(test_path).is_ok());
    }

    pub fn write_creates_the_file(directory: &dyn Directory) {
        let test_path = Path::new("some_path_for_test");
        assert!(directory.open_read(test_path).is_err());
        let writer = directory.open_write(test_path).expect("open_write");
        assert!(directory.exists(test_path).expect("exists"));
        writer.terminate().expect("terminate");
        assert!(directory.open_read(test_path).is_ok());
        assert!(directory.delete(test_path).is_ok());
    }

    pub fn delete_keeps_open_handles_readable(directory: &dyn Directory) {
        let test_path = Path::new("some_path_for_test");
        assert!(directory.open_read(test_path).is_err());
        let mut write_file = directory.open_write(test_path).expect("open_write");
        write_file.write_all(&[1, 2, 3, 4]).expect("write");
        write_file.terminate().expect("terminate");
        {
            let read_handle = directory
                .open_read(test_path)
                .expect("open_read")
                .read_bytes()
                .expect("read_bytes");
            assert_eq!(read_handle.as_slice(), &[1u8, 2u8, 3u8, 4u8]);
            assert!(directory.delete(test_path).is_ok());
            assert_eq!(read_handle.as_slice(), &[1u8, 2u8, 3u8, 4u8]);
            assert!(directory.delete(Path::new("SomeOtherPath")).is_err());
        }
        assert!(directory.open_read(test_path).is_err());
        assert!(directory.delete(test_path).is_err());
    }

    pub fn missing_file_is_file_does_not_exist(directory: &dyn Directory) {
        let missing = Path::new("missing_file");
        assert!(matches!(
            directory.open_read(missing),
            Err(OpenReadError::FileDoesNotExist(_))
        ));
        assert!(matches!(
            directory.atomic_read(missing),
            Err(OpenReadError::FileDoesNotExist(_))
        ));
        assert!(!directory.exists(missing).expect("exists"));
    }

    pub fn atomic_write_then_read_and_overwrite(directory: &dyn Directory) {
        let path = Path::new("meta.json");
        directory
            .atomic_write(path, b"first")
            .expect("atomic_write");
        assert_eq!(directory.atomic_read(path).expect("atomic_read"), b"first");
        directory
            .atomic_write(path, b"second, longer")
            .expect("overwrite");
        assert_eq!(
            directory.atomic_read(path).expect("atomic_read"),
            b"second, longer"
        );
        directory.atomic_write(path, b"").expect("empty");
        assert!(directory.atomic_read(path).expect("atomic_read").is_empty());
        assert!(directory.exists(path).expect("exists"));
        directory.delete(path).expect("delete");
        assert!(!directory.exists(path).expect("exists"));
    }

    /// Ranged reads through `FileSlice` (what tantivy's readers do): slices, sub-slices,
    /// empty ranges and the whole file, across chunk boundaries.
    pub fn ranged_reads(directory: &dyn Directory) {
        let path = Path::new("ranged");
        let data = super::pseudo_random_bytes(3 * super::CHUNK_SIZE + 123, 7);
        super::write_file(directory, path, &data);
        let slice = directory.open_read(path).expect("open_read");
        assert_eq!(slice.len(), data.len());
        let ranges = [
            0..0,
            0..1,
            5..9,
            super::CHUNK_SIZE - 1..super::CHUNK_SIZE + 1,
            super::CHUNK_SIZE..2 * super::CHUNK_SIZE,
            10..data.len(),
            data.len()..data.len(),
            data.len() - 1..data.len(),
        ];
        for range in ranges {
            let bytes = slice
                .read_bytes_slice(range.clone())
                .expect("read_bytes_slice");
            assert_eq!(bytes.as_slice(), &data[range.clone()], "range {range:?}");
            let sub = slice.slice(range.clone());
            assert_eq!(sub.len(), range.len());
            assert_eq!(sub.read_bytes().expect("sub").as_slice(), &data[range]);
        }
        let (head, tail) = slice.clone().split(super::CHUNK_SIZE + 3);
        assert_eq!(
            head.read_bytes().expect("head").as_slice(),
            &data[..super::CHUNK_SIZE + 3]
        );
        assert_eq!(
            tail.read_bytes().expect("tail").as_slice(),
            &data[super::CHUNK_SIZE + 3..]
        );
        directory.delete(path).expect("delete");
    }

    pub fn watch(directory: &dyn Directory) {
        let counter: Arc<AtomicUsize> = Default::default();
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        // Generous: the mmap directory's watcher polls meta.json every 500 ms.
        let timeout = Duration::from_secs(5);
        let handle = directory
            .watch(WatchCallback::new(move || {
                let val = counter.fetch_add(1, SeqCst);
                if let Ok(tx) = tx.lock() {
                    let _ = tx.send(val + 1);
                }
            }))
            .expect("watch");
        assert!(directory
            .atomic_write(Path::new("meta.json"), b"foo")
            .is_ok());
        assert_eq!(rx.recv_timeout(timeout), Ok(1));
        assert!(directory
            .atomic_write(Path::new("meta.json"), b"bar")
            .is_ok());
        assert_eq!(rx.recv_timeout(timeout), Ok(2));
        drop(handle);
        assert!(directory
            .atomic_write(Path::new("meta.json"), b"qux")
            .is_ok());
        assert!(rx.recv_timeout(Duration::from_millis(1500)).is_err());
    }

    fn lock(name: &str, is_blocking: bool) -> Lock {
        Lock {
            filepath: PathBuf::from(name),
            is_blocking,
        }
    }

    pub fn lock_non_blocking(directory: &dyn Directory) {
        {
            let lock_a = directory.acquire_lock(&lock("a.lock", false));
            assert!(lock_a.is_ok());
            let lock_b = directory.acquire_lock(&lock("b.lock", false));
            assert!(lock_b.is_ok());
            let lock_a_again = directory.acquire_lock(&lock("a.lock", false));
            assert!(lock_a_again.is_err());
        }
        assert!(directory.acquire_lock(&lock("a.lock", false)).is_ok());
    }

    pub fn lock_blocking(directory: &dyn Directory) {
        let lock_a = directory.acquire_lock(&lock("a.lock", true));
        assert!(lock_a.is_ok());
        let in_thread = Arc::new(AtomicBool::default());
        let in_thread_clone = in_thread.clone();
        let (sender, receiver) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            in_thread_clone.store(true, SeqCst);
            let _just_sync = receiver.recv();
            drop(lock_a);
        });
        {
            // The thread holds the lock: a non-blocking attempt fails.
            let lock_a = directory.acquire_lock(&lock("a.lock", false));
            assert!(lock_a.is_err());
        }
        let directory_clone = directory.box_clone();
        let (sender2, receiver2) = mpsc::channel::<()>();
        let join_handle = std::thread::spawn(move || {
            assert!(sender2.send(()).is_ok());
            let lock_a = directory_clone.acquire_lock(&lock("a.lock", true));
            assert!(in_thread.load(SeqCst));
            assert!(lock_a.is_ok());
        });
        assert!(receiver2.recv().is_ok());
        assert!(sender.send(()).is_ok());
        assert!(join_handle.join().is_ok());
    }

    /// One `#[test]` per case for a directory built by `$make` (which may return a guard,
    /// e.g. a temp dir, as its second element).
    macro_rules! conformance_tests {
        ($module:ident, $make:expr) => {
            mod $module {
                #[allow(unused_imports)]
                use super::super::*;

                fn run(case: fn(&dyn tantivy::directory::Directory)) {
                    let (directory, _guard) = $make;
                    case(&directory);
                }

                #[test]
                fn simple() {
                    run(crate::conformance::simple);
                }
                #[test]
                fn rewrite_forbidden() {
                    run(crate::conformance::rewrite_forbidden);
                }
                #[test]
                fn write_creates_the_file() {
                    run(crate::conformance::write_creates_the_file);
                }
                #[test]
                fn delete_keeps_open_handles_readable() {
                    run(crate::conformance::delete_keeps_open_handles_readable);
                }
                #[test]
                fn missing_file_is_file_does_not_exist() {
                    run(crate::conformance::missing_file_is_file_does_not_exist);
                }
                #[test]
                fn atomic_write_then_read_and_overwrite() {
                    run(crate::conformance::atomic_write_then_read_and_overwrite);
                }
                #[test]
                fn ranged_reads() {
                    run(crate::conformance::ranged_reads);
                }
                #[test]
                fn watch() {
                    run(crate::conformance::watch);
                }
                #[test]
                fn lock_non_blocking() {
                    run(crate::conformance::lock_non_blocking);
                }
                #[test]
                fn lock_blocking() {
                    run(crate::conformance::lock_blocking);
                }
            }
        };
    }

    conformance_tests!(ram_directory, (RamDirectory::default(), ()));
    conformance_tests!(mmap_directory, {
        let dir = tempfile::tempdir().expect("temp dir");
        let mmap = MmapDirectory::open(dir.path()).expect("mmap directory");
        (mmap, dir)
    });
    conformance_tests!(encrypted_over_ram, (encrypted(RamDirectory::default()), ()));
    conformance_tests!(encrypted_over_mmap, {
        let dir = tempfile::tempdir().expect("temp dir");
        let mmap = MmapDirectory::open(dir.path()).expect("mmap directory");
        (encrypted(mmap), dir)
    });
    conformance_tests!(encrypted_without_cache, {
        let directory = EncryptedDirectory::new(
            RamDirectory::default(),
            DataKey::generate(),
            KeyId::generate(),
            0,
        );
        (directory, ())
    });
}

/// Plaintext lengths around chunk boundaries.
const BOUNDARY_LENGTHS: [usize; 7] = [
    0,
    1,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    2 * CHUNK_SIZE,
    3 * CHUNK_SIZE + 17,
];

/// An encrypted directory whose cache is smaller than a multi-chunk file, so reads mix cache
/// hits, misses and evictions.
fn small_cache_directory(inner: RamDirectory, key: DataKey, key_id: KeyId) -> EncryptedDirectory {
    EncryptedDirectory::new(inner, key, key_id, 2 * CHUNK_SIZE)
}

/// Checks that `handle` reads as `data` at ranges around every chunk boundary and at 200
/// ranges drawn from `seed`.
fn assert_every_range_reads_as(handle: &dyn FileHandle, data: &[u8], seed: &mut u64) {
    let len = data.len();
    assert_eq!(handle.len(), len);
    let mut points = vec![0, len];
    for boundary in (0..=len).step_by(CHUNK_SIZE) {
        points.extend([boundary.saturating_sub(1), boundary, boundary + 1]);
    }
    points.retain(|&point| point <= len);
    for &start in &points {
        for &end in &points {
            if start <= end {
                let bytes = handle.read_bytes(start..end).expect("read_bytes");
                assert_eq!(
                    bytes.as_slice(),
                    &data[start..end],
                    "len {len} {start}..{end}"
                );
            }
        }
    }
    for _ in 0..200 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = (*seed >> 33) as usize % (len + 1);
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (*seed >> 33) as usize % (len + 1);
        let range = a.min(b)..a.max(b);
        let bytes = handle.read_bytes(range.clone()).expect("read_bytes");
        assert_eq!(
            bytes.as_slice(),
            &data[range.clone()],
            "len {len} {range:?}"
        );
    }
}

/// Lengths around chunk boundaries, each checked at ranges around every boundary and at
/// seeded random ranges.
#[test]
fn read_bytes_over_any_range_equals_the_plaintext() {
    let mut seed = 0x5eed_u64;
    for (file_number, &len) in BOUNDARY_LENGTHS.iter().enumerate() {
        let directory = small_cache_directory(
            RamDirectory::default(),
            DataKey::generate(),
            KeyId::generate(),
        );
        let path = PathBuf::from(format!("file_{file_number}"));
        let data = pseudo_random_bytes(len, file_number as u64 + 1);
        write_file(&directory, &path, &data);
        let handle = directory.get_file_handle(&path).expect("handle");
        assert_every_range_reads_as(&*handle, &data, &mut seed);
        assert!(directory.cached_bytes() <= 2 * CHUNK_SIZE);
    }
}

/// The bytes of `data` as an index file at `path` in object format version 1 (32-byte
/// header, chunks under the data key itself), as chartvault wrote index files before format
/// version 2: what an `EncryptedDirectory` must still read.
fn version_1_index_file(path: &Path, key: &DataKey, key_id: KeyId, data: &[u8]) -> Vec<u8> {
    let mut associated_data = b"chartvault:index:".to_vec();
    associated_data.extend_from_slice(path.as_os_str().as_encoded_bytes());
    let header = ObjectHeader::test_vector_v1(
        key_id,
        pseudo_random_bytes(7, 7).try_into().expect("7 bytes"),
    );
    let mut writer =
        EncryptWriter::with_test_vector_header(Vec::new(), header, key, &associated_data)
            .expect("header");
    writer.write_all(data).expect("write");
    let object = writer.finish().expect("finish");
    assert_eq!(FormatVersion::of_object(&object), Some(FormatVersion::V1));
    object
}

#[test]
fn version_1_files_read_over_any_range_beside_version_2_files() {
    let mut seed = 0x1d_u64;
    for (file_number, &len) in BOUNDARY_LENGTHS.iter().enumerate() {
        let (key, key_id) = (DataKey::generate(), KeyId::generate());
        let inner = RamDirectory::default();
        let directory = small_cache_directory(inner.clone(), key.clone(), key_id);
        let data = pseudo_random_bytes(len, file_number as u64 + 100);
        let old = PathBuf::from(format!("old_{file_number}"));
        write_file(
            &inner,
            &old,
            &version_1_index_file(&old, &key, key_id, &data),
        );
        let new = PathBuf::from(format!("new_{file_number}"));
        write_file(&directory, &new, &data);
        let stored = inner
            .open_read(&new)
            .expect("inner")
            .read_bytes()
            .expect("bytes");
        assert_eq!(
            FormatVersion::of_object(stored.as_slice()),
            Some(FormatVersion::V2)
        );

        let old_handle = directory.get_file_handle(&old).expect("version-1 handle");
        let new_handle = directory.get_file_handle(&new).expect("version-2 handle");
        assert_every_range_reads_as(&*old_handle, &data, &mut seed);
        assert_every_range_reads_as(&*new_handle, &data, &mut seed);
        assert!(directory.cached_bytes() <= 2 * CHUNK_SIZE);
    }
}

#[test]
fn a_flipped_byte_in_a_version_1_file_fails_only_its_chunk() {
    // Chunk offsets follow the version-1 header's 32 bytes: the chunks around the damaged
    // one still read.
    let (key, key_id) = (DataKey::generate(), KeyId::generate());
    let inner = RamDirectory::default();
    let directory = EncryptedDirectory::new(inner.clone(), key.clone(), key_id, 0);
    let path = Path::new("seg.pos");
    let data = pseudo_random_bytes(3 * CHUNK_SIZE - 5, 11);
    let mut stored = version_1_index_file(path, &key, key_id, &data);
    stored[32 + CHUNK_SIZE + 16 + 100] ^= 0x01;
    write_file(&inner, path, &stored);
    let handle = directory.get_file_handle(path).expect("handle");
    assert_eq!(handle.len(), data.len());
    assert_eq!(
        handle
            .read_bytes(0..CHUNK_SIZE)
            .expect("chunk 0")
            .as_slice(),
        &data[..CHUNK_SIZE]
    );
    assert!(handle.read_bytes(CHUNK_SIZE..CHUNK_SIZE + 1).is_err());
    assert_eq!(
        handle
            .read_bytes(2 * CHUNK_SIZE..data.len())
            .expect("chunk 2")
            .as_slice(),
        &data[2 * CHUNK_SIZE..]
    );
    assert!(handle.read_bytes(0..data.len()).is_err());
}

#[test]
fn a_version_1_meta_json_is_read_and_rewritten_as_version_2() {
    let (key, key_id) = (DataKey::generate(), KeyId::generate());
    let inner = RamDirectory::default();
    let directory = EncryptedDirectory::new(inner.clone(), key.clone(), key_id, CACHE_BYTES);
    let meta = Path::new("meta.json");
    let old = b"{\"segments\": [], \"opstamp\": 1}";
    inner
        .atomic_write(meta, &version_1_index_file(meta, &key, key_id, old))
        .expect("atomic_write");
    assert_eq!(directory.atomic_read(meta).expect("atomic_read"), old);
    let new = b"{\"segments\": [], \"opstamp\": 2}";
    directory.atomic_write(meta, new).expect("atomic_write");
    let stored = inner.atomic_read(meta).expect("inner");
    assert_eq!(FormatVersion::of_object(&stored), Some(FormatVersion::V2));
    assert_eq!(directory.atomic_read(meta).expect("atomic_read"), new);
}

/// A file handle opened before a delete keeps reading the old file, and a new file under the
/// same name is never served from the old file's cached chunks (tantivy never reuses a name,
/// but the cache must not rely on it; `MmapDirectory` itself would serve its cached mapping).
#[test]
fn cached_chunks_never_leak_into_a_new_file_under_an_old_name() {
    let directory = encrypted(RamDirectory::default());
    let path = Path::new("reused_name");
    write_file(&directory, path, b"old contents");
    let old_slice = directory.open_read(path).expect("open_read");
    assert_eq!(
        old_slice.read_bytes().expect("old").as_slice(),
        b"old contents"
    );
    directory.delete(path).expect("delete");
    assert_eq!(
        old_slice
            .read_bytes()
            .expect("read after delete")
            .as_slice(),
        b"old contents"
    );
    write_file(&directory, path, b"new contents, longer");
    let new_slice = directory.open_read(path).expect("open_read new");
    assert_eq!(
        new_slice.read_bytes().expect("new handle").as_slice(),
        b"new contents, longer"
    );
    assert_eq!(
        old_slice.read_bytes().expect("old handle").as_slice(),
        b"old contents"
    );
}

#[test]
fn read_past_the_end_is_an_error_not_a_panic() {
    let directory = encrypted(RamDirectory::default());
    let path = Path::new("short");
    write_file(&directory, path, b"twelve bytes");
    let handle = directory.get_file_handle(path).expect("handle");
    assert!(handle.read_bytes(0..13).is_err());
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 5..2;
    assert!(handle.read_bytes(backwards).is_err());
}

#[test]
fn files_are_stored_as_chartvault_objects_under_the_key_id() {
    let inner = RamDirectory::default();
    let key_id = KeyId::generate();
    let directory = EncryptedDirectory::new(inner.clone(), DataKey::generate(), key_id, 0);
    let plaintext = b"metformin 500 mg twice daily".repeat(5000);
    write_file(&directory, Path::new("seg.idx"), &plaintext);
    directory
        .atomic_write(Path::new("meta.json"), b"{\"note\": \"metformin\"}")
        .expect("atomic_write");
    for name in ["seg.idx", "meta.json"] {
        let stored = inner
            .open_read(Path::new(name))
            .expect("inner read")
            .read_bytes()
            .expect("bytes");
        assert_eq!(
            FormatVersion::of_object(stored.as_slice()),
            Some(FormatVersion::CURRENT),
            "{name}"
        );
        assert_eq!(&stored.as_slice()[8..24], key_id.as_bytes(), "{name}");
        assert!(
            !contains_ignoring_case(stored.as_slice(), b"metformin"),
            "{name}"
        );
    }
    let stored_len = inner
        .open_read(Path::new("seg.idx"))
        .expect("inner read")
        .len();
    assert_eq!(
        stored_len as u64,
        FormatVersion::CURRENT.ciphertext_len(plaintext.len() as u64)
    );
}

#[test]
fn a_renamed_or_swapped_file_fails_to_read() {
    let inner = RamDirectory::default();
    let directory = encrypted(inner.clone());
    write_file(&directory, Path::new("a.idx"), b"contents of a");
    write_file(&directory, Path::new("b.idx"), b"contents of b");
    let a_ciphertext = inner
        .open_read(Path::new("a.idx"))
        .expect("a")
        .read_bytes()
        .expect("a bytes");
    inner.delete(Path::new("b.idx")).expect("delete b");
    write_file(&inner, Path::new("b.idx"), a_ciphertext.as_slice());
    let handle = directory
        .get_file_handle(Path::new("b.idx"))
        .expect("handle");
    let error = handle
        .read_bytes(0..handle.len())
        .expect_err("swap detected");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn truncated_file_fails_at_the_last_chunk() {
    let inner = RamDirectory::default();
    let directory = encrypted(inner.clone());
    let data = pseudo_random_bytes(3 * CHUNK_SIZE, 3);
    write_file(&directory, Path::new("seg.pos"), &data);
    let stored = inner
        .open_read(Path::new("seg.pos"))
        .expect("inner")
        .read_bytes()
        .expect("bytes");
    // Drop the whole final chunk: what is left is two valid, non-final chunks.
    let cut = header_len(stored.as_slice()) + 2 * (CHUNK_SIZE + 16);
    inner.delete(Path::new("seg.pos")).expect("delete");
    write_file(&inner, Path::new("seg.pos"), &stored.as_slice()[..cut]);
    let handle = directory
        .get_file_handle(Path::new("seg.pos"))
        .expect("handle");
    assert_eq!(handle.len(), 2 * CHUNK_SIZE);
    assert!(handle.read_bytes(CHUNK_SIZE..2 * CHUNK_SIZE).is_err());
    // The first chunk itself is intact and not the last: it still reads.
    assert_eq!(
        handle.read_bytes(0..10).expect("first chunk").as_slice(),
        &data[..10]
    );
}

#[test]
fn a_flipped_byte_fails_only_its_chunk() {
    let inner = RamDirectory::default();
    let directory = encrypted(inner.clone());
    let data = pseudo_random_bytes(2 * CHUNK_SIZE + 5, 9);
    write_file(&directory, Path::new("seg.term"), &data);
    let mut stored = inner
        .open_read(Path::new("seg.term"))
        .expect("inner")
        .read_bytes()
        .expect("bytes")
        .as_slice()
        .to_vec();
    let second_chunk = header_len(&stored) + CHUNK_SIZE + 16;
    stored[second_chunk + 100] ^= 0x01;
    inner.delete(Path::new("seg.term")).expect("delete");
    write_file(&inner, Path::new("seg.term"), &stored);
    let handle = directory
        .get_file_handle(Path::new("seg.term"))
        .expect("handle");
    assert!(handle.read_bytes(CHUNK_SIZE..CHUNK_SIZE + 1).is_err());
    assert!(handle.read_bytes(0..handle.len()).is_err());
    assert_eq!(
        handle
            .read_bytes(0..CHUNK_SIZE)
            .expect("chunk 0")
            .as_slice(),
        &data[..CHUNK_SIZE]
    );
    assert_eq!(
        handle
            .read_bytes(2 * CHUNK_SIZE..2 * CHUNK_SIZE + 5)
            .expect("chunk 2")
            .as_slice(),
        &data[2 * CHUNK_SIZE..]
    );
}

#[test]
fn another_key_or_key_id_cannot_read() {
    let inner = RamDirectory::default();
    let key_id = KeyId::generate();
    let directory = EncryptedDirectory::new(inner.clone(), DataKey::generate(), key_id, 0);
    write_file(&directory, Path::new("seg.store"), b"stored fields");
    directory
        .atomic_write(Path::new("meta.json"), b"{}")
        .expect("atomic_write");

    let wrong_key = EncryptedDirectory::new(inner.clone(), DataKey::generate(), key_id, 0);
    let handle = wrong_key
        .get_file_handle(Path::new("seg.store"))
        .expect("header names the same key id");
    assert!(handle.read_bytes(0..handle.len()).is_err());
    assert!(wrong_key.atomic_read(Path::new("meta.json")).is_err());

    let wrong_id = EncryptedDirectory::new(inner, DataKey::generate(), KeyId::generate(), 0);
    assert!(matches!(
        wrong_id.get_file_handle(Path::new("seg.store")),
        Err(OpenReadError::IoError { .. })
    ));
    assert!(wrong_id.atomic_read(Path::new("meta.json")).is_err());
}

#[test]
fn an_unterminated_writer_leaves_a_file_that_never_decrypts() {
    let inner = RamDirectory::default();
    let directory = encrypted(inner.clone());
    let mut writer = directory.open_write(Path::new("seg.fast")).expect("open");
    writer.write_all(b"half written").expect("write");
    writer.flush().expect("flush");
    drop(writer);
    match directory.get_file_handle(Path::new("seg.fast")) {
        Err(_) => {}
        Ok(handle) => assert!(handle.read_bytes(0..handle.len()).is_err()),
    }
}

#[test]
fn cache_stays_within_its_budget_and_forgets_deleted_files() {
    let directory = EncryptedDirectory::new(
        RamDirectory::default(),
        DataKey::generate(),
        KeyId::generate(),
        3 * CHUNK_SIZE,
    );
    let data = pseudo_random_bytes(8 * CHUNK_SIZE, 11);
    write_file(&directory, Path::new("big"), &data);
    write_file(&directory, Path::new("small"), b"small file");
    let big = directory.get_file_handle(Path::new("big")).expect("big");
    assert_eq!(
        big.read_bytes(0..data.len()).expect("all").as_slice(),
        &data[..]
    );
    assert!(directory.cached_bytes() <= 3 * CHUNK_SIZE);
    assert_eq!(directory.cached_chunks(), 3);
    let small = directory
        .get_file_handle(Path::new("small"))
        .expect("small");
    assert_eq!(small.read_bytes(0..5).expect("small").as_slice(), b"small");
    assert_eq!(directory.cached_chunks(), 3);
    assert!(directory.cached_bytes() <= 3 * CHUNK_SIZE);
    directory.delete(Path::new("big")).expect("delete");
    assert_eq!(directory.cached_chunks(), 1);
    assert_eq!(directory.cached_bytes(), b"small file".len());
    // Clones share the cache.
    let clone = directory.clone();
    clone.delete(Path::new("small")).expect("delete");
    assert_eq!(directory.cached_bytes(), 0);
}

/// tantivy deletes segment files that old searchers still read (mmap, like `RamDirectory`,
/// keeps them readable): such reads must not put the deleted file's plaintext back into the
/// cache.
#[test]
fn a_handle_opened_before_a_delete_does_not_refill_the_cache() {
    let directory = EncryptedDirectory::new(
        RamDirectory::default(),
        DataKey::generate(),
        KeyId::generate(),
        8 * CHUNK_SIZE,
    );
    let data = pseudo_random_bytes(3 * CHUNK_SIZE, 5);
    write_file(&directory, Path::new("old-segment"), &data);
    write_file(&directory, Path::new("live"), b"live file");
    let old = directory
        .get_file_handle(Path::new("old-segment"))
        .expect("old");
    let live = directory.get_file_handle(Path::new("live")).expect("live");
    assert_eq!(
        old.read_bytes(0..CHUNK_SIZE).expect("first chunk").len(),
        CHUNK_SIZE
    );
    assert_eq!(live.read_bytes(0..4).expect("live").as_slice(), b"live");
    assert_eq!(
        directory.cached_files(),
        vec![
            (PathBuf::from("live"), 1),
            (PathBuf::from("old-segment"), 1)
        ]
    );

    directory.delete(Path::new("old-segment")).expect("delete");
    assert_eq!(directory.cached_files(), vec![(PathBuf::from("live"), 1)]);
    // The old handle still reads (decrypting from the inner directory), but caches nothing.
    assert_eq!(
        old.read_bytes(0..data.len()).expect("all").as_slice(),
        &data[..]
    );
    assert_eq!(directory.cached_chunks(), 1);
    assert_eq!(directory.cached_files(), vec![(PathBuf::from("live"), 1)]);

    // A new file under the old name is cached as usual, and never served the old chunks.
    write_file(&directory, Path::new("old-segment"), b"new contents");
    let new = directory
        .get_file_handle(Path::new("old-segment"))
        .expect("new");
    assert_eq!(new.read_bytes(0..3).expect("new").as_slice(), b"new");
    assert_eq!(old.read_bytes(0..16).expect("old").as_slice(), &data[..16]);
    assert_eq!(
        directory.cached_files(),
        vec![
            (PathBuf::from("live"), 1),
            (PathBuf::from("old-segment"), 1)
        ]
    );
    assert_eq!(directory.cached_chunks(), 2);
}

/// A read within one chunk shares the cached chunk (a short one is copied); a read across
/// chunks is assembled once and then served whole from the cache; all of it goes with the
/// file.
#[test]
fn reads_share_cached_plaintext_and_ranges_across_chunks_are_cached_whole() {
    let directory = EncryptedDirectory::new(
        RamDirectory::default(),
        DataKey::generate(),
        KeyId::generate(),
        64 * CHUNK_SIZE,
    );
    let data = pseudo_random_bytes(3 * CHUNK_SIZE + 100, 9);
    write_file(&directory, Path::new("file"), &data);
    let handle = directory
        .get_file_handle(Path::new("file"))
        .expect("handle");
    let read = |range: std::ops::Range<usize>| {
        let bytes = handle.read_bytes(range.clone()).expect("read");
        assert_eq!(bytes.as_slice(), &data[range]);
        bytes
    };

    // Within chunk 1: the same buffer both times, at the offset within the chunk.
    let within = CHUNK_SIZE + 100..CHUNK_SIZE + 20_000;
    let (first, second) = (read(within.clone()), read(within.clone()));
    assert_eq!(first.as_slice().as_ptr(), second.as_slice().as_ptr());
    let wider = read(CHUNK_SIZE..2 * CHUNK_SIZE);
    assert_eq!(wider.as_slice()[100..].as_ptr(), first.as_slice().as_ptr());
    assert_eq!(directory.cached_chunks(), 1);
    // A short read is a private copy.
    let (short, short_again) = (
        read(CHUNK_SIZE + 5..CHUNK_SIZE + 50),
        read(CHUNK_SIZE + 5..CHUNK_SIZE + 50),
    );
    assert_ne!(short.as_slice().as_ptr(), short_again.as_slice().as_ptr());
    assert_eq!(directory.cached_chunks(), 1);

    // Across chunks 0..=2: assembled (caching chunks 0 and 2 on the way) and cached whole.
    let across = 100..2 * CHUNK_SIZE + 100;
    let (first, second) = (read(across.clone()), read(across.clone()));
    assert_eq!(first.as_slice().as_ptr(), second.as_slice().as_ptr());
    assert_eq!(directory.cached_chunks(), 4);
    assert_eq!(directory.cached_files(), vec![(PathBuf::from("file"), 4)]);
    // Another range across chunks is another entry.
    read(200..CHUNK_SIZE + 200);
    assert_eq!(directory.cached_chunks(), 5);

    // Bytes handed out stay readable after the file (and its cache entries) are gone.
    directory.delete(Path::new("file")).expect("delete");
    assert_eq!(directory.cached_chunks(), 0);
    assert_eq!(directory.cached_bytes(), 0);
    assert_eq!(first.as_slice(), &data[across]);
    assert_eq!(wider.as_slice(), &data[CHUNK_SIZE..2 * CHUNK_SIZE]);
}

/// A range too large to cache whole (more than a sixteenth of the budget) is assembled for
/// each read, from cached chunks.
#[test]
fn large_ranges_across_chunks_are_not_cached_whole() {
    let directory = EncryptedDirectory::new(
        RamDirectory::default(),
        DataKey::generate(),
        KeyId::generate(),
        16 * CHUNK_SIZE,
    );
    let data = pseudo_random_bytes(4 * CHUNK_SIZE, 10);
    write_file(&directory, Path::new("file"), &data);
    let handle = directory
        .get_file_handle(Path::new("file"))
        .expect("handle");
    let across = 10..2 * CHUNK_SIZE + 10;
    let first = handle.read_bytes(across.clone()).expect("read");
    let second = handle.read_bytes(across.clone()).expect("read");
    assert_eq!(first.as_slice(), &data[across.clone()]);
    assert_eq!(second.as_slice(), &data[across]);
    assert_ne!(first.as_slice().as_ptr(), second.as_slice().as_ptr());
    assert_eq!(directory.cached_chunks(), 3);
}

/// Case-insensitive search for `needle` (ASCII) in `haystack`.
fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

mod whole_index {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use chartvault_index::{
        IndexError, IndexWriterService, PageRecord, SearchIndex, SearchRequest,
    };
    use uuid::Uuid;

    use super::*;

    const PATIENT: &str = "7e1d4c2a-9b3f-4e8a-a1c5-0f2d6b8e4a17";

    fn page(document_id: Uuid, page: u32, text: &str) -> PageRecord {
        PageRecord {
            document_id,
            page,
            patient_id: Uuid::parse_str(PATIENT).expect("patient uuid"),
            patient_name: "Test Patient".to_string(),
            document_type: "progress-note".to_string(),
            category: "general".to_string(),
            service_date: None,
            text: text.to_string(),
        }
    }

    fn open(dir: &Path, key: &DataKey, key_id: KeyId) -> Result<SearchIndex, IndexError> {
        let mmap = MmapDirectory::open(dir).map_err(tantivy::TantivyError::from)?;
        SearchIndex::open_in_directory(EncryptedDirectory::new(mmap, key.clone(), key_id, 1 << 20))
    }

    fn hits(index: &SearchIndex, query: &str) -> Result<Vec<(Uuid, u32)>, IndexError> {
        let results = index.search(&SearchRequest {
            query: query.to_string(),
            limit: 100,
            ..SearchRequest::default()
        })?;
        Ok(results
            .hits
            .iter()
            .map(|hit| (hit.document_id, hit.page))
            .collect())
    }

    /// Builds an encrypted index in a temp dir with pages mentioning metformin and a
    /// pelican, shuts the writer down and returns the dir, key and document id.
    async fn build() -> (tempfile::TempDir, DataKey, KeyId, Uuid) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (key, key_id) = (DataKey::generate(), KeyId::generate());
        let document = Uuid::new_v4();
        let index = open(dir.path(), &key, key_id).expect("create encrypted index");
        let writer = IndexWriterService::start(&index, Duration::from_millis(50), 1000)
            .expect("writer starts");
        let mut pages = vec![
            page(
                document,
                1,
                "Patient started on Metformin 500 mg twice daily.",
            ),
            page(
                document,
                2,
                "Bitten by a PELICAN at the harbour; wound cleaned.",
            ),
        ];
        // Enough filler for some segment files to span several chunks.
        for number in 3..400 {
            let words = pseudo_random_bytes(200, number.into())
                .iter()
                .map(|byte| format!("filler{byte}"))
                .collect::<Vec<_>>()
                .join(" ");
            pages.push(page(document, number, &words));
        }
        writer.index_pages(pages).await.expect("pages index");
        assert_eq!(
            hits(&index, "metformin").expect("search"),
            vec![(document, 1)]
        );
        writer.shutdown().await.expect("shutdown");
        (dir, key, key_id, document)
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|entry| entry.expect("dir entry").path())
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

    #[tokio::test]
    async fn index_is_searchable_after_reopen_and_holds_no_plaintext_on_disk() {
        let (dir, key, key_id, document) = build().await;

        let index = open(dir.path(), &key, key_id).expect("reopen");
        assert_eq!(
            hits(&index, "metformin").expect("search"),
            vec![(document, 1)]
        );
        assert_eq!(
            hits(&index, "pelican").expect("search"),
            vec![(document, 2)]
        );
        assert_eq!(index.page_count().expect("count"), 399);
        drop(index);

        let mut lock_files = BTreeSet::new();
        let mut largest = 0;
        let patient_simple = Uuid::parse_str(PATIENT).expect("uuid").simple().to_string();
        for path in files(dir.path()) {
            let bytes = std::fs::read(&path).expect("read index file");
            let file_name = name(&path);
            if file_name.ends_with(".lock") {
                assert!(bytes.is_empty(), "{file_name} holds bytes");
                lock_files.insert(file_name);
                continue;
            }
            assert!(is_object(&bytes), "{file_name} is not encrypted");
            largest = largest.max(bytes.len());
            for needle in [
                "metformin".as_bytes(),
                b"pelican",
                b"harbour",
                b"filler",
                PATIENT.as_bytes(),
                patient_simple.as_bytes(),
                document.to_string().as_bytes(),
            ] {
                assert!(
                    !contains_ignoring_case(&bytes, needle),
                    "{file_name} contains {:?}",
                    String::from_utf8_lossy(needle)
                );
            }
            let raw_patient = Uuid::parse_str(PATIENT).expect("uuid").into_bytes();
            assert!(!bytes.windows(16).any(|window| window == raw_patient));
        }
        // The only plain files are the (empty) lock files MmapDirectory creates for tantivy's
        // writer and meta locks; it leaves them in place after releasing them.
        assert!(
            lock_files.contains(".tantivy-writer.lock"),
            "{lock_files:?}"
        );
        assert!(lock_files
            .iter()
            .all(|name| name == ".tantivy-writer.lock" || name == ".tantivy-meta.lock"));
        assert!(
            largest > FormatVersion::CURRENT.header_len() + CHUNK_SIZE,
            "some file should span several chunks"
        );
    }

    /// Opens the index and runs a search; `Err` if either fails.
    fn open_and_search(dir: &Path, key: &DataKey, key_id: KeyId) -> Result<(), IndexError> {
        let index = open(dir, key, key_id)?;
        hits(&index, "metformin")?;
        hits(&index, "\"started on metformin\"")?;
        index.page_count()?;
        Ok(())
    }

    #[tokio::test]
    async fn a_flipped_byte_in_any_segment_file_fails_open_or_search() {
        let (dir, key, key_id, _) = build().await;
        let segment_files: Vec<PathBuf> = files(dir.path())
            .into_iter()
            .filter(|path| {
                let name = name(path);
                !name.ends_with(".lock") && !name.ends_with(".json")
            })
            .collect();
        assert!(!segment_files.is_empty());
        for path in segment_files {
            let original = std::fs::read(&path).expect("read");
            // A byte inside the last chunk: tantivy reads every file's footer on open.
            let sealed_chunk = CHUNK_SIZE + 16;
            let header_len = header_len(&original);
            let chunks = (original.len() - header_len).div_ceil(sealed_chunk);
            let last_chunk_start = header_len + (chunks - 1) * sealed_chunk;
            let position = (last_chunk_start + original.len()) / 2;
            let mut tampered = original.clone();
            tampered[position] ^= 0x20;
            std::fs::write(&path, &tampered).expect("tamper");
            assert!(
                open_and_search(dir.path(), &key, key_id).is_err(),
                "flipped byte in {} went unnoticed",
                name(&path)
            );
            std::fs::write(&path, &original).expect("restore");
        }
        open_and_search(dir.path(), &key, key_id).expect("restored index opens");
    }

    #[tokio::test]
    async fn wrong_key_fails_to_open() {
        let (dir, key, key_id, _) = build().await;
        assert!(open(dir.path(), &DataKey::generate(), key_id).is_err());
        assert!(open(dir.path(), &key, KeyId::generate()).is_err());
        open_and_search(dir.path(), &key, key_id).expect("right key opens");
    }

    #[tokio::test]
    async fn meta_json_swapped_for_another_files_ciphertext_fails() {
        let (dir, key, key_id, _) = build().await;
        let meta = dir.path().join("meta.json");
        let managed = std::fs::read(dir.path().join(".managed.json")).expect("managed");
        std::fs::write(&meta, managed).expect("swap");
        assert!(open(dir.path(), &key, key_id).is_err());
    }

    #[test]
    fn shared_key_material_is_not_in_debug_output() {
        let key = DataKey::from_bytes([0xab; 32]);
        let directory = EncryptedDirectory::new(RamDirectory::default(), key, KeyId::generate(), 0);
        let debug = format!("{directory:?}").to_lowercase();
        assert!(!debug.contains("abab"));
    }
}
