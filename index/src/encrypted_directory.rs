//! [`EncryptedDirectory`]: a tantivy [`Directory`] that keeps every index file encrypted at
//! rest, in the chartvault object format (`chartvault_storage::envelope`).
//!
//! It wraps another directory (an `MmapDirectory` in production, a `RamDirectory` in tests)
//! and stores in it only ciphertext; tantivy above it sees plaintext.
//!
//! # Contract
//!
//! What is **encrypted**, each file as one chartvault object (the index's key id, then
//! AES-256-GCM over [`CHUNK_SIZE`] chunks with counter nonces and a last-chunk flag) under a
//! key of its own, derived from the index's data key and a random salt in the file's header
//! (object format version 2, [`FormatVersion::CURRENT`]: however many files the index key
//! encrypts over the years, no AES-GCM key sees more than one file's nonces), with
//! associated data `"chartvault:index:" ‖ path` (the path as tantivy names the file), so a
//! file renamed, or swapped for another, fails to decrypt:
//!
//! - every file written through [`Directory::open_write`] (segment files: postings, term
//!   dictionaries, fast fields, the doc store, ...), streamed through
//!   [`EncryptWriter`]; the object is completed by `terminate`, so a writer dropped without
//!   it leaves a file that never decrypts;
//! - every file written through [`Directory::atomic_write`] (`meta.json`, `.managed.json`),
//!   sealed whole.
//!
//! Files written before version 2 existed (format version 1: 32-byte header, chunks under
//! the data key itself) stay readable: every read goes by the version and header length of
//! the file's own header. Such files are never rewritten in place; they disappear as tantivy
//! merges their segments (and `meta.json` and `.managed.json` at the next commit), whose
//! new files are version 2.
//!
//! What stays **plain**:
//!
//! - file names: tantivy's segment UUIDs plus extensions, `meta.json`, `.managed.json`,
//!   no patient data;
//! - lock files (`.tantivy-writer.lock`, `.tantivy-meta.lock`): [`Directory::acquire_lock`]
//!   is delegated to the inner directory, and they hold no bytes;
//! - file sizes (the ciphertext length reveals the plaintext length).
//!
//! **Reads** ([`Directory::get_file_handle`]) parse the file's header once, check it names
//! this directory's key id, and derive the file's key once ([`ObjectKey`]), kept by the
//! handle; `read_bytes(range)` then decrypts only the chunks the range touches, reading just
//! their ciphertext from the inner directory's own file handle (at offsets that follow the
//! header's length), with no header read or key derivation per read. Every buffer of
//! plaintext handed to tantivy is zeroised when tantivy (and the cache) drop it. A chunk that
//! fails authentication (flipped bit, wrong key, a chunk moved, a file cut short: the final
//! chunk must carry the last-chunk flag) is an `io::Error` of kind `InvalidData`: never wrong
//! bytes, never a panic.
//! `len()` is the plaintext length, derived from the ciphertext length and the header's
//! version.
//!
//! **The cache** holds decrypted chunks, in memory only, shared by all clones of a directory
//! and all its file handles, bounded to `cache_bytes` bytes of plaintext and evicted least
//! recently used first; its buffers are zeroised once evicted and no longer read. A read
//! within one chunk shares that chunk's buffer (no copy; a short read is copied instead, so
//! a few bytes tantivy keeps do not pin a whole chunk). A read across chunks needs one
//! contiguous buffer: it is assembled from the chunks and, unless larger than
//! `cache_bytes / 16`, cached whole as well, because tantivy re-reads the same ranges on
//! every search (e.g. a fast-field column it opens per query) and copying them each time
//! would dominate the latency of a cheap query. The budget counts what the cache holds: a
//! buffer tantivy still uses after its eviction (as it used its own copy before) is not
//! counted, and a shared read of at least `CHUNK_SIZE / 16` bytes keeps its whole chunk
//! alive. Deleting (or rewriting) a file
//! drops its chunks, and none of that file is cached again, even when a handle opened before
//! the delete (an old searcher's) reads on: such reads decrypt from the inner directory
//! without caching. (tantivy also keeps decoded structures in memory for a reader's lifetime:
//! plaintext in memory is expected, plaintext on disk never.)
//!
//! **Atomicity** is the inner directory's: reads never observe a partially written file,
//! because tantivy only opens a file after its writer terminated, and `atomic_write` is the
//! inner directory's atomic write of the sealed bytes. `delete`, `exists`, `acquire_lock` and
//! `sync_directory` are delegated unchanged.
//!
//! **Watching** is not delegated: `MmapDirectory`'s watcher hashes `meta.json` line by line as
//! UTF-8 and so never fires on ciphertext. Instead, like tantivy's `RamDirectory`, this
//! directory calls its watchers after each of its own `atomic_write`s of `meta.json` (shared by
//! all clones, so by every `Index` opened on it). A commit made by another process is not
//! seen; chartvault has a single index writer per index, in the process that searches it, and
//! reloads its reader explicitly after each commit.
//!
//! The storage crate's public [`DecryptReader`] does the decrypting: it is pointed (through
//! a small `Read + Seek` adapter over the inner file handle) at the chunk a read needs, so
//! the byte format is implemented in exactly one place.
//!
//! [`FormatVersion::CURRENT`]: chartvault_storage::FormatVersion::CURRENT

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chartvault_storage::{
    open, read_header, seal, DataKey, DecryptReader, EncryptWriter, KeyId, ObjectKey, CHUNK_SIZE,
    MAX_HEADER_LEN,
};
use lru::LruCache;
use stable_deref_trait::StableDeref;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, OwnedBytes, TerminatingWrite,
    WatchCallback, WatchCallbackList, WatchHandle, WritePtr,
};
use tantivy::HasLen;
use zeroize::Zeroizing;

