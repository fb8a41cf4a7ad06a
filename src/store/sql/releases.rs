//! [`ReleaseStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::releases::*;

use crate::domain::{DocumentId, ProductionId, ReleaseId, UserId};
use crate::store::phi::Column;
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::Row;

fn json_list(raw: &str) -> super::StoreResult<Vec<String>> {
    serde_json::from_str(raw).map_err(StoreError::unreadable)
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

impl ReleaseStore for Backend {
    async fn insert_release(&self, release: &NewRelease) -> super::StoreResult<ReleaseId> {
        let release_id = ReleaseId::new_random();
        let id = release_id.to_string();
        let details = self
            .phi()?
            .seal(Column::ReleaseDetails, &id, &to_json(&release.details));
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO releases (id, legal_basis, details, received_on, due_on, date_from,
                date_to, document_types, categories, authorizations, bates_prefix, created_by,
                created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(release.legal_basis.as_str())
        .bind(details)
        .bind(release.received_on.to_string())
        .bind(release.due_on.to_string())
        .bind(release.date_from.map(|d| d.to_string()))
        .bind(release.date_to.map(|d| d.to_string()))
        .bind(to_json(&release.document_types))
        .bind(to_json(&release.categories))
        .bind(to_json(&release.authorizations))
        .bind(&release.bates_prefix)
        .bind(release.created_by.to_string())
        .bind(now())
        .execute(tx.conn())
        .await?;
        for patient in &release.patients {
            sqlx::query(
                "INSERT INTO release_patients (release_id, patient_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(patient.to_string())
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(release_id)
    }

    async fn release(&self, id: ReleaseId) -> super::StoreResult<Option<Release>> {
        let row = sqlx::query("SELECT * FROM releases WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.release_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    async fn releases(&self) -> super::StoreResult<Vec<Release>> {
        let rows = sqlx::query("SELECT * FROM releases ORDER BY due_on, created_at")
            .fetch_all(&self.pool)
            .await?;
        let mut releases = Vec::with_capacity(rows.len());
        for row in &rows {
            releases.push(self.release_from_row(row).await?);
        }
        Ok(releases)
    }

    async fn extend_release(
        &self,
        id: ReleaseId,
        due_on: NaiveDate,
        reason: &str,
    ) -> super::StoreResult<bool> {
        let id = id.to_string();
        let sealed = self
            .phi()?
            .seal(Column::ReleaseExtensionReason, &id, reason);
        let done = sqlx::query(
            "UPDATE releases SET due_on = $1, extended_at = $2, extension_reason = $3
             WHERE id = $4 AND extended_at IS NULL",
        )
        .bind(due_on.to_string())
        .bind(now())
        .bind(sealed)
        .bind(&id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_attachment(
        &self,
        release: ReleaseId,
        attachment: &Attachment,
        authorizes: bool,
    ) -> super::StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO release_attachments (id, release_id, kind, content_type, sha256,
                size_bytes, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(attachment.id.to_string())
        .bind(release.to_string())
        .bind(&attachment.kind)
        .bind(&attachment.content_type)
        .bind(&attachment.sha256)
        .bind(attachment.size_bytes)
        .bind(&attachment.created_by)
        .bind(&attachment.created_at)
        .execute(tx.conn())
        .await?;
        if authorizes {
            let current: String =
                sqlx::query_scalar("SELECT authorizations FROM releases WHERE id = $1")
                    .bind(release.to_string())
                    .fetch_one(tx.conn())
                    .await?;
            let mut list = json_list(&current)?;
            if !list.contains(&attachment.kind) {
                list.push(attachment.kind.clone());
                sqlx::query("UPDATE releases SET authorizations = $1 WHERE id = $2")
                    .bind(to_json(&list))
                    .bind(release.to_string())
                    .execute(tx.conn())
                    .await?;
            }
        }
        tx.commit().await
    }

    async fn attachments(&self, release: ReleaseId) -> super::StoreResult<Vec<Attachment>> {
        let rows = sqlx::query(
            "SELECT * FROM release_attachments WHERE release_id = $1 ORDER BY created_at, id",
        )
        .bind(release.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attachment {
                    id: parse_id(r.try_get::<&str, _>("id")?)?,
                    kind: r.try_get("kind")?,
                    content_type: r.try_get("content_type")?,
                    sha256: r.try_get("sha256")?,
                    size_bytes: r.try_get("size_bytes")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn insert_exclusions(
        &self,
        release: ReleaseId,
        documents: &[DocumentId],
        reason: &str,
        by: UserId,
    ) -> super::StoreResult<()> {
        let phi = self.phi()?;
        let mut tx = self.begin().await?;
        for document in documents {
            let row_id = format!("{release}:{document}");
            sqlx::query(
                "INSERT INTO release_exclusions (release_id, document_id, reason, created_by,
                    created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(release.to_string())
            .bind(document.to_string())
            .bind(phi.seal(Column::ReleaseExclusionReason, &row_id, reason))
            .bind(by.to_string())
            .bind(now())
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }

    async fn exclusions(&self, release: ReleaseId) -> super::StoreResult<Vec<Exclusion>> {
        let rows = sqlx::query(
            "SELECT * FROM release_exclusions WHERE release_id = $1 ORDER BY created_at",
        )
        .bind(release.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let document: String = r.try_get("document_id")?;
                let row_id = format!("{release}:{document}");
                Ok(Exclusion {
                    reason: self.open_column(
                        Column::ReleaseExclusionReason,
                        &row_id,
                        r.try_get("reason")?,
                    )?,
                    document_id: parse_id(&document)?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn insert_redaction(
        &self,
        release: ReleaseId,
        document: DocumentId,
        page: u32,
        regions: &[Region],
        whole_page: bool,
        by: UserId,
    ) -> super::StoreResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO release_redactions (id, release_id, document_id, page, regions,
                whole_page, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(release.to_string())
        .bind(document.to_string())
        .bind(i64::from(page))
        .bind(to_json(&regions))
        .bind(whole_page)
        .bind(by.to_string())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    async fn redactions(&self, release: ReleaseId) -> super::StoreResult<Vec<Redaction>> {
        let rows = sqlx::query(
            "SELECT * FROM release_redactions WHERE release_id = $1
             ORDER BY document_id, page, created_at",
        )
        .bind(release.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let regions: String = r.try_get("regions")?;
                Ok(Redaction {
                    id: r.try_get("id")?,
                    document_id: parse_id(r.try_get::<&str, _>("document_id")?)?,
                    page: r.try_get::<i64, _>("page")? as u32,
                    regions: serde_json::from_str(&regions).map_err(StoreError::unreadable)?,
                    whole_page: r.try_get("whole_page")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn delete_redaction(&self, release: ReleaseId, id: &str) -> super::StoreResult<bool> {
        let done = sqlx::query("DELETE FROM release_redactions WHERE release_id = $1 AND id = $2")
            .bind(release.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_exclusions(
        &self,
        release: ReleaseId,
        documents: &[DocumentId],
    ) -> super::StoreResult<u64> {
        let mut removed = 0;
        let mut tx = self.begin().await?;
        for document in documents {
            removed += sqlx::query(
                "DELETE FROM release_exclusions WHERE release_id = $1 AND document_id = $2",
            )
            .bind(release.to_string())
            .bind(document.to_string())
            .execute(tx.conn())
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn bates_next(&self, prefix: &str) -> super::StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT next FROM bates_counters WHERE prefix = $1")
                .bind(prefix)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(1),
        )
    }

    async fn insert_production(
        &self,
        p: &NewProduction,
        disclosures: &[super::disclosures::NewDisclosure],
    ) -> super::StoreResult<bool> {
        let id = p.id.to_string();
        let custodian = p
            .custodian
            .as_deref()
            .map(|c| {
                self.phi()
                    .map(|phi| phi.seal(Column::ProductionCustodian, &id, c))
            })
            .transpose()?;
        let mut tx = self.begin_immediate().await?;
        let (prefix, first, last) = match &p.bates {
            Some((prefix, first)) => {
                let next: i64 =
                    sqlx::query_scalar("SELECT next FROM bates_counters WHERE prefix = $1")
                        .bind(prefix)
                        .fetch_optional(tx.conn())
                        .await?
                        .unwrap_or(1);
                if next != *first {
                    return Ok(false);
                }
                let last = first + i64::from(p.record_pages) - 1;
                sqlx::query(
                    "INSERT INTO bates_counters (prefix, next) VALUES ($1, $2)
                     ON CONFLICT (prefix) DO UPDATE SET next = excluded.next",
                )
                .bind(prefix)
                .bind(last + 1)
                .execute(tx.conn())
                .await?;
                (Some(prefix.clone()), Some(*first), Some(last))
            }
            None => (None, None, None),
        };
        sqlx::query(
            "INSERT INTO productions (id, release_id, bates_prefix, bates_first, bates_last,
                record_pages, pdf_pages, documents, certified, custodian, sha256, size_bytes,
                manifest, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&id)
        .bind(p.release_id.to_string())
        .bind(prefix)
        .bind(first)
        .bind(last)
        .bind(i64::from(p.record_pages))
        .bind(i64::from(p.pdf_pages))
        .bind(i64::from(p.documents))
        .bind(p.certified)
        .bind(custodian)
        .bind(&p.sha256)
        .bind(p.size_bytes as i64)
        .bind(&p.manifest)
        .bind(p.created_by.to_string())
        .bind(now())
        .execute(tx.conn())
        .await?;
        for disclosure in disclosures {
            self.insert_disclosure_tx(&mut tx, disclosure).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn productions(&self, release: ReleaseId) -> super::StoreResult<Vec<Production>> {
        let rows =
            sqlx::query("SELECT * FROM productions WHERE release_id = $1 ORDER BY created_at, id")
                .bind(release.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| self.production_from_row(r)).collect()
    }

    async fn production(
        &self,
        id: ProductionId,
    ) -> super::StoreResult<Option<(Production, String)>> {
        let row = sqlx::query("SELECT * FROM productions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((self.production_from_row(&r)?, r.try_get("manifest")?)))
            .transpose()
    }

    async fn release_object_exists(&self, id: uuid::Uuid) -> super::StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM release_attachments WHERE id = $1)
                  + (SELECT count(*) FROM productions WHERE id = $1)",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}

impl Backend {
    async fn release_from_row(&self, r: &DbRow) -> super::StoreResult<Release> {
        let id: String = r.try_get("id")?;
        let details = self.open_column(Column::ReleaseDetails, &id, r.try_get("details")?)?;
        let details: ReleaseDetails =
            serde_json::from_str(&details).map_err(StoreError::unreadable)?;
        let patients: Vec<String> = sqlx::query_scalar(
            "SELECT patient_id FROM release_patients WHERE release_id = $1 ORDER BY patient_id",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Release {
            legal_basis: r
                .try_get::<&str, _>("legal_basis")?
                .parse()
                .map_err(decode_err)?,
            details,
            received_on: parse_date(r.try_get("received_on")?)?
                .ok_or_else(|| super::decode_err("a release has no received date".into()))?,
            due_on: parse_date(r.try_get("due_on")?)?
                .ok_or_else(|| super::decode_err("a release has no due date".into()))?,
            extended_at: r.try_get("extended_at")?,
            extension_reason: self.open_optional(
                Column::ReleaseExtensionReason,
                &id,
                r.try_get("extension_reason")?,
            )?,
            date_from: parse_date(r.try_get("date_from")?)?,
            date_to: parse_date(r.try_get("date_to")?)?,
            document_types: json_list(r.try_get("document_types")?)?,
            categories: json_list(r.try_get("categories")?)?,
            authorizations: json_list(r.try_get("authorizations")?)?,
            bates_prefix: r.try_get("bates_prefix")?,
            patient_ids: patients
                .iter()
                .map(|p| parse_id(p))
                .collect::<super::StoreResult<_>>()?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
            id: parse_id(&id)?,
        })
    }

    fn production_from_row(&self, r: &DbRow) -> super::StoreResult<Production> {
        let id: String = r.try_get("id")?;
        Ok(Production {
            custodian: self.open_optional(
                Column::ProductionCustodian,
                &id,
                r.try_get("custodian")?,
            )?,
            id: parse_id(&id)?,
            release_id: parse_id(r.try_get::<&str, _>("release_id")?)?,
            bates_prefix: r.try_get("bates_prefix")?,
            bates_first: r.try_get("bates_first")?,
            bates_last: r.try_get("bates_last")?,
            record_pages: r.try_get::<i64, _>("record_pages")? as u32,
            pdf_pages: r.try_get::<i64, _>("pdf_pages")? as u32,
            documents: r.try_get::<i64, _>("documents")? as u32,
            certified: r.try_get("certified")?,
            sha256: r.try_get("sha256")?,
            size_bytes: r.try_get("size_bytes")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{document_with_job, file_bytes, store};
    use super::*;
    use crate::domain::{AttachmentId, LegalBasis, Role};
    use crate::store::disclosures::{DisclosureSource, NewDisclosure};

    fn party(name: &str) -> Party {
        Party {
            name: name.into(),
            organization: None,
            address: Some("12 Quince Lane".into()),
        }
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_release_keeps_its_sealed_details_exclusions_and_redactions() {
        let store = store().await;
        let (patient, doc) = document_with_job(&store, "R-1").await;
        let by = store.create_user("lee", Role::Legal).await.unwrap();
        let id = store
            .insert_release(&NewRelease {
                legal_basis: LegalBasis::PatientAccess,
                details: ReleaseDetails {
                    requester: party("Ottoline Brackenbury"),
                    recipient: party("Ottoline Brackenbury"),
                    matter: None,
                    description: Some("all notes since 1998".into()),
                    satisfactory_assurances: None,
                },
                received_on: day("2026-11-02"),
                due_on: day("2026-12-02"),
                date_from: None,
                date_to: None,
                document_types: vec!["progress-note".into()],
                categories: Vec::new(),
                authorizations: Vec::new(),
                bates_prefix: "MERCY".into(),
                patients: vec![patient],
                created_by: by,
            })
            .await
            .unwrap();
        let release = store.release(id).await.unwrap().unwrap();
        assert_eq!(release.details.requester.name, "Ottoline Brackenbury");
        assert_eq!(release.patient_ids, vec![patient]);
        assert_eq!(store.releases().await.unwrap().len(), 1);

        // A patient-access request is extended once.
        assert!(store
            .extend_release(id, day("2027-01-01"), "records in storage")
            .await
            .unwrap());
        assert!(!store
            .extend_release(id, day("2027-02-01"), "again")
            .await
            .unwrap());
        assert_eq!(
            store.release(id).await.unwrap().unwrap().due_on,
            day("2027-01-01")
        );

        // An authorising attachment adds its kind to the release's authorisations, once.
        for _ in 0..2 {
            let attachment = Attachment {
                id: AttachmentId::new_random(),
                kind: "patient-authorization".into(),
                content_type: "application/pdf".into(),
                sha256: "ab".repeat(32),
                size_bytes: 100,
                created_by: by.to_string(),
                created_at: now(),
            };
            store
                .insert_attachment(id, &attachment, true)
                .await
                .unwrap();
            assert!(store.release_object_exists(attachment.id.0).await.unwrap());
        }
        assert_eq!(store.attachments(id).await.unwrap().len(), 2);
        assert_eq!(
            store.release(id).await.unwrap().unwrap().authorizations,
            ["patient-authorization"]
        );

        store
            .insert_exclusions(id, &[doc], "not requested", by)
            .await
            .unwrap();
        assert_eq!(store.exclusions(id).await.unwrap()[0].document_id, doc);
        assert_eq!(store.delete_exclusions(id, &[doc]).await.unwrap(), 1);
        assert!(store.exclusions(id).await.unwrap().is_empty());

        let region = Region {
            left: 10,
            top: 20,
            width: 300,
            height: 40,
        };
        let redaction = store
            .insert_redaction(id, doc, 1, &[region], false, by)
            .await
            .unwrap();
        let redactions = store.redactions(id).await.unwrap();
        assert_eq!(
            (
                redactions[0].document_id,
                redactions[0].page,
                redactions[0].regions.clone()
            ),
            (doc, 1, vec![region])
        );
        assert!(store.delete_redaction(id, &redaction).await.unwrap());
        assert!(!store.delete_redaction(id, &redaction).await.unwrap());

        store.truncate_wal().await.unwrap();
        let bytes = file_bytes(&store).await;
        for needle in ["Brackenbury", "Quince", "since 1998"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is in the database file"
            );
        }
    }

    #[tokio::test]
    async fn a_production_takes_its_bates_numbers_once_and_records_its_disclosures() {
        let store = store().await;
        let (patient, doc) = document_with_job(&store, "R-2").await;
        let by = store.create_user("lee", Role::Legal).await.unwrap();
        let release = store
            .insert_release(&NewRelease {
                legal_basis: LegalBasis::Subpoena,
                details: ReleaseDetails {
                    requester: party("Counsel"),
                    recipient: party("Counsel"),
                    matter: Some("Doe v. Mercy".into()),
                    description: None,
                    satisfactory_assurances: None,
                },
                received_on: day("2026-11-02"),
                due_on: day("2026-11-30"),
                date_from: None,
                date_to: None,
                document_types: Vec::new(),
                categories: Vec::new(),
                authorizations: Vec::new(),
                bates_prefix: "MERCY".into(),
                patients: vec![patient],
                created_by: by,
            })
            .await
            .unwrap();
        let production = |first: i64| NewProduction {
            id: ProductionId::new_random(),
            release_id: release,
            bates: Some(("MERCY".into(), first)),
            record_pages: 3,
            pdf_pages: 4,
            documents: 1,
            certified: true,
            custodian: Some("Hortensia Vallejo".into()),
            sha256: "cd".repeat(32),
            size_bytes: 5000,
            manifest: "{}".into(),
            created_by: by,
        };
        let disclosure = NewDisclosure {
            patient_id: patient,
            disclosed_at: day("2026-11-20"),
            document_ids: vec![doc],
            recipient_name: "Counsel".into(),
            recipient_address: None,
            description: "production".into(),
            purpose: "subpoena".into(),
            source: DisclosureSource::Production,
            recorded_by: by,
        };

        assert_eq!(store.bates_next("MERCY").await.unwrap(), 1);
        let first = production(1);
        assert!(store
            .insert_production(&first, std::slice::from_ref(&disclosure))
            .await
            .unwrap());
        assert_eq!(store.bates_next("MERCY").await.unwrap(), 4);
        // A production that counted on numbers another one took records nothing.
        let late = production(1);
        assert!(!store
            .insert_production(&late, std::slice::from_ref(&disclosure))
            .await
            .unwrap());
        assert!(store.production(late.id).await.unwrap().is_none());
        assert_eq!(
            store
                .disclosures_of_patient(patient, day("2026-01-01"))
                .await
                .unwrap()
                .len(),
            1,
            "the refused production made no disclosure"
        );

        let (stored, manifest) = store.production(first.id).await.unwrap().unwrap();
        assert_eq!(
            (
                stored.bates_first,
                stored.bates_last,
                stored.custodian.as_deref()
            ),
            (Some(1), Some(3), Some("Hortensia Vallejo"))
        );
        assert_eq!(manifest, "{}");
        assert_eq!(store.productions(release).await.unwrap().len(), 1);
        assert!(store.release_object_exists(first.id.0).await.unwrap());
        assert!(!store.release_object_exists(late.id.0).await.unwrap());

        store.truncate_wal().await.unwrap();
        let bytes = file_bytes(&store).await;
        assert!(
            !bytes.windows(9).any(|w| w == b"Hortensia"),
            "the custodian is sealed"
        );
    }
}
