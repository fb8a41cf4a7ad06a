//! [`Db`]: the store the archive runs on, SQLite (the embedded default) or PostgreSQL,
//! chosen by `database.url`. The store's traits are implemented on it by handing each call
//! to the backend ([`crate::store::dispatch`]); what only one backend can do (a SQLite
//! file's snapshot) says so when asked of the other.

use std::path::Path;

pub use crate::config::DatabaseLocation;
use crate::domain::BatchId;
use crate::store::audit_record::AuditCipher;
use crate::store::base::{StoreResult, Tx, TxInner};
use crate::store::phi::PhiCipher;
use crate::store::sql::postgres::PgStore;
use crate::store::sql::sqlite::SqliteStore;

/// The role of the process that writes the search index: exactly one process holds it.
/// On SQLite that is the archive's one process. On PostgreSQL it is a session advisory lock
/// held on a connection of its own: the role lasts as long as that session, so a process
/// that dies hands it on (a standby takes it), and one whose session broke must stop writing.
pub enum WriterRole {
    Sole,
    Lock(sqlx::PgConnection),
}

impl WriterRole {
    /// Whether the role is still this process's: its session still answers.
    pub async fn still_held(&mut self) -> bool {
        match self {
            WriterRole::Sole => true,
            WriterRole::Lock(conn) => sqlx::query("SELECT 1").execute(conn).await.is_ok(),
        }
    }
}

