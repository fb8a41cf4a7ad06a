//! [`LocalBlobStore`]: blobs as files under a root directory.
//!
//! A blob `a/b/c` is the file `<root>/a/b/c`. Writes go to `<root>/a/b/.tmp-<random>` (a
//! name [`BlobName`] rejects, so `list` never returns it); commit is write → fsync file →
//! rename over the final name → fsync the directory, so a crash leaves either the old state
//! or the whole new blob, plus at worst a stale temp file that
//! [`LocalBlobStore::remove_stale_temp_files`] removes at startup. Directories created on
//! the way are fsynced into their parents, so a committed blob survives power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{validate_component, BlobName, BlobReader, BlobStore, BlobWriter};
use crate::keys::random_array;
use crate::StorageError;

const TEMP_PREFIX: &str = ".tmp-";

/// A [`BlobStore`] on a local directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Uses `root` as the store, creating it if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|source| StorageError::io(format!("blob root {}", root.display()), source))?;
        Ok(LocalBlobStore { root })
    }

    /// The directory the store keeps its blobs in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the temp files of writers that never committed (a crash mid-write). Call it at
    /// startup, before any writer exists: it would remove live writers' temp files too.
    /// Returns how many files it removed.
    pub fn remove_stale_temp_files(&self) -> Result<usize, StorageError> {
        let mut removed = 0;
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in read_dir_entries(&dir)? {
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else {
                    continue;
                };
                let file_type = entry
                    .file_type()
                    .map_err(|source| io_at(&entry.path(), source))?;
                if file_type.is_dir() && !file_name.starts_with('.') {
                    pending.push(entry.path());
                } else if file_type.is_file() && file_name.starts_with(TEMP_PREFIX) {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                        Err(error) => return Err(io_at(&entry.path(), error)),
                    }
                }
            }
        }
        Ok(removed)
    }

    fn path_of(&self, name: &BlobName) -> PathBuf {
        // Safe to join: BlobName components are plain names, never `..` or absolute.
        self.root.join(name.as_str())
    }

    /// Creates the directories leading to `name`, fsyncing each new one into its parent.
    fn create_parent_dirs(&self, name: &BlobName) -> Result<PathBuf, StorageError> {
        let mut dir = self.root.clone();
        let components: Vec<&str> = name.components().collect();
        for component in &components[..components.len() - 1] {
            let parent = dir.clone();
            dir.push(component);
            match fs::create_dir(&dir) {
                Ok(()) => sync_dir(&parent)?,
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(io_at(&dir, error)),
            }
        }
        Ok(dir)
    }

    fn is_committed_blob(&self, name: &BlobName) -> Result<bool, StorageError> {
        match fs::metadata(self.path_of(name)) {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(error) if is_missing(&error) => Ok(false),
            Err(error) => Err(io_blob(name, error)),
        }
    }
}

impl BlobStore for LocalBlobStore {
    fn create(&self, name: &BlobName) -> Result<Box<dyn BlobWriter>, StorageError> {
        let dir = self.create_parent_dirs(name)?;
        let temp_name = format!("{TEMP_PREFIX}{}", hex_lower(&random_array::<12>()));
        let temp_path = dir.join(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|source| io_blob(name, source))?;
        Ok(Box::new(LocalBlobWriter {
            file: BufWriter::with_capacity(64 * 1024, file),
            temp_path,
            final_path: self.path_of(name),
            dir,
            name: name.clone(),
            committed: false,
        }))
    }

    fn open(&self, name: &BlobName) -> Result<Box<dyn BlobReader>, StorageError> {
        let file = match File::open(self.path_of(name)) {
            Ok(file) => file,
            Err(error) if is_missing(&error) => return Err(not_found(name)),
            Err(error) => return Err(io_blob(name, error)),
        };
        let metadata = file.metadata().map_err(|source| io_blob(name, source))?;
        if !metadata.is_file() {
            return Err(not_found(name));
        }
        Ok(Box::new(file))
    }

    fn delete(&self, name: &BlobName) -> Result<(), StorageError> {
        if !self.is_committed_blob(name)? {
            return Ok(());
        }
        let path = self.path_of(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if is_missing(&error) => return Ok(()),
            Err(error) => return Err(io_blob(name, error)),
        }
        sync_dir(path.parent().expect("a blob path lies inside the root"))
    }

    fn exists(&self, name: &BlobName) -> Result<bool, StorageError> {
        self.is_committed_blob(name)
    }

