//! [`Hl7Store`] on SQLite.

use super::*;
pub(super) use crate::store::hl7::*;

impl Hl7Store for SqliteStore {
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
        .fetch_optional(&mut **tx)
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
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
