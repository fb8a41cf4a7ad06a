//! Building the service from its config: keys, database, audit chain and checkpoints, blob
//! store, index, OCR engines, job loops and the HTTP listener. Tests build it with port 0 and a temp `data_dir`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chartvault_index::{Follower, IndexWriterService};
use chartvault_ocr::{OcrConfig, OcrPool};
use chartvault_storage::LocalBlobStore;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::app::{create_data_dir, index_follower, open_index, Archive};
use crate::audit::checkpoint::Checkpointer;
use crate::config::Config;
use crate::domain::Role;
use crate::http::routes::router;
use crate::http::state::AppState;
use crate::ops::keys::load_keys;
use crate::store::db::WriterRole;
use crate::store::prelude::*;
use crate::store::vault::Vault;
use crate::store::Db;

pub struct Application {
    listener: TcpListener,
    /// The HL7 MLLP listener's address, when `hl7.listen` is set.
    hl7_addr: Option<SocketAddr>,
    tls: Option<crate::http::tls::Tls>,
    state: AppState,
    /// Set on the first start of an empty archive: the token of the `admin` user it created.
    pub first_admin_token: Option<String>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let production = config.mode == crate::config::Mode::Production;
        // In production nothing is created here: a data directory or key file that is not
        // where the settings say is an error, not a new, empty archive.
        let keys = if production {
            if !Db::archive_exists(&config.database()?).await? {
                anyhow::bail!(
                    "there is no archive in {}: create it with `chartvault init` (production mode \
                     never creates one at start)",
                    config.data_dir.display()
                );
            }
            crate::ops::keys::load_existing_keys(&config)?
        } else {
            create_data_dir(&config)?;
            load_keys(&config)?
        };
        let (db, vault) = open_stores(&config, keys).await?;
        let chained = db.chain_legacy_audit().await?;
        if chained > 0 {
            tracing::info!(
                chained,
                "sealed and chained audit rows written before the chain"
            );
        }
        let maced = db.mac_legacy_rows().await?;
        if maced > 0 {
            tracing::info!(maced, "gave access rows written before row MACs their MAC");
        }
        let audit_checkpoints =
            Checkpointer::new(&config, db.clone()).context("loading the audit signing key")?;
        let upgraded = db.seal_legacy_rows().await?;
        if upgraded > 0 {
            tracing::info!(
                upgraded,
                "sealed PHI columns of rows written before sealing"
            );
        }
        // Keys destroyed just before a stop may still be in WAL frames.
        if !db.truncate_wal().await? {
            tracing::warn!("the WAL could not be truncated at start: a reader holds it");
        }
        let leftovers = vault.remove_leftover_staging()?;
        if leftovers > 0 {
            tracing::info!(leftovers, "removed staging objects of interrupted uploads");
        }
        let follower = index_follower(&config, &vault).await?;
        let index = open_index(&config, &vault).await?;
        // The index writer's role: this process's, or a standby's until the holder dies.
        let role = db.try_writer_role().await?;
        let ocr = if config.ocr.engines_in_serve {
            start_engines(&config)?
        } else {
            OcrPool::without_engines()
        };
        let decoder = start_decoder(&config).await?;
        let requeued = db.requeue_interrupted().await?;
        if requeued > 0 {
            tracing::info!(requeued, "resuming jobs interrupted by the last stop");
        }

        if production && db.user_count().await? == 0 {
            anyhow::bail!(
                "the archive has no users: create the first admin with `chartvault init`"
            );
        }
        let first_admin_token = if db.user_count().await? == 0 {
            let user = db.create_user("admin", Role::Admin).await?;
            let (token_id, token) =
                crate::access::policy::issue_token(&db, user, config.auth.token_ttl_days).await?;
            db.append_audit(&crate::store::audit_log::AuditEntry::administration(
                "user-add",
                serde_json::json!({
                    "user": user, "name": "admin", "role": "admin", "token_id": token_id,
                    "via": "first start",
                }),
            ))
            .await?;
            Some(token)
        } else {
            None
        };

