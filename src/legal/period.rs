//! How long a document must be kept: its retention by the rules of `[retention]`, and the
//! refusal of a deletion while that period runs.

use std::collections::HashMap;

use chrono::{Months, NaiveDate, Utc};
use serde::Serialize;

use crate::app::Archive;
use crate::config::RetentionConfig;
use crate::domain::{DocumentStatus, PatientId};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::documents::Document;
use crate::store::prelude::*;

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

pub(crate) fn add_years(date: NaiveDate, years: u32) -> NaiveDate {
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
pub(crate) fn counted_from(doc: &Document) -> NaiveDate {
    doc.service_date.unwrap_or_else(|| {
        chrono::DateTime::parse_from_rfc3339(&doc.created_at)
            .map(|t| t.date_naive())
            .unwrap_or_else(|_| Utc::now().date_naive())
    })
}

pub(crate) async fn retention_of_document(
    state: &Archive,
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
pub async fn refusal(state: &Archive, doc: &Document) -> AppResult<Option<AppError>> {
    if !matches!(doc.status, DocumentStatus::Indexed | DocumentStatus::Failed) {
        return Ok(None);
    }
    let retention = retention_of_document(state, doc, &mut HashMap::new()).await?;
    let today = state.config.retention.today();
    Ok(match retention {
        Retention::Until {
            rule, expires_on, ..
        } if expires_on > today => Some(AppError::new(
            ErrorCode::Conflict,
            format!(
                "the document is within its retention period until {expires_on} (rule \
                 \"{rule}\"); it can be destroyed from then on"
            ),
        )),
        Retention::Undetermined { rule } => Some(AppError::new(
            ErrorCode::Conflict,
            format!(
                "the document's retention period cannot be computed (rule \"{rule}\" needs \
                 the patient's birth date); record it first"
            ),
        )),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetentionRule;

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
