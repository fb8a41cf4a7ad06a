//! `chartvault migrate-store`: moves an embedded archive (SQLite, objects on local disk, a
//! key file) to the engines of a scaled setup (PostgreSQL, object storage, a KMS), as
//! another config file names them.
//!
//! Promises:
//! - Nothing is decrypted but the data keys: every table is copied row by row (sealed
//!   columns as the bytes they are), every object as the ciphertext it is; each keyring row
//!   is unwrapped under the source's KEK and wrapped under the target's (a KMS's Transit key,
//!   say), so after the move the source's KEK opens nothing in the target.
//! - Resumable: a move stopped midway is finished by running it again (rows already there
//!   and objects already there are skipped); a second run copies nothing.
//! - The source is read with its server stopped (the server lock is held throughout), and
//!   is left as it was. The target's `verify` report ends the move.
//! - The index and the audit checkpoints stay in the data directory, which the target's
//!   config must name as the source's does.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;

use anyhow::{bail, Context};
use chartvault_storage::{BlobStore, KeyId, WrappedKey};
use serde::Serialize;

use crate::config::{Config, DatabaseLocation};
use crate::store::prelude::*;
use crate::store::Db;

/// What a move did.
#[derive(Debug, Serialize)]
pub struct Migration {
    /// Rows inserted per table (0 for a table copied before).
    pub rows: Vec<(String, u64)>,
    /// Objects copied, and objects the target had already.
    pub objects_copied: u64,
    pub objects_present: u64,
    /// The target's `verify` report, in brief.
    pub verify_errors: usize,
    pub verify_summary: String,
}

/// Moves the archive of `source` into the stores `target` names.
pub async fn migrate_store(source: &Config, target: &Config) -> anyhow::Result<Migration> {
    let DatabaseLocation::Sqlite(source_db) = source.database()? else {
        bail!("the source archive is already on PostgreSQL: there is nothing to move");
    };
    let DatabaseLocation::Postgres(_) = target.database()? else {
        bail!("the target's database.url names no PostgreSQL database (postgres://…)");
    };
    if source.data_dir != target.data_dir {
        bail!(
            "the target's data_dir must be the source's ({}): the index and the audit \
             checkpoints stay in it",
            source.data_dir.display()
        );
    }
    if !source_db.is_file() {
        bail!("no archive at {}", source_db.display());
    }
    let source_keys = crate::ops::keys::load_existing_keys(source)?;
    let target_keys = crate::ops::keys::load_keys(target)?;
    let from = Db::open_read_only(&source_db).await?;
    let to = Db::open_at(&target.database()?).await?;
    // A database holding another archive is not merged into.
    let ours = from.service_key_id("metadata").await?;
    let theirs = to.service_key_id("metadata").await?;
    if theirs.is_some() && theirs != ours {
        bail!("the target database holds another archive");
    }

    let rewrap = move |key_id: &str,
                       version: u32,
                       bytes: Vec<u8>|
          -> anyhow::Result<(u32, Vec<u8>)> {
        let id = KeyId::from_hex(key_id)?;
        let key = source_keys
            .unwrap_key(
                &id,
                &WrappedKey {
                    kek_version: version,
                    bytes,
                },
            )
            .with_context(|| format!("unwrapping keyring row {key_id} with the source's KEK"))?;
        let wrapped = target_keys.wrap_key(&id, &key)?;
        Ok((wrapped.kek_version, wrapped.bytes))
    };
    let rows = from
        .copy_into_postgres(&to, &rewrap)
        .await
        .context("copying the database")?;
    from.close().await;
    to.close().await;

    let source_blobs = crate::store::vault::open_blobs(source)?;
    let target_blobs = crate::store::vault::open_blobs(target)?;
    let (objects_copied, objects_present) =
        tokio::task::spawn_blocking(move || copy_objects(source_blobs, target_blobs))
            .await?
            .context("copying the objects")?;

    let report = crate::ops::verify::verify(target).await?;
    Ok(Migration {
        rows: rows.into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
        objects_copied,
        objects_present,
        verify_errors: report.errors(),
        verify_summary: report.summary(),
    })
}

/// Copies every object of `from` that `to` lacks, byte for byte.
pub(crate) fn copy_objects(
    from: Arc<dyn BlobStore>,
    to: Arc<dyn BlobStore>,
) -> anyhow::Result<(u64, u64)> {
    let present: HashSet<String> = to
        .list("")?
        .into_iter()
        .map(|name| name.as_str().to_string())
        .collect();
    let (mut copied, mut skipped) = (0, 0);
    let mut buffer = vec![0u8; 1 << 20];
    for name in from.list("")? {
        if present.contains(name.as_str()) {
            skipped += 1;
            continue;
        }
        let mut reader = from.open(&name)?;
        let mut writer = to.create(&name)?;
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            writer.write_all(&buffer[..n])?;
        }
        writer.commit()?;
        copied += 1;
    }
    Ok((copied, skipped))
}
