//! `chartvault backup` and `chartvault restore`: consistent online snapshots of an archive,
//! and their restore into a new one.
//!
//! One backup format for every setup: an embedded archive's files (a SQLite database, the
//! objects, the index). On PostgreSQL the database is copied into a new SQLite file in one
//! `REPEATABLE READ` snapshot (instead of `VACUUM INTO`); on object storage the objects
//! are read from the bucket, and the index is the commit the writer last published there.
//! A restore into PostgreSQL and object storage restores the embedded archive, then moves
//! it into those stores as `migrate-store` does.
//!
//! What a backup promises:
//! - **Consistent while the server runs** (in another process). The index is copied first,
//!   then the database is snapshotted with SQLite's `VACUUM INTO` (one read transaction, so
//!   the keyring, `service_keys`, documents, pages and jobs agree with each other), then the
//!   index copy is brought to the snapshot's point: a document the snapshot holds as deleted
//!   (shredded while the index was copied) or does not know is purged from the copy, merged
//!   away, so its words are in no file of the backup (whose index key is never shredded).
//!   Then exactly the blobs that snapshot references are copied: the original of every document
//!   not deleted and the image, text and words of every `pages` row. The service commits
//!   every blob before the row that names it, so each referenced blob exists; one that
//!   vanished meanwhile (a document shredded during the backup) is listed in the manifest's
//!   `missing_blobs`, not fatal.
//! - **The index** is copied as its live files (the `meta.json` tantivy commits through, the
//!   files of the segments it lists, and `.managed.json`), read through the index key only to
//!   learn which files those are. tantivy may commit, merge and garbage-collect while it
//!   copies: if a file vanishes or `meta.json` changes during the copy, the copy starts over.
//!   Segment files being written but not yet committed are never copied.
//! - **Ciphertext only, byte for byte.** Blobs and index files are copied as stored
//!   (encrypted); the database holds the keyring's *wrapped* keys. **The KEK (key file or
//!   environment variable) is never written into a backup**: without it a backup is
//!   unreadable, so it must be escrowed separately. (The backup still needs the KEK to read
//!   the index's file list.) Every file is fsynced, then `MANIFEST.json` (format version,
//!   creation time, chartvault version, counts, SHA-256 and size of every file) is written
//!   last, atomically: a backup without a manifest is incomplete.
//!
//! What a restore promises:
//! - It refuses a non-empty target, checks the manifest's hashes and sizes *before* writing
//!   anything, checks that the KEK unwraps the backup's keyring, then copies (hashing again),
//!   fsyncs, and reconciles the index with the restored database ([`reconcile_index`]): an
//!   index that does not open is rebuilt empty, documents the database does not know or has
//!   deleted are purged from it (merged away, not merely hidden), and every page of an
//!   `indexed` document missing from the index is re-indexed from its decrypted text. Documents accepted but not yet processed at snapshot time keep their
//!   `jobs` rows: the restored server resumes them when it starts.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use chartvault_index::live::MANAGED_FILE;
use chartvault_index::{EncryptedDirectory, IndexWriterService, LiveIndexFiles};
use chartvault_storage::LocalBlobStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::DocumentId;
use crate::ops::keys::Keyring;
use crate::store::prelude::*;
use crate::store::vault::{ObjectRef, Vault};
use crate::store::Db;

pub const MANIFEST: &str = "MANIFEST.json";
/// The manifest's MAC (hex HMAC-SHA256 of its exact bytes under the archive's `row-mac`
/// key): a manifest edited or replaced by someone without the KEK does not verify.
pub const MANIFEST_MAC: &str = "MANIFEST.mac";
const FORMAT: &str = "chartvault-backup";
const FORMAT_VERSION: u32 = 1;
const DB_FILE: &str = "chartvault.db";
/// How often the index copy starts over when tantivy keeps committing under it.
const INDEX_COPY_ATTEMPTS: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub created_at: String,
    pub chartvault_version: String,
    pub counts: Counts,
    /// Blobs the snapshot referenced that had vanished when they were copied.
    pub missing_blobs: Vec<String>,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub documents: usize,
    pub deleted_documents: usize,
    pub pages: usize,
    pub keyring_rows: usize,
    /// Documents whose OCR job had not finished at snapshot time (resumed after restore).
    pub open_jobs: usize,
    pub blobs: usize,
    pub blob_bytes: u64,
    pub index_files: usize,
    pub index_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of the file's bytes (ciphertext, except for the database).
    pub sha256: String,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub manifest: Manifest,
    /// How many times the index copy had to start over.
    pub index_copy_retries: usize,
    /// Documents deleted while the index was copied, purged from the copy.
    pub index_documents_purged: usize,
}

