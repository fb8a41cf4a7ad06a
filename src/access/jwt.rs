//! OIDC / SMART-on-FHIR bearer tokens (JWTs) besides chartvault's own API tokens.
//!
//! Promises:
//! - A JWT is accepted only when it is signed with RS256 or ES256 by a key of the configured
//!   JWKS, named by its `kid`, of the same algorithm; carries the configured `iss` and `aud`;
//!   and is inside `exp` and `nbf` (60 s of clock leeway). `alg: none`, HMAC algorithms, an
//!   unknown `kid` or any failed check is 401, naming the check and nothing of the token.
//! - The signing keys come from `auth.jwks_file`, or else from the issuer's discovery
//!   document (`/.well-known/openid-configuration` → `jwks_uri`, over https, or http on
//!   loopback only); they are cached for `auth.jwks_cache_secs` and fetched again when a
//!   token names a key the cache lacks (a rotated key works without a restart; unknown
//!   keys cost the provider at most one request a second, and the same unknown key one a
//!   minute).
//! - The configured user claim (default `sub`) names the chartvault user the token acts as;
//!   that user must not be disabled, and their role applies. A user that does not exist yet
//!   is created at their first sign-in when `auth.role_claim` maps to a role
//!   (`auth.role_mapping`); otherwise the token is refused.
//! - SMART scopes narrow what the role allows, never widen it: reading (search, documents,
//!   patient lookup) needs a `DocumentReference` or `*` read scope (`read`, `rs` or `*`);
//!   ingest and delete need a write scope (`write`, `c`, `d` or `*`); other actions (keys,
//!   care lists, audit, break-the-glass, disclosures) need `user/*.*`. A `patient/...`
//!   scope limits the token to the patient of its `patient` claim (chartvault's patient id).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthConfig;
use crate::domain::PatientId;
use crate::domain::{Action, Role};

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    /// The chartvault user name the token acts as.
    pub user: String,
    pub scopes: SmartScopes,
    /// The role its role claim maps to (`auth.role_claim`, `auth.role_mapping`): a user
    /// signing in for the first time is created with it.
    pub role: Option<Role>,
}

/// The rights SMART scopes grant (on top of the role, never beyond it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmartScopes {
    pub read: bool,
    pub write: bool,
    pub admin: bool,
    /// Set by a `patient/...` scope: the token sees this patient only.
    pub patient: Option<PatientId>,
    /// A `patient` claim that is not a chartvault patient id: the MRN it names (`system|MRN`,
    /// or an MRN under `auth.smart_patient_system`), resolved to `patient` by the caller.
    /// Until then `patient` is the nil id: the token sees nobody.
    pub patient_mrn: Option<String>,
}

