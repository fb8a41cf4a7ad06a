//! Settings: embedded defaults < `config.toml` < environment (`CHARTVAULT__SECTION__KEY`)
//! < command-line flags. Unknown keys are errors. Secrets never live here: the key file is
//! referenced by path, or by the name of an environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `dev` (the embedded default: a missing archive, key file and first admin are
    /// created on the first start) or `production` (paths must be absolute, nothing is
    /// created by `serve`: `chartvault init` creates the archive, its keys and first admin).
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub keys: KeysConfig,
    pub limits: LimitsConfig,
    pub ocr: OcrConfig,
    pub index: IndexConfig,
    pub auth: AuthConfig,
    pub access: AccessConfig,
    pub audit: AuditConfig,
    pub batches: BatchesConfig,
    pub decoder: DecoderConfig,
    pub retention: RetentionConfig,
    pub releases: ReleasesConfig,
    pub metrics: MetricsConfig,
    pub intake: IntakeConfig,
    pub hl7: Hl7Config,
    pub patients: PatientsConfig,
    pub fhir: FhirConfig,
    pub dicomweb: DicomwebConfig,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
}

/// Where the metadata lives (`[database]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://<file>`, or `postgres://user@host:port/database` (a password, if any, from
    /// the standard `PGPASSWORD` environment variable rather than the URL). Unset:
    /// `<data_dir>/chartvault.db`.
    pub url: Option<String>,
}

/// Where [`DatabaseConfig`] puts the metadata.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server (`postgres://…`).
    Postgres(String),
}

impl DatabaseLocation {
    /// The location for messages: a PostgreSQL URL without the password it may carry.
    fn shown(&self) -> String {
        match self {
            DatabaseLocation::Sqlite(path) => path.display().to_string(),
            DatabaseLocation::Postgres(url) => {
                let Some((scheme, rest)) = url.split_once("://") else {
                    return "a PostgreSQL database".into();
                };
                match rest.split_once('@') {
                    Some((user, host)) => {
                        let user = user.split(':').next().unwrap_or_default();
                        format!("{scheme}://{user}@{host}")
                    }
                    None => url.clone(),
                }
            }
        }
    }
}

impl std::fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl std::fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseLocation({})", self.shown())
    }
}

/// Where the encrypted objects live (`[storage]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file://<dir>`, or `s3://<bucket>[/<prefix>]` for S3-compatible object storage
    /// (credentials from the standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
    /// environment). Unset: `<data_dir>/blobs`.
    pub url: Option<String>,
    pub s3: S3Config,
}

/// The S3 endpoint (`[storage.s3]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// A non-AWS server's address (`http://127.0.0.1:8333`); unset: AWS.
    pub endpoint: Option<String>,
    /// Unset: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
}

/// Where [`StorageConfig`] puts the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStorage {
    /// A local directory.
    Local(PathBuf),
    /// An S3 bucket, under a prefix.
    S3 { bucket: String, prefix: String },
}

impl Config {
    /// Where the metadata lives.
    pub fn database(&self) -> anyhow::Result<DatabaseLocation> {
        let Some(url) = self.database.url.as_deref().map(str::trim) else {
            return Ok(DatabaseLocation::Sqlite(self.db_path()));
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(DatabaseLocation::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(url.to_string()));
        }
        anyhow::bail!("database.url is sqlite://<file> or postgres://<user>@<host>/<database>")
    }

    /// Where the encrypted objects live.
    pub fn object_storage(&self) -> anyhow::Result<ObjectStorage> {
        let Some(url) = self.storage.url.as_deref().map(str::trim) else {
            return Ok(ObjectStorage::Local(self.blobs_dir()));
        };
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(ObjectStorage::Local(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.len() < 3
                || !bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
            {
                anyhow::bail!(
                    "storage.url: an S3 bucket name is 3 or more of a-z, 0-9, '-' and '.'"
                );
            }
            return Ok(ObjectStorage::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        anyhow::bail!("storage.url is file://<directory> or s3://<bucket>[/<prefix>]")
    }
}

/// DICOMweb at `/dicom-web` (see `dicomweb`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomwebConfig {
    /// The document type of an instance stored through STOW-RS.
    pub document_type: String,
    /// Its category.
    pub category: String,
}

impl Default for DicomwebConfig {
    fn default() -> Self {
        DicomwebConfig {
            document_type: "diagnostic-imaging".into(),
            category: "general".into(),
        }
    }
}

/// FHIR R4 at `/fhir` (see `fhir`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FhirConfig {
    /// The largest original a DocumentReference create may carry inline (base64 in a JSON
    /// body held in memory; at most `limits.max_upload_bytes`). Larger files go through
    /// `POST /api/v1/documents`, which streams.
    pub max_inline_bytes: u64,
    /// Document types mapped to LOINC codes for `DocumentReference.type`
    /// (`discharge-summary = "18842-5"`); a type not mapped has the archive's code alone.
    pub type_codes: std::collections::BTreeMap<String, String>,
    /// `DocumentReference.custodian.display`: the organisation keeping the records.
    pub custodian: Option<String>,
}

impl Default for FhirConfig {
    fn default() -> Self {
        FhirConfig {
            max_inline_bytes: 64 * 1024 * 1024,
            type_codes: Default::default(),
            custodian: None,
        }
    }
}

/// Who issues the MRNs the archive keeps (`[patients]`): MRNs are unique per issuer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatientsConfig {
    /// The assigning authority of every MRN that names no issuer (uploads, cover codes
    /// without `ISS=`, an HL7 PID-3 without PID-3.4, every patient from before issuers).
    /// Its name is what HL7 PID-3.4 and the API's `issuer` call it; unset: the archive
    /// has one nameless issuer, and an HL7 identifier of an authority not among `issuers`
    /// is taken for it.
    pub default_issuer: Option<String>,
    /// The other issuers whose patients the archive keeps.
    pub issuers: Vec<IssuerConfig>,
    /// The default issuer's identifier system in FHIR (a URI); unset: `urn:chartvault:mrn`.
    pub default_fhir_system: Option<String>,
}