impl BackupSummary {
    pub fn describe(&self) -> String {
        let c = &self.manifest.counts;
        let mut out = format!(
            "backup: {} documents ({} deleted), {} pages, {} keyring rows, {} blobs ({:.1} MiB), \
             {} index files ({:.1} MiB), {} unfinished jobs",
            c.documents,
            c.deleted_documents,
            c.pages,
            c.keyring_rows,
            c.blobs,
            c.blob_bytes as f64 / (1024.0 * 1024.0),
            c.index_files,
            c.index_bytes as f64 / (1024.0 * 1024.0),
            c.open_jobs
        );
        if self.index_documents_purged > 0 {
            out.push_str(&format!(
                "; {} documents deleted during the backup were purged from its index copy",
                self.index_documents_purged
            ));
        }
        if self.index_copy_retries > 0 {
            out.push_str(&format!(
                "; the index copy started over {} times (commits during the copy)",
                self.index_copy_retries
            ));
        }
        if !self.manifest.missing_blobs.is_empty() {
            out.push_str(&format!(
                "\n{} referenced blobs vanished during the backup (documents deleted meanwhile):",
                self.manifest.missing_blobs.len()
            ));
            for name in &self.manifest.missing_blobs {
                out.push_str(&format!("\n  {name}"));
            }
        }
        out.push_str("\nthe KEK is not in the backup: keep it escrowed separately");
        out
    }
}

