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

use chrono::{Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::db::holds::HoldRef;
use crate::db::retention::{NewCertificate, RunCounts, RETENTION_JOB};
use crate::db::{AuditEntry, Document};
use crate::domain::{DocumentId, DocumentStatus, PatientId};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AppState;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Which rules apply: those of this jurisdiction and those with none.
    pub jurisdiction: Option<String>,
    /// The age of majority for the minor rule.
    pub majority_age: u32,
    /// The scheduled run in `serve`: every this many minutes (0: no scheduled run).
    pub interval_minutes: u64,
    /// Whether the scheduled run destroys what expired (otherwise it only lists and counts).
    pub apply_on_schedule: bool,
    /// Count expiry to this day instead of today (drills and tests).
    pub today: Option<NaiveDate>,
    pub rules: Vec<RetentionRule>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            jurisdiction: None,
            majority_age: 18,
            interval_minutes: 24 * 60,
            apply_on_schedule: false,
            today: None,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// A document type, or `*` for every type without a rule of its own.
    pub document_type: String,
    /// The rule applies only where `retention.jurisdiction` is this.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Years from the service date.
    pub years: u32,
    /// For a patient who was a minor on the service date: kept at least until the age of
    /// majority plus this many years.
    #[serde(default)]
    pub minor_years_after_majority: Option<u32>,
}

impl RetentionRule {
    fn describe(&self, majority_age: u32) -> String {
        let mut text = self.document_type.clone();
        if let Some(j) = &self.jurisdiction {
            text.push_str(&format!(" ({j})"));
        }
        text.push_str(&format!(": {} years from the service date", self.years));
        if let Some(n) = self.minor_years_after_majority {
            text.push_str(&format!("; minors until age {majority_age} + {n} years"));
        }
        text
    }
}

impl RetentionConfig {
    /// Document types through the one slug parser (`Letter` is the type `letter`).
    pub fn normalise(&mut self) -> anyhow::Result<()> {
        for rule in &mut self.rules {
            if rule.document_type != "*" {
                rule.document_type =
                    crate::domain::parse_slug("retention.rules.document_type", &rule.document_type)
                        .map_err(|e| anyhow::anyhow!(e))?;
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for rule in &self.rules {
            if rule.document_type != "*" {
                crate::domain::parse_slug("retention.rules.document_type", &rule.document_type)
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
            if rule.years == 0 || rule.years > 200 {
                anyhow::bail!(
                    "retention rule for {}: years must be 1 to 200",
                    rule.document_type
                );
            }
        }
        if self.majority_age == 0 || self.majority_age > 30 {
            anyhow::bail!("retention.majority_age must be 1 to 30");
        }
        Ok(())
    }

    /// The rule for a document type: of the jurisdiction before a general one, the type's
    /// own before `*`.
    pub fn rule_for(&self, document_type: &str) -> Option<&RetentionRule> {
        let applies =
            |r: &&RetentionRule| r.jurisdiction.is_none() || r.jurisdiction == self.jurisdiction;
        let rank = |r: &RetentionRule| {
            (
                r.document_type == document_type,
                r.jurisdiction.is_some() && r.jurisdiction == self.jurisdiction,
            )
        };
        self.rules
            .iter()
            .filter(applies)
            .filter(|r| r.document_type == document_type || r.document_type == "*")
            .max_by_key(|r| rank(r))
    }

    /// The day runs count expiry to.
    pub fn today(&self) -> NaiveDate {
        self.today.unwrap_or_else(|| Utc::now().date_naive())
    }
}

/// When a document's retention period ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Retention {
    /// No rule covers its type.
    NoRule,
    Until {
        rule: String,
        counted_from: NaiveDate,
        /// The first day it may be destroyed.
        expires_on: NaiveDate,
    },
    /// The minor rule applies but the patient's birth date is not on record.
    Undetermined { rule: String },
}

fn add_years(date: NaiveDate, years: u32) -> NaiveDate {
    date.checked_add_months(Months::new(years.saturating_mul(12)))
        .unwrap_or(NaiveDate::MAX)
}

/// The retention of a document with this type, service date (or archive day) and patient
/// birth date.
pub fn retention_of(
    config: &RetentionConfig,
    document_type: &str,
    counted_from: NaiveDate,
    birth_date: Option<NaiveDate>,
) -> Retention {
    let Some(rule) = config.rule_for(document_type) else {
        return Retention::NoRule;
    };
    let description = rule.describe(config.majority_age);
    let mut expires_on = add_years(counted_from, rule.years);
    if let Some(extra) = rule.minor_years_after_majority {
        let Some(birth) = birth_date else {
            return Retention::Undetermined { rule: description };
        };
        let majority = add_years(birth, config.majority_age);
        if counted_from < majority {
            expires_on = expires_on.max(add_years(majority, extra));
        }
    }
    Retention::Until {
        rule: description,
        counted_from,
        expires_on,
    }
}

/// The date a document's retention counts from: its service date, or the day it was
/// archived.
fn counted_from(doc: &Document) -> NaiveDate {
    doc.service_date.unwrap_or_else(|| {
        chrono::DateTime::parse_from_rfc3339(&doc.created_at)
            .map(|t| t.date_naive())
            .unwrap_or_else(|_| Utc::now().date_naive())
    })
}

async fn retention_of_document(
    state: &AppState,
    doc: &Document,
    birth_dates: &mut HashMap<PatientId, Option<NaiveDate>>,
) -> anyhow::Result<Retention> {
    let config = &state.config.retention;
    if config.rule_for(&doc.document_type).is_none() {
        return Ok(Retention::NoRule);
    }
    let birth_date = match birth_dates.get(&doc.patient_id) {
        Some(known) => *known,
        None => {
            let birth = state
                .db
                .patient(doc.patient_id)
                .await?
                .and_then(|p| p.birth_date);
            birth_dates.insert(doc.patient_id, birth);
            birth
        }
    };
    Ok(retention_of(
        config,
        &doc.document_type,
        counted_from(doc),
        birth_date,
    ))
}

/// The refusal of a person's deletion while the document's retention period runs. Documents
/// waiting in QA or entered in error are not records of the chart yet (or any more).
pub async fn refusal(state: &AppState, doc: &Document) -> ApiResult<Option<ApiError>> {
    if !matches!(doc.status, DocumentStatus::Indexed | DocumentStatus::Failed) {
        return Ok(None);
    }
    let retention = retention_of_document(state, doc, &mut HashMap::new()).await?;
    let today = state.config.retention.today();
    Ok(match retention {
        Retention::Until {
            rule, expires_on, ..
        } if expires_on > today => Some(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the document is within its retention period until {expires_on} (rule \
                 \"{rule}\"); it can be destroyed from then on"
            ),
        )),
        Retention::Undetermined { rule } => Some(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the document's retention period cannot be computed (rule \"{rule}\" needs \
                 the patient's birth date); record it first"
            ),
        )),
        _ => None,
    })
}