/// One assigning authority (`[[patients.issuers]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Its namespace id: PID-3.4 in HL7, `issuer` in the API, `ISS=` on cover codes.
    pub name: String,
    /// Its identifier system in FHIR (a URI), for `Patient.identifier.system`.
    #[serde(default)]
    pub fhir_system: Option<String>,
    /// Its Issuer of Patient ID in DICOM (0010,0021).
    #[serde(default)]
    pub dicom_issuer: Option<String>,
}

impl PatientsConfig {
    /// The issuer a request, a cover code or a message names: `None` for the default
    /// issuer (named or not), the configured spelling of another.
    pub fn resolve_issuer(&self, raw: Option<&str>) -> Result<Option<String>, String> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        if self
            .default_issuer
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(raw))
        {
            return Ok(None);
        }
        self.issuers
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(raw))
            .map(|i| Some(i.name.clone()))
            .ok_or_else(|| "issuer is not one of this archive's (patients.issuers)".to_string())
    }

    /// An MRN with the issuer a request names (see [`PatientsConfig::resolve_issuer`]).
    pub fn mrn(&self, raw: &str, issuer: Option<&str>) -> Result<crate::domain::Mrn, String> {
        let issuer = self.resolve_issuer(issuer)?;
        Ok(crate::domain::Mrn::parse(raw)?.issued_by(issuer))
    }

    /// The name of an MRN's issuer as the archive shows it (`None`: the default issuer,
    /// unnamed).
    pub fn issuer_name<'a>(&'a self, mrn: &'a crate::domain::Mrn) -> Option<&'a str> {
        mrn.issuer().or(self.default_issuer.as_deref())
    }

    /// The FHIR identifier system of an MRN's issuer: `default_fhir_system` (else
    /// `urn:chartvault:mrn`) for the default issuer, an issuer's `fhir_system` (else
    /// `urn:chartvault:issuer:<name>`).
    pub fn fhir_system(&self, mrn: &crate::domain::Mrn) -> String {
        match mrn.issuer() {
            None => self
                .default_fhir_system
                .clone()
                .unwrap_or_else(|| "urn:chartvault:mrn".to_string()),
            Some(name) => self
                .issuers
                .iter()
                .find(|i| i.name == name)
                .and_then(|i| i.fhir_system.clone())
                .unwrap_or_else(|| format!("urn:chartvault:issuer:{name}")),
        }
    }

    /// The MRN a FHIR token (`system|value`, `|value`, `value`) names, under the issuer whose
    /// identifier system it is (no system: the default issuer). `None` for a system of no
    /// issuer here, or a value that is no MRN.
    pub fn mrn_of_fhir_token(&self, token: &str) -> Option<crate::domain::Mrn> {
        let (system, value) = match token.split_once('|') {
            Some((system, value)) => (Some(system).filter(|s| !s.is_empty()), value),
            None => (None, token),
        };
        let mrn = crate::domain::Mrn::parse(value).ok()?;
        let Some(system) = system else {
            return Some(mrn);
        };
        if self.fhir_system(&mrn) == system {
            return Some(mrn);
        }
        self.issuers
            .iter()
            .map(|issuer| mrn.clone().issued_by(Some(issuer.name.clone())))
            .find(|candidate| self.fhir_system(candidate) == system)
    }

    /// The MRN a DICOM instance names: its Patient ID (0010,0020), under the issuer whose
    /// `dicom_issuer` is its Issuer of Patient ID (0010,0021), else the default issuer.
    pub fn mrn_of_dicom(
        &self,
        patient_id: &str,
        issuer_of_patient_id: Option<&str>,
    ) -> Result<crate::domain::Mrn, String> {
        let issuer = issuer_of_patient_id.and_then(|wanted| {
            self.issuers
                .iter()
                .find(|i| {
                    i.dicom_issuer
                        .as_deref()
                        .is_some_and(|d| d.trim().eq_ignore_ascii_case(wanted.trim()))
                })
                .map(|i| i.name.clone())
        });
        Ok(crate::domain::Mrn::parse(patient_id)?.issued_by(issuer))
    }

    /// The Issuer of Patient ID (0010,0021) of an MRN's issuer, where one is configured.
    pub fn dicom_issuer(&self, mrn: &crate::domain::Mrn) -> Option<&str> {
        let name = mrn.issuer()?;
        self.issuers
            .iter()
            .find(|i| i.name == name)?
            .dicom_issuer
            .as_deref()
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut seen: Vec<String> = Vec::new();
        for name in self
            .default_issuer
            .iter()
            .chain(self.issuers.iter().map(|i| &i.name))
        {
            crate::domain::parse_issuer(name)
                .map_err(|e| anyhow::anyhow!("patients: {e} (it is {name:?})"))?;
            let upper = name.to_ascii_uppercase();
            if seen.contains(&upper) {
                anyhow::bail!("patients: the issuer {name:?} is named twice");
            }
            seen.push(upper);
        }
        Ok(())
    }
}

/// The inbound HL7 v2 ADT feed over MLLP (see `feeds::adt` and `mllp`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hl7Config {
    /// The MLLP listener's address; unset: no listener.
    pub listen: Option<SocketAddr>,
    /// Sending facilities (MSH-4, first component) whose messages are applied; empty: any.
    pub allowed_facilities: Vec<String>,
    /// A message larger than this is refused and its connection closed.
    pub max_message_bytes: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// MLLP over TLS: both PEM files set (certificate chain, key); reloaded when they change.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Document notifications to the EHR (`[hl7.mdm]`).
    pub mdm: MdmConfig,
}