/// Takes a backup of the archive `config` names into `dest` (created; must be empty if it
/// exists).
pub async fn backup(config: &Config, dest: &Path) -> anyhow::Result<BackupSummary> {
    let database = config.database()?;
    if !Db::archive_exists(&database).await? {
        match &database {
            crate::config::DatabaseLocation::Sqlite(path) => {
                bail!("no database at {}", path.display())
            }
            crate::config::DatabaseLocation::Postgres(_) => {
                bail!("the PostgreSQL database (database.url) holds no archive")
            }
        }
    }
    let published = matches!(
        config.object_storage()?,
        crate::config::ObjectStorage::S3 { .. }
    );
    let objects = crate::store::vault::open_blobs(config)?;
    let created = !dest.exists();
    prepare_empty_dir(dest, "backup destination")?;
    if let Err(error) = refuse_nested(&config.data_dir, dest) {
        if created {
            let _ = fs::remove_dir(dest);
        }
        return Err(error);
    }
    let keys = crate::ops::keys::load_existing_keys(config)?;
    let db = Db::open_for_reading(&database)
        .await
        .context("opening the database for reading")?;
    let mut files = Vec::new();

    // 1. The index, first: every page it holds then has its rows in the later snapshot.
    let live_inventory = db.inventory().await?;
    let keyring = Keyring::new(keys.clone(), &live_inventory.keyring);
    keyring.check_kek()?;
    let mut index_copy_retries = 0;
    let index_key = keyring.service_key(&live_inventory, "index")?;
    if let Some((key_id, key)) = index_key.clone() {
        let (index_dir, dest_index) = (config.index_dir(), dest.join("index"));
        let blobs = objects.clone();
        let (copied, retries) = tokio::task::spawn_blocking(move || match published {
            // The nodes share no index directory: the writer's published commit is the index.
            true => copy_published_index(blobs, &dest_index, key, key_id),
            false => copy_live_index(&index_dir, &dest_index, key, key_id),
        })
        .await??;
        index_copy_retries = retries;
        files.extend(copied);
    }

    // 2. The database: one consistent snapshot.
    let dest_db = dest.join(DB_FILE);
    db.snapshot_into(&dest_db)
        .await
        .context("snapshotting the database")?;
    db.close().await;
    files.push(hash_file(&dest_db, DB_FILE).context("hashing the database snapshot")?);
    fsync_file(&dest_db)?;
    let snapshot = Db::open_immutable(&dest_db).await?;
    let inventory = snapshot.inventory().await?;
    snapshot.close().await;
    let live_docs: BTreeSet<_> = inventory
        .documents
        .iter()
        .filter(|d| !d.is_deleted())
        .map(|d| d.id)
        .collect();

    // 2b. The index copy at the snapshot's point (see the module docs).
    let mut index_documents_purged = 0;
    if let Some((key_id, key)) = index_key {
        if let Some((purged, pruned)) =
            prune_index_copy(&dest.join("index"), key, key_id, &live_docs).await?
        {
            index_documents_purged = purged;
            files.retain(|f| !f.path.starts_with("index/"));
            files.extend(pruned);
        }
    }

    // 3. Exactly the blobs the snapshot references.
    let mut names = Vec::new();
    for doc in &live_docs {
        names.push(ObjectRef::Original(*doc).blob_name());
    }
    for (doc, page) in &inventory.pages {
        if live_docs.contains(doc) {
            names.extend(
                ObjectRef::page_artifacts(*doc, *page)
                    .iter()
                    .map(|o| o.blob_name()),
            );
        }
    }
    // Batches not yet fully filed: their file and the pages they still hold.
    for (batch, _) in &inventory.batch_originals {
        names.push(ObjectRef::batch_original(*batch).blob_name());
    }
    for (batch, page) in &inventory.batch_pages {
        names.extend(
            ObjectRef::batch_page_artifacts(*batch, *page)
                .iter()
                .map(|o| o.blob_name()),
        );
    }
    // Release attachments and productions.
    for (object, _) in &inventory.release_objects {
        names.push(object.blob_name());
    }
    let (blob_files, missing_blobs) = {
        let (src, dst) = (objects, dest.join("blobs"));
        tokio::task::spawn_blocking(move || copy_blobs(src.as_ref(), &dst, &names)).await??
    };
    let index_files: Vec<_> = files
        .iter()
        .filter(|f| f.path.starts_with("index/"))
        .collect();
    let counts = Counts {
        documents: inventory.documents.len(),
        deleted_documents: inventory.documents.len() - live_docs.len(),
        pages: inventory.pages.len(),
        keyring_rows: inventory.keyring.len(),
        open_jobs: inventory.open_jobs.len(),
        blobs: blob_files.len(),
        blob_bytes: blob_files.iter().map(|f| f.size).sum(),
        index_files: index_files.len(),
        index_bytes: index_files.iter().map(|f| f.size).sum(),
    };
    files.extend(blob_files);
    fsync_tree(dest)?;

    // 4. The manifest, last and atomically.
    let manifest = Manifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        created_at: crate::store::now(),
        chartvault_version: env!("CARGO_PKG_VERSION").to_string(),
        counts,
        missing_blobs,
        files,
    };
    let temp = dest.join(".MANIFEST.json.tmp");
    {
        let mut file = create_new(&temp)?;
        serde_json::to_writer_pretty(&mut file, &manifest)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    // Its MAC first (a manifest without a valid MAC is not restored), then the manifest.
    let manifest_bytes = fs::read(&temp)?;
    if let Some((_, key)) = keyring.service_key(&inventory, "row-mac")? {
        let tag = crate::store::row_mac::RowMac::from_key(key).manifest_tag(&manifest_bytes);
        let mut file = create_new(&dest.join(MANIFEST_MAC))?;
        file.write_all(format!("{}\n", hex::encode(tag)).as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&temp, dest.join(MANIFEST))?;
    fsync_dir(dest)?;
    tracing::info!(
        blobs = manifest.counts.blobs,
        index_files = manifest.counts.index_files,
        "backup written"
    );
    Ok(BackupSummary {
        manifest,
        index_copy_retries,
        index_documents_purged,
    })
}

/// Purges from the index copy in `dir` every document not in `keep` (the snapshot's live
/// documents), merging the segments that held them away; then leaves only the files of the
/// new commit. Returns how many documents went and the copy's files when it changed, `None`
/// when nothing had to go.
async fn prune_index_copy(
    dir: &Path,
    key: chartvault_storage::DataKey,
    key_id: chartvault_storage::KeyId,
    keep: &BTreeSet<DocumentId>,
) -> anyhow::Result<Option<(usize, Vec<ManifestFile>)>> {
    if !dir.join("meta.json").exists() {
        return Ok(None);
    }
    let directory = EncryptedDirectory::open_mmap(dir, key.clone(), key_id, 8 << 20)?;
    let index = chartvault_index::SearchIndex::open_in(Box::new(directory))?;
    let indexed = {
        let index = index.clone();
        tokio::task::spawn_blocking(move || index.indexed_pages()).await??
    };
    let stale: BTreeSet<uuid::Uuid> = indexed
        .into_iter()
        .map(|(doc, _)| doc)
        .filter(|doc| !keep.contains(&DocumentId(*doc)))
        .collect();
    if stale.is_empty() {
        drop(index);
        remove_lock_files(dir)?;
        return Ok(None);
    }
    let writer = IndexWriterService::start(&index, Duration::from_millis(50), 512)?;
    for doc in &stale {
        writer.purge_document(*doc).await?;
    }
    writer.shutdown().await?;
    drop(index);
    tracing::info!(
        documents = stale.len(),
        "purged documents deleted during the backup from its index copy"
    );
    let dir = dir.to_path_buf();
    let purged = stale.len();
    let files = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<ManifestFile>> {
        let live = LiveIndexFiles::read(&dir, key, key_id)?;
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if live.is_live(&name) {
                files.push(hash_file(&entry.path(), &format!("index/{name}"))?);
            } else {
                fs::remove_file(entry.path())?;
            }
        }
        fsync_dir(&dir)?;
        Ok(files)
    })
    .await??;
    Ok(Some((purged, files)))
}

