//! The keyring: data keys wrapped under the KEK, and the service keys by purpose.

use super::base::*;

/// The keyring: every wrapped data key, its KEK version and its destruction.
pub trait KeyringStore {
    fn insert_key(
        tx: &mut Tx,
        key_id: &str,
        kek_version: u32,
        wrapped: &[u8],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn get_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = StoreResult<Option<(u32, Vec<u8>)>>> + Send;

    /// Keyring rows per KEK version, ascending by version.
    fn keyring_versions(&self) -> impl Future<Output = StoreResult<Vec<(u32, i64)>>> + Send;

    /// Up to `limit` keyring rows wrapped under a version other than `current`.
    fn keyring_rows_not_under(
        &self,
        current: u32,
        limit: i64,
    ) -> impl Future<Output = StoreResult<Vec<(String, u32, Vec<u8>)>>> + Send;

    /// Replaces wrapped keys in one transaction, each only if its row is still under the
    /// version it was read with: `(key_id, old_version, new_version, new_bytes)`. Returns the
    /// rows changed.
    fn swap_wrapped_keys(
        &self,
        updates: &[(String, u32, u32, Vec<u8>)],
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    fn service_key_id(
        &self,
        purpose: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Records a new service key (keyring row and purpose) in one transaction. Returns false
    /// if another process recorded one for this purpose first.
    fn insert_service_key(
        &self,
        purpose: &str,
        key_id: &str,
        kek_version: u32,
        wrapped: &[u8],
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn delete_key(&self, key_id: &str) -> impl Future<Output = StoreResult<()>> + Send;
}
