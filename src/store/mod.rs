//! The store: the archive's metadata (SQLite by default: WAL, `synchronous=FULL` so an
//! acknowledged upload survives a crash; PostgreSQL for a scaled setup), the vault of
//! encrypted objects, and the sealing of what it keeps.
//!
//! The contract is [`Store`] ([`api`]): one trait per aggregate, each in the aggregate's
//! file beside its records: [`patients`], [`documents`], [`pages`], [`jobs`], [`users`]
//! (and tokens), [`access`] (care, grants, break-the-glass), [`keyring`], [`batches`],
//! [`holds`], [`releases`], [`disclosures`], [`retention`], [`audit_log`], [`inventory`]
//! (what the operator tools read), [`integrity`] and [`reseal`] (upgrades of what is
//! stored). A backend implements all of them: [`sql`] holds the SQL, written once and
//! compiled for [`sql::sqlite`] and [`sql::postgres`]; [`Db`] is the one the archive runs
//! on, chosen by `database.url`, and hands each call to it ([`dispatch`], generated from
//! the traits by `scripts/store-dispatch.py`).
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
pub mod db;
pub mod disclosures;
mod dispatch;
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
pub use db::{DatabaseLocation, Db};