/// Removes the (empty) lock files opening an index leaves behind: they are no part of a backup.
fn remove_lock_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".tantivy-") && name.ends_with(".lock") {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Copies the live files of the index in `src` into `dst`; starts over if tantivy commits
/// (meta.json changes) or removes a file during the copy. Returns the files and the number
/// of restarts.
fn copy_live_index(
    src: &Path,
    dst: &Path,
    key: chartvault_storage::DataKey,
    key_id: chartvault_storage::KeyId,
) -> anyhow::Result<(Vec<ManifestFile>, usize)> {
    for attempt in 0..INDEX_COPY_ATTEMPTS {
        if attempt > 0 {
            fs::remove_dir_all(dst)?;
            std::thread::sleep(Duration::from_millis(50 * attempt as u64));
        }
        let meta_before = match fs::read(src.join("meta.json")) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(error) => return Err(error).context("reading the index's meta.json"),
        };
        create_dir_private(dst)?;
        let live = match LiveIndexFiles::read(src, key.clone(), key_id)
            .map_err(anyhow::Error::from)
            .and_then(|live| Ok(segment_files_in(&live, src)?))
        {
            Ok(live) => live,
            Err(error) => {
                tracing::debug!(error = %error, attempt, "index changed while listing its files");
                continue;
            }
        };
        let mut files = Vec::new();
        let mut vanished = false;
        for name in live.iter().map(String::as_str).chain([MANAGED_FILE]) {
            match copy_file(&src.join(name), &dst.join(name)) {
                Ok((size, sha256)) => files.push(ManifestFile {
                    path: format!("index/{name}"),
                    size,
                    sha256,
                }),
                // An index that never wrote a segment has no list of managed files.
                Err(error) if error.kind() == io::ErrorKind::NotFound && name == MANAGED_FILE => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    vanished = true;
                    break;
                }
                Err(error) => return Err(error).with_context(|| format!("copying index/{name}")),
            }
        }
        if vanished {
            continue;
        }
        let meta_after = fs::read(src.join("meta.json")).ok();
        if meta_after.as_deref() != Some(meta_before.as_slice()) {
            continue;
        }
        write_new(&dst.join("meta.json"), &meta_before)?;
        files.push(ManifestFile {
            path: "index/meta.json".to_string(),
            size: meta_before.len() as u64,
            sha256: hex::encode(Sha256::digest(&meta_before)),
        });
        fsync_dir(dst)?;
        return Ok((files, attempt));
    }
    bail!("the index kept changing during {INDEX_COPY_ATTEMPTS} copy attempts; try again")
}

/// The live segment files of `live` present in `dir` (not meta.json or .managed.json).
fn segment_files_in(live: &LiveIndexFiles, dir: &Path) -> io::Result<BTreeSet<String>> {
    let mut files = BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        if let Some(name) = entry?.file_name().to_str() {
            if live.segment_files().contains(name) {
                files.insert(name.to_string());
            }
        }
    }
    Ok(files)
}

/// Copies the index the writer published to the object store into `dst` (see
/// [`chartvault_index::publish`]). Returns its files and 0 restarts (the published commit
/// changes in one step).
fn copy_published_index(
    blobs: Arc<dyn chartvault_storage::BlobStore>,
    dst: &Path,
    key: chartvault_storage::DataKey,
    key_id: chartvault_storage::KeyId,
) -> anyhow::Result<(Vec<ManifestFile>, usize)> {
    create_dir_private(dst)?;
    let mut follower = chartvault_index::Follower::new(dst, blobs, Arc::new(key), key_id)?;
    follower.sync().context("copying the published index")?;
    remove_lock_files(dst)?;
    let mut files = Vec::new();
    for entry in fs::read_dir(dst)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        files.push(hash_file(&entry.path(), &format!("index/{name}"))?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, 0))
}

