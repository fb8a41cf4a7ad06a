//! Release requests, what they exclude and redact, their supporting documents, and the
//! productions that answer them, with the Bates counters.

use super::base::*;

use crate::domain::{
    AttachmentId, DocumentId, LegalBasis, PatientId, ProductionId, ReleaseId, UserId,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The sealed part of a release request.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseDetails {
    pub requester: Party,
    pub recipient: Party,
    /// The matter (case caption, docket number) the request belongs to.
    #[serde(default)]
    pub matter: Option<String>,
    /// What was asked for, in the request's words.
    #[serde(default)]
    pub description: Option<String>,
    /// The satisfactory assurances a subpoena without a court order needs (45 CFR
    /// 164.512(e)(1)(ii)): how the requester showed the patient was notified, or a
    /// qualified protective order was sought.
    #[serde(default)]
    pub satisfactory_assurances: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    pub name: String,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewRelease {
    pub legal_basis: LegalBasis,
    pub details: ReleaseDetails,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
    pub document_types: Vec<String>,
    pub categories: Vec<String>,
    pub authorizations: Vec<String>,
    pub bates_prefix: String,
    pub patients: Vec<PatientId>,
    pub created_by: UserId,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Release {
    pub id: ReleaseId,
    pub legal_basis: LegalBasis,
    #[serde(flatten)]
    pub details: ReleaseDetails,
    pub received_on: NaiveDate,
    pub due_on: NaiveDate,
    pub extended_at: Option<String>,
    pub extension_reason: Option<String>,
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
    pub document_types: Vec<String>,
    pub categories: Vec<String>,
    pub authorizations: Vec<String>,
    pub bates_prefix: String,
    pub patient_ids: Vec<PatientId>,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attachment {
    pub id: AttachmentId,
    pub kind: String,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Exclusion {
    pub document_id: DocumentId,
    pub reason: String,
    pub created_by: String,
    pub created_at: String,
}

/// A rectangle of page-image pixels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Redaction {
    pub id: String,
    pub document_id: DocumentId,
    pub page: u32,
    pub regions: Vec<Region>,
    pub whole_page: bool,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct NewProduction {
    pub id: ProductionId,
    pub release_id: ReleaseId,
    /// Prefix and first number, when Bates-stamped.
    pub bates: Option<(String, i64)>,
    pub record_pages: u32,
    pub pdf_pages: u32,
    pub documents: u32,
    pub certified: bool,
    pub custodian: Option<String>,
    pub sha256: String,
    pub size_bytes: u64,
    pub manifest: String,
    pub created_by: UserId,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Production {
    pub id: ProductionId,
    pub release_id: ReleaseId,
    pub bates_prefix: Option<String>,
    pub bates_first: Option<i64>,
    pub bates_last: Option<i64>,
    pub record_pages: u32,
    pub pdf_pages: u32,
    pub documents: u32,
    pub certified: bool,
    pub custodian: Option<String>,
    pub sha256: String,
    pub size_bytes: i64,
    pub created_by: String,
    pub created_at: String,
}

/// Release requests: their attachments, exclusions, redactions and productions.
pub trait ReleaseStore {
    fn insert_release(
        &self,
        release: &NewRelease,
    ) -> impl Future<Output = StoreResult<ReleaseId>> + Send;

    fn release(&self, id: ReleaseId) -> impl Future<Output = StoreResult<Option<Release>>> + Send;

    /// Every release request, the soonest due first.
    fn releases(&self) -> impl Future<Output = StoreResult<Vec<Release>>> + Send;

    /// Moves a patient-access request's due date once; false if it was extended already.
    fn extend_release(
        &self,
        id: ReleaseId,
        due_on: NaiveDate,
        reason: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Records a supporting document (its object is stored already); an attachment of an
    /// authorising kind (a court order, a consent) adds that authorisation to the release.
    fn insert_attachment(
        &self,
        release: ReleaseId,
        attachment: &Attachment,
        authorizes: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn attachments(
        &self,
        release: ReleaseId,
    ) -> impl Future<Output = StoreResult<Vec<Attachment>>> + Send;

    fn insert_exclusions(
        &self,
        release: ReleaseId,
        documents: &[DocumentId],
        reason: &str,
        by: UserId,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn exclusions(
        &self,
        release: ReleaseId,
    ) -> impl Future<Output = StoreResult<Vec<Exclusion>>> + Send;

    fn insert_redaction(
        &self,
        release: ReleaseId,
        document: DocumentId,
        page: u32,
        regions: &[Region],
        whole_page: bool,
        by: UserId,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    fn redactions(
        &self,
        release: ReleaseId,
    ) -> impl Future<Output = StoreResult<Vec<Redaction>>> + Send;

    /// Removes a redaction of a release (later productions no longer apply it); false if
    /// the release has no such redaction.
    fn delete_redaction(
        &self,
        release: ReleaseId,
        id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Puts excluded documents back into a release; returns how many were excluded.
    fn delete_exclusions(
        &self,
        release: ReleaseId,
        documents: &[DocumentId],
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The next Bates number of a prefix (1 for a new prefix).
    fn bates_next(&self, prefix: &str) -> impl Future<Output = StoreResult<i64>> + Send;

    /// Records a production, taking its Bates numbers, and the disclosures it makes (one per
    /// patient, for the accounting) in one transaction: a production never exists without
    /// its accounting. `false` when the Bates numbers were taken meanwhile.
    fn insert_production(
        &self,
        p: &NewProduction,
        disclosures: &[super::disclosures::NewDisclosure],
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn productions(
        &self,
        release: ReleaseId,
    ) -> impl Future<Output = StoreResult<Vec<Production>>> + Send;

    /// A production and its manifest (JSON text).
    fn production(
        &self,
        id: ProductionId,
    ) -> impl Future<Output = StoreResult<Option<(Production, String)>>> + Send;

    /// Whether a release attachment or production row names this id.
    fn release_object_exists(
        &self,
        id: uuid::Uuid,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}
