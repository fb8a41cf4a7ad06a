//! KEK lifecycle: where the KEK comes from, rotation and retirement.
//!
//! Promises:
//! - [`rotate`] adds a KEK version (to the key file, or to the KMS's Transit key; an
//!   environment variable is changed by the operator) and re-wraps every keyring row still
//!   under an older version: object keys, the index key, the PHI column and blind-index
//!   keys. No object, index file or column value is touched, and the running service keeps
//!   serving: old versions stay loaded until [`retire`], and each row is swapped in one
//!   compare-and-set update.
//! - [`retire`] removes a version only when no keyring row uses it any more, then reloads
//!   the provider: from then on the old KEK decrypts nothing. A KMS retires in order: every
//!   version up to the one named, each of them unused.
//! - The same functions serve the admin API of a running server and the offline CLI.
//! - [`Keyring`] is the one reader of a keyring snapshot for the offline tools (`verify`,
//!   `backup`, `audit verify`): data keys unwrapped on demand, never a key file created.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use chartvault_storage::{DataKey, KeyFile, KeyId, KeyProvider, TransitKeyProvider, WrappedKey};
use serde::Serialize;

use crate::config::{Config, KeyProviderKind, OpenBaoConfig};
use crate::store::inventory::{Inventory, KeyringRow};
use crate::store::keys::unwrap_row;
use crate::store::prelude::*;
use crate::store::vault::Vault;
use crate::store::Db;

/// Loads the KEK from the environment variable named in config, or else the key file
/// (created `0600` on first start).
pub fn load_keys(config: &Config) -> anyhow::Result<Arc<dyn KeyProvider>> {
    KekSource::from_config(config).load()
}

/// Loads the KEK as [`load_keys`] does, but never creates a key file: the operator tools
/// (`verify`, `backup`, `restore`) need the archive's own KEK, and a fresh one would only
/// fail to unwrap every key (and leave a stray key file behind).
pub fn load_existing_keys(config: &Config) -> anyhow::Result<Arc<dyn KeyProvider>> {
    KekSource::from_config(config).load_existing()
}

/// Rows re-wrapped per transaction.
const BATCH: i64 = 256;

/// One rotation or retirement at a time in this process (the key file also takes a lock of
/// its own against other processes): two rotations at once would each add a version.
static KEK_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the KEKs come from.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// A `0600` key file (created on first start).
    File(PathBuf),
    /// An environment variable holding the key-file format (or one bare base64 key).
    Env(String),
    /// A Transit key in OpenBao or Vault (the key created on first start).
    OpenBao(OpenBaoConfig),
}

impl KekSource {
    pub fn from_config(config: &Config) -> KekSource {
        if config.keys.provider == KeyProviderKind::Openbao {
            return KekSource::OpenBao(config.keys.openbao.clone());
        }
        match &config.keys.kek_env {
            Some(var) if std::env::var_os(var).is_some() => KekSource::Env(var.clone()),
            _ => KekSource::File(config.keys.kek_file.clone()),
        }
    }

    pub fn load(&self) -> anyhow::Result<Arc<dyn KeyProvider>> {
        Ok(match self {
            KekSource::File(path) => Arc::new(KeyFile::load_or_create(path)?),
            KekSource::Env(var) => Arc::new(KeyFile::from_env(var)?),
            KekSource::OpenBao(kms) => {
                Arc::new(TransitKeyProvider::open_or_create(&kms.location()?)?)
            }
        })
    }

    /// The KMS's key, for the operations the provider trait does not have (rotate, retire).
    fn transit(kms: &OpenBaoConfig) -> anyhow::Result<TransitKeyProvider> {
        Ok(TransitKeyProvider::open(&kms.location()?)?)
    }