/// The outbound MDM feed (see `feeds::mdm`): each document made available is announced with
/// MDM^T02 (or T01), each one entered in error or destroyed with T11.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdmConfig {
    /// The receiver's MLLP address (`host:port`); unset: no notifications.
    pub endpoint: Option<String>,
    /// `T02` (notification and content: the OBX points at the document) or `T01`
    /// (notification only).
    pub event: String,
    /// What OBX-5 points at: `fhir` (the document's FHIR DocumentReference) or `api` (its
    /// `/api/v1/documents/{id}`).
    pub link: String,
    /// MSH-3 / MSH-4 of the messages sent.
    pub sending_application: String,
    pub sending_facility: String,
    /// MSH-5 / MSH-6.
    pub receiving_application: String,
    pub receiving_facility: String,
    /// How long to wait for the receiver's ACK before the message is sent again.
    pub ack_timeout_secs: u64,
    /// The longest wait between attempts while the receiver cannot be reached (the wait
    /// doubles from one second).
    pub retry_max_secs: u64,
    /// MLLP over TLS: the CA file the receiver's certificate must chain to.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for MdmConfig {
    fn default() -> Self {
        MdmConfig {
            endpoint: None,
            event: "T02".into(),
            link: "fhir".into(),
            sending_application: "CHARTVAULT".into(),
            sending_facility: "CHARTVAULT".into(),
            receiving_application: String::new(),
            receiving_facility: String::new(),
            ack_timeout_secs: 30,
            retry_max_secs: 60,
            tls_ca_file: None,
        }
    }
}

impl Default for Hl7Config {
    fn default() -> Self {
        Hl7Config {
            listen: None,
            allowed_facilities: Vec::new(),
            max_message_bytes: 1024 * 1024,
            idle_timeout_secs: 300,
            tls_cert_file: None,
            tls_key_file: None,
            mdm: MdmConfig::default(),
        }
    }
}

/// Scanner hot folders (`[[intake.folders]]`): files dropped there are taken into the
/// archive, then deleted (see `ingest::intake`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// How often the folders are looked at. Polling, so network shares work too.
    pub poll_interval_ms: u64,
    /// A file is taken once its size and modification time have not changed for this long.
    pub settle_ms: u64,
    /// A document file whose sidecar `NAME.EXT.json` has not come after this long (or a
    /// sidecar without its file) goes to `quarantine/`.
    pub sidecar_wait_secs: u64,
    /// Files in `quarantine/` are deleted after this many days.
    pub quarantine_days: u32,
    pub folders: Vec<IntakeFolder>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            poll_interval_ms: 2000,
            settle_ms: 5000,
            sidecar_wait_secs: 300,
            quarantine_days: 7,
            folders: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeFolder {
    pub path: PathBuf,
    pub kind: IntakeKind,
    /// The `records` user the intake acts as (its uploads are audited as theirs).
    pub user: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntakeKind {
    /// Barcode-separated batches, as `POST /batches`.
    Batches,
    /// One document per file, its metadata in the sidecar `NAME.EXT.json`.
    Documents,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Categories seen only with an explicit grant (never through break-the-glass).
    pub sensitive_categories: Vec<String>,
    /// How long a break-the-glass access lasts.
    pub break_glass_minutes: u32,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            sensitive_categories: [
                "psychotherapy",
                "substance-use",
                "hiv",
                "reproductive",
                "behavioral",
            ]
            .map(String::from)
            .to_vec(),
            break_glass_minutes: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Time a client has to send a request's headers (new or idle keep-alive connection).
    pub header_timeout_secs: u64,
    /// Longest pause allowed between pieces of a request body (never applied to responses).
    pub body_idle_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long open requests may finish at shutdown.
    pub shutdown_grace_secs: u64,
    /// Reverse proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` and `X-Request-Id` are
    /// believed: the client address in audit entries and the metrics allow-list is the
    /// first address, from the right, that is not one of them.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `text` (for people) or `json` (one JSON object per line, for log shippers).
    pub log_format: LogFormat,
    /// TLS: the server terminates TLS itself when both are set (PEM files; reloaded when
    /// they change). Responses then carry `Strict-Transport-Security`.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The address clients reach the service at (`https://archive.hospital.example`),
    /// which links the service hands out are built with (`Location` headers); without it,
    /// links are relative to the request.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dev,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `GET /metrics` (Prometheus): who may read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Client addresses (after `server.trusted_proxies`) answered; others get 403.
    pub allow: Vec<ipnet::IpNet>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            allow: vec![
                "127.0.0.0/8".parse().expect("a CIDR"),
                "::1/128".parse().expect("a CIDR"),
            ],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Where the key-encryption key lives.
    pub provider: KeyProviderKind,
    /// Path of the key-encryption key file (created `0600` on first run).
    pub kek_file: PathBuf,
    /// Name of an environment variable that holds the key file's contents instead.
    pub kek_env: Option<String>,
    /// The KMS, when `provider = "openbao"`.
    pub openbao: OpenBaoConfig,
}

/// Where the key-encryption key lives (`keys.provider`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyProviderKind {
    /// A key file (`keys.kek_file`) or environment variable (`keys.kek_env`).
    #[default]
    File,
    /// OpenBao's (or HashiCorp Vault's) Transit engine (`[keys.openbao]`): the KEK never
    /// leaves the KMS.
    Openbao,
}

