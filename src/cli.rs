//! The command line: `serve`, user and token administration on a data directory, and the
//! `ingest` / `search` clients that talk to a running server.
//!
//! Patient details never go on the command line (shell history, `ps`): `ingest` reads them
//! from a JSON file or stdin. Tokens come from `CHARTVAULT_TOKEN`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::domain::Role;
use crate::store::prelude::*;
use crate::store::Db;

#[derive(Parser, Debug)]
#[command(
    name = "chartvault",
    version,
    about = "Encrypted, searchable archive of scanned medical records"
)]
pub struct Cli {
    /// Settings file (default: ./config.toml when present, else the embedded defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service.
    Serve {
        #[command(flatten)]
        data: DataDirArg,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Run an OCR worker: recognise documents' pages and split batches from the shared
    /// PostgreSQL queue, storing what it makes in the object store, and hand each recognised
    /// document to the process holding the index writer. Start any number, on any number of
    /// machines, with the API nodes' config (`ocr.engines_in_serve = false` there).
    Worker {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Create a new archive: its data directory, key-encryption key file (`0600`), audit
    /// signing key and first admin, whose token is printed once on stdout. The only way to
    /// create an archive in production mode; refused on an archive that has users.
    Init {
        #[command(flatten)]
        data: DataDirArg,
        /// The first admin's user name.
        #[arg(long, default_value = "admin")]
        admin: String,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Upload scans to a running server.
    Ingest {
        /// Scans to upload (JPEG, PNG or TIFF).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// JSON metadata file, or '-' for stdin: one object for every file, or an array with
        /// one object per file.
        #[arg(long, value_name = "FILE|-")]
        metadata: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Key-encryption keys: status, rotation, retirement.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Search a running server. The query is read from a file or stdin, never taken on the
    /// command line (shell history and `ps` would keep it): `echo metformin | chartvault
    /// search`.
    Search {
        /// Where the query is: a file, or '-' for stdin.
        #[arg(long, value_name = "FILE|-", default_value = "-")]
        query_file: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Check a data directory: every blob and index file authenticated, originals against
    /// their SHA-256, rows against blobs and index (read-only; safe while the server runs).
    /// Exit code 0 clean (notices allowed), 1 findings, 2 could not check.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
        /// Also print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write a consistent snapshot of a data directory (database, blobs, index; never the
    /// KEK) into DEST, which must be empty or absent. Safe while the server runs.
    Backup {
        /// The backup directory (created; must be empty if it exists, and lie outside the
        /// data directory).
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Retention: what has expired under the configured rules, and its destruction.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Move an embedded archive (SQLite, local objects, a key file) to the stores another
    /// config file names: PostgreSQL (`database.url`), object storage (`storage.url`) and
    /// its KEK provider (a KMS). Rows and objects are copied as the ciphertext they are,
    /// every data key re-wrapped under the target's KEK; resumable (run it again to finish
    /// a move that stopped); the target's `verify` report ends it. The server must be
    /// stopped; the data directory (index, audit checkpoints) stays where it is.
    MigrateStore {
        /// The target's config file (same data_dir; database.url = postgres://…).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Restore a backup into a new, empty data directory (needs the archive's KEK).
    Restore {
        /// A backup directory written by `chartvault backup` (with its MANIFEST.json).
        #[arg(value_name = "SRC")]
        src: PathBuf,
        /// The new data directory (empty or absent).
        #[arg(long, value_name = "NEWDIR", required = true)]
        data_dir: PathBuf,
        /// Accept a backup whose manifest carries no MAC (written before they did).
        #[arg(long)]
        legacy_backup: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the audit hash chain and check it against the signed checkpoints
    /// (read-only; safe while the server runs). Names the first bad entry, and how many
    /// entries lie past the last checkpoint. Exit code 0 clean, 1 findings, 2 could not check.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
        /// Also print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Lists (through the running server, as a `records` user) every document past its
    /// retention period, and the holds that keep any of them; with --apply, crypto-shreds
    /// those no hold covers, each with a destruction certificate. Prints the report as JSON.
    Run {
        /// Destroy what expired (without it, only list).
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print its first token (the only line on stdout).
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Disable a user: every token of theirs stops working at once.
    Disable {
        name: String,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a new token for an existing user (printed as the only line on stdout).
    Create {
        name: String,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Revoke one token by its id, or every token of a user.
    Revoke {
        /// The token id printed (on stderr) when the token was created.
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        id: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// The current KEK version, the versions loaded, and keyring rows per version.
    Status {
        #[command(flatten)]
        target: KeysTarget,
    },
    /// Add a KEK version and re-wrap every keyring row under it; no object is touched, and
    /// a running server keeps serving throughout.
    Rotate {
        #[command(flatten)]
        target: KeysTarget,
    },
    /// Remove an old KEK version; refused while any keyring row is wrapped under it.
    Retire {
        version: u32,
        #[command(flatten)]
        target: KeysTarget,
    },
}

/// Through the running server's admin API (default), or offline on a stopped server's data
/// directory.
#[derive(Args, Debug)]
pub struct KeysTarget {
    /// Work directly on the data directory; refused while a server runs on it.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub data: DataDirArg,
    #[arg(long, env = "CHARTVAULT_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An admin's API token (needed unless --offline).
    #[arg(long, env = "CHARTVAULT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM file of certificate authorities trusted besides the system's.
    #[arg(long, env = "CHARTVAULT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DataDirArg {
    /// Data directory (overrides the config's data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    #[arg(long, env = "CHARTVAULT_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token (read it from the environment rather than typing it on the command line).
    #[arg(long, env = "CHARTVAULT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A PEM file of certificate authorities trusted besides the system's (a hospital's own
    /// CA, for an `https://` server).
    #[arg(long, env = "CHARTVAULT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ClientArgs {
    /// The HTTP client: TLS (rustls) with the system's roots and `--ca-file`.
    pub fn http(&self) -> anyhow::Result<reqwest::Client> {
        http_client(self.ca_file.as_deref())
    }
}

/// An HTTP client for the server: TLS (rustls) with the system's roots and those of
/// `ca_file`.
fn http_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading the CA file {}", path.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().context("building the HTTP client")
}

pub fn load_config(cli_config: Option<&Path>, data: &DataDirArg) -> anyhow::Result<Config> {
    let mut config = Config::load(cli_config)?;
    if let Some(dir) = &data.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

/// The database of a data directory for user and token administration: with the keys that
/// MAC access rows and seal audit entries (from the keyring, through the KEK), since every
/// change of a user or token is audited.
///
/// A new archive (no database yet) is set up as a first start would (its key file created,
/// `0600`). An existing one needs its own KEK (never a new key file, which a command run from
/// the wrong directory would otherwise create), and its keys are only read, never created.
async fn open_db(config: &Config) -> anyhow::Result<Db> {
    open_db_creating(config, config.mode == crate::config::Mode::Dev).await
}

/// As [`open_db`]; a new archive is set up only when `may_create` (in production mode only
/// `init` creates one).
async fn open_db_creating(config: &Config, may_create: bool) -> anyhow::Result<Db> {
    let new = !Db::archive_exists(&config.database()?).await?;
    if new && !may_create {
        bail!(
            "there is no archive in {} (production mode creates one only with `chartvault init`)",
            config.data_dir.display()
        );
    }
    let keys = if new {
        crate::app::create_data_dir(config)?;
        crate::ops::keys::load_keys(config)?
    } else {
        crate::ops::keys::load_existing_keys(config)?
    };
    let db = Db::open_at(&config.database()?).await?;
    let blobs = crate::store::vault::open_blobs(config)?;
    let vault = crate::store::vault::Vault::new(blobs, keys, db.clone());
    if new {
        db.set_audit_cipher(vault.audit_cipher().await?);
        db.set_row_mac(vault.row_mac().await?);
        db.mac_legacy_rows().await?;
        return Ok(db);
    }
    db.set_row_mac(vault.existing_row_mac().await?);
    if db.service_key_id("audit").await?.is_none() {
        bail!("the archive has no audit key yet: start the server on it once first");
    }
    db.set_audit_cipher(vault.audit_cipher().await?);
    Ok(db)
}

/// Audits a user or token change made at the console: no principal of the service made it,
/// so the entry names the operating-system user who ran the command (ONC 170.315(d)(2)).
async fn audit_admin(
    db: &Db,
    action: &'static str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let mut detail = detail;
    detail["via"] = serde_json::json!("command line");
    detail["os_user"] = serde_json::json!(std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", real_uid())));
    db.append_audit(&crate::store::audit_log::AuditEntry::administration(
        action, detail,
    ))
    .await
    .context("the change was made but its audit entry could not be written")?;
    Ok(())
}

/// The process's real user id (getuid cannot fail).
fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// `chartvault init`: a new archive and its first admin; the admin's token is returned (to be
/// printed once, on the terminal).
pub async fn init(config: &Config, admin: &str) -> anyhow::Result<String> {
    if Db::archive_exists(&config.database()?).await? {
        let db = open_db_creating(config, false).await?;
        if db.user_count().await? > 0 {
            bail!(
                "the archive in {} is initialised already (it has users); add users with \
                 `chartvault user add`",
                config.data_dir.display()
            );
        }
    }
    let db = open_db_creating(config, true).await?;
    // The audit checkpoint signing key, created now: the service only reads it.
    crate::audit::checkpoint::Checkpointer::new(config, db.clone())
        .context("creating the audit signing key")?;
    let token = create_user(&db, config, admin, Role::Admin, "init").await?;
    Ok(token)
}

pub async fn user_add(config: &Config, name: &str, role: Role) -> anyhow::Result<String> {
    let db = open_db(config).await?;
    create_user(&db, config, name, role, "user-add").await
}

/// Creates a user and its first token, audited as a console change.
async fn create_user(
    db: &Db,
    config: &Config,
    name: &str,
    role: Role,
    command: &str,
) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        bail!("a user name must be 1 to 64 characters");
    }
    if db.user_by_name(name).await?.is_some() {
        bail!("a user named {name} exists already");
    }
    let user = db.create_user(name, role).await?;
    let (token_id, token) =
        crate::access::policy::issue_token(db, user, config.auth.token_ttl_days).await?;
    audit_admin(
        db,
        "user-add",
        serde_json::json!({
            "user": user, "name": name, "role": role.as_str(), "token_id": token_id,
            "command": command,
        }),
    )
    .await?;
    eprintln!(
        "created user {name} ({}) with token id {token_id}",
        role.as_str()
    );
    Ok(token)
}

pub async fn token_create(config: &Config, name: &str) -> anyhow::Result<String> {
    let db = open_db(config).await?;
    let (user, _, disabled) = db
        .user_by_name(name)
        .await?
        .with_context(|| format!("no user named {name}"))?;
    if disabled {
        bail!("user {name} is disabled");
    }
    let (token_id, token) =
        crate::access::policy::issue_token(&db, user, config.auth.token_ttl_days).await?;
    audit_admin(
        &db,
        "token-create",
        serde_json::json!({ "user": user, "name": name, "token_id": token_id }),
    )
    .await?;
    eprintln!("token id {token_id}");
    Ok(token)
}

pub async fn user_disable(config: &Config, name: &str) -> anyhow::Result<()> {
    let db = open_db(config).await?;
    if !db.set_user_disabled(name, true).await? {
        bail!("no user named {name}");
    }
    audit_admin(&db, "user-disable", serde_json::json!({ "name": name })).await?;
    eprintln!("disabled user {name}");
    Ok(())
}

pub async fn token_revoke(
    config: &Config,
    id: Option<&str>,
    user: Option<&str>,
) -> anyhow::Result<()> {
    let db = open_db(config).await?;
    let revoked = db.revoke_tokens(id, user).await?;
    if revoked == 0 {
        bail!("no active token matched");
    }
    audit_admin(
        &db,
        "token-revoke",
        serde_json::json!({ "token_id": id, "name": user, "revoked": revoked }),
    )
    .await?;
    eprintln!("revoked {revoked} token(s)");
    Ok(())
}

/// The text of `source`: a file, or '-' for stdin (`what` names it in errors).
fn read_source(source: &str, what: &str) -> anyhow::Result<String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("reading {what} from stdin"))?;
        return Ok(text);
    }
    std::fs::read_to_string(source).with_context(|| format!("reading the {what} file"))
}

fn read_metadata(source: &str, files: usize) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = read_source(source, "metadata")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).context("the metadata is not valid JSON")?;
    match value {
        serde_json::Value::Array(items) => {
            if items.len() != files {
                bail!(
                    "the metadata array has {} entries for {files} files",
                    items.len()
                );
            }
            Ok(items)
        }
        object @ serde_json::Value::Object(_) => Ok(vec![object; files]),
        _ => bail!("the metadata must be a JSON object or an array of objects"),
    }
}

pub async fn ingest(files: &[PathBuf], metadata: &str, client: &ClientArgs) -> anyhow::Result<()> {
    let metadata = read_metadata(metadata, files.len())?;
    let http = client.http()?;
    let url = format!("{}/api/v1/documents", client.server.trim_end_matches('/'));
    let progress = indicatif::ProgressBar::new(files.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}")
            .expect("the progress template is valid"),
    );
    let mut failures = 0;
    for (index, (path, meta)) in files.iter().zip(metadata).enumerate() {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening file {}", index + 1))?;
        let length = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let form = reqwest::multipart::Form::new()
            .part(
                "metadata",
                reqwest::multipart::Part::text(meta.to_string()).mime_str("application/json")?,
            )
            .part(
                "file",
                reqwest::multipart::Part::stream_with_length(body, length).file_name("scan"),
            );
        let response = http
            .post(&url)
            .bearer_auth(&client.token)
            .multipart(form)
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        progress.suspend(|| {
            if status.is_success() {
                println!(
                    "{}\t{}\t{}",
                    index + 1,
                    body["id"].as_str().unwrap_or("?"),
                    body["status"].as_str().unwrap_or("?")
                );
            } else {
                failures += 1;
                eprintln!(
                    "file {}: {} {}",
                    index + 1,
                    status.as_u16(),
                    body["message"].as_str().unwrap_or("")
                );
            }
        });
        progress.inc(1);
    }
    progress.finish_and_clear();
    if failures > 0 {
        bail!("{failures} of {} files were rejected", files.len());
    }
    Ok(())
}

/// The search query from `source` (a file, or '-' for stdin), trimmed.
fn read_query(source: &str) -> anyhow::Result<String> {
    let text = read_source(source, "query")?;
    let query = text.trim().to_string();
    if query.is_empty() {
        bail!("the query is empty: give it on stdin or in --query-file");
    }
    Ok(query)
}

pub async fn search(query_file: &str, limit: usize, client: &ClientArgs) -> anyhow::Result<()> {
    let query = read_query(query_file)?;
    let url = format!("{}/api/v1/search", client.server.trim_end_matches('/'));
    let response = client
        .http()?
        .post(&url)
        .bearer_auth(&client.token)
        .json(&serde_json::json!({ "query": query, "limit": limit }))
        .send()
        .await?;
    let body = answer_json(response).await?;
    println!("{} pages match", body["total"]);
    for hit in body["hits"].as_array().into_iter().flatten() {
        println!(
            "{}  page {}  {}  {}\n    {}",
            hit["document_id"].as_str().unwrap_or(""),
            hit["page"],
            hit["patient"]["mrn"].as_str().unwrap_or(""),
            hit["document_type"].as_str().unwrap_or(""),
            hit["snippet"].as_str().unwrap_or("").replace('\n', " ")
        );
    }
    Ok(())
}

/// `retention run`: the server's report, as JSON.
pub async fn retention_run(apply: bool, client: &ClientArgs) -> anyhow::Result<serde_json::Value> {
    let url = format!(
        "{}/api/v1/retention/runs",
        client.server.trim_end_matches('/')
    );
    let response = client
        .http()?
        .post(&url)
        .bearer_auth(&client.token)
        .json(&serde_json::json!({ "apply": apply }))
        .send()
        .await?;
    answer_json(response).await
}

/// The JSON of a server's answer; a failure status becomes an error with the server's
/// message.
async fn answer_json(response: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{} {}",
            status.as_u16(),
            body["message"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

/// Runs a `keys` subcommand and returns the JSON it prints.
pub async fn keys(
    cli_config: Option<&Path>,
    command: KeysCommand,
) -> anyhow::Result<serde_json::Value> {
    let (target, operation) = match command {
        KeysCommand::Status { target } => (target, KeyOperation::Status),
        KeysCommand::Rotate { target } => (target, KeyOperation::Rotate),
        KeysCommand::Retire { version, target } => (target, KeyOperation::Retire(version)),
    };
    if target.offline {
        let config = load_config(cli_config, &target.data)?;
        return keys_offline(&config, operation).await;
    }
    let token = target
        .token
        .as_deref()
        .context("an admin token is needed (CHARTVAULT_TOKEN), or use --offline")?;
    let base = format!("{}/api/v1/admin/keys", target.server.trim_end_matches('/'));
    let http = http_client(target.ca_file.as_deref())?;
    let request = match operation {
        KeyOperation::Status => http.get(&base),
        KeyOperation::Rotate => http.post(format!("{base}/rotate")),
        KeyOperation::Retire(version) => http
            .post(format!("{base}/retire"))
            .json(&serde_json::json!({ "version": version })),
    };
    let response = request.bearer_auth(token).send().await?;
    answer_json(response).await
}

#[derive(Debug, Clone, Copy)]
enum KeyOperation {
    Status,
    Rotate,
    Retire(u32),
}

/// KEK status, rotation and retirement on a stopped archive. It must exist: run from the
/// wrong directory, the command creates neither an archive nor a key file.
async fn keys_offline(
    config: &Config,
    operation: KeyOperation,
) -> anyhow::Result<serde_json::Value> {
    if !Db::archive_exists(&config.database()?).await? {
        bail!(
            "no archive at {}: keys are managed on an existing archive",
            config.data_dir.display()
        );
    }
    let _lock = ServerLock::acquire(config)?;
    let db = Db::open_at(&config.database()?).await?;
    let blobs = crate::store::vault::open_blobs(config)?;
    let vault = crate::store::vault::Vault::new(
        blobs,
        crate::ops::keys::load_existing_keys(config)?,
        db.clone(),
    );
    let source = crate::ops::keys::KekSource::from_config(config);
    Ok(match operation {
        KeyOperation::Status => serde_json::to_value(crate::ops::keys::status(&db, &vault).await?)?,
        KeyOperation::Rotate => {
            serde_json::to_value(crate::ops::keys::rotate(&db, &vault, &source).await?)?
        }
        KeyOperation::Retire(version) => {
            crate::ops::keys::retire(&db, &vault, &source, version).await?;
            serde_json::to_value(crate::ops::keys::status(&db, &vault).await?)?
        }
    })
}

/// The index writer's lock file, held (flock) by a running server: taking it proves no
/// server runs on the data directory, and keeps one from starting meanwhile.
/// `chartvault migrate-store`: the move of [`crate::ops::migrate`], with the source's
/// server stopped (its lock held throughout).
pub async fn migrate_store(
    source: &Config,
    target: &Config,
) -> anyhow::Result<crate::ops::migrate::Migration> {
    let _lock = ServerLock::acquire(source)?;
    crate::ops::migrate::migrate_store(source, target).await
}

pub struct ServerLock {
    _file: std::fs::File,
}

impl ServerLock {
    pub fn acquire(config: &Config) -> anyhow::Result<ServerLock> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(config.index_dir())?;
        let path = config.index_dir().join(".tantivy-writer.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; failure is reported, not assumed.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            bail!(
                "a server is running on {}: stop it, or use its API (drop --offline)",
                config.data_dir.display()
            );
        }
        Ok(ServerLock { _file: file })
    }
}

/// `chartvault verify`: the summary on stderr, the JSON report on stdout with `--json`.
/// Returns the exit code (0 clean, 1 findings, 2 could not check).
pub async fn verify(config: &Config, json: bool) -> u8 {
    let report = crate::ops::verify::verify(config).await;
    print_report("verify", report, json, |r| (r.summary(), r.exit_code()))
}

/// `chartvault audit verify`: as [`verify`], for the audit chain.
pub async fn audit_verify(config: &Config, json: bool) -> u8 {
    let report = crate::audit::verify::verify_audit(config).await;
    print_report("audit verify", report, json, |r| {
        (r.summary(), r.exit_code())
    })
}

/// Prints a check's summary (stderr) and, with `json`, its report (stdout); returns its
/// exit code, or 2 when the check could not run.
fn print_report<R: serde::Serialize>(
    what: &str,
    report: anyhow::Result<R>,
    json: bool,
    outcome: impl Fn(&R) -> (String, u8),
) -> u8 {
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {what} could not run: {error:#}");
            return 2;
        }
    };
    let (summary, code) = outcome(&report);
    eprint!("{summary}");
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: could not write the JSON report: {error}");
                return 2;
            }
        }
    }
    code
}
