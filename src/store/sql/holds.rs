//! [`HoldStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::holds::*;

use crate::domain::{DocumentId, HoldId, UserId};
use crate::store::phi::Column;
use sqlx::Row;

/// Active holds covering a document: on its patient, or naming it.
const COVERING: &str = "SELECT h.id, h.matter FROM holds h
     WHERE h.released_at IS NULL
       AND (h.patient_id = (SELECT patient_id FROM documents WHERE id = $1)
            OR EXISTS (SELECT 1 FROM hold_documents hd
                       WHERE hd.hold_id = h.id AND hd.document_id = $1))
     ORDER BY h.created_at, h.id";

impl HoldStore for Backend {
    async fn insert_hold(&self, hold: &NewHold) -> super::StoreResult<HoldId> {
        let phi = self.phi()?;
        let hold_id = HoldId::new_random();
        let id = hold_id.to_string();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO holds (id, matter, custodian, reason, scope, patient_id, query,
                created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(phi.seal(Column::HoldMatter, &id, &hold.matter))
        .bind(phi.seal(Column::HoldCustodian, &id, &hold.custodian))
        .bind(phi.seal(Column::HoldReason, &id, &hold.reason))
        .bind(hold.scope.as_str())
        .bind(hold.patient_id.map(|p| p.to_string()))
        .bind(
            hold.query
                .as_deref()
                .map(|q| phi.seal(Column::HoldQuery, &id, q)),
        )
        .bind(hold.created_by.to_string())
        .bind(now())
        .execute(tx.conn())
        .await?;
        for document in &hold.documents {
            sqlx::query(
                "INSERT INTO hold_documents (hold_id, document_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(document.to_string())
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(hold_id)
    }

    async fn holds_covering(&self, document: DocumentId) -> super::StoreResult<Vec<HoldRef>> {
        let rows = sqlx::query(COVERING)
            .bind(document.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                Ok(HoldRef {
                    matter: self.open_column(Column::HoldMatter, &id, r.try_get("matter")?)?,
                    id: parse_id(&id)?,
                })
            })
            .collect()
    }

    async fn hold(&self, id: HoldId) -> super::StoreResult<Option<Hold>> {
        let row = sqlx::query("SELECT * FROM holds WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.hold_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    async fn holds(&self) -> super::StoreResult<Vec<Hold>> {
        let rows = sqlx::query(
            "SELECT * FROM holds ORDER BY released_at IS NOT NULL, created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut holds = Vec::with_capacity(rows.len());
        for row in &rows {
            holds.push(self.hold_from_row(row).await?);
        }
        Ok(holds)
    }

    async fn release_hold(&self, id: HoldId, by: UserId, reason: &str) -> super::StoreResult<bool> {
        let id = id.to_string();
        let sealed = self.phi()?.seal(Column::HoldReleaseReason, &id, reason);
        let done = sqlx::query(
            "UPDATE holds SET released_by = $1, released_at = $2, release_reason = $3
             WHERE id = $4 AND released_at IS NULL",
        )
        .bind(by.to_string())
        .bind(now())
        .bind(sealed)
        .bind(&id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Backend {
    /// Whether any active hold covers the document, inside a transaction that is about to
    /// destroy it (so a hold placed meanwhile still stops the destruction).
    pub(super) async fn held_in(tx: &mut Conn, document: &str) -> super::StoreResult<bool> {
        Ok(sqlx::query(COVERING)
            .bind(document)
            .fetch_optional(&mut *tx)
            .await?
            .is_some())
    }

    async fn hold_from_row(&self, r: &DbRow) -> super::StoreResult<Hold> {
        let id: String = r.try_get("id")?;
        let documents: Vec<String> = sqlx::query_scalar(
            "SELECT document_id FROM hold_documents WHERE hold_id = $1 ORDER BY document_id",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?;
        let query = self
            .open_optional(Column::HoldQuery, &id, r.try_get("query")?)?
            .map(|q| serde_json::from_str(&q).map_err(StoreError::unreadable))
            .transpose()?;
        let released_at: Option<String> = r.try_get("released_at")?;
        Ok(Hold {
            matter: self.open_column(Column::HoldMatter, &id, r.try_get("matter")?)?,
            custodian: self.open_column(Column::HoldCustodian, &id, r.try_get("custodian")?)?,
            reason: self.open_column(Column::HoldReason, &id, r.try_get("reason")?)?,
            scope: HoldScope::parse(r.try_get("scope")?)?,
            patient_id: r
                .try_get::<Option<&str>, _>("patient_id")?
                .map(parse_id)
                .transpose()?,
            query,
            document_ids: documents
                .iter()
                .map(|d| parse_id(d))
                .collect::<super::StoreResult<_>>()?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
            active: released_at.is_none(),
            released_by: r.try_get("released_by")?,
            release_reason: self.open_optional(
                Column::HoldReleaseReason,
                &id,
                r.try_get("release_reason")?,
            )?,
            released_at,
            id: parse_id(&id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, file_bytes, store};
    use super::*;

    fn hold(scope: HoldScope, patient: Option<PatientId>, documents: Vec<DocumentId>) -> NewHold {
        NewHold {
            matter: "Quixotic v. Mercy General".into(),
            custodian: "Records".into(),
            reason: "litigation".into(),
            scope,
            patient_id: patient,
            query: None,
            documents,
            created_by: UserId::new_random(),
        }
    }

    #[tokio::test]
    async fn a_hold_covers_its_patient_or_its_documents_until_it_is_released() {
        let store = store().await;
        let (patient, first) = document_with_job(&store, "H-1").await;
        let (_, other) = document_with_job(&store, "H-2").await;
        let by = store
            .create_user("lee", crate::domain::Role::Legal)
            .await
            .unwrap();

        let on_patient = store
            .insert_hold(&NewHold {
                created_by: by,
                ..hold(HoldScope::Patient, Some(patient), Vec::new())
            })
            .await
            .unwrap();
        let (_, later) = document_with_job(&store, "H-1").await;
        for doc in [first, later] {
            let covering = store.holds_covering(doc).await.unwrap();
            assert_eq!(
                covering.len(),
                1,
                "a patient hold covers what is filed later too"
            );
            assert_eq!(covering[0].id, on_patient);
        }
        assert!(store.holds_covering(other).await.unwrap().is_empty());

        let on_document = store
            .insert_hold(&NewHold {
                created_by: by,
                ..hold(HoldScope::Documents, None, vec![other])
            })
            .await
            .unwrap();
        assert_eq!(
            store.holds_covering(other).await.unwrap()[0].id,
            on_document
        );

        assert!(store
            .release_hold(on_document, by, "settled")
            .await
            .unwrap());
        assert!(!store.release_hold(on_document, by, "again").await.unwrap());
        assert!(store.holds_covering(other).await.unwrap().is_empty());
        let released = store.hold(on_document).await.unwrap().unwrap();
        assert!(!released.active);
        assert_eq!(released.release_reason.as_deref(), Some("settled"));

        store.truncate_wal().await.unwrap();
        let bytes = file_bytes(&store).await;
        for needle in ["Quixotic", "settled"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is in the database file"
            );
        }
    }
}
