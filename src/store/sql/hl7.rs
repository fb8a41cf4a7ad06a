//! [`Hl7Store`] in SQL, for every backend.

use std::sync::atomic::Ordering;

use super::*;
pub(super) use crate::store::hl7::*;

impl Hl7Store for Backend {
    async fn hl7_applied(
        &self,
        tx: &mut Tx,
        sending_facility: &str,
        control_id: &str,
    ) -> super::StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT ack_code FROM hl7_inbound WHERE sending_facility = $1 AND control_id = $2",
        )
        .bind(sending_facility)
        .bind(control_id)
        .fetch_optional(tx.conn())
        .await?)
    }

    async fn record_hl7(
        &self,
        tx: &mut Tx,
        sending_facility: &str,
        control_id: &str,
        message_type: &str,
        ack_code: &str,
    ) -> super::StoreResult<()> {
        sqlx::query(
            "INSERT INTO hl7_inbound (sending_facility, control_id, message_type, ack_code, received_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sending_facility)
        .bind(control_id)
        .bind(message_type)
        .bind(ack_code)
        .bind(now())
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    fn enable_outbox(&self) {
        self.outbox.store(true, Ordering::SeqCst);
    }

    fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_waiting.clone()
    }

    async fn next_outbox_event(&self) -> super::StoreResult<Option<OutboxEvent>> {
        let row = sqlx::query(
            "SELECT seq, kind, document_id, replaced_by, control_id, attempts FROM hl7_outbox
             WHERE state = 'pending' ORDER BY seq LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let kind = match row.try_get::<&str, _>("kind")? {
                "available" => OutboxKind::Available,
                "cancelled" => OutboxKind::Cancelled,
                other => return Err(decode_err(format!("outbox kind {other}"))),
            };
            Ok(OutboxEvent {
                seq: row.try_get("seq")?,
                kind,
                document_id: parse_id(row.try_get::<&str, _>("document_id")?)?,
                replaced_by: row
                    .try_get::<Option<&str>, _>("replaced_by")?
                    .map(parse_id)
                    .transpose()?,
                control_id: row.try_get("control_id")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .transpose()
    }

    async fn outbox_attempt_failed(&self, seq: i64, error: &str) -> super::StoreResult<()> {
        sqlx::query(
            "UPDATE hl7_outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2",
        )
        .bind(error)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_answered(
        &self,
        seq: i64,
        ack_code: &str,
        accepted: bool,
        reason: Option<&str>,
    ) -> super::StoreResult<()> {
        sqlx::query(
            "UPDATE hl7_outbox SET state = $1, ack_code = $2, answered_at = $3,
                attempts = attempts + 1, last_error = $4
             WHERE seq = $5",
        )
        .bind(if accepted { "sent" } else { "refused" })
        .bind(ack_code)
        .bind(now())
        .bind(reason)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn outbox_backlog(&self) -> super::StoreResult<OutboxBacklog> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM hl7_outbox
             WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxBacklog {
            pending: row.try_get("pending")?,
            oldest_created_at: row.try_get("oldest")?,
        })
    }
}

impl Backend {
    /// Writes the outbox row of a document made available or cancelled, in the caller's
    /// transaction, when the outbox is on; true when written. The caller notifies the sender
    /// once it committed. A document is announced once, and cancelled only
    /// after it was announced.
    pub(super) async fn enqueue_outbox(
        &self,
        conn: &mut Conn,
        kind: OutboxKind,
        document: DocumentId,
        replaced_by: Option<DocumentId>,
    ) -> super::StoreResult<bool> {
        if !self.outbox.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let (wanted, needed) = match kind {
            // Not announced before (a document indexed again is not news).
            OutboxKind::Available => ("available", "NOT EXISTS"),
            // Announced, and not cancelled already.
            OutboxKind::Cancelled => ("cancelled", "EXISTS"),
        };
        let cancelled_already = match kind {
            OutboxKind::Available => "",
            OutboxKind::Cancelled => {
                " AND NOT EXISTS (SELECT 1 FROM hl7_outbox WHERE document_id = $2 AND kind = 'cancelled')"
            }
        };
        let sql = format!(
            "INSERT INTO hl7_outbox (kind, document_id, replaced_by, control_id, created_at)
             SELECT $1, $2, $3, $4, $5
             WHERE {needed} (SELECT 1 FROM hl7_outbox WHERE document_id = $2 AND kind = 'available')
             {cancelled_already}"
        );
        let written = sqlx::query(&sql)
            .bind(wanted)
            .bind(document.to_string())
            .bind(replaced_by.map(|id| id.to_string()))
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(now())
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, store};
    use super::*;

    #[tokio::test]
    async fn a_document_is_announced_once_taken_back_once_and_answers_are_kept() {
        let store = store().await;
        let (_, before) = document_with_job(&store, "O-1").await;
        let (_, doc) = document_with_job(&store, "O-1").await;
        // Indexed before the outbox was on: nothing to tell.
        let job = store.claim_job(crate::store::jobs::Claim::Any).await.unwrap().unwrap();
        store.finish_job(&job, before).await.unwrap();
        assert!(store.next_outbox_event().await.unwrap().is_none());

        store.enable_outbox();
        let job = store.claim_job(crate::store::jobs::Claim::Any).await.unwrap().unwrap();
        store.finish_job(&job, doc).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        // Indexed again (a re-index) is not news; a document never announced is not taken
        // back; one announced is, once.
        assert!(!store
            .enqueue_outbox(tx.conn(), OutboxKind::Available, doc, None)
            .await
            .unwrap());
        assert!(!store
            .enqueue_outbox(tx.conn(), OutboxKind::Cancelled, before, None)
            .await
            .unwrap());
        assert!(store
            .enqueue_outbox(tx.conn(), OutboxKind::Cancelled, doc, None)
            .await
            .unwrap());
        assert!(!store
            .enqueue_outbox(tx.conn(), OutboxKind::Cancelled, doc, None)
            .await
            .unwrap());
        tx.commit().await.unwrap();

        let first = store.next_outbox_event().await.unwrap().unwrap();
        assert_eq!(
            (first.kind, first.document_id),
            (OutboxKind::Available, doc)
        );
        store
            .outbox_attempt_failed(first.seq, "no connection")
            .await
            .unwrap();
        let again = store.next_outbox_event().await.unwrap().unwrap();
        assert_eq!(
            (again.seq, again.attempts),
            (first.seq, 1),
            "first in line still"
        );
        assert_eq!(again.control_id, first.control_id, "the same MSH-10");
        assert_eq!(store.outbox_backlog().await.unwrap().pending, 2);
        store
            .outbox_answered(first.seq, "AA", true, None)
            .await
            .unwrap();
        let next = store.next_outbox_event().await.unwrap().unwrap();
        assert_eq!(next.kind, OutboxKind::Cancelled);
        store
            .outbox_answered(next.seq, "AR", false, Some("not taken"))
            .await
            .unwrap();
        assert!(store.next_outbox_event().await.unwrap().is_none());
        assert_eq!(store.outbox_backlog().await.unwrap().pending, 0);
    }
}
