//! The store on a SQL database, one backend per driver: [`sqlite`], the embedded default.
//!
//! A backend is a module that names its driver (`Driver`, `Pool`, `Conn`, `DbRow`), opens
//! its database and transactions, and includes the aggregate files of this folder
//! (`patients.rs`, `documents.rs`, …): each implements one aggregate's trait on the
//! backend's [`SqlStore`] in SQL that every backend speaks (`$n` placeholders, `ON
//! CONFLICT`, `RETURNING`), so the SQL is written once and compiled for each driver. This
//! file holds what every backend keeps alike: the keys of the sealed columns, the audit
//! chain's state and the row MACs.

use std::sync::{Arc, OnceLock};

use crate::store::audit_record::AuditCipher;
use crate::store::base::*;
use crate::store::phi::PhiCipher;
use crate::store::row_mac;

/// The aggregate files, compiled into the backend that invokes this (each names its
/// `Backend`, `Driver`, `Conn` and `DbRow`), with its unit-test store.
macro_rules! aggregates {
    () => {
        #[path = "access.rs"]
        mod access;
        #[path = "audit_log.rs"]
        mod audit_log;
        #[path = "batches.rs"]
        mod batches;
        #[path = "disclosures.rs"]
        mod disclosures;
        #[path = "documents.rs"]
        mod documents;
        #[path = "hl7.rs"]
        mod hl7;
        #[path = "holds.rs"]
        mod holds;
        #[path = "integrity.rs"]
        mod integrity;
        #[path = "inventory.rs"]
        mod inventory;
        #[path = "jobs.rs"]
        mod jobs;
        #[path = "keyring.rs"]
        mod keyring;
        #[path = "pages.rs"]
        mod pages;
        #[path = "patients.rs"]
        mod patients;
        #[path = "releases.rs"]
        mod releases;
        #[path = "reseal.rs"]
        mod reseal;
        #[path = "retention.rs"]
        mod retention;
        #[cfg(test)]
        #[path = "testing.rs"]
        pub(crate) mod testing;
        #[path = "users.rs"]
        mod users;
    };
}
use aggregates;

pub mod postgres;
pub mod sqlite;
pub mod transfer;

/// Shared by every clone of a [`SqlStore`]: the keys, the writer lock and the head.
pub(crate) struct AuditLogState {
    cipher: OnceLock<AuditCipher>,
    /// One appender at a time in this process, so concurrent requests queue here instead
    /// of failing on the `seq` primary key.
    writer: tokio::sync::Mutex<()>,
    /// The seq of the newest entry this process appended (checkpoints watch it).
    head: tokio::sync::watch::Sender<i64>,
    /// How long appends take (committed), for the metrics.
    append_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for AuditLogState {
    fn default() -> Self {
        AuditLogState {
            cipher: OnceLock::new(),
            writer: tokio::sync::Mutex::new(()),
            head: tokio::sync::watch::channel(0).0,
            append_seconds: crate::metrics::audit_append_histogram(),
        }
    }
}

/// The store on a SQL database: the connection pool of its backend (`P`) and the keys and
/// state every backend keeps alike.
#[derive(Clone)]
pub struct SqlStore<P> {
    pool: P,
    /// Seals and opens PHI columns; set once at startup, when the keyring can be read.
    phi: Arc<OnceLock<PhiCipher>>,
    /// The audit chain's keys, its one writer, and its head (see [`audit_log`]).
    audit: Arc<AuditLogState>,
    /// MACs the rows that grant access; set once at startup (see [`integrity`]).
    row_mac: Arc<OnceLock<row_mac::RowMac>>,
    /// Documents made available or cancelled get outbox rows (see [`hl7`]).
    outbox: Arc<std::sync::atomic::AtomicBool>,
    /// Woken when an outbox row is written (the sender waits on it).
    outbox_waiting: Arc<tokio::sync::Notify>,
    /// How long a claim on a job or batch holds without being renewed, in seconds
    /// (`ocr.lease_seconds`).
    lease_secs: Arc<std::sync::atomic::AtomicI64>,
}

impl<P> SqlStore<P> {
    /// A store on `pool`, its keys not given yet.
    fn on(pool: P) -> SqlStore<P> {
        SqlStore {
            pool,
            phi: Arc::new(OnceLock::new()),
            audit: Arc::new(AuditLogState::default()),
            row_mac: Arc::new(OnceLock::new()),
            outbox: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            outbox_waiting: Arc::new(tokio::sync::Notify::new()),
            lease_secs: Arc::new(std::sync::atomic::AtomicI64::new(
                crate::store::jobs::DEFAULT_LEASE_SECS,
            )),
        }
    }

    /// Sets how long a claim holds without being renewed (every handle of the store).
    pub fn set_lease_secs(&self, secs: i64) {
        self.lease_secs
            .store(secs.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The end of a lease taken now.
    fn lease_expiry(&self) -> String {
        let secs = self.lease_secs.load(std::sync::atomic::Ordering::Relaxed);
        (chrono::Utc::now() + chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// The histogram of audit append times (registered with the service's metrics).
    pub fn audit_append_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.audit.append_seconds.clone()
    }

    /// Gives the database the keys of its sealed columns (once, at startup).
    pub fn set_phi(&self, phi: PhiCipher) {
        if self.phi.set(phi).is_err() {
            tracing::warn!("the PHI column keys were set twice; keeping the first");
        }
    }

    fn phi(&self) -> StoreResult<&PhiCipher> {
        self.phi
            .get()
            .ok_or_else(|| StoreError::KeysNotLoaded("the PHI column keys"))
    }

    fn open_column(&self, column: Column, row_id: &str, sealed: &[u8]) -> StoreResult<String> {
        self.phi()?
            .open(column, row_id, sealed)
            .map_err(StoreError::unreadable)
    }

    fn open_optional(
        &self,
        column: Column,
        row_id: &str,
        sealed: Option<Vec<u8>>,
    ) -> StoreResult<Option<String>> {
        sealed
            .map(|bytes| self.open_column(column, row_id, &bytes))
            .transpose()
    }
}