/// The file tantivy commits through; its watchers are told when it changes.
const META_FILE: &str = "meta.json";

/// Prefix of every index file's associated data; the file's path follows it.
const AAD_PREFIX: &[u8] = b"chartvault:index:";

/// The associated data binding an index file's ciphertext to its path.
pub(crate) fn associated_data(path: &Path) -> Vec<u8> {
    let path_bytes = path.as_os_str().as_encoded_bytes();
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + path_bytes.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(path_bytes);
    aad
}

/// A tantivy directory storing every index file encrypted (contract in the module docs).
#[derive(Clone)]
pub struct EncryptedDirectory {
    inner: Box<dyn Directory>,
    key: Arc<DataKey>,
    key_id: KeyId,
    cache: Arc<ChunkCache>,
    watchers: Arc<WatchCallbackList>,
}

impl fmt::Debug for EncryptedDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedDirectory")
            .field("inner", &self.inner)
            .field("key_id", &self.key_id)
            .field("cache_bytes", &self.cache.capacity_bytes)
            .finish_non_exhaustive()
    }
}

impl EncryptedDirectory {
    /// An encrypted directory over a memory-mapped directory at `path` (created if missing).
    pub fn open_mmap(
        path: &Path,
        key: DataKey,
        key_id: KeyId,
        cache_bytes: usize,
    ) -> Result<Self, crate::IndexError> {
        std::fs::create_dir_all(path)?;
        let inner = tantivy::directory::MmapDirectory::open(path)
            .map_err(|e| crate::IndexError::Io(io::Error::other(e.to_string())))?;
        Ok(Self::new(inner, key, key_id, cache_bytes))
    }

    /// Encrypts into `inner` with the index's data key `key`, recorded in every file header
    /// as `key_id`, keeping at most `cache_bytes` of decrypted chunks in memory (0 disables
    /// the cache).
    pub fn new(
        inner: impl Into<Box<dyn Directory>>,
        key: DataKey,
        key_id: KeyId,
        cache_bytes: usize,
    ) -> Self {
        EncryptedDirectory {
            inner: inner.into(),
            key: Arc::new(key),
            key_id,
            cache: Arc::new(ChunkCache::new(cache_bytes)),
            watchers: Arc::new(WatchCallbackList::default()),
        }
    }

