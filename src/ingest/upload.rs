//! Ingest: metadata validation, the encrypted staging of an upload, preflight, and the
//! durable accept.
//!
//! The upload is encrypted as it streams in, under the identity the original will have, into
//! a staging object. Preflight reads the staged object through the decrypting reader (headers
//! only, no pixels). On success the staging object is renamed into place (fsynced) and the
//! keyring row, patient, document and job are recorded in one transaction; only then does the
//! client get `202`. On rejection the staging object is deleted: nothing of it remains.

use std::io::Write;

use bytes::Bytes;
use chartvault_ocr::{Limits, ScanFormat};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::access::policy::Principal;
use crate::app::Archive;
use crate::domain::{parse_slug, BatchId, Category, DocumentId, Mrn};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::documents::NewDocument;
use crate::store::keys::NewKey;
use crate::store::prelude::*;
use crate::store::vault::Vault;
use crate::store::Db;

/// The `metadata` part of an upload, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadMetadata {
    pub patient: PatientMetadata,
    pub document_type: String,
    pub service_date: Option<NaiveDate>,
    pub encounter: Option<String>,
    pub category: Option<String>,
    /// Store a second copy even if this patient has the same original already.
    #[serde(default)]
    pub allow_duplicate: bool,
    /// The number of pages the sender counted: a file with another count goes to QA.
    pub declared_pages: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientMetadata {
    pub mrn: String,
    /// The MRN's issuer (default: the archive's default issuer).
    pub issuer: Option<String>,
    pub name: String,
    pub birth_date: Option<NaiveDate>,
}

/// Metadata after validation.
#[derive(Debug)]
pub struct ValidMetadata {
    pub mrn: Mrn,
    pub name: String,
    pub birth_date: Option<NaiveDate>,
    pub document_type: String,
    pub category: Category,
    pub service_date: Option<NaiveDate>,
    pub encounter: Option<String>,
    pub allow_duplicate: bool,
    pub declared_pages: Option<u32>,
}

impl ValidMetadata {
    /// Parses the JSON of a `metadata` part, its MRN's issuer checked against `patients`.
    /// Error messages name fields, never values.
    pub fn parse(
        json: &[u8],
        patients: &crate::config::PatientsConfig,
    ) -> Result<ValidMetadata, AppError> {
        let raw: UploadMetadata = serde_json::from_slice(json).map_err(|e| {
            // serde's messages quote unknown field names and types, not values of known fields.
            AppError::invalid(format!("metadata is not valid: {}", redact_serde(&e)))
        })?;
        let mrn = patients
            .mrn(&raw.patient.mrn, raw.patient.issuer.as_deref())
            .map_err(|e| AppError::invalid(format!("metadata.patient.{e}")))?;
        let name = raw.patient.name.trim().to_string();
        if name.is_empty() || name.len() > 200 {
            return Err(AppError::invalid(
                "metadata.patient.name must be 1 to 200 characters",
            ));
        }
        let document_type = parse_slug("document_type", &raw.document_type)
            .map_err(|e| AppError::invalid(format!("metadata.{e}")))?;
        let category = Category::parse(raw.category.as_deref().unwrap_or("general"))
            .map_err(|e| AppError::invalid(format!("metadata.{e}")))?;
        let encounter = raw
            .encounter
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
        if encounter.as_ref().is_some_and(|e| e.len() > 64) {
            return Err(AppError::invalid(
                "metadata.encounter must be at most 64 characters",
            ));
        }
        Ok(ValidMetadata {
            mrn,
            name,
            birth_date: raw.patient.birth_date,
            document_type,
            category,
            service_date: raw.service_date,
            encounter,
            allow_duplicate: raw.allow_duplicate,
            declared_pages: raw.declared_pages,
        })
    }
}

