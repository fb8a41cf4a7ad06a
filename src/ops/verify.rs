//! `chartvault verify`: an integrity check of a data directory, safe beside a running server.
//!
//! What it promises:
//! - **Read-only.** The database is opened read-only (no migrations, no pragmas that write),
//!   blobs and index files are only read, the index is opened without a writer (so never
//!   takes the writer lock), and the KEK is loaded without ever creating a key file.
//! - **Every byte authenticated.** Every blob is decrypted to its end through the storage
//!   crate's `DecryptReader`, with its data key from the keyring (unwrapped under the KEK)
//!   and the associated data of the object its *name* says it is ([`ObjectRef`]): a flipped
//!   bit, a truncation or ciphertext moved under another name fails. Every original's
//!   plaintext is hashed against `documents.sha256`. Every index file is authenticated
//!   under the index's key.
//! - **Cross-checked.** Rows whose blobs are missing, blobs no row references, keyring rows
//!   nothing references, index pages without a `pages` row (or of a deleted document), pages
//!   indexed twice, and `pages` rows of indexed documents missing from the index.
//! - **No false alarms from a live server.** Blobs are listed *before* the database snapshot
//!   is read (the service commits a blob before the row naming it, so every row of the
//!   snapshot has its blob already), and every "missing" or "unreferenced" candidate is
//!   re-confirmed against a fresh read of the database before it is reported. Page artifacts
//!   of documents still being processed are work in progress, not orphans.
//! - **No PHI in the output.** Findings name blob names, index file names, document ids,
//!   page numbers and key ids: never content, names or MRNs.
//! - A document with status `deleted` (a shredded document's tombstone) is expected to have
//!   nothing: no blobs, pages rows or index entries. Anything of it that remains is reported.
//!
//! Findings have a [`Severity`]: `error` (the archive lost or corrupted something, or holds
//! what it should not) or `notice` ([`FindingKind::InterruptedUpload`] and
//! [`FindingKind::OrphanKey`]: by-products of uploads in flight or interrupted, which the
//! next server start cleans up, and keyring rows that protect nothing). The command exits 0
//! without errors (notices alone included), 1 with any error finding, 2 when it could not
//! run (no data directory or database, no KEK, a KEK that does not match the archive, I/O).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use chartvault_storage::{
    read_key_id, BlobName, BlobStore, DecryptReader, KeyId, LocalBlobStore, StorageError,
};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::DocumentId;
use crate::ops::findings::{Checked, Finding, FindingKind, VerifyReport};
use crate::ops::keys::{KeyLookup, Keyring};
use crate::store::inventory::Inventory;
use crate::store::prelude::*;
use crate::store::vault::ObjectRef;
use crate::store::Db;

/// What reading one blob to its end found.
enum BlobOutcome {
    Authentic {
        key_id: KeyId,
        bytes: u64,
        sha256: Option<String>,
    },
    Missing,
    KeyMissing(KeyId),
    KeyCorrupt(KeyId, String),
    Corrupt {
        key_id: Option<KeyId>,
        reason: String,
    },
}

