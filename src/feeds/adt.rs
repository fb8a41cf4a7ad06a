//! The registration system's ADT events applied to the archive's patients: A01/A04/A05
//! (admit, register, pre-admit) and A08/A31 (update) create the patient or update their name
//! and birth date, and record the visit their PV1 names (the encounter documents are filed
//! against); A40 merges two patients. The message's protocol (HL7 v2 over MLLP, its parsing and acknowledgement)
//! is the front end's (`mllp`); this is what a message means to the archive.
//!
//! Promises:
//! - a message is applied at most once: its sending facility and control id (MSH-4,
//!   MSH-10) are recorded in the transaction of its change, and a message seen again is
//!   acknowledged without being applied;
//! - the change is durable before the answer is `Accept`;
//! - every change is audited (`patient-register`, `patient-update`, with the message's type
//!   and control id, never its content);
//! - a name change reaches the name index: the patient's pages are indexed again under the
//!   new name, in the background;
//! - only the events above are applied; anything else is `Reject`ed, and a message that
//!   cannot be applied says why (`Error`) without PHI.

use chrono::NaiveDate;

use crate::app::Archive;
use crate::config::PatientsConfig;
use crate::domain::Mrn;
use crate::error::AppError;
use crate::store::prelude::*;

/// The events that create or update a patient.
pub const PATIENT_EVENTS: [&str; 5] = ["A01", "A04", "A05", "A08", "A31"];

/// Merge patient identifier list: MRG-1's patient into PID-3's.
pub const MERGE_EVENT: &str = "A40";

/// An ADT message as the front end read it.
#[derive(Debug, Clone)]
pub struct AdtMessage {
    /// MSH-4, first component.
    pub sending_facility: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-9.1 and MSH-9.2: `ADT`, `A04`.
    pub message_code: String,
    pub event: String,
    /// PID-3: each repetition's ID number (CX.1), assigning authority (CX.4.1) and
    /// identifier type (CX.5).
    pub identifiers: Vec<Identifier>,
    /// MRG-1 (A40): the prior patient's identifiers, read like PID-3.
    pub prior_identifiers: Vec<Identifier>,
    /// PID-5, the first repetition: family, given, further given names.
    pub name: Option<String>,
    /// PID-7.
    pub birth_date: Option<NaiveDate>,
    /// PV1, when it names a visit (PV1-19).
    pub visit: Option<Visit>,
}

/// The visit a PV1 segment reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// PV1-19, CX.1.
    pub number: String,
    /// PV1-2.
    pub patient_class: Option<String>,
    /// PV1-44, PV1-45.
    pub admitted_at: Option<chrono::NaiveDateTime>,
    pub discharged_at: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    pub id: String,
    pub authority: Option<String>,
    pub type_code: Option<String>,
}

/// How the message is answered (MSA-1: AA, AE, AR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accept,
    /// Understood but not applied: the reason (no PHI).
    Error(String),
    /// Not taken at all: the reason (a type not handled, a facility not allowed).
    Reject(String),
}

/// The MRN among identifiers: one of an issuer this archive knows (`patients`; an
/// identifier naming no authority is the default issuer's), an `MR` identifier of the
/// default issuer first, then an `MR` of another, then any. `None` when there is none;
/// `Some(Err)` when the one chosen is not a valid MRN.
fn mrn_of(identifiers: &[Identifier], patients: &PatientsConfig) -> Option<Result<Mrn, String>> {
    let issuer_of = |identifier: &Identifier| -> Option<Option<String>> {
        match patients.resolve_issuer(identifier.authority.as_deref()) {
            Ok(issuer) => Some(issuer),
            // An authority not configured is the default issuer's only while that is
            // unnamed (an archive that names no issuers takes every identifier).
            Err(_) if patients.default_issuer.is_none() => Some(None),
            Err(_) => None,
        }
    };
    let mut candidates: Vec<(&Identifier, Option<String>)> = identifiers
        .iter()
        .filter(|i| !i.id.trim().is_empty())
        .filter_map(|i| issuer_of(i).map(|issuer| (i, issuer)))
        .collect();
    // Stable: among equals, PID-3's order.
    candidates.sort_by_key(|(identifier, issuer)| {
        (
            identifier.type_code.as_deref() != Some("MR"),
            issuer.is_some(),
        )
    });
    let (identifier, issuer) = candidates.into_iter().next()?;
    Some(Mrn::parse(&identifier.id).map(|mrn| mrn.issued_by(issuer)))
}

