//! The audit trail of a principal's accesses: one [`AuditEvent`] per access, built by name
//! instead of by position, and [`authorize`], which audits every denial.
//!
//! The event lives here and not in [`crate::audit`] because an event is a principal's
//! access: the audit module below knows entries, their chain and checkpoints, not callers.

use crate::access::policy::{decide, purpose_of_use, Decision, Principal, Resource};
use crate::domain::{Action, BatchId, DocumentId, Outcome, PatientId};
use crate::error::{current_request_id, AppError};
use crate::store::audit_log::AuditEntry;
use crate::store::prelude::*;
use crate::store::Db;

/// One audited access: who, what, how it ended, about which patient and document.
#[must_use = "an audit event does nothing until it is recorded"]
pub struct AuditEvent<'a> {
    principal: &'a Principal,
    action: Action,
    outcome: Outcome,
    patient_id: Option<PatientId>,
    document_id: Option<DocumentId>,
    detail: Option<serde_json::Value>,
}

impl<'a> AuditEvent<'a> {
    /// An access by `principal` that went as asked ([`Outcome::Ok`] until told otherwise).
    pub fn new(principal: &'a Principal, action: Action) -> Self {
        AuditEvent {
            principal,
            action,
            outcome: Outcome::Ok,
            patient_id: None,
            document_id: None,
            detail: None,
        }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The patient it concerns (a `PatientId` or an `Option` of one).
    pub fn patient(mut self, patient_id: impl Into<Option<PatientId>>) -> Self {
        self.patient_id = patient_id.into();
        self
    }

    /// The document it concerns (a `DocumentId` or an `Option` of one).
    pub fn document(mut self, document_id: impl Into<Option<DocumentId>>) -> Self {
        self.document_id = document_id.into();
        self
    }

    /// The batch it concerns. The audit log records a batch in the entry's document field
    /// (the batch's uuid), as it has since batches were uploaded, so queries and
    /// verification read old and new entries alike.
    pub fn batch(mut self, batch_id: impl Into<Option<BatchId>>) -> Self {
        self.document_id = batch_id.into().map(|batch| DocumentId(batch.0));
        self
    }

    /// What else the entry says (ids and counts, never names, MRNs or text).
    pub fn detail(mut self, detail: impl Into<Option<serde_json::Value>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Appends the entry; if it cannot be written, the request fails with 503 and no PHI
    /// leaves the service. An access that only break-the-glass allows is flagged, with the
    /// access it went through.
    pub async fn record(self, db: &Db) -> Result<(), AppError> {
        let principal = self.principal;
        let detail = match self
            .patient_id
            .and_then(|p| principal.scope.break_glass_for(p))
        {
            Some(access) => {
                let mut detail = match self.detail {
                    Some(serde_json::Value::Object(map)) => map,
                    Some(other) => serde_json::Map::from_iter([("detail".to_string(), other)]),
                    None => serde_json::Map::new(),
                };
                detail.insert("break_glass".to_string(), serde_json::json!(access));
                Some(serde_json::Value::Object(detail))
            }
            None => self.detail,
        };
        let break_glass = detail
            .as_ref()
            .is_some_and(|d| d.get("break_glass").is_some());
        let entry = AuditEntry {
            user_id: Some(principal.user_id),
            role: Some(principal.role),
            action: self.action.as_str(),
            patient_id: self.patient_id,
            document_id: self.document_id,
            outcome: self.outcome,
            client_addr: principal.client_addr.clone(),
            request_id: Some(current_request_id()),
            purpose_of_use: Some(purpose_of_use(principal.role, break_glass).to_string()),
            break_glass,
            detail,
        };
        match db.append_audit(&entry).await {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(request_id = %current_request_id(), error = %error, "audit append failed");
                Err(AppError::audit_unavailable())
            }
        }
    }
}

/// Applies [`decide`] and audits a denial; returns the error to send.
pub async fn authorize(
    db: &Db,
    principal: &Principal,
    action: Action,
    resource: Option<&Resource<'_>>,
) -> Result<(), AppError> {
    let decision = decide(principal, action, resource);
    if decision.is_allow() {
        return Ok(());
    }
    let (outcome, error) = match decision {
        Decision::Forbidden => (Outcome::DeniedRole, AppError::forbidden()),
        _ => (Outcome::DeniedScope, AppError::not_found()),
    };
    AuditEvent::new(principal, action)
        .outcome(outcome)
        .patient(resource.map(|r| r.patient_id))
        .document(resource.and_then(|r| r.document_id))
        .record(db)
        .await?;
    Err(error)
}
