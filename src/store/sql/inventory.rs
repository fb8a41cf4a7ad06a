//! [`InventoryStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::inventory::*;

use super::documents::Document;
use crate::domain::{AttachmentId, ProductionId};

impl InventoryStore for Backend {
    async fn inventory(&self) -> super::StoreResult<Inventory> {
        let mut tx = self.begin().await?;
        // A version entered in error is kept but out of the index: not `indexed` here.
        let documents = sqlx::query(
            "SELECT id, sha256, CASE WHEN entered_in_error_at IS NULL THEN status
                ELSE 'entered-in-error' END AS status
             FROM documents ORDER BY id",
        )
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| {
            Ok(DocumentArtifacts {
                id: parse_id(r.try_get::<&str, _>("id")?)?,
                status: r.try_get("status")?,
                sha256: r.try_get("sha256")?,
            })
        })
        .collect::<super::StoreResult<Vec<_>>>()?;
        let pages = sqlx::query("SELECT document_id, page FROM pages ORDER BY document_id, page")
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    parse_id(r.try_get::<&str, _>("document_id")?)?,
                    r.try_get::<i64, _>("page")? as u32,
                ))
            })
            .collect::<super::StoreResult<Vec<_>>>()?;
        let keyring = sqlx::query("SELECT key_id, kek_version, wrapped FROM keyring")
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| {
                Ok(KeyringRow {
                    key_id: r.try_get("key_id")?,
                    kek_version: r.try_get::<i64, _>("kek_version")? as u32,
                    wrapped: r.try_get("wrapped")?,
                })
            })
            .collect::<super::StoreResult<Vec<_>>>()?;
        let service_keys = sqlx::query("SELECT purpose, key_id FROM service_keys")
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| Ok((r.try_get("purpose")?, r.try_get("key_id")?)))
            .collect::<super::StoreResult<Vec<_>>>()?;
        let open_jobs = sqlx::query("SELECT document_id, state FROM jobs WHERE state <> 'done'")
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    parse_id(r.try_get::<&str, _>("document_id")?)?,
                    r.try_get("state")?,
                ))
            })
            .collect::<super::StoreResult<Vec<_>>>()?;
        let batch_originals = sqlx::query(
            "SELECT id, sha256 FROM batches WHERE original_destroyed_at IS NULL ORDER BY id",
        )
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| Ok((parse_id(r.try_get::<&str, _>("id")?)?, r.try_get("sha256")?)))
        .collect::<super::StoreResult<Vec<_>>>()?;
        let batch_pages = sqlx::query("SELECT batch_id, page FROM batch_pages")
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    parse_id(r.try_get::<&str, _>("batch_id")?)?,
                    r.try_get::<i64, _>("page")? as u32,
                ))
            })
            .collect::<super::StoreResult<Vec<_>>>()?;
        let mut release_objects = Vec::new();
        let attachment = |id| ObjectRef::Attachment(AttachmentId(id));
        let production = |id| ObjectRef::Production(ProductionId(id));
        for (table, object) in [
            (
                "release_attachments",
                &attachment as &(dyn Fn(uuid::Uuid) -> ObjectRef + Sync),
            ),
            ("productions", &production),
        ] {
            let rows = sqlx::query(&format!("SELECT id, sha256 FROM {table} ORDER BY id"))
                .fetch_all(tx.conn())
                .await?;
            for r in &rows {
                release_objects.push((
                    object(parse_id(r.try_get::<&str, _>("id")?)?),
                    r.try_get("sha256")?,
                ));
            }
        }
        tx.commit().await?;
        Ok(Inventory {
            documents,
            pages,
            keyring,
            service_keys,
            open_jobs,
            batch_originals,
            batch_pages,
            release_objects,
        })
    }

    async fn batch_holds(&self, id: DocumentId, page: Option<u32>) -> super::StoreResult<bool> {
        let filing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM batch_segments WHERE document_id = $1 AND status IN ('pending','qa')",
        )
        .bind(id.to_string())
        .fetch_one(&self.pool)
        .await?;
        if filing > 0 {
            return Ok(true);
        }
        let held: i64 =
            match page {
                None => sqlx::query_scalar(
                    "SELECT count(*) FROM batches WHERE id = $1 AND original_destroyed_at IS NULL",
                )
                .bind(id.to_string())
                .fetch_one(&self.pool)
                .await?,
                Some(page) => {
                    sqlx::query_scalar(
                        "SELECT count(*) FROM batch_pages WHERE batch_id = $1 AND page = $2
                     UNION ALL SELECT count(*) FROM batches
                        WHERE id = $1 AND status IN ('accepted','processing')
                     ORDER BY 1 DESC LIMIT 1",
                    )
                    .bind(id.to_string())
                    .bind(page as i64)
                    .fetch_one(&self.pool)
                    .await?
                }
            };
        Ok(held > 0)
    }

    async fn document_status(&self, id: DocumentId) -> super::StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT CASE WHEN entered_in_error_at IS NULL THEN status ELSE 'entered-in-error' END
             FROM documents WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)
    }

    async fn page_exists(&self, id: DocumentId, page: u32) -> super::StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT page FROM pages WHERE document_id = $1 AND page = $2")
                .bind(id.to_string())
                .bind(page as i64)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn indexed_documents(&self) -> super::StoreResult<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents WHERE status = 'indexed' AND entered_in_error_at IS NULL
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.document_from_row(r)).collect()
    }
}
