//! What the operator tools read: the inventory of a data directory, and point checks.

use super::documents::Document;
use super::*;
use crate::domain::{AttachmentId, ProductionId};

/// A document as the operator tools see it: status as stored (including `deleted`, a
/// shredded document's tombstone, which this branch's [`DocumentStatus`] does not know).
#[derive(Debug, Clone)]
pub struct DocumentArtifacts {
    pub id: DocumentId,
    pub status: String,
    pub sha256: String,
}

impl DocumentArtifacts {
    /// A shredded document keeps a tombstone row and nothing else: no blobs, pages rows,
    /// keyring rows or index entries are expected of it.
    pub fn is_deleted(&self) -> bool {
        self.status == "deleted"
    }
}

/// One keyring row: the data key `key_id` wrapped under KEK `kek_version`.
#[derive(Clone)]
pub struct KeyringRow {
    pub key_id: String,
    pub kek_version: u32,
    pub wrapped: Vec<u8>,
}

/// Every row that names an artifact, read in one transaction: a consistent snapshot.
#[derive(Clone, Default)]
pub struct Inventory {
    pub documents: Vec<DocumentArtifacts>,
    /// (document, page) of every `pages` row.
    pub pages: Vec<(DocumentId, u32)>,
    pub keyring: Vec<KeyringRow>,
    /// (purpose, key id) of every service key.
    pub service_keys: Vec<(String, String)>,
    /// (document, state) of every job not done.
    pub open_jobs: Vec<(DocumentId, String)>,
    /// (batch, sha256) of every batch whose file is still held.
    pub batch_originals: Vec<(DocumentId, String)>,
    /// (batch, page) of every page still held under its batch.
    pub batch_pages: Vec<(DocumentId, u32)>,
    /// Release attachments and productions, with the SHA-256 of their plaintext.
    pub release_objects: Vec<(ObjectRef, String)>,
}

impl Db {
    /// Reads the [`Inventory`] inside one read transaction.
    pub async fn inventory(&self) -> super::StoreResult<Inventory> {
        let mut tx = self.begin().await?;
        // A version entered in error is kept but out of the index: not `indexed` here.
        let documents = sqlx::query(
            "SELECT id, sha256, CASE WHEN entered_in_error_at IS NULL THEN status
                ELSE 'entered-in-error' END AS status
             FROM documents ORDER BY id",
        )
        .fetch_all(&mut *tx)
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
            .fetch_all(&mut *tx)
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
            .fetch_all(&mut *tx)
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
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("purpose")?, r.try_get("key_id")?)))
            .collect::<super::StoreResult<Vec<_>>>()?;
        let open_jobs = sqlx::query("SELECT document_id, state FROM jobs WHERE state <> 'done'")
            .fetch_all(&mut *tx)
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
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((parse_id(r.try_get::<&str, _>("id")?)?, r.try_get("sha256")?)))
        .collect::<super::StoreResult<Vec<_>>>()?;
        let batch_pages = sqlx::query("SELECT batch_id, page FROM batch_pages")
            .fetch_all(&mut *tx)
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
                &attachment as &dyn Fn(uuid::Uuid) -> ObjectRef,
            ),
            ("productions", &production),
        ] {
            let rows = sqlx::query(&format!("SELECT id, sha256 FROM {table} ORDER BY id"))
                .fetch_all(&mut *tx)
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

    /// Whether a blob of `id` (an original, or page `page`) is one a batch holds or is filing
    /// right now: the batch's file until it is destroyed, its pages until filed, and the
    /// copies made for a page range being filed before its document row exists.
    pub async fn batch_holds(&self, id: DocumentId, page: Option<u32>) -> super::StoreResult<bool> {
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

    /// The stored status of a document (`deleted` included), `None` if there is no row.
    pub async fn document_status(&self, id: DocumentId) -> super::StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT CASE WHEN entered_in_error_at IS NULL THEN status ELSE 'entered-in-error' END
             FROM documents WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn page_exists(&self, id: DocumentId, page: u32) -> super::StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM pages WHERE document_id = $1 AND page = $2")
                .bind(id.to_string())
                .bind(page as i64)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Every document with status `indexed` and its metadata, for re-indexing.
    pub async fn indexed_documents(&self) -> super::StoreResult<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT * FROM documents WHERE status = 'indexed' AND entered_in_error_at IS NULL
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.document_from_row(r)).collect()
    }
}
