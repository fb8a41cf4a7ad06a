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
    pub stage: JobStage,
}

/// Where a document's job is: its pages to be recognised (by any process running OCR
/// engines), or, recognised and stored, to be indexed (by the process holding the index
/// writer). A process that does both takes a job through both in one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStage {
    Recognise,
    Index,
}

impl JobStage {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStage::Recognise => "recognise",
            JobStage::Index => "index",
        }
    }

    pub fn parse(stage: &str) -> Option<JobStage> {
        match stage {
            "recognise" => Some(JobStage::Recognise),
            "index" => Some(JobStage::Index),
            _ => None,
        }
    }
}

/// Which jobs a job loop claims: a process with OCR engines and the index writer claims
/// any; a worker process (engines, no index) only those to recognise; an API node holding
/// the index writer but running no engines only those to index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Any,
    Only(JobStage),
}

impl Claim {
    /// The stages claimed, as an SQL list.
    pub(crate) fn stages_sql(self) -> &'static str {
        match self {
            Claim::Any => "('recognise', 'index')",
            Claim::Only(JobStage::Recognise) => "('recognise')",
            Claim::Only(JobStage::Index) => "('index')",
        }
    }
}

/// How long a claim holds a job or batch without being renewed, unless `ocr.lease_seconds`
/// says otherwise: its worker renews the lease while it works; a job whose lease ran out
/// (its worker died) goes back to the queue.
pub const DEFAULT_LEASE_SECS: i64 = 60;

/// The queue of OCR jobs: claimed (leased), finished, failed, retried.
pub trait JobStore {
    /// Jobs that were running when the process stopped go back to the queue.
    fn requeue_running_jobs(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Puts one job back in the queue after a transient failure.
    fn requeue_job(&self, job: &Job, error: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Puts a failed document back in the queue (a person asked for it once its cause was
    /// dealt with): `accepted` again, its job pending with its attempts counted afresh.
    /// `false` when the document is not `failed`.
    fn retry_failed(&self, document: DocumentId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Claims the oldest pending job, leased (`ocr.lease_seconds`): one UPDATE, and on
    /// PostgreSQL the row is taken with `FOR UPDATE SKIP LOCKED`, so any number of workers
    /// claim at once and no job twice. Its attempts are counted here, at the claim: a job
    /// whose processing kills its worker is claimed again, and the count is what stops it.
    fn claim_job(&self, claim: Claim) -> impl Future<Output = StoreResult<Option<Job>>> + Send;

    /// Hands a job whose pages are recognised and stored to the index writer: pending again
    /// in the `index` stage, its attempts counted afresh. `false` when the claim is no longer
    /// this one's (its lease ran out and another worker has it).
    fn hand_to_indexer(&self, job: &Job) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Renews the lease of a job still being worked on; `false` when it is no longer this
    /// claim's (its lease ran out and it went back to the queue).
    fn renew_job_lease(&self, job: &Job) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Running jobs whose lease ran out go back to the queue; returns how many.
    fn requeue_expired_jobs(&self) -> impl Future<Output = StoreResult<u64>> + Send;

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
