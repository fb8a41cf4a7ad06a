//! What every DICOMweb transaction shares: the UIDs a path names, the instances a caller
//! may see (with their documents), an instance's data set as the archive files it, and the
//! DICOM JSON answer.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::access::policy::{decide, Action, Principal};
use crate::domain::{DocumentId, DocumentStatus, PatientId};
use crate::error::AppResult;
use crate::http::state::AppState;
use crate::store::documents::{DicomLookup, Document};
use crate::store::prelude::*;

/// The media type of DICOM JSON answers.
pub const DICOM_JSON: &str = "application/dicom+json";

/// The UIDs a route's path names (each route names a prefix of study, series, instance).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct Uids {
    pub study: Option<String>,
    pub series: Option<String>,
    pub instance: Option<String>,
}

pub(super) use chartvault_ocr::dicom_json_text as text;

/// A DICOM JSON answer.
pub(super) fn dicom_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, DICOM_JSON),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The base URL of the DICOMweb endpoint.
pub(super) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    state.absolute_link(headers, "/dicom-web")
}

/// A document whose instance DICOMweb shows: stored and not withdrawn (accepted, being
/// processed, indexed, or held for QA, which `records` alone sees; not entered in error,
/// failed or deleted).
pub(super) fn shown(doc: &Document) -> bool {
    matches!(
        doc.status,
        DocumentStatus::Accepted
            | DocumentStatus::Processing
            | DocumentStatus::Indexed
            | DocumentStatus::Qa
    ) && doc.content_type == chartvault_ocr::DICOM_MIME
}

/// The instances the caller may read among those a search or retrieval could name: of the
/// patient (`PatientID`), else of the study, else all. Each with its document.
pub(super) async fn visible_instances(
    state: &AppState,
    principal: &Principal,
    patient: Option<PatientId>,
    study: Option<&str>,
) -> AppResult<(Vec<(Document, Value)>, usize)> {
    let mut docs: std::collections::BTreeMap<DocumentId, Document> = Default::default();
    let instances = match (patient, study) {
        (Some(patient), _) => {
            for doc in state.db.documents_of_patient(patient).await? {
                docs.insert(doc.id, doc);
            }
            let ids: Vec<DocumentId> = docs.values().filter(|d| shown(d)).map(|d| d.id).collect();
            state
                .db
                .dicom_instances(DicomLookup::Documents(&ids))
                .await?
        }
        (None, Some(study)) => state.db.dicom_instances(DicomLookup::Study(study)).await?,
        (None, None) => state.db.dicom_instances(DicomLookup::All).await?,
    };
    let mut out = Vec::with_capacity(instances.len());
    let mut hidden = 0;
    for instance in instances {
        let doc = match docs.remove(&instance.document_id) {
            Some(doc) => Some(doc),
            None => state.db.document(instance.document_id).await?,
        };
        let Some(doc) = doc.filter(shown) else {
            continue;
        };
        if study.is_some_and(|s| text(&instance.metadata, "0020000D") != Some(s)) {
            continue;
        }
        if decide(principal, Action::ReadDocument, Some(&doc.resource())).is_allow() {
            out.push((doc, instance.metadata));
        } else {
            hidden += 1;
        }
    }
    Ok((out, hidden))
}

/// An instance's data set as the archive files it: PatientID the MRN of the patient its
/// document is filed under (after a merge, the surviving chart's), IssuerOfPatientID that
/// issuer's where one is configured.
pub(super) async fn as_filed(
    state: &AppState,
    patients: &mut std::collections::BTreeMap<PatientId, Option<(String, Option<String>)>>,
    doc: &Document,
    mut metadata: Value,
) -> AppResult<Value> {
    if !patients.contains_key(&doc.patient_id) {
        let found = state.db.patient(doc.patient_id).await?.map(|p| {
            (
                p.mrn.as_str().to_string(),
                state
                    .config
                    .patients
                    .dicom_issuer(&p.mrn)
                    .map(str::to_string),
            )
        });
        patients.insert(doc.patient_id, found);
    }
    if let (Some(Some((mrn, issuer))), Some(elements)) =
        (patients.get(&doc.patient_id), metadata.as_object_mut())
    {
        elements.insert("00100020".into(), json!({ "vr": "LO", "Value": [mrn] }));
        match issuer {
            Some(issuer) => {
                elements.insert("00100021".into(), json!({ "vr": "LO", "Value": [issuer] }));
            }
            None => {
                elements.remove("00100021");
            }
        }
    }
    Ok(metadata)
}
