//! The chartvault object format: chunked, streaming AES-256-GCM (modelled on age's STREAM,
//! with a per-object key derived by HKDF as in Tink's AES-GCM-HKDF streaming AEAD).
//!
//! Owns the byte layout of every encrypted object chartvault stores, and the streaming
//! [`EncryptWriter`] / [`DecryptReader`] that produce and consume it (plus the one-shot
//! [`seal`] / [`open`]). Two format versions exist: writers write version 2
//! ([`FormatVersion::CURRENT`]); readers read both, so every object ever stored stays
//! readable. Each version is frozen by the committed vectors in `storage/tests/vectors/`
//! (version 1) and `storage/tests/vectors/v2/`; changing a byte of either needs a new
//! format version.
//!
//! # Byte layout, format version 2 (written)
//!
//! ```text
//! offset  len  field
//! 0       8    magic: "CVAULT" (43 56 41 55 4c 54), 0x00, format version 0x02
//! 8       16   key id: the keyring row holding this object's data key (wrapped)
//! 24      32   salt: random per object
//! 56      7    nonce prefix: random per object
//! 63      1    reserved, 0x00 (readers reject anything else)
//! 64      ...  chunks
//! ```
//!
//! The chunks are encrypted not under the data key but under the object key
//!
//! ```text
//! object key (32) = HKDF-SHA256(ikm  = the data key (32),
//!                               salt = the header's salt (32),
//!                               info = "chartvault object v2" (20 ASCII bytes, no NUL))
//! ```
//!
//! (RFC 5869: `PRK = HMAC-SHA256(salt, data key)`, `object key = HMAC-SHA256(PRK, info ‖
//! 0x01)`.) The data key is never an AES key itself in version 2.
//!
//! # Byte layout, format version 1 (read only)
//!
//! ```text
//! offset  len  field
//! 0       8    magic: "CVAULT" (43 56 41 55 4c 54), 0x00, format version 0x01
//! 8       16   key id
//! 24      7    nonce prefix: random per object
//! 31      1    reserved, 0x00 (readers reject anything else)
//! 32      ...  chunks
//! ```
//!
//! The chunks are encrypted under the data key itself.
//!
//! # Chunks (both versions)
//!
//! The header is [`FormatVersion::header_len`] bytes: 64 (version 2) or 32 (version 1),
//! never more than [`MAX_HEADER_LEN`]. The plaintext is cut into chunks of [`CHUNK_SIZE`] =
//! 65 536 bytes; every chunk but the last is full, and the last holds 1..=65 536 bytes, or 0
//! bytes only when the whole plaintext is empty (so a plaintext has exactly one encoding and
//! [`ObjectHeader::plaintext_len`] follows from the object's length). Chunk `i` (counting
//! from 0) is stored as
//!
//! ```text
//! AES-256-GCM ciphertext of the chunk (same length as its plaintext) ‖ 16-byte GCM tag
//! ```
//!
//! under the object key (version 2) or the data key (version 1), with
//!
//! ```text
//! nonce (12)           = nonce prefix (7) ‖ i as u32 big-endian (4) ‖ last flag (1)
//! last flag            = 0x01 for the final chunk, 0x00 for every other chunk
//! associated data      = the whole header (64 or 32 bytes) ‖ the caller's aad
//! ```
//!
//! The caller's aad is the object's identity (document id, artifact kind, page): an object
//! copied under another identity fails. Because every chunk authenticates the header (its
//! version byte, key id, salt and nonce prefix), its own index and whether it is last,
//! header edits (a version byte changed from 2 to 1 or back included), chunk swaps,
//! reordering, duplication, truncation (at a chunk boundary or inside one) and appended bytes
//! all fail.
//!
//! # Why version 2
//!
//! A data key per blob meets each key only once, but the long-lived service keys (the key
//! sealing database columns, the audit log's, the search index's) encrypt millions of small
//! objects. In version 1 all of them use the same AES-GCM key, and only the 56-bit nonce
//! prefix is random per object: by the birthday bound, two of `n` objects share a prefix with
//! probability about `n² / 2⁵⁷`, a coin toss at 2²⁸ objects, and a repeated nonce under one
//! GCM key reveals the XOR of two plaintexts and lets the GHASH key, hence forgeries, be
//! computed. NIST SP 800-38D (§8.3) caps random-nonce GCM at 2³² invocations per key, so that
//! the chance of any repeat stays below 2⁻³²; with only 56 random bits version 1 passes that
//! line at about 2¹² objects per key. In version 2 every object gets its own key from a
//! 256-bit random salt, so no GCM key ever encrypts more than one object's nonce sequence
//! (prefix ‖ counter, distinct within an object), whatever the number of objects: a salt
//! repeats under one data key with probability about `n² / 2²⁵⁷`.
//!
//! # Promises
//!
//! - A reader never returns a byte of a chunk whose tag has not verified, and returns end of
//!   file only after the final chunk authenticated as last.
//! - Decryption failures are [`StorageError::Decrypt`] with no detail (coarse by design);
//!   through `std::io` they surface as `ErrorKind::InvalidData` wrapping that error
//!   ([`StorageError::from_io`] recovers it). After a failure a reader stays failed.
//! - Memory stays at about one chunk in each direction: objects of any size stream. Chunk
//!   buffers holding plaintext are zeroised on drop, and so are object keys (their AES key
//!   schedules).
//! - The object key is derived once per writer and once per reader (never per chunk), or
//!   once per object for callers that keep an [`ObjectKey`] and read the object many times.
//! - No AES-GCM key encrypts more than one object (version 2), so nonces never repeat under
//!   a key.