/// Opens `name`, reads its key id, unwraps its key and decrypts it to the end under `aad`,
/// hashing the plaintext when `hash` is set.
fn authenticate(
    store: &dyn BlobStore,
    keyring: &Keyring,
    name: &BlobName,
    aad: &[u8],
    hash: bool,
) -> BlobOutcome {
    let mut reader = match store.open(name) {
        Ok(reader) => reader,
        Err(StorageError::NotFound(_)) => return BlobOutcome::Missing,
        Err(error) => {
            return BlobOutcome::Corrupt {
                key_id: None,
                reason: format!("cannot be opened: {error}"),
            }
        }
    };
    let key_id = match read_key_id(&mut reader) {
        Ok(key_id) => key_id,
        Err(error) => {
            return BlobOutcome::Corrupt {
                key_id: None,
                reason: describe_storage_error(&error),
            }
        }
    };
    if let Err(error) = reader.seek(SeekFrom::Start(0)) {
        return BlobOutcome::Corrupt {
            key_id: Some(key_id),
            reason: format!("cannot be read: {error}"),
        };
    }
    let key = match keyring.data_key(&key_id) {
        KeyLookup::Found(key) => key,
        KeyLookup::NoRow => return BlobOutcome::KeyMissing(key_id),
        KeyLookup::Unwrap(error) => return BlobOutcome::KeyCorrupt(key_id, error),
    };
    let mut decrypting = match DecryptReader::new(reader, &key, aad) {
        Ok(decrypting) => decrypting,
        Err(error) => {
            return BlobOutcome::Corrupt {
                key_id: Some(key_id),
                reason: describe_storage_error(&error),
            }
        }
    };
    let mut hasher = hash.then(Sha256::new);
    let mut buffer = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
    let mut bytes = 0u64;
    loop {
        match decrypting.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(&buffer[..n]);
                }
            }
            Err(error) => {
                let error = StorageError::from_io(format!("blob {name}"), error);
                return BlobOutcome::Corrupt {
                    key_id: Some(key_id),
                    reason: describe_storage_error(&error),
                };
            }
        }
    }
    BlobOutcome::Authentic {
        key_id,
        bytes,
        sha256: hasher.map(|h| hex::encode(h.finalize())),
    }
}

fn describe_storage_error(error: &StorageError) -> String {
    match error {
        StorageError::Decrypt => "does not authenticate: altered, truncated, or the ciphertext \
                                  of another object"
            .to_string(),
        StorageError::Format(what) => format!("not a readable chartvault object: {what}"),
        other => other.to_string(),
    }
}

/// The blob store's own view (committed blobs) and every other file under `blobs/`.
struct Listing {
    blobs: Vec<BlobName>,
    /// Paths (relative to `blobs/`) of the store's temp files.
    temp_files: Vec<String>,
    /// Paths of files that are neither blobs nor temp files.
    strays: Vec<String>,
}

const TEMP_PREFIX: &str = ".tmp-";

