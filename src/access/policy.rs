//! Who is calling, and may they do this.
//!
//! Every request resolves to exactly one [`Principal`] from its bearer token (256-bit random,
//! stored only as a SHA-256 hash). [`decide`] is the one policy function; every route calls
//! it. A role without the action gets 403; a resource outside the caller's scope gets 404,
//! exactly like an unknown id, so ids are never confirmed. Patient relationships and
//! sensitive categories refine [`decide`] without changing its callers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::access::jwt::{JwtVerifier, SmartScopes};
use crate::app::Archive;
use crate::domain::{Category, DocumentId, PatientId, Role, UserId};
use crate::error::AppError;
use crate::store::documents::Document;
use crate::store::prelude::*;
use crate::store::Db;

const TOKEN_PREFIX: &str = "cv_";

#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: UserId,
    pub name: String,
    pub role: Role,
    pub client_addr: Option<String>,
    /// Which patients and categories this caller may see, loaded with the principal.
    pub scope: AccessScope,
    /// For a JWT caller, what its SMART scopes allow (narrowing the role, never widening).
    pub smart: Option<SmartScopes>,
}

/// The patients and categories a principal may see, as of the request.
#[derive(Debug, Clone, Default)]
pub struct AccessScope {
    /// The caller's care list; `None` = every patient (`records`, `legal`).
    pub care: Option<BTreeSet<PatientId>>,
    /// Active break-the-glass accesses: patient → access id.
    pub break_glass: BTreeMap<PatientId, String>,
    /// Sensitive categories granted to the caller.
    pub granted: BTreeSet<Category>,
    /// The archive's sensitive categories.
    pub sensitive: Arc<BTreeSet<Category>>,
}

impl AccessScope {
    /// Both sides are [`Category`] values, normalised by their one parser: `HIV` on a cover
    /// sheet is the sensitive category `hiv`.
    pub fn may_see_category(&self, category: &Category) -> bool {
        !self.sensitive.contains(category) || self.granted.contains(category)
    }

    /// Sensitive categories the caller has no grant for: excluded from every search.
    pub fn hidden_categories(&self) -> Vec<String> {
        self.sensitive
            .difference(&self.granted)
            .map(|category| category.as_str().to_string())
            .collect()
    }

    /// The patients the caller may see at all; `None` = every patient.
    pub fn visible_patients(&self) -> Option<Vec<PatientId>> {
        self.care.as_ref().map(|care| {
            let mut patients: BTreeSet<PatientId> = care.clone();
            patients.extend(self.break_glass.keys().copied());
            patients.into_iter().collect()
        })
    }

    /// The break-the-glass access through which the caller sees `patient`, if that is the
    /// only way they see it.
    pub fn break_glass_for(&self, patient: PatientId) -> Option<&str> {
        match &self.care {
            Some(care) if !care.contains(&patient) => {
                self.break_glass.get(&patient).map(String::as_str)
            }
            _ => None,
        }
    }
}

pub use crate::domain::Action;

/// What a decision is about, when it is about a particular record.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub patient_id: PatientId,
    pub document_id: Option<DocumentId>,
    pub category: &'a Category,
    /// The document waits in the QA queue, or was entered in error and corrected: only
    /// `records` sees it.
    pub records_only: bool,
}

impl Resource<'static> {
    /// A patient as such (their chart, their name): in the general category, for anyone
    /// who may see the patient.
    pub fn patient(patient_id: PatientId) -> Resource<'static> {
        static GENERAL: std::sync::LazyLock<Category> = std::sync::LazyLock::new(Category::general);
        Resource {
            patient_id,
            document_id: None,
            category: &GENERAL,
            records_only: false,
        }
    }
}

/// What the policy looks at in a document (here, beside the policy, not in the store).
impl Document {
    /// Seen by `records` alone: a document in the QA queue, or flagged for it at upload in
    /// any state (accepted, processing, failed), and a version entered in error.
    pub fn records_only(&self) -> bool {
        self.status.records_only() || self.qa_reason.is_some()
    }