        let tls = crate::http::tls::Tls::from_config(&config.server)?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let sensitive_categories = Arc::new(config.sensitive_categories());
        let jwt = crate::access::jwt::JwtVerifier::from_config(&config.auth)
            .context("loading the OIDC token settings")?
            .map(Arc::new);
        let metrics = Arc::new(crate::metrics::Metrics::new(db.audit_append_histogram()));
        let archive = Archive {
            sensitive_categories,
            metrics,
            config: Arc::new(config),
            db,
            vault,
            index: Some(index),
            index_writer: Arc::new(std::sync::OnceLock::new()),
            ocr,
            decoder,
            jobs_waiting: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
        };
        let state = AppState {
            archive,
            jwt,
            audit_checkpoints,
            writer_role: Arc::new(tokio::sync::Mutex::new(None)),
        };
        match role {
            Some(role) => become_writer(&state, role, follower, false).await?,
            None => {
                tracing::info!(
                    "another process holds the index writer: searching its commits, standing by"
                );
                tokio::spawn(stand_by(state.clone(), follower));
            }
        }
        // Values sealed in envelope version 1 under the service keys are sealed again in
        // version 2, in the background (resumable; both versions open meanwhile).
        let db = state.db.clone();
        tokio::spawn(async move {
            match db.reseal_v1_values(500).await {
                Ok(0) => {}
                Ok(resealed) => {
                    tracing::info!(resealed, "sealed values re-sealed in envelope version 2")
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "re-sealing version 1 values stopped")
                }
            }
        });
        // Before the worker: a document indexed from now on gets its outbox row (on every
        // node; the index writer's holder sends them).
        if state.config.hl7.mdm.endpoint.is_some() {
            state.db.enable_outbox();
        }
        crate::ingest::hashes::spawn_backfill(state.archive.clone());
        crate::ingest::dicom::spawn_instance_backfill(state.archive.clone());
        crate::ingest::worker::spawn(state.archive.clone());
        // One process takes the scanners' hot folders: the index writer's (a standby starts
        // them when it takes the role over), so two nodes never race for a file.
        if state.writes_index() {
            crate::ingest::intake::spawn(state.archive.clone());
        }
        let hl7_addr = crate::mllp::spawn(state.archive.clone()).await?;
        Ok(Application {
            listener,
            hl7_addr,
            tls,
            state,
            first_admin_token,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address clients reach the service at: `http://` or, with TLS, `https://`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    pub fn hl7_addr(&self) -> Option<SocketAddr> {
        self.hl7_addr
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then drains requests, stops the job loops and
    /// commits the index.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let config = &state.config;
        let fhir = crate::fhir::routes(
            config
                .fhir
                .max_inline_bytes
                .min(config.limits.max_upload_bytes),
        );
        let dicomweb = crate::dicomweb::routes(config.limits.max_upload_bytes);
        let app = router(
            self.state.clone(),
            vec![("/fhir", fhir), ("/dicom-web", dicomweb)],
        );
        let cancel = state.shutdown.clone();
        let limits = crate::http::serve::ConnectionLimits::from_config(&state.config.server);
        if let Some(tls) = &self.tls {
            tls.spawn_reloader(cancel.clone());
        }
        // The service also stops by itself when it lost the index writer's role.
        crate::http::serve::serve(self.listener, app, limits, self.tls, async move {
            tokio::select! {
                _ = shutdown => {}
                _ = cancel.cancelled() => {}
            }
            cancel.cancel();
        })
        .await?;
        state.shutdown.cancel();
        if let Some(writer) = state.index_writer.get().cloned() {
            writer.shutdown().await?;
            // The last entries of this run get their checkpoint before the process ends.
            if let Err(error) = state.audit_checkpoints.checkpoint_now().await {
                tracing::error!(error = %error, "could not write the shutdown audit checkpoint");
            }
        }
        // Only now may a standby take the writer's role.
        drop(state.writer_role.lock().await.take());
        Ok(())
    }
}

/// How often the index writer's holder checks that its role is still its own.
const ROLE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How often the index writer's holder purges documents shredded through other nodes.
const TOMBSTONE_SWEEP_INTERVAL: Duration = Duration::from_secs(2);

/// Takes up the index writer's role: starts the index writer, then what only its holder
/// runs (documents' labels normalised, shredded documents purged, the audit checkpoints,
/// the HL7 outbox's sender, the retention schedule; its caller starts the scanners' hot
/// folders),
/// and watches that the role stays this process's. A process whose role ended (its
/// database session broke, and a standby may hold it now) stops: two writers never run.
///
/// With a published index (`follower`), the writer starts from the latest published commit
/// and publishes each of its own; `taking_over` (from a holder that just lost the role)
/// first waits out the old holder's own check, so that it stops before the copy is made.
async fn become_writer(
    state: &AppState,
    role: WriterRole,
    follower: Option<Follower>,
    taking_over: bool,
) -> anyhow::Result<()> {
    let config = &state.config;
    *state.writer_role.lock().await = Some(role);
    let mut publisher = match follower {
        None => None,
        Some(follower) => {
            if taking_over {
                tokio::time::sleep(ROLE_CHECK_INTERVAL + Duration::from_secs(1)).await;
            }
            let publisher = tokio::task::spawn_blocking(move || {
                let mut follower = follower;
                follower.sync()?;
                let mut publisher = follower.into_publisher()?;
                // The commit this writer starts from is published as its own first one: a
                // process still publishing as the old writer fails from now on.
                publisher.publish()?;
                Ok::<_, chartvault_index::IndexError>(publisher)
            })
            .await?
            .context("taking up the published index")?;
            state.index()?.follow()?;
            Some(publisher)
        }
    };
    // The last holder's writer may take a moment to let go of the index's own lock (in a
    // shared directory; a published index's directory is this node's own).
    let publishes = publisher.is_some();
    let mut tries = 0;
    let writer = loop {
        match IndexWriterService::start_publishing(
            state.index()?,
            Duration::from_millis(config.index.commit_interval_ms),
            config.index.max_batch,
            publisher.take(),
        ) {
            Ok(writer) => break writer,
            Err(error) if tries < 30 && !publishes => {
                tries += 1;
                tracing::warn!(error = %error, "the index writer could not start yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error.into()),
        }
    };
    if state.index_writer.set(writer).is_err() {
        anyhow::bail!("the index writer was started twice");
    }
    let normalised = crate::ingest::pages::normalise_stored_labels(state).await?;
    if normalised > 0 {
        tracing::info!(
            normalised,
            "normalised the categories and types of documents filed before they were"
        );
    }
    let finished = crate::legal::shred::finish_pending(state).await?;
    if finished > 0 {
        tracing::info!(
            finished,
            "finished purging documents shredded before the last stop"
        );
    }
    // Documents shredded through a standby are purged here, soon after.
    let sweeper = state.archive.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TOMBSTONE_SWEEP_INTERVAL) => {}
                _ = sweeper.shutdown.cancelled() => return,
            }
            match crate::legal::shred::finish_pending(&sweeper).await {
                Ok(0) => {}
                Ok(purged) => {
                    tracing::info!(purged, "purged documents shredded through another node")
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "purging shredded documents failed; trying again")
                }
            }
        }
    });
    state.audit_checkpoints.spawn(state.shutdown.clone());
    // One sender of the HL7 outbox, one retention schedule: the role's holder runs them.
    crate::mllp::sender::spawn(state.archive.clone())?;
    crate::legal::retention::spawn_schedule(state.archive.clone());
    state.jobs_waiting.notify_waiters();
    let shutdown = state.shutdown.clone();
    let role = state.writer_role.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ROLE_CHECK_INTERVAL) => {}
                _ = shutdown.cancelled() => return,
            }
            let held = match role.lock().await.as_mut() {
                Some(role) => role.still_held().await,
                None => return,
            };
            if !held {
                tracing::error!(
                    "the index writer's role ended (its database session broke): stopping, \
                     so that the process that takes it over is the only writer"
                );
                shutdown.cancel();
                return;
            }
        }
    });
    Ok(())
}

