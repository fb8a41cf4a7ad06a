//! The object header of every format version: [`FormatVersion`], [`ObjectHeader`], parsing
//! ([`read_header`]) and encoding, and the lengths that follow from a version.

use std::fmt;
use std::io::{self, Read};

use super::{CHUNK_SIZE, NONCE_PREFIX_LEN, SALT_LEN, SEALED_CHUNK_LEN, TAG_LEN};
use crate::keys::{random_array, KeyId, KEY_ID_LEN};
use crate::StorageError;

/// The first 7 bytes of every object, whatever its version: "CVAULT" and a NUL. The 8th byte
/// is the format version; [`is_object`] checks both.
pub const MAGIC_PREFIX: &[u8; 7] = b"CVAULT\0";

/// The length of the longest header of any version this crate reads (version 2: 64 bytes).
/// Reading this many bytes (or the whole object, if shorter) is always enough for
/// [`read_header`].
pub const MAX_HEADER_LEN: usize = 64;

/// Magic prefix and version byte.
const MAGIC_LEN: usize = MAGIC_PREFIX.len() + 1;
const KEY_ID_OFFSET: usize = MAGIC_LEN;
/// Where the version-specific fields start: the salt (version 2) or the nonce prefix
/// (version 1).
const AFTER_KEY_ID: usize = KEY_ID_OFFSET + KEY_ID_LEN;

const _: () = assert!(FormatVersion::V1.header_len() == 32);
const _: () = assert!(FormatVersion::V2.header_len() == MAX_HEADER_LEN);

/// A version of the object format (byte layouts in [`crate::envelope`]).
///
/// Readers accept every version; writers write only [`FormatVersion::CURRENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FormatVersion {
    /// Version 1: 32-byte header; the data key is the AES-256-GCM key of the object itself.
    /// Read only: nothing writes it any more.
    V1,
    /// Version 2: 64-byte header with a 256-bit random salt; the AES-256-GCM key of the object
    /// is derived from the data key and the salt with HKDF-SHA256.
    V2,
}

impl FormatVersion {
    /// The version [`EncryptWriter::new`](super::EncryptWriter::new) and
    /// [`seal`](super::seal) write.
    pub const CURRENT: FormatVersion = FormatVersion::V2;

    /// The version number: byte 7 of the header.
    pub const fn number(self) -> u8 {
        match self {
            FormatVersion::V1 => 1,
            FormatVersion::V2 => 2,
        }
    }

    fn from_number(number: u8) -> Option<FormatVersion> {
        match number {
            1 => Some(FormatVersion::V1),
            2 => Some(FormatVersion::V2),
            _ => None,
        }
    }

    /// The 8 bytes that open an object of this version: [`MAGIC_PREFIX`] and the version
    /// number.
    pub const fn magic(self) -> [u8; 8] {
        let mut magic = [0u8; MAGIC_LEN];
        let mut index = 0;
        while index < MAGIC_PREFIX.len() {
            magic[index] = MAGIC_PREFIX[index];
            index += 1;
        }
        magic[MAGIC_PREFIX.len()] = self.number();
        magic
    }

    /// The version of the object `bytes` starts with, judged by its first 8 bytes alone;
    /// `None` if they are not [`MAGIC_PREFIX`] followed by a version this crate reads (or if
    /// there are fewer than 8). The rest of the header is not checked: see [`read_header`].
    pub fn of_object(bytes: &[u8]) -> Option<FormatVersion> {
        let magic = bytes.get(..MAGIC_LEN)?;
        if !magic.starts_with(MAGIC_PREFIX) {
            return None;
        }
        FormatVersion::from_number(magic[MAGIC_PREFIX.len()])
    }

    /// The length of the header of this version: 32 bytes (version 1) or 64 (version 2).
    pub const fn header_len(self) -> usize {
        match self {
            FormatVersion::V1 => AFTER_KEY_ID + NONCE_PREFIX_LEN + 1,
            FormatVersion::V2 => AFTER_KEY_ID + SALT_LEN + NONCE_PREFIX_LEN + 1,
        }
    }

    /// The plaintext length of an object of this version whose ciphertext (header included)
    /// is `object_len` bytes long. [`StorageError::Format`] if it is shorter than a header,
    /// [`StorageError::Decrypt`] if no valid object has that length.
    pub fn plaintext_len(self, object_len: u64) -> Result<u64, StorageError> {
        let body_len = object_len
            .checked_sub(self.header_len() as u64)
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

    /// The length of an object of this version (header included) holding `plaintext_len`
    /// bytes. Writers write [`FormatVersion::CURRENT`]:
    /// `FormatVersion::CURRENT.ciphertext_len(n)` is the size of what they produce.
    pub const fn ciphertext_len(self, plaintext_len: u64) -> u64 {
        let chunk_count = plaintext_len.div_ceil(CHUNK_SIZE as u64);
        let chunk_count = if chunk_count == 0 { 1 } else { chunk_count };
        self.header_len() as u64 + plaintext_len + chunk_count * TAG_LEN as u64
    }
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// Whether `bytes` starts like a chartvault object of a version this crate reads
/// ([`MAGIC_PREFIX`] and a known version byte). A cheap check of the first 8 bytes, to tell
/// ciphertext from anything else; it proves nothing about the rest (only decryption does).
pub fn is_object(bytes: &[u8]) -> bool {
    FormatVersion::of_object(bytes).is_some()
}

/// The parsed header of an object: its version, which key it needs, and the per-object
/// random values its key and nonces are made from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ObjectHeader {
    key_id: KeyId,
    fields: VersionFields,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

/// What one version's header holds beyond the key id and nonce prefix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum VersionFields {
    V1,
    V2 { salt: [u8; SALT_LEN] },
}

impl ObjectHeader {
    /// A header of [`FormatVersion::CURRENT`] for `key_id`, with a fresh random salt and
    /// nonce prefix: what every writer starts an object with.
    pub(super) fn generate(key_id: KeyId) -> ObjectHeader {
        ObjectHeader {
            key_id,
            fields: VersionFields::V2 {
                salt: random_array(),
            },
            nonce_prefix: random_array(),
        }
    }

