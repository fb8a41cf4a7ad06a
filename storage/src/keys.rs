//! The key hierarchy: key ids, data keys, key-encryption keys and wrapped keys.
//!
//! Owns: [`KeyId`] (random, public, names a row of the app's keyring table), [`DataKey`] (a
//! random 256-bit AES key per object / index / blind index), [`Kek`] (a versioned 256-bit
//! key-encryption key), [`WrappedKey`] (a data key sealed under a KEK, what the keyring table
//! stores) and the [`KeyProvider`] trait through which the app finds KEKs (a key file today,
//! a KMS later).
//!
//! Promises:
//! - Secret bytes live in zeroize-on-drop boxes (`secrecy`); no `Debug` or `Display` impl of
//!   this crate prints them.
//! - Nothing is derived from a KEK: every data key is random, so a KEK can be rotated and
//!   retired by re-wrapping keyring rows ([`KeyProvider::rewrap_key`]).
//! - A wrapped key is bound to its key id and KEK version: the AES-256-GCM associated data is
//!   `"chartvault-wrapped-key-v1\0" ‖ key id (16) ‖ KEK version (u32 big-endian)`, so a
//!   wrapped key copied to another keyring row fails to unwrap.
//!
//! Wrapped key bytes: `nonce (12, random) ‖ AES-256-GCM(KEK, data key) (32) ‖ tag (16)`,
//! 60 bytes in all.

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use secrecy::{ExposeSecret, SecretBox};

use crate::StorageError;

/// Length in bytes of [`KeyId`].
pub const KEY_ID_LEN: usize = 16;
/// Length in bytes of an AES-256 key ([`DataKey`], [`Kek`]).
pub const KEY_LEN: usize = 32;

pub(crate) const WRAP_DOMAIN: &[u8] = b"chartvault-wrapped-key-v1\0";
const WRAP_NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length in bytes of [`WrappedKey::bytes`].
pub const WRAPPED_KEY_LEN: usize = WRAP_NONCE_LEN + KEY_LEN + TAG_LEN;

/// Fills a fixed-size array from the operating system's random number generator.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system random number generator is available");
    bytes
}

pub(crate) fn aes256gcm(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(&(*key).into())
}

/// The public, random name of a data key: the keyring table's primary key, and bytes 8..24
/// of every object header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// A fresh random key id.
    pub fn generate() -> Self {
        KeyId(random_array())
    }

    /// A key id from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> Self {
        KeyId(bytes)
    }

    /// The key id's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }

    /// Lower-case hex, 32 characters.
    pub fn to_hex(&self) -> String {
        let mut text = String::with_capacity(2 * KEY_ID_LEN);
        for byte in self.0 {
            text.push_str(&format!("{byte:02x}"));
        }
        text
    }

    /// Parses 32 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, StorageError> {
        let invalid = || StorageError::Key("a key id is 32 hex digits".to_string());
        if text.len() != 2 * KEY_ID_LEN || !text.is_ascii() {
            return Err(invalid());
        }
        let mut bytes = [0u8; KEY_ID_LEN];
        for (index, byte) in bytes.iter_mut().enumerate() {
            let pair = &text[2 * index..2 * index + 2];
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(KeyId(bytes))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl std::str::FromStr for KeyId {
    type Err = StorageError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        KeyId::from_hex(text)
    }
}

/// A 256-bit AES data key, zeroised on drop. Its `Debug` prints no key bytes.
pub struct DataKey(SecretBox<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Self {
        DataKey::from_bytes(random_array())
    }

    /// Wraps existing key bytes (for keys unwrapped elsewhere, and fixed test vectors).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        DataKey(SecretBox::new(Box::new(bytes)))
    }

    /// The raw key bytes, for callers that key another primitive with a data key (e.g. the
    /// HMAC of a blind index). Do not copy them anywhere that outlives the `DataKey`.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.0.expose_secret()
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        aes256gcm(self.0.expose_secret())
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        DataKey::from_bytes(*self.0.expose_secret())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// A data key sealed under a KEK: what the app stores in its keyring table.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The version of the KEK that sealed `bytes`.
    pub kek_version: u32,
    /// `nonce (12) ‖ ciphertext (32) ‖ tag (16)`.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kek_version", &self.kek_version)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A versioned 256-bit key-encryption key, zeroised on drop. Its `Debug` prints only the
/// version.
pub struct Kek {
    version: u32,
    key: SecretBox<[u8; KEY_LEN]>,
}

impl Kek {
    /// A fresh random KEK with the given version.
    pub fn generate(version: u32) -> Self {
        Kek::from_bytes(version, random_array())
    }

