//! [`DocumentStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::documents::*;
use crate::store::hl7::OutboxKind;

use super::pages::PageRow;

impl DocumentStore for Backend {
    async fn insert_document_with_job(
        &self,
        tx: &mut Tx,
        doc: &NewDocument,
    ) -> super::StoreResult<()> {
        let at = now();
        let row_id = doc.id.to_string();
        let encounter = match &doc.encounter {
            Some(encounter) => Some(self.phi()?.seal(
                Column::DocumentEncounter,
                &row_id,
                encounter,
            )),
            None => None,
        };
        let sop_index = match &doc.sop_instance_uid {
            Some(uid) => Some(self.phi()?.sop_index(uid)),
            None => None,
        };
        sqlx::query(
            "INSERT INTO documents (id, patient_id, document_type, category, service_date, encounter,
                content_type, sha256, size_bytes, page_count, status, created_at, created_by,
                sop_index, qa_reason, sha1)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'accepted', $11, $12, $13, $14, $15)",
        )
        .bind(doc.id.to_string())
        .bind(doc.patient_id.to_string())
        .bind(&doc.document_type)
        .bind(doc.category.as_str())
        .bind(doc.service_date.map(|d| d.to_string()))
        .bind(encounter)
        .bind(&doc.content_type)
        .bind(&doc.sha256)
        .bind(doc.size_bytes as i64)
        .bind(doc.page_count as i64)
        .bind(&at)
        .bind(doc.created_by.to_string())
        .bind(sop_index)
        .bind(&doc.qa_reason)
        .bind(&doc.sha1)
        .execute(tx.conn())
        .await?;
        sqlx::query(
            "INSERT INTO jobs (document_id, state, created_at, updated_at) VALUES ($1, 'pending', $2, $2)",
        )
        .bind(doc.id.to_string())
        .bind(&at)
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    async fn insert_document_with_pages(
        &self,
        tx: &mut Tx,
        original_key: &crate::store::keys::NewKey,
        doc: &NewDocument,
        pages: &[PageRow],
    ) -> super::StoreResult<()> {
        Backend::insert_key(
            tx,
            &original_key.id.to_hex(),
            original_key.wrapped.kek_version,
            &original_key.wrapped.bytes,
        )
        .await?;
        self.insert_document_with_job(tx, doc).await?;
        for page in pages {
            Backend::insert_page_tx(tx, doc.id, page).await?;
        }
        Ok(())
    }

    async fn document_by_sop_instance(&self, uid: &str) -> super::StoreResult<Option<Document>> {
        let index = self.phi()?.sop_index(uid);
        let row = sqlx::query(
            "SELECT * FROM documents WHERE sop_index = $1 AND status != 'deleted' LIMIT 1",
        )
        .bind(index)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.document_from_row(&row)).transpose()
    }

    async fn record_dicom_instance(
        &self,
        tx: &mut Tx,
        document: DocumentId,
        study_instance_uid: &str,
        series_instance_uid: &str,
        metadata: &serde_json::Value,
    ) -> super::StoreResult<()> {
        let phi = self.phi()?;
        let row_id = document.to_string();
        sqlx::query(
            "INSERT INTO dicom_instances (document_id, study_index, series_index, metadata,
                created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (document_id) DO UPDATE SET study_index = excluded.study_index,
                series_index = excluded.series_index, metadata = excluded.metadata",
        )
        .bind(&row_id)
        .bind(phi.study_index(study_instance_uid))
        .bind(phi.series_index(series_instance_uid))
        .bind(phi.seal(Column::DicomMetadata, &row_id, &metadata.to_string()))
        .bind(now())
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    async fn dicom_instances(
        &self,
        lookup: DicomLookup<'_>,
    ) -> super::StoreResult<Vec<DicomInstance>> {
        let rows: Vec<(String, Vec<u8>)> = match lookup {
            DicomLookup::Documents(ids) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    rows.extend(
                        sqlx::query_as(
                            "SELECT document_id, metadata FROM dicom_instances
                             WHERE document_id = $1",
                        )
                        .bind(id.to_string())
                        .fetch_optional(&self.pool)
                        .await?,
                    );
                }
                rows
            }
            DicomLookup::Study(uid) => {
                sqlx::query_as(
                    "SELECT document_id, metadata FROM dicom_instances WHERE study_index = $1
                     ORDER BY document_id",
                )
                .bind(self.phi()?.study_index(uid))
                .fetch_all(&self.pool)
                .await?
            }
            DicomLookup::All => {
                sqlx::query_as(
                    "SELECT document_id, metadata FROM dicom_instances ORDER BY document_id",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        let phi = self.phi()?;
        rows.into_iter()
            .map(|(id, sealed)| {
                let json = phi
                    .open(Column::DicomMetadata, &id, &sealed)
                    .map_err(StoreError::unreadable)?;
                Ok(DicomInstance {
                    document_id: parse_id(&id)?,
                    metadata: serde_json::from_str(&json).map_err(StoreError::unreadable)?,
                })
            })
            .collect()
    }

    async fn dicom_documents_without_instance(
        &self,
        after: Option<DocumentId>,
        limit: u32,
    ) -> super::StoreResult<Vec<DocumentId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM documents d WHERE content_type = 'application/dicom'
                AND status != 'deleted' AND id > $1
                AND NOT EXISTS (SELECT 1 FROM dicom_instances i WHERE i.document_id = d.id)
             ORDER BY id LIMIT $2",
        )
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    async fn documents_without_sha1(
        &self,
        after: Option<DocumentId>,
        limit: u32,
    ) -> super::StoreResult<Vec<DocumentId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM documents WHERE sha1 IS NULL AND status != 'deleted' AND id > $1
             ORDER BY id LIMIT $2",
        )
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    async fn set_sha1(&self, id: DocumentId, sha1: &str) -> super::StoreResult<()> {
        sqlx::query("UPDATE documents SET sha1 = $1 WHERE id = $2 AND sha1 IS NULL")
            .bind(sha1)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_qa_reason(&self, id: DocumentId, reason: &str) -> super::StoreResult<()> {
        sqlx::query("UPDATE documents SET qa_reason = $1 WHERE id = $2 AND qa_reason IS NULL")
            .bind(reason)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_notice(&self, id: DocumentId, notice: &str) -> super::StoreResult<()> {
        sqlx::query("UPDATE documents SET notice = $1 WHERE id = $2")
            .bind(notice)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn supersede(
        &self,
        tx: &mut Tx,
        old: DocumentId,
        new: DocumentId,
        by: UserId,
        reason: &str,
    ) -> super::StoreResult<bool> {
        let old_id = old.to_string();
        let sealed = self
            .phi()?
            .seal(Column::DocumentCorrectionReason, &old_id, reason);
        let sop_index: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sop_index FROM documents WHERE id = $1")
                .bind(&old_id)
                .fetch_optional(tx.conn())
                .await?
                .flatten();
        let done = sqlx::query(
            "UPDATE documents SET superseded_by = $1, entered_in_error_at = $2,
                entered_in_error_by = $3, correction_reason = $4, sop_index = NULL
             WHERE id = $5 AND status = 'indexed' AND qa_reason IS NULL
                AND entered_in_error_at IS NULL",
        )
        .bind(new.to_string())
        .bind(now())
        .bind(by.to_string())
        .bind(sealed)
        .bind(&old_id)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        // Committed by the caller: the sender finds it on its next look.
        self.enqueue_outbox(tx.conn(), OutboxKind::Cancelled, old, Some(new))
            .await?;
        sqlx::query(
            "UPDATE documents SET supersedes = $1, sop_index = $2,
                notice = (SELECT notice FROM documents WHERE id = $1)
             WHERE id = $3",
        )
        .bind(&old_id)
        .bind(sop_index)
        .bind(new.to_string())
        .execute(tx.conn())
        .await?;
        // The instance is the new version's (its data set sealed again, under its row).
        let instance: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT study_index, series_index, metadata FROM dicom_instances
             WHERE document_id = $1",
        )
        .bind(&old_id)
        .fetch_optional(tx.conn())
        .await?;
        if let Some((study_index, series_index, sealed)) = instance {
            let phi = self.phi()?;
            let metadata = phi
                .open(Column::DicomMetadata, &old_id, &sealed)
                .map_err(StoreError::unreadable)?;
            let new_id = new.to_string();
            sqlx::query(
                "INSERT INTO dicom_instances (document_id, study_index,
                    series_index, metadata, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&new_id)
            .bind(study_index)
            .bind(series_index)
            .bind(phi.seal(Column::DicomMetadata, &new_id, &metadata))
            .bind(now())
            .execute(tx.conn())
            .await?;
            sqlx::query("DELETE FROM dicom_instances WHERE document_id = $1")
                .bind(&old_id)
                .execute(tx.conn())
                .await?;
        }
        Ok(true)
    }

    async fn resolve_qa(
        &self,
        id: DocumentId,
        patient: PatientId,
        document_type: &str,
        service_date: Option<NaiveDate>,
    ) -> super::StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE documents SET qa_reason = NULL, patient_id = $1, document_type = $2,
                service_date = $3
             WHERE id = $4 AND status = 'indexed' AND qa_reason IS NOT NULL",
        )
        .bind(patient.to_string())
        .bind(document_type)
        .bind(service_date.map(|d| d.to_string()))
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let announced = self
            .enqueue_outbox(tx.conn(), OutboxKind::Available, id, None)
            .await?;
        tx.commit().await?;
        if announced {
            self.outbox_waiting.notify_one();
        }
        Ok(true)
    }

    async fn qa_documents(&self) -> super::StoreResult<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents WHERE status = 'indexed' AND qa_reason IS NOT NULL
             ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.document_from_row(row)).collect()
    }

    async fn documents_with_status(
        &self,
        status: DocumentStatus,
    ) -> super::StoreResult<Vec<Document>> {
        let rows = sqlx::query("SELECT * FROM documents WHERE status = $1 ORDER BY created_at, id")
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| self.document_from_row(row)).collect()
    }

    async fn stored_labels(
        &self,
    ) -> super::StoreResult<Vec<(DocumentId, String, String, String, bool)>> {
        let rows = sqlx::query(
            "SELECT id, status, document_type, category, entered_in_error_at FROM documents
             WHERE status != 'deleted'",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    parse_id(row.try_get::<&str, _>("id")?)?,
                    row.try_get("status")?,
                    row.try_get("document_type")?,
                    row.try_get("category")?,
                    row.try_get::<Option<String>, _>("entered_in_error_at")?
                        .is_some(),
                ))
            })
            .collect()
    }

    async fn set_labels(
        &self,
        id: DocumentId,
        document_type: &str,
        category: &str,
        qa_reason: Option<&str>,
    ) -> super::StoreResult<()> {
        sqlx::query(
            "UPDATE documents SET document_type = $1, category = $2,
                qa_reason = coalesce(qa_reason, $3)
             WHERE id = $4",
        )
        .bind(document_type)
        .bind(category)
        .bind(qa_reason)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn records_only_document_ids(&self) -> super::StoreResult<Vec<DocumentId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM documents WHERE qa_reason IS NOT NULL AND status != 'deleted'",
        )
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    async fn document(&self, id: DocumentId) -> super::StoreResult<Option<Document>> {
        let row = sqlx::query("SELECT * FROM documents WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.document_from_row(&r)).transpose()
    }

    async fn document_by_sha256(
        &self,
        patient: PatientId,
        sha256: &str,
    ) -> super::StoreResult<Option<Document>> {
        let row = sqlx::query(
            "SELECT * FROM documents WHERE patient_id = $1 AND sha256 = $2 AND status != 'deleted'
                AND entered_in_error_at IS NULL
             ORDER BY created_at LIMIT 1",
        )
        .bind(patient.to_string())
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| self.document_from_row(&r)).transpose()
    }

    async fn documents_of_patient(&self, patient: PatientId) -> super::StoreResult<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents WHERE patient_id = $1 ORDER BY service_date DESC, created_at DESC",
        )
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.document_from_row(r)).collect()
    }

    async fn tombstone_document(
        &self,
        documents: &[(DocumentId, Vec<String>)],
        batch_originals: &[(BatchId, String)],
        destroyable: &[DocumentStatus],
        by: &str,
        reason: &str,
        certificate: Option<&NewCertificate>,
    ) -> super::StoreResult<bool> {
        let states: Vec<&str> = destroyable.iter().map(|s| s.as_str()).collect();
        let mut tx = self.begin().await?;
        for (id, key_ids) in documents {
            if !self
                .tombstone_in(&mut tx, *id, &states, key_ids, by, reason)
                .await?
            {
                return Ok(false);
            }
        }
        for (batch, key_id) in batch_originals {
            Backend::destroy_batch_original_in(&mut tx, *batch, key_id).await?;
        }
        if let Some(certificate) = certificate {
            Backend::insert_certificate(tx.conn(), certificate).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn unpurged_tombstones(&self) -> super::StoreResult<Vec<DocumentId>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM documents WHERE status = 'deleted' AND purged_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|id| parse_id(id)).collect()
    }

    async fn mark_purged(&self, id: DocumentId) -> super::StoreResult<()> {
        sqlx::query("UPDATE documents SET purged_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_status(
        &self,
        id: DocumentId,
        status: DocumentStatus,
        failure_reason: Option<&str>,
    ) -> super::StoreResult<()> {
        sqlx::query("UPDATE documents SET status = $1, failure_reason = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(failure_reason)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Backend {
    pub(super) fn document_from_row(&self, row: &DbRow) -> super::StoreResult<Document> {
        let status: String = row.try_get("status")?;
        let id: String = row.try_get("id")?;
        let qa_reason: Option<String> = row.try_get("qa_reason")?;
        // In the database a document in the QA queue is `indexed` with a `qa_reason`.
        // And a version entered in error is `indexed` with `entered_in_error_at`.
        let entered_in_error_at: Option<String> = row.try_get("entered_in_error_at")?;
        let status = match DocumentStatus::from_str(&status).map_err(decode_err)? {
            DocumentStatus::Indexed if entered_in_error_at.is_some() => {
                DocumentStatus::EnteredInError
            }
            DocumentStatus::Indexed if qa_reason.is_some() => DocumentStatus::Qa,
            status => status,
        };
        let optional_id = |column: &str| -> super::StoreResult<Option<DocumentId>> {
            row.try_get::<Option<String>, _>(column)?
                .map(|id| parse_id(&id))
                .transpose()
        };
        Ok(Document {
            id: parse_id(&id)?,
            patient_id: parse_id(row.try_get::<&str, _>("patient_id")?)?,
            document_type: row.try_get("document_type")?,
            category: Category::from_stored(row.try_get("category")?),
            service_date: parse_date(row.try_get("service_date")?)?,
            encounter: self.open_optional(
                Column::DocumentEncounter,
                &id,
                row.try_get("encounter")?,
            )?,
            content_type: row.try_get("content_type")?,
            sha256: row.try_get("sha256")?,
            sha1: row.try_get("sha1")?,
            size_bytes: row.try_get("size_bytes")?,
            page_count: row.try_get::<i64, _>("page_count")? as u32,
            status,
            failure_reason: row.try_get("failure_reason")?,
            created_at: row.try_get("created_at")?,
            indexed_at: row.try_get("indexed_at")?,
            deleted_at: row.try_get("deleted_at")?,
            deleted_by: row.try_get("deleted_by")?,
            deletion_reason: self.open_optional(
                Column::DocumentDeletionReason,
                &id,
                row.try_get("deletion_reason")?,
            )?,
            qa_reason,
            notice: row.try_get("notice")?,
            supersedes: optional_id("supersedes")?,
            superseded_by: optional_id("superseded_by")?,
            entered_in_error_at,
            entered_in_error_by: row.try_get("entered_in_error_by")?,
            correction_reason: self.open_optional(
                Column::DocumentCorrectionReason,
                &id,
                row.try_get("correction_reason")?,
            )?,
        })
    }

    /// Turns a document into its tombstone, in the caller's transaction: its keyring rows
    /// (the keys of `key_ids`) and page rows are deleted, so from the commit on nothing of
    /// it can be decrypted; id, sha256, when, who and the sealed reason remain. Only a
    /// document in one of `destroyable` states and under no active legal hold is changed;
    /// returns false (and changes nothing) otherwise.
    pub(super) async fn tombstone_in(
        &self,
        tx: &mut Tx,
        id: DocumentId,
        states: &[&str],
        key_ids: &[String],
        by: &str,
        reason: &str,
    ) -> super::StoreResult<bool> {
        let row_id = id.to_string();
        let sealed_reason = self
            .phi()?
            .seal(Column::DocumentDeletionReason, &row_id, reason);
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM documents WHERE id = $1")
                .bind(&row_id)
                .fetch_optional(tx.conn())
                .await?;
        if !current.is_some_and(|status| states.contains(&status.as_str())) {
            return Ok(false);
        }
        // A hold placed since the caller checked still stops the destruction.
        if Backend::held_in(tx.conn(), &row_id).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE documents SET status = 'deleted', deleted_at = $1, deleted_by = $2,
                deletion_reason = $3, encounter = NULL, failure_reason = NULL,
                correction_reason = NULL
             WHERE id = $4",
        )
        .bind(now())
        .bind(by)
        .bind(sealed_reason)
        .bind(&row_id)
        .execute(tx.conn())
        .await?;
        // Committed by the caller: the sender finds it on its next look.
        self.enqueue_outbox(tx.conn(), OutboxKind::Cancelled, id, None)
            .await?;
        for key_id in key_ids {
            sqlx::query("DELETE FROM keyring WHERE key_id = $1")
                .bind(key_id)
                .execute(tx.conn())
                .await?;
        }
        sqlx::query("DELETE FROM pages WHERE document_id = $1")
            .bind(&row_id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM dicom_instances WHERE document_id = $1")
            .bind(&row_id)
            .execute(tx.conn())
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, store};
    use super::*;
    use crate::store::holds::{HoldScope, NewHold};

    #[tokio::test]
    async fn a_tombstone_keeps_only_what_says_a_document_was_destroyed_and_a_hold_stops_it() {
        let store = store().await;
        let (patient, doc) = document_with_job(&store, "T-1").await;
        let (_, held) = document_with_job(&store, "T-1").await;
        let destroyable = [DocumentStatus::Indexed, DocumentStatus::Failed];
        let by = UserId::new_random().to_string();

        // Still waiting for its OCR: not destroyable.
        assert!(!store
            .tombstone_document(&[(doc, Vec::new())], &[], &destroyable, &by, "r", None)
            .await
            .unwrap());
        for id in [doc, held] {
            store
                .set_status(id, DocumentStatus::Indexed, None)
                .await
                .unwrap();
        }
        let lee = store.create_user("lee", Role::Legal).await.unwrap();
        store
            .insert_hold(&NewHold {
                matter: "m".into(),
                custodian: "c".into(),
                reason: "r".into(),
                scope: HoldScope::Documents,
                patient_id: None,
                query: None,
                documents: vec![held],
                created_by: lee,
            })
            .await
            .unwrap();
        // Both at once, one of them held: neither is destroyed.
        assert!(!store
            .tombstone_document(
                &[(doc, Vec::new()), (held, Vec::new())],
                &[],
                &destroyable,
                &by,
                "r",
                None
            )
            .await
            .unwrap());
        assert_eq!(
            store.document(doc).await.unwrap().unwrap().status,
            DocumentStatus::Indexed
        );

        assert!(store
            .tombstone_document(
                &[(doc, Vec::new())],
                &[],
                &destroyable,
                &by,
                "duplicate",
                None
            )
            .await
            .unwrap());
        let tombstone = store.document(doc).await.unwrap().unwrap();
        assert_eq!(tombstone.status, DocumentStatus::Deleted);
        assert_eq!(tombstone.patient_id, patient);
        assert!(store.pages(doc).await.unwrap().is_empty());
        assert_eq!(store.unpurged_tombstones().await.unwrap(), vec![doc]);
        store.mark_purged(doc).await.unwrap();
        assert!(store.unpurged_tombstones().await.unwrap().is_empty());
    }
}