/// serde_json errors can quote string values ("invalid value: string \"...\""); keep only
/// the category and position.
fn redact_serde(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.contains("unknown field") || text.contains("missing field") {
        // These quote field names (ours or the client's), not values.
        return text;
    }
    let what = match error.classify() {
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Eof => "the JSON ends early",
        serde_json::error::Category::Data => "a field has the wrong type or format",
        serde_json::error::Category::Io => "it could not be read",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

/// An upload being encrypted into its staging object as it arrives.
pub struct StagingUpload {
    pub doc: DocumentId,
    key: NewKey,
    chunks: Option<mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<anyhow::Result<(String, String, u64)>>,
    received: u64,
    limit: u64,
    vault: Vault,
}

/// A completely received, encrypted and committed staging object. It is deleted when this
/// is dropped, whichever way the upload ends: promoted to an original first (accepted), it
/// is gone already and the delete is a no-op; refused or failed, nothing of it remains.
pub struct Staged {
    pub doc: DocumentId,
    pub key: NewKey,
    pub sha256: String,
    pub sha1: String,
    pub size: u64,
    vault: Vault,
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.vault.discard_staging(self.doc);
    }
}

impl StagingUpload {
    pub fn begin(vault: &Vault, limit: u64) -> Result<StagingUpload, AppError> {
        let doc = DocumentId::new_random();
        let key = vault.new_key()?;
        let mut writer = vault.staging_writer(doc, &key)?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let task = tokio::task::spawn_blocking(move || -> anyhow::Result<(String, String, u64)> {
            let mut hasher = Sha256::new();
            let mut sha1 = sha1::Sha1::new();
            let mut size = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                sha1.update(&chunk);
                size += chunk.len() as u64;
                writer.write_all(&chunk)?;
            }
            writer.finish()?.commit()?;
            Ok((
                hex::encode(hasher.finalize()),
                hex::encode(sha1.finalize()),
                size,
            ))
        });
        Ok(StagingUpload {
            doc,
            key,
            chunks: Some(tx),
            task,
            received: 0,
            limit,
            vault: vault.clone(),
        })
    }

    pub async fn push(&mut self, chunk: Bytes) -> Result<(), AppError> {
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(too_large(self.limit));
        }
        let sender = self
            .chunks
            .as_ref()
            .expect("push is never called after finish");
        if sender.send(chunk).await.is_err() {
            // The writer stopped early: its error surfaces in finish().
            return Err(AppError::internal(anyhow::anyhow!(
                "staging writer stopped"
            )));
        }
        Ok(())
    }

    pub async fn finish(mut self) -> Result<Staged, AppError> {
        drop(self.chunks.take());
        let (sha256, sha1, size) = (&mut self.task).await??;
        Ok(Staged {
            doc: self.doc,
            key: self.key,
            sha256,
            sha1,
            size,
            vault: self.vault.clone(),
        })
    }

    /// Drops the upload: the writer's temp file goes without ever becoming a blob.
    pub async fn abort(mut self) {
        drop(self.chunks.take());
        self.task.abort();
        let _ = (&mut self.task).await;
        self.vault.discard_staging(self.doc);
    }
}

pub fn too_large(limit: u64) -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        format!("the file is larger than the limit of {limit} bytes"),
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: DocumentId,
    pub status: &'static str,
    pub sha256: String,
    pub pages: u32,
    /// The patient had this original already: `id` is the existing document (answered
    /// `200`, nothing stored).
    pub duplicate: bool,
}

/// Preflights a staged upload and, if it passes, makes it durable and queues its OCR job.
/// The staging object goes with `staged` whatever the outcome (promoted first if accepted).
pub async fn accept(
    state: &Archive,
    staged: Staged,
    metadata: ValidMetadata,
    principal: &Principal,
) -> Result<Accepted, AppError> {
    accept_inner(state, &staged, &metadata, principal, None).await
}

/// [`accept`] for an upload preflighted already (`preflight` of `staged`).
pub(crate) async fn accept_preflighted(
    state: &Archive,
    staged: Staged,
    metadata: ValidMetadata,
    principal: &Principal,
    preflight: chartvault_ocr::Preflight,
) -> Result<Accepted, AppError> {
    accept_inner(state, &staged, &metadata, principal, Some(preflight)).await
}

