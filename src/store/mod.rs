//! The store: the archive's metadata (SQLite today: WAL, `synchronous=FULL` so an
//! acknowledged upload survives a crash), the vault of encrypted objects, and the sealing of
//! what it keeps.
//!
//! The contract is [`Store`] ([`api`]): one trait per aggregate, each in the aggregate's
//! file beside its records: [`patients`], [`documents`], [`pages`], [`jobs`], [`users`]
//! (and tokens), [`access`] (care, grants, break-the-glass), [`keyring`], [`batches`],
//! [`holds`], [`releases`], [`disclosures`], [`retention`], [`audit_log`], [`inventory`]
//! (what the operator tools read), [`integrity`] and [`reseal`] (upgrades of what is
//! stored). A backend implements all of them: [`sql::sqlite`] is the one today
//! ([`Db`] names it for the rest of the service). Queries use `$n` placeholders so most SQL
//! can serve PostgreSQL too.
//!
//! Beside the metadata: [`vault`] (objects and their keys), [`phi`] (sealed columns),
//! [`audit_record`] (sealed audit entries), [`row_mac`] (MACs of the rows that grant
//! access), [`keys`] and [`objects`]. Everything in this folder speaks [`base`]: the error,
//! the transaction, the clock. This file is the map: no file of the store imports it.
//!
//! The rest of the service never names the driver: transactions are [`Tx`], errors
//! [`StoreError`]; it calls the store's methods with `use crate::store::prelude::*`.

pub mod access;
pub mod api;
pub mod audit_log;
pub mod audit_record;
pub mod base;
pub mod batches;
pub mod disclosures;
pub mod documents;
pub mod hl7;
pub mod holds;
pub mod integrity;
pub mod inventory;
pub mod jobs;
pub mod keyring;
pub mod keys;
pub mod objects;
pub mod pages;
pub mod patients;
pub mod phi;
pub mod releases;
pub mod reseal;
pub mod retention;
pub mod row_mac;
pub mod sql;
pub mod users;
pub mod vault;

pub use api::{prelude, Store};
pub use base::{now, StoreError, StoreResult, Tx};
/// The store the archive runs on.
pub use sql::sqlite::SqliteStore as Db;