    /// The key id written into (and required in) every file header.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Bytes of decrypted chunks currently cached (never more than `cache_bytes`).
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().bytes
    }

    /// Number of cache entries: decrypted chunks, and reads across chunks cached whole.
    pub fn cached_chunks(&self) -> usize {
        self.cache.lock().chunks.len()
    }

    /// The files with entries in the cache (see [`Self::cached_chunks`]), each with its number
    /// of entries, sorted by path. Entries of a deleted (or rewritten) file are dropped with it
    /// and never cached again, so the counts add up to [`Self::cached_chunks`].
    pub fn cached_files(&self) -> Vec<(PathBuf, usize)> {
        let state = self.cache.lock();
        let paths: HashMap<u64, &PathBuf> = state
            .file_ids
            .iter()
            .map(|(path, id)| (*id, path))
            .collect();
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for (key, _) in state.chunks.iter() {
            *counts.entry(key.file_id()).or_default() += 1;
        }
        let mut files: Vec<(PathBuf, usize)> = counts
            .into_iter()
            .filter_map(|(id, count)| paths.get(&id).map(|path| ((*path).clone(), count)))
            .collect();
        files.sort();
        files
    }

    fn wrap_file_handle(
        &self,
        path: &Path,
        inner: Arc<dyn FileHandle>,
    ) -> io::Result<EncryptedFileHandle> {
        let ciphertext_len = inner.len();
        // Enough for the header of any version; read_header takes what its version needs.
        let header_bytes = inner.read_bytes(0..ciphertext_len.min(MAX_HEADER_LEN))?;
        let header = read_header(&mut header_bytes.as_slice())?;
        if header.key_id() != self.key_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "index file is encrypted under another key id",
            ));
        }
        let plaintext_len = header.plaintext_len(ciphertext_len as u64)?;
        let plaintext_len = usize::try_from(plaintext_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "index file too large"))?;
        Ok(EncryptedFileHandle {
            inner,
            path: path.to_path_buf(),
            associated_data: associated_data(path),
            object_key: ObjectKey::derive(&self.key, &header),
            cache: Arc::clone(&self.cache),
            file_id: self.cache.file_id(path),
            plaintext_len,
        })
    }
}

impl Directory for EncryptedDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        let inner = self.inner.get_file_handle(path)?;
        let handle = self
            .wrap_file_handle(path, inner)
            .map_err(|error| OpenReadError::wrap_io_error(error, path.to_path_buf()))?;
        Ok(Arc::new(handle))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        let result = self.inner.delete(path);
        self.cache.forget_file(path);
        result
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let inner = self.inner.open_write(path)?;
        // A new file under this name must never be served from an old file's chunks.
        self.cache.forget_file(path);
        let writer = EncryptWriter::new(inner, &self.key_id, &self.key, &associated_data(path))
            .map_err(|error| OpenWriteError::wrap_io_error(error, path.to_path_buf()))?;
        Ok(io::BufWriter::new(Box::new(EncryptingWrite {
            writer: Some(writer),
        })))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let sealed = self.inner.atomic_read(path)?;
        open(&self.key, &associated_data(path), &sealed)
            .map_err(|error| OpenReadError::wrap_io_error(error.into(), path.to_path_buf()))
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let sealed = seal(&self.key_id, &self.key, &associated_data(path), data);
        self.inner.atomic_write(path, &sealed)?;
        if path == Path::new(META_FILE) {
            // Like RamDirectory: run the callbacks in the background, do not wait for them.
            drop(self.watchers.broadcast());
        }
        Ok(())
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(self.watchers.subscribe(watch_callback))
    }
}