async fn accept_inner(
    state: &Archive,
    staged: &Staged,
    metadata: &ValidMetadata,
    principal: &Principal,
    preflight: Option<chartvault_ocr::Preflight>,
) -> Result<Accepted, AppError> {
    if staged.size == 0 {
        return Err(AppError::invalid("the file is empty"));
    }
    if !metadata.allow_duplicate {
        if let Some(existing) = existing_copy(state, staged, metadata).await? {
            return duplicate(state, principal, existing).await;
        }
    }
    let doc = staged.doc;
    let preflight = match preflight {
        Some(preflight) => preflight,
        None => preflight_staged(state, staged).await?,
    };

    let page_count = preflight.pages.len() as u32;
    let mut qa_reason = None;
    if let Some(dicom) = &preflight.dicom {
        // A DICOM instance is stored once, whoever uploads it for whichever patient.
        if let Some(existing) = state
            .db
            .document_by_sop_instance(&dicom.sop_instance_uid)
            .await?
        {
            return duplicate(state, principal, existing).await;
        }
        qa_reason = dicom_patient_mismatch(dicom, &metadata.mrn).map(str::to_string);
    }
    if let Some(reason) = patient_mismatch(state, metadata).await? {
        qa_reason.get_or_insert_with(|| reason.to_string());
    }
    // Filed against a visit the registration system reported: it must be this patient's;
    // its admission date is the service date when the upload gives none.
    let mut service_date = metadata.service_date;
    if let Some(visit) = &metadata.encounter {
        if let Some(encounter) = state.db.encounter(visit).await? {
            let patient = state.db.patient_by_mrn(&metadata.mrn).await?;
            if patient.is_none_or(|p| p.id != encounter.patient_id) {
                qa_reason.get_or_insert_with(|| {
                    "the encounter given at upload is a visit of another patient".to_string()
                });
            } else if service_date.is_none() {
                service_date = encounter.admitted_at.map(|t| t.date());
            }
        }
    }
    if let Some(declared) = metadata.declared_pages.filter(|&d| d != page_count) {
        qa_reason.get_or_insert_with(|| {
            format!("the file has {page_count} pages, {declared} were declared at upload")
        });
    }
    let vault = state.vault.clone();
    tokio::task::spawn_blocking(move || vault.promote_staging(doc)).await??;

    let new_doc = NewDocument {
        id: doc,
        patient_id: crate::domain::PatientId::new_random(), // replaced below
        document_type: metadata.document_type.clone(),
        category: metadata.category.clone(),
        service_date,
        encounter: metadata.encounter.clone(),
        content_type: preflight.format.content_type().to_string(),
        sha256: staged.sha256.clone(),
        sha1: Some(staged.sha1.clone()),
        size_bytes: staged.size,
        page_count,
        created_by: principal.user_id,
        sop_instance_uid: preflight.dicom.as_ref().map(|d| d.sop_instance_uid.clone()),
        qa_reason,
    };
    let wrapped = state.vault.current_wrap(&staged.key)?;
    let committed = record(
        &state.db,
        staged,
        &wrapped,
        metadata,
        new_doc,
        preflight.dicom.as_ref(),
    )
    .await;
    let patient_id = match committed {
        Ok(patient_id) => patient_id,
        Err(error) => {
            discard_original(state, crate::store::vault::ObjectRef::Original(doc)).await;
            return Err(error.into());
        }
    };
    crate::access::audit::AuditEvent::new(principal, crate::access::policy::Action::Ingest)
        .outcome(crate::domain::Outcome::Accepted)
        .patient(patient_id)
        .document(doc)
        .record(&state.db)
        .await?;
    state.jobs_waiting.notify_one();
    Ok(Accepted {
        id: doc,
        status: "accepted",
        sha256: staged.sha256.clone(),
        pages: page_count,
        duplicate: false,
    })
}