/// The Transit key in OpenBao or Vault (`[keys.openbao]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenBaoConfig {
    /// The KMS's address.
    pub address: String,
    /// Where the Transit engine is mounted.
    pub mount: String,
    /// The Transit key (created on first start when missing).
    pub key: String,
    /// The environment variable holding the access token.
    pub token_env: String,
    /// A file holding the access token, read instead of `token_env` when set.
    pub token_file: Option<PathBuf>,
}

impl Default for OpenBaoConfig {
    fn default() -> Self {
        OpenBaoConfig {
            address: "http://127.0.0.1:8200".into(),
            mount: "transit".into(),
            key: "chartvault".into(),
            token_env: "BAO_TOKEN".into(),
            token_file: None,
        }
    }
}

impl OpenBaoConfig {
    /// Where the key is, with the token read from its file or environment variable.
    pub fn location(&self) -> anyhow::Result<chartvault_storage::TransitLocation> {
        use anyhow::Context as _;
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading keys.openbao.token_file {}", path.display()))?,
            None => std::env::var(&self.token_env).map_err(|_| {
                anyhow::anyhow!(
                    "the OpenBao token is missing: set the environment variable {} (or \
                     keys.openbao.token_file)",
                    self.token_env
                )
            })?,
        };
        let token = token.trim();
        anyhow::ensure!(!token.is_empty(), "the OpenBao token is empty");
        Ok(chartvault_storage::TransitLocation {
            address: self.address.clone(),
            mount: self.mount.clone(),
            key: self.key.clone(),
            token: token.to_string().into(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// An uploaded file, and the whole body of a route that takes files.
    pub max_upload_bytes: u64,
    /// The body of every other route (JSON), refused with 413 before more is read.
    pub max_json_bytes: u64,
    pub max_pixels_per_page: u64,
    pub max_dimension: u32,
    pub max_pages_per_document: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcrConfig {
    /// OCR engines (one OS thread each); 0 means one per core.
    pub threads: usize,
    pub language: String,
    pub page_seg_mode: u32,
    /// Pages scanned at a higher resolution are downsampled to this before OCR; the stored
    /// page image is the downsampled one (the original is kept as uploaded).
    pub target_dpi: u32,
    /// Turn sideways and upside-down pages upright (Tesseract OSD).
    pub detect_orientation: bool,
    /// Below this OSD confidence, a turn is kept only if it reads better than the scan as is.
    pub min_orientation_confidence: f32,
    /// Straighten skewed pages.
    pub deskew: bool,
    /// A page with less ink than this fraction of its area is blank: flagged, not OCRed.
    pub blank_max_ink: f32,
    /// A document whose OCRed words have a mean confidence below this (0-100) goes to the QA
    /// queue once processed; 0 turns the check off.
    pub qa_min_confidence: f32,
    /// How long one page may take to clean up and recognise before its document fails.
    pub page_timeout_ms: u64,
    /// Whether `serve` runs OCR engines and recognises pages itself. False on the API nodes
    /// of a scaled setup, where `chartvault worker` processes recognise the pages and
    /// `serve` only indexes them.
    pub engines_in_serve: bool,
    /// How long a claim on a document's job or a batch holds without being renewed: the
    /// process working on it renews it every third of this; one whose process died goes
    /// back to the queue once it runs out.
    pub lease_seconds: u64,
}

impl OcrConfig {
    pub fn cleanup(&self) -> chartvault_ocr::CleanupConfig {
        chartvault_ocr::CleanupConfig {
            target_dpi: self.target_dpi,
            orientation: self.detect_orientation,
            min_orientation_confidence: self.min_orientation_confidence,
            deskew: self.deskew,
            blank_max_ink: self.blank_max_ink,
        }
    }
}

/// Batch uploads (`POST /batches`): how a cover sheet's code is laid out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchesConfig {
    /// Keep a document's cover sheet as its page 0 (its pages are numbered from 1 either way).
    pub keep_cover_sheet: bool,
    pub cover_sheet: chartvault_ocr::CoverSheetFormat,
}

/// Uploads are parsed and decoded in a child process under a memory ceiling (see
/// `chartvault_ocr::Sandbox`): a decoder that runs away or crashes fails its page, not the
/// service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// The decoder's memory ceiling (its heap and anonymous mappings), in bytes.
    pub memory_bytes: u64,
    /// A decoder that sends nothing for this long is stopped (its page fails).
    pub idle_timeout_secs: u64,
    /// The decoder executable: `chartvault-decoder`, or a chartvault binary (run as
    /// `chartvault __decoder-child`). Default: the `chartvault-decoder` beside this binary,
    /// else this binary itself.
    pub program: Option<PathBuf>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            memory_bytes: 1536 * 1024 * 1024,
            idle_timeout_secs: 120,
            program: None,
        }
    }
}

impl DecoderConfig {
    /// The argument that makes the chartvault binary a decoder process.
    pub const CHILD_ARG: &'static str = "__decoder-child";

    /// The decoder binary's name; built with the service, installed beside it.
    pub const DECODER_BINARY: &'static str = "chartvault-decoder";

