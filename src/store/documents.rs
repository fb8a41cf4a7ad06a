//! Documents: their rows, versions, QA state, labels and tombstones.

use super::base::*;

use super::pages::PageRow;

#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: DocumentId,
    pub patient_id: PatientId,
    pub document_type: String,
    pub category: Category,
    pub service_date: Option<NaiveDate>,
    pub encounter: Option<String>,
    pub content_type: String,
    pub sha256: String,
    /// Known at accept; `None` where it is filled in later (see `ingest::hashes`).
    pub sha1: Option<String>,
    pub size_bytes: u64,
    pub page_count: u32,
    pub created_by: UserId,
    /// A DICOM instance's SOP Instance UID (stored as its blind index only).
    pub sop_instance_uid: Option<String>,
    /// Why the document goes to the QA queue once processed.
    pub qa_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Document {
    pub id: DocumentId,
    pub patient_id: PatientId,
    pub document_type: String,
    pub category: Category,
    pub service_date: Option<NaiveDate>,
    pub encounter: Option<String>,
    pub content_type: String,
    pub sha256: String,
    /// The original's SHA-1 (hex); `None` until an older document's is filled in.
    pub sha1: Option<String>,
    pub size_bytes: i64,
    pub page_count: u32,
    pub status: DocumentStatus,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub indexed_at: Option<String>,
    /// Set on a tombstone (status `deleted`).
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
    pub deletion_reason: Option<String>,
    /// Why the document is (or, once processed, will be) in the QA queue.
    pub qa_reason: Option<String>,
    /// What could not be done though the document is usable (e.g. no DICOM preview).
    pub notice: Option<String>,
    /// The version this one corrects (entered in error).
    pub supersedes: Option<DocumentId>,
    /// Set on a version entered in error: its correction.
    pub superseded_by: Option<DocumentId>,
    pub entered_in_error_at: Option<String>,
    pub entered_in_error_by: Option<String>,
    pub correction_reason: Option<String>,
}

/// A DICOM document's instance as DICOMweb answers for it.
#[derive(Debug, Clone)]
pub struct DicomInstance {
    pub document_id: DocumentId,
    /// The data set as DICOM JSON, without pixel data.
    pub metadata: serde_json::Value,
}

/// Which DICOM instances to read.
#[derive(Debug, Clone, Copy)]
pub enum DicomLookup<'a> {
    /// Those of these documents.
    Documents(&'a [DocumentId]),
    /// Those of one study (by Study Instance UID).
    Study(&'a str),
    /// Every one.
    All,
}

/// What a retention destruction certifies; written in the destruction's transaction.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub run_id: String,
    pub document_id: DocumentId,
    pub document_sha256: String,
    pub document_type: String,
    pub page_count: u32,
    pub rule: String,
    pub counted_from: NaiveDate,
    pub expired_on: NaiveDate,
    /// A user id, or [`RETENTION_JOB`](super::retention::RETENTION_JOB).
    pub destroyed_by: String,
}