impl AdtMessage {
    /// The MRN among PID-3's identifiers.
    fn mrn(&self, patients: &PatientsConfig) -> Option<Result<Mrn, String>> {
        mrn_of(&self.identifiers, patients)
    }
}

/// Applies one ADT message (see the module docs).
pub async fn apply(state: &Archive, message: &AdtMessage) -> Result<Answer, AppError> {
    let config = &state.config.hl7;
    if !config.allowed_facilities.is_empty()
        && !config
            .allowed_facilities
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&message.sending_facility))
    {
        return Ok(Answer::Reject(
            "the sending facility is not allowed (hl7.allowed_facilities)".into(),
        ));
    }
    let handled = PATIENT_EVENTS.contains(&message.event.as_str()) || message.event == MERGE_EVENT;
    if message.message_code != "ADT" || !handled {
        return Ok(Answer::Reject(format!(
            "the message type {}^{} is not handled",
            message.message_code, message.event
        )));
    }
    if message.control_id.trim().is_empty() {
        return Ok(Answer::Error("MSH-10 (message control id) is empty".into()));
    }
    let mrn = match message.mrn(&state.config.patients) {
        None => {
            return Ok(Answer::Error(
                "PID-3 holds no identifier of an assigning authority of this archive".into(),
            ))
        }
        Some(Err(error)) => return Ok(Answer::Error(format!("PID-3: {error}"))),
        Some(Ok(mrn)) => mrn,
    };
    let name = message
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 200);
    let message_type = format!("{}^{}", message.message_code, message.event);
    let existing = state.db.patient_by_mrn(&mrn).await?;
    if already_applied(state, message).await? {
        tracing::info!(message_type = %message_type, control_id = %message.control_id, "HL7 message seen before: acknowledged, not applied again");
        return Ok(Answer::Accept);
    }
    if message.event == MERGE_EVENT {
        return merge(state, message, &message_type, mrn, existing, name).await;
    }
    let action = match &existing {
        None => "patient-register",
        Some(_) => "patient-update",
    };
    if existing.is_none() && name.is_none() {
        return Ok(Answer::Error(
            "PID-5 (patient name) is needed to register a new patient".into(),
        ));
    }
    let mut entry = crate::store::audit_log::AuditEntry::administration(
        action,
        serde_json::json!({
            "via": "hl7", "message_type": message_type, "control_id": message.control_id,
            "sending_facility": message.sending_facility,
        }),
    );
    entry.patient_id = existing.as_ref().map(|p| p.id);
    entry.purpose_of_use = Some("HOPERAT".into());
    state.db.append_audit(&entry).await?;

    if message.visit.as_ref().is_some_and(|v| {
        v.number.trim().len() > 64 || v.patient_class.as_ref().is_some_and(|c| c.len() > 8)
    }) {
        return Ok(Answer::Error(
            "PV1-19 (visit number) is longer than 64 characters, or PV1-2 longer than 8".into(),
        ));
    }
    let mut tx = state.db.begin_write().await?;
    let patient_id = match &existing {
        None => {
            let name = name.expect("checked above");
            state
                .db
                .ensure_patient(&mut tx, &mrn, name, message.birth_date)
                .await?
        }
        Some(patient) => patient.id,
    };
    if let Some(visit) = &message.visit {
        state
            .db
            .record_encounter(
                &mut tx,
                &crate::store::patients::Encounter {
                    patient_id,
                    visit_number: visit.number.trim().to_string(),
                    patient_class: visit.patient_class.clone(),
                    admitted_at: visit.admitted_at,
                    discharged_at: visit.discharged_at,
                },
            )
            .await?;
    }
    let renamed = match &existing {
        None => None,
        Some(patient) => {
            let new_name = name.unwrap_or(&patient.name);
            let birth_date = message.birth_date.or(patient.birth_date);
            if new_name != patient.name || birth_date != patient.birth_date {
                state
                    .db
                    .update_patient(&mut tx, patient.id, new_name, birth_date)
                    .await?;
            }
            (new_name != patient.name).then_some(patient.id)
        }
    };
    record_applied(state, &mut tx, message, &message_type).await?;
    tx.commit().await?;
    if let Some(patient) = renamed {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = reindex_patient(&state, patient).await {
                tracing::error!(error = %format!("{error:#}"), "re-indexing a renamed patient's pages failed");
            }
        });
    }
    Ok(Answer::Accept)
}

