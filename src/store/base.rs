//! What every file of the store speaks: its error and result, its transaction, its clock,
//! and the domain's vocabulary. Backends and aggregates import this file; it imports none
//! of them.

pub(crate) use std::future::Future;
use std::str::FromStr;

pub(crate) use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
pub(crate) use serde::Serialize;

pub(crate) use crate::domain::{
    BatchId, Category, DocumentId, DocumentStatus, Mrn, PatientId, Role, UserId,
};
pub(crate) use crate::store::objects::ObjectRef;
pub(crate) use crate::store::phi::Column;

/// The time now, as the store writes it (RFC 3339, milliseconds, UTC).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The store's error; callers never name the driver.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused (the driver's error).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored value does not mean what it should: an id, a date, a status or a JSON
    /// document that does not parse, or a sealed value that does not open.
    #[error("a stored value is unreadable: {0}")]
    Unreadable(Box<dyn std::error::Error + Send + Sync>),
    /// A value could not be written in the store's format.
    #[error("a value could not be written: {0}")]
    Unwritable(Box<dyn std::error::Error + Send + Sync>),
    /// The store was used before its keys were given to it.
    #[error("{0} not loaded")]
    KeysNotLoaded(&'static str),
}

impl StoreError {
    /// A stored value that does not mean what it should.
    pub(crate) fn unreadable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unreadable(Box::new(error))
    }
}

/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// Parses an id read from the store.
pub(crate) fn parse_id<T: FromStr>(raw: &str) -> StoreResult<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    raw.parse::<T>().map_err(StoreError::unreadable)
}

/// Parses a date read from the store.
pub(crate) fn parse_date(raw: Option<String>) -> StoreResult<Option<NaiveDate>> {
    raw.map(|d| NaiveDate::from_str(&d).map_err(StoreError::unreadable))
        .transpose()
}

/// A value read from the store that does not mean what it should.
pub(crate) fn decode_err(message: String) -> StoreError {
    StoreError::Unreadable(message.into())
}

/// A transaction of the store, begun by [`Store::begin`](crate::store::Store::begin):
/// committed by [`Tx::commit`], rolled back when dropped. Store methods that take part in a
/// caller's transaction take `&mut Tx`; no driver type appears in their signatures. Each
/// backend opens the variant of its own driver.
pub struct Tx(pub(crate) TxInner);

/// The driver's transaction inside a [`Tx`].
pub(crate) enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Commits everything done in the transaction.
    pub async fn commit(self) -> StoreResult<()> {
        match self.0 {
            TxInner::Sqlite(tx) => Ok(tx.commit().await?),
            TxInner::Postgres(tx) => Ok(tx.commit().await?),
        }
    }
}