fn list_blob_dir(root: &Path) -> anyhow::Result<Listing> {
    if !root.is_dir() {
        return Ok(Listing {
            blobs: Vec::new(),
            temp_files: Vec::new(),
            strays: Vec::new(),
        });
    }
    let store = LocalBlobStore::open(root)?;
    let blobs = store.list("")?;
    let known: BTreeSet<&str> = blobs.iter().map(|b| b.as_str()).collect();
    let mut temp_files = Vec::new();
    let mut strays = Vec::new();
    for path in walk_files(root)? {
        let relative = relative_name(root, &path);
        if known.contains(relative.as_str()) {
            continue;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file_name.starts_with(TEMP_PREFIX) {
            temp_files.push(relative);
        } else {
            strays.push(relative);
        }
    }
    Ok(Listing {
        blobs,
        temp_files,
        strays,
    })
}

/// Every regular file under `dir`, recursively (symlinks are not followed).
pub(crate) fn walk_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if file_type.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// A blob to authenticate and what it is expected to be.
struct ToCheck {
    name: BlobName,
    object: Option<ObjectRef>,
    /// Referenced by the snapshot (else an orphan candidate).
    referenced: bool,
}

struct CheckedBlob {
    check: ToCheck,
    outcome: BlobOutcome,
}

/// Verifies the data directory of `config` (see the module docs). `Err` means the check
/// could not run (exit code 2); findings are in the report.
pub async fn verify(config: &Config) -> anyhow::Result<VerifyReport> {
    let data_dir = config.data_dir.clone();
    if !data_dir.is_dir() {
        bail!("no data directory at {}", data_dir.display());
    }
    let database = config.database()?;
    if !Db::archive_exists(&database).await? {
        bail!("no archive at {database}");
    }
    let keys = crate::ops::keys::load_existing_keys(config)?;

    // Blobs first, then the snapshot: every row in the snapshot has its blob committed.
    // On local disk the directory is walked too (temporary files, strays); on object storage
    // the bucket's listing is all there is.
    let local_dir = match config.object_storage()? {
        crate::config::ObjectStorage::Local(dir) => Some(dir),
        crate::config::ObjectStorage::S3 { .. } => None,
    };
    let store: Option<Arc<dyn BlobStore>> = match &local_dir {
        Some(dir) if !dir.is_dir() => None,
        _ => Some(crate::store::vault::open_blobs(config)?),
    };
    let listing = {
        let (root, store) = (local_dir.clone(), store.clone());
        tokio::task::spawn_blocking(move || match (root, store) {
            (Some(root), _) => list_blob_dir(&root),
            // The published search index (`index/`) is a copy of the index's commits, not
            // archive objects; the index itself is checked below.
            (None, Some(store)) => Ok(Listing {
                blobs: store
                    .list("")?
                    .into_iter()
                    .filter(|name| {
                        !name
                            .as_str()
                            .starts_with(chartvault_index::PUBLISHED_PREFIX)
                    })
                    .collect(),
                temp_files: Vec::new(),
                strays: Vec::new(),
            }),
            (None, None) => unreachable!("object storage always has a store"),
        })
        .await??
    };
    let db = Db::open_for_reading(&database)
        .await
        .context("opening the database read-only")?;
    let inventory = db.inventory().await.context("reading the database")?;
    let keyring = Keyring::new(keys, &inventory.keyring);
    keyring.check_kek()?;

    let mut report = new_report(data_dir, &inventory);
    let expected = expected_blobs(&inventory);
    let to_check = blobs_to_check(&listing, &expected, &mut report);
    let keyring = Arc::new(keyring);
    let checked = authenticate_all(store, keyring.clone(), to_check).await?;
    let sha_of = recorded_sha256s(&inventory);
    let mut referenced_keys: BTreeSet<String> = inventory
        .service_keys
        .iter()
        .map(|(_, key_id)| key_id.clone())
        .collect();
    for CheckedBlob { check, outcome } in checked {
        if let Some(key_id) = outcome_key(&outcome) {
            referenced_keys.insert(key_id.to_hex());
        }
        if check.referenced {
            report_outcome(&db, &check, outcome, &sha_of, &mut report).await?;
        } else if let Some(finding) = confirm_orphan(&db, &check, &outcome, &mut report).await? {
            report.findings.push(finding);
        }
    }
    report_orphan_keys(&inventory, &referenced_keys, &mut report);

    crate::ops::verify_index::check_index(config, &db, &inventory, &keyring, &mut report).await?;

    db.close().await;
    report.findings.sort_by_key(|f| (f.severity as u8, f.kind));
    Ok(report)
}

/// A report with the snapshot's counts and no findings yet.
fn new_report(data_dir: PathBuf, inventory: &Inventory) -> VerifyReport {
    VerifyReport {
        data_dir,
        checked: Checked {
            documents: inventory.documents.len(),
            deleted_documents: inventory
                .documents
                .iter()
                .filter(|d| d.is_deleted())
                .count(),
            pages: inventory.pages.len(),
            keyring_rows: inventory.keyring.len(),
            ..Checked::default()
        },
        findings: Vec::new(),
    }
}

/// Every blob the snapshot expects to exist, and the object each one is: originals and
/// page artifacts of live documents, a batch's file and the pages it still holds (see
/// `crate::ingest::batch`), release attachments and productions (see `crate::legal::release`).
fn expected_blobs(inventory: &Inventory) -> BTreeMap<BlobName, ObjectRef> {
    let live: HashSet<DocumentId> = inventory
        .documents
        .iter()
        .filter(|d| !d.is_deleted())
        .map(|d| d.id)
        .collect();
    let mut expected: BTreeMap<BlobName, ObjectRef> = BTreeMap::new();
    let mut expect = |object: ObjectRef| {
        expected.insert(object.blob_name(), object);
    };
    for doc in &live {
        expect(ObjectRef::Original(*doc));
    }
    for (doc, page) in &inventory.pages {
        if live.contains(doc) {
            ObjectRef::page_artifacts(*doc, *page)
                .into_iter()
                .for_each(&mut expect);
        }
    }
    for (batch, _) in &inventory.batch_originals {
        expect(ObjectRef::batch_original(*batch));
    }
    for (batch, page) in &inventory.batch_pages {
        ObjectRef::batch_page_artifacts(*batch, *page)
            .into_iter()
            .for_each(&mut expect);
    }
    for (object, _) in &inventory.release_objects {
        expect(*object);
    }
    expected
}

/// The blobs to decrypt: every listed blob (referenced by the snapshot or an orphan
/// candidate) and every expected one the listing did not see (committed just after it, or
/// missing). Staging objects, temp files and stray files are reported here.
fn blobs_to_check(
    listing: &Listing,
    expected: &BTreeMap<BlobName, ObjectRef>,
    report: &mut VerifyReport,
) -> Vec<ToCheck> {
    let mut to_check = Vec::new();
    let listed: BTreeSet<&BlobName> = listing.blobs.iter().collect();
    for name in &listing.blobs {
        if let Some(doc) = ObjectRef::staged_document(name) {
            let mut finding = Finding::blob(
                FindingKind::InterruptedUpload,
                name.as_str(),
                "staging object of an upload in flight or interrupted (removed at the next \
                 server start)",
            );
            finding.document_id = Some(doc.to_string());
            report.findings.push(finding);
            continue;
        }
        to_check.push(match expected.get(name) {
            Some(object) => ToCheck {
                name: name.clone(),
                object: Some(*object),
                referenced: true,
            },
            None => ToCheck {
                name: name.clone(),
                object: ObjectRef::from_blob_name(name),
                referenced: false,
            },
        });
    }
    for (name, object) in expected {
        if !listed.contains(name) {
            to_check.push(ToCheck {
                name: name.clone(),
                object: Some(*object),
                referenced: true,
            });
        }
    }
    for temp in &listing.temp_files {
        report.findings.push(Finding::blob(
            FindingKind::InterruptedUpload,
            temp,
            "temp file of a blob write in flight or interrupted (removed at the next server \
             start)",
        ));
    }
    for stray in &listing.strays {
        report.findings.push(Finding::blob(
            FindingKind::OrphanBlob,
            stray,
            "a file in the blob store that is not a blob (invalid name)",
        ));
    }
    to_check
}

/// Decrypts every blob to check to its end (blocking I/O and CPU, off the async threads);
/// originals, productions and attachments are hashed on the way.
async fn authenticate_all(
    store: Option<Arc<dyn BlobStore>>,
    keyring: Arc<Keyring>,
    to_check: Vec<ToCheck>,
) -> anyhow::Result<Vec<CheckedBlob>> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<CheckedBlob>> {
        // No objects directory at all: every object is missing.
        let Some(store) = store else {
            return Ok(to_check
                .into_iter()
                .map(|check| CheckedBlob {
                    check,
                    outcome: BlobOutcome::Missing,
                })
                .collect());
        };
        let store = &*store;
        Ok(to_check
            .into_iter()
            .map(|check| {
                let outcome = match check.object {
                    Some(object) => authenticate(
                        store,
                        &keyring,
                        &check.name,
                        &object.aad(),
                        matches!(
                            object,
                            ObjectRef::Original(_)
                                | ObjectRef::Production(_)
                                | ObjectRef::Attachment(_)
                        ),
                    ),
                    None => header_only(store, &check.name),
                };
                CheckedBlob { check, outcome }
            })
            .collect())
    })
    .await?
}