    pub fn sandbox(&self) -> chartvault_ocr::Sandbox {
        // This binary links Tesseract and its libraries: it starts ~15 ms slower than the
        // decoder binary, on every upload. A decoder binary of another build (an upgrade that
        // replaced it under a running service) answers with another protocol version, which
        // fails the call as transient: the job is retried once the service restarts.
        let program = self.program.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.join(Self::DECODER_BINARY)))
                .filter(|decoder| decoder.is_file())
                .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
        });
        chartvault_ocr::Sandbox::new(program, [Self::CHILD_ARG], self.memory_bytes)
            .with_idle_timeout(std::time::Duration::from_secs(self.idle_timeout_secs))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    pub commit_interval_ms: u64,
    pub max_batch: usize,
    /// Memory for decrypted index chunks (plaintext in memory only, never on disk).
    pub cache_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub token_ttl_days: u32,
    /// OIDC bearer tokens (JWTs) are accepted when an issuer, an audience and a JWKS file
    /// are set: the `iss` and `aud` they must carry, and the signing keys (RS256/ES256).
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the chartvault user a JWT acts as.
    pub jwt_user_claim: String,
    /// Without `jwks_file`, the keys come from the issuer's discovery document: cached this
    /// long, and fetched again when a token names a key the cache lacks.
    pub jwks_cache_secs: u64,
    /// Certificate authorities (PEM) trusted for the issuer's https, besides the system's.
    pub oidc_ca_file: Option<PathBuf>,
    /// The claim carrying the user's roles or groups (a string or an array); with
    /// `role_mapping`, a user's first sign-in creates them with the mapped role.
    pub role_claim: Option<String>,
    /// Role claim value → chartvault role.
    pub role_mapping: std::collections::BTreeMap<String, crate::domain::Role>,
    /// The identifier system of a SMART `patient` claim that is an MRN rather than
    /// chartvault's patient id (an EHR launch names the patient as the EHR knows them); a
    /// claim `system|MRN` names its system itself. Unset: the claim is a patient id.
    pub smart_patient_system: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A signed checkpoint at least every this many entries...
    pub checkpoint_every_entries: u64,
    /// ...and every this many seconds when there are new entries.
    pub checkpoint_interval_secs: u64,
    /// The Ed25519 checkpoint signing key (created `0600`; default
    /// `<data_dir>.audit-signing.key`, outside `data_dir`). Its public key goes to `<file>.pub`.
    pub signing_key_file: Option<PathBuf>,
    /// The append-only checkpoint file (default `<data_dir>.audit-checkpoints`, outside
    /// `data_dir`): ship it to write-once storage.
    pub checkpoint_file: Option<PathBuf>,
    /// The public key `audit verify` checks checkpoints against: a pinned copy kept apart
    /// from the server (with the shipped checkpoints). Default: `<signing_key_file>.pub`.
    pub public_key_file: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every_entries: 1000,
            checkpoint_interval_secs: 60,
            signing_key_file: None,
            checkpoint_file: None,
            public_key_file: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Dev,
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            keys: KeysConfig::default(),
            limits: LimitsConfig::default(),
            ocr: OcrConfig::default(),
            index: IndexConfig::default(),
            auth: AuthConfig::default(),
            access: AccessConfig::default(),
            audit: AuditConfig::default(),
            batches: BatchesConfig::default(),
            decoder: DecoderConfig::default(),
            retention: RetentionConfig::default(),
            releases: ReleasesConfig::default(),
            metrics: MetricsConfig::default(),
            intake: IntakeConfig::default(),
            hl7: Hl7Config::default(),
            patients: PatientsConfig::default(),
            fhir: FhirConfig::default(),
            dicomweb: DicomwebConfig::default(),
            storage: StorageConfig::default(),
            database: DatabaseConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_timeout_secs: 30,
            body_idle_timeout_secs: 30,
            max_connections: 512,
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
            tls_cert_file: None,
            tls_key_file: None,
            public_url: None,
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            provider: KeyProviderKind::File,
            kek_file: PathBuf::from("./chartvault.key"),
            kek_env: None,
            openbao: OpenBaoConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_upload_bytes: 512 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            max_pixels_per_page: 100_000_000,
            max_dimension: 30_000,
            max_pages_per_document: 2000,
        }
    }
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            threads: 0,
            language: "eng".to_string(),
            page_seg_mode: 3,
            target_dpi: 300,
            detect_orientation: true,
            min_orientation_confidence: 5.0,
            deskew: true,
            blank_max_ink: 0.001,
            qa_min_confidence: 40.0,
            page_timeout_ms: 120_000,
            engines_in_serve: true,
            lease_seconds: 60,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            commit_interval_ms: 500,
            max_batch: 512,
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl_days: 90,
            jwt_issuer: None,
            jwt_audience: None,
            jwks_file: None,
            jwt_user_claim: "sub".to_string(),
            jwks_cache_secs: 3600,
            oidc_ca_file: None,
            role_claim: None,
            role_mapping: std::collections::BTreeMap::new(),
            smart_patient_system: None,
        }
    }
}