impl SmartScopes {
    /// Parses a space-separated `scope` claim with its `patient` claim.
    pub fn parse(scope: &str, patient: Option<&str>) -> Result<SmartScopes, &'static str> {
        let mut scopes = SmartScopes::default();
        let mut patient_scoped = false;
        for item in scope.split_whitespace() {
            let Some((context, rest)) = item.split_once('/') else {
                continue; // openid, profile, launch, ...: not about resources
            };
            let Some((resource, permission)) = rest.split_once('.') else {
                continue;
            };
            if !matches!(context, "user" | "patient" | "system") {
                continue;
            }
            if !matches!(resource, "DocumentReference" | "*") {
                continue;
            }
            // SMART v1 (`read`, `write`, `*`) or v2 (letters of `cruds`).
            let v2 = !permission.is_empty() && permission.chars().all(|c| "cruds".contains(c));
            let read = matches!(permission, "read" | "*")
                || (v2 && (permission.contains('r') || permission.contains('s')));
            let write = matches!(permission, "write" | "*")
                || (v2 && ["c", "u", "d"].iter().any(|l| permission.contains(l)));
            scopes.read |= read;
            scopes.write |= write;
            scopes.admin |= context != "patient" && resource == "*" && permission == "*";
            patient_scoped |= context == "patient";
        }
        if patient_scoped {
            let claim = patient.ok_or("a patient scope needs a patient claim")?;
            match claim.parse::<PatientId>() {
                Ok(id) => scopes.patient = Some(id),
                Err(_) => {
                    // Fail closed: nobody, until the caller resolves the MRN.
                    scopes.patient = Some(PatientId(uuid::Uuid::nil()));
                    scopes.patient_mrn = Some(claim.to_string());
                }
            }
            scopes.admin = false;
        }
        Ok(scopes)
    }

    pub fn allows(&self, action: Action) -> bool {
        match action {
            Action::Search | Action::ReadDocument | Action::LookupPatient => self.read,
            Action::Ingest | Action::DeleteDocument => self.write && self.patient.is_none(),
            _ => self.admin,
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    patient: Option<String>,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

/// After a refresh that did not bring a token's key, that key is not asked for again for
/// this long; and the keys are refreshed at most this often, whatever unknown keys tokens
/// name (a flood of made-up `kid`s costs the identity provider one request a second).
const MISSING_KEY_QUIET: Duration = Duration::from_secs(60);
const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Where the signing keys come from.
enum JwksSource {
    /// A JWKS file (read again when a token names a key it does not have).
    File(PathBuf),
    /// The issuer's discovery document (`/.well-known/openid-configuration`) names the JWKS.
    Discovery { client: reqwest::Client },
}

type KeyMap = HashMap<String, (DecodingKey, Algorithm)>;

struct KeyCache {
    keys: KeyMap,
    loaded_at: Option<Instant>,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    missing: HashMap<String, Instant>,
}

/// Checks JWTs against the configured issuer, audience and signing keys, and maps their
/// role claim to a chartvault role for provisioning.
pub struct JwtVerifier {
    source: JwksSource,
    cache: std::sync::RwLock<KeyCache>,
    refresh: tokio::sync::Mutex<RefreshState>,
    /// Keys older than this are fetched again before use (a key the provider withdrew
    /// stops being trusted within this time).
    max_age: Duration,
    issuer: String,
    audience: String,
    user_claim: String,
    role_claim: Option<String>,
    role_mapping: BTreeMap<String, Role>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// The keys of a JWK set that tokens can name: RS256 and ES256 keys with a `kid`.
fn keys_of(set: &JwkSet) -> anyhow::Result<KeyMap> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue; // a key no token can name
        };
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => continue, // symmetric or other keys are never trusted
        };
        let key = DecodingKey::from_jwk(jwk).context("a JWKS key does not load")?;
        keys.insert(kid, (key, algorithm));
    }
    if keys.is_empty() {
        bail!("the JWKS holds no RS256/ES256 key with a kid");
    }
    Ok(keys)
}

/// Discovery and JWKS over plain HTTP only from this machine: anywhere else a network
/// attacker could hand out their own signing keys.
fn check_transport(url: &str, what: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{what} is not a URL"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        bail!("{what} must be an https:// URL (plain http only on loopback)");
    }
    Ok(())
}

