//! An index's commits published to object storage, and followed from other machines.
//!
//! Owns: the published layout under [`PUBLISHED_PREFIX`] of a blob store: `index/files/NAME`
//! for every file of the published commit (its ciphertext as the index directory holds it,
//! copied byte for byte), and `index/HEAD`, the commit point: an envelope, under the index
//! key, of the list of those files with their lengths and of the commit's `meta.json`.
//!
//! Promises:
//! - [`Publisher::publish`] uploads the files of the directory's current commit that are
//!   not yet in the store, then replaces `HEAD` (one PUT: a reader sees the old commit or
//!   the new one, never half of one), then deletes the objects no longer named by `HEAD`
//!   (a purged document's segments leave the bucket with the publish that follows the purge).
//! - One publisher at a time: a publish first checks that the head is still the one this
//!   publisher last wrote (or started from), and fails if another process published since,
//!   so a writer that lost its role cannot overwrite its successor's commits (its callers
//!   are told their commit failed, and retry with the new writer).
//! - [`Follower::sync`] makes a local directory a copy of the published commit: it downloads
//!   the files it lacks, then writes `meta.json` (atomically), then deletes local files the
//!   commit no longer names. It never runs where a writer works: it takes the directory's
//!   writer lock for the duration, and does nothing if it cannot.
//! - Nothing in the store or the head is plaintext: segment files are the encrypted
//!   directory's, and the head is sealed under the index key, bound to its name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use chartvault_storage::{BlobName, BlobStore, DataKey, KeyId, StorageError};
use serde::{Deserialize, Serialize};
use tantivy::directory::{Directory, MmapDirectory, INDEX_WRITER_LOCK};

use crate::encrypted_directory::associated_data;
use crate::error::IndexError;
use crate::live::{LiveIndexFiles, META_FILE};

/// Where in the blob store the published index lives.
pub const PUBLISHED_PREFIX: &str = "index/";
/// The commit point: which files, and the commit's `meta.json`.
const HEAD: &str = "index/HEAD";
/// Where each published file lives (followed by its name).
const FILES: &str = "index/files/";
/// Associated data of the sealed head.
const HEAD_AAD: &[u8] = b"chartvault:index-head";
/// How often a publish starts over when a merge replaced a file between reading the commit
/// and uploading it.
const PUBLISH_ATTEMPTS: usize = 5;
/// Prefix of a file being downloaded (hidden: not a name tantivy or the follower lists).
const PART_PREFIX: &str = ".part-";

/// The plaintext of `index/HEAD`.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    /// Counts the publishes of the archive (monotonic across writers).
    sequence: u64,
    /// The commit's files (not `meta.json`) and their lengths.
    files: BTreeMap<String, u64>,
    /// The ciphertext of the commit's `meta.json`, base64.
    meta: String,
}

fn publish_error(what: &str, error: impl std::fmt::Display) -> IndexError {
    IndexError::Published(format!("{what}: {error}"))
}

fn blob(name: String) -> Result<BlobName, IndexError> {
    BlobName::new(name).map_err(|error| publish_error("naming a published file", error))
}