impl Config {
    /// Loads the settings. `file` is the `--config` path; without it `./config.toml` is read
    /// when present. The environment layer is `CHARTVAULT__SECTION__KEY`.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    anyhow::bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("config.toml")),
        }
        figment = figment.merge(Env::prefixed("CHARTVAULT__").split("__"));
        let mut config: Config = figment.extract()?;
        config.normalise()?;
        config.validate()?;
        Ok(config)
    }

    /// Categories and document types in the settings go through the same parser as those of
    /// uploads and cover sheets (`HIV` is the category `hiv`), so every comparison with a
    /// document's own is between normalised values.
    pub fn normalise(&mut self) -> anyhow::Result<()> {
        for category in &mut self.access.sensitive_categories {
            *category = crate::domain::Category::parse(category)
                .map_err(|e| anyhow::anyhow!("access.sensitive_categories: {e}"))?
                .to_string();
        }
        for requirement in &mut self.releases.category_requirements {
            requirement.category = crate::domain::Category::parse(&requirement.category)
                .map_err(|e| anyhow::anyhow!("releases.category_requirements: {e}"))?
                .to_string();
        }
        self.retention.normalise()?;
        Ok(())
    }

    /// `access.sensitive_categories` as categories.
    pub fn sensitive_categories(&self) -> std::collections::BTreeSet<crate::domain::Category> {
        self.access
            .sensitive_categories
            .iter()
            .map(|raw| crate::domain::Category::from_stored(raw.clone()))
            .collect()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.limits.max_upload_bytes == 0
            || self.limits.max_json_bytes == 0
            || self.limits.max_pages_per_document == 0
        {
            anyhow::bail!("limits must be greater than zero");
        }
        if self.server.header_timeout_secs == 0
            || self.server.body_idle_timeout_secs == 0
            || self.server.max_connections == 0
        {
            anyhow::bail!(
                "server.header_timeout_secs, body_idle_timeout_secs and max_connections must be \
                 greater than zero"
            );
        }
        if self.ocr.lease_seconds < 3 {
            anyhow::bail!("ocr.lease_seconds must be at least 3 (a lease is renewed every third)");
        }
        if !self.ocr.engines_in_serve && !matches!(self.database()?, DatabaseLocation::Postgres(_))
        {
            anyhow::bail!(
                "ocr.engines_in_serve = false needs `chartvault worker` processes to recognise \
                 the pages, and they share the queue through PostgreSQL (database.url = \
                 postgres://…); the embedded archive runs its engines in `serve`"
            );
        }
        if self.audit.checkpoint_every_entries == 0 || self.audit.checkpoint_interval_secs == 0 {
            anyhow::bail!("audit checkpoint intervals must be greater than zero");
        }
        if self.decoder.memory_bytes < 64 * 1024 * 1024 || self.decoder.idle_timeout_secs == 0 {
            anyhow::bail!(
                "decoder.memory_bytes must be at least 64 MiB and decoder.idle_timeout_secs \
                 greater than zero"
            );
        }
        if let Some(url) = &self.server.public_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.contains('?') || url.contains('#') {
                anyhow::bail!(
                    "server.public_url must be an http(s) URL without query or fragment \
                     (e.g. https://archive.hospital.example)"
                );
            }
        }
        self.patients.validate()?;
        self.object_storage()?;
        crate::domain::parse_slug("dicomweb.document_type", &self.dicomweb.document_type)
            .map_err(anyhow::Error::msg)?;
        crate::domain::Category::parse(&self.dicomweb.category)
            .map_err(|e| anyhow::anyhow!("dicomweb.{e}"))?;
        if !["T01", "T02"].contains(&self.hl7.mdm.event.as_str()) {
            anyhow::bail!("hl7.mdm.event is T02 or T01");
        }
        if !["fhir", "api"].contains(&self.hl7.mdm.link.as_str()) {
            anyhow::bail!("hl7.mdm.link is fhir or api");
        }
        if self.hl7.mdm.ack_timeout_secs == 0 || self.hl7.mdm.retry_max_secs == 0 {
            anyhow::bail!("hl7.mdm.ack_timeout_secs and retry_max_secs are at least 1");
        }
        if self.hl7.tls_cert_file.is_some() != self.hl7.tls_key_file.is_some() {
            anyhow::bail!("hl7.tls_cert_file and hl7.tls_key_file are set together (or neither)");
        }
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            anyhow::bail!(
                "server.tls_cert_file and server.tls_key_file are set together (or neither)"
            );
        }
        if self.mode == Mode::Production {
            self.check_absolute_paths()?;
        }
        if self.intake.poll_interval_ms == 0 {
            anyhow::bail!("intake.poll_interval_ms must be greater than zero");
        }
        if self.index.commit_interval_ms == 0 {
            anyhow::bail!("index.commit_interval_ms must be greater than zero");
        }
        if !(72..=1200).contains(&self.ocr.target_dpi) {
            anyhow::bail!("ocr.target_dpi must be between 72 and 1200");
        }
        if !(0.0..1.0).contains(&self.ocr.blank_max_ink) {
            anyhow::bail!(
                "ocr.blank_max_ink must be a fraction from 0 (no page is blank) to below 1"
            );
        }
        self.retention.validate()?;
        self.releases.validate()?;
        Ok(())
    }

    /// In production every path must be absolute: a relative one depends on the directory
    /// the service happens to start in, and a wrong one would open (or create) another
    /// archive.
    fn check_absolute_paths(&self) -> anyhow::Result<()> {
        let mut paths: Vec<(String, &Path)> = vec![("data_dir".into(), &self.data_dir)];
        if self.keys.provider == KeyProviderKind::File {
            paths.push(("keys.kek_file".into(), &self.keys.kek_file));
        }
        let optional = [
            ("keys.openbao.token_file", &self.keys.openbao.token_file),
            ("audit.signing_key_file", &self.audit.signing_key_file),
            ("audit.checkpoint_file", &self.audit.checkpoint_file),
            ("audit.public_key_file", &self.audit.public_key_file),
            ("auth.jwks_file", &self.auth.jwks_file),
            ("auth.oidc_ca_file", &self.auth.oidc_ca_file),
            ("decoder.program", &self.decoder.program),
            ("server.tls_cert_file", &self.server.tls_cert_file),
            ("server.tls_key_file", &self.server.tls_key_file),
            ("hl7.tls_cert_file", &self.hl7.tls_cert_file),
            ("hl7.tls_key_file", &self.hl7.tls_key_file),
            ("hl7.mdm.tls_ca_file", &self.hl7.mdm.tls_ca_file),
        ];
        for (key, path) in optional {
            if let Some(path) = path {
                paths.push((key.into(), path));
            }
        }
        for (i, folder) in self.intake.folders.iter().enumerate() {
            paths.push((format!("intake.folders[{i}].path"), &folder.path));
        }
        for (key, path) in paths {
            if !path.is_absolute() {
                anyhow::bail!(
                    "{key} must be an absolute path in production mode (it is {})",
                    path.display()
                );
            }
        }
        Ok(())
    }

    pub fn ocr_threads(&self) -> usize {
        if self.ocr.threads > 0 {
            return self.ocr.threads;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }

    /// A config for tests and tools: everything under `data_dir`, the key file beside it.
    pub fn for_data_dir(data_dir: &Path) -> Config {
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            ..Config::default()
        };
        config.keys.kek_file = data_dir.with_extension("key");
        config
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("chartvault.db")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    pub fn audit_signing_key_file(&self) -> PathBuf {
        self.audit
            .signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.with_extension("audit-signing.key"))
    }

    pub fn audit_checkpoint_file(&self) -> PathBuf {
        self.audit
            .checkpoint_file
            .clone()
            .unwrap_or_else(|| self.data_dir.with_extension("audit-checkpoints"))
    }
}

