//! OIDC / SMART-on-FHIR bearer tokens (JWTs) besides chartvault's own API tokens.
//!
//! Promises:
//! - A JWT is accepted only when it is signed with RS256 or ES256 by a key of the configured
//!   JWKS, named by its `kid`, of the same algorithm; carries the configured `iss` and `aud`;
//!   and is inside `exp` and `nbf` (60 s of clock leeway). `alg: none`, HMAC algorithms, an
//!   unknown `kid` or any failed check is 401, naming the check and nothing of the token.
//! - The configured user claim (default `sub`) names the chartvault user the token acts as;
//!   that user must exist and not be disabled, and their role applies.
//! - SMART scopes narrow what the role allows, never widen it: reading (search, documents,
//!   patient lookup) needs a `DocumentReference` or `*` read scope (`read`, `rs` or `*`);
//!   ingest and delete need a write scope (`write`, `c`, `d` or `*`); other actions (keys,
//!   care lists, audit, break-the-glass, disclosures) need `user/*.*`. A `patient/...`
//!   scope limits the token to the patient of its `patient` claim (chartvault's patient id).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthConfig;
use crate::domain::Action;
use crate::domain::PatientId;

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    /// The chartvault user name the token acts as.
    pub user: String,
    pub scopes: SmartScopes,
}

/// The rights SMART scopes grant (on top of the role, never beyond it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmartScopes {
    pub read: bool,
    pub write: bool,
    pub admin: bool,
    /// Set by a `patient/...` scope: the token sees this patient only.
    pub patient: Option<PatientId>,
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
            let id = patient
                .ok_or("a patient scope needs a patient claim")?
                .parse::<PatientId>()
                .map_err(|_| "the patient claim is not a chartvault patient id")?;
            scopes.patient = Some(id);
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

/// Checks JWTs against the configured issuer, audience and JWKS.
pub struct JwtVerifier {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: String,
    audience: String,
    user_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JwtVerifier {
    /// The verifier the config asks for: `None` when JWTs are not configured.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Option<JwtVerifier>> {
        let (Some(issuer), Some(audience), Some(jwks)) =
            (&config.jwt_issuer, &config.jwt_audience, &config.jwks_file)
        else {
            if config.jwt_issuer.is_some()
                || config.jwt_audience.is_some()
                || config.jwks_file.is_some()
            {
                bail!("JWTs need all of auth.jwt_issuer, auth.jwt_audience and auth.jwks_file");
            }
            return Ok(None);
        };
        Ok(Some(JwtVerifier::new(
            issuer,
            audience,
            &config.jwt_user_claim,
            jwks,
        )?))
    }

    pub fn new(
        issuer: &str,
        audience: &str,
        user_claim: &str,
        jwks: &Path,
    ) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(jwks)
            .with_context(|| format!("reading the JWKS file {}", jwks.display()))?;
        let set: JwkSet = serde_json::from_str(&text).context("the JWKS file is not a JWK set")?;
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
            bail!("the JWKS file holds no RS256/ES256 key with a kid");
        }
        Ok(JwtVerifier {
            keys,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            user_claim: user_claim.to_string(),
        })
    }

    /// Verifies a token; the error names the failed check, for a 401.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, &'static str> {
        let header = decode_header(token).map_err(|_| "the token is not a well-formed JWT")?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err("the token's algorithm is not accepted (RS256 or ES256)");
        }
        let kid = header.kid.ok_or("the token names no signing key (kid)")?;
        let (key, algorithm) = self
            .keys
            .get(&kid)
            .ok_or("the token's signing key (kid) is unknown")?;
        if *algorithm != header.alg {
            return Err("the token's algorithm does not match its key");
        }
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let data = decode::<Claims>(token, key, &validation).map_err(|error| {
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
        Ok(TokenClaims { user, scopes })
    }
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
        assert!(SmartScopes::parse("patient/*.read", Some("00123")).is_err());
    }
}
