//! Settings: embedded defaults < `config.toml` < environment (`CHARTVAULT__SECTION__KEY`)
//! < command-line flags. Unknown keys are errors. Secrets never live here: the key file is
//! referenced by path, or by the name of an environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
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
    pub retention: crate::retention::RetentionConfig,
    pub releases: crate::release::ReleasesConfig,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Path of the key-encryption key file (created `0600` on first run).
    pub kek_file: PathBuf,
    /// Name of an environment variable that holds the key file's contents instead.
    pub kek_env: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_upload_bytes: u64,
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
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every_entries: 1000,
            checkpoint_interval_secs: 60,
            signing_key_file: None,
            checkpoint_file: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
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
            retention: crate::retention::RetentionConfig::default(),
            releases: crate::release::ReleasesConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            kek_file: PathBuf::from("./chartvault.key"),
            kek_env: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_upload_bytes: 512 * 1024 * 1024,
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
        let config: Config = figment.extract()?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.limits.max_upload_bytes == 0 || self.limits.max_pages_per_document == 0 {
            anyhow::bail!("limits must be greater than zero");
        }
        if self.audit.checkpoint_every_entries == 0 || self.audit.checkpoint_interval_secs == 0 {
            anyhow::bail!("audit checkpoint intervals must be greater than zero");
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_keys_are_rejected() {
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(
            "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n",
        ));
        assert!(figment.extract::<Config>().is_err());
    }
}