impl JwtVerifier {
    /// The verifier the config asks for: `None` when JWTs are not configured. Keys from a
    /// file are loaded now (a bad file stops the start); keys from discovery are fetched
    /// when the first token comes.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Option<JwtVerifier>> {
        let (Some(issuer), Some(audience)) = (&config.jwt_issuer, &config.jwt_audience) else {
            if config.jwt_issuer.is_some()
                || config.jwt_audience.is_some()
                || config.jwks_file.is_some()
            {
                bail!("JWTs need auth.jwt_issuer and auth.jwt_audience (and the keys: auth.jwks_file, or the issuer's discovery document)");
            }
            return Ok(None);
        };
        let (source, keys) = match &config.jwks_file {
            Some(path) => (JwksSource::File(path.clone()), Some(read_jwks_file(path)?)),
            None => {
                check_transport(issuer, "auth.jwt_issuer")?;
                let mut client = reqwest::Client::builder().timeout(Duration::from_secs(10));
                if let Some(ca) = &config.oidc_ca_file {
                    let pem = std::fs::read(ca)
                        .with_context(|| format!("reading auth.oidc_ca_file {}", ca.display()))?;
                    for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                        .context("auth.oidc_ca_file is not a PEM certificate bundle")?
                    {
                        client = client.add_root_certificate(certificate);
                    }
                }
                let client = client.build().context("the OIDC discovery client")?;
                (JwksSource::Discovery { client }, None)
            }
        };
        Ok(Some(JwtVerifier {
            source,
            cache: std::sync::RwLock::new(KeyCache {
                loaded_at: keys.is_some().then(Instant::now),
                keys: keys.unwrap_or_default(),
            }),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            max_age: Duration::from_secs(config.jwks_cache_secs),
            issuer: issuer.clone(),
            audience: audience.clone(),
            user_claim: config.jwt_user_claim.clone(),
            role_claim: config.role_claim.clone(),
            role_mapping: config.role_mapping.clone(),
        }))
    }

    /// The current keys from the source (the discovery document, then the JWKS).
    async fn fetch(&self) -> anyhow::Result<KeyMap> {
        match &self.source {
            JwksSource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_jwks_file(&path)).await?
            }
            JwksSource::Discovery { client } => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let discovery: serde_json::Value = client
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .context("fetching the issuer's discovery document")?
                    .json()
                    .await
                    .context("the discovery document is not JSON")?;
                if discovery["issuer"].as_str() != Some(self.issuer.as_str()) {
                    bail!("the discovery document names another issuer than auth.jwt_issuer");
                }
                let jwks_uri = discovery["jwks_uri"]
                    .as_str()
                    .context("the discovery document has no jwks_uri")?;
                check_transport(jwks_uri, "the discovery document's jwks_uri")?;
                let set: JwkSet = client
                    .get(jwks_uri)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .context("fetching the issuer's JWKS")?
                    .json()
                    .await
                    .context("the issuer's JWKS is not a JWK set")?;
                keys_of(&set)
            }
        }
    }

    /// The key a token names: from the cache while it is fresh; fetched again when the
    /// cache is too old, or the key unknown (within the limits above).
    async fn key_for(&self, kid: &str) -> Result<(DecodingKey, Algorithm), &'static str> {
        let cached = |this: &Self| {
            let cache = this
                .cache
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = cache
                .loaded_at
                .is_some_and(|at| at.elapsed() < this.max_age);
            (cache.keys.get(kid).cloned(), fresh)
        };
        let (key, fresh) = cached(self);
        if let (Some(key), true) = (&key, fresh) {
            return Ok(key.clone());
        }
        let mut state = self.refresh.lock().await;
        // Another request may have refreshed while this one waited.
        let (key, fresh) = cached(self);
        if let (Some(key), true) = (&key, fresh) {
            return Ok(key.clone());
        }
        let quiet = state
            .missing
            .get(kid)
            .is_some_and(|at| at.elapsed() < MISSING_KEY_QUIET);
        let recent = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < REFRESH_MIN_INTERVAL);
        // A known key whose cache aged is fetched again; an unknown one unless it was
        // missing a moment ago; neither more than once a second.
        let worth_asking = if key.is_some() {
            !fresh
        } else {
            !quiet || !fresh
        };
        if worth_asking && !recent {
            state.last_attempt = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    let mut cache = self
                        .cache
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    cache.keys = keys;
                    cache.loaded_at = Some(Instant::now());
                    tracing::info!(keys = cache.keys.len(), "loaded the OIDC signing keys");
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "could not refresh the OIDC signing keys");
                }
            }
        }
        let (key, _) = cached(self);
        match key {
            Some(key) => {
                state.missing.remove(kid);
                Ok(key)
            }
            None => {
                state
                    .missing
                    .retain(|_, at| at.elapsed() < MISSING_KEY_QUIET);
                state.missing.insert(kid.to_string(), Instant::now());
                Err("the token's signing key (kid) is unknown")
            }
        }
    }

    /// Verifies a token; the error names the failed check, for a 401.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, &'static str> {
        let header = decode_header(token).map_err(|_| "the token is not a well-formed JWT")?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err("the token's algorithm is not accepted (RS256 or ES256)");
        }
        let kid = header.kid.ok_or("the token names no signing key (kid)")?;
        let (key, algorithm) = self.key_for(&kid).await?;
        if algorithm != header.alg {
            return Err("the token's algorithm does not match its key");
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let data = decode::<Claims>(token, &key, &validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks exp, iss or aud",
                _ => "the token does not verify",
            }
        })?;
        let claims = data.claims;
        let user = match self.user_claim.as_str() {
            "scope" | "patient" => None,
            name => claims
                .rest
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string),
        }
        .ok_or("the token names no user")?;
        let scopes = SmartScopes::parse(
            claims.scope.as_deref().unwrap_or(""),
            claims.patient.as_deref(),
        )?;
        let role = self.mapped_role(&claims.rest)?;
        Ok(TokenClaims { user, scopes, role })
    }

    /// The chartvault role the token's role claim maps to (`auth.role_claim`, a string or
    /// an array of strings, through `auth.role_mapping`): `None` when nothing maps; an error
    /// when values map to different roles.
    fn mapped_role(
        &self,
        claims: &HashMap<String, serde_json::Value>,
    ) -> Result<Option<Role>, &'static str> {
        let Some(claim) = &self.role_claim else {
            return Ok(None);
        };
        let values: Vec<&str> = match claims.get(claim) {
            Some(serde_json::Value::String(value)) => vec![value.as_str()],
            Some(serde_json::Value::Array(values)) => {
                values.iter().filter_map(|v| v.as_str()).collect()
            }
            _ => Vec::new(),
        };
        let mut roles: Vec<Role> = values
            .iter()
            .filter_map(|value| self.role_mapping.get(*value).copied())
            .collect();
        roles.dedup();
        match roles.as_slice() {
            [] => Ok(None),
            [role] => Ok(Some(*role)),
            _ => Err("the token's roles map to more than one chartvault role"),
        }
    }
}

