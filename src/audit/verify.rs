//! `chartvault audit verify`: recomputes the audit chain and checks it against the signed
//! checkpoints, read-only, beside a running server.
//!
//! For every entry, in seq order: the seq follows the previous one (a gap is a deleted
//! entry); the sealed content opens under the `audit` key at its seq (one changed byte, or
//! content moved to another seq, does not); its `prev_hash` is the previous entry's `hash`;
//! its `hash` is the hash of its opened content; the plaintext columns and the
//! `audit_patients` rows are what the content says. Then every checkpoint line: signed by
//! the pinned key (`<signing key file>.pub`), in order, and the chain passes through its
//! `(seq, hash)`; a checkpoint beyond the log's end means entries were cut off.
//!
//! The checkpoint file is read *before* the database, so a checkpoint written meanwhile by
//! the running server never looks like a truncation. Findings name seqs and line numbers,
//! never content. Exit codes: 0 clean, 1 findings, 2 could not run.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::audit::signed::{load_verifying_key, read_checkpoints, CheckpointProblem};
use crate::audit::{hash_from_slice, AuditCipher, AUDIT_BLIND_INDEX_KEY, AUDIT_KEY, GENESIS_HASH};
use crate::config::Config;
use crate::store::audit_log::StoredAuditRow;
use crate::store::prelude::*;
use crate::store::Db;

