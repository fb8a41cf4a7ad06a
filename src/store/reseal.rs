//! Re-sealing of values sealed in envelope format version 1 under the long-lived service
//! keys (the PHI columns and the audit log) into version 2, whose per-object keys keep any
//! one key from ever seeing more than one object's nonces (see `chartvault_storage`'s
//! envelope docs).
//!
//! Promises:
//! - resumable: each batch of up to `batch` values is read and re-sealed outside the write
//!   lock, then written in one short transaction (only where the value is still the one
//!   read); a stop loses at most the batch in flight, and the next run picks up what is
//!   still version 1 (values of both versions open meanwhile); the scan goes in rowid order,
//!   so the work is linear in the table's size, with pauses for the service's own writes;
//! - a value that does not open is left as it is and logged (by table and column), not a
//!   reason to stop;
//! - the plaintext of every value is unchanged (each is opened and sealed again with the
//!   same associated data), so the audit chain's hashes, over the entries' plaintext, still
//!   link;
//! - append-only tables (audit, disclosures, productions) are re-sealed with their no-update
//!   trigger suspended inside the re-sealing transaction only, and restored, exactly as it
//!   was, before that transaction commits.

use super::base::*;

/// Upgrades of what is stored sealed: old envelope versions and legacy plaintext rows.
pub trait ResealStore {
    /// Re-seals every version 1 value in batches of `batch`; returns how many it re-sealed.
    /// A value that does not open is left as it is (logged by table and column): `verify`
    /// reports it.
    fn reseal_v1_values(&self, batch: i64) -> impl Future<Output = anyhow::Result<u64>> + Send;

    /// Seals the PHI of rows written before columns were sealed (an upgraded archive), then
    /// vacuums so their plaintext does not linger in free pages. Returns the rows sealed.
    fn seal_legacy_rows(&self) -> impl Future<Output = anyhow::Result<u64>> + Send;
}
