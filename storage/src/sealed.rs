//! Sealed fields: small values sealed under one data key and bound to where they are kept
//! (the associated data), with blind indexes for equality lookups.
//!
//! A [`FieldCipher`] holds two keys. Values are sealed in the object envelope of
//! [`crate::envelope`] under the first: the associated data names the place (a column and
//! row, an audit seq), so a value copied elsewhere does not open. Blind indexes are
//! HMAC-SHA256 under the second key over a domain string and the value, so equal values
//! can be found without the key that opens them, and values of two domains never compare
//! equal. The app seals its PHI columns and its audit log with it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::envelope::{open, read_header, seal};
use crate::keys::{DataKey, KeyId};

/// The two keys of a family of sealed fields: the sealing key and the blind-index key.
pub struct FieldCipher {
    key_id: KeyId,
    key: DataKey,
    blind_index: DataKey,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldCipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl FieldCipher {
    /// A cipher sealing under `key` (whose id is `key_id`) and indexing under `blind_index`.
    pub fn new(key_id: KeyId, key: DataKey, blind_index: DataKey) -> FieldCipher {
        FieldCipher {
            key_id,
            key,
            blind_index,
        }
    }

    /// The id of the sealing key (carried in every sealed value's header).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Seals `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.key_id, &self.key, aad, plaintext)
    }

    /// Opens a value this cipher sealed under `aad`; `None` when it names another key, was
    /// altered, or was sealed for another place.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let key_matches =
            read_header(&mut &sealed[..]).is_ok_and(|header| header.key_id() == self.key_id);
        if !key_matches {
            return None;
        }
        open(&self.key, aad, sealed).ok()
    }

    /// The blind index of `value` in `domain`: HMAC-SHA256 over `domain ‖ value`.
    pub fn blind_index(&self, domain: &str, value: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.blind_index.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(domain.as_bytes());
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> FieldCipher {
        FieldCipher::new(KeyId::generate(), DataKey::generate(), DataKey::generate())
    }

    #[test]
    fn a_value_opens_only_where_it_was_sealed_and_only_under_its_key() {
        let c = cipher();
        let sealed = c.seal(b"place:1", b"Jane Doe");
        assert_eq!(
            c.open(b"place:1", &sealed).as_deref(),
            Some(&b"Jane Doe"[..])
        );
        assert_eq!(c.open(b"place:2", &sealed), None);
        assert_eq!(cipher().open(b"place:1", &sealed), None);
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(c.open(b"place:1", &altered), None);
        assert!(!sealed.windows(8).any(|w| w == b"Jane Doe"));
    }

    #[test]
    fn blind_indexes_are_stable_per_key_and_separate_domains() {
        let c = cipher();
        assert_eq!(c.blind_index("mrn:", b"A1"), c.blind_index("mrn:", b"A1"));
        assert_ne!(c.blind_index("mrn:", b"A1"), c.blind_index("mrn:", b"A2"));
        assert_ne!(c.blind_index("mrn:", b"A1"), c.blind_index("sop:", b"A1"));
        assert_ne!(
            c.blind_index("mrn:", b"A1"),
            cipher().blind_index("mrn:", b"A1")
        );
    }
}
