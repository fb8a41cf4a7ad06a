//! Retention runs and the destruction certificates they leave (append-only, no PHI).

use super::base::*;

use chrono::NaiveDate;
use serde::Serialize;

use super::documents::Document;
pub use super::documents::NewCertificate;
use crate::domain::{DocumentId, UserId};

/// Who destroys on the service's own schedule.
pub const RETENTION_JOB: &str = "retention-job";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Certificate {
    pub id: String,
    pub run_id: String,
    pub document_id: String,
    pub document_sha256: String,
    pub document_type: String,
    pub page_count: u32,
    pub rule: String,
    pub counted_from: String,
    pub expired_on: String,
    pub destroyed_at: String,
    pub destroyed_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunCounts {
    pub expired: usize,
    pub held: usize,
    pub destroyed: usize,
}

/// Retention runs and the destruction certificates they leave.
pub trait RetentionStore {
    /// Starts a retention run; returns its id.
    fn insert_retention_run(
        &self,
        as_of: NaiveDate,
        applied: bool,
        by: Option<UserId>,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    fn finish_retention_run(
        &self,
        id: &str,
        counts: &RunCounts,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Documents retention may consider: filed (not waiting in QA), not deleted.
    fn retention_candidates(&self) -> impl Future<Output = StoreResult<Vec<Document>>> + Send;

    /// Destruction certificates, newest first; of one run, or of one document.
    fn certificates(
        &self,
        run_id: Option<&str>,
        document_id: Option<DocumentId>,
    ) -> impl Future<Output = StoreResult<Vec<Certificate>>> + Send;
}
