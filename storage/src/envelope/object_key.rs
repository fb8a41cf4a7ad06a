//! [`ObjectKey`]: the AES-256-GCM key of one object, derived once from the data key and the
//! object's header.

use std::fmt;

use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::header::{ObjectHeader, VersionFields};
use crate::keys::{aes256gcm, DataKey, KEY_LEN};

/// The HKDF `info` of format version 2: separates the object keys from anything else a
/// data key might ever be used to derive.
pub(super) const OBJECT_KEY_INFO_V2: &[u8] = b"chartvault object v2";

/// The key that encrypts the chunks of one object, with the header it belongs to.
///
/// Version 2: `HKDF-SHA256(ikm = data key, salt = the header's salt, info = "chartvault
/// object v2")`, 32 bytes. Version 1: the data key itself. Deriving costs a few SHA-256
/// blocks plus an AES key schedule: a reader that opens the same object again and again
/// (the index reads one chunk at a time) derives it once with [`ObjectKey::derive`] and hands
/// it to [`DecryptReader::from_object_key`](super::DecryptReader::from_object_key) for each
/// read, instead of deriving per read.
///
/// The derived bytes are zeroised as soon as the AES key schedule is built from them; the key
/// schedule is zeroised on drop. Its `Debug` prints no key material.
#[derive(Clone)]
pub struct ObjectKey {
    header: ObjectHeader,
    cipher: Aes256Gcm,
}

impl ObjectKey {
    /// The key of the object that `header` opens, from that object's data key (the keyring
    /// row named by [`ObjectHeader::key_id`]). A wrong data key is not detected here but by
    /// the first chunk, which then fails to authenticate.
    pub fn derive(data_key: &DataKey, header: &ObjectHeader) -> ObjectKey {
        let cipher = match header.fields() {
            VersionFields::V1 => data_key.cipher(),
            VersionFields::V2 { salt } => {
                // hkdf 0.12 keeps its HMAC state (keyed by the pseudorandom key) without
                // zeroising it; the output, the object key, is zeroised here.
                let kdf = Hkdf::<Sha256>::new(Some(salt), data_key.expose_secret());
                let mut object_key = Zeroizing::new([0u8; KEY_LEN]);
                kdf.expand(OBJECT_KEY_INFO_V2, object_key.as_mut_slice())
                    .expect("32 bytes is a valid HKDF-SHA256 output length");
                aes256gcm(&object_key)
            }
        };
        ObjectKey {
            header: *header,
            cipher,
        }
    }

    /// The header of the object this key belongs to.
    pub fn header(&self) -> &ObjectHeader {
        &self.header
    }

    pub(super) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectKey")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}