mod header;
mod object_key;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::io::{self, Read};

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Nonce, Tag};

pub use header::{
    is_object, read_header, read_key_id, FormatVersion, ObjectHeader, MAGIC_PREFIX, MAX_HEADER_LEN,
};
pub use object_key::ObjectKey;
pub use reader::DecryptReader;
pub use writer::EncryptWriter;

use crate::keys::{DataKey, KeyId};
use crate::StorageError;

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Length of the nonce prefix stored in the header.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Length of the HKDF salt stored in a version-2 header.
pub const SALT_LEN: usize = 32;
/// Length of the GCM tag after each chunk.
pub const TAG_LEN: usize = 16;

/// A full chunk as stored: ciphertext plus tag.
const SEALED_CHUNK_LEN: usize = CHUNK_SIZE + TAG_LEN;

/// Encrypts `plaintext` in one go as an object of [`FormatVersion::CURRENT`] (small objects;
/// stream large ones with [`EncryptWriter`]).
pub fn seal(key_id: &KeyId, key: &DataKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let capacity = usize::try_from(FormatVersion::CURRENT.ciphertext_len(plaintext.len() as u64))
        .expect("a plaintext held in memory has a ciphertext length that fits in usize");
    let mut writer = EncryptWriter::new(Vec::with_capacity(capacity), key_id, key, aad)
        .expect("writing to a Vec cannot fail");
    io::Write::write_all(&mut writer, plaintext).expect("writing to a Vec cannot fail");
    writer.finish().expect("writing to a Vec cannot fail")
}

/// Decrypts a whole object of any version held in memory (see [`seal`]).
pub fn open(key: &DataKey, aad: &[u8], object: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut chunks = object;
    let header = read_header(&mut chunks)?;
    let expected_len = usize::try_from(header.plaintext_len(object.len() as u64)?)
        .map_err(|_| StorageError::Decrypt)?;
    let mut reader = DecryptReader::from_header(chunks, header, key, aad);
    // Exact capacity: the buffer never reallocates, so no unzeroised plaintext copy is left
    // behind if authentication fails halfway.
    let mut plaintext = zeroize::Zeroizing::new(Vec::with_capacity(expected_len));
    reader
        .read_to_end(&mut plaintext)
        .map_err(|error| StorageError::from_io("object", error))?;
    Ok(std::mem::take(&mut *plaintext))
}

/// The per-object AEAD state shared by writer and reader.
struct ChunkCipher {
    object_key: ObjectKey,
    /// header ‖ caller's aad, authenticated with every chunk.
    associated_data: Vec<u8>,
}

impl ChunkCipher {
    fn new(object_key: ObjectKey, aad: &[u8]) -> ChunkCipher {
        let header = object_key.header();
        let mut associated_data = Vec::with_capacity(header.len() + aad.len());
        header.encode_into(&mut associated_data);
        associated_data.extend_from_slice(aad);
        ChunkCipher {
            object_key,
            associated_data,
        }
    }

    fn header(&self) -> &ObjectHeader {
        self.object_key.header()
    }

    /// The header's bytes: the start of the associated data.
    fn header_bytes(&self) -> &[u8] {
        &self.associated_data[..self.header().len()]
    }

    fn nonce(&self, index: u32, last: bool) -> Nonce<aes_gcm::aead::consts::U12> {
        let mut nonce = [0u8; 12];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(self.header().nonce_prefix());
        nonce[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        Nonce::from(nonce)
    }

    /// Encrypts `chunk` in place and returns its tag.
    fn seal(&self, index: u32, last: bool, chunk: &mut [u8]) -> [u8; TAG_LEN] {
        debug_assert!(chunk.len() <= CHUNK_SIZE);
        let tag = self
            .object_key
            .cipher()
            .encrypt_inout_detached(
                &self.nonce(index, last),
                &self.associated_data,
                chunk.into(),
            )
            .expect("AES-GCM accepts a 64 KiB chunk");
        tag.into()
    }

    /// Verifies `tag`, then decrypts `chunk` in place. On failure `chunk` is left as the
    /// ciphertext it was (aes-gcm checks the tag before applying the keystream).
    fn open(&self, index: u32, last: bool, chunk: &mut [u8], tag: &[u8]) -> Result<(), ()> {
        let tag = Tag::try_from(tag).map_err(|_| ())?;
        self.object_key
            .cipher()
            .decrypt_inout_detached(
                &self.nonce(index, last),
                &self.associated_data,
                chunk.into(),
                &tag,
            )
            .map_err(|_| ())
    }
}