    /// What a policy decision about this document looks at.
    pub fn resource(&self) -> Resource<'_> {
        Resource {
            patient_id: self.patient_id,
            document_id: Some(self.id),
            category: &self.category,
            records_only: self.records_only(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed only through an active break-the-glass access: flagged in the audit.
    AllowBreakGlass,
    /// The role lacks the action: 403.
    Forbidden,
    /// Outside the caller's scope: 404, indistinguishable from an unknown id.
    NotFound,
}

impl Decision {
    pub fn is_allow(self) -> bool {
        matches!(self, Decision::Allow | Decision::AllowBreakGlass)
    }
}

/// The one policy function: role, then patient scope, then category.
///
/// - The role must carry the action (else 403).
/// - About a particular record: a sensitive category needs an explicit grant, whatever the
///   role and never through break-the-glass; `records` and `legal` see every patient; a
///   clinician sees the patients on their care list, and others only through an active
///   break-the-glass access; anything else is 404.
pub fn decide(principal: &Principal, action: Action, resource: Option<&Resource<'_>>) -> Decision {
    let role_allows = match action {
        Action::Ingest
        | Action::DeleteDocument
        | Action::ReviewQa
        | Action::CorrectDocument
        | Action::RunRetention => matches!(principal.role, Role::Records),
        Action::ManageHolds | Action::ManageReleases => matches!(principal.role, Role::Legal),
        // What was destroyed, and under which rule, is no secret from those who answer for it.
        Action::ReadCertificates => {
            matches!(principal.role, Role::Records | Role::Legal | Role::Auditor)
        }
        Action::ManageKeys | Action::GrantCategory => matches!(principal.role, Role::Admin),
        Action::ManageCare => matches!(principal.role, Role::Records | Role::Admin),
        Action::BreakGlass => matches!(principal.role, Role::Clinician),
        Action::ReviewBreakGlass => matches!(principal.role, Role::Auditor),
        // The audit and the accounting are the auditor's alone: nobody reviews themselves.
        Action::QueryAudit | Action::AccountDisclosures => matches!(principal.role, Role::Auditor),
        // Those who release records (HIM, release of information) log their releases; the
        // auditor (privacy office) logs disclosures reported to it.
        Action::RecordDisclosure => {
            matches!(principal.role, Role::Records | Role::Legal | Role::Auditor)
        }
        Action::Search | Action::ReadDocument | Action::LookupPatient => matches!(
            principal.role,
            Role::Records | Role::Clinician | Role::Legal
        ),
    };
    if !role_allows || principal.smart.as_ref().is_some_and(|s| !s.allows(action)) {
        return Decision::Forbidden;
    }
    let Some(resource) = resource else {
        return Decision::Allow;
    };
    if resource.records_only && principal.role != Role::Records {
        return Decision::NotFound;
    }
    if !principal.scope.may_see_category(resource.category) {
        return Decision::NotFound;
    }
    match &principal.scope.care {
        None => Decision::Allow,
        Some(care) if care.contains(&resource.patient_id) => Decision::Allow,
        Some(_)
            if principal
                .scope
                .break_glass
                .contains_key(&resource.patient_id) =>
        {
            Decision::AllowBreakGlass
        }
        Some(_) => Decision::NotFound,
    }
}

/// A new random token: shown once, stored only hashed.
pub fn generate_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for a user; returns (token id, token).
pub async fn issue_token(
    db: &Db,
    user: UserId,
    ttl_days: u32,
) -> crate::store::StoreResult<(String, String)> {
    let (token, hash) = generate_token();
    let token_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let expires_at = Utc::now() + Duration::days(i64::from(ttl_days));
    db.insert_token(&token_id, user, &hash, expires_at).await?;
    Ok((token_id, token))
}

/// The principal a bearer token stands for: an API token (`cv_…`) looked up by its hash,
/// or else an OIDC/SMART JWT checked by `jwt` (when configured). Every failure is a 401.
pub async fn principal_from_token(
    archive: &Archive,
    jwt: Option<&JwtVerifier>,
    token: &str,
    client_addr: Option<String>,
) -> Result<Principal, AppError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return jwt_principal(archive, jwt, token, client_addr).await;
    }
    if token.len() >= 100 {
        return Err(AppError::unauthorized(
            "the token is unknown, expired or revoked",
        ));
    }
    let invalid = || AppError::unauthorized("the token is unknown, expired or revoked");
    let owner = archive
        .db
        .token_owner(&hash_token(token))
        .await?
        .ok_or_else(invalid)?;
    let expired = DateTime::parse_from_rfc3339(&owner.expires_at)
        .map(|t| t.with_timezone(&Utc) <= Utc::now())
        .unwrap_or(true);
    if owner.revoked || expired || owner.disabled {
        return Err(invalid());
    }
    let scope = load_scope(archive, owner.user_id, owner.role).await?;
    Ok(Principal {
        user_id: owner.user_id,
        name: owner.name,
        role: owner.role,
        client_addr,
        scope,
        smart: None,
    })
}

