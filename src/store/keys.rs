//! Data keys between their generation and their keyring row.

use std::sync::Arc;

use chartvault_storage::{DataKey, KeyId, KeyProvider, StorageError, WrappedKey};

/// A freshly generated data key and its wrapped form, not yet in the keyring.
///
/// While it lives, its KEK version counts as in use ([`Vault::wraps_in_flight`]): an upload
/// wraps its key when it starts and records the keyring row only when it is accepted, and
/// retiring that KEK version in between would leave an acknowledged original undecryptable.
/// Drop it once its keyring row is committed (or the upload is abandoned).
pub struct NewKey {
    pub id: KeyId,
    pub key: DataKey,
    pub wrapped: WrappedKey,
    pub(crate) _in_flight: WrapInFlight,
}

/// Counts a wrapped key not yet committed to the keyring, by KEK version, until dropped.
pub(crate) struct WrapInFlight {
    counts: Arc<std::sync::Mutex<std::collections::BTreeMap<u32, usize>>>,
    pub(crate) version: u32,
}

impl WrapInFlight {
    pub(crate) fn new(
        counts: &Arc<std::sync::Mutex<std::collections::BTreeMap<u32, usize>>>,
        version: u32,
    ) -> WrapInFlight {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(version).or_insert(0) += 1;
        WrapInFlight {
            counts: counts.clone(),
            version,
        }
    }
}

impl Drop for WrapInFlight {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.version) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.version);
            }
        }
    }
}

/// The data key of a keyring row: its wrapped bytes unwrapped under the KEK version the row
/// names. The one place a keyring row becomes a key, for the live vault and for the offline
/// tools' keyring snapshots alike.
pub fn unwrap_row(
    keys: &dyn KeyProvider,
    key_id: &KeyId,
    kek_version: u32,
    wrapped: Vec<u8>,
) -> Result<DataKey, StorageError> {
    let wrapped = WrappedKey {
        kek_version,
        bytes: wrapped,
    };
    keys.unwrap_key(key_id, &wrapped)
}
