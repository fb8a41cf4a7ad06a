//! [`EncryptWriter`]: streams plaintext into the chunked object format.

use std::io::{self, Write};

use zeroize::Zeroizing;

use super::{ChunkCipher, ObjectHeader, ObjectKey, CHUNK_SIZE, SEALED_CHUNK_LEN};
use crate::keys::{DataKey, KeyId};
use crate::StorageError;

/// Encrypts everything written to it into `inner` as one object (format in
/// [`crate::envelope`]). Holds at most one chunk of plaintext, in a buffer zeroised on drop.
///
/// [`EncryptWriter::finish`] must be called: it writes the final chunk. An object whose
/// writer was dropped unfinished has no last chunk and never decrypts. `flush` only flushes
/// `inner`; it cannot emit a partial chunk.
pub struct EncryptWriter<W: Write> {
    inner: W,
    chunks: ChunkCipher,
    next_index: u32,
    /// Plaintext of the chunk being filled; after sealing, briefly its ciphertext and tag.
    /// Capacity is fixed at one sealed chunk so it never reallocates.
    buffer: Zeroizing<Vec<u8>>,
    /// Set when an error left `inner` holding part of a chunk: the object is unusable.
    failed: bool,
}

impl<W: Write> EncryptWriter<W> {
    /// Writes a header of [`FormatVersion::CURRENT`](super::FormatVersion::CURRENT) for
    /// `key_id`, with a fresh random salt and nonce prefix, to `inner`, derives the object's
    /// key from `key` (once), and returns a writer for the plaintext. `aad` is the object's
    /// identity; the same bytes are needed to decrypt.
    pub fn new(inner: W, key_id: &KeyId, key: &DataKey, aad: &[u8]) -> io::Result<Self> {
        EncryptWriter::with_header(inner, ObjectHeader::generate(*key_id), key, aad)
    }

    /// Like [`EncryptWriter::new`] with a chosen header (see
    /// [`ObjectHeader::test_vector_v2`]). Only for generating test vectors and for tests of
    /// the version-1 reader: two objects with the same key, salt and nonce prefix lose all
    /// confidentiality.
    #[doc(hidden)]
    pub fn with_test_vector_header(
        inner: W,
        header: ObjectHeader,
        key: &DataKey,
        aad: &[u8],
    ) -> io::Result<Self> {
        EncryptWriter::with_header(inner, header, key, aad)
    }

    fn with_header(
        mut inner: W,
        header: ObjectHeader,
        key: &DataKey,
        aad: &[u8],
    ) -> io::Result<Self> {
        let chunks = ChunkCipher::new(ObjectKey::derive(key, &header), aad);
        inner.write_all(chunks.header_bytes())?;
        Ok(EncryptWriter {
            inner,
            chunks,
            next_index: 0,
            buffer: Zeroizing::new(Vec::with_capacity(SEALED_CHUNK_LEN)),
            failed: false,
        })
    }

    /// Writes the final chunk (empty only if nothing was written), flushes and returns
    /// `inner`.
    pub fn finish(mut self) -> io::Result<W> {
        self.check_usable()?;
        self.write_chunk(true)?;
        self.inner.flush()?;
        let EncryptWriter { inner, .. } = self;
        Ok(inner)
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "EncryptWriter is unusable after an earlier write error",
            ));
        }
        Ok(())
    }

    /// Seals the buffered plaintext as chunk `next_index` and writes it out.
    fn write_chunk(&mut self, last: bool) -> io::Result<()> {
        let index = self.next_index;
        let following_index = index.checked_add(1);
        if following_index.is_none() && !last {
            self.failed = true;
            return Err(io::Error::other(StorageError::Format(
                "object too large: chunk counter exhausted",
            )));
        }
        let tag = self.chunks.seal(index, last, &mut self.buffer);
        self.buffer.extend_from_slice(&tag);
        debug_assert!(self.buffer.capacity() == SEALED_CHUNK_LEN);
        if let Err(error) = self.inner.write_all(&self.buffer) {
            self.failed = true;
            return Err(error);
        }
        self.buffer.clear();
        self.next_index = following_index.unwrap_or(u32::MAX);
        Ok(())
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check_usable()?;
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only once more data arrives, so the final chunk is never
        // empty unless the whole plaintext is.
        if self.buffer.len() == CHUNK_SIZE {
            self.write_chunk(false)?;
        }
        let taken = data.len().min(CHUNK_SIZE - self.buffer.len());
        self.buffer.extend_from_slice(&data[..taken]);
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