/// The sealed head, if one is published; its bytes come along so a follower can tell
/// cheaply that nothing changed.
fn read_head(blobs: &dyn BlobStore, key: &DataKey) -> Result<Option<(Vec<u8>, Head)>, IndexError> {
    let mut reader = match blobs.open(&blob(HEAD.to_string())?) {
        Ok(reader) => reader,
        Err(StorageError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(publish_error("opening the published head", error)),
    };
    let mut sealed = Vec::new();
    reader
        .read_to_end(&mut sealed)
        .map_err(|error| publish_error("reading the published head", error))?;
    let plaintext = chartvault_storage::envelope::open(key, HEAD_AAD, &sealed)
        .map_err(|error| publish_error("decrypting the published head", error))?;
    let head: Head = serde_json::from_slice(&plaintext)
        .map_err(|error| publish_error("parsing the published head", error))?;
    for name in head.files.keys() {
        if !is_file_name(name) {
            return Err(IndexError::Published(
                "the published head names a file outside the index".to_string(),
            ));
        }
    }
    Ok(Some((sealed, head)))
}

/// Whether `name` is a plain file name an index may hold (no path, not hidden).
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The plain files of a directory (no hidden files, no `meta.json`).
fn local_files(dir: &Path) -> Result<BTreeSet<String>, IndexError> {
    let mut names = BTreeSet::new();
    if !dir.is_dir() {
        return Ok(names);
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && is_file_name(&name) && name != META_FILE {
            names.insert(name);
        }
    }
    Ok(names)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Publishes the commits of the index directory its writer works in.
pub struct Publisher {
    dir: PathBuf,
    blobs: Arc<dyn BlobStore>,
    key: Arc<DataKey>,
    key_id: KeyId,
    sequence: u64,
    /// Files under `index/files/`.
    published: BTreeSet<String>,
    /// Local files this writer did not write (downloaded while following): tantivy does not
    /// manage them, so the publisher deletes each once no commit names it.
    inherited: BTreeSet<String>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("dir", &self.dir)
            .field("sequence", &self.sequence)
            .field("published", &self.published.len())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher of the index in `dir` (encrypted under `key`, recorded as `key_id`) to
    /// `blobs`, whose directory holds the published commit number `sequence` (0: none).
    /// Blocking.
    pub fn new(
        dir: &Path,
        blobs: Arc<dyn BlobStore>,
        key: Arc<DataKey>,
        key_id: KeyId,
        sequence: u64,
    ) -> Result<Publisher, IndexError> {
        let published = blobs
            .list(FILES)
            .map_err(|error| publish_error("listing the published files", error))?
            .into_iter()
            .filter_map(|name| name.as_str().strip_prefix(FILES).map(str::to_string))
            .collect();
        Ok(Publisher {
            dir: dir.to_path_buf(),
            blobs,
            key,
            key_id,
            sequence,
            published,
            inherited: local_files(dir)?,
        })
    }

    /// How many commits the archive has published (the last head's sequence number).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Publishes the directory's current commit (see the module's promises). Blocking; call
    /// it where the writer cannot commit meanwhile (the writer thread, after a commit).
    pub fn publish(&mut self) -> Result<(), IndexError> {
        let mut last_error = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            match self.try_publish() {
                Ok(()) => return Ok(()),
                // A file of the commit read is gone: a merge committed meanwhile. Read the
                // commit again.
                Err(IndexError::Io(error)) if error.kind() == io::ErrorKind::NotFound => {
                    last_error = Some(IndexError::Io(error));
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(IndexError::Published("no attempt was made".to_string())))
    }

    fn try_publish(&mut self) -> Result<(), IndexError> {
        let current =
            read_head(self.blobs.as_ref(), &self.key)?.map_or(0, |(_, head)| head.sequence);
        if current != self.sequence {
            return Err(IndexError::Published(format!(
                "another process published commit {current} of the index since this writer's \
                 commit {}: this process no longer writes the index",
                self.sequence
            )));
        }
        let meta_sealed = fs::read(self.dir.join(META_FILE))?;
        let meta = chartvault_storage::envelope::open(
            &self.key,
            &associated_data(Path::new(META_FILE)),
            &meta_sealed,
        )
        .map_err(|error| IndexError::CorruptMeta(format!("reading {META_FILE}: {error}")))?;
        let live = LiveIndexFiles::from_meta_json(&meta)
            .ok_or_else(|| IndexError::CorruptMeta(format!("{META_FILE} is not index metadata")))?;
        let mut files = BTreeMap::new();
        for name in live.segment_files() {
            let path = self.dir.join(name);
            let len = fs::metadata(&path)?.len();
            if !self.published.contains(name) {
                let mut source = fs::File::open(&path)?;
                let mut target = self
                    .blobs
                    .create(&blob(format!("{FILES}{name}"))?)
                    .map_err(|error| publish_error("uploading an index file", error))?;
                io::copy(&mut source, &mut target)?;
                target
                    .commit()
                    .map_err(|error| publish_error("uploading an index file", error))?;
                self.published.insert(name.clone());
            }
            files.insert(name.clone(), len);
        }
        let head = Head {
            sequence: self.sequence + 1,
            files,
            meta: base64::engine::general_purpose::STANDARD.encode(&meta_sealed),
        };
        let plaintext = serde_json::to_vec(&head).expect("a head serialises");
        let sealed =
            chartvault_storage::envelope::seal(&self.key_id, &self.key, HEAD_AAD, &plaintext);
        let mut writer = self
            .blobs
            .create(&blob(HEAD.to_string())?)
            .map_err(|error| publish_error("writing the published head", error))?;
        writer.write_all(&sealed)?;
        writer
            .commit()
            .map_err(|error| publish_error("writing the published head", error))?;
        self.sequence = head.sequence;
        // Only now may what the old head named go.
        let obsolete: Vec<String> = self
            .published
            .iter()
            .filter(|name| !head.files.contains_key(*name))
            .cloned()
            .collect();
        for name in obsolete {
            self.blobs
                .delete(&blob(format!("{FILES}{name}"))?)
                .map_err(|error| publish_error("deleting an obsolete published file", error))?;
            self.published.remove(&name);
        }
        let gone: Vec<String> = self
            .inherited
            .iter()
            .filter(|name| !head.files.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            remove_if_present(&self.dir.join(&name))?;
            self.inherited.remove(&name);
        }
        Ok(())
    }
}

/// Keeps a local index directory a copy of the published commit.
pub struct Follower {
    dir: PathBuf,
    blobs: Arc<dyn BlobStore>,
    key: Arc<DataKey>,
    key_id: KeyId,
    /// The sealed head last made local, and its sequence number.
    last_head: Option<(Vec<u8>, u64)>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower keeping `dir` (created if missing) a copy of what is published in `blobs`
    /// (encrypted under `key`, recorded as `key_id`).
    pub fn new(
        dir: &Path,
        blobs: Arc<dyn BlobStore>,
        key: Arc<DataKey>,
        key_id: KeyId,
    ) -> Result<Follower, IndexError> {
        fs::create_dir_all(dir)?;
        Ok(Follower {
            dir: dir.to_path_buf(),
            blobs,
            key,
            key_id,
            last_head: None,
        })
    }

    /// The publisher that takes over from the commit this follower made local last. Blocking.
    pub fn into_publisher(self) -> Result<Publisher, IndexError> {
        let sequence = self.last_head.map_or(0, |(_, sequence)| sequence);
        Publisher::new(&self.dir, self.blobs, self.key, self.key_id, sequence)
    }

    /// Makes the local directory the published commit; `Ok(true)` if it changed (reload the
    /// reader then), `Ok(false)` if nothing is published or nothing changed. Fails if a
    /// writer works in the directory. Blocking.
    pub fn sync(&mut self) -> Result<bool, IndexError> {
        let Some((sealed, head)) = read_head(self.blobs.as_ref(), &self.key)? else {
            return Ok(false);
        };
        if self.last_head.as_ref().map(|(bytes, _)| bytes) == Some(&sealed) {
            return Ok(false);
        }
        let directory = MmapDirectory::open(&self.dir)
            .map_err(|error| publish_error("opening the local index directory", error))?;
        let _lock = directory
            .acquire_lock(&INDEX_WRITER_LOCK)
            .map_err(|error| {
                publish_error(
                    "a writer works in the local index directory (give each node its own data_dir)",
                    error,
                )
            })?;
        for (name, len) in &head.files {
            let path = self.dir.join(name);
            match fs::metadata(&path) {
                Ok(meta) if meta.len() == *len => continue,
                _ => {}
            }
            let mut reader = self
                .blobs
                .open(&blob(format!("{FILES}{name}"))?)
                .map_err(|error| publish_error("downloading an index file", error))?;
            let part = self.dir.join(format!("{PART_PREFIX}{name}"));
            let mut file = fs::File::create(&part)?;
            io::copy(&mut reader, &mut file)?;
            file.sync_all()?;
            fs::rename(&part, &path)?;
        }
        let meta = base64::engine::general_purpose::STANDARD
            .decode(&head.meta)
            .map_err(|error| publish_error("decoding the published meta.json", error))?;
        let part = self.dir.join(format!("{PART_PREFIX}{META_FILE}"));
        fs::write(&part, &meta)?;
        fs::File::open(&part)?.sync_all()?;
        fs::rename(&part, self.dir.join(META_FILE))?;
        for name in local_files(&self.dir)? {
            if !head.files.contains_key(&name) {
                remove_if_present(&self.dir.join(&name))?;
            }
        }
        tracing::debug!(sequence = head.sequence, "followed the published index");
        self.last_head = Some((sealed, head.sequence));
        Ok(true)
    }
}
