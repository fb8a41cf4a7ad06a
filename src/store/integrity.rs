//! Integrity of the rows that grant access.
//!
//! Users, tokens, care relationships, category grants and break-the-glass accesses each carry
//! a MAC: HMAC-SHA256 under the service's `row-mac` key (a keyring row wrapped under the KEK
//! like every key, so never on disk in the clear) over the columns that decide what the row
//! grants, with the table's name. A row written or changed by someone who can write the
//! database file but holds no KEK does not verify and grants nothing: its token is unknown
//! (401), its care relationship, grant or access is ignored, and the mismatch is logged.
//!
//! Promises:
//! - every write of such a row computes its MAC in the same statement or transaction;
//! - every read that grants access verifies it, in constant time;
//! - rows written before MACs existed are given theirs once, at the first start of a version
//!   that has them ([`Db::mac_legacy_rows`]), which the audit log records; from then on a row
//!   without a MAC grants nothing, and the pass never runs again: whether it ran is read from
//!   the audit log, whose entries cannot be removed without breaking its signed chain (a
//!   marker anywhere else in the database could be deleted by whoever can write the file);
//! - the key is only ever created on an archive whose audit log has no such entry: an
//!   archive that lost its key after the pass (a `service_keys` row deleted) refuses to
//!   start instead of MACing whatever rows it then holds under a new one.
//!
//! What a MAC does not stop: putting back an older, genuine version of a row (a revoked
//! token's row as it was before its revocation). Rolling a database file back is the same
//! attack at scale; the signed audit checkpoints, shipped off the machine, are what reveal it.

use super::base::*;

use super::row_mac::RowMac;

/// The MACs of the rows that grant access: keys, checks, and the upgrade that adds them.
pub trait IntegrityStore {
    /// Gives the database the key of its access rows' MACs (once, at startup).
    fn set_row_mac(&self, row_mac: RowMac);

    /// Whether the audit log records the integrity upgrade (see [`Db::mac_legacy_rows`]).
    fn row_integrity_upgraded(&self) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Gives every access row written before MACs existed its MAC, once: the first start of a
    /// version with MACs does it, and the audit log records that it did (the same start of a
    /// new archive records it with no rows); after that a row without a MAC is one written
    /// outside the service and grants nothing. Returns the rows given a MAC.
    fn mac_legacy_rows(&self) -> impl Future<Output = anyhow::Result<u64>> + Send;
}
