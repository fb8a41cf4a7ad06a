//! HL7 v2: inbound messages already applied (see `feeds::adt`), so a resent message is not
//! applied twice; and the outbox of document notifications for the EHR (see `feeds::mdm`).

use super::base::*;

/// What happened to a document that the EHR is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Indexed and out of QA: the EHR may show it (MDM^T02 or T01).
    Available,
    /// Entered in error (corrected) or destroyed: the EHR should take it back (MDM^T11).
    Cancelled,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Available => "available",
            OutboxKind::Cancelled => "cancelled",
        }
    }
}

/// One notification waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub seq: i64,
    pub kind: OutboxKind,
    pub document_id: DocumentId,
    /// A correction's new version (for `Cancelled`).
    pub replaced_by: Option<DocumentId>,
    /// MSH-10: the same on every attempt.
    pub control_id: String,
    pub attempts: i64,
}

/// The outbox's backlog: notifications not answered yet, and the age of the oldest.
#[derive(Debug, Clone, Default)]
pub struct OutboxBacklog {
    pub pending: i64,
    pub oldest_created_at: Option<String>,
}

/// The inbound feed's record of applied messages, and the outbound feed's outbox.
///
/// Outbox rows are written by the store itself, in the transaction that changes the
/// document (the job that indexes it, the QA decision that files it, the correction that
/// enters it in error), once [`Hl7Store::enable_outbox`] was called at startup.
pub trait Hl7Store {
    /// The acknowledgement code a message was answered with, if it was applied before.
    fn hl7_applied(
        &self,
        tx: &mut Tx,
        sending_facility: &str,
        control_id: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Records a message as applied (inside the transaction of its change).
    fn record_hl7(
        &self,
        tx: &mut Tx,
        sending_facility: &str,
        control_id: &str,
        message_type: &str,
        ack_code: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// From now on, a document made available or cancelled gets an outbox row (an archive
    /// with no receiver keeps none).
    fn enable_outbox(&self);

    /// Notified when an outbox row may have been committed (the sender also looks every
    /// second).
    fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify>;

    /// The oldest notification not answered yet.
    fn next_outbox_event(&self) -> impl Future<Output = StoreResult<Option<OutboxEvent>>> + Send;

    /// An attempt that got no answer (no connection, no ACK in time): counted, its reason
    /// (no PHI) kept; the event stays first in line.
    fn outbox_attempt_failed(
        &self,
        seq: i64,
        error: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The receiver answered: `sent` (AA, CA) or `refused` (AE, AR, ...), with its code and
    /// why, as codes only (no PHI: `ERR-3 207`, or the archive's own words). Never sent
    /// again.
    fn outbox_answered(
        &self,
        seq: i64,
        ack_code: &str,
        accepted: bool,
        reason: Option<&str>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// What waits to be sent.
    fn outbox_backlog(&self) -> impl Future<Output = StoreResult<OutboxBacklog>> + Send;
}