/// The principal of a user acting without a token: a scanner intake configured to act as
/// `name` (see `ingest::intake`). A missing or disabled user is an error naming the user.
pub async fn principal_of_user(archive: &Archive, name: &str) -> Result<Principal, AppError> {
    let (user_id, role, disabled) = archive
        .db
        .user_by_name(name)
        .await?
        .ok_or_else(|| AppError::invalid(format!("there is no user '{name}'")))?;
    if disabled {
        return Err(AppError::invalid(format!("the user '{name}' is disabled")));
    }
    let scope = load_scope(archive, user_id, role).await?;
    Ok(Principal {
        user_id,
        name: name.to_string(),
        role,
        client_addr: None,
        scope,
        smart: None,
    })
}

/// The patient a SMART `patient` claim names by MRN: `system|MRN` under the issuer with
/// that FHIR identifier system, or a bare MRN under `auth.smart_patient_system`. 401 when
/// it names no patient of the archive (the claim's value is not repeated).
async fn smart_patient(state: &Archive, claim: &str) -> Result<PatientId, AppError> {
    let token = match (claim.contains('|'), &state.config.auth.smart_patient_system) {
        (true, _) => claim.to_string(),
        (false, Some(system)) => format!("{system}|{claim}"),
        (false, None) => {
            return Err(AppError::unauthorized(
                "the patient claim is not a chartvault patient id (auth.smart_patient_system \
                 is unset)",
            ))
        }
    };
    let patient = match state.config.patients.mrn_of_fhir_token(&token) {
        Some(mrn) => state.db.patient_by_mrn(&mrn).await?,
        None => None,
    };
    patient
        .map(|p| p.id)
        .ok_or_else(|| AppError::unauthorized("the patient claim names no patient of this archive"))
}

/// A principal from an OIDC/SMART JWT (see [`crate::access::jwt`]): the user it names, with that
/// user's role, narrowed by its scopes (and to one patient under a `patient/` scope).
async fn jwt_principal(
    state: &Archive,
    jwt: Option<&JwtVerifier>,
    token: &str,
    client_addr: Option<String>,
) -> Result<Principal, AppError> {
    let Some(verifier) = jwt else {
        return Err(AppError::unauthorized(
            "the token is not a chartvault API token, and OIDC tokens are not configured",
        ));
    };
    let claims = verifier
        .verify(token)
        .await
        .map_err(AppError::unauthorized)?;
    let (user_id, role, disabled) = match state.db.user_by_name(&claims.user).await? {
        Some(user) => user,
        None => provision(state, &claims, client_addr.as_deref()).await?,
    };
    if disabled {
        return Err(AppError::unauthorized("the token's user is disabled"));
    }
    let mut claims = claims;
    if let Some(claim) = claims.scopes.patient_mrn.take() {
        claims.scopes.patient = Some(smart_patient(state, &claim).await?);
    }
    let mut scope = load_scope(state, user_id, role).await?;
    if let Some(patient) = claims.scopes.patient {
        let allowed = scope
            .care
            .as_ref()
            .is_none_or(|care| care.contains(&patient));
        scope.care = Some(if allowed {
            BTreeSet::from([patient])
        } else {
            BTreeSet::new()
        });
        scope.break_glass.retain(|p, _| *p == patient);
    }
    Ok(Principal {
        user_id,
        name: claims.user,
        role,
        client_addr,
        scope,
        smart: Some(claims.scopes),
    })
}

/// A user's first sign-in with the hospital's identity provider: created with the role its
/// role claim maps to (audited), or refused when nothing maps. An existing user keeps the
/// role chartvault gave them.
async fn provision(
    state: &Archive,
    claims: &crate::access::jwt::TokenClaims,
    client_addr: Option<&str>,
) -> Result<(UserId, Role, bool), AppError> {
    let Some(role) = claims.role else {
        return Err(AppError::unauthorized(
            "the token's user is not a chartvault user, and its role claim maps to no role",
        ));
    };
    let name = claims.user.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(AppError::unauthorized(
            "the token's user name must be 1 to 64 characters",
        ));
    }
    let user = match state.db.create_user(name, role).await {
        Ok(user) => user,
        // Signed in twice at once: the other request created them.
        Err(error) => match state.db.user_by_name(name).await? {
            Some(existing) => return Ok(existing),
            None => return Err(AppError::internal(error)),
        },
    };
    let mut entry = crate::store::audit_log::AuditEntry::administration(
        "user-add",
        serde_json::json!({
            "user": user, "name": name, "role": role.as_str(), "via": "oidc first sign-in",
        }),
    );
    entry.client_addr = client_addr.map(str::to_string);
    state.db.append_audit(&entry).await?;
    tracing::info!(user = %user, role = role.as_str(), "provisioned a user at their first OIDC sign-in");
    Ok((user, role, false))
}

