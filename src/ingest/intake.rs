//! Scanner hot folders: a records department's scanners drop files on a share, and the
//! archive takes them (`[[intake.folders]]`).
//!
//! Promises, for each folder:
//! - a file is taken only once its size and modification time have stayed the same for
//!   `intake.settle_ms` (a scanner writing slowly, or in pieces, is waited for); the folders
//!   are polled, so a mounted network share works like a local disk;
//! - a file is taken through the same services as an upload (`POST /batches` for a `batches`
//!   folder, `POST /documents` with the metadata of the sidecar `NAME.EXT.json` for a
//!   `documents` folder), as the folder's user, and audited as theirs;
//! - once the archive holds it durably, a receipt `done/TIME-ID.json` (kind, id, SHA-256, size,
//!   pages, whether it was a duplicate, time; never the file's name, which may name the
//!   patient) is written and the file is deleted: a plaintext scan does not linger;
//! - nothing is taken twice: a file seen again (a restart between the archive's commit and
//!   the delete, or the same scan dropped twice) is recognised by its hash, stored no second
//!   time, and deleted with a receipt that says `duplicate`;
//! - a file that cannot be taken (not a scan, too large, bad sidecar metadata, no sidecar
//!   within `intake.sidecar_wait_secs`) is moved to `quarantine/` with `NAME.reason.txt`
//!   beside it, and deleted after `intake.quarantine_days`; a failure of the archive itself
//!   (database, disk) leaves the file where it is, to be tried at the next poll.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::access::policy::{principal_of_user, Principal};
use crate::app::Archive;
use crate::config::{IntakeFolder, IntakeKind};
use crate::error::{AppError, ErrorCode};
use crate::ingest::upload::{self, StagingUpload, ValidMetadata};

/// Subfolders of every intake folder.
pub const DONE: &str = "done";
pub const QUARANTINE: &str = "quarantine";
const SIDECAR_EXTENSION: &str = "json";
const REASON_SUFFIX: &str = ".reason.txt";

/// Starts the intake loop when folders are configured.
pub fn spawn(state: Archive) {
    if state.config.intake.folders.is_empty() {
        return;
    }
    tokio::spawn(async move { run(state).await });
}