fn copy_blobs(
    store: &dyn chartvault_storage::BlobStore,
    dst_root: &Path,
    names: &[chartvault_storage::BlobName],
) -> anyhow::Result<(Vec<ManifestFile>, Vec<String>)> {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        let dst = dst_root.join(name.as_str());
        if let Some(parent) = dst.parent() {
            create_dir_private(parent)?;
        }
        let copied = store
            .open(name)
            .map_err(io::Error::from)
            .and_then(|mut reader| copy_from(&mut reader, &dst));
        match copied {
            Ok((size, sha256)) => files.push(ManifestFile {
                path: format!("blobs/{name}"),
                size,
                sha256,
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(blob = %name, "a referenced blob vanished during the backup");
                let _ = fs::remove_file(&dst);
                missing.push(name.to_string());
            }
            Err(error) => return Err(error).with_context(|| format!("copying blob {name}")),
        }
    }
    Ok((files, missing))
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    pub files: usize,
    pub documents: usize,
    pub pages: usize,
    pub blobs: usize,
    pub missing_blobs: usize,
    /// Documents whose OCR job will run when the server starts.
    pub open_jobs: usize,
    pub reconcile: ReconcileSummary,
}

impl RestoreSummary {
    pub fn describe(&self) -> String {
        let r = &self.reconcile;
        let mut out = format!(
            "restore: {} files checked and copied; {} documents, {} pages, {} blobs; index {}: \
             {} documents removed from it, {} pages re-indexed; {} documents will be processed \
             when the server starts",
            self.files,
            self.documents,
            self.pages,
            self.blobs,
            if r.rebuilt { "rebuilt" } else { "kept" },
            r.removed_documents,
            r.reindexed_pages,
            self.open_jobs
        );
        if self.missing_blobs > 0 {
            out.push_str(&format!(
                "\n{} blobs were missing from the backup (see its manifest): `chartvault verify` \
                 reports them",
                self.missing_blobs
            ));
        }
        out
    }
}

/// Restores the backup in `src` into `config.data_dir` (which must be empty or absent), with
/// the KEK `config` names.
pub async fn restore(config: &Config, src: &Path) -> anyhow::Result<RestoreSummary> {
    restore_with(config, src, false).await
}

/// [`restore`]; with `legacy`, a backup whose manifest carries no MAC (written before they
/// did) is accepted.
pub async fn restore_with(
    config: &Config,
    src: &Path,
    legacy: bool,
) -> anyhow::Result<RestoreSummary> {
    let embedded = matches!(
        config.database()?,
        crate::config::DatabaseLocation::Sqlite(_)
    ) && matches!(
        config.object_storage()?,
        crate::config::ObjectStorage::Local(_)
    );
    if embedded {
        restore_embedded(config, src, legacy).await
    } else {
        restore_scaled(config, src, legacy).await
    }
}

/// Restores into PostgreSQL or object storage: the backup is restored (checked as always)
/// as an embedded archive in `config.data_dir`, then moved into the stores `config` names:
/// into PostgreSQL by `migrate-store` (rows copied, keyring re-wrapped, objects uploaded as
/// ciphertext, `verify` on the target), or, with the database still SQLite, the objects
/// uploaded and the archive verified. Then the staging copies go. The target database must
/// hold no archive and the target object storage must be empty. The index stays in
/// `data_dir`, and the first index writer to start publishes it.
async fn restore_scaled(
    config: &Config,
    src: &Path,
    legacy: bool,
) -> anyhow::Result<RestoreSummary> {
    let postgres = matches!(
        config.database()?,
        crate::config::DatabaseLocation::Postgres(_)
    );
    let bucket = matches!(
        config.object_storage()?,
        crate::config::ObjectStorage::S3 { .. }
    );
    if postgres && Db::archive_exists(&config.database()?).await? {
        bail!("the restore target's database already holds an archive");
    }
    let target_blobs = crate::store::vault::open_blobs(config)?;
    let listed = target_blobs.clone();
    let occupied = tokio::task::spawn_blocking(move || listed.list("")).await??;
    if !occupied.is_empty() {
        bail!(
            "the restore target's object storage is not empty ({} objects)",
            occupied.len()
        );
    }
    let mut staging = config.clone();
    if postgres {
        staging.database.url = None;
    }
    staging.storage.url = None;
    let summary = restore_embedded(&staging, src, legacy).await?;
    let (errors, report) = if postgres {
        let moved = crate::ops::migrate::migrate_store(&staging, config)
            .await
            .context("moving the restored archive into the target's stores")?;
        (moved.verify_errors, moved.verify_summary)
    } else {
        let staged = crate::store::vault::open_blobs(&staging)?;
        tokio::task::spawn_blocking(move || {
            crate::ops::migrate::copy_objects(staged, target_blobs)
        })
        .await?
        .context("uploading the restored objects")?;
        let report = crate::ops::verify::verify(config).await?;
        (report.errors(), report.summary())
    };
    if errors > 0 {
        bail!("the restored archive does not verify in the target's stores: {report}");
    }
    if postgres {
        let path = staging.db_path().into_os_string();
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone();
            file.push(suffix);
            let _ = fs::remove_file(file);
        }
    }
    if bucket {
        fs::remove_dir_all(staging.blobs_dir()).context("removing the staging objects")?;
    }
    Ok(summary)
}