/// The store the archive runs on.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    /// Opens (creating or migrating) the database at `location`.
    pub async fn open_at(location: &DatabaseLocation) -> anyhow::Result<Db> {
        Ok(match location {
            DatabaseLocation::Sqlite(path) => Db::Sqlite(SqliteStore::open(path).await?),
            DatabaseLocation::Postgres(url) => Db::Postgres(PgStore::open(url).await?),
        })
    }

    /// Opens the database at `location` for reading beside a running server: a SQLite file
    /// read-only (no migration, no journal change); PostgreSQL as it is.
    pub async fn open_for_reading(location: &DatabaseLocation) -> anyhow::Result<Db> {
        Ok(match location {
            DatabaseLocation::Sqlite(path) => Db::Sqlite(SqliteStore::open_read_only(path).await?),
            DatabaseLocation::Postgres(url) => Db::Postgres(PgStore::connect(url).await?),
        })
    }

    /// Whether there is an archive at `location`: a SQLite file, or a PostgreSQL database
    /// whose schema holds the archive's keys.
    pub async fn archive_exists(location: &DatabaseLocation) -> anyhow::Result<bool> {
        match location {
            DatabaseLocation::Sqlite(path) => Ok(path.is_file()),
            DatabaseLocation::Postgres(url) => {
                let store = PgStore::connect(url).await?;
                let exists = store.holds_service_keys().await;
                store.close().await;
                exists
            }
        }
    }

    /// Opens (creating or migrating) the SQLite file at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<Db> {
        Ok(Db::Sqlite(SqliteStore::open(path).await?))
    }

    /// Opens an existing SQLite file read-only (see [`SqliteStore::open_read_only`]).
    pub async fn open_read_only(path: &Path) -> anyhow::Result<Db> {
        Ok(Db::Sqlite(SqliteStore::open_read_only(path).await?))
    }

    /// Opens a SQLite file nothing writes to (see [`SqliteStore::open_immutable`]).
    pub async fn open_immutable(path: &Path) -> anyhow::Result<Db> {
        Ok(Db::Sqlite(SqliteStore::open_immutable(path).await?))
    }

    /// Writes a consistent copy of the database, as a new SQLite file, to `dest`: SQLite's
    /// `VACUUM INTO`, or every table of PostgreSQL read in one snapshot (see
    /// [`crate::store::sql::transfer::snapshot_postgres_into_sqlite`]).
    pub async fn snapshot_into(&self, dest: &Path) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(store) => store.vacuum_into(dest).await,
            Db::Postgres(source) => {
                let target = SqliteStore::open(dest).await?;
                let copied =
                    crate::store::sql::transfer::snapshot_postgres_into_sqlite(source, &target)
                        .await;
                target.close().await;
                copied.map(|_| ())
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(store) => store.close().await,
            Db::Postgres(store) => store.close().await,
        }
    }

    /// Empties SQLite's WAL after keys were destroyed (retried in the background while a
    /// reader holds it); nothing on PostgreSQL.
    pub async fn truncate_wal_soon(&self) {
        if let Db::Sqlite(store) = self {
            store.truncate_wal_soon().await;
        }
    }

    /// Empties SQLite's WAL; `false` when a reader kept it. Always done on PostgreSQL.
    pub async fn truncate_wal(&self) -> StoreResult<bool> {
        match self {
            Db::Sqlite(store) => store.truncate_wal().await,
            Db::Postgres(store) => store.truncate_wal().await,
        }
    }

    /// Gives the database the keys of its sealed columns (once, at startup).
    pub fn set_phi(&self, phi: PhiCipher) {
        match self {
            Db::Sqlite(store) => store.set_phi(phi),
            Db::Postgres(store) => store.set_phi(phi),
        }
    }

    /// Takes the index writer's role if no other process holds it (see [`WriterRole`]).
    pub async fn try_writer_role(&self) -> StoreResult<Option<WriterRole>> {
        Ok(match self {
            Db::Sqlite(_) => Some(WriterRole::Sole),
            Db::Postgres(store) => store.try_writer_role().await?.map(WriterRole::Lock),
        })
    }

    /// Sets how long a claim on a job or batch holds without being renewed
    /// (`ocr.lease_seconds`).
    pub fn set_lease_secs(&self, secs: i64) {
        match self {
            Db::Sqlite(store) => store.set_lease_secs(secs),
            Db::Postgres(store) => store.set_lease_secs(secs),
        }
    }

    /// The histogram of audit append times (registered with the service's metrics).
    pub fn audit_append_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        match self {
            Db::Sqlite(store) => store.audit_append_histogram(),
            Db::Postgres(store) => store.audit_append_histogram(),
        }
    }

    /// The audit chain's cipher (set at startup).
    pub(crate) fn audit_cipher(&self) -> StoreResult<&AuditCipher> {
        match self {
            Db::Sqlite(store) => store.audit_cipher(),
            Db::Postgres(store) => store.audit_cipher(),
        }
    }

    /// Destroys a batch file's key and records it destroyed, inside the caller's transaction.
    pub(crate) async fn destroy_batch_original_in(
        tx: &mut Tx,
        batch: BatchId,
        key_id: &str,
    ) -> StoreResult<()> {
        match tx.0 {
            TxInner::Sqlite(_) => SqliteStore::destroy_batch_original_in(tx, batch, key_id).await,
            TxInner::Postgres(_) => PgStore::destroy_batch_original_in(tx, batch, key_id).await,
        }
    }

    /// Copies this SQLite archive's metadata into the PostgreSQL store `target` (see
    /// [`crate::store::sql::transfer`]); returns the rows inserted per table.
    pub async fn copy_into_postgres(
        &self,
        target: &Db,
        rewrap: &crate::store::sql::transfer::Rewrap<'_>,
    ) -> anyhow::Result<Vec<(&'static str, u64)>> {
        match (self, target) {
            (Db::Sqlite(source), Db::Postgres(target)) => {
                crate::store::sql::transfer::copy_sqlite_into_postgres(source, target, rewrap).await
            }
            _ => anyhow::bail!("the metadata moves from SQLite to PostgreSQL only"),
        }
    }

    /// Puts the work a stop interrupted back in the queue, at start. On SQLite this process
    /// is the only worker, so whatever was running stopped with it; on PostgreSQL other
    /// nodes' workers may be running theirs, so only jobs and batches whose lease ran out go
    /// back. Returns how many.
    pub async fn requeue_interrupted(&self) -> StoreResult<u64> {
        use crate::store::api::prelude::*;
        Ok(match self {
            Db::Sqlite(_) => {
                self.requeue_running_jobs().await? + self.requeue_running_batches().await?
            }
            Db::Postgres(_) => {
                self.requeue_expired_jobs().await? + self.requeue_expired_batches().await?
            }
        })
    }
}
