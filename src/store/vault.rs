//! Encrypted objects of the service: where each artifact lives, what identity it is bound
//! to, and the keyring that holds each object's data key wrapped under the KEK.
//!
//! Every object gets its own random data key. The key id travels in the object header; the
//! wrapped key sits in the `keyring` table. The object's identity (artifact kind, document id,
//! page) is the associated data, so ciphertext copied onto another record fails to decrypt.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, RwLock};

use chartvault_storage::{
    read_key_id, BlobName, BlobReader, BlobStore, BlobWriter, DataKey, DecryptReader,
    EncryptWriter, KeyId, KeyProvider, StorageError, WrappedKey,
};

use crate::domain::DocumentId;
use crate::store::audit_record::{AuditCipher, AUDIT_BLIND_INDEX_KEY, AUDIT_KEY};
use crate::store::keys::{unwrap_row, NewKey, WrapInFlight};
use crate::store::phi::PhiCipher;
use crate::store::prelude::*;
use crate::store::row_mac::RowMac;
use crate::store::Db;

pub use crate::store::objects::ObjectRef;

/// The blob store the configuration names (`storage.url`): a local directory, or a bucket of
/// S3-compatible object storage (credentials from the `AWS_*` environment).
pub fn open_blobs(config: &crate::config::Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match config.object_storage()? {
        crate::config::ObjectStorage::Local(dir) => {
            Arc::new(chartvault_storage::LocalBlobStore::open(dir)?)
        }
        crate::config::ObjectStorage::S3 { bucket, prefix } => Arc::new(
            chartvault_storage::S3BlobStore::open(&chartvault_storage::S3Location {
                bucket,
                prefix,
                endpoint: config.storage.s3.endpoint.clone(),
                region: config.storage.s3.region.clone(),
                access_key_id: None,
                secret_access_key: None,
            })?,
        ),
    })
}

#[derive(Clone)]
pub struct Vault {
    pub blobs: Arc<dyn BlobStore>,
    /// Replaced whole when a KEK version is added or retired (see [`crate::ops::keys`]).
    keys: Arc<RwLock<Arc<dyn KeyProvider>>>,
    /// Keys wrapped but not yet in the keyring, by KEK version (see [`NewKey`]).
    wraps_in_flight: Arc<std::sync::Mutex<std::collections::BTreeMap<u32, usize>>>,
    db: Db,
}

impl Vault {
    pub fn new(blobs: Arc<dyn BlobStore>, keys: Arc<dyn KeyProvider>, db: Db) -> Vault {
        Vault {
            blobs,
            keys: Arc::new(RwLock::new(keys)),
            wraps_in_flight: Arc::default(),
            db,
        }
    }