// ---- retention ([retention]) ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Which rules apply: those of this jurisdiction and those with none.
    pub jurisdiction: Option<String>,
    /// The age of majority for the minor rule.
    pub majority_age: u32,
    /// The scheduled run in `serve`: every this many minutes (0: no scheduled run).
    pub interval_minutes: u64,
    /// Whether the scheduled run destroys what expired (otherwise it only lists and counts).
    pub apply_on_schedule: bool,
    /// Count expiry to this day instead of today (drills and tests).
    pub today: Option<NaiveDate>,
    pub rules: Vec<RetentionRule>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            jurisdiction: None,
            majority_age: 18,
            interval_minutes: 24 * 60,
            apply_on_schedule: false,
            today: None,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// A document type, or `*` for every type without a rule of its own.
    pub document_type: String,
    /// The rule applies only where `retention.jurisdiction` is this.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Years from the service date.
    pub years: u32,
    /// For a patient who was a minor on the service date: kept at least until the age of
    /// majority plus this many years.
    #[serde(default)]
    pub minor_years_after_majority: Option<u32>,
}

impl RetentionRule {
    pub fn describe(&self, majority_age: u32) -> String {
        let mut text = self.document_type.clone();
        if let Some(j) = &self.jurisdiction {
            text.push_str(&format!(" ({j})"));
        }
        text.push_str(&format!(": {} years from the service date", self.years));
        if let Some(n) = self.minor_years_after_majority {
            text.push_str(&format!("; minors until age {majority_age} + {n} years"));
        }
        text
    }
}