/// A standby: searches what the writer commits (every second, the shared index read again,
/// or the published commit copied and read) and takes the writer's role over when its
/// holder's session ends.
async fn stand_by(state: AppState, mut follower: Option<Follower>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = state.shutdown.cancelled() => return,
        }
        if let Some(mut synced) = follower.take() {
            let (synced, result) = tokio::task::spawn_blocking(move || {
                let result = synced.sync();
                (synced, result)
            })
            .await
            .expect("the index follower does not panic");
            follower = Some(synced);
            if let Err(error) = result {
                tracing::warn!(error = %error, "could not copy the published index");
            }
        }
        if let Ok(index) = state.index() {
            if let Err(error) = index.follow() {
                tracing::debug!(error = %error, "could not read the writer's latest commit yet");
            }
        }
        match state.db.try_writer_role().await {
            Ok(None) => {}
            Ok(Some(role)) => {
                tracing::warn!("took over the index writer's role");
                if let Err(error) = become_writer(&state, role, follower, true).await {
                    tracing::error!(error = %format!("{error:#}"), "could not take up the index writer's role: stopping");
                    state.shutdown.cancel();
                    return;
                }
                crate::ingest::intake::spawn(state.archive.clone());
                return;
            }
            Err(error) => {
                tracing::error!(error = %error, "could not ask for the index writer's role")
            }
        }
    }
}

