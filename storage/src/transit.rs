//! [`TransitKeyProvider`]: the key-encryption key in a KMS, OpenBao's (or HashiCorp Vault's)
//! Transit secrets engine. The KEK never leaves the KMS: a data key is wrapped by the
//! engine's `encrypt` endpoint and unwrapped by its `decrypt`; this process keeps the key's
//! name, its version numbers and an access token.
//!
//! Promises:
//! - A wrapped key is the engine's ciphertext (`vault:v<N>:<base64>`, stored as its ASCII
//!   bytes) labelled with its key version `N`; the AES-256-GCM associated data is
//!   `"chartvault-wrapped-key-v1\0" ‖ key id`, so a wrapped key copied to another keyring
//!   row fails to unwrap, and a label that disagrees with the ciphertext's version is refused
//!   before any request is made.
//! - Versions: the engine's `latest_version` wraps new keys; every version from its
//!   `min_decryption_version` up unwraps. Rotation is the engine's `rotate` (a new version)
//!   followed by the service's re-wrap of its keyring; retirement raises
//!   `min_decryption_version`, after which the old versions decrypt nothing. A version made
//!   by another node is learnt from the first response that carries it.
//! - Unwrapped data keys are kept in a bounded in-memory cache (zeroised when dropped), so
//!   reading an object does not cost a request to the KMS each time.
//! - The token is sent only in the `X-Vault-Token` header, never in a URL, an error or a log
//!   line; errors carry the engine's own messages, which contain no key material.
//!
//! The trait is synchronous; requests run on a small runtime of the provider's own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::keys::{DataKey, KeyId, KeyProvider, WrappedKey, KEY_LEN, WRAP_DOMAIN};
use crate::runtime::{run_on, OwnRuntime};
use crate::StorageError;

/// Unwrapped data keys kept in memory at most; the cache is emptied when it fills.
const CACHE_ENTRIES: usize = 65_536;
/// How long one request to the KMS may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the Transit key lives and how to reach it.
#[derive(Clone)]
pub struct TransitLocation {
    /// The KMS's address, `http(s)://host:port`.
    pub address: String,
    /// The path the Transit engine is mounted at (`transit`).
    pub mount: String,
    /// The Transit key's name.
    pub key: String,
    /// A token allowed to read the key and use its `encrypt`, `decrypt` (and, for rotation
    /// and retirement, `rotate` and `config`) endpoints.
    pub token: SecretString,
}

impl std::fmt::Debug for TransitLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitLocation")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The KEK provider on a Transit key (see the module docs).
pub struct TransitKeyProvider {
    client: reqwest::Client,
    /// `{address}/v1/{mount}`.
    engine: String,
    key: String,
    token: SecretString,
    runtime: Arc<OwnRuntime>,
    /// The newest version: it wraps new keys.
    latest: AtomicU32,
    /// The oldest version that still decrypts.
    min_decryption: AtomicU32,
    /// Unwrapped keys by key id, with the wrapped bytes they came from.
    cache: Mutex<HashMap<KeyId, (Vec<u8>, DataKey)>>,
}

impl std::fmt::Debug for TransitKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitKeyProvider")
            .field("engine", &self.engine)
            .field("key", &self.key)
            .field("latest", &self.latest)
            .finish_non_exhaustive()
    }
}

/// What the KMS answered.
enum Reply {
    Ok(Value),
    /// The request was refused: the HTTP status and the engine's messages.
    Refused(u16, String),
}

impl TransitKeyProvider {
    /// Connects to an existing Transit key and reads its versions.
    pub fn open(location: &TransitLocation) -> Result<TransitKeyProvider, StorageError> {
        let provider = TransitKeyProvider::connect(location)?;
        provider.refresh()?;
        Ok(provider)
    }

    /// As [`TransitKeyProvider::open`], creating the key first when it does not exist (an
    /// `aes256-gcm96` key that cannot be exported).
    pub fn open_or_create(location: &TransitLocation) -> Result<TransitKeyProvider, StorageError> {
        let provider = TransitKeyProvider::connect(location)?;
        if provider.read_key()?.is_none() {
            let body = json!({"type": "aes256-gcm96", "exportable": false,
                              "allow_plaintext_backup": false});
            provider.call_ok("creating", &format!("keys/{}", provider.key), Some(body))?;
        }
        provider.refresh()?;
        Ok(provider)
    }

