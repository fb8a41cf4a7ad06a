//! chartvault-storage: everything chartvault keeps at rest, encrypted.
//!
//! This crate holds the at-rest guarantees and knows nothing of the app (no database, HTTP
//! or OCR):
//!
//! - [`keys`]: key ids, per-object data keys, versioned key-encryption keys (KEKs), wrapping,
//!   and the [`KeyProvider`] trait; [`keyfile`]: the key-file / environment provider.
//!   [`transit`] (feature `openbao`): the KEK in a KMS, OpenBao's or Vault's Transit engine.
//! - [`envelope`]: the object format (chunked AES-256-GCM under a per-object key derived by
//!   HKDF, with the object's identity as associated data; version 2 written, versions 1 and
//!   2 read), streaming [`EncryptWriter`] / seekable [`DecryptReader`].
//! - [`blob`]: the [`BlobStore`] trait (atomic create, open, delete, rename, list) and
//!   [`LocalBlobStore`]; the conformance tests every backend must pass live in `testsuite`
//!   (cargo feature `testsuite`).
//!
//! A blob store stores bytes; it is the caller that puts only envelope-encrypted objects in
//! it, so no plaintext ever reaches the disk.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod blob;
pub mod envelope;
mod error;
pub mod keyfile;
pub mod keys;
#[cfg(any(feature = "s3", feature = "openbao"))]
mod runtime;
pub mod sealed;
#[cfg(feature = "openbao")]
pub mod transit;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use blob::{BlobName, BlobReader, BlobStore, BlobWriter, LocalBlobStore};
#[cfg(feature = "s3")]
pub use blob::{S3BlobStore, S3Location};
pub use envelope::{
    is_object, open, read_header, read_key_id, seal, DecryptReader, EncryptWriter, FormatVersion,
    ObjectHeader, ObjectKey, CHUNK_SIZE, MAGIC_PREFIX, MAX_HEADER_LEN,
};
pub use error::StorageError;
pub use keyfile::KeyFile;
pub use keys::{DataKey, Kek, KeyId, KeyProvider, WrappedKey};
pub use sealed::FieldCipher;
#[cfg(feature = "openbao")]
pub use transit::{TransitKeyProvider, TransitLocation};
