//! The chartvault object format: chunked, streaming AES-256-GCM (modelled on age's STREAM).
//!
//! Owns the byte layout of every encrypted object chartvault stores, and the streaming
//! [`EncryptWriter`] / [`DecryptReader`] that produce and consume it (plus the one-shot
//! [`seal`] / [`open`]). The format is frozen by the committed vectors in
//! `storage/tests/vectors/`; changing a byte of it needs a new format version.
//!
//! # Byte layout (format version 1)
//!
//! ```text
//! offset  len  field
//! 0       8    magic: "CVAULT" (43 56 41 55 4c 54), 0x00, format version 0x01
//! 8       16   key id: the keyring row holding this object's data key (wrapped)
//! 24      7    nonce prefix: random per object
//! 31      1    reserved, 0x00 (readers reject anything else)
//! 32      ...  chunks
//! ```
//!
//! The header is [`HEADER_LEN`] = 32 bytes. The plaintext is cut into chunks of
//! [`CHUNK_SIZE`] = 65 536 bytes; every chunk but the last is full, and the last holds
//! 1..=65 536 bytes, or 0 bytes only when the whole plaintext is empty (so a plaintext has
//! exactly one encoding and [`plaintext_len`] follows from the ciphertext length). Chunk
//! `i` (counting from 0) is stored as
//!
//! ```text
//! AES-256-GCM ciphertext of the chunk (same length as its plaintext) ‖ 16-byte GCM tag
//! ```
//!
//! with
//!
//! ```text
//! nonce (12)           = nonce prefix (7) ‖ i as u32 big-endian (4) ‖ last flag (1)
//! last flag            = 0x01 for the final chunk, 0x00 for every other chunk
//! associated data      = the whole 32-byte header ‖ the caller's aad
//! ```
//!
//! The caller's aad is the object's identity (document id, artifact kind, page): an object
//! copied under another identity fails. Because every chunk authenticates the header, its
//! own index and whether it is last, header edits, chunk swaps, reordering, duplication,
//! truncation (at a chunk boundary or inside one) and appended bytes all fail.
//!
//! # Promises
//!
//! - A reader never returns a byte of a chunk whose tag has not verified, and returns end of
//!   file only after the final chunk authenticated as last.
//! - Decryption failures are [`StorageError::Decrypt`] with no detail (coarse by design);
//!   through `std::io` they surface as `ErrorKind::InvalidData` wrapping that error
//!   ([`StorageError::from_io`] recovers it). After a failure a reader stays failed.
//! - Memory stays at about one chunk in each direction: objects of any size stream. Chunk
//!   buffers holding plaintext are zeroised on drop.
//! - A nonce prefix is random per object (56 bits) and each data key encrypts one object, so
//!   nonces never repeat under a key.

mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::io::{self, Read};

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce, Tag};

pub use reader::DecryptReader;
pub use writer::EncryptWriter;

use crate::keys::{DataKey, KeyId, KEY_ID_LEN};
use crate::StorageError;

/// Magic bytes opening every object: "CVAULT", NUL, format version 1.
pub const MAGIC: &[u8; 8] = b"CVAULT\0\x01";
/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Length of the nonce prefix stored in the header.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Length of the object header.
pub const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_PREFIX_LEN + 1;
/// Length of the GCM tag after each chunk.
pub const TAG_LEN: usize = 16;

/// A full chunk as stored: ciphertext plus tag.
const SEALED_CHUNK_LEN: usize = CHUNK_SIZE + TAG_LEN;
const FORMAT_VERSION: u8 = MAGIC[7];
const RESERVED_OFFSET: usize = HEADER_LEN - 1;

/// The parsed header of an object: which key it needs, and its nonce prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectHeader {
    key_id: KeyId,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl ObjectHeader {
    /// The keyring row holding this object's data key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..MAGIC.len()].copy_from_slice(MAGIC);
        bytes[MAGIC.len()..MAGIC.len() + KEY_ID_LEN].copy_from_slice(self.key_id.as_bytes());
        bytes[MAGIC.len() + KEY_ID_LEN..RESERVED_OFFSET].copy_from_slice(&self.nonce_prefix);
        bytes
    }

    fn parse(bytes: &[u8; HEADER_LEN]) -> Result<ObjectHeader, StorageError> {
        if bytes[..MAGIC.len() - 1] != MAGIC[..MAGIC.len() - 1] {
            return Err(StorageError::Format("bad magic"));
        }
        if bytes[MAGIC.len() - 1] != FORMAT_VERSION {
            return Err(StorageError::Format("unsupported format version"));
        }
        if bytes[RESERVED_OFFSET] != 0 {
            return Err(StorageError::Format("reserved header byte is not zero"));
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[MAGIC.len()..MAGIC.len() + KEY_ID_LEN]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[MAGIC.len() + KEY_ID_LEN..RESERVED_OFFSET]);
        Ok(ObjectHeader {
            key_id: KeyId::from_bytes(key_id),
            nonce_prefix,
        })
    }
}