/// One expired document in a run's report.
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
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
pub async fn run(state: &AppState, by: RunBy<'_>, apply: bool) -> anyhow::Result<RunReport> {
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
            let action = crate::auth::Action::RunRetention;
            if !crate::auth::decide(principal, action, Some(&resource)).is_allow()
                || crate::shred::versions_refusal(state, principal, action, &doc)
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
    state: &AppState,
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
                outcome: "ok",
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
                outcome: "ok",
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
    crate::shred::shred(state, doc, &destroyed_by, &reason, Some(&certificate)).await
}

/// The scheduled run of `serve`, every `retention.interval_minutes` (the first one an
/// interval after start).
pub fn spawn_schedule(state: AppState) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn config(rules: Vec<RetentionRule>) -> RetentionConfig {
        RetentionConfig {
            rules,
            ..RetentionConfig::default()
        }
    }

    fn rule(document_type: &str, years: u32, minor: Option<u32>) -> RetentionRule {
        RetentionRule {
            document_type: document_type.into(),
            jurisdiction: None,
            years,
            minor_years_after_majority: minor,
        }
    }

    #[test]
    fn an_adults_document_expires_the_rules_years_after_its_service_date() {
        let c = config(vec![
            rule("*", 7, Some(3)),
            rule("discharge-summary", 10, None),
        ]);
        let Retention::Until { expires_on, .. } = retention_of(
            &c,
            "discharge-summary",
            date(2001, 3, 4),
            Some(date(1950, 1, 1)),
        ) else {
            panic!("a rule applies")
        };
        assert_eq!(expires_on, date(2011, 3, 4));
        let Retention::Until { expires_on, .. } = retention_of(
            &c,
            "progress-note",
            date(2001, 3, 4),
            Some(date(1950, 1, 1)),
        ) else {
            panic!("the default rule applies")
        };
        assert_eq!(expires_on, date(2008, 3, 4));
    }

    #[test]
    fn a_minors_document_is_kept_until_majority_plus_the_extra_years() {
        let c = config(vec![rule("*", 7, Some(3))]);
        // Born 2000-06-01, seen at 5: 18 + 3 → 2021-06-01, later than 2005 + 7.
        let r = retention_of(&c, "x-ray", date(2005, 6, 1), Some(date(2000, 6, 1)));
        assert!(matches!(r, Retention::Until { expires_on, .. } if expires_on == date(2021, 6, 1)));
        // Seen at 17 years 11 months: 2018-05-01 + 7 is later than 18 + 3.
        let r = retention_of(&c, "x-ray", date(2018, 5, 1), Some(date(2000, 6, 1)));
        assert!(matches!(r, Retention::Until { expires_on, .. } if expires_on == date(2025, 5, 1)));
        // No birth date: nothing proves the minor rule ended.
        let r = retention_of(&c, "x-ray", date(2005, 6, 1), None);
        assert!(matches!(r, Retention::Undetermined { .. }));
    }

    #[test]
    fn a_jurisdictions_rule_wins_over_the_general_one_and_others_do_not_apply() {
        let mut c = config(vec![
            rule("lab-report", 5, None),
            RetentionRule {
                jurisdiction: Some("US-CA".into()),
                ..rule("lab-report", 9, None)
            },
            RetentionRule {
                jurisdiction: Some("US-NY".into()),
                ..rule("*", 30, None)
            },
        ]);
        assert_eq!(c.rule_for("lab-report").unwrap().years, 5);
        assert!(c.rule_for("x-ray").is_none());
        c.jurisdiction = Some("US-CA".into());
        assert_eq!(c.rule_for("lab-report").unwrap().years, 9);
        c.jurisdiction = Some("US-NY".into());
        assert_eq!(c.rule_for("lab-report").unwrap().years, 5);
        assert_eq!(c.rule_for("x-ray").unwrap().years, 30);
        assert!(matches!(
            retention_of(&c, "x-ray", date(2000, 1, 1), None),
            Retention::Until { expires_on, .. } if expires_on == date(2030, 1, 1)
        ));
    }
}
