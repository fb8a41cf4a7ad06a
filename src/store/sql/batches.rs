//! [`BatchStore`] in SQL, for every backend.

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
    executor: impl sqlx::Executor<'e, Database = Driver>,
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

fn batch_from_row(r: &DbRow) -> super::StoreResult<Batch> {
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

fn segment_from_row(r: &DbRow) -> super::StoreResult<Segment> {
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

impl BatchStore for Backend {
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
        .execute(tx.conn())
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
        let row = sqlx::query(&format!(
            "UPDATE batches SET status = 'processing', attempts = attempts + 1,
                lease_expires = $1
             WHERE id = (SELECT id FROM batches WHERE status = 'accepted'
                         ORDER BY created_at LIMIT 1 {SKIP_LOCKED})
               AND status = 'accepted'
             RETURNING *"
        ))
        .bind(self.lease_expiry())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| batch_from_row(&r)).transpose()
    }

    async fn renew_batch_lease(&self, id: BatchId) -> super::StoreResult<bool> {
        let renewed = sqlx::query(
            "UPDATE batches SET lease_expires = $1 WHERE id = $2 AND status = 'processing'",
        )
        .bind(self.lease_expiry())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn requeue_expired_batches(&self) -> super::StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE batches SET status = 'accepted'
             WHERE status = 'processing' AND (lease_expires IS NULL OR lease_expires < $1)",
        )
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
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
                .execute(tx.conn())
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
                .fetch_one(tx.conn())
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
                .execute(tx.conn())
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
        .execute(tx.conn())
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
            if !Backend::resolve_segment_from(&mut tx, *id, "qa", status, Some(by)).await? {
                return Ok(None);
            }
        }
        let next: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(seq), -1) + 1 FROM batch_segments WHERE batch_id = $1",
        )
        .bind(batch.to_string())
        .fetch_one(tx.conn())
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
            .execute(tx.conn())
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

