//! The operator's tools: keys, integrity checks, backups.
//!
//! - [`keys`]: where the KEK comes from; rotation and retirement; the one keyring reader.
//! - [`verify`]: `chartvault verify`, the read-only integrity check of a data directory,
//!   with [`verify_index`] for the search index and [`findings`] for what it reports.
//! - [`backup`]: `chartvault backup` / `restore`, online snapshots and their restore.
//! - [`migrate`]: `chartvault migrate-store`, an embedded archive moved to PostgreSQL,
//!   object storage and a KMS.

pub mod backup;
pub mod findings;
pub mod keys;
pub mod migrate;
pub mod verify;
pub mod verify_index;

/// The directory of the objects, for the steps that work on an embedded archive's files
/// directly (a restore's copy into a data directory, the index reconcile after it): on
/// PostgreSQL or object storage they say they cannot (a restore into those stores goes
/// through an embedded archive first).
pub fn local_objects_dir(
    config: &crate::config::Config,
    tool: &str,
) -> anyhow::Result<std::path::PathBuf> {
    if let crate::config::DatabaseLocation::Postgres(_) = config.database()? {
        anyhow::bail!(
            "{tool} copies a SQLite database file and works on the embedded archive only for \
             now (database.url is postgres://); meanwhile PostgreSQL's own backups keep the \
             metadata"
        );
    }
    match config.object_storage()? {
        crate::config::ObjectStorage::Local(dir) => Ok(dir),
        crate::config::ObjectStorage::S3 { .. } => anyhow::bail!(
            "{tool} reads the objects' files and works on local storage only for now \
             (storage.url is s3://); meanwhile the bucket's own versioning and replication \
             keep its objects"
        ),
    }
}
