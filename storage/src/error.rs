//! The crate's one error type.
//!
//! Messages never contain key material, plaintext, or anything read from inside an object.
//! Decryption failures are deliberately coarse: [`StorageError::Decrypt`] says only that
//! authentication failed, whatever the cause (wrong key, wrong identity, truncation, a flipped
//! bit, reordered chunks), so callers cannot be used as an oracle.

use std::io;

/// Everything that can go wrong in `chartvault-storage`.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O error; `context` names the blob or path involved.
    #[error("I/O error on {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        #[source]
        /// The I/O error.
        source: io::Error,
    },

    /// The named blob does not exist.
    #[error("blob not found: {0}")]
    NotFound(String),

    /// A blob name or list prefix that breaks the naming rules of [`crate::BlobName`].
    #[error("invalid blob name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is not a blob name.
        reason: &'static str,
    },

    /// Ciphertext did not authenticate. Deliberately carries no detail.
    #[error("decryption failed: authentication failed")]
    Decrypt,

    /// The bytes are not a chartvault object this version can read (bad magic, unknown format
    /// version, header cut short, nonzero reserved byte).
    #[error("not a readable chartvault object: {0}")]
    Format(&'static str),

    /// A key file, key environment variable or key parameter is unusable.
    #[error("key error: {0}")]
    Key(String),
}

impl StorageError {
    /// Wraps an I/O error with the blob name or path it concerns.
    pub fn io(context: impl std::fmt::Display, source: io::Error) -> Self {
        StorageError::Io {
            context: context.to_string(),
            source,
        }
    }

    /// Turns an `io::Error` coming out of a [`crate::DecryptReader`] or
    /// [`crate::EncryptWriter`] back into the `StorageError` it carries, if it carries one;
    /// any other I/O error becomes [`StorageError::Io`] with `context`.
    pub fn from_io(context: impl std::fmt::Display, error: io::Error) -> Self {
        let carries_storage_error = error
            .get_ref()
            .is_some_and(|inner| inner.is::<StorageError>());
        if !carries_storage_error {
            return StorageError::io(context, error);
        }
        let inner = error
            .into_inner()
            .expect("checked above that the io::Error wraps an inner error");
        match inner.downcast::<StorageError>() {
            Ok(storage_error) => *storage_error,
            Err(other) => StorageError::io(context, io::Error::other(other)),
        }
    }
}

impl From<StorageError> for io::Error {
    fn from(error: StorageError) -> Self {
        let kind = match &error {
            StorageError::Io { source, .. } => source.kind(),
            StorageError::NotFound(_) => io::ErrorKind::NotFound,
            StorageError::InvalidName { .. } => io::ErrorKind::InvalidInput,
            StorageError::Decrypt | StorageError::Format(_) => io::ErrorKind::InvalidData,
            StorageError::Key(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_error_survives_a_trip_through_io_error() {
        let io_error: io::Error = StorageError::Decrypt.into();
        assert_eq!(io_error.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            StorageError::from_io("x", io_error),
            StorageError::Decrypt
        ));
    }

    #[test]
    fn plain_io_error_becomes_io_variant_with_context() {
        let error = StorageError::from_io("blob a/b", io::Error::other("disk on fire"));
        assert_eq!(error.to_string(), "I/O error on blob a/b: disk on fire");
    }
}
