//! [`ResealStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::reseal::*;

use crate::domain::Mrn;
use crate::store::phi::{is_sealed, Column};
use sqlx::Row;

/// The first 8 bytes of a version 1 object: "CVAULT", NUL, 1.
/// One sealed column: where it lives, how its row id (part of its associated data) is made,
/// and the trigger that forbids updating its table, if any.
struct SealedColumn {
    table: &'static str,
    column: &'static str,
    sealed: Option<Column>,
    /// The row's key columns; the row id is their values joined with ':'.
    key: &'static [&'static str],
    no_update_trigger: Option<&'static str>,
}

const V1_MAGIC: &[u8; 8] = b"CVAULT\0\x01";

const fn phi(
    table: &'static str,
    column: &'static str,
    sealed: Column,
    key: &'static [&'static str],
    no_update_trigger: Option<&'static str>,
) -> SealedColumn {
    SealedColumn {
        table,
        column,
        sealed: Some(sealed),
        key,
        no_update_trigger,
    }
}

const ID: &[&str] = &["id"];

/// Every sealed column (the audit log's last: `sealed: None` means the audit cipher).
const COLUMNS: &[SealedColumn] = &[
    phi("patients", "mrn", Column::PatientMrn, ID, None),
    phi("patients", "name", Column::PatientName, ID, None),
    phi("patients", "birth_date", Column::PatientBirthDate, ID, None),
    phi(
        "encounters",
        "visit_number",
        Column::EncounterVisitNumber,
        ID,
        None,
    ),
    phi(
        "encounters",
        "admitted_at",
        Column::EncounterAdmittedAt,
        ID,
        None,
    ),
    phi(
        "encounters",
        "discharged_at",
        Column::EncounterDischargedAt,
        ID,
        None,
    ),
    phi(
        "dicom_instances",
        "metadata",
        Column::DicomMetadata,
        &["document_id"],
        None,
    ),
    phi(
        "documents",
        "encounter",
        Column::DocumentEncounter,
        ID,
        None,
    ),
    phi(
        "documents",
        "deletion_reason",
        Column::DocumentDeletionReason,
        ID,
        None,
    ),
    phi(
        "documents",
        "correction_reason",
        Column::DocumentCorrectionReason,
        ID,
        None,
    ),
    phi("break_glass", "reason", Column::BreakGlassReason, ID, None),
    phi(
        "break_glass",
        "review_note",
        Column::BreakGlassReviewNote,
        ID,
        None,
    ),
    phi(
        "disclosures",
        "recipient_name",
        Column::DisclosureRecipientName,
        ID,
        Some("disclosures_no_update"),
    ),
    phi(
        "disclosures",
        "recipient_address",
        Column::DisclosureRecipientAddress,
        ID,
        Some("disclosures_no_update"),
    ),
    phi(
        "disclosures",
        "description",
        Column::DisclosureDescription,
        ID,
        Some("disclosures_no_update"),
    ),
    phi(
        "disclosures",
        "purpose",
        Column::DisclosurePurpose,
        ID,
        Some("disclosures_no_update"),
    ),
    phi(
        "batch_pages",
        "cover_fields",
        Column::BatchCoverFields,
        &["batch_id", "page"],
        None,
    ),
    phi("holds", "matter", Column::HoldMatter, ID, None),
    phi("holds", "custodian", Column::HoldCustodian, ID, None),
    phi("holds", "reason", Column::HoldReason, ID, None),
    phi("holds", "query", Column::HoldQuery, ID, None),
    phi(
        "holds",
        "release_reason",
        Column::HoldReleaseReason,
        ID,
        None,
    ),
    phi("releases", "details", Column::ReleaseDetails, ID, None),
    phi(
        "releases",
        "extension_reason",
        Column::ReleaseExtensionReason,
        ID,
        None,
    ),
    phi(
        "release_exclusions",
        "reason",
        Column::ReleaseExclusionReason,
        &["release_id", "document_id"],
        None,
    ),
    phi(
        "productions",
        "custodian",
        Column::ProductionCustodian,
        ID,
        Some("productions_no_update"),
    ),
    SealedColumn {
        table: "audit",
        column: "sealed",
        sealed: None,
        key: &["seq"],
        no_update_trigger: Some("audit_no_update"),
    },
];

impl ResealStore for Backend {
    async fn reseal_v1_values(&self, batch: i64) -> anyhow::Result<u64> {
        let mut total = 0;
        for column in COLUMNS {
            total += self.reseal_column(column, batch).await?;
        }
        Ok(total)
    }