/// The writer behind [`EncryptedDirectory::open_write`]: encrypts into the inner directory's
/// writer; `terminate` writes the final chunk, then terminates the inner writer.
struct EncryptingWrite {
    /// `None` once terminated.
    writer: Option<EncryptWriter<WritePtr>>,
}

impl EncryptingWrite {
    fn writer(&mut self) -> io::Result<&mut EncryptWriter<WritePtr>> {
        self.writer
            .as_mut()
            .ok_or_else(|| io::Error::other("index file writer used after terminate"))
    }
}

impl Write for EncryptingWrite {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.writer()?.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

impl TerminatingWrite for EncryptingWrite {
    fn terminate_ref(&mut self, _token: AntiCallToken) -> io::Result<()> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("index file writer terminated twice"))?;
        writer.finish()?.terminate()
    }
}

/// A cached chunk (or assembled range) of plaintext, zeroised when its last reference goes.
type Chunk = Arc<Zeroizing<Vec<u8>>>;

/// What the cache holds for a file. File ids are handed out per path by
/// [`ChunkCache::file_id`] and retired when the file is deleted or rewritten, so a new file
/// under an old name, and an old handle to a deleted file, never share entries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum ChunkKey {
    /// Chunk `index` of file `file_id`.
    Chunk { file_id: u64, index: usize },
    /// Plaintext bytes `start..end` of file `file_id`, spanning several chunks.
    Span {
        file_id: u64,
        start: usize,
        end: usize,
    },
}

impl ChunkKey {
    fn file_id(&self) -> u64 {
        match *self {
            ChunkKey::Chunk { file_id, .. } | ChunkKey::Span { file_id, .. } => file_id,
        }
    }
}

/// Reads shorter than this are copied out of their chunk rather than sharing it.
const SHARE_MIN_BYTES: usize = CHUNK_SIZE / 16;

/// Plaintext handed to tantivy: a cached buffer (or a private copy), zeroised when its last
/// reference goes.
struct SharedPlaintext(Chunk);