    fn rename(&self, from: &BlobName, to: &BlobName) -> Result<(), StorageError> {
        if !self.is_committed_blob(from)? {
            return Err(not_found(from));
        }
        let to_dir = self.create_parent_dirs(to)?;
        let from_path = self.path_of(from);
        fs::rename(&from_path, self.path_of(to)).map_err(|source| {
            if is_missing(&source) {
                not_found(from)
            } else {
                io_blob(from, source)
            }
        })?;
        sync_dir(&to_dir)?;
        let from_dir = from_path
            .parent()
            .expect("a blob path lies inside the root");
        if from_dir != to_dir {
            sync_dir(from_dir)?;
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobName>, StorageError> {
        // Start the walk at the deepest directory the prefix names completely.
        let (dir_part, _partial) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let invalid_prefix = |reason| StorageError::InvalidName {
            name: prefix.to_string(),
            reason,
        };
        if prefix.starts_with('/') {
            return Err(invalid_prefix("prefix must be relative (no leading '/')"));
        }
        let mut start = self.root.clone();
        if !dir_part.is_empty() {
            for component in dir_part.split('/') {
                validate_component(component).map_err(invalid_prefix)?;
                start.push(component);
            }
        }
        let mut names = Vec::new();
        let mut pending = vec![(start, dir_part.to_string())];
        while let Some((dir, relative)) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if is_missing(&error) => continue,
                Err(error) => return Err(io_at(&dir, error)),
            };
            for entry in entries {
                let entry = entry.map_err(|source| io_at(&dir, source))?;
                let file_name = entry.file_name();
                let Some(file_name) = file_name.to_str() else {
                    continue;
                };
                if file_name.starts_with('.') {
                    continue;
                }
                let child = if relative.is_empty() {
                    file_name.to_string()
                } else {
                    format!("{relative}/{file_name}")
                };
                let file_type = entry
                    .file_type()
                    .map_err(|source| io_at(&entry.path(), source))?;
                if file_type.is_dir() {
                    let could_match = child.starts_with(prefix) || prefix.starts_with(&child);
                    if could_match {
                        pending.push((entry.path(), child));
                    }
                } else if file_type.is_file() && child.starts_with(prefix) {
                    if let Ok(name) = BlobName::new(child) {
                        names.push(name);
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

/// A blob being written to a temp file next to its final name.
struct LocalBlobWriter {
    file: BufWriter<File>,
    temp_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    name: BlobName,
    committed: bool,
}

impl Write for LocalBlobWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter for LocalBlobWriter {
    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let name = self.name.clone();
        self.file.flush().map_err(|source| io_blob(&name, source))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(|source| io_blob(&name, source))?;
        fs::rename(&self.temp_path, &self.final_path).map_err(|source| io_blob(&name, source))?;
        // From here the temp path is gone; Drop must not touch it.
        self.committed = true;
        sync_dir(&self.dir)
    }
}

impl Drop for LocalBlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a temp file left by a failure here is removed at next startup.
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

impl BlobReader for File {}

fn read_dir_entries(dir: &Path) -> Result<Vec<fs::DirEntry>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if is_missing(&error) => return Ok(Vec::new()),
        Err(error) => return Err(io_at(dir, error)),
    };
    entries
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| io_at(dir, source))
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| io_at(dir, source))
}

/// Missing, or a path through something that is not a directory: either way no blob.
fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn not_found(name: &BlobName) -> StorageError {
    StorageError::NotFound(name.to_string())
}

fn io_blob(name: &BlobName, source: io::Error) -> StorageError {
    StorageError::io(format!("blob {name}"), source)
}

fn io_at(path: &Path, source: io::Error) -> StorageError {
    StorageError::io(format!("path {}", path.display()), source)
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite;

    fn store() -> (tempfile::TempDir, LocalBlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalBlobStore::open(dir.path().join("blobs")).expect("open store");
        (dir, store)
    }

    #[test]
    fn local_blob_store_passes_the_conformance_suite() {
        let (_dir, store) = store();
        testsuite::run_blob_store_conformance(&store);
    }

    #[test]
    fn uncommitted_writer_leaves_a_temp_file_only_until_dropped() {
        let (_dir, store) = store();
        let name = BlobName::new("a/b/c").expect("name");
        let mut writer = store.create(&name).expect("create");
        writer.write_all(b"partial").expect("write");
        writer.flush().expect("flush");
        let temp_files = || {
            fs::read_dir(store.root().join("a/b"))
                .expect("read_dir")
                .filter(|entry| {
                    entry
                        .as_ref()
                        .expect("entry")
                        .file_name()
                        .to_string_lossy()
                        .starts_with(TEMP_PREFIX)
                })
                .count()
        };
        assert_eq!(temp_files(), 1);
        assert!(store.list("").expect("list").is_empty());
        drop(writer);
        assert_eq!(temp_files(), 0);
    }

    #[test]
    fn stale_temp_files_are_removed_and_blobs_kept() {
        let (_dir, store) = store();
        let kept = BlobName::new("x/kept").expect("name");
        testsuite::put(&store, &kept, b"kept");
        fs::write(store.root().join("x/.tmp-deadbeef"), b"stale").expect("write");
        fs::write(store.root().join(".tmp-cafe"), b"stale").expect("write");
        assert_eq!(store.remove_stale_temp_files().expect("clean"), 2);
        assert_eq!(store.list("").expect("list"), vec![kept.clone()]);
        assert_eq!(testsuite::get(&store, &kept), b"kept");
        assert_eq!(store.remove_stale_temp_files().expect("clean"), 0);
    }

    #[test]
    fn directories_are_not_blobs() {
        let (_dir, store) = store();
        testsuite::put(&store, &BlobName::new("d/e").expect("name"), b"1");
        let dir_name = BlobName::new("d").expect("name");
        assert!(!store.exists(&dir_name).expect("exists"));
        assert!(matches!(
            store.open(&dir_name),
            Err(StorageError::NotFound(_))
        ));
        store
            .delete(&dir_name)
            .expect("deleting a non-blob is a no-op");
        let under_file = BlobName::new("d/e/f").expect("name");
        assert!(!store.exists(&under_file).expect("exists"));
        assert!(matches!(
            store.open(&under_file),
            Err(StorageError::NotFound(_))
        ));
    }

    #[test]
    fn list_rejects_prefixes_that_escape_the_root() {
        let (_dir, store) = store();
        for prefix in ["../", "/etc/", "a/../../"] {
            assert!(
                matches!(store.list(prefix), Err(StorageError::InvalidName { .. })),
                "{prefix:?}"
            );
        }
    }
}
