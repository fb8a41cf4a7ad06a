//! The SQLite backend of the store, the embedded default: one file in the data directory,
//! WAL, `synchronous=FULL` (an acknowledged upload survives a crash), `secure_delete`.
//! This file opens the database and hands out its transactions; the aggregates are the
//! folder's SQL files, compiled here for SQLite.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool};

pub(crate) use super::SqlStore;
use crate::store::api::prelude::*;
use crate::store::api::Store;
use crate::store::base::TxInner;
use crate::store::base::*;
use crate::store::row_mac;

super::aggregates!();

/// The store on SQLite.
pub type SqliteStore = SqlStore<SqlitePool>;
/// What the aggregate files implement their traits on, in this backend.
type Backend = SqliteStore;
/// The driver, its connection and its row, as the aggregate files name them.
type Driver = Sqlite;
type Conn = sqlx::SqliteConnection;
type DbRow = sqlx::sqlite::SqliteRow;

/// What a claim's subquery adds to take its row: nothing in SQLite, whose one writer makes
/// the claim's UPDATE atomic.
const SKIP_LOCKED: &str = "";

/// The name of the table named `$1`, if there is one.
const TABLE_NAMED: &str = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1";

/// Suspends trigger `name` (an append-only guard of `table`) inside the transaction of
/// `conn`; returns the statement that puts it back exactly as it was.
async fn suspend_trigger(conn: &mut Conn, _table: &str, name: &str) -> StoreResult<String> {
    let sql: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query(&format!("DROP TRIGGER {name}"))
        .execute(&mut *conn)
        .await?;
    Ok(sql)
}

/// The driver's connection inside a [`Tx`] of this backend.
trait TxConn {
    fn conn(&mut self) -> &mut Conn;
}

impl TxConn for Tx {
    fn conn(&mut self) -> &mut Conn {
        match &mut self.0 {
            TxInner::Sqlite(tx) => tx,
            TxInner::Postgres(_) => unreachable!("a PostgreSQL transaction given to SQLite"),
        }
    }
}

/// Where a unit test's store lives: a temporary directory with the database file.
#[cfg(test)]
pub(super) type TestPlace = tempfile::TempDir;

/// A fresh, migrated store for a unit test (see `testing`).
#[cfg(test)]
pub(super) async fn open_test_store() -> (SqliteStore, TestPlace) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = SqliteStore::open(&dir.path().join("chartvault.db"))
        .await
        .expect("a new store opens");
    (db, dir)
}

/// Another handle on a test store's database.
#[cfg(test)]
async fn reopen_test_store(dir: &TestPlace) -> SqliteStore {
    SqliteStore::open(&dir.path().join("chartvault.db"))
        .await
        .expect("the store opens again")
}

/// Every byte of a test store's database file and its WAL.
#[cfg(test)]
fn stored_bytes(dir: &TestPlace) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("the store's dir") {
        bytes.extend(std::fs::read(entry.expect("an entry").path()).unwrap_or_default());
    }
    bytes
}

impl SqliteStore {
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
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
        Ok(SqliteStore::on(pool))
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

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`): for
    /// read-then-write sequences that must not interleave with another writer.
    pub(crate) async fn begin_immediate(&self) -> StoreResult<Tx> {
        Ok(Tx(TxInner::Sqlite(
            self.pool.begin_with("BEGIN IMMEDIATE").await?,
        )))
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

impl SqliteStore {
    /// Opens an existing database read-only: no migrations, no journal-mode change, no
    /// writes, so it is safe beside a running server (WAL readers never block its writer).
    pub async fn open_read_only(path: &Path) -> anyhow::Result<SqliteStore> {
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
        Ok(SqliteStore::on(pool))
    }

    /// Opens a database file nothing writes to (a backup's snapshot) without locking it or
    /// creating `-wal`/`-shm` files beside it.
    pub async fn open_immutable(path: &Path) -> anyhow::Result<SqliteStore> {
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
        Ok(SqliteStore::on(pool))
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

impl Store for SqliteStore {
    async fn begin(&self) -> StoreResult<Tx> {
        Ok(Tx(TxInner::Sqlite(self.pool.begin().await?)))
    }

    async fn begin_write(&self) -> StoreResult<Tx> {
        self.begin_immediate().await
    }

    /// Whether the database answers a trivial query.
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::from)
            .map(|_| ())
    }
}
