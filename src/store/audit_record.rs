//! One audit entry as the store keeps it: the record, its canonical hash, and the cipher that
//! seals it and computes its blind indexes (see [`crate::audit`] for the promises and the
//! canonical encoding).

use chartvault_storage::{DataKey, FieldCipher, KeyId};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Service key purposes: the sealing key and the blind-index key.
pub const AUDIT_KEY: &str = "audit";
pub const AUDIT_BLIND_INDEX_KEY: &str = "audit-blind-index";

/// One whole audit entry: what is sealed and what is hashed. Ids only, never names, MRNs
/// or text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub user_id: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub patient_id: Option<String>,
    pub document_id: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    pub purpose_of_use: Option<String>,
    pub break_glass: bool,
    /// JSON text (opaque ids), hashed byte for byte.
    pub detail: Option<String>,
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    let len = u32::try_from(value.len()).expect("audit fields are far shorter than 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put_str(out, value);
        }
    }
}

impl AuditRecord {
    /// The canonical encoding (module docs) of this entry after `prev_hash`.
    pub fn canonical_bytes(&self, prev_hash: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        put_str(&mut out, "chartvault-audit-v1");
        out.extend_from_slice(&(self.seq as u64).to_be_bytes());
        out.extend_from_slice(prev_hash);
        put_str(&mut out, &self.at);
        put_opt(&mut out, self.user_id.as_deref());
        put_opt(&mut out, self.role.as_deref());
        put_str(&mut out, &self.action);
        put_opt(&mut out, self.patient_id.as_deref());
        put_opt(&mut out, self.document_id.as_deref());
        put_str(&mut out, &self.outcome);
        put_opt(&mut out, self.client_addr.as_deref());
        put_opt(&mut out, self.request_id.as_deref());
        put_opt(&mut out, self.purpose_of_use.as_deref());
        out.push(u8::from(self.break_glass));
        put_opt(&mut out, self.detail.as_deref());
        out
    }

