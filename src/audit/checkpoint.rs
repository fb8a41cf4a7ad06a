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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::audit::hash_from_slice;
use crate::config::Config;
use crate::db::Db;

const KEY_LINE_PREFIX: &str = "ed25519 ";

/// The Ed25519 key that signs checkpoints (zeroised on drop by `ed25519-dalek`).
pub struct CheckpointSigner {
    key: SigningKey,
}

/// `<signing key file>.pub`: where the verifying key is published.
pub fn public_key_path(signing_key_file: &Path) -> PathBuf {
    let mut name = signing_key_file.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The 32 key bytes of an `ed25519 <hex>` line, in a buffer zeroised on drop (the line may
/// be the signing key's).
fn parse_key_line(text: &str, what: &str) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    let hex_key = text
        .trim()
        .strip_prefix(KEY_LINE_PREFIX)
        .with_context(|| format!("the {what} is not an 'ed25519 <hex>' line"))?;
    let bytes = zeroize::Zeroizing::new(
        hex::decode(hex_key.trim()).with_context(|| format!("the {what} is not hex"))?,
    );
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        bail!("the {what} is not 32 bytes");
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Reads the signing key file: refused when group or others have any permission on it (as
/// the KEK file is), its text and bytes zeroised after use.
fn read_signing_key(path: &Path) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("reading the audit signing key {}", path.display()))?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the audit signing key {} is accessible by group or others (mode {mode:04o}); \
             refusing to use it. Fix with: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .with_context(|| format!("reading the audit signing key {}", path.display()))?;
    parse_key_line(&text, "audit signing key")
}

impl CheckpointSigner {
    /// Loads the signing key, creating it (`0600`, with its `.pub` beside it) on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<CheckpointSigner> {
        use std::os::unix::fs::OpenOptionsExt;
        if path.exists() {
            let secret = read_signing_key(path)?;
            let signer = CheckpointSigner {
                key: SigningKey::from_bytes(&secret),
            };
            if !public_key_path(path).exists() {
                signer.write_public_key(path)?;
            }
            return Ok(signer);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut secret[..]);
        let key = SigningKey::from_bytes(&secret);
        let line = zeroize::Zeroizing::new(format!(
            "{KEY_LINE_PREFIX}{}\n",
            hex::encode(key.to_bytes())
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating the audit signing key {}", path.display()))?;
        file.write_all(line.as_bytes())?;
        file.sync_all()?;
        let signer = CheckpointSigner { key };
        signer.write_public_key(path)?;
        Ok(signer)
    }

    fn write_public_key(&self, path: &Path) -> anyhow::Result<()> {
        let public = public_key_path(path);
        std::fs::write(
            &public,
            format!(
                "{KEY_LINE_PREFIX}{}\n",
                hex::encode(self.key.verifying_key().to_bytes())
            ),
        )
        .with_context(|| format!("writing {}", public.display()))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, seq: i64, hash: &[u8; 32], time: &str) -> Checkpoint {
        let signature = self.key.sign(&message(seq, hash, time));
        Checkpoint {
            v: 1,
            seq,
            hash: hex::encode(hash),
            time: time.to_string(),
            key: hex::encode(self.key.verifying_key().to_bytes()),
            sig: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        }
    }
}

/// The verifying key checkpoints are checked against: `audit.public_key_file` when it is
/// configured (a pinned copy kept with the shipped checkpoints, and then nothing else), else
/// the `.pub` file beside the signing key, or else derived from the signing key file.
/// `None` when none of them exists.
pub fn load_verifying_key(config: &Config) -> anyhow::Result<Option<VerifyingKey>> {
    if let Some(pinned) = &config.audit.public_key_file {
        let text = std::fs::read_to_string(pinned)
            .with_context(|| format!("reading audit.public_key_file {}", pinned.display()))?;
        let bytes = parse_key_line(&text, "audit public key")?;
        return Ok(Some(
            VerifyingKey::from_bytes(&bytes)
                .context("the audit public key is not a valid Ed25519 key")?,
        ));
    }
    let signing_key_file = config.audit_signing_key_file();
    let public = public_key_path(&signing_key_file);
    let bytes = if public.exists() {
        *parse_key_line(&std::fs::read_to_string(&public)?, "audit public key")?
    } else if signing_key_file.exists() {
        let secret = read_signing_key(&signing_key_file)?;
        SigningKey::from_bytes(&secret).verifying_key().to_bytes()
    } else {
        return Ok(None);
    };
    Ok(Some(VerifyingKey::from_bytes(&bytes).context(
        "the audit public key is not a valid Ed25519 key",
    )?))
}

fn message(seq: i64, hash: &[u8; 32], time: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    let domain = b"chartvault-audit-checkpoint-v1";
    out.extend_from_slice(&(domain.len() as u32).to_be_bytes());
    out.extend_from_slice(domain);
    out.extend_from_slice(&(seq as u64).to_be_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(&(time.len() as u32).to_be_bytes());
    out.extend_from_slice(time.as_bytes());
    out
}

/// One line of the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub v: u32,
    pub seq: i64,
    /// Hex of the chain hash of entry `seq`.
    pub hash: String,
    pub time: String,
    /// Hex of the public key that claims to have signed it.
    pub key: String,
    /// Base64 of the Ed25519 signature.
    pub sig: String,
}

/// Why a checkpoint line does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointProblem {
    Malformed(String),
    UnknownKey,
    BadSignature,
}

impl Checkpoint {
    /// Checks the signature under the pinned `key`; returns the hash it vouches for.
    pub fn verify(&self, key: &VerifyingKey) -> Result<[u8; 32], CheckpointProblem> {
        if self.v != 1 {
            return Err(CheckpointProblem::Malformed(format!(
                "unknown version {}",
                self.v
            )));
        }
        if self.seq < 1 {
            return Err(CheckpointProblem::Malformed("seq below 1".into()));
        }
        let hash = hex::decode(&self.hash)
            .ok()
            .and_then(|h| hash_from_slice(&h))
            .ok_or_else(|| CheckpointProblem::Malformed("hash is not 32 bytes of hex".into()))?;
        if self.key != hex::encode(key.to_bytes()) {
            return Err(CheckpointProblem::UnknownKey);
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&self.sig)
            .ok()
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .map(|s| Signature::from_bytes(&s))
            .ok_or(CheckpointProblem::BadSignature)?;
        key.verify(&message(self.seq, &hash, &self.time), &signature)
            .map_err(|_| CheckpointProblem::BadSignature)?;
        Ok(hash)
    }
}

/// One line of the checkpoint file as read: its 1-based line number and what it parsed to.
pub type CheckpointLine = (usize, Result<Checkpoint, String>);

/// Reads the checkpoint file (none yet: empty). A last line without its newline is a write
/// in flight and is left out.
pub fn read_checkpoints(path: &Path) -> anyhow::Result<Vec<CheckpointLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    Ok(complete
        .split('\n')
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            (
                index + 1,
                serde_json::from_str::<Checkpoint>(line).map_err(|e| e.to_string()),
            )
        })
        .collect())
}

/// Appends one line and fsyncs the file (and its directory when the file is new).
pub fn append_checkpoint(path: &Path, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let existed = path.exists();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening the checkpoint file {}", path.display()))?;
    let mut line = serde_json::to_string(checkpoint)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_all()?;
    if !existed {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

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
        let checkpoint = inner.signer.sign(head, &hash, &crate::db::now());
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