/// The caller's care list, break-the-glass accesses and category grants, as of now.
pub async fn load_scope(
    state: &Archive,
    user: UserId,
    role: Role,
) -> Result<AccessScope, AppError> {
    let now = Utc::now();
    let care = match role {
        Role::Clinician => Some(
            state
                .db
                .care_patients(user, now.date_naive())
                .await?
                .into_iter()
                .collect(),
        ),
        Role::Records | Role::Legal => None,
        // No patient at all: these roles read no documents.
        Role::Admin | Role::Auditor => Some(BTreeSet::new()),
    };
    let break_glass = match role {
        Role::Clinician => state
            .db
            .active_break_glass(user, now)
            .await?
            .into_iter()
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(AccessScope {
        care,
        break_glass,
        granted: state.db.category_grants(user).await?.into_iter().collect(),
        sensitive: state.sensitive_categories.clone(),
    })
}

/// The purpose of use recorded with an access (HL7 v3 PurposeOfUse codes): emergency
/// treatment under break-the-glass, else what the role is for.
pub fn purpose_of_use(role: Role, break_glass: bool) -> &'static str {
    match role {
        _ if break_glass => "ETREAT",
        Role::Clinician => "TREAT",
        Role::Records | Role::Auditor => "HOPERAT",
        Role::Legal => "LEGAL",
        Role::Admin => "HSYSADMIN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: UserId::new_random(),
            name: "t".into(),
            role,
            client_addr: None,
            scope: AccessScope::default(),
            smart: None,
        }
    }

    #[test]
    fn only_records_may_ingest_and_admin_and_auditor_may_not_read() {
        let expectations = [
            (Role::Records, Action::Ingest, Decision::Allow),
            (Role::Clinician, Action::Ingest, Decision::Forbidden),
            (Role::Legal, Action::Ingest, Decision::Forbidden),
            (Role::Admin, Action::Ingest, Decision::Forbidden),
            (Role::Auditor, Action::Ingest, Decision::Forbidden),
            (Role::Records, Action::ReadDocument, Decision::Allow),
            (Role::Clinician, Action::ReadDocument, Decision::Allow),
            (Role::Legal, Action::Search, Decision::Allow),
            (Role::Admin, Action::ReadDocument, Decision::Forbidden),
            (Role::Admin, Action::Search, Decision::Forbidden),
            (Role::Auditor, Action::ReadDocument, Decision::Forbidden),
            (Role::Auditor, Action::LookupPatient, Decision::Forbidden),
            (Role::Auditor, Action::QueryAudit, Decision::Allow),
            (Role::Auditor, Action::AccountDisclosures, Decision::Allow),
            (Role::Auditor, Action::RecordDisclosure, Decision::Allow),
            (Role::Records, Action::QueryAudit, Decision::Forbidden),
            (Role::Admin, Action::QueryAudit, Decision::Forbidden),
            (Role::Legal, Action::AccountDisclosures, Decision::Forbidden),
            (Role::Legal, Action::RecordDisclosure, Decision::Allow),
            (Role::Records, Action::RecordDisclosure, Decision::Allow),
            (
                Role::Clinician,
                Action::RecordDisclosure,
                Decision::Forbidden,
            ),
            (Role::Admin, Action::RecordDisclosure, Decision::Forbidden),
        ];
        for (role, action, expected) in expectations {
            assert_eq!(
                decide(&principal(role), action, None),
                expected,
                "{role:?} {action:?}"
            );
        }
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, hash_a) = generate_token();
        let (b, _) = generate_token();
        assert_ne!(a, b);
        assert!(a.len() > 40);
        assert_eq!(hash_token(&a), hash_a);
        assert!(!hash_a.contains(&a));
    }
}