impl Deref for SharedPlaintext {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

// SAFETY: the bytes live in the heap buffer of a `Vec` behind an `Arc`; nothing mutates or
// reallocates that `Vec` after it is wrapped (only shared references exist), so the slice
// `deref` returns stays at the same address for as long as any clone of the `Arc` lives,
// wherever the `SharedPlaintext` itself moves.
unsafe impl StableDeref for SharedPlaintext {}

fn owned_bytes(plaintext: Chunk) -> OwnedBytes {
    OwnedBytes::new(SharedPlaintext(plaintext))
}

struct ChunkCache {
    capacity_bytes: usize,
    state: Mutex<CacheState>,
}

struct CacheState {
    chunks: LruCache<ChunkKey, Chunk>,
    /// Sum of the lengths of `chunks`.
    bytes: usize,
    file_ids: HashMap<PathBuf, u64>,
    next_file_id: u64,
}

impl ChunkCache {
    fn new(capacity_bytes: usize) -> Self {
        ChunkCache {
            capacity_bytes,
            state: Mutex::new(CacheState {
                chunks: LruCache::unbounded(),
                bytes: 0,
                file_ids: HashMap::new(),
                next_file_id: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // The state stays consistent across a panic (each update completes before unlocking
        // or leaves only a harmless stale entry), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn file_id(&self, path: &Path) -> u64 {
        let mut state = self.lock();
        if let Some(id) = state.file_ids.get(path) {
            return *id;
        }
        let id = state.next_file_id;
        state.next_file_id += 1;
        state.file_ids.insert(path.to_path_buf(), id);
        id
    }

    fn forget_file(&self, path: &Path) {
        let mut state = self.lock();
        let Some(file_id) = state.file_ids.remove(path) else {
            return;
        };
        let stale: Vec<ChunkKey> = state
            .chunks
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| key.file_id() == file_id)
            .collect();
        for key in stale {
            if let Some(chunk) = state.chunks.pop(&key) {
                state.bytes -= chunk.len();
            }
        }
    }

    fn get(&self, key: ChunkKey) -> Option<Chunk> {
        self.lock().chunks.get(&key).cloned()
    }

    /// Caches chunk `key` of the file at `path`, unless that file has been deleted or
    /// rewritten since the reader's handle was opened (its id retired).
    fn insert(&self, path: &Path, key: ChunkKey, chunk: Chunk) {
        if chunk.len() > self.capacity_bytes {
            return;
        }
        let mut state = self.lock();
        if state.file_ids.get(path) != Some(&key.file_id()) {
            return;
        }
        if let Some(previous) = state.chunks.put(key, Arc::clone(&chunk)) {
            state.bytes -= previous.len();
        }
        state.bytes += chunk.len();
        while state.bytes > self.capacity_bytes {
            match state.chunks.pop_lru() {
                Some((_, evicted)) => state.bytes -= evicted.len(),
                None => break,
            }
        }
        debug_assert!(state.bytes <= self.capacity_bytes);
    }
}

/// A read-only view of one encrypted index file, in plaintext.
struct EncryptedFileHandle {
    inner: Arc<dyn FileHandle>,
    path: PathBuf,
    associated_data: Vec<u8>,
    /// The file's own key, derived once when the handle was opened, and its header.
    object_key: ObjectKey,
    cache: Arc<ChunkCache>,
    file_id: u64,
    plaintext_len: usize,
}

impl fmt::Debug for EncryptedFileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedFileHandle")
            .field("path", &self.path)
            .field("len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl HasLen for EncryptedFileHandle {
    fn len(&self) -> usize {
        self.plaintext_len
    }
}

/// A [`DecryptReader`] over the inner file, and the index of the chunk its next read returns.
type PositionedReader<'a> = (DecryptReader<InnerFileReader<'a>>, usize);

impl EncryptedFileHandle {
    fn chunk_len(&self, index: usize) -> usize {
        (self.plaintext_len - index * CHUNK_SIZE).min(CHUNK_SIZE)
    }

    /// Decrypts chunk `index`, reusing `reader` when it already stands at that chunk (a run
    /// of cache misses is decrypted in one sequential pass).
    fn decrypt_chunk<'a>(
        &'a self,
        reader: &mut Option<PositionedReader<'a>>,
        index: usize,
    ) -> io::Result<Chunk> {
        let (mut decrypt, next_index) = match reader.take() {
            Some(positioned) => positioned,
            None => {
                // Positioned past the header parsed when the handle was opened: no header
                // read, no key derivation.
                let inner = InnerFileReader::new(&*self.inner, self.object_key.header().len());
                let decrypt =
                    DecryptReader::from_object_key(inner, &self.object_key, &self.associated_data);
                // usize::MAX never matches, so a fresh reader always seeks.
                (decrypt, usize::MAX)
            }
        };
        if next_index != index {
            decrypt.seek(SeekFrom::Start((index * CHUNK_SIZE) as u64))?;
        }
        let mut chunk = Zeroizing::new(vec![0u8; self.chunk_len(index)]);
        decrypt.read_exact(&mut chunk).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(io::ErrorKind::InvalidData, "index file is cut short")
            } else {
                error
            }
        })?;
        *reader = Some((decrypt, index + 1));
        Ok(Arc::new(chunk))
    }
}

impl EncryptedFileHandle {
    /// Chunk `index`, from the cache or decrypted (and then cached).
    fn chunk<'a>(
        &'a self,
        reader: &mut Option<PositionedReader<'a>>,
        index: usize,
    ) -> io::Result<Chunk> {
        let key = ChunkKey::Chunk {
            file_id: self.file_id,
            index,
        };
        if let Some(chunk) = self.cache.get(key) {
            return Ok(chunk);
        }
        let chunk = self.decrypt_chunk(reader, index)?;
        self.cache.insert(&self.path, key, Arc::clone(&chunk));
        Ok(chunk)
    }
}