/// Preflights a staged upload through the decrypting reader (headers only, no pixels).
pub(crate) async fn preflight_staged(
    state: &Archive,
    staged: &Staged,
) -> Result<chartvault_ocr::Preflight, AppError> {
    let limits = scan_limits(&state.config);
    let vault = state.vault.clone();
    let decoder = state.decoder.clone();
    let doc = staged.doc;
    let key = staged.key.key.clone();
    tokio::task::spawn_blocking(move || {
        let reader = vault.staging_reader(doc, &key)?;
        // In a decoder process: a hostile header cannot take the service down.
        Ok::<_, anyhow::Error>(decoder.preflight(reader, &limits))
    })
    .await??
    .map_err(scan_error)
}

/// Removes an original whose database records could not be committed.
async fn discard_original(state: &Archive, original: crate::store::vault::ObjectRef) {
    let vault = state.vault.clone();
    let name = original.blob_name();
    let _ = tokio::task::spawn_blocking(move || vault.blobs.delete(&name)).await;
}

/// The answer to a batch upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    pub id: BatchId,
    pub status: String,
    pub sha256: String,
    pub pages: u32,
    /// The same file was uploaded as a batch already: `id` is that batch (`200`).
    pub duplicate: bool,
}

/// Preflights a staged batch upload and, if it passes, makes it durable and queues it. The
/// staging object goes with `staged` whatever the outcome (promoted first if accepted).
pub async fn accept_batch(
    state: &Archive,
    staged: Staged,
    principal: &Principal,
) -> Result<BatchAccepted, AppError> {
    accept_batch_inner(state, &staged, principal).await
}

async fn accept_batch_inner(
    state: &Archive,
    staged: &Staged,
    principal: &Principal,
) -> Result<BatchAccepted, AppError> {
    if staged.size == 0 {
        return Err(AppError::invalid("the file is empty"));
    }
    if let Some(existing) = state.db.batch_by_sha256(&staged.sha256).await? {
        crate::access::audit::AuditEvent::new(principal, crate::access::policy::Action::Ingest)
            .outcome(crate::domain::Outcome::Duplicate)
            .batch(existing.id)
            .detail(serde_json::json!({ "batch": true }))
            .record(&state.db)
            .await?;
        return Ok(BatchAccepted {
            id: existing.id,
            status: existing.status,
            sha256: existing.sha256,
            pages: existing.page_count,
            duplicate: true,
        });
    }
    let id = crate::store::vault::ObjectRef::staged_batch(staged.doc);
    let preflight = preflight_staged(state, staged).await?;
    if preflight.format == ScanFormat::Dicom {
        return Err(AppError::new(
            ErrorCode::UnsupportedMediaType,
            "a DICOM file is one image of one patient, not a batch: upload it to /documents",
        ));
    }
    let page_count = preflight.pages.len() as u32;
    let vault = state.vault.clone();
    let staged_id = staged.doc;
    tokio::task::spawn_blocking(move || vault.promote_staging(staged_id)).await??;
    let batch = crate::store::batches::NewBatch {
        id,
        content_type: preflight.format.content_type().to_string(),
        sha256: staged.sha256.clone(),
        size_bytes: staged.size,
        page_count,
        created_by: principal.user_id,
    };
    let wrapped = state.vault.current_wrap(&staged.key)?;
    let committed = async {
        let mut tx = state.db.begin().await?;
        Db::insert_key(
            &mut tx,
            &staged.key.id.to_hex(),
            wrapped.kek_version,
            &wrapped.bytes,
        )
        .await?;
        Db::insert_batch(&mut tx, &batch).await?;
        tx.commit().await
    }
    .await;
    if let Err(error) = committed {
        discard_original(state, crate::store::vault::ObjectRef::batch_original(id)).await;
        return Err(error.into());
    }
    crate::access::audit::AuditEvent::new(principal, crate::access::policy::Action::Ingest)
        .outcome(crate::domain::Outcome::Accepted)
        .batch(id)
        .detail(serde_json::json!({ "batch": true, "pages": page_count }))
        .record(&state.db)
        .await?;
    state.jobs_waiting.notify_one();
    Ok(BatchAccepted {
        id,
        status: "accepted".into(),
        sha256: staged.sha256.clone(),
        pages: page_count,
        duplicate: false,
    })
}