/// Documents: their versions, statuses, corrections, and their tombstones.
pub trait DocumentStore {
    /// Records the document and its OCR job (inside the caller's transaction).
    fn insert_document_with_job(
        &self,
        tx: &mut Tx,
        doc: &NewDocument,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Records a document whose original and pages are stored already (split from a batch,
    /// or a correction): the original's key, the document, its job (which only indexes
    /// the pages) and its page rows, inside the caller's transaction.
    fn insert_document_with_pages(
        &self,
        tx: &mut Tx,
        original_key: &crate::store::keys::NewKey,
        doc: &NewDocument,
        pages: &[PageRow],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The live document holding this DICOM instance, if any.
    fn document_by_sop_instance(
        &self,
        uid: &str,
    ) -> impl Future<Output = StoreResult<Option<Document>>> + Send;

    /// Records a DICOM document's instance (its UIDs' blind indexes and its data set,
    /// sealed), inside the caller's transaction; replaces what was recorded.
    fn record_dicom_instance(
        &self,
        tx: &mut Tx,
        document: DocumentId,
        study_instance_uid: &str,
        series_instance_uid: &str,
        metadata: &serde_json::Value,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The recorded DICOM instances `lookup` names (of documents in any state: the caller
    /// reads the documents).
    fn dicom_instances(
        &self,
        lookup: DicomLookup<'_>,
    ) -> impl Future<Output = StoreResult<Vec<DicomInstance>>> + Send;

    /// DICOM documents (not destroyed) whose instance is not recorded yet, by id, after
    /// `after`.
    fn dicom_documents_without_instance(
        &self,
        after: Option<DocumentId>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DocumentId>>> + Send;

    /// Documents (not destroyed) whose original's SHA-1 is not recorded yet, by id, after
    /// `after`.
    fn documents_without_sha1(
        &self,
        after: Option<DocumentId>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DocumentId>>> + Send;

    /// Records an original's SHA-1 (hex), unless one is recorded.
    fn set_sha1(&self, id: DocumentId, sha1: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Sends a document (still being processed) to the QA queue once it is processed.
    fn set_qa_reason(
        &self,
        id: DocumentId,
        reason: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// What could not be done for a document that is usable all the same.
    fn set_notice(
        &self,
        id: DocumentId,
        notice: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Marks `old` entered in error, superseded by `new` (inside the transaction that records
    /// `new`), and moves a DICOM instance's blind index and recorded instance to the new
    /// version. False when `old`
    /// is no longer an indexed document outside the QA queue and not corrected before.
    fn supersede(
        &self,
        tx: &mut Tx,
        old: DocumentId,
        new: DocumentId,
        by: UserId,
        reason: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Takes a document out of the QA queue, filed under `patient` with this type and date.
    /// False when it was not in the queue (any more).
    fn resolve_qa(
        &self,
        id: DocumentId,
        patient: PatientId,
        document_type: &str,
        service_date: Option<NaiveDate>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Documents waiting in the QA queue, oldest first.
    fn qa_documents(&self) -> impl Future<Output = StoreResult<Vec<Document>>> + Send;

    /// Every document in `status`, oldest first.
    fn documents_with_status(
        &self,
        status: DocumentStatus,
    ) -> impl Future<Output = StoreResult<Vec<Document>>> + Send;

    /// Every live document's id, status, document type and category as stored (before any
    /// normalisation), and whether it is entered in error.
    fn stored_labels(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<(DocumentId, String, String, String, bool)>>> + Send;

    /// Rewrites a document's type and category (normalised), and flags it for QA with
    /// `qa_reason` when given and it has none.
    fn set_labels(
        &self,
        id: DocumentId,
        document_type: &str,
        category: &str,
        qa_reason: Option<&str>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every document flagged for the QA queue, in whatever state (accepted, processing,
    /// waiting in the queue, failed): `records` alone sees them. (Versions entered in error
    /// are records-only too, but out of the index already.)
    fn records_only_document_ids(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<DocumentId>>> + Send;

    fn document(
        &self,
        id: DocumentId,
    ) -> impl Future<Output = StoreResult<Option<Document>>> + Send;

    /// The patient's oldest live (not deleted) document with this original.
    fn document_by_sha256(
        &self,
        patient: PatientId,
        sha256: &str,
    ) -> impl Future<Output = StoreResult<Option<Document>>> + Send;

    fn documents_of_patient(
        &self,
        patient: PatientId,
    ) -> impl Future<Output = StoreResult<Vec<Document>>> + Send;

    /// Tombstones documents in one transaction: each `(document, its key ids)` of
    /// `documents` (a document and the earlier versions it corrects are destroyed together),
    /// all or none. False when one of them is no longer in a `destroyable` state or a hold
    /// now covers it.
    /// `batch_originals`: the batch files (batch id, key id) the documents were cut from and
    /// that still hold their pages, destroyed in the same transaction.
    fn tombstone_document(
        &self,
        documents: &[(DocumentId, Vec<String>)],
        batch_originals: &[(BatchId, String)],
        destroyable: &[DocumentStatus],
        by: &str,
        reason: &str,
        certificate: Option<&NewCertificate>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Tombstones whose blobs and index entries may still exist (a stop mid-shred).
    fn unpurged_tombstones(&self) -> impl Future<Output = StoreResult<Vec<DocumentId>>> + Send;

    fn mark_purged(&self, id: DocumentId) -> impl Future<Output = StoreResult<()>> + Send;

    fn set_status(
        &self,
        id: DocumentId,
        status: DocumentStatus,
        failure_reason: Option<&str>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
