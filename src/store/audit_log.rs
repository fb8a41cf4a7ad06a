//! The audit chain's SQL: the one writer, decrypted reads, filtered queries through the
//! blind indexes, raw rows for `audit verify`, and the chaining of rows written before the
//! chain existed. The format itself is [`crate::audit`]'s.

use super::base::*;

use tokio::sync::watch;

use super::audit_record::{AuditCipher, AuditRecord};
use crate::domain::{DocumentId, Outcome, PatientId, Role, UserId};
use serde::Serialize;

/// An `audit` row as stored: what `audit verify` checks.
#[derive(Debug, Clone)]
pub struct StoredAuditRow {
    pub seq: i64,
    pub at: String,
    pub action: String,
    pub outcome: String,
    pub break_glass: bool,
    pub user_index: Option<Vec<u8>>,
    pub patient_index: Option<Vec<u8>>,
    pub sealed: Vec<u8>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Which entries an audit query wants; every filter goes through an index.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<UserId>,
    pub patient_id: Option<PatientId>,
    /// RFC 3339 UTC bounds as stored (`from` inclusive, `to` exclusive).
    pub from: Option<String>,
    pub to: Option<String>,
    pub action: Option<String>,
    pub break_glass_only: bool,
    pub after_seq: i64,
    pub limit: i64,
}

/// One audit row. Ids only: the audit never holds names, MRNs or text.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub user_id: Option<UserId>,
    pub role: Option<Role>,
    pub action: &'static str,
    pub patient_id: Option<PatientId>,
    pub document_id: Option<DocumentId>,
    pub outcome: Outcome,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    /// Why the access happened (e.g. `treatment`), when the policy knows it.
    pub purpose_of_use: Option<String>,
    /// The access was a break-glass override: flagged for review.
    pub break_glass: bool,
    pub detail: Option<serde_json::Value>,
}

impl AuditEntry {
    /// A user or token change made by no principal of the service (at the console, or the
    /// first start creating the admin): purpose `HSYSADMIN`, who and how in `detail`.
    pub fn administration(action: &'static str, detail: serde_json::Value) -> AuditEntry {
        AuditEntry {
            user_id: None,
            role: None,
            action,
            patient_id: None,
            document_id: None,
            outcome: Outcome::Ok,
            client_addr: None,
            request_id: None,
            purpose_of_use: Some("HSYSADMIN".to_string()),
            break_glass: false,
            detail: Some(detail),
        }
    }
}

/// One audit entry as read back (decrypted), with its chain hash. Its fields are the
/// record's (through `Deref`).
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Hex of the entry's chain hash.
    pub hash: String,
}

impl std::ops::Deref for AuditRow {
    type Target = AuditRecord;

    fn deref(&self) -> &Self::Target {
        &self.record
    }
}

/// The audit chain: its one appender, decrypted reads, queries through the blind indexes
/// and the raw rows `audit verify` checks.
pub trait AuditLogStore {
    /// Gives the database the audit keys (once, at startup).
    fn set_audit_cipher(&self, cipher: AuditCipher);

    /// Follows the seq of the newest entry this process appends.
    fn audit_head_watch(&self) -> watch::Receiver<i64>;

    /// Appends one entry to the chain: sealed, linked to the head, committed before it
    /// returns. Returns its seq.
    fn append_audit(&self, entry: &AuditEntry) -> impl Future<Output = StoreResult<i64>> + Send;

    /// The newest entry's seq and stored hash, if there is any entry.
    fn audit_head(&self) -> impl Future<Output = StoreResult<Option<(i64, Vec<u8>)>>> + Send;

    /// Every entry after `after_seq`, oldest first, decrypted.
    fn audit_rows(&self, after_seq: i64)
        -> impl Future<Output = StoreResult<Vec<AuditRow>>> + Send;

    /// Entries matching `filter`, oldest first from `filter.after_seq`, decrypted. Users and
    /// patients are matched through their blind indexes; a patient matches the entries
    /// about them and the searches that returned them.
    fn audit_query(
        &self,
        filter: &AuditFilter,
    ) -> impl Future<Output = StoreResult<Vec<AuditRow>>> + Send;

    /// Up to `limit` stored rows with `after_seq < seq <= up_to`, by seq (for verify).
    fn stored_audit_rows(
        &self,
        after_seq: i64,
        up_to: i64,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<StoredAuditRow>>> + Send;

    /// The `audit_patients` rows `(seq, patient_index)` with `seq <= up_to`, by seq.
    fn audit_patient_refs(
        &self,
        up_to: i64,
    ) -> impl Future<Output = StoreResult<Vec<(i64, Vec<u8>)>>> + Send;

    /// Seals and chains the rows of an archive written before the chain existed (moved to
    /// `audit_legacy` by migration 0005), oldest first, keeping their times; then drops that
    /// table and vacuums, all before the service takes requests. Returns the rows chained.
    fn chain_legacy_audit(&self) -> impl Future<Output = anyhow::Result<u64>> + Send;
}