/// Answers an upload of something the archive holds already with the existing document
/// (`200`, nothing stored), and audits it.
async fn duplicate(
    state: &Archive,
    principal: &Principal,
    existing: crate::store::documents::Document,
) -> Result<Accepted, AppError> {
    crate::access::audit::AuditEvent::new(principal, crate::access::policy::Action::Ingest)
        .outcome(crate::domain::Outcome::Duplicate)
        .patient(existing.patient_id)
        .document(existing.id)
        .record(&state.db)
        .await?;
    Ok(Accepted {
        id: existing.id,
        status: existing.status.as_str(),
        sha256: existing.sha256,
        pages: existing.page_count,
        duplicate: true,
    })
}

/// Why an upload for an MRN on file cannot go into that patient's chart without a person
/// looking: the name or birth date it was sent with is not the patient's on record (a wrong
/// MRN typed at the scanner, or a wrong patient). The reason never quotes either value.
async fn patient_mismatch(
    state: &Archive,
    metadata: &ValidMetadata,
) -> Result<Option<&'static str>, AppError> {
    let Some(patient) = state.db.patient_by_mrn(&metadata.mrn).await? else {
        return Ok(None);
    };
    if name_words(&patient.name) != name_words(&metadata.name) {
        return Ok(Some(
            "the patient name given at upload is not the name on record for the MRN",
        ));
    }
    match (patient.birth_date, metadata.birth_date) {
        (Some(on_record), Some(given)) if on_record != given => Ok(Some(
            "the birth date given at upload is not the one on record for the MRN",
        )),
        _ => Ok(None),
    }
}

/// A name as a set of words, case and punctuation aside: "DOE, Jane" is "Jane Doe".
fn name_words(name: &str) -> std::collections::BTreeSet<String> {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Why a DICOM file cannot be filed under the MRN it was uploaded with without a person
/// looking: its PatientID is another, or it has none. The reason never quotes either value.
fn dicom_patient_mismatch(dicom: &chartvault_ocr::DicomInfo, mrn: &Mrn) -> Option<&'static str> {
    match dicom.patient_id.as_deref().map(Mrn::parse) {
        // The same number (DICOM's Issuer of Patient ID is not read: the upload names it).
        Some(Ok(id)) if id.as_str() == mrn.as_str() => None,
        Some(_) => Some("the DICOM PatientID does not match the MRN given at upload"),
        None => Some("the DICOM file has no PatientID to check the MRN given at upload against"),
    }
}

/// The patient's live document with the same original (SHA-256), if any.
async fn existing_copy(
    state: &Archive,
    staged: &Staged,
    metadata: &ValidMetadata,
) -> Result<Option<crate::store::documents::Document>, AppError> {
    let Some(patient) = state.db.patient_by_mrn(&metadata.mrn).await? else {
        return Ok(None);
    };
    Ok(state
        .db
        .document_by_sha256(patient.id, &staged.sha256)
        .await?)
}