    /// A version-1 header with a chosen nonce prefix. Only for test vectors and tests of the
    /// version-1 reader: nothing writes version 1 any more, and two objects with the same key
    /// and prefix lose all confidentiality.
    #[doc(hidden)]
    pub fn test_vector_v1(key_id: KeyId, nonce_prefix: [u8; NONCE_PREFIX_LEN]) -> ObjectHeader {
        ObjectHeader {
            key_id,
            fields: VersionFields::V1,
            nonce_prefix,
        }
    }

    /// A version-2 header with a chosen salt and nonce prefix. Only for test vectors: two
    /// objects with the same key, salt and prefix lose all confidentiality.
    #[doc(hidden)]
    pub fn test_vector_v2(
        key_id: KeyId,
        salt: [u8; SALT_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> ObjectHeader {
        ObjectHeader {
            key_id,
            fields: VersionFields::V2 { salt },
            nonce_prefix,
        }
    }

    /// The format version of the object.
    pub fn version(&self) -> FormatVersion {
        match self.fields {
            VersionFields::V1 => FormatVersion::V1,
            VersionFields::V2 { .. } => FormatVersion::V2,
        }
    }

    /// The keyring row holding this object's data key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The length of this header as stored; the first chunk starts right after it.
    #[allow(clippy::len_without_is_empty)] // A header is never empty.
    pub fn len(&self) -> usize {
        self.version().header_len()
    }

    /// The plaintext length of the object this header opens, given the object's whole
    /// length (header included); see [`FormatVersion::plaintext_len`].
    pub fn plaintext_len(&self, object_len: u64) -> Result<u64, StorageError> {
        self.version().plaintext_len(object_len)
    }

    pub(super) fn fields(&self) -> &VersionFields {
        &self.fields
    }

    pub(super) fn nonce_prefix(&self) -> &[u8; NONCE_PREFIX_LEN] {
        &self.nonce_prefix
    }

    /// Appends the header's bytes (exactly [`Self::len`] of them) to `out`.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version().magic());
        out.extend_from_slice(self.key_id.as_bytes());
        if let VersionFields::V2 { salt } = &self.fields {
            out.extend_from_slice(salt);
        }
        out.extend_from_slice(&self.nonce_prefix);
        out.push(0);
    }

    /// Parses a whole header of `version` (`bytes` is exactly `version.header_len()` long
    /// and starts with that version's magic).
    fn parse(version: FormatVersion, bytes: &[u8]) -> Result<ObjectHeader, StorageError> {
        debug_assert_eq!(bytes.len(), version.header_len());
        let (reserved, bytes) = bytes
            .split_last()
            .expect("a header is longer than its reserved byte");
        if *reserved != 0 {
            return Err(StorageError::Format("reserved header byte is not zero"));
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[KEY_ID_OFFSET..AFTER_KEY_ID]);
        let fields = match version {
            FormatVersion::V1 => VersionFields::V1,
            FormatVersion::V2 => {
                let mut salt = [0u8; SALT_LEN];
                salt.copy_from_slice(&bytes[AFTER_KEY_ID..AFTER_KEY_ID + SALT_LEN]);
                VersionFields::V2 { salt }
            }
        };
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[bytes.len() - NONCE_PREFIX_LEN..]);
        Ok(ObjectHeader {
            key_id: KeyId::from_bytes(key_id),
            fields,
            nonce_prefix,
        })
    }
}

impl fmt::Debug for ObjectHeader {
    /// Version and key id; the salt and nonce prefix are public but of no use in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectHeader")
            .field("version", &self.version())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Reads and parses the header of an object of any version from `reader` (its first 8
/// bytes, then as many more as that version's header has: never more than
/// [`MAX_HEADER_LEN`] in all), leaving `reader` positioned at the first chunk. Hand the
/// header to [`DecryptReader::from_header`](super::DecryptReader::from_header) to go on
/// without rewinding.
///
/// [`StorageError::Format`] if the bytes are not a chartvault object this crate reads: bad
/// magic, unknown version, a header cut short, a nonzero reserved byte.
pub fn read_header(reader: &mut impl Read) -> Result<ObjectHeader, StorageError> {
    let mut bytes = [0u8; MAX_HEADER_LEN];
    read_header_bytes(reader, &mut bytes[..MAGIC_LEN])?;
    if !bytes.starts_with(MAGIC_PREFIX) {
        return Err(StorageError::Format("bad magic"));
    }
    let version = FormatVersion::from_number(bytes[MAGIC_PREFIX.len()])
        .ok_or(StorageError::Format("unsupported format version"))?;
    let header_len = version.header_len();
    read_header_bytes(reader, &mut bytes[MAGIC_LEN..header_len])?;
    ObjectHeader::parse(version, &bytes[..header_len])
}

fn read_header_bytes(reader: &mut impl Read, out: &mut [u8]) -> Result<(), StorageError> {
    reader.read_exact(out).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            StorageError::Format("truncated header")
        } else {
            StorageError::from_io("object header", error)
        }
    })
}

/// Reads just the header (of any version) and returns the key id, so the app can look up
/// the keyring row before decrypting. Errors as [`read_header`].
pub fn read_key_id(reader: &mut impl Read) -> Result<KeyId, StorageError> {
    read_header(reader).map(|header| header.key_id())
}