/// The SHA-256 recorded for each hashed object: a live document's original, a batch's
/// file, a release attachment or production.
fn recorded_sha256s(inventory: &Inventory) -> HashMap<uuid::Uuid, &str> {
    inventory
        .documents
        .iter()
        .filter(|d| !d.is_deleted())
        .map(|d| (d.id.0, d.sha256.as_str()))
        .chain(
            inventory
                .batch_originals
                .iter()
                .map(|(id, sha)| (id.0, sha.as_str())),
        )
        .chain(
            inventory
                .release_objects
                .iter()
                .map(|(object, sha)| (object.record_id(), sha.as_str())),
        )
        .collect()
}

/// What a referenced blob's outcome means for the report.
async fn report_outcome(
    db: &Db,
    check: &ToCheck,
    outcome: BlobOutcome,
    sha_of: &HashMap<uuid::Uuid, &str>,
    report: &mut VerifyReport,
) -> anyhow::Result<()> {
    let name = check.name.as_str();
    match outcome {
        BlobOutcome::Authentic { bytes, sha256, .. } => {
            report.checked.blobs += 1;
            report.checked.blob_bytes += bytes;
            if let (Some(actual), Some(object)) = (sha256, check.object) {
                report.checked.originals_hashed += 1;
                let recorded = sha_of.get(&object.record_id()).copied().unwrap_or_default();
                if !actual.eq_ignore_ascii_case(recorded) {
                    report.findings.push(Finding::blob(
                        FindingKind::ChecksumMismatch,
                        name,
                        "the object decrypts, but its SHA-256 differs from the one recorded \
                         at upload",
                    ));
                }
            }
        }
        BlobOutcome::Missing => {
            let object = check.object.expect("referenced blobs are objects");
            if still_expected(db, object).await? {
                report.findings.push(Finding::blob(
                    FindingKind::BlobMissing,
                    name,
                    match object {
                        ObjectRef::Original(_) => "the document's original is missing",
                        ObjectRef::Production(_) => "a production's PDF is missing",
                        ObjectRef::Attachment(_) => "a release attachment is missing",
                        _ => "a page artifact recorded in `pages` is missing",
                    },
                ));
            }
        }
        BlobOutcome::KeyMissing(key_id) => report.findings.push(
            Finding::blob(
                FindingKind::KeyMissing,
                name,
                "the blob's data key has no keyring row: it cannot be decrypted",
            )
            .with_key(&key_id.to_hex()),
        ),
        BlobOutcome::KeyCorrupt(key_id, error) => report.findings.push(
            Finding::blob(
                FindingKind::KeyCorrupt,
                name,
                format!("the blob's keyring row does not unwrap: {error}"),
            )
            .with_key(&key_id.to_hex()),
        ),
        BlobOutcome::Corrupt { key_id, reason } => {
            let finding = Finding::blob(FindingKind::BlobCorrupt, name, reason);
            report.findings.push(match key_id {
                Some(key_id) => finding.with_key(&key_id.to_hex()),
                None => finding,
            });
        }
    }
    Ok(())
}

