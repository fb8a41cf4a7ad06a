//! [`DisclosureStore`] on SQLite.

use super::*;
pub(super) use crate::store::disclosures::*;

use crate::domain::PatientId;
use crate::store::phi::Column;
use chrono::NaiveDate;
use sqlx::Row;

impl DisclosureStore for SqliteStore {
    async fn insert_disclosure(&self, disclosure: &NewDisclosure) -> super::StoreResult<String> {
        let mut tx = self.begin().await?;
        let id = self.insert_disclosure_tx(&mut tx, disclosure).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn insert_disclosure_tx(
        &self,
        tx: &mut Tx,
        disclosure: &NewDisclosure,
    ) -> super::StoreResult<String> {
        let phi = self.phi()?;
        let id = uuid::Uuid::new_v4().to_string();
        let documents: Vec<String> = disclosure
            .document_ids
            .iter()
            .map(|d| d.to_string())
            .collect();
        sqlx::query(
            "INSERT INTO disclosures (id, patient_id, disclosed_at, document_ids, recipient_name,
                recipient_address, description, purpose, source, recorded_by, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(disclosure.patient_id.to_string())
        .bind(disclosure.disclosed_at.to_string())
        .bind(serde_json::to_string(&documents).expect("a list of ids serialises"))
        .bind(phi.seal(
            Column::DisclosureRecipientName,
            &id,
            &disclosure.recipient_name,
        ))
        .bind(
            disclosure
                .recipient_address
                .as_deref()
                .map(|a| phi.seal(Column::DisclosureRecipientAddress, &id, a)),
        )
        .bind(phi.seal(Column::DisclosureDescription, &id, &disclosure.description))
        .bind(phi.seal(Column::DisclosurePurpose, &id, &disclosure.purpose))
        .bind(disclosure.source.as_str())
        .bind(disclosure.recorded_by.to_string())
        .bind(now())
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    async fn disclosures_of_patient(
        &self,
        patient: PatientId,
        since: NaiveDate,
    ) -> super::StoreResult<Vec<Disclosure>> {
        let rows = sqlx::query(
            "SELECT * FROM disclosures WHERE patient_id = $1 AND disclosed_at >= $2
             ORDER BY disclosed_at DESC, recorded_at DESC",
        )
        .bind(patient.to_string())
        .bind(since.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let documents: String = r.try_get("document_ids")?;
                let documents: Vec<String> =
                    serde_json::from_str(&documents).map_err(StoreError::unreadable)?;
                Ok(Disclosure {
                    patient_id: parse_id(r.try_get::<&str, _>("patient_id")?)?,
                    disclosed_at: parse_date(r.try_get("disclosed_at")?)?
                        .ok_or_else(|| super::decode_err("a disclosure has no date".into()))?,
                    document_ids: documents
                        .iter()
                        .map(|d| parse_id(d))
                        .collect::<super::StoreResult<_>>()?,
                    recipient_name: self.open_column(
                        Column::DisclosureRecipientName,
                        &id,
                        r.try_get("recipient_name")?,
                    )?,
                    recipient_address: self.open_optional(
                        Column::DisclosureRecipientAddress,
                        &id,
                        r.try_get("recipient_address")?,
                    )?,
                    description: self.open_column(
                        Column::DisclosureDescription,
                        &id,
                        r.try_get("description")?,
                    )?,
                    purpose: self.open_column(
                        Column::DisclosurePurpose,
                        &id,
                        r.try_get("purpose")?,
                    )?,
                    source: r.try_get("source")?,
                    recorded_by: r.try_get("recorded_by")?,
                    recorded_at: r.try_get("recorded_at")?,
                    id,
                })
            })
            .collect()
    }
}