    /// A KEK of `version` from its bytes.
    pub fn from_bytes(version: u32, bytes: [u8; KEY_LEN]) -> Self {
        Kek {
            version,
            key: SecretBox::new(Box::new(bytes)),
        }
    }

    /// The KEK version (recorded with every key it wraps).
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.key.expose_secret()
    }

    fn associated_data(&self, id: &KeyId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(WRAP_DOMAIN.len() + KEY_ID_LEN + 4);
        aad.extend_from_slice(WRAP_DOMAIN);
        aad.extend_from_slice(id.as_bytes());
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }

    /// Seals `key` under this KEK for the keyring row `id`, with a fresh random nonce.
    pub fn wrap(&self, id: &KeyId, key: &DataKey) -> WrappedKey {
        let nonce_bytes: [u8; WRAP_NONCE_LEN] = random_array();
        let mut bytes = Vec::with_capacity(WRAPPED_KEY_LEN);
        bytes.extend_from_slice(&nonce_bytes);
        bytes.extend_from_slice(key.expose_secret());
        let tag = aes256gcm(self.expose_secret())
            .encrypt_inout_detached(
                &Nonce::from(nonce_bytes),
                &self.associated_data(id),
                (&mut bytes[WRAP_NONCE_LEN..]).into(),
            )
            .expect("AES-GCM accepts a 32-byte message with short associated data");
        bytes.extend_from_slice(&tag);
        WrappedKey {
            kek_version: self.version,
            bytes,
        }
    }

    /// Opens a key sealed by [`Kek::wrap`] for the same `id`. Fails with
    /// [`StorageError::Key`] if `wrapped` names another KEK version, and with
    /// [`StorageError::Decrypt`] if it does not authenticate (wrong KEK, wrong key id,
    /// altered bytes).
    pub fn unwrap(&self, id: &KeyId, wrapped: &WrappedKey) -> Result<DataKey, StorageError> {
        if wrapped.kek_version != self.version {
            return Err(StorageError::Key(format!(
                "key wrapped under KEK version {} cannot be unwrapped with KEK version {}",
                wrapped.kek_version, self.version
            )));
        }
        if wrapped.bytes.len() != WRAPPED_KEY_LEN {
            return Err(StorageError::Decrypt);
        }
        let (nonce_bytes, rest) = wrapped.bytes.split_at(WRAP_NONCE_LEN);
        let (sealed_key, tag_bytes) = rest.split_at(KEY_LEN);
        let nonce = Nonce::try_from(nonce_bytes).expect("slice is WRAP_NONCE_LEN bytes long");
        let tag = Tag::try_from(tag_bytes).expect("slice is TAG_LEN bytes long");
        // Decrypt straight into the zeroising box so the key never sits in a plain buffer.
        let mut key = DataKey(SecretBox::new(Box::new([0u8; KEY_LEN])));
        {
            use secrecy::ExposeSecretMut;
            let buffer = key.0.expose_secret_mut();
            buffer.copy_from_slice(sealed_key);
            aes256gcm(self.expose_secret())
                .decrypt_inout_detached(
                    &nonce,
                    &self.associated_data(id),
                    buffer.as_mut_slice().into(),
                    &tag,
                )
                .map_err(|_| StorageError::Decrypt)?;
        }
        Ok(key)
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Where the app gets its key-encryption keys: a key file or environment variable
/// ([`crate::KeyFile`]) today, a KMS or HSM later.
///
/// The trait is shaped so that KEK bytes never have to leave the provider: a KMS
/// implementation sends the 32-byte data key to the KMS's encrypt/decrypt (or wrap/unwrap)
/// call with the key id and version as associated data, and keeps nothing but version
/// numbers locally. The current version wraps new keys; older versions stay available to
/// unwrap until every keyring row has been re-wrapped and the version is retired.
pub trait KeyProvider: Send + Sync {
    /// The version that wraps new data keys.
    fn current_version(&self) -> u32;

    /// Every version the provider can unwrap with, ascending.
    fn versions(&self) -> Vec<u32>;

    /// Wraps `key` for keyring row `id` under the current version.
    fn wrap_key(&self, id: &KeyId, key: &DataKey) -> Result<WrappedKey, StorageError>;

    /// Unwraps a keyring row with whichever version sealed it.
    fn unwrap_key(&self, id: &KeyId, wrapped: &WrappedKey) -> Result<DataKey, StorageError>;

    /// Re-seals a keyring row under the current version (rotation); objects are not touched.
    fn rewrap_key(&self, id: &KeyId, wrapped: &WrappedKey) -> Result<WrappedKey, StorageError> {
        let key = self.unwrap_key(id, wrapped)?;
        self.wrap_key(id, &key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_hex_round_trips_and_displays_as_hex() {
        let id = KeyId::generate();
        assert_eq!(KeyId::from_hex(&id.to_hex()).expect("valid hex"), id);
        assert_eq!(id.to_string(), id.to_hex());
        assert_eq!(id.to_hex().len(), 32);
        let upper = id.to_hex().to_uppercase();
        assert_eq!(KeyId::from_hex(&upper).expect("upper-case hex"), id);
    }

    #[test]
    fn key_id_rejects_bad_hex() {
        for text in ["", "00", &"0".repeat(31), &"0".repeat(33), &"g".repeat(32)] {
            assert!(KeyId::from_hex(text).is_err(), "{text:?} accepted");
        }
        assert!(KeyId::from_hex("é0000000000000000000000000000000").is_err());
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = DataKey::from_bytes([0xab; KEY_LEN]);
        let kek = Kek::from_bytes(7, [0xcd; KEY_LEN]);
        assert_eq!(format!("{key:?}"), "DataKey([REDACTED])");
        let kek_debug = format!("{kek:?}");
        assert!(kek_debug.contains("version: 7"));
        assert!(!kek_debug.to_lowercase().contains("cd"));
    }

    #[test]
    fn wrapped_key_unwraps_to_the_same_key() {
        let kek = Kek::generate(3);
        let id = KeyId::generate();
        let key = DataKey::generate();
        let wrapped = kek.wrap(&id, &key);
        assert_eq!(wrapped.kek_version, 3);
        assert_eq!(wrapped.bytes.len(), WRAPPED_KEY_LEN);
        let unwrapped = kek.unwrap(&id, &wrapped).expect("unwrap");
        assert_eq!(unwrapped.expose_secret(), key.expose_secret());
    }

    #[test]
    fn wrapping_twice_uses_fresh_nonces() {
        let kek = Kek::generate(1);
        let id = KeyId::generate();
        let key = DataKey::generate();
        assert_ne!(kek.wrap(&id, &key).bytes, kek.wrap(&id, &key).bytes);
    }

    #[test]
    fn wrapped_key_moved_to_another_key_id_fails() {
        let kek = Kek::generate(1);
        let wrapped = kek.wrap(&KeyId::generate(), &DataKey::generate());
        assert!(matches!(
            kek.unwrap(&KeyId::generate(), &wrapped),
            Err(StorageError::Decrypt)
        ));
    }

    #[test]
    fn wrapped_key_fails_under_another_kek_of_the_same_version() {
        let id = KeyId::generate();
        let wrapped = Kek::generate(1).wrap(&id, &DataKey::generate());
        assert!(matches!(
            Kek::generate(1).unwrap(&id, &wrapped),
            Err(StorageError::Decrypt)
        ));
    }

    #[test]
    fn wrapped_key_relabelled_with_another_kek_version_fails() {
        let bytes = [9u8; KEY_LEN];
        let id = KeyId::generate();
        let mut wrapped = Kek::from_bytes(1, bytes).wrap(&id, &DataKey::generate());
        assert!(matches!(
            Kek::from_bytes(2, bytes).unwrap(&id, &wrapped),
            Err(StorageError::Key(_))
        ));
        wrapped.kek_version = 2;
        assert!(matches!(
            Kek::from_bytes(2, bytes).unwrap(&id, &wrapped),
            Err(StorageError::Decrypt)
        ));
    }

    #[test]
    fn any_flipped_bit_in_a_wrapped_key_fails() {
        let kek = Kek::generate(1);
        let id = KeyId::generate();
        let wrapped = kek.wrap(&id, &DataKey::generate());
        for bit in 0..WRAPPED_KEY_LEN * 8 {
            let mut tampered = wrapped.clone();
            tampered.bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(kek.unwrap(&id, &tampered), Err(StorageError::Decrypt)),
                "bit {bit} flipped but unwrap succeeded"
            );
        }
    }

    #[test]
    fn wrapped_key_of_wrong_length_fails() {
        let kek = Kek::generate(1);
        let id = KeyId::generate();
        let mut wrapped = kek.wrap(&id, &DataKey::generate());
        wrapped.bytes.pop();
        assert!(kek.unwrap(&id, &wrapped).is_err());
        wrapped.bytes.clear();
        assert!(kek.unwrap(&id, &wrapped).is_err());
    }
}