/// Keyring rows no blob or service refers to.
fn report_orphan_keys(
    inventory: &Inventory,
    referenced_keys: &BTreeSet<String>,
    report: &mut VerifyReport,
) {
    for row in &inventory.keyring {
        if !referenced_keys.contains(&row.key_id) {
            report.findings.push(
                Finding::new(
                    FindingKind::OrphanKey,
                    "a keyring row no blob or service refers to (a write in flight, or left \
                     by an interrupted one)",
                )
                .with_key(&row.key_id),
            );
        }
    }
}

/// Reads just the key id of a blob whose name is not an object (so there is no identity to
/// authenticate it against).
fn header_only(store: &dyn BlobStore, name: &BlobName) -> BlobOutcome {
    let mut reader = match store.open(name) {
        Ok(reader) => reader,
        Err(StorageError::NotFound(_)) => return BlobOutcome::Missing,
        Err(error) => {
            return BlobOutcome::Corrupt {
                key_id: None,
                reason: error.to_string(),
            }
        }
    };
    match read_key_id(&mut reader) {
        Ok(key_id) => BlobOutcome::Corrupt {
            key_id: Some(key_id),
            reason: "its name is not that of any chartvault object".into(),
        },
        Err(error) => BlobOutcome::Corrupt {
            key_id: None,
            reason: describe_storage_error(&error),
        },
    }
}