/// Records the message as applied, in the transaction of its change.
async fn record_applied(
    state: &Archive,
    tx: &mut crate::store::base::Tx,
    message: &AdtMessage,
    message_type: &str,
) -> Result<(), AppError> {
    state
        .db
        .record_hl7(
            tx,
            &message.sending_facility,
            &message.control_id,
            message_type,
            "AA",
        )
        .await?;
    Ok(())
}

/// Resent? Then it was applied already: acknowledged, nothing done.
async fn already_applied(state: &Archive, message: &AdtMessage) -> Result<bool, AppError> {
    let mut tx = state.db.begin().await?;
    Ok(state
        .db
        .hl7_applied(&mut tx, &message.sending_facility, &message.control_id)
        .await?
        .is_some())
}

/// A40: everything of MRG-1's patient moves to PID-3's, whose chart the prior MRN then
/// finds. A prior MRN the archive never saw is kept as an alias all the same (an old cover
/// sheet with it files under the survivor); a survivor the archive never saw is registered
/// from PID-5.
async fn merge(
    state: &Archive,
    message: &AdtMessage,
    message_type: &str,
    survivor_mrn: Mrn,
    survivor: Option<crate::store::patients::Patient>,
    name: Option<&str>,
) -> Result<Answer, AppError> {
    let prior_mrn = match mrn_of(&message.prior_identifiers, &state.config.patients) {
        None => {
            return Ok(Answer::Error(
                "MRG-1 holds no identifier of an assigning authority of this archive".into(),
            ))
        }
        Some(Err(error)) => return Ok(Answer::Error(format!("MRG-1: {error}"))),
        Some(Ok(mrn)) => mrn,
    };
    if survivor.is_none() && name.is_none() {
        return Ok(Answer::Error(
            "PID-5 (patient name) is needed: the surviving patient is new here".into(),
        ));
    }
    let prior_patient = state.db.patient_by_mrn(&prior_mrn).await?;
    if let (Some(prior), Some(survivor)) = (&prior_patient, &survivor) {
        if prior.id == survivor.id {
            // Merged already (or the same patient): nothing to move.
            let mut tx = state.db.begin_write().await?;
            record_applied(state, &mut tx, message, message_type).await?;
            tx.commit().await?;
            return Ok(Answer::Accept);
        }
    }
    let mut entry = crate::store::audit_log::AuditEntry::administration(
        "patient-merge",
        serde_json::json!({
            "via": "hl7", "message_type": message_type, "control_id": message.control_id,
            "sending_facility": message.sending_facility,
            "prior_patient": prior_patient.as_ref().map(|p| p.id),
        }),
    );
    entry.patient_id = survivor.as_ref().map(|p| p.id);
    entry.purpose_of_use = Some("HOPERAT".into());
    state.db.append_audit(&entry).await?;

    let mut tx = state.db.begin_write().await?;
    let survivor_id = match &survivor {
        Some(patient) => patient.id,
        None => {
            let name = name.expect("checked above");
            state
                .db
                .ensure_patient(&mut tx, &survivor_mrn, name, message.birth_date)
                .await?
        }
    };
    let prior_id = match &prior_patient {
        Some(patient) => patient.id,
        // Never seen here: kept as an alias of the survivor.
        None => {
            let alias_name = match &survivor {
                Some(patient) => patient.name.clone(),
                None => name.expect("checked above").to_string(),
            };
            state
                .db
                .ensure_patient(&mut tx, &prior_mrn, &alias_name, None)
                .await?
        }
    };
    let moved = state
        .db
        .merge_patients(&mut tx, prior_id, survivor_id)
        .await?;
    record_applied(state, &mut tx, message, message_type).await?;
    tx.commit().await?;
    tracing::info!(documents = moved.len(), control_id = %message.control_id, "merged a patient into another (HL7 A40)");
    if !moved.is_empty() {
        // The index says whose each page is: the moved pages are indexed again under the
        // survivor (and found by the survivor's MRN and name) before the answer.
        for document in moved {
            if let Err(error) = crate::ingest::pages::reindex_document(state, document).await {
                tracing::error!(error = %format!("{error:#}"), "re-indexing a merged patient's document failed");
            }
        }
    }
    Ok(Answer::Accept)
}

