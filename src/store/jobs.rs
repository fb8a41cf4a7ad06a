//! Jobs: the queue of documents to process, claimed and retried.

use super::base::*;

/// The queue at a glance (for the metrics).
#[derive(Debug, Clone, Default)]
pub struct QueueSummary {
    /// Jobs per state (`pending`, `running`, `done`, `failed`); states without jobs are absent.
    pub by_state: Vec<(String, i64)>,
    /// When the oldest pending job was queued (RFC 3339).
    pub oldest_pending: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub document_id: DocumentId,
    pub attempts: i64,
}

/// The queue of OCR jobs: claimed, finished, failed, retried.
pub trait JobStore {
    /// Jobs that were running when the process stopped go back to the queue.
    fn requeue_running_jobs(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Puts one job back in the queue after a transient failure.
    fn requeue_job(&self, job: &Job, error: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Puts a failed document back in the queue (a person asked for it once its cause was
    /// dealt with): `accepted` again, its job pending with its attempts counted afresh.
    /// `false` when the document is not `failed`.
    fn retry_failed(&self, document: DocumentId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Claims the oldest pending job (the single UPDATE is atomic in SQLite). Its attempts
    /// are counted here, at the claim: a job whose processing kills the process is claimed
    /// again after every restart, and the count is what stops it.
    fn claim_job(&self) -> impl Future<Output = StoreResult<Option<Job>>> + Send;

    fn finish_job(
        &self,
        job: &Job,
        document: DocumentId,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn fail_job(
        &self,
        job: &Job,
        document: DocumentId,
        reason: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn queue_summary(&self) -> impl Future<Output = StoreResult<QueueSummary>> + Send;
}