fn outcome_key(outcome: &BlobOutcome) -> Option<KeyId> {
    match outcome {
        BlobOutcome::Authentic { key_id, .. }
        | BlobOutcome::KeyMissing(key_id)
        | BlobOutcome::KeyCorrupt(key_id, _) => Some(*key_id),
        BlobOutcome::Corrupt { key_id, .. } => *key_id,
        BlobOutcome::Missing => None,
    }
}

/// Whether a blob the snapshot expected is still expected now (its document not deleted
/// meanwhile, its page row still there).
async fn still_expected(db: &Db, object: ObjectRef) -> anyhow::Result<bool> {
    let Some(doc) = object.document() else {
        return Ok(true); // productions and attachments: their rows are never deleted
    };
    let status = db.document_status(doc).await?;
    if status.is_none() || status.as_deref() == Some("deleted") {
        return Ok(false);
    }
    match object.page() {
        None => Ok(true),
        Some(page) => Ok(db.page_exists(doc, page).await?),
    }
}

/// Re-checks an unreferenced blob against the database as it is now: `None` if a row
/// refers to it by now, or if it is a page artifact of a document still being processed.
async fn confirm_orphan(
    db: &Db,
    check: &ToCheck,
    outcome: &BlobOutcome,
    report: &mut VerifyReport,
) -> anyhow::Result<Option<Finding>> {
    let name = check.name.as_str();
    let Some(object) = check.object else {
        return Ok(Some(Finding::blob(
            FindingKind::OrphanBlob,
            name,
            "a blob whose name is not that of any chartvault object",
        )));
    };
    if matches!(outcome, BlobOutcome::Missing) {
        // Gone since the listing (deleted by a shred or a discarded write): nothing to say.
        return Ok(None);
    }
    let Some(doc) = object.document() else {
        if db.release_object_exists(object.record_id()).await? {
            return Ok(None); // recorded after the snapshot
        }
        return Ok(Some(Finding::blob(
            FindingKind::OrphanBlob,
            name,
            "unreferenced: no release attachment or production row refers to it (a \
             production that failed half-way, or one in the making)",
        )));
    };
    let status = db.document_status(doc).await?;
    if status.is_none() && db.batch_holds(doc, object.page()).await? {
        return Ok(None);
    }
    let why = match status.as_deref() {
        None => "no document row refers to it",
        Some("deleted") => "it belongs to a deleted (shredded) document",
        Some(status) => match object.page() {
            None => return Ok(None), // the document row appeared after the snapshot
            Some(page) => {
                if db.page_exists(doc, page).await? {
                    return Ok(None);
                }
                if matches!(status, "accepted" | "processing") {
                    report.checked.in_progress_blobs += 1;
                    return Ok(None);
                }
                "no `pages` row refers to it"
            }
        },
    };
    let authenticity = match outcome {
        BlobOutcome::Authentic { .. } => "it authenticates as the object its name says",
        BlobOutcome::KeyMissing(_) => "its data key is not in the keyring",
        BlobOutcome::KeyCorrupt(..) => "its keyring row does not unwrap",
        BlobOutcome::Corrupt { .. } => "it does not authenticate as the object its name says",
        BlobOutcome::Missing => unreachable!("handled above"),
    };
    Ok(Some(Finding::blob(
        FindingKind::OrphanBlob,
        name,
        format!("unreferenced: {why}; {authenticity}"),
    )))
}