impl Backend {
    /// Destroys a batch file's key and records it destroyed, inside the caller's transaction
    /// (the blob itself is deleted after the commit).
    pub(crate) async fn destroy_batch_original_in(
        tx: &mut Tx,
        batch: BatchId,
        key_id: &str,
    ) -> super::StoreResult<()> {
        sqlx::query("DELETE FROM keyring WHERE key_id = $1")
            .bind(key_id)
            .execute(tx.conn())
            .await?;
        mark_original_destroyed(tx.conn(), batch).await
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
        .execute(tx.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, file_bytes, store};
    use super::*;
    use crate::domain::{Role, TextSource};
    use crate::store::pages::PageRow;

    fn page(page: u32, cover: CoverSheet) -> BatchPage {
        BatchPage {
            row: PageRow {
                page,
                width: 2550,
                height: 3300,
                dpi: Some(300.0),
                mean_confidence: 91.0,
                word_count: 120,
                blank: false,
                rotation: 0,
                skew_degrees: None,
                ink: Some(0.05),
                text_source: TextSource::Ocr,
            },
            cover,
        }
    }

    fn segment(first_page: u32, last_page: u32, qa_reason: Option<&str>) -> NewSegment {
        NewSegment {
            first_page,
            last_page,
            cover_page: Some(first_page - 1),
            qa_reason: qa_reason.map(String::from),
        }
    }

    async fn new_batch(store: &Backend, sha256: &str) -> BatchId {
        let created_by = store.create_user(sha256, Role::Records).await.unwrap();
        let id = BatchId::new_random();
        let mut tx = store.begin().await.unwrap();
        Backend::insert_batch(
            &mut tx,
            &NewBatch {
                id,
                content_type: "image/tiff".into(),
                sha256: sha256.into(),
                size_bytes: 1000,
                page_count: 6,
                created_by,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    #[tokio::test]
    async fn a_batch_is_claimed_once_requeued_after_a_stop_and_found_by_its_file() {
        let store = store().await;
        let id = new_batch(&store, "aa").await;
        assert_eq!(store.batch_by_sha256("aa").await.unwrap().unwrap().id, id);

        let claimed = store.claim_batch().await.unwrap().unwrap();
        assert_eq!((claimed.id, claimed.status.as_str()), (id, "processing"));
        assert!(store.claim_batch().await.unwrap().is_none(), "claimed once");
        assert_eq!(store.requeue_running_batches().await.unwrap(), 1);
        assert_eq!(store.claim_batch().await.unwrap().unwrap().attempts, 2);

        store
            .set_batch_status(id, "failed", Some("the file is not a TIFF"))
            .await
            .unwrap();
        assert!(
            store.batch_by_sha256("aa").await.unwrap().is_none(),
            "a failed batch is no duplicate: the file may be sent again"
        );
        store.set_batch_status(id, "split", None).await.unwrap();
        let split = store.batch(id).await.unwrap().unwrap();
        assert!(split.split_at.is_some());
        assert!(store.batch(BatchId::new_random()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn cover_sheet_fields_are_sealed_and_read_back_with_the_page() {
        let store = store().await;
        let id = new_batch(&store, "bb").await;
        let cover = CoverSheet::Cover {
            mrn: "MRN-QX-0042".into(),
            issuer: None,
            document_type: "discharge-summary".into(),
            category: None,
            service_date: Some("1998-03-14".into()),
        };
        let unreadable = CoverSheet::Unreadable {
            reason: "the cover code has no MRN field".into(),
        };
        store
            .insert_batch_page(id, &page(1, cover.clone()))
            .await
            .unwrap();
        store
            .insert_batch_page(id, &page(2, CoverSheet::NotCover))
            .await
            .unwrap();
        store
            .insert_batch_page(id, &page(3, unreadable.clone()))
            .await
            .unwrap();
        // A page processed again (a restart mid-batch) replaces its row.
        store
            .insert_batch_page(id, &page(2, CoverSheet::NotCover))
            .await
            .unwrap();

        let pages = store.batch_pages(id).await.unwrap();
        let read: Vec<(u32, CoverSheet)> =
            pages.into_iter().map(|p| (p.row.page, p.cover)).collect();
        assert!(read == vec![(1, cover), (2, CoverSheet::NotCover), (3, unreadable)]);

        store.delete_batch_pages(id, &[1, 3]).await.unwrap();
        let left: Vec<u32> = store
            .batch_pages(id)
            .await
            .unwrap()
            .iter()
            .map(|p| p.row.page)
            .collect();
        assert_eq!(left, vec![2]);

        store.truncate_wal().await.unwrap();
        let bytes = file_bytes(&store).await;
        for needle in ["MRN-QX-0042", "discharge-summary", "1998-03-14"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is in the database file"
            );
        }
    }

    #[tokio::test]
    async fn segments_are_planned_once_then_filed_or_resolved_by_a_person() {
        let store = store().await;
        let id = new_batch(&store, "cc").await;
        let plan = [
            segment(2, 3, None),
            segment(5, 6, Some("no readable cover sheet")),
        ];
        let planned = store.plan_segments(id, &plan).await.unwrap();
        assert_eq!(
            planned
                .iter()
                .map(|s| s.status.as_str())
                .collect::<Vec<_>>(),
            ["pending", "qa"]
        );
        let again = store
            .plan_segments(id, &[segment(2, 6, None)])
            .await
            .unwrap();
        assert_eq!(
            again.iter().map(|s| s.id).collect::<Vec<_>>(),
            planned.iter().map(|s| s.id).collect::<Vec<_>>(),
            "a second run keeps the first plan"
        );
        let (pending, in_qa) = (&planned[0], &planned[1]);
        assert_eq!(
            store
                .qa_segments()
                .await
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>(),
            [in_qa.id]
        );

        // The pending one is filed as a document; the batch file still holds its pages.
        let mut tx = store.begin().await.unwrap();
        assert!(Backend::resolve_segment(&mut tx, pending.id, "filed", None)
            .await
            .unwrap());
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(
            !Backend::resolve_segment(&mut tx, pending.id, "rejected", None)
                .await
                .unwrap(),
            "a filed range is not resolved twice"
        );
        drop(tx);
        assert_eq!(
            store.live_batch_file_of(pending.document_id).await.unwrap(),
            Some(id)
        );

        // A person splits the range in QA in two; the old one is gone from the queue.
        let by = store.create_user("qa-person", Role::Records).await.unwrap();
        let new = store
            .replace_segments(
                id,
                &[in_qa.id],
                "split",
                &[segment(5, 5, None), segment(6, 6, None)],
                by,
            )
            .await
            .unwrap()
            .expect("the range was still in QA");
        assert_eq!(new.len(), 2);
        let queue: Vec<DocumentId> = store
            .qa_segments()
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(queue, new);
        assert_eq!(
            store.segment(in_qa.id).await.unwrap().unwrap().status,
            "split"
        );
        assert!(
            store
                .replace_segments(id, &[in_qa.id], "merged", &[segment(5, 6, None)], by)
                .await
                .unwrap()
                .is_none(),
            "a range that left the queue cannot be replaced again"
        );

        assert!(store.batch_has_open_segments(id).await.unwrap());
        for segment in &new {
            let mut tx = store.begin().await.unwrap();
            assert!(
                Backend::resolve_segment(&mut tx, *segment, "rejected", Some(by))
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
        }
        assert!(!store.batch_has_open_segments(id).await.unwrap());

        // Once the batch file is destroyed, no document is held by it any more.
        store.mark_batch_original_destroyed(id).await.unwrap();
        let first = store
            .batch(id)
            .await
            .unwrap()
            .unwrap()
            .original_destroyed_at;
        store.mark_batch_original_destroyed(id).await.unwrap();
        assert_eq!(
            store
                .batch(id)
                .await
                .unwrap()
                .unwrap()
                .original_destroyed_at,
            first,
            "the first destruction is the one on record"
        );
        assert_eq!(
            store.live_batch_file_of(pending.document_id).await.unwrap(),
            None
        );
        let (_, unrelated) = document_with_job(&store, "B-1").await;
        assert_eq!(store.live_batch_file_of(unrelated).await.unwrap(), None);
    }
}
