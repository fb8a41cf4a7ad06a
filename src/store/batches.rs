//! Batch uploads, their pages as processed, and the segments (documents and QA page ranges)
//! they are split into. A readable cover sheet's fields (MRN, type, category, date) are
//! sealed like every PHI column; everything else here is structure.

use chartvault_ocr::CoverSheet;
use serde::Serialize;
use sqlx::Row;

use super::pages::PageRow;
use super::{now, parse_id, Db, Tx};
use crate::domain::{DocumentId, UserId};
use crate::store::phi::Column;

#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: DocumentId,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub page_count: u32,
    pub created_by: UserId,
}

#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub id: DocumentId,
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
    fn cover_kind(&self) -> &'static str {
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

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub id: DocumentId,
    pub batch_id: DocumentId,
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

fn cover_row_id(batch: DocumentId, page: u32) -> String {
    format!("{batch}:{page}")
}

impl Db {
    pub async fn insert_batch(tx: &mut Tx, batch: &NewBatch) -> super::StoreResult<()> {
        sqlx::query(
            "INSERT INTO batches (id, content_type, sha256, size_bytes, page_count, status,
                created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, 'accepted', $6, $7)",
        )
        .bind(batch.id.to_string())
        .bind(&batch.content_type)
        .bind(&batch.sha256)
        .bind(batch.size_bytes as i64)
        .bind(batch.page_count as i64)
        .bind(now())
        .bind(batch.created_by.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn batch(&self, id: DocumentId) -> super::StoreResult<Option<Batch>> {
        let row = sqlx::query("SELECT * FROM batches WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| batch_from_row(&r)).transpose()
    }

    /// A batch with the same file that did not fail.
    pub async fn batch_by_sha256(&self, sha256: &str) -> super::StoreResult<Option<Batch>> {
        let row = sqlx::query(
            "SELECT * FROM batches WHERE sha256 = $1 AND status != 'failed'
             ORDER BY created_at LIMIT 1",
        )
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| batch_from_row(&r)).transpose()
    }

    /// Claims the oldest batch waiting to be processed.
    pub async fn claim_batch(&self) -> super::StoreResult<Option<Batch>> {
        let row = sqlx::query(
            "UPDATE batches SET status = 'processing', attempts = attempts + 1
             WHERE id = (SELECT id FROM batches WHERE status = 'accepted'
                         ORDER BY created_at LIMIT 1)
             RETURNING *",
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| batch_from_row(&r)).transpose()
    }

    /// Batches that were being processed when the process stopped go back to the queue.
    pub async fn requeue_running_batches(&self) -> super::StoreResult<u64> {
        let done =
            sqlx::query("UPDATE batches SET status = 'accepted' WHERE status = 'processing'")
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    /// Ends a batch's processing: `split`, `failed` with a reason, or back to `accepted`.
    pub async fn set_batch_status(
        &self,
        id: DocumentId,
        status: &str,
        failure_reason: Option<&str>,
    ) -> super::StoreResult<()> {
        let split_at = (status == "split").then(now);
        sqlx::query(
            "UPDATE batches SET status = $1, failure_reason = $2,
                split_at = coalesce($3, split_at)
             WHERE id = $4",
        )
        .bind(status)
        .bind(failure_reason)
        .bind(split_at)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Destroys a batch file's key and records it destroyed, inside the caller's transaction
    /// (the blob itself is deleted after the commit).
    pub(crate) async fn destroy_batch_original_in(
        tx: &mut Tx,
        batch: DocumentId,
        key_id: &str,
    ) -> super::StoreResult<()> {
        sqlx::query("DELETE FROM keyring WHERE key_id = $1")
            .bind(key_id)
            .execute(&mut **tx)
            .await?;
        mark_original_destroyed(&mut **tx, batch).await
    }

    pub async fn mark_batch_original_destroyed(&self, id: DocumentId) -> super::StoreResult<()> {
        mark_original_destroyed(self.pool(), id).await
    }

    pub async fn insert_batch_page(
        &self,
        batch: DocumentId,
        page: &BatchPage,
    ) -> super::StoreResult<()> {
        let row = &page.row;
        let (fields, reason) = match &page.cover {
            CoverSheet::NotCover => (None, None),
            cover @ CoverSheet::Cover { .. } => {
                let json =
                    serde_json::to_string(cover).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                let sealed = self.phi()?.seal(
                    Column::BatchCoverFields,
                    &cover_row_id(batch, row.page),
                    &json,
                );
                (Some(sealed), None)
            }
            CoverSheet::Unreadable { reason } => (None, Some(reason.clone())),
        };
        sqlx::query(
            "INSERT INTO batch_pages (batch_id, page, width, height, dpi, mean_confidence,
                word_count, blank, rotation, skew_degrees, ink, text_source, cover, cover_fields,
                cover_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (batch_id, page) DO UPDATE SET width = excluded.width,
                height = excluded.height, dpi = excluded.dpi,
                mean_confidence = excluded.mean_confidence, word_count = excluded.word_count,
                blank = excluded.blank, rotation = excluded.rotation,
                skew_degrees = excluded.skew_degrees, ink = excluded.ink,
                text_source = excluded.text_source, cover = excluded.cover,
                cover_fields = excluded.cover_fields, cover_reason = excluded.cover_reason",
        )
        .bind(batch.to_string())
        .bind(row.page as i64)
        .bind(row.width as i64)
        .bind(row.height as i64)
        .bind(row.dpi)
        .bind(row.mean_confidence)
        .bind(row.word_count as i64)
        .bind(row.blank)
        .bind(i64::from(row.rotation))
        .bind(row.skew_degrees)
        .bind(row.ink)
        .bind(row.text_source.as_str())
        .bind(page.cover_kind())
        .bind(fields)
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The batch's pages still held under it (filed pages move to their document), in order.
    pub async fn batch_pages(&self, batch: DocumentId) -> super::StoreResult<Vec<BatchPage>> {
        let rows = sqlx::query("SELECT * FROM batch_pages WHERE batch_id = $1 ORDER BY page")
            .bind(batch.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let page = r.try_get::<i64, _>("page")? as u32;
                let cover = match r.try_get::<&str, _>("cover")? {
                    "cover" => {
                        let sealed: Vec<u8> = r.try_get("cover_fields")?;
                        let json = self.open_column(
                            Column::BatchCoverFields,
                            &cover_row_id(batch, page),
                            &sealed,
                        )?;
                        serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?
                    }
                    "unreadable" => CoverSheet::Unreadable {
                        reason: r
                            .try_get::<Option<String>, _>("cover_reason")?
                            .unwrap_or_default(),
                    },
                    _ => CoverSheet::NotCover,
                };
                Ok(BatchPage {
                    row: super::pages::page_row_from(r)?,
                    cover,
                })
            })
            .collect()
    }

    /// Forgets batch pages whose artifacts are gone (filed in a document, or rejected).
    pub async fn delete_batch_pages(
        &self,
        batch: DocumentId,
        pages: &[u32],
    ) -> super::StoreResult<()> {
        let mut tx = self.begin().await?;
        for page in pages {
            sqlx::query("DELETE FROM batch_pages WHERE batch_id = $1 AND page = $2")
                .bind(batch.to_string())
                .bind(*page as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Records the batch's segments, unless a previous run recorded them already; returns
    /// the segments as recorded.
    pub async fn plan_segments(
        &self,
        batch: DocumentId,
        plan: &[NewSegment],
    ) -> super::StoreResult<Vec<Segment>> {
        let mut tx = self.begin().await?;
        let existing: i64 =
            sqlx::query_scalar("SELECT count(*) FROM batch_segments WHERE batch_id = $1")
                .bind(batch.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if existing == 0 {
            for (seq, segment) in plan.iter().enumerate() {
                let status = if segment.qa_reason.is_some() {
                    "qa"
                } else {
                    "pending"
                };
                sqlx::query(
                    "INSERT INTO batch_segments (id, batch_id, seq, first_page, last_page,
                        cover_page, status, qa_reason, document_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(DocumentId::new_random().to_string())
                .bind(batch.to_string())
                .bind(seq as i64)
                .bind(segment.first_page as i64)
                .bind(segment.last_page as i64)
                .bind(segment.cover_page.map(i64::from))
                .bind(status)
                .bind(&segment.qa_reason)
                .bind(DocumentId::new_random().to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.segments(batch).await
    }

    pub async fn segments(&self, batch: DocumentId) -> super::StoreResult<Vec<Segment>> {
        let rows = sqlx::query(
            "SELECT * FROM batch_segments WHERE batch_id = $1 ORDER BY first_page, seq",
        )
        .bind(batch.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(segment_from_row).collect()
    }

    /// The batch a document was filed from, while that batch's file is not destroyed.
    pub async fn live_batch_file_of(
        &self,
        document: DocumentId,
    ) -> super::StoreResult<Option<DocumentId>> {
        let batch: Option<String> = sqlx::query_scalar(
            "SELECT s.batch_id FROM batch_segments s JOIN batches b ON b.id = s.batch_id
             WHERE s.document_id = $1 AND s.status = 'filed' AND b.original_destroyed_at IS NULL
             LIMIT 1",
        )
        .bind(document.to_string())
        .fetch_optional(self.pool())
        .await?;
        batch.map(|id| super::parse_id(&id)).transpose()
    }

    pub async fn segment(&self, id: DocumentId) -> super::StoreResult<Option<Segment>> {
        let row = sqlx::query("SELECT * FROM batch_segments WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| segment_from_row(&r)).transpose()
    }

    /// Page ranges of batches waiting in the QA queue, oldest batch first.
    pub async fn qa_segments(&self) -> super::StoreResult<Vec<Segment>> {
        let rows = sqlx::query(
            "SELECT s.* FROM batch_segments s JOIN batches b ON b.id = s.batch_id
             WHERE s.status = 'qa' ORDER BY b.created_at, s.first_page",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(segment_from_row).collect()
    }

    /// Sends a segment that could not be filed to the QA queue.
    pub async fn segment_to_qa(&self, id: DocumentId, reason: &str) -> super::StoreResult<()> {
        sqlx::query(
            "UPDATE batch_segments SET status = 'qa', qa_reason = $1
             WHERE id = $2 AND status = 'pending'",
        )
        .bind(reason)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks a segment filed (inside the transaction that records its document) or rejected.
    /// False when it was not pending or in QA any more.
    pub async fn resolve_segment(
        tx: &mut Tx,
        id: DocumentId,
        status: &str,
        by: Option<UserId>,
    ) -> super::StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE batch_segments SET status = $1, resolved_at = $2, resolved_by = $3
             WHERE id = $4 AND status IN ('pending', 'qa')",
        )
        .bind(status)
        .bind(now())
        .bind(by.map(|u| u.to_string()))
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces page ranges in the QA queue by others over the same pages (a person's split
    /// or merge): `old` become `status` ('split' or 'merged'), the new ones wait in QA. False
    /// when one of `old` left the queue meanwhile.
    pub async fn replace_segments(
        &self,
        batch: DocumentId,
        old: &[DocumentId],
        status: &str,
        new: &[NewSegment],
        by: UserId,
    ) -> super::StoreResult<Option<Vec<DocumentId>>> {
        let mut tx = self.begin().await?;
        for id in old {
            if !Db::resolve_segment_from(&mut tx, *id, "qa", status, Some(by)).await? {
                return Ok(None);
            }
        }
        let next: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(seq), -1) + 1 FROM batch_segments WHERE batch_id = $1",
        )
        .bind(batch.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let mut ids = Vec::new();
        for (i, segment) in new.iter().enumerate() {
            let id = DocumentId::new_random();
            sqlx::query(
                "INSERT INTO batch_segments (id, batch_id, seq, first_page, last_page,
                    cover_page, status, qa_reason, document_id)
                 VALUES ($1, $2, $3, $4, $5, $6, 'qa', $7, $8)",
            )
            .bind(id.to_string())
            .bind(batch.to_string())
            .bind(next + i as i64)
            .bind(segment.first_page as i64)
            .bind(segment.last_page as i64)
            .bind(segment.cover_page.map(i64::from))
            .bind(&segment.qa_reason)
            .bind(DocumentId::new_random().to_string())
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(Some(ids))
    }

    async fn resolve_segment_from(
        tx: &mut Tx,
        id: DocumentId,
        from: &str,
        to: &str,
        by: Option<UserId>,
    ) -> super::StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE batch_segments SET status = $1, resolved_at = $2, resolved_by = $3
             WHERE id = $4 AND status = $5",
        )
        .bind(to)
        .bind(now())
        .bind(by.map(|u| u.to_string()))
        .bind(id.to_string())
        .bind(from)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether any page range of the batch still waits to be filed or resolved.
    pub async fn batch_has_open_segments(&self, batch: DocumentId) -> super::StoreResult<bool> {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM batch_segments
             WHERE batch_id = $1 AND status IN ('pending', 'qa')",
        )
        .bind(batch.to_string())
        .fetch_one(self.pool())
        .await?;
        Ok(open > 0)
    }
}

/// Records a batch's file destroyed (the first time only).
async fn mark_original_destroyed<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    batch: DocumentId,
) -> super::StoreResult<()> {
    sqlx::query(
        "UPDATE batches SET original_destroyed_at = coalesce(original_destroyed_at, $1)
         WHERE id = $2",
    )
    .bind(now())
    .bind(batch.to_string())
    .execute(executor)
    .await?;
    Ok(())
}

fn batch_from_row(r: &sqlx::sqlite::SqliteRow) -> super::StoreResult<Batch> {
    Ok(Batch {
        id: parse_id(r.try_get::<&str, _>("id")?)?,
        content_type: r.try_get("content_type")?,
        sha256: r.try_get("sha256")?,
        size_bytes: r.try_get("size_bytes")?,
        page_count: r.try_get::<i64, _>("page_count")? as u32,
        status: r.try_get("status")?,
        failure_reason: r.try_get("failure_reason")?,
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        split_at: r.try_get("split_at")?,
        original_destroyed_at: r.try_get("original_destroyed_at")?,
    })
}

fn segment_from_row(r: &sqlx::sqlite::SqliteRow) -> super::StoreResult<Segment> {
    Ok(Segment {
        id: parse_id(r.try_get::<&str, _>("id")?)?,
        batch_id: parse_id(r.try_get::<&str, _>("batch_id")?)?,
        seq: r.try_get::<i64, _>("seq")? as u32,
        first_page: r.try_get::<i64, _>("first_page")? as u32,
        last_page: r.try_get::<i64, _>("last_page")? as u32,
        cover_page: r.try_get::<Option<i64>, _>("cover_page")?.map(|p| p as u32),
        status: r.try_get("status")?,
        qa_reason: r.try_get("qa_reason")?,
        document_id: parse_id(r.try_get::<&str, _>("document_id")?)?,
        resolved_at: r.try_get("resolved_at")?,
        resolved_by: r.try_get("resolved_by")?,
    })
}
