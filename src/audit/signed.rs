//! The signed checkpoint file: the audit signing key pair (Ed25519), the line format, and
//! reading and appending lines (see [`super::checkpoint`] for when checkpoints are written).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::audit::hash_from_slice;
use crate::config::Config;

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
