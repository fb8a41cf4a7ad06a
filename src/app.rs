//! The application core: the [`Archive`] every service works on, whichever front end (the
//! HTTP API, the CLI, the job loop) called it.
//!
//! It holds the store, the vault, the search index and its writer, the OCR pool, the decoder
//! sandbox and the settings. It knows no web framework: services take `&Archive` and return
//! [`crate::error::AppError`], and the front ends map that to their own protocol.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use chartvault_index::{EncryptedDirectory, Follower, IndexWriterService, SearchIndex};
use chartvault_ocr::OcrPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::Category;
use crate::store::vault::Vault;
use crate::store::Db;

/// Everything a service needs, cheap to clone (every field is shared).
#[derive(Clone)]
pub struct Archive {
    pub config: Arc<Config>,
    pub db: Db,
    pub vault: Vault,
    /// The search index; `None` in a worker process (`chartvault worker`), which only
    /// recognises pages.
    pub index: Option<SearchIndex>,
    /// The index's one writer, set in the process that holds the writer's role (see
    /// [`crate::store::db::WriterRole`]): at start, or when a standby takes the role over.
    /// Never set in a worker process; the process holding it indexes what the others
    /// recognised (see [`crate::store::jobs::JobStage`]).
    pub index_writer: Arc<std::sync::OnceLock<IndexWriterService>>,
    pub ocr: OcrPool,
    /// Preflight and page decoding run in child processes under a memory ceiling.
    pub decoder: chartvault_ocr::Sandbox,
    pub jobs_waiting: Arc<Notify>,
    pub shutdown: CancellationToken,
    /// `access.sensitive_categories`, shared by every principal's scope.
    pub sensitive_categories: Arc<BTreeSet<Category>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Archive {
    /// The search index, in the processes that have one.
    pub fn index(&self) -> anyhow::Result<&SearchIndex> {
        self.index
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this process keeps no search index"))
    }

    /// The index writer, in the process that holds it.
    pub fn index_writer(&self) -> anyhow::Result<&IndexWriterService> {
        self.index_writer
            .get()
            .ok_or_else(|| anyhow::anyhow!("this process does not hold the index writer"))
    }

    /// Whether this process holds the index writer.
    pub fn writes_index(&self) -> bool {
        self.index_writer.get().is_some()
    }
}

/// Creates `data_dir` (mode `0700`) if it does not exist.
pub fn create_data_dir(config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))
}

/// With the objects on object storage (`storage.url = "s3://…"`), the index writer publishes
/// its commits there and every other node follows them into its own index directory (its
/// `data_dir`): the follower of this node, its directory already made the published commit
/// (a new node starts with the whole index). `None` on local storage, where the processes of
/// one machine share the index directory.
pub async fn index_follower(config: &Config, vault: &Vault) -> anyhow::Result<Option<Follower>> {
    if !matches!(
        config.object_storage()?,
        crate::config::ObjectStorage::S3 { .. }
    ) {
        return Ok(None);
    }
    let (key_id, key) = vault
        .service_key("index")
        .await
        .context("loading the index key")?;
    let mut follower = Follower::new(
        &config.index_dir(),
        vault.blobs.clone(),
        Arc::new(key),
        key_id,
    )
    .context("opening the index directory")?;
    let follower = tokio::task::spawn_blocking(move || follower.sync().map(|_| follower))
        .await?
        .context("copying the published index")?;
    Ok(Some(follower))
}

/// The search index, every file of it encrypted under the index's own key (wrapped in the
/// keyring like every data key); plaintext chunks live only in a bounded memory cache.
pub async fn open_index(config: &Config, vault: &Vault) -> anyhow::Result<SearchIndex> {
    let (key_id, key) = vault
        .service_key("index")
        .await
        .context("loading the index key")?;
    let directory =
        EncryptedDirectory::open_mmap(&config.index_dir(), key, key_id, config.index.cache_bytes)
            .context("opening the index directory")?;
    SearchIndex::open_in(Box::new(directory)).context("opening the index")
}
