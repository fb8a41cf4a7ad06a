//! Signed checkpoints of the audit chain.
//!
//! Every `audit.checkpoint_every_entries` entries or `audit.checkpoint_interval_secs`
//! seconds (whichever comes first, and only when there are new entries), and at a clean
//! shutdown, the service signs the chain's head `(seq, hash, time)` with its **audit signing
//! key** (Ed25519, its own key: not the KEK, not in the keyring) and appends it as one JSON
//! line to the **checkpoint file**, fsynced. Both live outside `data_dir` by default
//! (`<data_dir>.audit-signing.key`, `<data_dir>.audit-checkpoints`): ship the checkpoint file
//! to write-once storage, and anyone who rewrites or cuts back the database can no longer
//! make it agree with checkpoints already shipped.
//!
//! Before signing, the segment since the previous checkpoint is re-verified (opened,
//! re-hashed, linked): a checkpoint never vouches for a chain that is already broken.
//!
//! A line: `{"v":1,"seq":N,"hash":"<hex>","time":"<RFC 3339>","key":"<hex public key>",
//! "sig":"<base64 signature>"}`. The signature is Ed25519 over
//! `str("chartvault-audit-checkpoint-v1") ‖ u64 seq ‖ hash (32 bytes) ‖ str(time)` (the
//! encoding of [`crate::audit`]). The public key is written beside the signing key
//! (`<signing key file>.pub`, one line `ed25519 <hex>`) so a verifier needs no secret; pin
//! it (keep a copy with the shipped checkpoints), since a line's own `key` field only says
//! which key claims to have signed it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::audit::hash_from_slice;
use crate::audit::signed::{append_checkpoint, read_checkpoints, Checkpoint, CheckpointSigner};
use crate::config::Config;
use crate::store::prelude::*;
use crate::store::Db;

/// Writes checkpoints for a running service.
#[derive(Clone)]
pub struct Checkpointer {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    signer: CheckpointSigner,
    file: PathBuf,
    every: i64,
    interval: Duration,
    /// The seq of the newest checkpoint written (0: none). Held while writing one.
    last: tokio::sync::Mutex<i64>,
}

impl Checkpointer {
    /// Loads (or creates) the signing key and reads where the checkpoint file stands.
    pub fn new(config: &Config, db: Db) -> anyhow::Result<Checkpointer> {
        let signer = CheckpointSigner::load_or_create(&config.audit_signing_key_file())?;
        let file = config.audit_checkpoint_file();
        let key = signer.verifying_key();
        let last = read_checkpoints(&file)?
            .into_iter()
            .filter_map(|(_, line)| line.ok())
            .filter(|c| c.verify(&key).is_ok())
            .map(|c| c.seq)
            .max()
            .unwrap_or(0);
        Ok(Checkpointer {
            inner: Arc::new(Inner {
                db,
                signer,
                file,
                every: config.audit.checkpoint_every_entries.max(1) as i64,
                interval: Duration::from_secs(config.audit.checkpoint_interval_secs.max(1)),
                last: tokio::sync::Mutex::new(last),
            }),
        })
    }

    pub fn file(&self) -> &Path {
        &self.inner.file
    }

    /// Signs and appends a checkpoint of the current head if there are entries since the
    /// last one (after re-verifying them). Returns the checkpoint written, if any.
    pub async fn checkpoint_now(&self) -> anyhow::Result<Option<Checkpoint>> {
        let inner = &self.inner;
        let mut last = inner.last.lock().await;
        let Some((head, hash)) = inner.db.audit_head().await? else {
            return Ok(None);
        };
        if head <= *last {
            return Ok(None);
        }
        if let Some(bad) = crate::audit::verify::first_bad_entry(&inner.db, *last, head).await? {
            bail!("the audit chain does not verify at seq {bad}; no checkpoint was signed");
        }
        let hash = hash_from_slice(&hash).context("the head's hash is not 32 bytes")?;
        let checkpoint = inner.signer.sign(head, &hash, &crate::store::now());
        let file = inner.file.clone();
        let line = checkpoint.clone();
        tokio::task::spawn_blocking(move || append_checkpoint(&file, &line)).await??;
        *last = head;
        tracing::debug!(seq = head, "audit checkpoint written");
        Ok(Some(checkpoint))
    }

    /// Runs until `shutdown`: a checkpoint every `every` entries or `interval`, whichever
    /// comes first, when there are new entries. The caller writes the final one.
    pub fn spawn(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut head = this.inner.db.audit_head_watch();
            let mut deadline = tokio::time::Instant::now() + this.inner.interval;
            loop {
                let due = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(deadline) => true,
                    changed = head.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let seq = *head.borrow_and_update();
                        seq - *this.inner.last.lock().await >= this.inner.every
                    }
                };
                if !due {
                    continue;
                }
                if let Err(error) = this.checkpoint_now().await {
                    tracing::error!(error = %error, "could not write an audit checkpoint");
                }
                deadline = tokio::time::Instant::now() + this.inner.interval;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::signed::*;
    use std::io::Write;

    #[test]
    fn checkpoints_verify_only_under_their_key_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let signer = CheckpointSigner::load_or_create(&path).unwrap();
        let again = CheckpointSigner::load_or_create(&path).unwrap();
        assert_eq!(signer.verifying_key(), again.verifying_key());
        let mut config = Config::for_data_dir(&dir.path().join("data"));
        config.audit.signing_key_file = Some(path.clone());
        let key = load_verifying_key(&config).unwrap().unwrap();
        assert_eq!(key, signer.verifying_key());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A pinned public key, when configured, is the only one: another key's checkpoints
        // do not verify against it, whatever sits beside the signing key.
        let other_signer = CheckpointSigner::load_or_create(&dir.path().join("pinned")).unwrap();
        config.audit.public_key_file = Some(public_key_path(&dir.path().join("pinned")));
        let pinned = load_verifying_key(&config).unwrap().unwrap();
        assert_eq!(pinned, other_signer.verifying_key());
        assert_ne!(pinned, signer.verifying_key());
        config.audit.public_key_file = Some(dir.path().join("missing.pub"));
        assert!(
            load_verifying_key(&config).is_err(),
            "a pinned key that is missing"
        );
        config.audit.public_key_file = None;

        let checkpoint = signer.sign(5, &[9; 32], "2026-11-25T10:00:00.000Z");
        assert_eq!(checkpoint.verify(&key), Ok([9; 32]));
        let mut forged = checkpoint.clone();
        forged.seq = 6;
        assert_eq!(forged.verify(&key), Err(CheckpointProblem::BadSignature));
        let other = CheckpointSigner::load_or_create(&dir.path().join("other")).unwrap();
        let foreign = other.sign(5, &[9; 32], "2026-11-25T10:00:00.000Z");
        assert_eq!(foreign.verify(&key), Err(CheckpointProblem::UnknownKey));

        let file = dir.path().join("checkpoints");
        append_checkpoint(&file, &checkpoint).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"{\"v\":1,\"se")
            .unwrap();
        let lines = read_checkpoints(&file).unwrap();
        assert_eq!(lines.len(), 1, "a partial last line is a write in flight");
        assert_eq!(lines[0].1.as_ref().unwrap(), &checkpoint);
    }

    #[test]
    fn a_signing_key_open_to_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        CheckpointSigner::load_or_create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let message = CheckpointSigner::load_or_create(&path)
                .err()
                .expect("a signing key open to others must be refused")
                .to_string();
            assert!(message.contains("chmod 600"), "{message}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CheckpointSigner::load_or_create(&path).is_ok());
    }
}
