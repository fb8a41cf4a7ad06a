//! The key that MACs the rows which grant access, and the columns each MAC covers (see
//! [`super::integrity`] for what the MACs promise).

use chartvault_storage::DataKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key that MACs access rows, and what it computes.
pub struct RowMac {
    key: DataKey,
}

impl std::fmt::Debug for RowMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowMac").finish_non_exhaustive()
    }
}

/// The tables whose rows are MACed, and the columns each MAC covers (in order).
pub(crate) const USERS: (&str, &[&str]) = ("users", &["id", "name", "role", "disabled"]);
pub(crate) const TOKENS: (&str, &[&str]) = (
    "tokens",
    &["id", "user_id", "token_hash", "expires_at", "revoked_at"],
);
pub(crate) const CARE: (&str, &[&str]) = (
    "care_relationships",
    &["id", "user_id", "patient_id", "starts_on", "ends_on"],
);
pub(crate) const GRANTS: (&str, &[&str]) = ("category_grants", &["user_id", "category"]);
pub(crate) const BREAK_GLASS: (&str, &[&str]) = (
    "break_glass",
    &["id", "user_id", "patient_id", "started_at", "expires_at"],
);
pub(crate) const TABLES: [(&str, &[&str]); 5] = [USERS, TOKENS, CARE, GRANTS, BREAK_GLASS];

impl RowMac {
    pub fn from_key(key: DataKey) -> RowMac {
        RowMac { key }
    }

    fn mac(&self, domain: &str, fields: &[Option<&str>]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(b"chartvault:");
        mac.update(domain.as_bytes());
        for field in fields {
            // Length-prefixed, with NULL distinct from the empty string.
            match field {
                None => mac.update(&[0]),
                Some(value) => {
                    mac.update(&[1]);
                    mac.update(&(value.len() as u64).to_be_bytes());
                    mac.update(value.as_bytes());
                }
            }
        }
        mac
    }

    /// The MAC of a row of `table` with these column values (in the table's MAC order).
    pub fn tag(&self, table: &str, fields: &[Option<&str>]) -> Vec<u8> {
        self.mac(&format!("row:{table}"), fields)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `tag` is the MAC of this row (constant time).
    pub fn verify(&self, table: &str, fields: &[Option<&str>], tag: Option<&[u8]>) -> bool {
        let Some(tag) = tag else {
            return false;
        };
        self.mac(&format!("row:{table}"), fields)
            .verify_slice(tag)
            .is_ok()
    }

    /// The MAC of a backup's manifest (its exact bytes).
    pub fn manifest_tag(&self, manifest: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(b"chartvault:backup-manifest:");
        mac.update(manifest);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `tag` is the MAC of the manifest's bytes (constant time).
    pub fn verify_manifest(&self, manifest: &[u8], tag: &[u8]) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(b"chartvault:backup-manifest:");
        mac.update(manifest);
        mac.verify_slice(tag).is_ok()
    }
}