/// [`restore_with`] into an embedded archive (SQLite, objects on local disk).
async fn restore_embedded(
    config: &Config,
    src: &Path,
    legacy: bool,
) -> anyhow::Result<RestoreSummary> {
    crate::ops::local_objects_dir(config, "restore")?;
    let target = config.data_dir.clone();
    let manifest = read_manifest(src)?;
    // Before anything is written: the KEK is there, the target is empty, the files are intact.
    let keys = crate::ops::keys::load_existing_keys(config)?;
    if target.exists() && fs::read_dir(&target)?.next().is_some() {
        bail!("the restore target {} is not empty", target.display());
    }
    let src_owned = src.to_path_buf();
    let checked = manifest.files.clone();
    tokio::task::spawn_blocking(move || check_files(&src_owned, &checked)).await??;
    check_manifest_mac(src, keys.clone(), legacy).await?;

    prepare_empty_dir(&target, "restore target")?;
    let copied = {
        let (src, target, files) = (src.to_path_buf(), target.clone(), manifest.files.clone());
        tokio::task::spawn_blocking(move || copy_manifest_files(&src, &target, &files)).await?
    };
    if let Err(error) = copied {
        remove_contents(&target);
        return Err(error);
    }

    let db = Db::open(&config.db_path())
        .await
        .context("opening the restored database")?;
    let inventory = db.inventory().await?;
    if let Err(error) = Keyring::new(keys.clone(), &inventory.keyring).check_kek() {
        db.close().await;
        remove_contents(&target);
        return Err(error);
    }
    let reconcile = reconcile_index_with(config, &db, keys).await?;
    db.close().await;
    fsync_tree(&target)?;
    Ok(RestoreSummary {
        files: manifest.files.len(),
        documents: inventory.documents.len(),
        pages: inventory.pages.len(),
        blobs: manifest.counts.blobs,
        missing_blobs: manifest.missing_blobs.len(),
        open_jobs: inventory.open_jobs.len(),
        reconcile,
    })
}

/// Checks the manifest's MAC under the `row-mac` key of the backup's own keyring (unwrapped
/// with the KEK), before anything is restored. Every backup must carry a MAC that verifies,
/// unless `legacy` (a backup written before manifests were MACed, restored on purpose).
async fn check_manifest_mac(
    src: &Path,
    keys: Arc<dyn chartvault_storage::KeyProvider>,
    legacy: bool,
) -> anyhow::Result<()> {
    if legacy && !src.join(MANIFEST_MAC).exists() {
        tracing::warn!("restoring a backup whose manifest has no MAC (--legacy-backup)");
        return Ok(());
    }
    let snapshot = Db::open_immutable(&src.join(DB_FILE)).await?;
    let inventory = snapshot.inventory().await;
    snapshot.close().await;
    let inventory = inventory?;
    let keyring = Keyring::new(keys, &inventory.keyring);
    keyring.check_kek()?;
    let Some((_, key)) = keyring.service_key(&inventory, "row-mac")? else {
        bail!(
            "the backup's archive has no key to check its manifest with: a backup written \
             before manifests carried a MAC is restored with --legacy-backup"
        );
    };
    let tag = fs::read_to_string(src.join(MANIFEST_MAC))
        .ok()
        .and_then(|text| hex::decode(text.trim()).ok())
        .with_context(|| {
            format!(
                "the backup has no readable {MANIFEST_MAC} (a backup written before manifests \
                 carried a MAC is restored with --legacy-backup)"
            )
        })?;
    let manifest = fs::read(src.join(MANIFEST))?;
    if !crate::store::row_mac::RowMac::from_key(key).verify_manifest(&manifest, &tag) {
        bail!("{MANIFEST} does not match its MAC: it was changed after the backup was written");
    }
    Ok(())
}

