//! The operator's tools: keys, integrity checks, backups.
//!
//! - [`keys`]: where the KEK comes from; rotation and retirement; the one keyring reader.
//! - [`verify`]: `chartvault verify`, the read-only integrity check of a data directory,
//!   with [`verify_index`] for the search index and [`findings`] for what it reports.
//! - [`backup`]: `chartvault backup` / `restore`, online snapshots and their restore.

pub mod backup;
pub mod findings;
pub mod keys;
pub mod verify;
pub mod verify_index;