    async fn seal_legacy_rows(&self) -> anyhow::Result<u64> {
        let phi = self.phi()?;
        let mut sealed = 0u64;
        let mut tx = self.begin().await?;
        let patients =
            sqlx::query("SELECT id, mrn, name, birth_date FROM patients WHERE mrn_index IS NULL")
                .fetch_all(tx.conn())
                .await?;
        for row in &patients {
            let id: String = row.try_get("id")?;
            let text = |column: &str| -> super::StoreResult<Option<String>> {
                Ok(row
                    .try_get::<Option<Vec<u8>>, _>(column)?
                    .map(|b| String::from_utf8_lossy(&b).into_owned()))
            };
            let mrn = Mrn::parse(&text("mrn")?.unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("an old patient row holds an invalid MRN: {e}"))?;
            sqlx::query(
                "UPDATE patients SET mrn_index = $1, mrn = $2, name = $3, birth_date = $4 WHERE id = $5",
            )
            .bind(phi.mrn_index(&mrn))
            .bind(phi.seal(Column::PatientMrn, &id, mrn.as_str()))
            .bind(phi.seal(Column::PatientName, &id, &text("name")?.unwrap_or_default()))
            .bind(text("birth_date")?.map(|d| phi.seal(Column::PatientBirthDate, &id, &d)))
            .bind(&id)
            .execute(tx.conn())
            .await?;
            sealed += 1;
        }
        let documents =
            sqlx::query("SELECT id, encounter FROM documents WHERE encounter IS NOT NULL")
                .fetch_all(tx.conn())
                .await?;
        for row in &documents {
            let id: String = row.try_get("id")?;
            let value: Vec<u8> = row.try_get("encounter")?;
            if is_sealed(&value) {
                continue;
            }
            let text = String::from_utf8_lossy(&value).into_owned();
            sqlx::query("UPDATE documents SET encounter = $1 WHERE id = $2")
                .bind(phi.seal(Column::DocumentEncounter, &id, &text))
                .bind(&id)
                .execute(tx.conn())
                .await?;
            sealed += 1;
        }
        tx.commit().await?;
        if sealed > 0 {
            self.scrub_free_space().await?;
        }
        Ok(sealed)
    }
}

impl Backend {
    /// One column, in rowid order: each batch is read (and re-sealed in memory) outside the
    /// write lock, then written in one short transaction, only where the value is still the
    /// one read. The scan resumes after the last row of the batch before, so the work is
    /// linear in the table's size.
    async fn reseal_column(&self, column: &SealedColumn, batch: i64) -> anyhow::Result<u64> {
        let keys: Vec<String> = column
            .key
            .iter()
            .map(|k| format!("CAST({k} AS TEXT) AS key_{k}"))
            .collect();
        let select = format!(
            "SELECT rowid AS row_number, {}, {} AS value FROM {}
             WHERE rowid > $1 AND substr({}, 1, 8) = $2 ORDER BY rowid LIMIT $3",
            keys.join(", "),
            column.column,
            column.table,
            column.column
        );
        let update = format!(
            "UPDATE {} SET {} = $1 WHERE rowid = $2 AND {} = $3",
            column.table, column.column, column.column
        );
        let mut after = 0i64;
        let mut total = 0u64;
        loop {
            let rows = sqlx::query(&select)
                .bind(after)
                .bind(&V1_MAGIC[..])
                .bind(batch)
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = rows.last() else {
                return Ok(total);
            };
            after = last.try_get("row_number")?;
            let mut resealed = Vec::with_capacity(rows.len());
            for row in &rows {
                let value: Vec<u8> = row.try_get("value")?;
                match self.reseal_value(column, row, &value) {
                    Ok(new) => resealed.push((row.try_get::<i64, _>("row_number")?, value, new)),
                    Err(error) => tracing::warn!(
                        table = column.table,
                        column = column.column,
                        error = %error,
                        "a sealed value does not open; left as it is"
                    ),
                }
            }
            total += self.write_resealed(column, &update, &resealed).await?;
            if (rows.len() as i64) < batch {
                return Ok(total);
            }
            // Room for the service's own writes between batches.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A version 1 value opened and sealed again (same associated data, same plaintext).
    fn reseal_value(
        &self,
        column: &SealedColumn,
        row: &DbRow,
        value: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let key: Vec<String> = column
            .key
            .iter()
            .map(|k| row.try_get::<String, _>(format!("key_{k}").as_str()))
            .collect::<Result<_, _>>()?;
        let resealed = match column.sealed {
            Some(sealed) => {
                let row_id = key.join(":");
                let phi = self.phi()?;
                let plaintext = phi.open(sealed, &row_id, value)?;
                phi.seal(sealed, &row_id, &plaintext)
            }
            None => {
                let seq: i64 = key[0].parse()?;
                let cipher = self.audit_cipher()?;
                let record = cipher.open(seq, value)?;
                cipher.seal(&record)
            }
        };
        anyhow::ensure!(
            !resealed.starts_with(V1_MAGIC),
            "values are still sealed in format version 1: nothing to re-seal them into"
        );
        Ok(resealed)
    }

    /// Writes one batch in one short transaction; an append-only table's no-update trigger
    /// is suspended inside it only, and put back exactly as it was.
    async fn write_resealed(
        &self,
        column: &SealedColumn,
        update: &str,
        resealed: &[(i64, Vec<u8>, Vec<u8>)],
    ) -> anyhow::Result<u64> {
        if resealed.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_immediate().await?;
        let trigger = match column.no_update_trigger {
            Some(name) => Some(suspend_trigger(tx.conn(), column.table, name).await?),
            None => None,
        };
        let mut written = 0;
        for (row_number, old, new) in resealed {
            written += sqlx::query(update)
                .bind(new)
                .bind(row_number)
                .bind(old)
                .execute(tx.conn())
                .await?
                .rows_affected();
        }
        if let Some(sql) = trigger {
            sqlx::query(&sql).execute(tx.conn()).await?;
        }
        tx.commit().await?;
        Ok(written)
    }
}