async fn record(
    db: &Db,
    staged: &Staged,
    wrapped: &chartvault_storage::WrappedKey,
    metadata: &ValidMetadata,
    mut new_doc: NewDocument,
    dicom: Option<&chartvault_ocr::DicomInfo>,
) -> crate::store::StoreResult<crate::domain::PatientId> {
    let mut tx = db.begin().await?;
    Db::insert_key(
        &mut tx,
        &staged.key.id.to_hex(),
        wrapped.kek_version,
        &wrapped.bytes,
    )
    .await?;
    let patient_id = db
        .ensure_patient(&mut tx, &metadata.mrn, &metadata.name, metadata.birth_date)
        .await?;
    new_doc.patient_id = patient_id;
    db.insert_document_with_job(&mut tx, &new_doc).await?;
    if let Some(dicom) = dicom {
        db.record_dicom_instance(
            &mut tx,
            new_doc.id,
            dicom.study_instance_uid.as_deref().unwrap_or_default(),
            dicom.series_instance_uid.as_deref().unwrap_or_default(),
            &dicom.metadata,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(patient_id)
}

pub fn scan_limits(config: &crate::config::Config) -> Limits {
    Limits {
        max_pixels_per_page: config.limits.max_pixels_per_page,
        max_pages: config.limits.max_pages_per_document,
        max_dimension: config.limits.max_dimension,
    }
}

pub fn format_of(content_type: &str) -> Option<ScanFormat> {
    match content_type {
        "image/jpeg" => Some(ScanFormat::Jpeg),
        "image/png" => Some(ScanFormat::Png),
        "image/tiff" => Some(ScanFormat::Tiff),
        "application/pdf" => Some(ScanFormat::Pdf),
        chartvault_ocr::DICOM_MIME => Some(ScanFormat::Dicom),
        _ => None,
    }
}

fn scan_error(error: chartvault_ocr::ScanError) -> AppError {
    use chartvault_ocr::ScanError;
    match error {
        ScanError::UnknownFormat => AppError::new(
            ErrorCode::UnsupportedMediaType,
            "unsupported file type: chartvault accepts JPEG, PNG, TIFF and PDF scans and DICOM \
             files (recognised by their content, not their name)",
        ),
        ScanError::Empty => AppError::invalid("the file is empty"),
        // Reading the staged upload, or starting a decoder, failed: not the file's fault.
        ScanError::Io(_) => AppError::new(
            ErrorCode::Unavailable,
            "the file could not be checked just now; try again",
        ),
        // The crate's messages describe the file's structure, never its content.
        other => AppError::new(ErrorCode::InvalidScan, other.to_string()),
    }
}

/// The patient of an MRN (of `issuer`, by default the default issuer), created when `name`
/// is given and no patient has the MRN yet.
pub async fn patient_for(
    state: &Archive,
    mrn: &str,
    issuer: Option<&str>,
    name: Option<String>,
) -> AppResult<crate::domain::PatientId> {
    let mrn = state
        .config
        .patients
        .mrn(mrn, issuer)
        .map_err(|e| AppError::invalid(format!("mrn: {e}")))?;
    if let Some(patient) = state.db.patient_by_mrn(&mrn).await? {
        return Ok(patient.id);
    }
    let name = name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && n.len() <= 200)
        .ok_or_else(|| {
            AppError::invalid("no patient has that MRN: give the patient's name to create one")
        })?;
    let mut tx = state.db.begin_write().await?;
    let id = state.db.ensure_patient(&mut tx, &mrn, &name, None).await?;
    tx.commit().await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_errors_name_the_field_not_the_value() {
        let err = ValidMetadata::parse(
            br#"{"patient":{"mrn":"12 34","name":"Jane"},"document_type":"x"}"#,
            &Default::default(),
        )
        .unwrap_err();
        assert!(err.message.contains("mrn"));
        assert!(!err.message.contains("12 34"));
        let err = ValidMetadata::parse(br#"{"patient":{"mrn":"1","name":"Jane Q Doe"},"document_type":"x","service_date":"Jane Q Doe"}"#, &Default::default())
            .unwrap_err();
        assert!(!err.message.contains("Jane"), "{}", err.message);
        let err = ValidMetadata::parse(b"{not json", &Default::default()).unwrap_err();
        assert!(err.message.contains("malformed"));
    }

    #[test]
    fn names_compare_as_words_whatever_their_order_case_and_punctuation() {
        assert_eq!(name_words("DOE, Jane"), name_words("Jane  Doe"));
        assert_eq!(name_words("Jane Q. Doe"), name_words("jane q doe"));
        assert_ne!(name_words("Jane Doe"), name_words("John Doe"));
        assert_ne!(name_words("Jane Doe"), name_words("Jane Q Doe"));
    }

    #[test]
    fn category_defaults_to_general() {
        let ok = ValidMetadata::parse(
            br#"{"patient":{"mrn":"00123","name":"Jane Q Doe"},"document_type":"Discharge-Summary"}"#,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(ok.category, Category::general());
        assert_eq!(ok.document_type, "discharge-summary");
        assert_eq!(ok.mrn.as_str(), "00123");
    }
}