/// Opens the database and the vault over the object store, and gives the database the keys
/// of its sealed columns, its audit chain and its row MACs.
async fn open_stores(
    config: &Config,
    keys: Arc<dyn chartvault_storage::KeyProvider>,
) -> anyhow::Result<(Db, Vault)> {
    let db = Db::open_at(&config.database()?)
        .await
        .context("opening the database")?;
    db.set_lease_secs(i64::try_from(config.ocr.lease_seconds).unwrap_or(i64::MAX));
    if let crate::config::ObjectStorage::Local(dir) = config.object_storage()? {
        LocalBlobStore::open(dir)?.remove_stale_temp_files()?;
    }
    let blobs = crate::store::vault::open_blobs(config)?;
    let vault = Vault::new(blobs, keys, db.clone());
    db.set_phi(
        vault
            .phi_cipher()
            .await
            .context("loading the PHI column keys")?,
    );
    db.set_audit_cipher(
        vault
            .audit_cipher()
            .await
            .context("loading the audit keys")?,
    );
    db.set_row_mac(
        vault
            .row_mac()
            .await
            .context("loading the row integrity key")?,
    );
    Ok((db, vault))
}

/// Starts the OCR engines, `ocr.threads` of them (one per core by default).
fn start_engines(config: &Config) -> anyhow::Result<OcrPool> {
    OcrPool::start(&OcrConfig {
        threads: config.ocr_threads(),
        language: config.ocr.language.clone(),
        page_seg_mode: config.ocr.page_seg_mode,
        tessdata_dir: None,
        cleanup: config.ocr.cleanup(),
    })
    .context("starting the OCR engines")
}

/// The decoder sandbox, checked by starting one decoder process.
async fn start_decoder(config: &Config) -> anyhow::Result<chartvault_ocr::Sandbox> {
    let decoder = config.decoder.sandbox();
    let checked = decoder.clone();
    tokio::task::spawn_blocking(move || checked.check())
        .await?
        .context("starting a decoder process (decoder.program, decoder.memory_bytes)")?;
    Ok(decoder)
}

/// A worker process (`chartvault worker`): OCR engines and job loops on the shared
/// PostgreSQL queue, no index, no listener. It recognises documents' pages and splits
/// batches, stores what it made in the object store, and hands each recognised document to
/// the process holding the index writer. Any number of them, on any number of machines.
pub struct Worker {
    archive: Archive,
}

impl Worker {
    pub async fn build(config: Config) -> anyhow::Result<Worker> {
        let location = config.database()?;
        if !matches!(location, crate::config::DatabaseLocation::Postgres(_)) {
            anyhow::bail!(
                "a worker process shares the queue through PostgreSQL (database.url = \
                 postgres://…); the embedded archive recognises its pages in `serve`"
            );
        }
        if !Db::archive_exists(&location).await? {
            anyhow::bail!(
                "there is no archive at the configured database: start `serve` (or run \
                 `chartvault init`) first; a worker never creates one"
            );
        }
        let keys = crate::ops::keys::load_existing_keys(&config)?;
        let (db, vault) = open_stores(&config, keys).await?;
        let ocr = start_engines(&config)?;
        let decoder = start_decoder(&config).await?;
        let requeued = db.requeue_interrupted().await?;
        if requeued > 0 {
            tracing::info!(
                requeued,
                "requeued jobs whose worker stopped renewing their lease"
            );
        }
        let metrics = Arc::new(crate::metrics::Metrics::new(db.audit_append_histogram()));
        let archive = Archive {
            sensitive_categories: Arc::new(config.sensitive_categories()),
            metrics,
            config: Arc::new(config),
            db,
            vault,
            index: None,
            index_writer: Arc::new(std::sync::OnceLock::new()),
            ocr,
            decoder,
            jobs_waiting: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
        };
        Ok(Worker { archive })
    }

    /// Works until `shutdown` resolves, then stops claiming and lets the work in hand end
    /// (a job cut short is claimed again once its lease runs out).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let engines = self.archive.ocr.threads();
        crate::ingest::worker::spawn(self.archive.clone());
        tracing::info!(engines, "worker started");
        shutdown.await;
        self.archive.shutdown.cancel();
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Page text and keys live in this process's memory: no core dumps (a zero core size limit,
/// and not dumpable, which also keeps other processes of the same user from reading its
/// memory through ptrace or /proc).
pub fn disable_core_dumps() -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with valid arguments; failure only leaves dumps enabled.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
