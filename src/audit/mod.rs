//! The tamper-evident audit log: what one entry is, how it is sealed, how entries are chained.
//!
//! Promises:
//! - **Every entry is sealed.** The whole entry ([`AuditRecord`] as JSON) is the storage
//!   envelope under the `audit` service key, with associated data `chartvault:audit:{seq}`:
//!   sealed content copied onto another seq does not open. In the clear the `audit` table
//!   keeps only what queries need and what says nothing about a patient: `seq`, `at`,
//!   `action`, `outcome`, `break_glass`, and HMAC-SHA256 blind indexes of the user id and
//!   of the patient id(s) under the `audit-blind-index` service key (equality lookups only).
//!   Both keys are keyring rows wrapped under the KEK like every data key.
//! - **Every entry is chained.** `hash = SHA-256(canonical(seq, prev_hash, entry))` and each
//!   entry stores the previous entry's `hash` as its `prev_hash` (32 zero bytes for seq 1).
//!   Seqs are 1, 2, 3, ... without gaps. Appends are serialised (one in-process lock, and a
//!   `BEGIN IMMEDIATE` transaction that reads the head and inserts `head + 1`); `seq` is the
//!   primary key, so even a second writer could never fork the chain, only fail.
//! - **Checkpoints** (see [`checkpoint`]) sign `(seq, hash, time)` of the head with an Ed25519
//!   key of its own into an append-only file outside `data_dir`; a chain cut back below a
//!   checkpoint, or rewritten before one, no longer matches it.
//! - [`verify`] recomputes all of it, read-only, while the server runs.
//!
//! # The canonical encoding (hash input), version 1
//!
//! All integers big-endian. `str(s)` is `u32 byte length ‖ UTF-8 bytes`; `opt(s)` is the byte
//! `0x00` for none, or `0x01 ‖ str(s)`; `bool(b)` is one byte `0x00` or `0x01`.
//!
//! ```text
//! str("chartvault-audit-v1")
//! u64 seq
//! prev_hash                     32 bytes
//! str(at)                       RFC 3339 UTC with milliseconds, e.g. 2026-11-25T10:00:00.123Z
//! opt(user_id)                  lowercase hyphenated UUID
//! opt(role)
//! str(action)
//! opt(patient_id)
//! opt(document_id)
//! str(outcome)
//! opt(client_addr)
//! opt(request_id)
//! opt(purpose_of_use)
//! bool(break_glass)
//! opt(detail)                   the detail JSON text, byte for byte as sealed
//! ```
//!
//! `hash = SHA-256(encoding)`. Every field has a length or presence prefix, so no two
//! different entries encode alike.
//!
//! # What the hash covers, and why not the ciphertext
//!
//! The hash is over the **plaintext** entry, so verification proves the content itself, not
//! just bytes on disk. It does **not** cover the ciphertext: the ciphertext is authenticated
//! by AES-GCM bound to the seq (one changed byte and it does not open), and the plaintext
//! columns are recomputed from the opened entry and compared. Leaving the ciphertext out of
//! the hash means the `audit` key can be rotated later (entries re-sealed under a new key)
//! without rewriting the chain or invalidating signed checkpoints. The cost: verifying needs
//! the KEK (the audit is PHI, so a verifier without the KEK could not check content anyway).

pub mod checkpoint;
pub mod signed;
pub mod verify;

pub use crate::store::audit_record::{
    hash_from_slice, AuditCipher, AuditRecord, PlainColumns, UnsealError, AUDIT_BLIND_INDEX_KEY,
    AUDIT_KEY, GENESIS_HASH,
};
