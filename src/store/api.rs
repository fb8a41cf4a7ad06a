//! The store's contract: [`Store`], which every backend implements, made of one trait per
//! aggregate (each in the aggregate's file, with its records). The SQLite backend
//! ([`crate::store::sql::sqlite`]) is the one there is today; a PostgreSQL one sits beside it as
//! a folder of its own and passes the same tests.

use crate::store::access::AccessStore;
use crate::store::audit_log::AuditLogStore;
use crate::store::base::{Future, StoreResult, Tx};
use crate::store::batches::BatchStore;
use crate::store::disclosures::DisclosureStore;
use crate::store::documents::DocumentStore;
use crate::store::hl7::Hl7Store;
use crate::store::holds::HoldStore;
use crate::store::integrity::IntegrityStore;
use crate::store::inventory::InventoryStore;
use crate::store::jobs::JobStore;
use crate::store::keyring::KeyringStore;
use crate::store::pages::PageStore;
use crate::store::patients::PatientStore;
use crate::store::releases::ReleaseStore;
use crate::store::reseal::ResealStore;
use crate::store::retention::RetentionStore;
use crate::store::users::UserStore;

/// Everything the archive keeps besides the encrypted objects: one backend implements every
/// aggregate's trait, and opens the transactions they share.
pub trait Store:
    PatientStore
    + DocumentStore
    + PageStore
    + JobStore
    + UserStore
    + AccessStore
    + KeyringStore
    + BatchStore
    + HoldStore
    + Hl7Store
    + ReleaseStore
    + DisclosureStore
    + RetentionStore
    + AuditLogStore
    + InventoryStore
    + IntegrityStore
    + ResealStore
    + Clone
    + Send
    + Sync
    + 'static
{
    /// Begins a transaction.
    fn begin(&self) -> impl Future<Output = StoreResult<Tx>> + Send;

    /// Begins a transaction that reads, then writes what it read decided: it holds the
    /// write lock from the start, so another writer cannot invalidate what it read (waiting
    /// for the lock instead of failing when it wants to write).
    fn begin_write(&self) -> impl Future<Output = StoreResult<Tx>> + Send;

    /// Whether the store answers a trivial query.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

/// The store's traits, for `use crate::store::prelude::*` where its methods are called.
pub mod prelude {
    pub use crate::store::access::AccessStore as _;
    pub use crate::store::api::Store as _;
    pub use crate::store::audit_log::AuditLogStore as _;
    pub use crate::store::batches::BatchStore as _;
    pub use crate::store::disclosures::DisclosureStore as _;
    pub use crate::store::documents::DocumentStore as _;
    pub use crate::store::hl7::Hl7Store as _;
    pub use crate::store::holds::HoldStore as _;
    pub use crate::store::integrity::IntegrityStore as _;
    pub use crate::store::inventory::InventoryStore as _;
    pub use crate::store::jobs::JobStore as _;
    pub use crate::store::keyring::KeyringStore as _;
    pub use crate::store::pages::PageStore as _;
    pub use crate::store::patients::PatientStore as _;
    pub use crate::store::releases::ReleaseStore as _;
    pub use crate::store::reseal::ResealStore as _;
    pub use crate::store::retention::RetentionStore as _;
    pub use crate::store::users::UserStore as _;
}
