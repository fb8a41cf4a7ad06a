//! [`JobStore`] in SQL, for every backend.

use super::*;
use crate::store::hl7::OutboxKind;
pub(super) use crate::store::jobs::*;

impl JobStore for Backend {
    async fn requeue_running_jobs(&self) -> super::StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'pending', updated_at = $1 WHERE state = 'running'",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn requeue_job(&self, job: &Job, error: &str) -> super::StoreResult<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'pending', last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(now())
        .bind(job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retry_failed(&self, document: DocumentId) -> super::StoreResult<bool> {
        let mut tx = self.begin().await?;
        let at = now();
        let changed = sqlx::query(
            "UPDATE documents SET status = 'accepted', failure_reason = NULL
             WHERE id = $1 AND status = 'failed'",
        )
        .bind(document.to_string())
        .execute(tx.conn())
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE jobs SET state = 'pending', attempts = 0, last_error = NULL, updated_at = $1
             WHERE document_id = $2",
        )
        .bind(&at)
        .bind(document.to_string())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_job(&self, claim: Claim) -> super::StoreResult<Option<Job>> {
        let stages = claim.stages_sql();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = $1,
                lease_expires = $2
             WHERE id = (SELECT id FROM jobs WHERE state = 'pending' AND stage IN {stages}
                         ORDER BY id LIMIT 1 {SKIP_LOCKED})
               AND state = 'pending'
             RETURNING id, document_id, attempts, stage"
        ))
        .bind(now())
        .bind(self.lease_expiry())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let stage: &str = r.try_get("stage")?;
            Ok(Job {
                id: r.try_get("id")?,
                document_id: parse_id(r.try_get::<&str, _>("document_id")?)?,
                attempts: r.try_get("attempts")?,
                stage: JobStage::parse(stage)
                    .ok_or_else(|| StoreError::Unreadable(format!("job stage {stage:?}").into()))?,
            })
        })
        .transpose()
    }

    async fn hand_to_indexer(&self, job: &Job) -> super::StoreResult<bool> {
        let handed = sqlx::query(
            "UPDATE jobs SET stage = 'index', state = 'pending', attempts = 0,
                lease_expires = NULL, updated_at = $1
             WHERE id = $2 AND state = 'running' AND attempts = $3",
        )
        .bind(now())
        .bind(job.id)
        .bind(job.attempts)
        .execute(&self.pool)
        .await?;
        Ok(handed.rows_affected() == 1)
    }

    async fn renew_job_lease(&self, job: &Job) -> super::StoreResult<bool> {
        let renewed = sqlx::query(
            "UPDATE jobs SET lease_expires = $1
             WHERE id = $2 AND state = 'running' AND attempts = $3",
        )
        .bind(self.lease_expiry())
        .bind(job.id)
        .bind(job.attempts)
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn requeue_expired_jobs(&self) -> super::StoreResult<u64> {
        let at = now();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'pending', updated_at = $1
             WHERE state = 'running' AND (lease_expires IS NULL OR lease_expires < $1)",
        )
        .bind(&at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn finish_job(&self, job: &Job, document: DocumentId) -> super::StoreResult<()> {
        let mut tx = self.begin().await?;
        let at = now();
        sqlx::query("UPDATE jobs SET state = 'done', updated_at = $1 WHERE id = $2")
            .bind(&at)
            .bind(job.id)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "UPDATE documents SET status = 'indexed', failure_reason = NULL, indexed_at = $1 WHERE id = $2",
        )
        .bind(&at)
        .bind(document.to_string())
        .execute(tx.conn())
        .await?;
        // Filed (not waiting in QA, not a version entered in error): the EHR is told.
        let filed: Option<bool> = sqlx::query_scalar(
            "SELECT qa_reason IS NULL AND entered_in_error_at IS NULL FROM documents WHERE id = $1",
        )
        .bind(document.to_string())
        .fetch_optional(tx.conn())
        .await?;
        let announced = filed == Some(true)
            && self
                .enqueue_outbox(tx.conn(), OutboxKind::Available, document, None)
                .await?;
        tx.commit().await?;
        if announced {
            self.outbox_waiting.notify_one();
        }
        Ok(())
    }

    async fn fail_job(
        &self,
        job: &Job,
        document: DocumentId,
        reason: &str,
    ) -> super::StoreResult<()> {
        let mut tx = self.begin().await?;
        let at = now();
        sqlx::query(
            "UPDATE jobs SET state = 'failed', last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(reason)
        .bind(&at)
        .bind(job.id)
        .execute(tx.conn())
        .await?;
        sqlx::query("UPDATE documents SET status = 'failed', failure_reason = $1 WHERE id = $2")
            .bind(reason)
            .bind(document.to_string())
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn queue_summary(&self) -> super::StoreResult<QueueSummary> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let by_state = rows
            .iter()
            .map(|row| Ok((row.try_get("state")?, row.try_get("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let oldest_pending = sqlx::query_scalar(
            "SELECT created_at FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(QueueSummary {
            by_state,
            oldest_pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, store};
    use super::*;

    #[tokio::test]
    async fn a_job_is_claimed_once_and_its_document_is_indexed_when_it_finishes() {
        let store = store().await;
        let (_, doc) = document_with_job(&store, "M-1").await;
        let job = store
            .claim_job(Claim::Any)
            .await
            .unwrap()
            .expect("the new document's job");
        assert_eq!((job.document_id, job.attempts), (doc, 1));
        assert!(
            store.claim_job(Claim::Any).await.unwrap().is_none(),
            "a running job is not claimed twice"
        );
        store.finish_job(&job, doc).await.unwrap();
        let stored = store.document(doc).await.unwrap().unwrap();
        assert_eq!(stored.status, DocumentStatus::Indexed);
        assert_eq!(store.requeue_running_jobs().await.unwrap(), 0);
        assert!(store.claim_job(Claim::Any).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_job_a_stop_interrupted_is_claimed_again_with_its_attempts_counted() {
        let store = store().await;
        let (_, doc) = document_with_job(&store, "M-1").await;
        store.claim_job(Claim::Any).await.unwrap().unwrap();
        assert_eq!(store.requeue_running_jobs().await.unwrap(), 1);
        let again = store.claim_job(Claim::Any).await.unwrap().unwrap();
        assert_eq!((again.document_id, again.attempts), (doc, 2));
        store.fail_job(&again, doc, "unreadable").await.unwrap();
        let stored = store.document(doc).await.unwrap().unwrap();
        assert_eq!(stored.status, DocumentStatus::Failed);
        assert!(
            store.retry_failed(doc).await.unwrap(),
            "a failed document can be retried"
        );
        assert_eq!(store.claim_job(Claim::Any).await.unwrap().unwrap().document_id, doc);
    }

    /// A worker (engines, no index) claims only jobs to recognise and hands each on; the
    /// index writer's loops (no engines) claim only jobs to index; the hand-off is the
    /// claim's own (a claim whose lease ran out hands nothing on).
    #[tokio::test]
    async fn a_recognised_job_goes_from_the_workers_to_the_index_writer() {
        let store = store().await;
        let (_, doc) = document_with_job(&store, "M-1").await;
        let indexer = Claim::Only(JobStage::Index);
        assert!(store.claim_job(indexer).await.unwrap().is_none(), "nothing to index yet");
        let job = store
            .claim_job(Claim::Only(JobStage::Recognise))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((job.stage, job.attempts), (JobStage::Recognise, 1));
        assert!(store.hand_to_indexer(&job).await.unwrap());
        assert!(
            !store.hand_to_indexer(&job).await.unwrap(),
            "handed on once"
        );
        assert!(
            store
                .claim_job(Claim::Only(JobStage::Recognise))
                .await
                .unwrap()
                .is_none(),
            "a worker does not take it back"
        );
        let indexing = store.claim_job(indexer).await.unwrap().unwrap();
        assert_eq!(
            (indexing.document_id, indexing.stage, indexing.attempts),
            (doc, JobStage::Index, 1),
            "attempts counted afresh"
        );
        store.finish_job(&indexing, doc).await.unwrap();
        assert_eq!(
            store.document(doc).await.unwrap().unwrap().status,
            DocumentStatus::Indexed
        );

        // A claim that lost its lease hands nothing on.
        let (_, other) = document_with_job(&store, "M-2").await;
        let lost = store.claim_job(Claim::Any).await.unwrap().unwrap();
        assert_eq!(lost.document_id, other);
        store.requeue_job(&lost, "stopped").await.unwrap();
        let again = store.claim_job(Claim::Any).await.unwrap().unwrap();
        assert!(!store.hand_to_indexer(&lost).await.unwrap());
        assert!(store.hand_to_indexer(&again).await.unwrap());
    }

    /// Workers on two nodes claim at once: every job is claimed, none twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_on_two_nodes_claim_every_job_once() {
        let store = store().await;
        for i in 0..20 {
            document_with_job(&store, &format!("M-{i}")).await;
        }
        let other = super::super::testing::second_handle(&store).await;
        let claim_all = |db: Backend| async move {
            let mut claimed = Vec::new();
            while let Some(job) = db.claim_job(Claim::Any).await.unwrap() {
                claimed.push(job.id);
            }
            claimed
        };
        let (a, b) = tokio::join!(
            tokio::spawn(claim_all(store.db.clone())),
            tokio::spawn(claim_all(other))
        );
        let mut all: Vec<i64> = a.unwrap().into_iter().chain(b.unwrap()).collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!((before, all.len()), (20, 20), "every job claimed once");
    }

    /// A job whose worker stops renewing its lease goes back to the queue, and the old
    /// claim can no longer renew it.
    #[tokio::test]
    async fn a_job_whose_lease_ran_out_is_claimed_again() {
        let store = store().await;
        let (_, doc) = document_with_job(&store, "M-1").await;
        let job = store.claim_job(Claim::Any).await.unwrap().unwrap();
        assert!(store.renew_job_lease(&job).await.unwrap());
        assert_eq!(store.requeue_expired_jobs().await.unwrap(), 0, "the lease holds");
        sqlx::query("UPDATE jobs SET lease_expires = $1 WHERE id = $2")
            .bind("2000-01-01T00:00:00.000Z")
            .bind(job.id)
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(store.requeue_expired_jobs().await.unwrap(), 1);
        assert!(!store.renew_job_lease(&job).await.unwrap(), "the old claim is gone");
        let again = store.claim_job(Claim::Any).await.unwrap().unwrap();
        assert_eq!((again.document_id, again.attempts), (doc, 2));
        assert!(!store.renew_job_lease(&job).await.unwrap(), "nor after the new claim");
        assert!(store.renew_job_lease(&again).await.unwrap());
    }
}
