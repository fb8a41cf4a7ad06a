//! The EHR told of each document: HL7 v2 MDM messages, built from the outbox (see
//! `store::hl7`) when they are sent. The transport (MLLP, retries, acknowledgements) is the
//! front end's (`mllp::sender`); this is what a message says.
//!
//! Promises:
//! - a document made available (indexed and out of QA) is announced once: `MDM^T02`
//!   (notification and content, the content being a pointer to the document's FHIR
//!   DocumentReference, or its API resource, per `hl7.mdm.link`: OBX-5) or
//!   `T01` (notification only), per `hl7.mdm.event`; a corrected version is announced as
//!   the replacement of the one it corrects (`T10` / `T09`, TXA-13 naming the old one);
//! - a document entered in error (corrected) or destroyed is taken back with `MDM^T11`
//!   (TXA-19 `OB` when a replacement exists, named in TXA-13; `CA` otherwise);
//! - the pages' text is never sent; the patient is named as the EHR knows them (PID-3 MRN
//!   under its issuer, PID-5, PID-7), the document by its id.

use chrono::{DateTime, NaiveDate, Utc};

use crate::app::Archive;
use crate::config::Config;
use crate::store::documents::Document;
use crate::store::hl7::{OutboxEvent, OutboxKind};
use crate::store::patients::Patient;
use crate::store::prelude::*;

/// One message ready to go.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `MDM^T02`: for the log.
    pub message_type: String,
    /// The message (segments separated by `\r`), without MLLP framing.
    pub text: String,
}

/// The message of `event`, built from what the archive holds now; `None` when its document
/// or patient is no longer known (nothing to say).
pub async fn message_for(state: &Archive, event: &OutboxEvent) -> anyhow::Result<Option<Outgoing>> {
    let Some(document) = state.db.document(event.document_id).await? else {
        return Ok(None);
    };
    let Some(patient) = state.db.patient(document.patient_id).await? else {
        return Ok(None);
    };
    let sensitive = state.sensitive_categories.contains(&document.category);
    Ok(Some(build(
        &state.config,
        event,
        &document,
        &patient,
        sensitive,
        Utc::now(),
    )))
}

/// The trigger event for `event` under `config`.
fn trigger(config: &Config, event: &OutboxEvent, document: &Document) -> &'static str {
    let content = config.hl7.mdm.event == "T02";
    match (event.kind, document.supersedes.is_some(), content) {
        (OutboxKind::Cancelled, _, _) => "T11",
        (OutboxKind::Available, true, true) => "T10",
        (OutboxKind::Available, true, false) => "T09",
        (OutboxKind::Available, false, true) => "T02",
        (OutboxKind::Available, false, false) => "T01",
    }
}

/// HL7 v2 escaping of text put in a field.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `YYYYMMDDHHMMSS` of a stored RFC 3339 time (empty when it does not parse).
fn timestamp(stored: &str) -> String {
    DateTime::parse_from_rfc3339(stored)
        .map(|t| t.with_timezone(&Utc).format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_default()
}

fn date(date: Option<NaiveDate>) -> String {
    date.map(|d| d.format("%Y%m%d").to_string())
        .unwrap_or_default()
}

/// The message (see the module docs).
pub fn build(
    config: &Config,
    event: &OutboxEvent,
    document: &Document,
    patient: &Patient,
    sensitive: bool,
    now: DateTime<Utc>,
) -> Outgoing {
    let mdm = &config.hl7.mdm;
    let trigger = trigger(config, event, document);
    // T02, T04, T06, T08 and T10 carry content (OBX); the others are notifications.
    let with_content = matches!(trigger, "T02" | "T10");
    let structure = if with_content { "MDM_T02" } else { "MDM_T01" };
    let now = now.format("%Y%m%d%H%M%S");
    let issuer = config.patients.issuer_name(&patient.mrn).unwrap_or("");
    // The archive keeps one name; its last word is taken for the family name.
    let (given, family) = match patient.name.trim().rsplit_once(' ') {
        Some((given, family)) => (given.trim(), family),
        None => ("", patient.name.trim()),
    };
    let path = match mdm.link.as_str() {
        "api" => "api/v1/documents",
        _ => "fhir/DocumentReference",
    };
    let document_url = format!(
        "{}/{path}/{}",
        config
            .server
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/'),
        document.id
    );
    let (availability, related, reason) = match event.kind {
        OutboxKind::Available => ("AV", document.supersedes, ""),
        OutboxKind::Cancelled => match event.replaced_by {
            Some(replacement) => ("OB", Some(replacement), "corrected"),
            None => ("CA", None, "removed from the archive"),
        },
    };
    let related = related
        .map(|id| format!("{id}^{}", escape(&mdm.sending_application)))
        .unwrap_or_default();
    let mut text = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{now}||MDM^{trigger}^{structure}|{}|P|2.5\r",
        escape(&mdm.sending_application),
        escape(&mdm.sending_facility),
        escape(&mdm.receiving_application),
        escape(&mdm.receiving_facility),
        escape(&event.control_id),
    );
    text.push_str(&format!("EVN|{trigger}|{now}\r"));
    text.push_str(&format!(
        "PID|1||{}^^^{}^MR||{}^{}||{}\r",
        escape(patient.mrn.as_str()),
        escape(issuer),
        escape(family),
        escape(given),
        date(patient.birth_date),
    ));
    // PV1-2 patient class unknown; PV1-19 the visit the document was filed against.
    text.push_str(&format!(
        "PV1|1|U{}{}\r",
        "|".repeat(17),
        escape(document.encounter.as_deref().unwrap_or("")),
    ));
    // TXA: 2 type, 3 presentation, 4 activity (service date), 6 origination, 12 unique
    // document number, 13 parent/related document, 17 completion, 18 confidentiality,
    // 19 availability, 21 change reason.
    text.push_str(&format!(
        "TXA|1|{}|AP|{}||{}||||||{}^{}|{related}||||AU|{}|{availability}||{}\r",
        escape(&document.document_type),
        date(document.service_date),
        timestamp(&document.created_at),
        document.id,
        escape(&mdm.sending_application),
        if sensitive { "R" } else { "U" },
        reason,
    ));
    if with_content {
        // A reference pointer (RP): the document at the archive's API.
        text.push_str(&format!(
            "OBX|1|RP|DOCUMENT^Archived document^L||{}^{}^AP^{}||||||F\r",
            escape(&document_url),
            escape(&mdm.sending_application),
            subtype(&document.content_type),
        ));
    }
    Outgoing {
        message_type: format!("MDM^{trigger}"),
        text,
    }
}

