//! Retention: how long each document must be kept, and the run that destroys what has
//! expired.
//!
//! Promises:
//! - A document's retention period is counted from its service date (or, without one, the
//!   day it was archived) by the rule for its document type (`[[retention.rules]]`, a rule
//!   for `*` as the default, a rule of the configured jurisdiction before a general one).
//!   The minor rule: a patient who was a minor on that date keeps the document at least
//!   until `majority_age` + the rule's `minor_years_after_majority`, from their birth date.
//!   A minor rule with no birth date on record keeps the document (nothing proves it
//!   expired). No rule for the type: kept until someone deletes it.
//! - A run lists every expired document; with `apply` it destroys (crypto-shreds) those no
//!   legal hold covers, each after its audit entry, and writes a destruction certificate
//!   (what, when, which rule, by whom) in the destruction's own transaction. Certificates
//!   outlive the data and cannot be edited or deleted.
//! - Deleting a document within its retention period is refused (409 naming the rule and
//!   the date it ends).
//! - `retention.today` fixes the day runs count to (a drill or a test): a warning is logged
//!   at start when it is set.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::access::policy::Principal;
use crate::app::Archive;
use crate::domain::DocumentId;
use crate::legal::period::{retention_of_document, Retention};
use crate::store::audit_log::AuditEntry;
use crate::store::documents::Document;
use crate::store::holds::HoldRef;
use crate::store::prelude::*;
use crate::store::retention::{NewCertificate, RunCounts, RETENTION_JOB};

/// One expired document in a run's report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Expired {
    pub document_id: DocumentId,
    pub document_type: String,
    pub pages: u32,
    pub rule: String,
    pub counted_from: NaiveDate,
    pub expired_on: NaiveDate,
    /// The active holds that keep it (empty: not held).
    pub holds: Vec<HoldRef>,
    pub destroyed: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub run_id: String,
    pub as_of: NaiveDate,
    pub applied: bool,
    pub expired: Vec<Expired>,
    /// Documents whose retention needs the patient's birth date, not on record.
    pub undetermined: usize,
    pub destroyed: usize,
    pub held: usize,
}

/// Who runs retention: a person through the API, or the service's schedule.
pub enum RunBy<'a> {
    Person(&'a Principal),
    Schedule,
}

/// Lists what has expired and, with `apply`, destroys what no hold covers.
pub async fn run(state: &Archive, by: RunBy<'_>, apply: bool) -> anyhow::Result<RunReport> {
    let as_of = state.config.retention.today();
    let user = match &by {
        RunBy::Person(p) => Some(p.user_id),
        RunBy::Schedule => None,
    };
    let run_id = state.db.insert_retention_run(as_of, apply, user).await?;
    let mut birth_dates = HashMap::new();
    let mut report = RunReport {
        run_id: run_id.clone(),
        as_of,
        applied: apply,
        expired: Vec::new(),
        undetermined: 0,
        destroyed: 0,
        held: 0,
    };
    for doc in state.db.retention_candidates().await? {
        // A person's run lists (and destroys) only what that person may see: a sensitive
        // category needs their grant. The schedule covers everything.
        if let RunBy::Person(principal) = &by {
            let resource = doc.resource();
            let action = crate::access::policy::Action::RunRetention;
            if !crate::access::policy::decide(principal, action, Some(&resource)).is_allow()
                || crate::legal::shred::versions_refusal(state, principal, action, &doc)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?
                    .is_some()
            {
                continue;
            }
        }
        let (rule, counted_from, expires_on) =
            match retention_of_document(state, &doc, &mut birth_dates).await? {
                Retention::Until {
                    rule,
                    counted_from,
                    expires_on,
                } if expires_on <= as_of => (rule, counted_from, expires_on),
                Retention::Undetermined { .. } => {
                    report.undetermined += 1;
                    continue;
                }
                _ => continue,
            };
        let holds = state.db.holds_covering(doc.id).await?;
        let mut expired = Expired {
            document_id: doc.id,
            document_type: doc.document_type.clone(),
            pages: doc.page_count,
            rule,
            counted_from,
            expired_on: expires_on,
            destroyed: false,
            holds,
        };
        if !expired.holds.is_empty() {
            report.held += 1;
        } else if apply {
            expired.destroyed = destroy(state, &by, &run_id, &doc, &expired).await?;
            report.destroyed += usize::from(expired.destroyed);
        }
        report.expired.push(expired);
    }
    state
        .db
        .finish_retention_run(
            &run_id,
            &RunCounts {
                expired: report.expired.len(),
                held: report.held,
                destroyed: report.destroyed,
            },
        )
        .await?;
    tracing::info!(
        run_id = %run_id,
        applied = apply,
        expired = report.expired.len(),
        held = report.held,
        destroyed = report.destroyed,
        "retention run"
    );
    Ok(report)
}

/// Audits (before the act), then destroys one expired document with its certificate.
async fn destroy(
    state: &Archive,
    by: &RunBy<'_>,
    run_id: &str,
    doc: &Document,
    expired: &Expired,
) -> anyhow::Result<bool> {
    let detail = serde_json::json!({
        "run": run_id,
        "rule": expired.rule,
        "expired_on": expired.expired_on,
        "pages": doc.page_count,
        "sha256": doc.sha256,
    });
    let (entry, destroyed_by) = match by {
        RunBy::Person(p) => (
            AuditEntry {
                user_id: Some(p.user_id),
                role: Some(p.role),
                action: "retention-destroy",
                patient_id: Some(doc.patient_id),
                document_id: Some(doc.id),
                outcome: crate::domain::Outcome::Ok,
                client_addr: p.client_addr.clone(),
                request_id: Some(crate::error::current_request_id()),
                purpose_of_use: Some("retention".into()),
                break_glass: false,
                detail: Some(detail),
            },
            p.user_id.to_string(),
        ),
        RunBy::Schedule => (
            AuditEntry {
                user_id: None,
                role: None,
                action: "retention-destroy",
                patient_id: Some(doc.patient_id),
                document_id: Some(doc.id),
                outcome: crate::domain::Outcome::Ok,
                client_addr: None,
                request_id: None,
                purpose_of_use: Some("retention".into()),
                break_glass: false,
                detail: Some(detail),
            },
            RETENTION_JOB.to_string(),
        ),
    };
    state.db.append_audit(&entry).await?;
    let certificate = NewCertificate {
        run_id: run_id.to_string(),
        document_id: doc.id,
        document_sha256: doc.sha256.clone(),
        document_type: doc.document_type.clone(),
        page_count: doc.page_count,
        rule: expired.rule.clone(),
        counted_from: expired.counted_from,
        expired_on: expired.expired_on,
        destroyed_by: destroyed_by.clone(),
    };
    let reason = format!("retention: {}", expired.rule);
    crate::legal::shred::shred(state, doc, &destroyed_by, &reason, Some(&certificate)).await
}

/// The scheduled run of `serve`, every `retention.interval_minutes` (the first one an
/// interval after start).
pub fn spawn_schedule(state: Archive) {
    let minutes = state.config.retention.interval_minutes;
    if minutes == 0 || state.config.retention.rules.is_empty() {
        return;
    }
    if let Some(today) = state.config.retention.today {
        tracing::warn!(%today, "retention counts expiry to a fixed day (retention.today)");
    }
    tokio::spawn(async move {
        let period = std::time::Duration::from_secs(minutes.saturating_mul(60));
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let apply = state.config.retention.apply_on_schedule;
            if let Err(error) = run(&state, RunBy::Schedule, apply).await {
                tracing::error!(error = ?error, "the scheduled retention run failed");
            }
        }
    });
}
