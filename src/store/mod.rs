//! The store: metadata in SQLite (WAL, `synchronous=FULL` so an acknowledged upload
//! survives a crash), the vault of encrypted objects, and the sealing of what it keeps.
//!
//! All SQL lives here, behind [`Db`]; the rest of the service speaks in domain types and
//! never names the driver: transactions are [`Tx`], errors [`StoreError`]. Queries use
//! `$n` placeholders so the same SQL can serve PostgreSQL later.
//!
//! This file holds [`Db`] itself (opening, transactions, the sealed-column helpers); each
//! aggregate has a file of its own that adds its methods to [`Db`]: [`patients`],
//! [`documents`], [`pages`], [`jobs`], [`users`] (and tokens), [`access`] (care, grants,
//! break-the-glass), [`keyring`], [`batches`], [`holds`], [`releases`], [`disclosures`],
//! [`retention`], [`audit_log`], [`inventory`] (what the operator tools read). Beside them:
//! [`vault`] (objects and their keys), [`phi`] (sealed columns), [`audit_record`] (sealed
//! audit entries), [`row_mac`] and [`integrity`] (MACs of the rows that grant access).
//! The children import this file, never the other way round.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use crate::domain::{Category, DocumentId, DocumentStatus, Mrn, PatientId, Role, UserId};
use crate::store::audit_record::AuditCipher;
use crate::store::objects::ObjectRef;
use crate::store::phi::{Column, PhiCipher};

pub mod access;
pub mod audit_log;
pub mod audit_record;
pub mod batches;
pub mod disclosures;
pub mod documents;
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
mod reseal;
pub mod retention;
pub mod row_mac;
#[cfg(test)]
pub(crate) mod testing;
pub mod users;
pub mod vault;

pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The store's error. SQLite's today; callers never name the driver.
pub type StoreError = sqlx::Error;

/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// A transaction of the store, begun by [`Db::begin`]: committed by [`Tx::commit`], rolled
/// back when dropped. Store methods that take part in a caller's transaction take
/// `&mut Tx`; no driver type appears in their signatures.
pub struct Tx(Transaction<'static, Sqlite>);

impl Tx {
    /// Commits everything done in the transaction.
    pub async fn commit(self) -> StoreResult<()> {
        self.0.commit().await
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.0
    }
}

/// What a retention destruction certifies; written in the destruction's transaction.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub run_id: String,
    pub document_id: DocumentId,
    pub document_sha256: String,
    pub document_type: String,
    pub page_count: u32,
    pub rule: String,
    pub counted_from: NaiveDate,
    pub expired_on: NaiveDate,
    /// A user id, or [`retention::RETENTION_JOB`].
    pub destroyed_by: String,
}

/// Shared by every clone of a [`Db`]: the keys, the writer lock and the head.
pub(crate) struct AuditLogState {
    cipher: OnceLock<AuditCipher>,
    /// One appender at a time in this process, so concurrent requests queue here instead
    /// of failing on the `seq` primary key.
    writer: tokio::sync::Mutex<()>,
    /// The seq of the newest entry this process appended (checkpoints watch it).
    head: tokio::sync::watch::Sender<i64>,
}