/// RP.4 (subtype) of the original's media type.
fn subtype(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "PDF",
        "image/tiff" => "TIFF",
        "image/png" => "PNG",
        "image/jpeg" => "JPEG",
        "application/dicom" => "DICOM",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Category, DocumentId, DocumentStatus, Mrn, PatientId};

    fn document(supersedes: Option<DocumentId>) -> Document {
        Document {
            id: DocumentId::new_random(),
            patient_id: PatientId::new_random(),
            document_type: "discharge-summary".into(),
            category: Category::parse("general").unwrap(),
            service_date: NaiveDate::from_ymd_opt(1998, 3, 4),
            encounter: Some("V-77".into()),
            content_type: "application/pdf".into(),
            sha256: String::new(),
            sha1: None,
            size_bytes: 1,
            page_count: 1,
            status: DocumentStatus::Indexed,
            failure_reason: None,
            created_at: "2026-12-07T10:11:12.000Z".into(),
            indexed_at: None,
            deleted_at: None,
            deleted_by: None,
            deletion_reason: None,
            qa_reason: None,
            notice: None,
            supersedes,
            superseded_by: None,
            entered_in_error_at: None,
            entered_in_error_by: None,
            correction_reason: None,
        }
    }

    fn event(kind: OutboxKind, replaced_by: Option<DocumentId>) -> OutboxEvent {
        OutboxEvent {
            seq: 1,
            kind,
            document_id: DocumentId::new_random(),
            replaced_by,
            control_id: "c0ffee".into(),
            attempts: 0,
        }
    }

    #[test]
    fn messages_name_the_patient_the_document_and_what_happened_to_it() {
        let mut config = Config::default();
        config.patients.default_issuer = Some("HOSP".into());
        config.server.public_url = Some("https://archive.example/".into());
        let patient = Patient {
            id: PatientId::new_random(),
            mrn: Mrn::parse("H-12").unwrap(),
            name: "JANE Q PUBLIC".into(),
            birth_date: NaiveDate::from_ymd_opt(1980, 2, 14),
        };
        let doc = document(None);
        let now = Utc::now();
        let sent = build(
            &config,
            &event(OutboxKind::Available, None),
            &doc,
            &patient,
            false,
            now,
        );
        assert_eq!(sent.message_type, "MDM^T02");
        let segments: Vec<&str> = sent.text.trim_end().split('\r').collect();
        assert_eq!(
            segments.iter().map(|s| &s[..3]).collect::<Vec<_>>(),
            ["MSH", "EVN", "PID", "PV1", "TXA", "OBX"]
        );
        assert!(segments[0].contains("|MDM^T02^MDM_T02|c0ffee|P|2.5"));
        assert!(segments[2].ends_with("^^^HOSP^MR||PUBLIC^JANE Q||19800214"));
        assert_eq!(segments[3].split('|').nth(19), Some("V-77"));
        let txa: Vec<&str> = segments[4].split('|').collect();
        assert_eq!(txa[2], "discharge-summary");
        assert_eq!(txa[4], "19980304");
        assert_eq!(txa[6], "20261207101112");
        assert_eq!(txa[12], format!("{}^CHARTVAULT", doc.id));
        assert_eq!((txa[17], txa[18], txa[19]), ("AU", "U", "AV"));
        assert!(segments[5].contains(&format!(
            "|https://archive.example/fhir/DocumentReference/{}^CHARTVAULT^AP^PDF|",
            doc.id
        )));

        // T01 configured: no content; a correction is a replacement naming the old version.
        config.hl7.mdm.event = "T01".into();
        let old = DocumentId::new_random();
        let sent = build(
            &config,
            &event(OutboxKind::Available, None),
            &document(Some(old)),
            &patient,
            true,
            now,
        );
        assert_eq!(sent.message_type, "MDM^T09");
        assert!(!sent.text.contains("OBX"));
        assert!(sent.text.contains(&format!("|{old}^CHARTVAULT|")));
        assert!(sent.text.contains("|AU|R|AV|"));

        // The old version is taken back, pointing at its replacement.
        let new = DocumentId::new_random();
        let sent = build(
            &config,
            &event(OutboxKind::Cancelled, Some(new)),
            &doc,
            &patient,
            false,
            now,
        );
        assert_eq!(sent.message_type, "MDM^T11");
        assert!(sent.text.contains("|MDM^T11^MDM_T01|"));
        assert!(sent.text.contains(&format!("|{new}^CHARTVAULT|")));
        assert!(sent.text.contains("|AU|U|OB||corrected\r"));
        assert_eq!(escape("a|b^c&d~e\\f"), "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f");
    }
}
