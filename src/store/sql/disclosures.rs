//! [`DisclosureStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::disclosures::*;

use crate::domain::PatientId;
use crate::store::phi::Column;
use chrono::NaiveDate;
use sqlx::Row;

impl DisclosureStore for Backend {
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
        .execute(tx.conn())
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

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, file_bytes, store};
    use super::*;
    use crate::domain::Role;

    fn disclosure(patient: PatientId, doc: DocumentId, on: &str, by: UserId) -> NewDisclosure {
        NewDisclosure {
            patient_id: patient,
            disclosed_at: on.parse().unwrap(),
            document_ids: vec![doc],
            recipient_name: "Peregrine Ashcombe".into(),
            recipient_address: Some("4 Larch Row".into()),
            description: "discharge summary".into(),
            purpose: "continuity of care".into(),
            source: DisclosureSource::Manual,
            recorded_by: by,
        }
    }

    #[tokio::test]
    async fn disclosures_are_sealed_append_only_and_listed_per_patient_newest_first() {
        let store = store().await;
        let (patient, doc) = document_with_job(&store, "D-1").await;
        let (other, other_doc) = document_with_job(&store, "D-2").await;
        let by = store.create_user("lee", Role::Legal).await.unwrap();

        let old = store
            .insert_disclosure(&disclosure(patient, doc, "2019-05-01", by))
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        let new = store
            .insert_disclosure_tx(&mut tx, &disclosure(patient, doc, "2026-10-01", by))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        store
            .insert_disclosure(&disclosure(other, other_doc, "2026-10-02", by))
            .await
            .unwrap();

        let all = store
            .disclosures_of_patient(patient, "2020-01-01".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            [new.as_str()]
        );
        let all = store
            .disclosures_of_patient(patient, "2019-05-01".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            [new.as_str(), old.as_str()],
            "newest first, `since` inclusive"
        );
        assert_eq!(all[0].recipient_name, "Peregrine Ashcombe");
        assert_eq!(all[0].document_ids, vec![doc]);
        assert_eq!(all[0].source, "manual");

        // The accounting is append-only: the table refuses updates and deletions.
        for sql in [
            "UPDATE disclosures SET purpose = 'x'",
            "DELETE FROM disclosures",
        ] {
            assert!(
                sqlx::query(sql).execute(store.pool()).await.is_err(),
                "{sql} was allowed"
            );
        }

        store.truncate_wal().await.unwrap();
        let bytes = file_bytes(&store).await;
        for needle in [
            "Ashcombe",
            "Larch",
            "continuity of care",
            "discharge summary",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is in the database file"
            );
        }
    }
}