/// Reads and parses the [`HEADER_LEN`]-byte header from `reader`, leaving it positioned at
/// the first chunk (hand it to [`DecryptReader::from_header`] to go on without rewinding).
pub fn read_header(reader: &mut impl Read) -> Result<ObjectHeader, StorageError> {
    let mut bytes = [0u8; HEADER_LEN];
    reader.read_exact(&mut bytes).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            StorageError::Format("truncated header")
        } else {
            StorageError::from_io("object header", error)
        }
    })?;
    ObjectHeader::parse(&bytes)
}

/// Reads just the header and returns the key id, so the app can look up the keyring row
/// before decrypting.
pub fn read_key_id(header: &mut impl Read) -> Result<KeyId, StorageError> {
    read_header(header).map(|header| header.key_id())
}

/// Encrypts `plaintext` in one go (small objects; stream large ones with [`EncryptWriter`]).
pub fn seal(key_id: &KeyId, key: &DataKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let capacity = usize::try_from(ciphertext_len(plaintext.len() as u64))
        .expect("a plaintext held in memory has a ciphertext length that fits in usize");
    let mut writer = EncryptWriter::new(Vec::with_capacity(capacity), key_id, key, aad)
        .expect("writing to a Vec cannot fail");
    io::Write::write_all(&mut writer, plaintext).expect("writing to a Vec cannot fail");
    writer.finish().expect("writing to a Vec cannot fail")
}

/// Decrypts a whole object held in memory (see [`seal`]).
pub fn open(key: &DataKey, aad: &[u8], object: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut reader = DecryptReader::new(object, key, aad)?;
    let expected_len =
        usize::try_from(plaintext_len(object.len() as u64)?).map_err(|_| StorageError::Decrypt)?;
    // Exact capacity: the buffer never reallocates, so no unzeroised plaintext copy is left
    // behind if authentication fails halfway.
    let mut plaintext = zeroize::Zeroizing::new(Vec::with_capacity(expected_len));
    reader
        .read_to_end(&mut plaintext)
        .map_err(|error| StorageError::from_io("object", error))?;
    Ok(std::mem::take(&mut *plaintext))
}

/// The plaintext length of an object whose ciphertext is `ciphertext_len` bytes long.
/// [`StorageError::Format`] if it is shorter than a header, [`StorageError::Decrypt`] if no
/// valid object has that length.
pub fn plaintext_len(ciphertext_len: u64) -> Result<u64, StorageError> {
    let body_len = ciphertext_len
        .checked_sub(HEADER_LEN as u64)
        .ok_or(StorageError::Format("truncated header"))?;
    let full_chunks = body_len / SEALED_CHUNK_LEN as u64;
    let remainder = body_len % SEALED_CHUNK_LEN as u64;
    let (chunk_count, len) = match remainder {
        0 if full_chunks > 0 => (full_chunks, full_chunks * CHUNK_SIZE as u64),
        0 => return Err(StorageError::Decrypt),
        r if r < TAG_LEN as u64 => return Err(StorageError::Decrypt),
        // An empty final chunk is only the encoding of the empty plaintext.
        r if r == TAG_LEN as u64 && full_chunks > 0 => return Err(StorageError::Decrypt),
        r => (
            full_chunks + 1,
            full_chunks * CHUNK_SIZE as u64 + (r - TAG_LEN as u64),
        ),
    };
    if chunk_count > u64::from(u32::MAX) + 1 {
        return Err(StorageError::Decrypt);
    }
    Ok(len)
}

/// The ciphertext length of an object holding `plaintext_len` bytes.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let chunk_count = plaintext_len.div_ceil(CHUNK_SIZE as u64).max(1);
    HEADER_LEN as u64 + plaintext_len + chunk_count * TAG_LEN as u64
}

/// The per-object AEAD state shared by writer and reader.
struct ChunkCipher {
    cipher: Aes256Gcm,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    /// header ‖ caller's aad, authenticated with every chunk.
    associated_data: Vec<u8>,
}

impl ChunkCipher {
    fn new(key: &DataKey, header: &ObjectHeader, aad: &[u8]) -> ChunkCipher {
        let mut associated_data = Vec::with_capacity(HEADER_LEN + aad.len());
        associated_data.extend_from_slice(&header.to_bytes());
        associated_data.extend_from_slice(aad);
        ChunkCipher {
            cipher: key.cipher(),
            nonce_prefix: header.nonce_prefix,
            associated_data,
        }
    }

    fn nonce(&self, index: u32, last: bool) -> Nonce<aes_gcm::aead::consts::U12> {
        let mut nonce = [0u8; 12];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        Nonce::from(nonce)
    }

    /// Encrypts `chunk` in place and returns its tag.
    fn seal(&self, index: u32, last: bool, chunk: &mut [u8]) -> [u8; TAG_LEN] {
        debug_assert!(chunk.len() <= CHUNK_SIZE);
        let tag = self
            .cipher
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
        self.cipher
            .decrypt_inout_detached(
                &self.nonce(index, last),
                &self.associated_data,
                chunk.into(),
                &tag,
            )
            .map_err(|_| ())
    }
}