pub fn read_manifest(src: &Path) -> anyhow::Result<Manifest> {
    let text = fs::read_to_string(src.join(MANIFEST)).with_context(|| {
        format!(
            "reading {}/{MANIFEST} (a backup without a manifest is incomplete)",
            src.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text).context("parsing the manifest")?;
    if manifest.format != FORMAT {
        bail!("{MANIFEST} is not a chartvault backup manifest");
    }
    if manifest.format_version != FORMAT_VERSION {
        bail!(
            "backup format version {} is not supported (this chartvault reads version {FORMAT_VERSION})",
            manifest.format_version
        );
    }
    let mut seen = BTreeSet::new();
    for file in &manifest.files {
        check_relative_path(&file.path)?;
        if !seen.insert(file.path.as_str()) {
            bail!("the manifest lists {} twice", file.path);
        }
    }
    if !seen.contains(DB_FILE) {
        bail!("the manifest lists no database");
    }
    Ok(manifest)
}

/// Manifest paths stay inside the backup and the target: relative, no `.`/`..`, and under
/// the database, `blobs/` or `index/`.
fn check_relative_path(path: &str) -> anyhow::Result<()> {
    let components: Vec<&str> = path.split('/').collect();
    let bad = components
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'));
    let allowed = match components.as_slice() {
        [DB_FILE] => true,
        ["blobs", rest @ ..] | ["index", rest @ ..] => !rest.is_empty(),
        _ => false,
    };
    if bad || !allowed {
        bail!("the manifest lists an unexpected path {path:?}");
    }
    Ok(())
}

fn check_files(src: &Path, files: &[ManifestFile]) -> anyhow::Result<()> {
    let mut bad = Vec::new();
    for file in files {
        match hash_file(&src.join(&file.path), &file.path) {
            Ok(actual) if actual.size == file.size && actual.sha256 == file.sha256 => {}
            Ok(_) => bad.push(format!("{}: content differs from the manifest", file.path)),
            Err(error) => bad.push(format!("{}: {error}", file.path)),
        }
    }
    if !bad.is_empty() {
        let shown: Vec<_> = bad.iter().take(20).cloned().collect();
        bail!(
            "the backup does not match its manifest ({} files):\n  {}",
            bad.len(),
            shown.join("\n  ")
        );
    }
    Ok(())
}

fn copy_manifest_files(src: &Path, target: &Path, files: &[ManifestFile]) -> anyhow::Result<()> {
    for file in files {
        let dst = target.join(&file.path);
        if let Some(parent) = dst.parent() {
            create_dir_private(parent)?;
        }
        let (size, sha256) = copy_file(&src.join(&file.path), &dst)
            .with_context(|| format!("copying {}", file.path))?;
        if size != file.size || sha256 != file.sha256 {
            bail!("{} changed while it was restored", file.path);
        }
    }
    Ok(())
}

/// What [`reconcile_index`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileSummary {
    /// The index did not open and was rebuilt from the page texts.
    pub rebuilt: bool,
    pub removed_documents: usize,
    pub reindexed_pages: usize,
}

/// Brings the index of `config.data_dir` in line with its database (the server must not be
/// running on it): see the module docs.
pub async fn reconcile_index(config: &Config) -> anyhow::Result<ReconcileSummary> {
    let keys = crate::ops::keys::load_existing_keys(config)?;
    let db = Db::open(&config.db_path()).await?;
    let summary = reconcile_index_with(config, &db, keys).await;
    db.close().await;
    summary
}

async fn reconcile_index_with(
    config: &Config,
    db: &Db,
    keys: Arc<dyn chartvault_storage::KeyProvider>,
) -> anyhow::Result<ReconcileSummary> {
    let blobs = LocalBlobStore::open(crate::ops::local_objects_dir(config, "restore")?)?;
    let vault = Vault::new(Arc::new(blobs), keys, db.clone());
    // Re-indexing reads document metadata, whose PHI columns are sealed.
    db.set_phi(vault.phi_cipher().await?);
    let mut summary = ReconcileSummary::default();
    let index = match crate::app::open_index(config, &vault).await {
        Ok(index) => index,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "the restored index does not open: rebuilding it");
            let index_dir = config.index_dir();
            if index_dir.exists() {
                fs::remove_dir_all(&index_dir)?;
            }
            summary.rebuilt = true;
            crate::app::open_index(config, &vault).await?
        }
    };
    let writer = IndexWriterService::start(
        &index,
        Duration::from_millis(config.index.commit_interval_ms),
        config.index.max_batch,
    )?;
    let result = async {
        let inventory = db.inventory().await?;
        let indexed = {
            let index = index.clone();
            tokio::task::spawn_blocking(move || index.indexed_pages()).await??
        };
        let status: HashMap<DocumentId, &str> = inventory
            .documents
            .iter()
            .map(|d| (d.id, d.status.as_str()))
            .collect();
        let rows: HashSet<(DocumentId, u32)> = inventory.pages.iter().copied().collect();
        // Documents the index must forget: unknown to the database, deleted, or holding a
        // page without a row. Purged (merged away), not merely hidden: a deleted document's
        // words must not survive in the restored segment files.
        let mut purge = BTreeSet::new();
        let mut in_index = HashSet::new();
        for (doc, page) in indexed {
            let doc = DocumentId(doc);
            let known = status.get(&doc).is_some_and(|s| *s != "deleted");
            if !known || !rows.contains(&(doc, page)) {
                purge.insert(doc);
            }
            in_index.insert((doc, page));
        }
        for doc in &purge {
            writer.purge_document(doc.0).await?;
            summary.removed_documents += 1;
        }
        let mut batch = Vec::new();
        let mut names = HashMap::new();
        for doc in db.indexed_documents().await? {
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(doc.patient_id) {
                let name = db.patient(doc.patient_id).await?.map(|p| p.name);
                slot.insert(name.unwrap_or_default());
            }
            let patient_name = &names[&doc.patient_id];
            for page in db.pages(doc.id).await? {
                if in_index.contains(&(doc.id, page.page)) && !purge.contains(&doc.id) {
                    continue;
                }
                let text = vault
                    .get(ObjectRef::PageText(doc.id, page.page))
                    .await
                    .with_context(|| {
                        format!("reading the text of page {} of {}", page.page, doc.id)
                    })?;
                batch.push(crate::ingest::pages::page_record(
                    &doc,
                    patient_name,
                    page.page,
                    String::from_utf8_lossy(&text).into_owned(),
                ));
                if batch.len() >= config.index.max_batch.max(1) {
                    summary.reindexed_pages += batch.len();
                    writer.index_pages(std::mem::take(&mut batch)).await?;
                }
            }
        }
        summary.reindexed_pages += batch.len();
        writer.index_pages(batch).await?;
        anyhow::Ok(())
    }
    .await;
    writer.shutdown().await?;
    result?;
    Ok(summary)
}