    /// The key provider in use now.
    pub fn keys(&self) -> Arc<dyn KeyProvider> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a reloaded key provider (a KEK version added or retired).
    pub fn replace_keys(&self, keys: Arc<dyn KeyProvider>) {
        match self.keys.write() {
            Ok(mut slot) => *slot = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    pub fn new_key(&self) -> anyhow::Result<NewKey> {
        let id = KeyId::generate();
        let key = DataKey::generate();
        let keys = self.keys();
        // Counted before wrapping, so a retirement that finds no wrap in flight under a
        // version can never race one that is about to use it.
        let in_flight = WrapInFlight::new(&self.wraps_in_flight, keys.current_version());
        let wrapped = keys.wrap_key(&id, &key)?;
        let in_flight = if wrapped.kek_version == in_flight.version {
            in_flight
        } else {
            WrapInFlight::new(&self.wraps_in_flight, wrapped.kek_version)
        };
        Ok(NewKey {
            id,
            key,
            wrapped,
            _in_flight: in_flight,
        })
    }

    /// The key wrapped under the current KEK version: the KEK may have been rotated since
    /// `key` was made (an upload that took a while), and its keyring row should not start
    /// under a version that is being retired.
    pub fn refresh_wrap(&self, key: &mut NewKey) -> anyhow::Result<()> {
        let current = self.current_wrap(key)?;
        if current.kek_version != key.wrapped.kek_version {
            // Counted under the new version before the old count is released.
            let in_flight = WrapInFlight::new(&self.wraps_in_flight, current.kek_version);
            key.wrapped = current;
            key._in_flight = in_flight;
        }
        Ok(())
    }

    /// `key` wrapped under the current KEK version (as it is, or re-wrapped).
    pub fn current_wrap(&self, key: &NewKey) -> anyhow::Result<WrappedKey> {
        let keys = self.keys();
        if key.wrapped.kek_version == keys.current_version() {
            return Ok(key.wrapped.clone());
        }
        Ok(keys.rewrap_key(&key.id, &key.wrapped)?)
    }

    /// Keys wrapped under KEK `version` whose keyring rows are not committed yet (uploads,
    /// corrections and batch filings in progress).
    pub fn wraps_in_flight(&self, version: u32) -> usize {
        let map = self
            .wraps_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(&version).copied().unwrap_or(0)
    }

    pub async fn store_key(&self, key: &NewKey) -> super::StoreResult<()> {
        let mut tx = self.db.begin().await?;
        Db::insert_key(
            &mut tx,
            &key.id.to_hex(),
            key.wrapped.kek_version,
            &key.wrapped.bytes,
        )
        .await?;
        tx.commit().await
    }

    /// The service's own key for `purpose` (e.g. the search index), created on first use.
    pub async fn service_key(&self, purpose: &str) -> anyhow::Result<(KeyId, DataKey)> {
        if let Some(hex) = self.db.service_key_id(purpose).await? {
            let id = KeyId::from_hex(&hex)?;
            return Ok((id, self.data_key(&id).await?));
        }
        let key = self.new_key()?;
        let created = self
            .db
            .insert_service_key(
                purpose,
                &key.id.to_hex(),
                key.wrapped.kek_version,
                &key.wrapped.bytes,
            )
            .await?;
        if !created {
            return Box::pin(self.service_key(purpose)).await;
        }
        Ok((key.id, key.key))
    }

    /// The PHI column cipher: the `metadata` and `mrn-blind-index` service keys (created on
    /// first use).
    pub async fn phi_cipher(&self) -> anyhow::Result<PhiCipher> {
        let (key_id, key) = self.service_key("metadata").await?;
        let (_, blind_index) = self.service_key("mrn-blind-index").await?;
        Ok(PhiCipher::from_keys(key_id, key, blind_index))
    }

    /// The audit log cipher: the `audit` and `audit-blind-index` service keys (created on
    /// first use).
    pub async fn audit_cipher(&self) -> anyhow::Result<AuditCipher> {
        let (key_id, key) = self.service_key(AUDIT_KEY).await?;
        let (_, blind_index) = self.service_key(AUDIT_BLIND_INDEX_KEY).await?;
        Ok(AuditCipher::from_keys(key_id, key, blind_index))
    }

    /// The key that MACs access rows (see `db::integrity`), creating it only on an archive
    /// that never had it: one whose audit log records the integrity upgrade lost it (its
    /// `service_keys` row deleted), and refuses to go on rather than MAC whatever rows it
    /// holds under a new one.
    pub async fn row_mac(&self) -> anyhow::Result<RowMac> {
        if self.db.service_key_id("row-mac").await?.is_none()
            && self.db.row_integrity_upgraded().await?
        {
            anyhow::bail!(
                "the row integrity key is missing from an archive that had it: the database \
                 was altered; restore it from a backup"
            );
        }
        let (_, key) = self.service_key("row-mac").await?;
        Ok(RowMac::from_key(key))
    }

    /// The key that MACs access rows of an archive a server has started on since the
    /// upgrade; never created here (the operator tools).
    pub async fn existing_row_mac(&self) -> anyhow::Result<RowMac> {
        let Some(hex) = self.db.service_key_id("row-mac").await? else {
            anyhow::bail!(
                "the archive has no row integrity key yet: start the server on it once first"
            );
        };
        Ok(RowMac::from_key(
            self.data_key(&KeyId::from_hex(&hex)?).await?,
        ))
    }

    pub async fn data_key(&self, id: &KeyId) -> anyhow::Result<DataKey> {
        let hex = id.to_hex();
        let mut attempt = 0;
        loop {
            let (version, wrapped) = self
                .db
                .get_key(&hex)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no keyring row for key {id}"))?;
            match unwrap_row(self.keys().as_ref(), id, version, wrapped) {
                Ok(key) => return Ok(key),
                // The row was read just before a rotation re-wrapped it and its old KEK
                // version was retired: the row read now is under a version we hold.
                Err(StorageError::Key(_)) if attempt == 0 => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Encrypts `plaintext` as `object` under a new key: keyring row first, then the blob
    /// (written to a temp file, fsynced and renamed), so a visible blob always has its key.
    pub async fn put(&self, object: ObjectRef, plaintext: Vec<u8>) -> anyhow::Result<()> {
        let key = self.new_key()?;
        self.store_key(&key).await?;
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let name = object.blob_name();
            let sink = blobs.create(&name)?;
            let mut writer = EncryptWriter::new(sink, &key.id, &key.key, &object.aad())?;
            writer.write_all(&plaintext)?;
            writer.finish()?.commit()?;
            Ok(())
        })
        .await??;
        Ok(())
    }

    /// A streaming writer for `object` under a new key whose keyring row is stored first
    /// (blocking writes: use from a blocking thread). Commit the blob when done, or
    /// [`Vault::discard`] it with the key id returned.
    pub async fn writer(
        &self,
        object: ObjectRef,
    ) -> anyhow::Result<(EncryptWriter<Box<dyn BlobWriter>>, KeyId)> {
        let key = self.new_key()?;
        self.store_key(&key).await?;
        let sink = self.blobs.create(&object.blob_name())?;
        let writer = EncryptWriter::new(sink, &key.id, &key.key, &object.aad())?;
        Ok((writer, key.id))
    }

    /// Deletes an object nothing refers to (a production that failed half-way) and its key.
    pub async fn discard(&self, object: ObjectRef, key: &KeyId) {
        if let Err(error) = self.db.delete_key(&key.to_hex()).await {
            tracing::warn!(error = %error, "could not delete the key of a discarded object");
        }
        self.delete_blob(object).await;
    }

    /// Deletes the blob of an object whose key is gone (what would be left is ciphertext no
    /// key opens): a failure is logged, and verify reports the orphan.
    pub async fn delete_blob(&self, object: ObjectRef) {
        let blobs = self.blobs.clone();
        let deleted = tokio::task::spawn_blocking(move || blobs.delete(&object.blob_name())).await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!(object = %object.blob_name(), "could not delete a blob whose key is gone");
        }
    }

    /// The key id in a stored object's header, read without decrypting anything; `None` when
    /// there is no such blob or it is no object (a write cut short by a crash). Blocking: use
    /// from blocking threads ([`Vault::key_id_of`] is the async form).
    pub fn stored_key_id(&self, name: &BlobName) -> anyhow::Result<Option<String>> {
        if !self.blobs.exists(name)? {
            return Ok(None);
        }
        let mut reader = self.blobs.open(name)?;
        Ok(read_key_id(&mut reader).ok().map(|key| key.to_hex()))
    }

    /// [`Vault::stored_key_id`] of one object, from async code.
    pub async fn key_id_of(&self, object: ObjectRef) -> anyhow::Result<Option<String>> {
        let vault = self.clone();
        tokio::task::spawn_blocking(move || vault.stored_key_id(&object.blob_name())).await?
    }

    /// Copies a page's artifacts (image, text, word boxes; see [`ObjectRef::page_artifacts`]
    /// and [`ObjectRef::batch_page_artifacts`]) to another page's: decrypted and encrypted
    /// again under the new identity and new keys.
    pub async fn copy_page(&self, from: [ObjectRef; 3], to: [ObjectRef; 3]) -> anyhow::Result<()> {
        for (from, to) in from.into_iter().zip(to) {
            let bytes = self.get(from).await?;
            self.put(to, bytes).await?;
        }
        Ok(())
    }

    /// Opens `object` for streaming decryption (blocking reads: use from blocking threads).
    pub async fn open(
        &self,
        object: ObjectRef,
    ) -> anyhow::Result<DecryptReader<Box<dyn BlobReader>>> {
        self.open_named(&object.blob_name(), &object.aad()).await
    }

    pub async fn open_named(
        &self,
        name: &BlobName,
        aad: &[u8],
    ) -> anyhow::Result<DecryptReader<Box<dyn BlobReader>>> {
        let blobs = self.blobs.clone();
        let name = name.clone();
        let (reader, key_id) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<(Box<dyn BlobReader>, KeyId)> {
                let mut reader = blobs.open(&name)?;
                let key_id = read_key_id(&mut reader)?;
                reader.seek(SeekFrom::Start(0))?;
                Ok((reader, key_id))
            })
            .await??;
        let key = self.data_key(&key_id).await?;
        Ok(DecryptReader::new(reader, &key, aad)?)
    }

    /// Decrypts a whole (small) object into memory.
    pub async fn get(&self, object: ObjectRef) -> anyhow::Result<Vec<u8>> {
        let mut reader = self.open(object).await?;
        Ok(
            tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let mut out = Vec::new();
                reader.read_to_end(&mut out)?;
                Ok(out)
            })
            .await??,
        )
    }

    /// A writer for a staging object: the upload is encrypted as it arrives.
    pub fn staging_writer(
        &self,
        doc: DocumentId,
        key: &NewKey,
    ) -> anyhow::Result<EncryptWriter<Box<dyn BlobWriter>>> {
        let sink = self.blobs.create(&ObjectRef::staging_name(doc))?;
        Ok(EncryptWriter::new(
            sink,
            &key.id,
            &key.key,
            &ObjectRef::Original(doc).aad(),
        )?)
    }

    /// A reader over a committed staging object whose key is not yet in the keyring.
    pub fn staging_reader(
        &self,
        doc: DocumentId,
        key: &DataKey,
    ) -> anyhow::Result<DecryptReader<Box<dyn BlobReader>>> {
        let reader = self.blobs.open(&ObjectRef::staging_name(doc))?;
        Ok(DecryptReader::new(
            reader,
            key,
            &ObjectRef::Original(doc).aad(),
        )?)
    }

    pub fn discard_staging(&self, doc: DocumentId) {
        if let Err(error) = self.blobs.delete(&ObjectRef::staging_name(doc)) {
            tracing::warn!(document_id = %doc, error = %error, "could not delete a staging object");
        }
    }

    /// Promotes a staged upload to the original (atomic rename, fsynced).
    pub fn promote_staging(&self, doc: DocumentId) -> anyhow::Result<()> {
        self.blobs.rename(
            &ObjectRef::staging_name(doc),
            &ObjectRef::Original(doc).blob_name(),
        )?;
        Ok(())
    }

    /// Staging objects left by uploads that never finished (a crash mid-upload).
    pub fn remove_leftover_staging(&self) -> anyhow::Result<usize> {
        let leftovers = self.blobs.list("staging")?;
        for name in &leftovers {
            self.blobs.delete(name)?;
        }
        Ok(leftovers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_parses_back_from_its_blob_name() {
        let doc = DocumentId::new_random();
        for object in [
            ObjectRef::Original(doc),
            ObjectRef::PageImage(doc, 1),
            ObjectRef::PageText(doc, 12),
            ObjectRef::PageWords(doc, 2000),
        ] {
            assert_eq!(ObjectRef::from_blob_name(&object.blob_name()), Some(object));
        }
        assert_eq!(
            ObjectRef::staged_document(&ObjectRef::staging_name(doc)),
            Some(doc)
        );
        assert_eq!(
            ObjectRef::staged_document(&ObjectRef::Original(doc).blob_name()),
            None
        );
    }

    #[test]
    fn non_canonical_names_are_not_objects() {
        let doc = DocumentId::new_random();
        let simple = doc.0.simple().to_string();
        let shard = &simple[..2];
        let wrong_shard = if shard == "00" { "11" } else { "00" };
        for name in [
            format!("originals/{wrong_shard}/{doc}"),
            format!("originals/{shard}/{simple}"),
            format!("originals/{shard}/{}", doc.to_string().to_uppercase()),
            format!("pages/{shard}/{doc}/01.text"),
            format!("pages/{shard}/{doc}/1.pdf"),
            format!("pages/{shard}/{doc}/1"),
            format!("originals/{shard}/{doc}/extra"),
            format!("staging/{doc}"),
            "index/meta.json".to_string(),
        ] {
            let name = BlobName::new(name).expect("a valid blob name");
            assert_eq!(ObjectRef::from_blob_name(&name), None, "{name}");
        }
    }
}
