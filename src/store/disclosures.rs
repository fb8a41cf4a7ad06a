//! Disclosures of a patient's records, for the accounting of disclosures (45 CFR 164.528).
//! Recipient, address, description and purpose are sealed like every PHI column; the date,
//! the patient's and documents' opaque ids and who recorded it stay in the clear.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::Row;

use super::{now, parse_date, parse_id, Db, Tx};
use crate::domain::{DocumentId, PatientId, UserId};
use crate::store::phi::Column;

/// Where a disclosure was recorded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DisclosureSource {
    /// Released outside the system and recorded through the API.
    Manual,
    /// A production made by the service itself.
    Production,
}

impl DisclosureSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DisclosureSource::Manual => "manual",
            DisclosureSource::Production => "production",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewDisclosure {
    pub patient_id: PatientId,
    pub disclosed_at: NaiveDate,
    pub document_ids: Vec<DocumentId>,
    pub recipient_name: String,
    pub recipient_address: Option<String>,
    pub description: String,
    pub purpose: String,
    pub source: DisclosureSource,
    pub recorded_by: UserId,
}

#[derive(Debug, Clone, Serialize)]
pub struct Disclosure {
    pub id: String,
    pub patient_id: PatientId,
    pub disclosed_at: NaiveDate,
    pub document_ids: Vec<DocumentId>,
    pub recipient_name: String,
    pub recipient_address: Option<String>,
    pub description: String,
    pub purpose: String,
    pub source: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

impl Db {
    /// Records a disclosure; returns its id.
    pub async fn insert_disclosure(
        &self,
        disclosure: &NewDisclosure,
    ) -> super::StoreResult<String> {
        let mut tx = self.begin().await?;
        let id = self.insert_disclosure_tx(&mut tx, disclosure).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records a disclosure inside the caller's transaction (a production records its
    /// disclosures in the transaction that records the production).
    pub async fn insert_disclosure_tx(
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

    /// The patient's disclosures made on or after `since`, newest first, decrypted.
    pub async fn disclosures_of_patient(
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
                let documents: Vec<String> = serde_json::from_str(&documents)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
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