// ---- files ----

fn prepare_empty_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("the {what} {} is not a directory", dir.display());
        }
        if fs::read_dir(dir)?.next().is_some() {
            bail!("the {what} {} is not empty", dir.display());
        }
        return Ok(());
    }
    create_dir_private(dir).with_context(|| format!("creating the {what} {}", dir.display()))
}

/// A backup inside the data directory (or the other way round) would copy itself.
fn refuse_nested(data_dir: &Path, dest: &Path) -> anyhow::Result<()> {
    let data_dir = data_dir.canonicalize()?;
    let dest = dest.canonicalize()?;
    if dest.starts_with(&data_dir) || data_dir.starts_with(&dest) {
        bail!("the backup destination must lie outside the data directory");
    }
    Ok(())
}

fn create_dir_private(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn create_new(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Copies `src` to the new file `dst` byte for byte, fsyncs it, and returns its size and
/// hex SHA-256. `NotFound` when `src` does not exist.
fn copy_file(src: &Path, dst: &Path) -> io::Result<(u64, String)> {
    copy_from(&mut File::open(src)?, dst)
}

/// Copies what `input` reads to the new file `dst`, fsyncs it, and returns its size and hex
/// SHA-256.
fn copy_from(input: &mut dyn Read, dst: &Path) -> io::Result<(u64, String)> {
    let mut output = create_new(dst)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n])?;
        size += n as u64;
    }
    output.sync_all()?;
    Ok((size, hex::encode(hasher.finalize())))
}

fn hash_file(path: &Path, name: &str) -> io::Result<ManifestFile> {
    let mut input = File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut input, &mut hasher)?;
    Ok(ManifestFile {
        path: name.to_string(),
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn fsync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Fsyncs every directory under `root` (and `root`), so the new entries are durable.
fn fsync_tree(root: &Path) -> io::Result<()> {
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut index = 0;
    while index < dirs.len() {
        for entry in fs::read_dir(&dirs[index])? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        index += 1;
    }
    for dir in dirs.iter().rev() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Best effort after a failed restore: empties the target again.
fn remove_contents(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let _ = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_must_stay_inside_the_backup() {
        for ok in [
            "chartvault.db",
            "blobs/originals/ab/x",
            "index/meta.json",
            "index/.managed.json",
        ] {
            assert!(check_relative_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "blobs/../../x",
            "blobs",
            "index/",
            "other/file",
            "blobs//x",
            "MANIFEST.json",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
    }
}
