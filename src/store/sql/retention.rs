//! [`RetentionStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::retention::*;

use chrono::NaiveDate;
use sqlx::Row;

use super::documents::Document;
use crate::domain::{DocumentId, UserId};

impl RetentionStore for Backend {
    async fn insert_retention_run(
        &self,
        as_of: NaiveDate,
        applied: bool,
        by: Option<UserId>,
    ) -> super::StoreResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO retention_runs (id, as_of, applied, expired, held, destroyed, run_by,
                started_at)
             VALUES ($1, $2, $3, 0, 0, 0, $4, $5)",
        )
        .bind(&id)
        .bind(as_of.to_string())
        .bind(applied)
        .bind(by.map(|u| u.to_string()))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    async fn finish_retention_run(&self, id: &str, counts: &RunCounts) -> super::StoreResult<()> {
        sqlx::query(
            "UPDATE retention_runs SET expired = $1, held = $2, destroyed = $3, finished_at = $4
             WHERE id = $5",
        )
        .bind(counts.expired as i64)
        .bind(counts.held as i64)
        .bind(counts.destroyed as i64)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retention_candidates(&self) -> super::StoreResult<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents
             WHERE status IN ('indexed', 'failed') AND qa_reason IS NULL
             ORDER BY service_date, created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.document_from_row(r)).collect()
    }

    async fn certificates(
        &self,
        run_id: Option<&str>,
        document_id: Option<DocumentId>,
    ) -> super::StoreResult<Vec<Certificate>> {
        let rows = sqlx::query(
            "SELECT * FROM destruction_certificates
             WHERE ($1 IS NULL OR run_id = $1) AND ($2 IS NULL OR document_id = $2)
             ORDER BY destroyed_at DESC, id",
        )
        .bind(run_id)
        .bind(document_id.map(|d| d.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Certificate {
                    id: r.try_get("id")?,
                    run_id: r.try_get("run_id")?,
                    document_id: r.try_get("document_id")?,
                    document_sha256: r.try_get("document_sha256")?,
                    document_type: r.try_get("document_type")?,
                    page_count: r.try_get::<i64, _>("page_count")? as u32,
                    rule: r.try_get("rule")?,
                    counted_from: r.try_get("counted_from")?,
                    expired_on: r.try_get("expired_on")?,
                    destroyed_at: r.try_get("destroyed_at")?,
                    destroyed_by: r.try_get("destroyed_by")?,
                })
            })
            .collect()
    }
}

impl Backend {
    pub(super) async fn insert_certificate(
        tx: &mut Conn,
        c: &NewCertificate,
    ) -> super::StoreResult<()> {
        sqlx::query(
            "INSERT INTO destruction_certificates (id, run_id, document_id, document_sha256,
                document_type, page_count, rule, counted_from, expired_on, destroyed_at,
                destroyed_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&c.run_id)
        .bind(c.document_id.to_string())
        .bind(&c.document_sha256)
        .bind(&c.document_type)
        .bind(i64::from(c.page_count))
        .bind(&c.rule)
        .bind(c.counted_from.to_string())
        .bind(c.expired_on.to_string())
        .bind(now())
        .bind(&c.destroyed_by)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, store};
    use super::*;

    #[tokio::test]
    async fn a_destruction_leaves_a_certificate_found_by_its_run_and_its_document() {
        let store = store().await;
        let (_, doc) = document_with_job(&store, "C-1").await;
        let (_, waiting) = document_with_job(&store, "C-2").await;
        let candidates = |docs: Vec<Document>| docs.iter().map(|d| d.id).collect::<Vec<_>>();
        assert!(
            store.retention_candidates().await.unwrap().is_empty(),
            "documents still being processed are not retention's"
        );
        store
            .set_status(doc, DocumentStatus::Indexed, None)
            .await
            .unwrap();
        assert_eq!(
            candidates(store.retention_candidates().await.unwrap()),
            [doc]
        );

        let as_of: NaiveDate = "2026-12-01".parse().unwrap();
        let run = store.insert_retention_run(as_of, true, None).await.unwrap();
        let certificate = NewCertificate {
            run_id: run.clone(),
            document_id: doc,
            document_sha256: "00".repeat(32),
            document_type: "progress-note".into(),
            page_count: 1,
            rule: "adult: 10 years".into(),
            counted_from: "2016-01-01".parse().unwrap(),
            expired_on: "2026-01-01".parse().unwrap(),
            destroyed_by: RETENTION_JOB.into(),
        };
        assert!(store
            .tombstone_document(
                &[(doc, Vec::new())],
                &[],
                &[DocumentStatus::Indexed],
                RETENTION_JOB,
                "retention",
                Some(&certificate),
            )
            .await
            .unwrap());
        store
            .finish_retention_run(
                &run,
                &RunCounts {
                    expired: 1,
                    held: 0,
                    destroyed: 1,
                },
            )
            .await
            .unwrap();

        let of_run = store.certificates(Some(&run), None).await.unwrap();
        assert_eq!(of_run.len(), 1);
        assert_eq!(of_run[0].document_id, doc.to_string());
        assert_eq!(of_run[0].destroyed_by, RETENTION_JOB);
        assert_eq!(store.certificates(None, Some(doc)).await.unwrap().len(), 1);
        assert!(store
            .certificates(None, Some(waiting))
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .certificates(Some("another run"), None)
            .await
            .unwrap()
            .is_empty());
        assert!(
            store.retention_candidates().await.unwrap().is_empty(),
            "a destroyed document is no candidate any more"
        );
    }
}
