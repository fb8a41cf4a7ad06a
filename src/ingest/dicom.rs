//! DICOM instances stored as they arrive through DICOMweb (STOW-RS): each is filed under the
//! patient its PatientID names, and its data set recorded (sealed) for searches. And the
//! recording of the instances of DICOM documents stored before the data set was kept:
//! from the service's start, in the background, one document at a time, each original
//! preflighted again in a decoder process (resumable: what is not done has no row at the
//! next start).

use chartvault_ocr::{DicomInfo, ScanFormat};
use chrono::NaiveDate;

use crate::access::policy::Principal;
use crate::app::Archive;
use crate::domain::{Category, DocumentId};
use crate::error::{AppError, ErrorCode};
use crate::ingest::upload::{
    accept_preflighted, preflight_staged, scan_limits, Accepted, Staged, ValidMetadata,
};
use crate::store::objects::ObjectRef;
use crate::store::prelude::*;

/// An instance stored (or found stored already: `accepted.duplicate`).
#[derive(Debug)]
pub struct StoredInstance {
    pub accepted: Accepted,
    pub info: DicomInfo,
}

/// An instance refused: why, and what it was when it could be read.
#[derive(Debug)]
pub struct RefusedInstance {
    pub error: AppError,
    pub info: Option<DicomInfo>,
}

/// Stores one instance of a STOW-RS request (`study`: the study the request's URL names).
/// Its patient is the one its PatientID names under its issuer (registered if new, with
/// the file's name and birth date); its service date the study date; its type and category
/// `dicomweb.document_type` and `category`. An instance stored before is answered with the
/// stored document, whoever sent it.
pub async fn accept_instance(
    state: &Archive,
    staged: Staged,
    principal: &Principal,
    study: Option<&str>,
) -> Result<StoredInstance, RefusedInstance> {
    let refused = |error: AppError, info: Option<&DicomInfo>| RefusedInstance {
        error,
        info: info.cloned(),
    };
    if staged.size == 0 {
        return Err(refused(AppError::invalid("the instance is empty"), None));
    }
    let preflight = preflight_staged(state, &staged)
        .await
        .map_err(|e| refused(e, None))?;
    let info = match (&preflight.format, &preflight.dicom) {
        (ScanFormat::Dicom, Some(info)) => info.clone(),
        _ => {
            return Err(refused(
                AppError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the part is not a DICOM Part 10 instance (application/dicom)",
                ),
                None,
            ))
        }
    };
    if let Some(study) = study {
        if info.study_instance_uid.as_deref() != Some(study.trim()) {
            return Err(refused(
                AppError::invalid("the instance belongs to another study than the request's URL"),
                Some(&info),
            ));
        }
    }
    let metadata = instance_metadata(state, &info)
        .await
        .map_err(|e| refused(e, Some(&info)))?;
    match accept_preflighted(state, staged, metadata, principal, preflight).await {
        Ok(accepted) => Ok(StoredInstance { accepted, info }),
        Err(error) => Err(refused(error, Some(&info))),
    }
}

/// What an upload would say about the instance: its patient (by PatientID and issuer),
/// name, birth date and study date.
async fn instance_metadata(state: &Archive, info: &DicomInfo) -> Result<ValidMetadata, AppError> {
    let patient_id = info.patient_id.as_deref().ok_or_else(|| {
        AppError::invalid(
            "the instance has no PatientID (0010,0020): the archive files it under the \
             patient that MRN names",
        )
    })?;
    let mrn = state
        .config
        .patients
        .mrn_of_dicom(
            patient_id,
            chartvault_ocr::dicom_json_text(&info.metadata, "00100021"),
        )
        .map_err(|e| AppError::invalid(format!("the instance's PatientID: {e}")))?;
    let on_record = state.db.patient_by_mrn(&mrn).await?;
    let name = match (info.patient_name_readable(), &on_record) {
        (Some(name), _) => name,
        (None, Some(patient)) => patient.name.clone(),
        (None, None) => {
            return Err(AppError::invalid(
                "the instance has no PatientName (0010,0010) for a patient new to the archive",
            ))
        }
    };
    let date = |raw: Option<&str>| raw.and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok());
    let config = &state.config.dicomweb;
    Ok(ValidMetadata {
        mrn,
        name: name.chars().take(200).collect(),
        birth_date: date(chartvault_ocr::dicom_json_text(&info.metadata, "00100030")),
        document_type: config.document_type.clone(),
        category: Category::parse(&config.category).map_err(AppError::invalid)?,
        service_date: info
            .study_date
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        encounter: None,
        allow_duplicate: false,
        declared_pages: None,
    })
}

/// Starts recording the instances of older DICOM documents (it ends when each has one).
pub fn spawn_instance_backfill(state: Archive) {
    tokio::spawn(async move {
        match backfill(&state).await {
            Ok(0) => {}
            Ok(done) => tracing::info!(documents = done, "recorded older DICOM instances"),
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "recording older DICOM instances stopped")
            }
        }
    });
}

/// Records every missing instance; returns how many were recorded.
pub async fn backfill(state: &Archive) -> anyhow::Result<usize> {
    let mut after: Option<DocumentId> = None;
    let mut done = 0;
    loop {
        let batch = state.db.dicom_documents_without_instance(after, 50).await?;
        let Some(last) = batch.last().copied() else {
            return Ok(done);
        };
        for id in batch {
            if state.shutdown.is_cancelled() {
                return Ok(done);
            }
            match info_of_original(state, id).await {
                Ok(info) => {
                    let mut tx = state.db.begin().await?;
                    state
                        .db
                        .record_dicom_instance(
                            &mut tx,
                            id,
                            info.study_instance_uid.as_deref().unwrap_or_default(),
                            info.series_instance_uid.as_deref().unwrap_or_default(),
                            &info.metadata,
                        )
                        .await?;
                    tx.commit().await?;
                    done += 1;
                }
                Err(error) => {
                    tracing::warn!(document_id = %id, error = %format!("{error:#}"), "a DICOM original could not be read for its instance")
                }
            }
        }
        after = Some(last);
    }
}

async fn info_of_original(state: &Archive, id: DocumentId) -> anyhow::Result<DicomInfo> {
    let reader = state.vault.open(ObjectRef::Original(id)).await?;
    let decoder = state.decoder.clone();
    let limits = scan_limits(&state.config);
    let preflight =
        tokio::task::spawn_blocking(move || decoder.preflight(reader, &limits)).await??;
    preflight
        .dicom
        .ok_or_else(|| anyhow::anyhow!("the original is not a DICOM instance"))
}