fn wrong_chunk_length() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "decrypted chunk has wrong length",
    )
}

impl FileHandle for EncryptedFileHandle {
    /// Plaintext bytes `range`: chunks `range.start / CHUNK_SIZE ..= (range.end - 1) /
    /// CHUNK_SIZE`, each from the cache or decrypted (and then cached); a range across chunks
    /// is itself cached whole (module docs).
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if range.start > range.end || range.end > self.plaintext_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "read of bytes {}..{} of {:?}, which holds {} bytes",
                    range.start, range.end, self.path, self.plaintext_len
                ),
            ));
        }
        if range.is_empty() {
            return Ok(OwnedBytes::empty());
        }
        let first_chunk = range.start / CHUNK_SIZE;
        let last_chunk = (range.end - 1) / CHUNK_SIZE;
        let mut reader = None;

        if first_chunk == last_chunk {
            let chunk = self.chunk(&mut reader, first_chunk)?;
            let chunk_start = first_chunk * CHUNK_SIZE;
            let part = range.start - chunk_start..range.end - chunk_start;
            if chunk.len() < part.end {
                return Err(wrong_chunk_length());
            }
            if part.len() < SHARE_MIN_BYTES {
                let copy = Zeroizing::new(chunk[part].to_vec());
                return Ok(owned_bytes(Arc::new(copy)));
            }
            return Ok(owned_bytes(chunk).slice(part));
        }

        let span = ChunkKey::Span {
            file_id: self.file_id,
            start: range.start,
            end: range.end,
        };
        let cache_span = range.len() <= self.cache.capacity_bytes / 16;
        if cache_span {
            if let Some(plaintext) = self.cache.get(span) {
                return Ok(owned_bytes(plaintext));
            }
        }
        // Exact capacity: the buffer never reallocates, so no unzeroised copy is left behind.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(range.len()));
        for index in first_chunk..=last_chunk {
            let chunk = self.chunk(&mut reader, index)?;
            let chunk_start = index * CHUNK_SIZE;
            let from = range.start.max(chunk_start) - chunk_start;
            let to = range.end.min(chunk_start + chunk.len()) - chunk_start;
            let part = chunk.get(from..to).ok_or_else(wrong_chunk_length)?;
            plaintext.extend_from_slice(part);
        }
        if plaintext.len() != range.len() {
            return Err(wrong_chunk_length());
        }
        let plaintext = Arc::new(plaintext);
        if cache_span {
            self.cache.insert(&self.path, span, Arc::clone(&plaintext));
        }
        Ok(owned_bytes(plaintext))
    }
}

/// `Read + Seek` over an inner file handle, so [`DecryptReader`] can fetch exactly the
/// chunks it needs.
struct InnerFileReader<'a> {
    handle: &'a dyn FileHandle,
    position: usize,
}

impl<'a> InnerFileReader<'a> {
    /// A reader of `handle` positioned at byte `position`.
    fn new(handle: &'a dyn FileHandle, position: usize) -> Self {
        InnerFileReader { handle, position }
    }
}

impl Read for InnerFileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let len = self.handle.len();
        if self.position >= len || out.is_empty() {
            return Ok(0);
        }
        let end = len.min(self.position.saturating_add(out.len()));
        let bytes = self.handle.read_bytes(self.position..end)?;
        let count = bytes.len().min(out.len());
        out[..count].copy_from_slice(&bytes.as_slice()[..count]);
        self.position += count;
        Ok(count)
    }
}

impl Seek for InnerFileReader<'_> {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        let len = self.handle.len() as u64;
        let position = match target {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => (self.position as u64).checked_add_signed(delta),
            SeekFrom::End(delta) => len.checked_add_signed(delta),
        }
        .and_then(|position| usize::try_from(position).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid seek"))?;
        self.position = position;
        Ok(position as u64)
    }
}