impl RetentionConfig {
    /// Document types through the one slug parser (`Letter` is the type `letter`).
    pub fn normalise(&mut self) -> anyhow::Result<()> {
        for rule in &mut self.rules {
            if rule.document_type != "*" {
                rule.document_type =
                    crate::domain::parse_slug("retention.rules.document_type", &rule.document_type)
                        .map_err(|e| anyhow::anyhow!(e))?;
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for rule in &self.rules {
            if rule.document_type != "*" {
                crate::domain::parse_slug("retention.rules.document_type", &rule.document_type)
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
            if rule.years == 0 || rule.years > 200 {
                anyhow::bail!(
                    "retention rule for {}: years must be 1 to 200",
                    rule.document_type
                );
            }
        }
        if self.majority_age == 0 || self.majority_age > 30 {
            anyhow::bail!("retention.majority_age must be 1 to 30");
        }
        Ok(())
    }

    /// The rule for a document type: of the jurisdiction before a general one, the type's
    /// own before `*`.
    pub fn rule_for(&self, document_type: &str) -> Option<&RetentionRule> {
        let applies =
            |r: &&RetentionRule| r.jurisdiction.is_none() || r.jurisdiction == self.jurisdiction;
        let rank = |r: &RetentionRule| {
            (
                r.document_type == document_type,
                r.jurisdiction.is_some() && r.jurisdiction == self.jurisdiction,
            )
        };
        self.rules
            .iter()
            .filter(applies)
            .filter(|r| r.document_type == document_type || r.document_type == "*")
            .max_by_key(|r| rank(r))
    }

    /// The day runs count expiry to.
    pub fn today(&self) -> NaiveDate {
        self.today.unwrap_or_else(|| Utc::now().date_naive())
    }
}

// ---- releases ([releases]) ----

/// Kinds of supporting documents; those that authorise are added to the request's
/// authorisations when attached.
pub const AUTHORIZING_KINDS: &[&str] = &[
    "court-order",
    "patient-authorization",
    "part2-consent",
    "psychotherapy-authorization",
];
pub const OTHER_KINDS: &[&str] = &["subpoena", "request", "satisfactory-assurances", "other"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleasesConfig {
    /// The Bates prefix of a request that names none.
    pub bates_prefix: String,
    /// The facility named in the certification.
    pub institution: String,
    /// The custodian certification (first page). Placeholders: {institution}, {custodian},
    /// {pdf_pages}, {record_pages}, {documents}, {bates_first}, {bates_last}, {date},
    /// {matter}, {recipient}, {release_id}, {production_id}.
    pub certification_template: String,
    /// Categories that need a particular authorisation before they are released.
    pub category_requirements: Vec<CategoryRequirement>,
    /// Days a patient's request for access is due after receipt, and its one extension.
    pub access_due_days: u32,
    pub access_extension_days: u32,
    /// Days any other request is due after receipt when it names no due date.
    pub default_due_days: u32,
    /// Embed pages that are black and white (nearly every pixel near black or white, as a
    /// bilevel scan is once straightened) at one bit per pixel: a fraction of the size.
    pub bilevel_pages: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRequirement {
    pub category: String,
    /// Any one of these authorisations (attachment kinds) releases the category.
    pub any_of: Vec<String>,
    /// Why, as the checklist says it.
    pub why: String,
}

pub const FRE_902_11: &str = "\
CERTIFICATION OF CUSTODIAN OF RECORDS
(Federal Rule of Evidence 902(11))

I, {custodian}, certify under penalty of perjury that:

1. I am the duly authorized custodian of records of
   {institution}, or am otherwise qualified by my position
   to make this certification.

2. The records produced herewith, {record_pages} pages of
   {documents} documents, Bates numbered {bates_first}
   through {bates_last}, are true and correct copies of
   records maintained by {institution}.

3. The records were made at or near the time of the
   occurrence of the matters set forth in them, by, or from
   information transmitted by, a person with knowledge of
   those matters; were kept in the course of the regularly
   conducted activity of {institution}; and were made by
   that regularly conducted activity as a regular practice.

Matter: {matter}
Produced to: {recipient}
Release request: {release_id}
Production: {production_id}
This production: {pdf_pages} pages, including this
certification and the manifest.

Date: {date}


_____________________________________
{custodian}
Custodian of Records, {institution}
";

impl Default for ReleasesConfig {
    fn default() -> Self {
        ReleasesConfig {
            bates_prefix: "CV".into(),
            institution: "the hospital".into(),
            certification_template: FRE_902_11.into(),
            category_requirements: vec![
                CategoryRequirement {
                    category: "substance-use".into(),
                    any_of: vec!["court-order".into(), "part2-consent".into()],
                    why: "substance use disorder records (42 CFR Part 2) need a court order \
                          (42 CFR 2.64) or the patient's Part 2 consent"
                        .into(),
                },
                CategoryRequirement {
                    category: "psychotherapy".into(),
                    any_of: vec!["psychotherapy-authorization".into()],
                    why: "psychotherapy notes need the patient's specific authorization \
                          (45 CFR 164.508(a)(2))"
                        .into(),
                },
            ],
            access_due_days: 30,
            access_extension_days: 30,
            default_due_days: 30,
            bilevel_pages: true,
        }
    }
}

impl ReleasesConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        parse_bates_prefix(&self.bates_prefix).map_err(|e| anyhow::anyhow!("releases.{e}"))?;
        for requirement in &self.category_requirements {
            if requirement.any_of.is_empty() {
                anyhow::bail!(
                    "releases.category_requirements for {}: any_of must name an authorization",
                    requirement.category
                );
            }
        }
        Ok(())
    }

    /// Whether an attachment of `kind` records an authorisation.
    pub fn authorizes(&self, kind: &str) -> bool {
        AUTHORIZING_KINDS.contains(&kind)
            || self
                .category_requirements
                .iter()
                .any(|r| r.any_of.iter().any(|a| a == kind))
    }

    pub fn known_kind(&self, kind: &str) -> bool {
        self.authorizes(kind) || OTHER_KINDS.contains(&kind)
    }
}

/// A Bates prefix: 1 to 16 of `A-Z 0-9 _ -`, starting with a letter or digit.
pub fn parse_bates_prefix(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 16
        && raw
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && raw.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(raw.to_string())
    } else {
        Err(
            "bates_prefix must be 1 to 16 of A-Z, 0-9, '_' and '-', starting with a letter \
             or digit"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_sqlite_in_the_data_dir_unless_a_url_names_another() {
        let mut config = Config::for_data_dir(Path::new("/srv/archive"));
        assert_eq!(
            config.database().unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("/srv/archive/chartvault.db"))
        );
        config.database.url = Some("sqlite:///var/lib/cv.db".into());
        assert_eq!(
            config.database().unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("/var/lib/cv.db"))
        );
        let url = "postgres://chartvault:s3cret@db.example:5432/archive";
        config.database.url = Some(url.into());
        let location = config.database().unwrap();
        assert_eq!(location, DatabaseLocation::Postgres(url.into()));
        for shown in [location.to_string(), format!("{location:?}")] {
            assert!(
                shown.contains("chartvault@db.example:5432/archive"),
                "{shown}"
            );
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        config.database.url = Some("mysql://db/archive".into());
        assert!(config.database().is_err());
    }

    #[test]
    fn the_committed_config_toml_equals_the_embedded_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let from_file: Config = Figment::new()
            .merge(Toml::file(path))
            .extract()
            .expect("config.toml parses");
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
    }

    #[test]
    fn issuers_are_resolved_by_name_and_named_once() {
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(
            "[patients]\ndefault_issuer = \"HOSP\"\n[[patients.issuers]]\nname = \"SouthClinic\"\n",
        ));
        let config: Config = figment.extract().unwrap();
        config.validate().unwrap();
        let patients = &config.patients;
        assert_eq!(patients.resolve_issuer(None), Ok(None));
        assert_eq!(patients.resolve_issuer(Some(" hosp ")), Ok(None));
        assert_eq!(
            patients.resolve_issuer(Some("SOUTHCLINIC")),
            Ok(Some("SouthClinic".into()))
        );
        assert!(patients.resolve_issuer(Some("NORTH")).is_err());
        let mrn = patients.mrn("00123", Some("southclinic")).unwrap();
        assert_eq!(patients.issuer_name(&mrn), Some("SouthClinic"));
        assert_eq!(
            patients.issuer_name(&patients.mrn("00123", None).unwrap()),
            Some("HOSP")
        );

        let mut twice = config.clone();
        twice.patients.issuers[0].name = "hosp".into();
        assert!(twice.validate().is_err(), "the default issuer named again");
        let mut bad = config.clone();
        bad.patients.issuers[0].name = "SOUTH CLINIC".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(
            "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n",
        ));
        assert!(figment.extract::<Config>().is_err());
    }
}