async fn run(state: Archive) {
    let interval = Duration::from_millis(state.config.intake.poll_interval_ms);
    let mut folders: Vec<Folder> = state
        .config
        .intake
        .folders
        .iter()
        .cloned()
        .map(Folder::new)
        .collect();
    tracing::info!(folders = folders.len(), "scanner intake started");
    loop {
        for folder in &mut folders {
            if let Err(error) = folder.poll(&state).await {
                tracing::error!(folder = %folder.config.path.display(), error = %format!("{error:#}"), "intake poll failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// What a file looked like when last seen, and since when it has looked so.
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

struct Folder {
    config: IntakeFolder,
    seen: HashMap<PathBuf, Seen>,
    /// The last problem with the folder's user, logged once until it changes.
    user_problem: Option<String>,
}

/// Why a file was not taken.
enum NotTaken {
    /// The file itself: it goes to quarantine with this reason.
    Refused(String),
    /// The archive could not take it now: tried again at the next poll.
    Later(AppError),
}

impl From<AppError> for NotTaken {
    fn from(error: AppError) -> NotTaken {
        match error.code {
            ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::AuditUnavailable => {
                NotTaken::Later(error)
            }
            _ => NotTaken::Refused(error.message),
        }
    }
}

#[derive(Serialize)]
struct Receipt {
    kind: IntakeKind,
    id: String,
    sha256: String,
    size_bytes: u64,
    pages: u32,
    duplicate: bool,
    taken_at: String,
}

impl Folder {
    fn new(config: IntakeFolder) -> Folder {
        Folder {
            config,
            seen: HashMap::new(),
            user_problem: None,
        }
    }

    async fn poll(&mut self, state: &Archive) -> anyhow::Result<()> {
        let root = self.config.path.clone();
        for sub in [DONE, QUARANTINE] {
            create_private_dir(&root.join(sub))?;
        }
        purge_quarantine(
            &root.join(QUARANTINE),
            Duration::from_secs(u64::from(state.config.intake.quarantine_days) * 86_400),
        )?;
        let settle = Duration::from_millis(state.config.intake.settle_ms);
        let sidecar_wait = Duration::from_secs(state.config.intake.sidecar_wait_secs);
        let files = self.observe(&root)?;
        let mut settled = Vec::new();
        for path in &files {
            let seen = &self.seen[path];
            if seen.since.elapsed() >= settle {
                settled.push((path.clone(), seen.since.elapsed()));
            }
        }
        if settled.is_empty() {
            return Ok(());
        }
        let principal = match principal_of_user(state, &self.config.user).await {
            Ok(principal) if principal.role == crate::domain::Role::Records => {
                self.user_problem = None;
                principal
            }
            result => {
                let problem = match result {
                    Ok(_) => format!("the user '{}' is not a records user", self.config.user),
                    Err(error) => error.message,
                };
                if self.user_problem.as_ref() != Some(&problem) {
                    tracing::error!(folder = %root.display(), problem = %problem, "the intake's user cannot take files; they stay in the folder");
                    self.user_problem = Some(problem);
                }
                return Ok(());
            }
        };
        for (path, unchanged_for) in settled {
            let sidecar = sidecar_of(&path);
            match self.config.kind {
                IntakeKind::Documents if is_sidecar(&path) => {
                    // A sidecar is taken with its file; alone for too long, it is quarantined.
                    let file = path.with_extension("");
                    if !file.exists() && unchanged_for >= sidecar_wait {
                        quarantine(&root, &path, "a sidecar without its scan")?;
                        self.seen.remove(&path);
                    }
                    continue;
                }
                IntakeKind::Documents => {
                    let sidecar_settled = self
                        .seen
                        .get(&sidecar)
                        .is_some_and(|seen| seen.since.elapsed() >= settle);
                    if !sidecar_settled {
                        if !sidecar.exists() && unchanged_for >= sidecar_wait {
                            quarantine(
                                &root,
                                &path,
                                &format!(
                                    "no metadata: a document needs its sidecar {{NAME}}.{SIDECAR_EXTENSION} \
                                     within intake.sidecar_wait_secs"
                                ),
                            )?;
                            self.seen.remove(&path);
                        }
                        continue;
                    }
                }
                IntakeKind::Batches => {}
            }
            match self.take(state, &principal, &path).await {
                Ok(receipt) => {
                    write_receipt(&root, &receipt)?;
                    remove_file(&path)?;
                    if self.config.kind == IntakeKind::Documents {
                        remove_file(&sidecar)?;
                        self.seen.remove(&sidecar);
                    }
                    self.seen.remove(&path);
                    tracing::info!(folder = %root.display(), id = %receipt.id, duplicate = receipt.duplicate, pages = receipt.pages, "intake took a file");
                }
                Err(NotTaken::Refused(reason)) => {
                    quarantine(&root, &path, &reason)?;
                    if self.config.kind == IntakeKind::Documents && sidecar.exists() {
                        quarantine(&root, &sidecar, &reason)?;
                        self.seen.remove(&sidecar);
                    }
                    self.seen.remove(&path);
                    tracing::warn!(folder = %root.display(), "intake quarantined a file");
                }
                Err(NotTaken::Later(error)) => {
                    tracing::error!(folder = %root.display(), error = %error.message, "intake could not take a file now; it stays for the next poll");
                }
            }
        }
        Ok(())
    }

    /// Notes every file of the folder (not its subfolders, not hidden files) and how long it
    /// has been unchanged; forgets files that are gone. Returns the files present.
    fn observe(&mut self, root: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut present = Vec::new();
        for entry in std::fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                continue; // removed meanwhile
            };
            if !metadata.is_file() {
                continue;
            }
            let path = entry.path();
            let (len, modified) = (metadata.len(), metadata.modified().ok());
            match self.seen.get_mut(&path) {
                Some(seen) if seen.len == len && seen.modified == modified => {}
                _ => {
                    self.seen.insert(
                        path.clone(),
                        Seen {
                            len,
                            modified,
                            since: Instant::now(),
                        },
                    );
                }
            }
            present.push(path);
        }
        let here: std::collections::HashSet<&PathBuf> = present.iter().collect();
        self.seen.retain(|path, _| here.contains(path));
        present.sort();
        Ok(present)
    }

    /// Stores the file (and for a document, its sidecar's metadata) through the upload
    /// services, as `principal`.
    async fn take(
        &self,
        state: &Archive,
        principal: &Principal,
        path: &Path,
    ) -> Result<Receipt, NotTaken> {
        let metadata = match self.config.kind {
            IntakeKind::Documents => {
                let json = std::fs::read(sidecar_of(path))
                    .map_err(|e| NotTaken::Later(AppError::internal(e)))?;
                Some(
                    ValidMetadata::parse(&json, &state.config.patients).map_err(|error| {
                        NotTaken::Refused(format!("the sidecar's metadata: {}", error.message))
                    })?,
                )
            }
            IntakeKind::Batches => None,
        };
        let limit = state.config.limits.max_upload_bytes;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| NotTaken::Later(AppError::internal(e)))?;
        let mut staging = StagingUpload::begin(&state.vault, limit)?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(read) => read,
                Err(error) => {
                    staging.abort().await;
                    return Err(NotTaken::Later(AppError::internal(error)));
                }
            };
            if read == 0 {
                break;
            }
            if let Err(error) = staging.push(Bytes::copy_from_slice(&buffer[..read])).await {
                staging.abort().await;
                return Err(error.into());
            }
        }
        let staged = staging.finish().await?;
        let size_bytes = staged.size;
        let taken_at = crate::store::base::now();
        Ok(match metadata {
            Some(metadata) => {
                let accepted = upload::accept(state, staged, metadata, principal).await?;
                Receipt {
                    kind: IntakeKind::Documents,
                    id: accepted.id.to_string(),
                    sha256: accepted.sha256,
                    size_bytes,
                    pages: accepted.pages,
                    duplicate: accepted.duplicate,
                    taken_at,
                }
            }
            None => {
                let accepted = upload::accept_batch(state, staged, principal).await?;
                Receipt {
                    kind: IntakeKind::Batches,
                    id: accepted.id.to_string(),
                    sha256: accepted.sha256,
                    size_bytes,
                    pages: accepted.pages,
                    duplicate: accepted.duplicate,
                    taken_at,
                }
            }
        })
    }
}