impl Default for AuditLogState {
    fn default() -> Self {
        AuditLogState {
            cipher: OnceLock::new(),
            writer: tokio::sync::Mutex::new(()),
            head: tokio::sync::watch::channel(0).0,
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
    /// Seals and opens PHI columns; set once at startup, when the keyring can be read.
    phi: Arc<OnceLock<PhiCipher>>,
    /// The audit chain's keys, its one writer, and its head (see [`audit_log`]).
    audit: Arc<AuditLogState>,
    /// MACs the rows that grant access; set once at startup (see [`integrity`]).
    row_mac: Arc<OnceLock<row_mac::RowMac>>,
}

fn parse_id<T: FromStr>(raw: &str) -> StoreResult<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    raw.parse::<T>()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn parse_date(raw: Option<String>) -> StoreResult<Option<NaiveDate>> {
    raw.map(|d| NaiveDate::from_str(&d).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

fn decode_err(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

impl Db {
    pub async fn open(path: &Path) -> anyhow::Result<Db> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Deleted rows (a shredded key, an upgraded plaintext value) are overwritten.
            .pragma("secure_delete", "ON");
        // Migrations run on their own connection with foreign-key enforcement off, as
        // SQLite requires for rebuilding a table; each ends by checking every reference.
        {
            use sqlx::Connection;
            let mut migrating =
                sqlx::SqliteConnection::connect_with(&options.clone().foreign_keys(false)).await?;
            sqlx::migrate!("./migrations").run(&mut migrating).await?;
            migrating.close().await?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            phi: Arc::new(OnceLock::new()),
            audit: Arc::new(AuditLogState::default()),
            row_mac: Arc::new(OnceLock::new()),
        })
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
            .ok_or_else(|| sqlx::Error::Configuration("the PHI column keys are not loaded".into()))
    }

    fn open_column(&self, column: Column, row_id: &str, sealed: &[u8]) -> StoreResult<String> {
        self.phi()?
            .open(column, row_id, sealed)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
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

    /// Rewrites the database file without free pages and empties the WAL, so deleted or
    /// replaced rows (old plaintext, shredded keys) are not left on disk.
    pub async fn scrub_free_space(&self) -> StoreResult<()> {
        sqlx::query("VACUUM").execute(&self.pool).await?;
        self.truncate_wal().await.map(|_| ())
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(Tx(self.pool.begin().await?))
    }

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`): for
    /// read-then-write sequences that must not interleave with another writer.
    pub(crate) async fn begin_immediate(&self) -> StoreResult<Tx> {
        Ok(Tx(self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    /// Moves the WAL into the database file and empties it, so overwritten rows (with
    /// `secure_delete`, zeroed in the file) do not survive in old WAL frames.
    /// Truncates the WAL after keys were destroyed, so that their rows survive in no log
    /// frame. SQLite does not truncate while a reader still needs older frames (it reports
    /// the checkpoint busy, not an error): then it is retried in the background, every second
    /// for up to ten minutes (a backup's snapshot can hold it that long), and a failure is
    /// logged; the next destruction or start truncates it too.
    pub async fn truncate_wal_soon(&self) {
        match self.truncate_wal().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(error = %error, "could not truncate the WAL after destroying keys");
                return;
            }
        }
        let db = self.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match db.truncate_wal().await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "could not truncate the WAL after destroying keys");
                        return;
                    }
                }
            }
            tracing::warn!(
                "the WAL could not be truncated after destroying keys: readers kept it busy for \
                 ten minutes"
            );
        });
    }

    /// Checkpoints the WAL into the database and truncates it to zero bytes. `false` when a
    /// reader kept the checkpoint from completing (`busy`, after waiting a moment for it):
    /// the WAL may still hold frames.
    pub async fn truncate_wal(&self) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await?;
        // A reader can hold the WAL for as long as it reads: wait briefly, not the pool's
        // ten seconds, and let the caller retry.
        sqlx::query("PRAGMA busy_timeout = 250")
            .execute(&mut *conn)
            .await?;
        let checkpoint = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await;
        sqlx::query("PRAGMA busy_timeout = 10000")
            .execute(&mut *conn)
            .await?;
        let busy: i64 = checkpoint?.try_get(0)?;
        Ok(busy == 0)
    }
}

impl Db {
    /// Opens an existing database read-only: no migrations, no journal-mode change, no
    /// writes, so it is safe beside a running server (WAL readers never block its writer).
    pub async fn open_read_only(path: &Path) -> anyhow::Result<Db> {
        if !path.is_file() {
            anyhow::bail!("no database at {}", path.display());
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            phi: Arc::new(OnceLock::new()),
            audit: Arc::new(AuditLogState::default()),
            row_mac: Arc::new(OnceLock::new()),
        })
    }

    /// Opens a database file nothing writes to (a backup's snapshot) without locking it or
    /// creating `-wal`/`-shm` files beside it.
    pub async fn open_immutable(path: &Path) -> anyhow::Result<Db> {
        if !path.is_file() {
            anyhow::bail!("no database at {}", path.display());
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            phi: Arc::new(OnceLock::new()),
            audit: Arc::new(AuditLogState::default()),
            row_mac: Arc::new(OnceLock::new()),
        })
    }

    /// Writes a consistent copy of the whole database to `dest` (which must not exist), while
    /// the server goes on writing: SQLite's `VACUUM INTO` reads one snapshot.
    pub async fn vacuum_into(&self, dest: &Path) -> anyhow::Result<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("the backup path is not valid UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
