//! Batch uploads, their pages as processed, and the segments (documents and QA page ranges)
//! they are split into. A readable cover sheet's fields (MRN, type, category, date) are
//! sealed like every PHI column; everything else here is structure.

use super::base::*;

use chartvault_ocr::CoverSheet;
use serde::Serialize;

use super::pages::PageRow;
use crate::domain::{BatchId, DocumentId, UserId};

#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: BatchId,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub page_count: u32,
    pub created_by: UserId,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Batch {
    pub id: BatchId,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub page_count: u32,
    /// `accepted`, `processing`, `split` or `failed`.
    pub status: String,
    pub failure_reason: Option<String>,
    #[serde(skip)]
    pub attempts: i64,
    pub created_at: String,
    pub created_by: String,
    pub split_at: Option<String>,
    /// When the batch file was crypto-shredded (every page filed or rejected).
    pub original_destroyed_at: Option<String>,
}

/// One page of a batch as processed: its page row and what its codes say.
#[derive(Debug, Clone)]
pub struct BatchPage {
    pub row: PageRow,
    pub cover: CoverSheet,
}

impl BatchPage {
    pub(crate) fn cover_kind(&self) -> &'static str {
        match self.cover {
            CoverSheet::NotCover => "none",
            CoverSheet::Cover { .. } => "cover",
            CoverSheet::Unreadable { .. } => "unreadable",
        }
    }
}

/// A planned segment: the pages of one document (or one QA page range) of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSegment {
    /// First and last batch page of the document's own pages (cover sheet and its blank
    /// back excluded).
    pub first_page: u32,
    pub last_page: u32,
    pub cover_page: Option<u32>,
    /// `None`: to be filed from its cover sheet; `Some`: why it goes to the QA queue.
    pub qa_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: DocumentId,
    pub batch_id: BatchId,
    #[serde(skip)]
    pub seq: u32,
    pub first_page: u32,
    pub last_page: u32,
    pub cover_page: Option<u32>,
    /// `pending` (being filed), `qa`, `filed` or `rejected`.
    pub status: String,
    pub qa_reason: Option<String>,
    /// The document it is (once filed) or will be.
    pub document_id: DocumentId,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
}

impl Segment {
    pub fn page_count(&self) -> u32 {
        self.last_page + 1 - self.first_page
    }
}

/// Scanned batches: their pages, cover sheets, segments and the QA queue they feed.
pub trait BatchStore {
    fn insert_batch(tx: &mut Tx, batch: &NewBatch) -> impl Future<Output = StoreResult<()>> + Send;

    fn batch(&self, id: BatchId) -> impl Future<Output = StoreResult<Option<Batch>>> + Send;

    /// A batch with the same file that did not fail.
    fn batch_by_sha256(
        &self,
        sha256: &str,
    ) -> impl Future<Output = StoreResult<Option<Batch>>> + Send;

    /// Claims the oldest batch waiting to be processed, leased as a job is
    /// (`ocr.lease_seconds`).
    fn claim_batch(&self) -> impl Future<Output = StoreResult<Option<Batch>>> + Send;

    /// Renews the lease of a batch still being processed.
    fn renew_batch_lease(&self, id: BatchId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Batches being processed whose lease ran out go back to the queue; returns how many.
    fn requeue_expired_batches(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Batches that were being processed when the process stopped go back to the queue.
    fn requeue_running_batches(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Ends a batch's processing: `split`, `failed` with a reason, or back to `accepted`.
    fn set_batch_status(
        &self,
        id: BatchId,
        status: &str,
        failure_reason: Option<&str>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn mark_batch_original_destroyed(
        &self,
        id: BatchId,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn insert_batch_page(
        &self,
        batch: BatchId,
        page: &BatchPage,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The batch's pages still held under it (filed pages move to their document), in order.
    fn batch_pages(
        &self,
        batch: BatchId,
    ) -> impl Future<Output = StoreResult<Vec<BatchPage>>> + Send;

    /// Forgets batch pages whose artifacts are gone (filed in a document, or rejected).
    fn delete_batch_pages(
        &self,
        batch: BatchId,
        pages: &[u32],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Records the batch's segments, unless a previous run recorded them already; returns
    /// the segments as recorded.
    fn plan_segments(
        &self,
        batch: BatchId,
        plan: &[NewSegment],
    ) -> impl Future<Output = StoreResult<Vec<Segment>>> + Send;

    fn segments(&self, batch: BatchId) -> impl Future<Output = StoreResult<Vec<Segment>>> + Send;

    /// The batch a document was filed from, while that batch's file is not destroyed.
    fn live_batch_file_of(
        &self,
        document: DocumentId,
    ) -> impl Future<Output = StoreResult<Option<BatchId>>> + Send;

    fn segment(&self, id: DocumentId) -> impl Future<Output = StoreResult<Option<Segment>>> + Send;

    /// Page ranges of batches waiting in the QA queue, oldest batch first.
    fn qa_segments(&self) -> impl Future<Output = StoreResult<Vec<Segment>>> + Send;

    /// Sends a segment that could not be filed to the QA queue.
    fn segment_to_qa(
        &self,
        id: DocumentId,
        reason: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Marks a segment filed (inside the transaction that records its document) or rejected.
    /// False when it was not pending or in QA any more.
    fn resolve_segment(
        tx: &mut Tx,
        id: DocumentId,
        status: &str,
        by: Option<UserId>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Replaces page ranges in the QA queue by others over the same pages (a person's split
    /// or merge): `old` become `status` ('split' or 'merged'), the new ones wait in QA. False
    /// when one of `old` left the queue meanwhile.
    fn replace_segments(
        &self,
        batch: BatchId,
        old: &[DocumentId],
        status: &str,
        new: &[NewSegment],
        by: UserId,
    ) -> impl Future<Output = StoreResult<Option<Vec<DocumentId>>>> + Send;

    /// Whether any page range of the batch still waits to be filed or resolved.
    fn batch_has_open_segments(
        &self,
        batch: BatchId,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}
