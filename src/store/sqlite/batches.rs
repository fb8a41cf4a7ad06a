//! [`BatchStore`] on SQLite.

use super::*;
pub(super) use crate::store::batches::*;

use chartvault_ocr::CoverSheet;
use sqlx::Row;

use crate::domain::{DocumentId, UserId};
use crate::store::phi::Column;

fn cover_row_id(batch: BatchId, page: u32) -> String {
    format!("{batch}:{page}")
}

/// Records a batch's file destroyed (the first time only).
async fn mark_original_destroyed<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    batch: BatchId,
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

impl BatchStore for SqliteStore {
    async fn insert_batch(tx: &mut Tx, batch: &NewBatch) -> super::StoreResult<()> {
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

    async fn batch(&self, id: BatchId) -> super::StoreResult<Option<Batch>> {
        let row = sqlx::query("SELECT * FROM batches WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| batch_from_row(&r)).transpose()
    }

    async fn batch_by_sha256(&self, sha256: &str) -> super::StoreResult<Option<Batch>> {
        let row = sqlx::query(
            "SELECT * FROM batches WHERE sha256 = $1 AND status != 'failed'
             ORDER BY created_at LIMIT 1",
        )
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| batch_from_row(&r)).transpose()
    }

    async fn claim_batch(&self) -> super::StoreResult<Option<Batch>> {
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

    async fn requeue_running_batches(&self) -> super::StoreResult<u64> {
        let done =
            sqlx::query("UPDATE batches SET status = 'accepted' WHERE status = 'processing'")
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    async fn set_batch_status(
        &self,
        id: BatchId,
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

    async fn mark_batch_original_destroyed(&self, id: BatchId) -> super::StoreResult<()> {
        mark_original_destroyed(self.pool(), id).await
    }

    async fn insert_batch_page(&self, batch: BatchId, page: &BatchPage) -> super::StoreResult<()> {
        let row = &page.row;
        let (fields, reason) = match &page.cover {
            CoverSheet::NotCover => (None, None),
            cover @ CoverSheet::Cover { .. } => {
                let json = serde_json::to_string(cover)
                    .map_err(|e| StoreError::Unwritable(Box::new(e)))?;
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

    async fn batch_pages(&self, batch: BatchId) -> super::StoreResult<Vec<BatchPage>> {
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
                        serde_json::from_str(&json).map_err(StoreError::unreadable)?
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

    async fn delete_batch_pages(&self, batch: BatchId, pages: &[u32]) -> super::StoreResult<()> {
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

    async fn plan_segments(
        &self,
        batch: BatchId,
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

    async fn segments(&self, batch: BatchId) -> super::StoreResult<Vec<Segment>> {
        let rows = sqlx::query(
            "SELECT * FROM batch_segments WHERE batch_id = $1 ORDER BY first_page, seq",
        )
        .bind(batch.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(segment_from_row).collect()
    }

    async fn live_batch_file_of(
        &self,
        document: DocumentId,
    ) -> super::StoreResult<Option<BatchId>> {
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

    async fn segment(&self, id: DocumentId) -> super::StoreResult<Option<Segment>> {
        let row = sqlx::query("SELECT * FROM batch_segments WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| segment_from_row(&r)).transpose()
    }

    async fn qa_segments(&self) -> super::StoreResult<Vec<Segment>> {
        let rows = sqlx::query(
            "SELECT s.* FROM batch_segments s JOIN batches b ON b.id = s.batch_id
             WHERE s.status = 'qa' ORDER BY b.created_at, s.first_page",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(segment_from_row).collect()
    }

    async fn segment_to_qa(&self, id: DocumentId, reason: &str) -> super::StoreResult<()> {
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

    async fn resolve_segment(
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

    async fn replace_segments(
        &self,
        batch: BatchId,
        old: &[DocumentId],
        status: &str,
        new: &[NewSegment],
        by: UserId,
    ) -> super::StoreResult<Option<Vec<DocumentId>>> {
        let mut tx = self.begin().await?;
        for id in old {
            if !SqliteStore::resolve_segment_from(&mut tx, *id, "qa", status, Some(by)).await? {
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

    async fn batch_has_open_segments(&self, batch: BatchId) -> super::StoreResult<bool> {
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

impl SqliteStore {
    /// Destroys a batch file's key and records it destroyed, inside the caller's transaction
    /// (the blob itself is deleted after the commit).
    pub(crate) async fn destroy_batch_original_in(
        tx: &mut Tx,
        batch: BatchId,
        key_id: &str,
    ) -> super::StoreResult<()> {
        sqlx::query("DELETE FROM keyring WHERE key_id = $1")
            .bind(key_id)
            .execute(&mut **tx)
            .await?;
        mark_original_destroyed(&mut **tx, batch).await
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
}