/// Indexes every page of the patient again (their name is on each page's index entry).
async fn reindex_patient(state: &Archive, patient: crate::domain::PatientId) -> anyhow::Result<()> {
    for doc in state.db.documents_of_patient(patient).await? {
        if doc.status == crate::domain::DocumentStatus::Indexed {
            crate::ingest::pages::reindex_document(state, doc.id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(id: &str, authority: Option<&str>, type_code: Option<&str>) -> Identifier {
        Identifier {
            id: id.into(),
            authority: authority.map(str::to_string),
            type_code: type_code.map(str::to_string),
        }
    }

    #[test]
    fn the_mrn_is_an_mr_identifier_of_an_issuer_the_archive_knows() {
        let message = AdtMessage {
            sending_facility: "REG".into(),
            control_id: "1".into(),
            message_code: "ADT".into(),
            event: "A04".into(),
            identifiers: vec![
                id("99887766", Some("SSA"), Some("SS")),
                id("OTHER-5", Some("NORTH"), Some("MR")),
                id("V-17", Some("HOSP"), Some("VN")),
                id("H-1001", Some("HOSP"), Some("MR")),
            ],
            prior_identifiers: Vec::new(),
            name: None,
            birth_date: None,
            visit: None,
        };
        let issuers = |default: Option<&str>, others: &[&str]| PatientsConfig {
            default_issuer: default.map(str::to_string),
            default_fhir_system: None,
            issuers: others
                .iter()
                .map(|name| crate::config::IssuerConfig {
                    name: name.to_string(),
                    fhir_system: None,
                    dicom_issuer: None,
                })
                .collect(),
        };
        let chosen = |patients: &PatientsConfig| {
            message
                .mrn(patients)
                .map(|mrn| mrn.unwrap())
                .map(|mrn| (mrn.as_str().to_string(), mrn.issuer().map(str::to_string)))
        };
        // The default issuer's MR first, whatever the order.
        assert_eq!(
            chosen(&issuers(Some("HOSP"), &["NORTH"])),
            Some(("H-1001".into(), None))
        );
        // Another issuer's MR when the default has none.
        assert_eq!(
            chosen(&issuers(Some("SOUTH"), &["NORTH"])),
            Some(("OTHER-5".into(), Some("NORTH".into())))
        );
        // Nothing of an issuer the archive knows.
        assert_eq!(chosen(&issuers(Some("SOUTH"), &[])), None);
        // No issuers named: every identifier is the default's; the first MR.
        assert_eq!(chosen(&issuers(None, &[])), Some(("OTHER-5".into(), None)));
    }
}