    pub fn hash(&self, prev_hash: &[u8; 32]) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes(prev_hash)).into()
    }

    /// Patients the entry names besides its own `patient_id`: a search's `detail.patients`.
    pub fn other_patients(&self) -> Vec<String> {
        let Some(detail) = self.detail.as_deref() else {
            return Vec::new();
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(detail) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = value["patients"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str())
            .filter(|id| Some(*id) != self.patient_id.as_deref())
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The columns of an `audit` row that are kept in the clear, all derived from the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainColumns {
    pub at: String,
    pub action: String,
    pub outcome: String,
    pub break_glass: bool,
    pub user_index: Option<Vec<u8>>,
    pub patient_index: Option<Vec<u8>>,
    /// Blind indexes of [`AuditRecord::other_patients`], sorted (`audit_patients` rows).
    pub other_patient_indexes: Vec<Vec<u8>>,
}

/// The keys that seal audit entries and compute their blind indexes.
#[derive(Debug)]
pub struct AuditCipher {
    fields: FieldCipher,
}

/// Sealed content that did not open as the entry of its seq (altered, moved, wrong key), or
/// opened to something that is not an entry.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    #[error("the sealed entry does not decrypt")]
    Decrypt,
    #[error("the sealed entry is not an audit entry")]
    Malformed,
}

impl AuditCipher {
    pub fn from_keys(key_id: KeyId, key: DataKey, blind_index: DataKey) -> AuditCipher {
        AuditCipher {
            fields: FieldCipher::new(key_id, key, blind_index),
        }
    }

    fn aad(seq: i64) -> Vec<u8> {
        format!("chartvault:audit:{seq}").into_bytes()
    }

    pub fn seal(&self, record: &AuditRecord) -> Vec<u8> {
        let json = serde_json::to_vec(record).expect("an audit record serialises");
        self.fields.seal(&Self::aad(record.seq), &json)
    }

    /// Opens the sealed entry stored at `seq`.
    pub fn open(&self, seq: i64, sealed: &[u8]) -> Result<AuditRecord, UnsealError> {
        let json = self
            .fields
            .open(&Self::aad(seq), sealed)
            .ok_or(UnsealError::Decrypt)?;
        serde_json::from_slice(&json).map_err(|_| UnsealError::Malformed)
    }

    fn blind(&self, domain: &str, id: &str) -> Vec<u8> {
        self.fields.blind_index(domain, id.as_bytes())
    }

    /// The blind index of a user id (its lowercase hyphenated UUID).
    pub fn user_index(&self, user_id: &str) -> Vec<u8> {
        self.blind("chartvault:audit-user:", user_id)
    }

    /// The blind index of a patient id (its lowercase hyphenated UUID).
    pub fn patient_index(&self, patient_id: &str) -> Vec<u8> {
        self.blind("chartvault:audit-patient:", patient_id)
    }

    /// The plaintext columns of `record`'s row.
    pub fn plain_columns(&self, record: &AuditRecord) -> PlainColumns {
        let mut other_patient_indexes: Vec<Vec<u8>> = record
            .other_patients()
            .iter()
            .map(|id| self.patient_index(id))
            .collect();
        other_patient_indexes.sort();
        PlainColumns {
            at: record.at.clone(),
            action: record.action.clone(),
            outcome: record.outcome.clone(),
            break_glass: record.break_glass,
            user_index: record.user_id.as_deref().map(|id| self.user_index(id)),
            patient_index: record
                .patient_id
                .as_deref()
                .map(|id| self.patient_index(id)),
            other_patient_indexes,
        }
    }
}

pub fn hash_from_slice(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64) -> AuditRecord {
        AuditRecord {
            seq,
            at: "2026-11-25T10:00:00.123Z".into(),
            user_id: Some("6f1c1f33-4a8e-4c43-9d43-1a2b3c4d5e6f".into()),
            role: Some("clinician".into()),
            action: "read".into(),
            patient_id: Some("0b5a9d2e-6f4f-4f7e-8f65-2f6f1c1e0a11".into()),
            document_id: None,
            outcome: "ok".into(),
            client_addr: Some("127.0.0.1".into()),
            request_id: Some("r1".into()),
            purpose_of_use: None,
            break_glass: false,
            detail: Some(r#"{"patients":["a","b"]}"#.into()),
        }
    }

    fn cipher() -> AuditCipher {
        AuditCipher::from_keys(KeyId::generate(), DataKey::generate(), DataKey::generate())
    }

    #[test]
    fn the_canonical_encoding_is_frozen() {
        // A committed vector: changing the encoding breaks every existing chain.
        let bytes = record(7).canonical_bytes(&GENESIS_HASH);
        assert_eq!(&bytes[..4], &19u32.to_be_bytes());
        assert_eq!(&bytes[4..23], b"chartvault-audit-v1");
        assert_eq!(&bytes[23..31], &7u64.to_be_bytes());
        assert_eq!(&bytes[31..63], &[0u8; 32]);
        assert_eq!(
            hex::encode(record(7).hash(&GENESIS_HASH)),
            hex::encode(Sha256::digest(&bytes))
        );
        let mut expected = Vec::new();
        put_str(&mut expected, "chartvault-audit-v1");
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&[0u8; 32]);
        put_str(&mut expected, "2026-11-25T10:00:00.123Z");
        expected.push(1);
        put_str(&mut expected, "6f1c1f33-4a8e-4c43-9d43-1a2b3c4d5e6f");
        expected.push(1);
        put_str(&mut expected, "clinician");
        put_str(&mut expected, "read");
        expected.push(1);
        put_str(&mut expected, "0b5a9d2e-6f4f-4f7e-8f65-2f6f1c1e0a11");
        expected.push(0);
        put_str(&mut expected, "ok");
        expected.push(1);
        put_str(&mut expected, "127.0.0.1");
        expected.push(1);
        put_str(&mut expected, "r1");
        expected.push(0);
        expected.push(0);
        expected.push(1);
        put_str(&mut expected, r#"{"patients":["a","b"]}"#);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let base = record(3);
        let prev = [7u8; 32];
        let h = base.hash(&prev);
        assert_ne!(h, base.hash(&GENESIS_HASH));
        let mut variants = vec![];
        let mut r = base.clone();
        r.seq = 4;
        variants.push(r);
        let mut r = base.clone();
        r.outcome = "denied-role".into();
        variants.push(r);
        let mut r = base.clone();
        r.break_glass = true;
        variants.push(r);
        let mut r = base.clone();
        r.purpose_of_use = Some(String::new());
        variants.push(r);
        let mut r = base.clone();
        r.document_id = Some(String::new());
        variants.push(r);
        for variant in variants {
            assert_ne!(variant.hash(&prev), h, "{variant:?}");
        }
    }

    #[test]
    fn sealed_entries_open_only_at_their_own_seq() {
        let cipher = cipher();
        let sealed = cipher.seal(&record(5));
        assert_eq!(cipher.open(5, &sealed).unwrap(), record(5));
        assert!(cipher.open(6, &sealed).is_err());
        let mut flipped = sealed.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 1;
        assert!(cipher.open(5, &flipped).is_err());
        assert!(!String::from_utf8_lossy(&sealed).contains("clinician"));
    }

    #[test]
    fn other_patients_come_from_the_detail() {
        let cipher = cipher();
        let columns = cipher.plain_columns(&record(1));
        assert_eq!(columns.other_patient_indexes.len(), 2);
        assert_ne!(
            cipher.patient_index("a"),
            cipher.user_index("a"),
            "user and patient indexes are domain-separated"
        );
    }
}