fn is_sidecar(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == SIDECAR_EXTENSION)
}

/// `NAME.EXT` → `NAME.EXT.json`.
fn sidecar_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(SIDECAR_EXTENSION);
    PathBuf::from(name)
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn write_receipt(root: &Path, receipt: &Receipt) -> anyhow::Result<()> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let path = root.join(DONE).join(format!("{stamp}-{}.json", receipt.id));
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, serde_json::to_vec_pretty(receipt)?)?;
    std::fs::rename(&temp, &path)?;
    Ok(())
}

/// Moves `path` into `quarantine/` (under a new name if the name is taken) with the reason
/// beside it.
fn quarantine(root: &Path, path: &Path, reason: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = root.join(QUARANTINE);
    let mut target = folder.join(&name);
    if target.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        target = folder.join(format!("{stamp}-{name}"));
    }
    std::fs::rename(path, &target)?;
    let mut reason_file = target.as_os_str().to_owned();
    reason_file.push(REASON_SUFFIX);
    std::fs::write(PathBuf::from(reason_file), format!("{reason}\n"))?;
    Ok(())
}

/// Deletes quarantined files (and their reasons) quarantined longer than `keep` ago, by the
/// time their reason was written.
fn purge_quarantine(folder: &Path, keep: Duration) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let reason = entry?.path();
        let Some(file) = reason
            .to_str()
            .and_then(|path| path.strip_suffix(REASON_SUFFIX))
            .map(PathBuf::from)
        else {
            continue;
        };
        let age = std::fs::metadata(&reason)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok());
        if age.is_some_and(|age| age > keep) {
            remove_file(&file)?;
            remove_file(&reason)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_are_named_after_their_file() {
        let file = Path::new("/scans/chart 7.tif");
        assert_eq!(sidecar_of(file), Path::new("/scans/chart 7.tif.json"));
        assert!(is_sidecar(&sidecar_of(file)));
        assert_eq!(sidecar_of(file).with_extension(""), file);
        assert!(!is_sidecar(file));
    }

    #[test]
    fn quarantine_keeps_the_reason_beside_the_file_and_purges_after_its_days() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        create_private_dir(&root.join(QUARANTINE)).unwrap();
        for _ in 0..2 {
            std::fs::write(root.join("broken.tif"), b"not a scan").unwrap();
            quarantine(root, &root.join("broken.tif"), "not a scan we can read").unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(root.join(QUARANTINE))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.contains(&"broken.tif".to_string()));
        assert_eq!(
            std::fs::read_to_string(root.join(QUARANTINE).join("broken.tif.reason.txt")).unwrap(),
            "not a scan we can read\n"
        );
        purge_quarantine(&root.join(QUARANTINE), Duration::from_secs(3600)).unwrap();
        assert_eq!(std::fs::read_dir(root.join(QUARANTINE)).unwrap().count(), 4);
        purge_quarantine(&root.join(QUARANTINE), Duration::ZERO).unwrap();
        assert_eq!(std::fs::read_dir(root.join(QUARANTINE)).unwrap().count(), 0);
    }
}
