//! Blob stores: named, immutable-once-committed byte objects.
//!
//! Owns the [`BlobStore`] contract and the [`BlobName`] rules; [`LocalBlobStore`] implements
//! it on a local directory, `S3BlobStore` (feature `s3`) on S3-compatible object storage;
//! both pass the same `testsuite`.
//!
//! Contract every backend keeps:
//! - **Atomic create.** [`BlobStore::create`] returns a writer; nothing is visible under the
//!   name until [`BlobWriter::commit`] returns `Ok`, and then the whole blob is, durably.
//!   Readers never observe a partial blob. A writer dropped without commit leaves nothing.
//!   Committing over an existing name replaces it atomically.
//! - [`BlobStore::open`] of a missing name is [`StorageError::NotFound`]; readers seek.
//! - [`BlobStore::delete`] is idempotent and durable once it returns.
//! - [`BlobStore::rename`] is atomic and durable (promotes a staging blob to its final name).
//! - [`BlobStore::list`] returns every committed blob whose name starts with the prefix
//!   (a plain string prefix, as in object stores), sorted, never temporary files.
//!
//! Blob stores move bytes only: callers store envelope-encrypted objects in them.

mod local;
#[cfg(feature = "s3")]
mod s3;

use std::fmt;
use std::io::{Read, Seek, Write};

pub use local::LocalBlobStore;
#[cfg(feature = "s3")]
pub use s3::{S3BlobStore, S3Location};

use crate::StorageError;

/// Longest accepted blob name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest accepted name component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;

/// A place that stores blobs by name. See the module docs for the contract.
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing a blob; it appears under `name` only on [`BlobWriter::commit`].
    fn create(&self, name: &BlobName) -> Result<Box<dyn BlobWriter>, StorageError>;
    /// Opens a committed blob for reading; [`StorageError::NotFound`] if there is none.
    fn open(&self, name: &BlobName) -> Result<Box<dyn BlobReader>, StorageError>;
    /// Removes a blob; removing a missing blob succeeds.
    fn delete(&self, name: &BlobName) -> Result<(), StorageError>;
    /// Whether a committed blob exists under `name`.
    fn exists(&self, name: &BlobName) -> Result<bool, StorageError>;
    /// Atomically moves a blob, replacing any blob at `to`; [`StorageError::NotFound`] if
    /// `from` is missing.
    fn rename(&self, from: &BlobName, to: &BlobName) -> Result<(), StorageError>;
    /// Every blob whose name starts with `prefix` (`""` for all), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<BlobName>, StorageError>;
}

/// A blob being written. Dropping it without [`BlobWriter::commit`] discards it.
pub trait BlobWriter: Write + Send {
    /// Flushes, makes the blob durable and publishes it under its name, atomically.
    fn commit(self: Box<Self>) -> Result<(), StorageError>;
}

/// A committed blob opened for reading.
pub trait BlobReader: Read + Seek + Send {}

/// A validated blob name: relative, `/`-separated, each component 1..=255 bytes of
/// `[A-Za-z0-9._-]` not starting with `.` (so no `.`, `..`, hidden or temporary files), at
/// most 1024 bytes in all. Example: `originals/3f/3f2a9c…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobName(String);

impl BlobName {
    /// A blob name, if `name` is a safe relative path of the store.
    pub fn new(name: impl Into<String>) -> Result<BlobName, StorageError> {
        let name = name.into();
        match validate_name(&name) {
            Ok(()) => Ok(BlobName(name)),
            Err(reason) => Err(StorageError::InvalidName { name, reason }),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("name longer than 1024 bytes");
    }
    if name.starts_with('/') {
        return Err("name must be relative (no leading '/')");
    }
    for component in name.split('/') {
        validate_component(component)?;
    }
    Ok(())
}

pub(crate) fn validate_component(component: &str) -> Result<(), &'static str> {
    if component.is_empty() {
        return Err("empty component");
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err("component longer than 255 bytes");
    }
    if component.starts_with('.') {
        return Err("component starts with '.'");
    }
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
    if !component.bytes().all(allowed) {
        return Err("component has characters outside [A-Za-z0-9._-]");
    }
    Ok(())
}

impl fmt::Display for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobName({:?})", self.0)
    }
}

impl AsRef<str> for BlobName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for BlobName {
    type Err = StorageError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        BlobName::new(name)
    }
}

impl TryFrom<String> for BlobName {
    type Error = StorageError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        BlobName::new(name)
    }
}

impl TryFrom<&str> for BlobName {
    type Error = StorageError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        BlobName::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_accepted() {
        for name in [
            "a",
            "originals/3f/3f2a9c0d",
            "pages/doc-1/page_0001.img",
            "A.b-c_d/e",
            "x..y",
        ] {
            let parsed = BlobName::new(name).expect(name);
            assert_eq!(parsed.as_str(), name);
            assert_eq!(parsed.to_string(), name);
        }
        assert!(BlobName::new("a/".repeat(300).trim_end_matches('/')).is_ok());
    }

    #[test]
    fn invalid_names_are_rejected() {
        let long_component = "a".repeat(256);
        let long_name = "a/".repeat(600);
        for name in [
            "",
            "/abs",
            "a//b",
            "a/",
            "..",
            "a/../b",
            ".",
            "a/./b",
            ".hidden",
            "dir/.tmp-123",
            "a b",
            "a\\b",
            "ä",
            "a\0b",
            "a:b",
            long_component.as_str(),
            long_name.trim_end_matches('/'),
        ] {
            assert!(
                matches!(BlobName::new(name), Err(StorageError::InvalidName { .. })),
                "{name:?} accepted"
            );
        }
    }
}