    fn connect(location: &TransitLocation) -> Result<TransitKeyProvider, StorageError> {
        if location.key.is_empty() || location.key.contains(['/', '?', '#']) {
            return Err(StorageError::Key(format!(
                "{:?} is not a Transit key name",
                location.key
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| StorageError::Key(format!("the KMS client: {e}")))?;
        Ok(TransitKeyProvider {
            client,
            engine: format!(
                "{}/v1/{}",
                location.address.trim_end_matches('/'),
                location.mount.trim_matches('/')
            ),
            key: location.key.clone(),
            token: location.token.clone(),
            runtime: Arc::new(OwnRuntime::new("kms-client")?),
            latest: AtomicU32::new(0),
            min_decryption: AtomicU32::new(0),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Reads the key's versions again (after a rotation or retirement by anyone).
    pub fn refresh(&self) -> Result<(), StorageError> {
        let Some(data) = self.read_key()? else {
            return Err(StorageError::Key(format!(
                "the Transit key {:?} does not exist at {}",
                self.key, self.engine
            )));
        };
        let number = |field: &str| {
            data.get(field)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    StorageError::Key(format!("the KMS's key has no {field} this can read"))
                })
        };
        let latest = number("latest_version")?;
        let min_decryption = number("min_decryption_version")?.max(1);
        self.latest.store(latest, Ordering::SeqCst);
        self.min_decryption.store(min_decryption, Ordering::SeqCst);
        Ok(())
    }

    /// Adds a key version in the KMS (new data keys are wrapped under it); returns it.
    pub fn rotate(&self) -> Result<u32, StorageError> {
        self.call_ok(
            "rotating",
            &format!("keys/{}/rotate", self.key),
            Some(json!({})),
        )?;
        self.refresh()?;
        Ok(self.current_version())
    }

    /// Retires every version below `version`: the KMS refuses to decrypt with them from
    /// then on. Cached keys unwrapped under them are forgotten.
    pub fn retire_below(&self, version: u32) -> Result<(), StorageError> {
        let body = json!({ "min_decryption_version": version });
        self.call_ok(
            "retiring versions of",
            &format!("keys/{}/config", self.key),
            Some(body),
        )?;
        self.refresh()?;
        self.lock_cache().clear();
        Ok(())
    }

    /// The key's description, or `None` when it does not exist.
    fn read_key(&self) -> Result<Option<Value>, StorageError> {
        match self.call("reading", &format!("keys/{}", self.key), None)? {
            Reply::Ok(data) => Ok(Some(data)),
            Reply::Refused(404, _) => Ok(None),
            Reply::Refused(status, errors) => Err(self.refused("reading", status, &errors)),
        }
    }

    fn call_ok(&self, doing: &str, path: &str, body: Option<Value>) -> Result<Value, StorageError> {
        match self.call(doing, path, body)? {
            Reply::Ok(data) => Ok(data),
            Reply::Refused(status, errors) => Err(self.refused(doing, status, &errors)),
        }
    }

    fn refused(&self, doing: &str, status: u16, errors: &str) -> StorageError {
        StorageError::Key(format!(
            "the KMS refused {doing} the Transit key {:?} ({status}): {errors}",
            self.key
        ))
    }

    /// One request to the engine: a GET without a body, else a POST of `body`.
    fn call(&self, doing: &str, path: &str, body: Option<Value>) -> Result<Reply, StorageError> {
        let url = format!("{}/{path}", self.engine);
        let request = match body {
            None => self.client.get(&url),
            Some(body) => self.client.post(&url).json(&body),
        }
        .header("X-Vault-Token", self.token.expose_secret());
        let outcome = run_on(self.runtime.handle(), async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = outcome.map_err(|e| {
            StorageError::Key(format!(
                "the KMS at {} did not answer {doing} the Transit key {:?}: {}",
                self.engine,
                self.key,
                e.without_url()
            ))
        })?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(Reply::Ok(json.get("data").cloned().unwrap_or(Value::Null)));
        }
        let errors = json
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        Ok(Reply::Refused(status, errors))
    }

    /// The associated data binding a wrapped key to its keyring row, as the engine takes it.
    fn associated_data(id: &KeyId) -> String {
        let mut aad = Vec::with_capacity(WRAP_DOMAIN.len() + id.as_bytes().len());
        aad.extend_from_slice(WRAP_DOMAIN);
        aad.extend_from_slice(id.as_bytes());
        BASE64.encode(aad)
    }

    /// Whether `version` is one the KMS still decrypts with (as far as this node knows).
    fn unwraps_under(&self, version: u32) -> bool {
        (self.min_decryption.load(Ordering::SeqCst)..=self.current_version()).contains(&version)
    }

    /// Notes a version seen in a response (another node may have rotated).
    fn saw_version(&self, version: u32) {
        self.latest.fetch_max(version, Ordering::SeqCst);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, (Vec<u8>, DataKey)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The version a Transit ciphertext names (`vault:v<N>:…`).
fn ciphertext_version(ciphertext: &str) -> Option<u32> {
    let rest = ciphertext.strip_prefix("vault:v")?;
    let (version, _) = rest.split_once(':')?;
    version.parse().ok()
}

impl KeyProvider for TransitKeyProvider {
    fn current_version(&self) -> u32 {
        self.latest.load(Ordering::SeqCst)
    }

    fn versions(&self) -> Vec<u32> {
        (self.min_decryption.load(Ordering::SeqCst)..=self.current_version()).collect()
    }

    fn wrap_key(&self, id: &KeyId, key: &DataKey) -> Result<WrappedKey, StorageError> {
        let body = json!({
            "plaintext": BASE64.encode(key.expose_secret()),
            "associated_data": Self::associated_data(id),
        });
        let data = self.call_ok(
            "encrypting with",
            &format!("encrypt/{}", self.key),
            Some(body),
        )?;
        let ciphertext = data
            .get("ciphertext")
            .and_then(Value::as_str)
            .ok_or_else(|| StorageError::Key("the KMS returned no ciphertext".into()))?;
        let kek_version = ciphertext_version(ciphertext).ok_or_else(|| {
            StorageError::Key("the KMS returned a ciphertext without a key version".into())
        })?;
        self.saw_version(kek_version);
        Ok(WrappedKey {
            kek_version,
            bytes: ciphertext.as_bytes().to_vec(),
        })
    }

    fn unwrap_key(&self, id: &KeyId, wrapped: &WrappedKey) -> Result<DataKey, StorageError> {
        if let Some((bytes, key)) = self.lock_cache().get(id) {
            if *bytes == wrapped.bytes && self.unwraps_under(wrapped.kek_version) {
                return Ok(key.clone());
            }
        }
        let ciphertext = std::str::from_utf8(&wrapped.bytes).map_err(|_| StorageError::Decrypt)?;
        if ciphertext_version(ciphertext) != Some(wrapped.kek_version) {
            return Err(StorageError::Decrypt);
        }
        if wrapped.kek_version > self.current_version() {
            // Made by a node that saw a rotation this one has not.
            self.refresh()?;
        }
        if !self.unwraps_under(wrapped.kek_version) {
            return Err(StorageError::Key(format!(
                "KEK version {} is not available from the key provider",
                wrapped.kek_version
            )));
        }
        let body = json!({
            "ciphertext": ciphertext,
            "associated_data": Self::associated_data(id),
        });
        let data = match self.call(
            "decrypting with",
            &format!("decrypt/{}", self.key),
            Some(body),
        )? {
            Reply::Ok(data) => data,
            // The engine's answer to a ciphertext that does not authenticate.
            Reply::Refused(400, errors) if errors.contains("authentication failed") => {
                return Err(StorageError::Decrypt)
            }
            Reply::Refused(status, errors) => {
                return Err(self.refused("decrypting with", status, &errors))
            }
        };
        let plaintext = data
            .get("plaintext")
            .and_then(Value::as_str)
            .and_then(|text| BASE64.decode(text).ok())
            .ok_or_else(|| StorageError::Key("the KMS returned no plaintext".into()))?;
        let bytes: [u8; KEY_LEN] = plaintext.try_into().map_err(|_| StorageError::Decrypt)?;
        let key = DataKey::from_bytes(bytes);
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(*id, (wrapped.bytes.clone(), key.clone()));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_versions_are_read_from_the_prefix() {
        assert_eq!(ciphertext_version("vault:v1:abc"), Some(1));
        assert_eq!(ciphertext_version("vault:v12:abc"), Some(12));
        for bad in ["", "vault:1:abc", "vault:vx:abc", "vault:v3", "v3:abc"] {
            assert_eq!(ciphertext_version(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_no_token() {
        let location = TransitLocation {
            address: "http://127.0.0.1:1".into(),
            mount: "transit".into(),
            key: "chartvault".into(),
            token: SecretString::from("s.very-secret-token"),
        };
        assert!(!format!("{location:?}").contains("very-secret"));
        let provider = TransitKeyProvider::connect(&location).expect("client");
        assert!(!format!("{provider:?}").contains("very-secret"));
    }

    use crate::testsuite::openbao::{bao, OpenBao};
    use crate::testsuite::run_key_provider_conformance;

    fn location(server: &OpenBao, key: &str) -> TransitLocation {
        TransitLocation {
            address: server.address.clone(),
            mount: "transit".into(),
            key: key.into(),
            token: SecretString::from(server.token.clone()),
        }
    }

    /// The contract, rotation, retirement and refusals, on a real OpenBao.
    #[test]
    fn transit_keys_wrap_rotate_and_retire_on_a_real_openbao() {
        let Some(bao) = bao() else { return };
        let server = OpenBao::start(&bao);
        let missing = TransitKeyProvider::open(&location(&server, "chartvault"))
            .expect_err("open does not create the key");
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        let provider = TransitKeyProvider::open_or_create(&location(&server, "chartvault"))
            .expect("create the key");
        assert_eq!(
            (provider.current_version(), provider.versions()),
            (1, vec![1])
        );
        run_key_provider_conformance(&provider);

        // Rotation: new keys go under version 2, version 1 still unwraps.
        let id = KeyId::generate();
        let key = DataKey::generate();
        let old = provider.wrap_key(&id, &key).expect("wrap");
        assert_eq!(provider.rotate().expect("rotate"), 2);
        assert_eq!(provider.versions(), vec![1, 2]);
        assert_eq!(provider.wrap_key(&id, &key).expect("wrap").kek_version, 2);
        let rewrapped = provider.rewrap_key(&id, &old).expect("rewrap");
        assert_eq!(rewrapped.kek_version, 2);
        run_key_provider_conformance(&provider);

        // A second node learns the rotation another made from the ciphertext it reads.
        let other = TransitKeyProvider::open(&location(&server, "chartvault")).expect("open");
        assert_eq!(provider.rotate().expect("rotate"), 3);
        let newest = provider.wrap_key(&id, &key).expect("wrap under 3");
        assert_eq!(
            other
                .unwrap_key(&id, &newest)
                .expect("unwrap")
                .expose_secret(),
            key.expose_secret()
        );
        assert_eq!(other.current_version(), 3);

        // Retirement: version 1 decrypts nothing any more, on any node, cached or not.
        provider
            .unwrap_key(&id, &old)
            .expect("cached under version 1");
        provider.retire_below(2).expect("retire version 1");
        assert_eq!(provider.versions(), vec![2, 3]);
        assert!(matches!(
            provider.unwrap_key(&id, &old),
            Err(StorageError::Key(_))
        ));
        let fresh = TransitKeyProvider::open(&location(&server, "chartvault")).expect("open");
        assert!(matches!(
            fresh.unwrap_key(&id, &old),
            Err(StorageError::Key(_))
        ));
        assert_eq!(
            fresh
                .unwrap_key(&id, &rewrapped)
                .expect("version 2")
                .expose_secret(),
            key.expose_secret()
        );

        // A token the KMS refuses: a clear error that does not repeat the token.
        let mut bad = location(&server, "chartvault");
        bad.token = SecretString::from("not-the-token".to_string());
        let refused = TransitKeyProvider::open(&bad).expect_err("refused");
        let message = refused.to_string();
        assert!(message.contains("permission denied"), "{message}");
        assert!(!message.contains("not-the-token"), "{message}");
    }

    #[test]
    fn an_unreachable_kms_is_a_key_error_without_the_token() {
        let location = TransitLocation {
            address: "http://127.0.0.1:1".into(),
            mount: "transit".into(),
            key: "chartvault".into(),
            token: SecretString::from("s.very-secret-token"),
        };
        let error = TransitKeyProvider::open(&location).expect_err("nothing listens on port 1");
        let message = error.to_string();
        assert!(matches!(error, StorageError::Key(_)), "{message}");
        assert!(message.contains("did not answer"), "{message}");
        assert!(!message.contains("very-secret"), "{message}");
    }
}