    /// As [`KekSource::load`], but never creates a key file: tools working on an existing
    /// archive need its own KEK, and a fresh one would only fail to unwrap every key.
    pub fn load_existing(&self) -> anyhow::Result<Arc<dyn KeyProvider>> {
        let keys = match self {
            KekSource::File(path) => KeyFile::load(path).with_context(|| {
                format!(
                    "loading the key file {} (set keys.kek_file or keys.kek_env)",
                    path.display()
                )
            })?,
            KekSource::Env(var) => KeyFile::from_env(var)?,
            KekSource::OpenBao(kms) => return Ok(Arc::new(KekSource::transit(kms)?)),
        };
        Ok(Arc::new(keys))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct KeyStatus {
    /// The version new keys are wrapped under.
    pub current_version: u32,
    /// The versions loaded.
    pub loaded_versions: Vec<u32>,
    /// Keyring rows per KEK version, ascending by version: pairs `[version, rows]`.
    #[schema(value_type = Vec<Vec<i64>>)]
    pub rows_by_version: Vec<(u32, i64)>,
}

pub async fn status(db: &Db, vault: &Vault) -> anyhow::Result<KeyStatus> {
    let keys = vault.keys();
    Ok(KeyStatus {
        current_version: keys.current_version(),
        loaded_versions: keys.versions(),
        rows_by_version: db.keyring_versions().await?,
    })
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rotation {
    pub previous_version: u32,
    pub current_version: u32,
    pub rewrapped: u64,
}

/// Adds a KEK version (key file) and re-wraps every keyring row under it.
///
/// With an environment-variable KEK the operator adds the new version to the variable and
/// restarts; `rotate` then re-wraps the rows. Without a new version there is nothing to
/// rotate to, and it says so.
pub async fn rotate(db: &Db, vault: &Vault, source: &KekSource) -> anyhow::Result<Rotation> {
    let _one_at_a_time = KEK_CHANGES.lock().await;
    let previous_version = vault.keys().current_version();
    match source {
        KekSource::File(path) => {
            let added = KeyFile::add_version(path).context("adding a KEK version")?;
            vault.replace_keys(source.load()?);
            tracing::info!(kek_version = added, "KEK version added");
        }
        KekSource::OpenBao(kms) => {
            let added = KekSource::transit(kms)?
                .rotate()
                .context("adding a version to the KMS's key")?;
            vault.replace_keys(source.load()?);
            tracing::info!(kek_version = added, "KEK version added in the KMS");
        }
        KekSource::Env(var) => {
            let pending = db
                .keyring_versions()
                .await?
                .iter()
                .any(|(version, _)| *version != previous_version);
            if !pending {
                bail!(
                    "the KEK comes from the environment variable {var}: add a new version line \
                     (`v<N> <base64 key>`) to it and restart, then rotate again to re-wrap"
                );
            }
        }
    }
    let current_version = vault.keys().current_version();
    let rewrapped = rewrap_all(db, vault).await?;
    tracing::info!(
        kek_version = current_version,
        rewrapped,
        "keyring re-wrapped under the current KEK"
    );
    Ok(Rotation {
        previous_version,
        current_version,
        rewrapped,
    })
}

/// Re-wraps every keyring row not under the current version; returns how many.
pub async fn rewrap_all(db: &Db, vault: &Vault) -> anyhow::Result<u64> {
    let keys = vault.keys();
    let current = keys.current_version();
    let mut rewrapped = 0u64;
    loop {
        let rows = db.keyring_rows_not_under(current, BATCH).await?;
        if rows.is_empty() {
            return Ok(rewrapped);
        }
        let mut updates = Vec::with_capacity(rows.len());
        for (key_id, version, bytes) in rows {
            let id = KeyId::from_hex(&key_id)?;
            let wrapped = WrappedKey {
                kek_version: version,
                bytes,
            };
            let new = keys
                .rewrap_key(&id, &wrapped)
                .with_context(|| format!("re-wrapping keyring row {key_id}"))?;
            updates.push((key_id, version, new.kek_version, new.bytes));
        }
        // A row changed meanwhile (shredded) is skipped by the compare-and-set.
        rewrapped += db.swap_wrapped_keys(&updates).await?;
    }
}

/// Retires KEK `version`: refused while any keyring row is wrapped under it or when it is
/// current; removes it from the key file and reloads the provider.
pub async fn retire(
    db: &Db,
    vault: &Vault,
    source: &KekSource,
    version: u32,
) -> anyhow::Result<()> {
    let _one_at_a_time = KEK_CHANGES.lock().await;
    let keys = vault.keys();
    if !keys.versions().contains(&version) {
        bail!("KEK version {version} is not loaded");
    }
    if keys.current_version() == version {
        bail!("KEK version {version} is current; rotate first");
    }
    // Keys wrapped under it whose rows are not committed yet (an upload in progress) come
    // first: checked before the keyring, since a key leaves this count only once its row is
    // committed, where the keyring check below then finds it.
    // The KMS retires versions in order: every one up to `version` goes.
    let retired: Vec<u32> = match source {
        KekSource::OpenBao(_) => keys
            .versions()
            .into_iter()
            .filter(|v| *v <= version)
            .collect(),
        _ => vec![version],
    };
    let in_flight: usize = retired.iter().map(|v| vault.wraps_in_flight(*v)).sum();
    if in_flight > 0 {
        bail!(
            "{in_flight} uploads or filings in progress hold keys wrapped under KEK version \
             {version}; retry when they are done, then rotate and retire"
        );
    }
    let in_use: i64 = db
        .keyring_versions()
        .await?
        .into_iter()
        .filter(|(v, _)| retired.contains(v))
        .map(|(_, rows)| rows)
        .sum();
    if in_use > 0 {
        bail!("{in_use} keyring rows are still wrapped under KEK version {version}; rotate first");
    }
    match source {
        KekSource::File(path) => {
            KeyFile::remove_version(path, version).map_err(|e| anyhow!(e))?;
            vault.replace_keys(source.load()?);
            tracing::info!(kek_version = version, "KEK version retired");
            Ok(())
        }
        KekSource::Env(var) => bail!(
            "no keyring row uses KEK version {version}: remove its line from the environment \
             variable {var} and restart"
        ),
        KekSource::OpenBao(kms) => {
            KekSource::transit(kms)?
                .retire_below(version + 1)
                .context("retiring versions of the KMS's key")?;
            vault.replace_keys(source.load()?);
            tracing::info!(
                kek_version = version,
                "KEK versions up to this one retired in the KMS"
            );
            Ok(())
        }
    }
}

/// Data keys by key id, unwrapped on demand from a keyring snapshot.
pub(crate) struct Keyring {
    keys: Arc<dyn KeyProvider>,
    rows: HashMap<String, KeyringRow>,
}

pub(crate) enum KeyLookup {
    Found(DataKey),
    NoRow,
    /// The row does not unwrap under the KEK version it names (or that version is absent).
    Unwrap(String),
}

impl Keyring {
    pub(crate) fn new(keys: Arc<dyn KeyProvider>, rows: &[KeyringRow]) -> Keyring {
        Keyring {
            keys,
            rows: rows
                .iter()
                .map(|row| (row.key_id.clone(), row.clone()))
                .collect(),
        }
    }

    pub(crate) fn data_key(&self, key_id: &KeyId) -> KeyLookup {
        let Some(row) = self.rows.get(&key_id.to_hex()) else {
            return KeyLookup::NoRow;
        };
        match unwrap_row(
            self.keys.as_ref(),
            key_id,
            row.kek_version,
            row.wrapped.clone(),
        ) {
            Ok(key) => KeyLookup::Found(key),
            Err(error) => KeyLookup::Unwrap(error.to_string()),
        }
    }

    /// The key of service `purpose` (e.g. `index`), if the archive has one.
    pub(crate) fn service_key(
        &self,
        inventory: &Inventory,
        purpose: &str,
    ) -> anyhow::Result<Option<(KeyId, DataKey)>> {
        let Some((_, hex)) = inventory.service_keys.iter().find(|(p, _)| p == purpose) else {
            return Ok(None);
        };
        let key_id = KeyId::from_hex(hex)?;
        match self.data_key(&key_id) {
            KeyLookup::Found(key) => Ok(Some((key_id, key))),
            KeyLookup::NoRow => bail!("the {purpose} key {hex} has no keyring row"),
            KeyLookup::Unwrap(error) => bail!(
                "the KEK does not unwrap the {purpose} key ({error}): is this the archive's key file?"
            ),
        }
    }

    /// Fails unless the KEK unwraps at least one keyring row (when there are any): a wrong
    /// key file is a usage error, not a corrupt archive.
    pub(crate) fn check_kek(&self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let unwraps = self.rows.keys().any(|hex| {
            KeyId::from_hex(hex)
                .map(|id| matches!(self.data_key(&id), KeyLookup::Found(_)))
                .unwrap_or(false)
        });
        if !unwraps {
            bail!("the KEK unwraps none of the archive's keys: is this the archive's key file?");
        }
        Ok(())
    }
}