const PAGE: i64 = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditFindingKind {
    /// Seqs are missing: entries were deleted (or the tail before a checkpoint cut off).
    EntryMissing,
    /// The sealed content does not open at its seq: altered, or moved from another seq.
    EntryUndecryptable,
    /// `prev_hash` is not the previous entry's `hash`: an entry before it was replaced,
    /// inserted or reordered.
    LinkBroken,
    /// `hash` is not the hash of the content.
    HashMismatch,
    /// A plaintext column (or `audit_patients` row) disagrees with the sealed content.
    IndexMismatch,
    /// The chain does not pass through a checkpoint's (seq, hash): rewritten before it.
    CheckpointMismatch,
    /// A checkpoint names a seq past the end of the log: entries were cut off the end.
    Truncated,
    /// A checkpoint line whose signature does not verify under the pinned key.
    CheckpointBadSignature,
    /// A checkpoint line signed by another key.
    CheckpointUnknownKey,
    /// A line that is not a checkpoint, or a checkpoint older than the line before it.
    CheckpointMalformed,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditFinding {
    pub kind: AuditFindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The checkpoint file's line (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub description: String,
}

impl AuditFinding {
    fn entry(kind: AuditFindingKind, seq: i64, description: impl Into<String>) -> AuditFinding {
        AuditFinding {
            kind,
            seq: Some(seq),
            line: None,
            description: description.into(),
        }
    }

    fn line(kind: AuditFindingKind, line: usize, description: impl Into<String>) -> AuditFinding {
        AuditFinding {
            kind,
            seq: None,
            line: Some(line),
            description: description.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditVerifyReport {
    pub data_dir: PathBuf,
    pub checkpoint_file: PathBuf,
    /// Entries read and checked.
    pub entries: u64,
    /// The newest entry's seq (0: empty log).
    pub head_seq: i64,
    /// Checkpoint lines whose signature verified.
    pub checkpoints: usize,
    pub last_checkpoint_seq: Option<i64>,
    /// Entries after the last valid checkpoint: not yet protected against truncation.
    pub unprotected_entries: i64,
    /// The first entry that fails, if any entry does.
    pub first_bad_seq: Option<i64>,
    pub findings: Vec<AuditFinding>,
}

impl AuditVerifyReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn exit_code(&self) -> u8 {
        if self.is_clean() {
            0
        } else {
            1
        }
    }

    pub fn of_kind(&self, kind: AuditFindingKind) -> impl Iterator<Item = &AuditFinding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    pub fn summary(&self) -> String {
        let mut out = format!(
            "audit verify {}: {} entries (head seq {}), {} valid checkpoints (last at seq {}), \
             {} entries past the last checkpoint\n",
            self.data_dir.display(),
            self.entries,
            self.head_seq,
            self.checkpoints,
            self.last_checkpoint_seq
                .map_or_else(|| "-".to_string(), |s| s.to_string()),
            self.unprotected_entries,
        );
        for finding in &self.findings {
            let at = match (finding.seq, finding.line) {
                (Some(seq), _) => format!("seq {seq}"),
                (None, Some(line)) => format!("checkpoint line {line}"),
                (None, None) => "-".to_string(),
            };
            out.push_str(&format!(
                "ERROR {:?} {at}: {}\n",
                finding.kind, finding.description
            ));
        }
        match self.first_bad_seq {
            Some(seq) => out.push_str(&format!("NOT CLEAN: first bad entry is seq {seq}\n")),
            None if !self.is_clean() => out.push_str("NOT CLEAN\n"),
            None => out.push_str("clean\n"),
        }
        out
    }
}

/// Checks stored rows one after another.
struct ChainWalker<'a> {
    cipher: &'a AuditCipher,
    expected_seq: i64,
    prev_hash: [u8; 32],
    findings: Vec<AuditFinding>,
    entries: u64,
    /// Stored hashes at the seqs checkpoints name.
    wanted: HashMap<i64, [u8; 32]>,
}

impl<'a> ChainWalker<'a> {
    fn new(cipher: &'a AuditCipher, after_seq: i64, prev_hash: [u8; 32]) -> ChainWalker<'a> {
        ChainWalker {
            cipher,
            expected_seq: after_seq + 1,
            prev_hash,
            findings: Vec::new(),
            entries: 0,
            wanted: HashMap::new(),
        }
    }

    fn check(&mut self, row: &StoredAuditRow, refs: &[Vec<u8>]) {
        use AuditFindingKind as K;
        self.entries += 1;
        let seq = row.seq;
        let stored_hash = hash_from_slice(&row.hash);
        let gap = seq > self.expected_seq;
        if gap {
            let missing = if seq - 1 == self.expected_seq {
                format!("entry {} is missing", self.expected_seq)
            } else {
                format!("entries {} to {} are missing", self.expected_seq, seq - 1)
            };
            self.findings.push(AuditFinding::entry(
                K::EntryMissing,
                self.expected_seq,
                missing,
            ));
        }
        if !gap && row.prev_hash.as_slice() != self.prev_hash.as_slice() {
            self.findings.push(AuditFinding::entry(
                K::LinkBroken,
                seq,
                "prev_hash is not the previous entry's hash (an entry before it was replaced, \
                 inserted or moved)",
            ));
        }
        match self.cipher.open(seq, &row.sealed) {
            Err(error) => self.findings.push(AuditFinding::entry(
                K::EntryUndecryptable,
                seq,
                format!("{error} at this seq (altered, or moved from another seq)"),
            )),
            Ok(record) => {
                let recomputed = hash_from_slice(&row.prev_hash).map(|prev| record.hash(&prev));
                if record.seq != seq || recomputed.is_none() || recomputed != stored_hash {
                    self.findings.push(AuditFinding::entry(
                        K::HashMismatch,
                        seq,
                        "the stored hash is not the hash of the entry's content",
                    ));
                }
                let plain = self.cipher.plain_columns(&record);
                let mut stored_refs = refs.to_vec();
                stored_refs.sort();
                if plain.at != row.at
                    || plain.action != row.action
                    || plain.outcome != row.outcome
                    || plain.break_glass != row.break_glass
                    || plain.user_index != row.user_index
                    || plain.patient_index != row.patient_index
                    || plain.other_patient_indexes != stored_refs
                {
                    self.findings.push(AuditFinding::entry(
                        K::IndexMismatch,
                        seq,
                        "a plaintext column or patient index disagrees with the sealed entry",
                    ));
                }
            }
        }
        self.prev_hash = stored_hash.unwrap_or(GENESIS_HASH);
        if let Some(slot) = self.wanted.get_mut(&seq) {
            *slot = self.prev_hash;
        }
        self.expected_seq = seq + 1;
    }
}

/// Walks the stored rows `(after_seq, up_to]` with `walker`.
async fn walk(db: &Db, walker: &mut ChainWalker<'_>, up_to: i64) -> anyhow::Result<()> {
    let after_seq = walker.expected_seq - 1;
    let mut refs: BTreeMap<i64, Vec<Vec<u8>>> = BTreeMap::new();
    for (seq, index) in db.audit_patient_refs(up_to).await? {
        if seq > after_seq {
            refs.entry(seq).or_default().push(index);
        }
    }
    let mut cursor = after_seq;
    loop {
        let rows = db.stored_audit_rows(cursor, up_to, PAGE).await?;
        let Some(last) = rows.last() else { break };
        cursor = last.seq;
        for row in &rows {
            let row_refs = refs.get(&row.seq).map(Vec::as_slice).unwrap_or(&[]);
            walker.check(row, row_refs);
        }
    }
    Ok(())
}

/// The first entry in `(after_seq, up_to]` that does not verify (the checkpointer's check
/// before it signs); the walk starts from the stored hash of `after_seq`.
pub async fn first_bad_entry(db: &Db, after_seq: i64, up_to: i64) -> anyhow::Result<Option<i64>> {
    let prev_hash = if after_seq == 0 {
        GENESIS_HASH
    } else {
        let rows = db.stored_audit_rows(after_seq - 1, after_seq, 1).await?;
        match rows.first().and_then(|r| hash_from_slice(&r.hash)) {
            Some(hash) if rows[0].seq == after_seq => hash,
            _ => return Ok(Some(after_seq)),
        }
    };
    let cipher = db.audit_cipher()?;
    let mut walker = ChainWalker::new(cipher, after_seq, prev_hash);
    walk(db, &mut walker, up_to).await?;
    if walker.expected_seq <= up_to {
        return Ok(Some(walker.expected_seq));
    }
    Ok(walker.findings.iter().filter_map(|f| f.seq).min())
}

/// Verifies the audit chain of `config`'s data directory against its checkpoint file.
pub async fn verify_audit(config: &Config) -> anyhow::Result<AuditVerifyReport> {
    let checkpoint_file = config.audit_checkpoint_file();
    // Checkpoints first: every checkpoint read now covers only entries already committed.
    let lines = read_checkpoints(&checkpoint_file)?;
    let key = load_verifying_key(config)?;
    if key.is_none() && !lines.is_empty() {
        bail!(
            "there are checkpoints but no audit public key at {}",
            crate::audit::signed::public_key_path(&config.audit_signing_key_file()).display()
        );
    }
    let keys = crate::ops::keys::load_existing_keys(config)?;
    let db = Db::open_for_reading(&config.database()?).await?;
    let result = verify_with(config, &db, keys, lines, key).await;
    db.close().await;
    result
}

async fn verify_with(
    config: &Config,
    db: &Db,
    keys: std::sync::Arc<dyn chartvault_storage::KeyProvider>,
    lines: Vec<crate::audit::signed::CheckpointLine>,
    key: Option<ed25519_dalek::VerifyingKey>,
) -> anyhow::Result<AuditVerifyReport> {
    use AuditFindingKind as K;
    let inventory = db.inventory().await?;
    let keyring = crate::ops::keys::Keyring::new(keys, &inventory.keyring);
    keyring.check_kek()?;
    let head = db.audit_head().await.context("reading the audit table")?;
    let head_seq = head.as_ref().map_or(0, |(seq, _)| *seq);
    let sealing = keyring.service_key(&inventory, AUDIT_KEY)?;
    let blind = keyring.service_key(&inventory, AUDIT_BLIND_INDEX_KEY)?;
    let mut findings = Vec::new();

    // The checkpoint lines: signature, key, order.
    let mut valid: Vec<(usize, i64, [u8; 32])> = Vec::new();
    for (line, parsed) in lines {
        let checkpoint = match parsed {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                findings.push(AuditFinding::line(
                    K::CheckpointMalformed,
                    line,
                    format!("not a checkpoint: {error}"),
                ));
                continue;
            }
        };
        let key = key
            .as_ref()
            .expect("lines exist only with a key (checked above)");
        match checkpoint.verify(key) {
            Ok(hash) => {
                if valid
                    .last()
                    .is_some_and(|(_, seq, _)| *seq > checkpoint.seq)
                {
                    findings.push(AuditFinding::line(
                        K::CheckpointMalformed,
                        line,
                        "an older checkpoint after a newer one",
                    ));
                    continue;
                }
                valid.push((line, checkpoint.seq, hash));
            }
            Err(CheckpointProblem::BadSignature) => findings.push(AuditFinding::line(
                K::CheckpointBadSignature,
                line,
                "the signature does not verify: a forged or altered checkpoint",
            )),
            Err(CheckpointProblem::UnknownKey) => findings.push(AuditFinding::line(
                K::CheckpointUnknownKey,
                line,
                "signed by a key other than the pinned audit key",
            )),
            Err(CheckpointProblem::Malformed(why)) => {
                findings.push(AuditFinding::line(K::CheckpointMalformed, line, why))
            }
        }
    }

    let mut entries = 0;
    let mut walked_to = 0;
    if head_seq > 0 {
        let (Some((key_id, key)), Some((_, blind_key))) = (sealing, blind) else {
            bail!("the archive has audit entries but no audit keys");
        };
        let cipher = AuditCipher::from_keys(key_id, key, blind_key);
        let mut walker = ChainWalker::new(&cipher, 0, GENESIS_HASH);
        for (_, seq, _) in &valid {
            walker.wanted.insert(*seq, [0xff; 32]);
        }
        walk(db, &mut walker, head_seq).await?;
        entries = walker.entries;
        walked_to = walker.expected_seq - 1;
        findings.extend(walker.findings);
        for (line, seq, hash) in &valid {
            if *seq > walked_to {
                continue;
            }
            if walker.wanted.get(seq) != Some(hash) {
                findings.push(AuditFinding {
                    kind: K::CheckpointMismatch,
                    seq: Some(*seq),
                    line: Some(*line),
                    description: format!(
                        "the chain does not pass through the checkpoint at seq {seq}: \
                         entries up to it were rewritten or removed"
                    ),
                });
            }
        }
    }
    // A checkpoint past the end: the entries after `walked_to` were cut off.
    if let Some((line, seq, _)) = valid.iter().rev().find(|(_, seq, _)| *seq > walked_to) {
        findings.push(AuditFinding {
            kind: K::Truncated,
            seq: Some(walked_to + 1),
            line: Some(*line),
            description: format!(
                "the log ends at seq {walked_to} but a checkpoint covers seq {seq}: \
                 entries {} to {seq} at least were cut off",
                walked_to + 1
            ),
        });
    }
    let last_checkpoint_seq = valid.iter().map(|(_, seq, _)| *seq).max();
    let first_bad_seq = findings.iter().filter_map(|f| f.seq).min();
    Ok(AuditVerifyReport {
        data_dir: config.data_dir.clone(),
        checkpoint_file: config.audit_checkpoint_file(),
        entries,
        head_seq,
        checkpoints: valid.len(),
        last_checkpoint_seq,
        unprotected_entries: (head_seq - last_checkpoint_seq.unwrap_or(0)).max(0),
        first_bad_seq,
        findings,
    })
}
