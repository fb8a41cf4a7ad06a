//! The PostgreSQL backend of the store, for a scaled setup: API nodes and workers on many
//! machines sharing one database. The aggregates are the folder's SQL files, compiled here
//! for PostgreSQL; its schema is `migrations/postgres` (the SQLite schema's tables, columns,
//! constraints and append-only guards, in PostgreSQL's types).
//!
//! Where SQLite has one writer, PostgreSQL has many: a transaction that reads and then
//! writes what it read decided ([`Store::begin_write`]) takes one transaction-scoped
//! advisory lock first, so such transactions run one at a time across every node, as they
//! do on SQLite. The sealed columns and blind indexes are the same bytes in either database.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row};

pub(crate) use super::SqlStore;
use crate::store::api::prelude::*;
use crate::store::api::Store;
use crate::store::base::TxInner;
use crate::store::base::*;
use crate::store::row_mac;

super::aggregates!();

/// The store on PostgreSQL.
pub type PgStore = SqlStore<PgPool>;
/// What the aggregate files implement their traits on, in this backend.
type Backend = PgStore;
/// The driver, its connection and its row, as the aggregate files name them.
type Driver = Postgres;
type Conn = sqlx::PgConnection;
type DbRow = sqlx::postgres::PgRow;

/// The advisory lock that [`Store::begin_write`] transactions take, one at a time.
const WRITE_LOCK: i64 = 0x6368_6172_7476_6c74; // "chartvlt"

/// The advisory lock the index writer's process holds for as long as it lives (see
/// [`PgStore::try_writer_role`]).
const WRITER_ROLE_LOCK: i64 = 0x6368_6172_7476_6978; // "chartvix"

/// What a claim's subquery adds to take its row: the row is locked, and rows other claims
/// hold are passed over, so concurrent claims take different rows without waiting.
const SKIP_LOCKED: &str = "FOR UPDATE SKIP LOCKED";

/// The name of the table named `$1`, if there is one.
const TABLE_NAMED: &str =
    "SELECT table_name::text FROM information_schema.tables WHERE table_name = $1";

/// Suspends trigger `name` (an append-only guard of `table`) inside the transaction of
/// `conn` (DDL is transactional: it is back for everyone else); returns the statement that
/// puts it back.
async fn suspend_trigger(conn: &mut Conn, table: &str, name: &str) -> StoreResult<String> {
    sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER {name}"))
        .execute(&mut *conn)
        .await?;
    Ok(format!("ALTER TABLE {table} ENABLE TRIGGER {name}"))
}

/// The driver's connection inside a [`Tx`] of this backend.
trait TxConn {
    fn conn(&mut self) -> &mut Conn;
}

impl TxConn for Tx {
    fn conn(&mut self) -> &mut Conn {
        match &mut self.0 {
            TxInner::Postgres(tx) => tx,
            TxInner::Sqlite(_) => unreachable!("a SQLite transaction given to PostgreSQL"),
        }
    }
}

/// Where a unit test's store lives: the URL of its database on the test cluster.
#[cfg(test)]
pub(super) type TestPlace = String;

/// A fresh, migrated store for a unit test (see `testing`), in a database of its own on the
/// test process's PostgreSQL cluster.
#[cfg(test)]
pub(super) async fn open_test_store() -> (PgStore, TestPlace) {
    let cluster = chartvault_storage::testsuite::postgres::shared()
        .expect("PostgreSQL for the store's tests: scripts/setup.sh installs it");
    let url = cluster.new_database();
    let db = PgStore::open(&url).await.expect("a new store opens");
    (db, url)
}

/// Another handle on a test store's database.
#[cfg(test)]
async fn reopen_test_store(url: &TestPlace) -> PgStore {
    PgStore::open(url).await.expect("the store opens again")
}

/// Everything a test store's database holds, as `pg_dump` writes it.
#[cfg(test)]
fn stored_bytes(url: &TestPlace) -> Vec<u8> {
    chartvault_storage::testsuite::postgres::shared()
        .expect("the test cluster")
        .dump(url)
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and brings the schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<PgStore> {
        let store = PgStore::connect(url).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&store.pool)
            .await?;
        Ok(store)
    }

    /// Connects to `url` without touching the schema (the operator tools).
    pub async fn connect(url: &str) -> anyhow::Result<PgStore> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(PgStore::on(pool))
    }

    /// Takes the index writer's role if no other process holds it: a session advisory lock
    /// on a connection of its own, taken out of the pool. The role is this process's for as
    /// long as the connection lives; when the process dies, PostgreSQL ends the session and
    /// a standby takes the role.
    pub async fn try_writer_role(&self) -> StoreResult<Option<sqlx::PgConnection>> {
        let mut conn = self.pool.acquire().await?.detach();
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_ROLE_LOCK)
            .fetch_one(&mut conn)
            .await?;
        Ok(if taken {
            Some(conn)
        } else {
            use sqlx::Connection;
            let _ = conn.close().await;
            None
        })
    }

    /// Whether the database holds an archive: its schema and the archive's service keys.
    pub async fn holds_service_keys(&self) -> anyhow::Result<bool> {
        let table: Option<String> = sqlx::query_scalar(TABLE_NAMED)
            .bind("service_keys")
            .fetch_optional(&self.pool)
            .await?;
        if table.is_none() {
            return Ok(false);
        }
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM service_keys")
            .fetch_one(&self.pool)
            .await?;
        Ok(keys > 0)
    }

    /// Nothing to scrub in the files of a server this process does not own: PostgreSQL
    /// reclaims dead rows with its own vacuum.
    pub async fn scrub_free_space(&self) -> StoreResult<()> {
        Ok(())
    }

    /// The WAL of PostgreSQL is the server's: nothing for the store to truncate.
    pub async fn truncate_wal(&self) -> StoreResult<bool> {
        Ok(true)
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction that holds the write lock from the start (see the module docs).
    pub(crate) async fn begin_immediate(&self) -> StoreResult<Tx> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(Tx(TxInner::Postgres(tx)))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Store for PgStore {
    async fn begin(&self) -> StoreResult<Tx> {
        Ok(Tx(TxInner::Postgres(self.pool.begin().await?)))
    }

    async fn begin_write(&self) -> StoreResult<Tx> {
        self.begin_immediate().await
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::from)
            .map(|_| ())
    }
}
