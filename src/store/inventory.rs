//! What the operator tools read: the inventory of a data directory, and point checks.

use super::base::*;

use super::documents::Document;

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
    pub batch_originals: Vec<(BatchId, String)>,
    /// (batch, page) of every page still held under its batch.
    pub batch_pages: Vec<(BatchId, u32)>,
    /// Release attachments and productions, with the SHA-256 of their plaintext.
    pub release_objects: Vec<(ObjectRef, String)>,
}

/// What the operator tools read: every artifact the metadata says should exist.
pub trait InventoryStore {
    /// Reads the [`Inventory`] inside one read transaction.
    fn inventory(&self) -> impl Future<Output = StoreResult<Inventory>> + Send;

    /// Whether a blob of `id` (an original, or page `page`) is one a batch holds or is filing
    /// right now: the batch's file until it is destroyed, its pages until filed, and the
    /// copies made for a page range being filed before its document row exists.
    fn batch_holds(
        &self,
        id: DocumentId,
        page: Option<u32>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The stored status of a document (`deleted` included), `None` if there is no row.
    fn document_status(
        &self,
        id: DocumentId,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    fn page_exists(
        &self,
        id: DocumentId,
        page: u32,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Every document with status `indexed` and its metadata, for re-indexing.
    fn indexed_documents(&self) -> impl Future<Output = StoreResult<Vec<Document>>> + Send;
}