fn read_jwks_file(path: &Path) -> anyhow::Result<KeyMap> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the JWKS file {}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text).context("the JWKS file is not a JWK set")?;
    keys_of(&set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_scopes_grant_what_they_name_and_no_more() {
        let read = SmartScopes::parse("openid user/DocumentReference.read", None).unwrap();
        assert!(read.read && !read.write && !read.admin && read.patient.is_none());
        assert!(read.allows(Action::Search) && !read.allows(Action::Ingest));
        let v2 = SmartScopes::parse("user/DocumentReference.rs", None).unwrap();
        assert!(v2.read && !v2.write);
        let all = SmartScopes::parse("user/*.*", None).unwrap();
        assert!(all.read && all.write && all.admin && all.allows(Action::ManageKeys));
        let write = SmartScopes::parse("user/DocumentReference.write", None).unwrap();
        assert!(write.write && !write.read);
        let other = SmartScopes::parse("user/Observation.read", None).unwrap();
        assert_eq!(other, SmartScopes::default());
        let id = PatientId::new_random();
        let patient = SmartScopes::parse("patient/*.read", Some(&id.to_string())).unwrap();
        assert_eq!(patient.patient, Some(id));
        assert!(patient.read && !patient.admin && !patient.allows(Action::Ingest));
        assert!(SmartScopes::parse("patient/*.read", None).is_err());
        let by_mrn = SmartScopes::parse("patient/*.read", Some("00123")).unwrap();
        assert_eq!(
            by_mrn.patient,
            Some(PatientId(uuid::Uuid::nil())),
            "nobody until resolved"
        );
        assert_eq!(by_mrn.patient_mrn.as_deref(), Some("00123"));
    }
}
