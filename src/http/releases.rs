//! Release requests and their productions (`legal`); see [`crate::legal::release`].
//!
//! - `POST /releases`, `GET /releases` (soonest due first), `GET /releases/{id}` (with the
//!   checklist over the documents it covers, its attachments, exclusions, redactions and
//!   productions).
//! - `POST /releases/{id}/attachments` (multipart `kind` + `file`): the subpoena scan, a
//!   court order, an authorisation; stored encrypted. An authorising kind unblocks the
//!   checklist items that need it.
//! - `POST /releases/{id}/exclusions` (and `DELETE` to include documents again),
//!   `POST /releases/{id}/redactions` (and `DELETE /releases/{id}/redactions/{rid}`),
//!   `POST /releases/{id}/redaction-proposals` (regions from OCR word boxes that match a
//!   pattern or a phrase; `apply` records them).
//! - `POST /releases/{id}/productions` builds the PDF; `GET .../productions/{pid}` downloads
//!   it, `GET .../productions/{pid}/manifest` returns its manifest.
//! - `POST /releases/{id}/extension`: a patient-access request's one 30-day extension.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal};
use crate::domain::{
    parse_slug, AttachmentId, DocumentId, LegalBasis, Outcome, ProductionId, ReleaseId,
};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::legal::release::checklist::{checklist, ChecklistItem};
use crate::legal::release::due_on;
use crate::legal::release::production::{self, ProductionRequest};
use crate::legal::release::scope::documents_in_scope;
use crate::store::prelude::*;
use crate::store::releases::{
    Attachment, Exclusion, NewRelease, Party, Production, Redaction, Region, Release,
    ReleaseDetails,
};
use crate::store::vault::ObjectRef;

/// Largest supporting document (a scanned subpoena or order).
const MAX_ATTACHMENT_BYTES: usize = 50 * 1024 * 1024;
/// An attachment's `kind` is a short name.
const MAX_KIND_BYTES: u64 = 256;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    legal_basis: String,
    requester: Party,
    recipient: Party,
    matter: Option<String>,
    description: Option<String>,
    satisfactory_assurances: Option<String>,
    received_on: NaiveDate,
    due_on: Option<NaiveDate>,
    /// MRNs of the patients whose records are requested.
    patients: Vec<String>,
    /// Their issuer (default: the archive's default issuer).
    #[serde(default)]
    issuer: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    #[serde(default)]
    document_types: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    bates_prefix: Option<String>,
}

fn optional_text(name: &str, value: Option<String>, max: usize) -> AppResult<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max => Err(AppError::invalid(format!(
            "{name} must be at most {max} characters"
        ))),
        Some(v) => Ok(Some(v.to_string())),
    }
}

fn party(name: &str, p: Party) -> AppResult<Party> {
    let full = optional_text(&format!("{name}.name"), Some(p.name), 300)?
        .ok_or_else(|| AppError::invalid(format!("{name}.name must not be empty")))?;
    Ok(Party {
        name: full,
        organization: optional_text(&format!("{name}.organization"), p.organization, 300)?,
        address: optional_text(&format!("{name}.address"), p.address, 1000)?,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    #[serde(flatten)]
    release: Release,
    /// `due`, `overdue` or `produced`.
    status: &'static str,
    checklist: Vec<ChecklistItem>,
    document_ids: Vec<DocumentId>,
    attachments: Vec<Attachment>,
    exclusions: Vec<Exclusion>,
    redactions: Vec<Redaction>,
    productions: Vec<Production>,
}

async fn view(state: &AppState, principal: &Principal, release: Release) -> AppResult<ReleaseView> {
    let documents = documents_in_scope(state, principal, &release).await?;
    let attachments = state.db.attachments(release.id).await?;
    let kinds: Vec<String> = attachments.iter().map(|a| a.kind.clone()).collect();
    let checklist = checklist(&state.config.releases, &release, &kinds, &documents);
    let productions = state.db.productions(release.id).await?;
    let status = if !productions.is_empty() {
        "produced"
    } else if release.due_on < chrono::Utc::now().date_naive() {
        "overdue"
    } else {
        "due"
    };
    Ok(ReleaseView {
        status,
        checklist,
        document_ids: documents.iter().map(|d| d.id).collect(),
        attachments,
        exclusions: state.db.exclusions(release.id).await?,
        redactions: state.db.redactions(release.id).await?,
        productions,
        release,
    })
}

/// The release `raw_id`; an unknown one is audited and 404.
async fn release_of(state: &AppState, principal: &Principal, raw_id: &str) -> AppResult<Release> {
    let release = match raw_id.parse::<ReleaseId>() {
        Ok(id) => state.db.release(id).await?,
        Err(_) => None,
    };
    match release {
        Some(release) => Ok(release),
        None => {
            AuditEvent::new(principal, Action::ManageReleases)
                .outcome(Outcome::NotFound)
                .detail(json!({ "release": "unknown" }))
                .record(&state.db)
                .await?;
            Err(AppError::not_found())
        }
    }
}

/// Audits an act on a release request, naming every patient of the request (the first as
/// the entry's patient, all of them in `detail.patients`, which the audit query and each
/// patient's trail match).
async fn audit_release(
    state: &AppState,
    principal: &Principal,
    release: &Release,
    mut detail: serde_json::Value,
) -> AppResult<()> {
    if let Some(map) = detail.as_object_mut() {
        map.insert("patients".to_string(), json!(release.patient_ids));
    }
    AuditEvent::new(principal, Action::ManageReleases)
        .patient(release.patient_ids.first().copied())
        .detail(detail)
        .record(&state.db)
        .await
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create, list, get_one, attach, exclude, include, redact, unredact, propose, produce, download,
    manifest, extend
))]
pub(super) struct ApiDoc;

/// The form of an attachment (`multipart/form-data`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AttachmentForm {
    /// The request, an authorisation or a subpoena: PDF, TIFF, PNG or JPEG.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// What it is (`request`, `authorization`, `subpoena`, ...).
    kind: Option<String>,
}

#[utoipa::path(post, path = "/releases", tag = "releases", request_body = ReleaseBody,
    responses((status = 201, description = "The release request (`Location`)", body = ReleaseView)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<ReleaseBody>,
) -> AppResult<super::state::Created<ReleaseView>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let body = body.read()?;
    let legal_basis: LegalBasis = body.legal_basis.parse().map_err(AppError::invalid)?;
    if body.patients.is_empty() || body.patients.len() > 100 {
        return Err(AppError::invalid("patients must name 1 to 100 MRNs"));
    }
    if let (Some(from), Some(to)) = (body.from, body.to) {
        if from > to {
            return Err(AppError::invalid("from must not be after to"));
        }
    }
    let config = &state.config.releases;
    let due_on = due_on(config, legal_basis, body.received_on, body.due_on);
    if due_on < body.received_on {
        return Err(AppError::invalid("due_on must not be before received_on"));
    }
    let bates_prefix = match &body.bates_prefix {
        Some(raw) => crate::config::parse_bates_prefix(raw).map_err(AppError::invalid)?,
        None => config.bates_prefix.clone(),
    };
    let slugs = |name: &str, list: &[String]| -> AppResult<Vec<String>> {
        list.iter()
            .map(|s| parse_slug(name, s).map_err(AppError::invalid))
            .collect()
    };
    let document_types = slugs("document_types", &body.document_types)?;
    let categories = slugs("categories", &body.categories)?;
    let mut patients = Vec::with_capacity(body.patients.len());
    for raw in &body.patients {
        let patient = crate::access::lookup::patient_by_mrn(
            &state,
            &principal,
            Action::ManageReleases,
            (raw, body.issuer.as_deref()),
            Some(json!({ "release": "create", "unknown_mrn": true })),
        )
        .await?;
        patients.push(patient.id);
    }
    let details = ReleaseDetails {
        requester: party("requester", body.requester)?,
        recipient: party("recipient", body.recipient)?,
        matter: optional_text("matter", body.matter, 500)?,
        description: optional_text("description", body.description, 4000)?,
        satisfactory_assurances: optional_text(
            "satisfactory_assurances",
            body.satisfactory_assurances,
            4000,
        )?,
    };
    AuditEvent::new(&principal, Action::ManageReleases)
        .patient(patients.first().copied())
        .detail(json!({ "release": "create", "legal_basis": legal_basis, "patients": patients }))
        .record(&state.db)
        .await?;
    let id = state
        .db
        .insert_release(&NewRelease {
            legal_basis,
            details,
            received_on: body.received_on,
            due_on,
            date_from: body.from,
            date_to: body.to,
            document_types,
            categories,
            authorizations: Vec::new(),
            bates_prefix,
            patients,
            created_by: principal.user_id,
        })
        .await?;
    let release = state
        .db
        .release(id)
        .await?
        .ok_or_else(AppError::not_found)?;
    let location = state.link(&format!("/api/v1/releases/{}", release.id));
    Ok(super::state::Created(
        location,
        view(&state, &principal, release).await?,
    ))
}

#[utoipa::path(get, path = "/releases", tag = "releases",
    responses((status = 200, description = "Every release request, with its due date", body = ReleaseList)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> AppResult<Json<ReleaseList>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let today = chrono::Utc::now().date_naive();
    let mut out = Vec::new();
    for release in state.db.releases().await? {
        let produced = !state.db.productions(release.id).await?.is_empty();
        out.push(ListedRelease {
            id: release.id,
            legal_basis: release.legal_basis,
            received_on: release.received_on,
            due_on: release.due_on,
            extended: release.extended_at.is_some(),
            status: if produced {
                "produced"
            } else if release.due_on < today {
                "overdue"
            } else {
                "due"
            },
            patient_ids: release.patient_ids,
        });
    }
    AuditEvent::new(&principal, Action::ManageReleases)
        .detail(json!({ "release": "list", "releases": out.len() }))
        .record(&state.db)
        .await?;
    Ok(Json(ReleaseList { releases: out }))
}

/// Every release request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReleaseList {
    releases: Vec<ListedRelease>,
}

/// A release request as the list shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListedRelease {
    id: crate::domain::ReleaseId,
    legal_basis: LegalBasis,
    received_on: chrono::NaiveDate,
    due_on: chrono::NaiveDate,
    extended: bool,
    /// `due`, `overdue` or `produced`.
    status: &'static str,
    patient_ids: Vec<crate::domain::PatientId>,
}

#[utoipa::path(get, path = "/releases/{id}", tag = "releases",
    responses((status = 200, description = "The release request", body = ReleaseView)))]
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
) -> AppResult<Json<ReleaseView>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let release = release_of(&state, &principal, &raw_id).await?;
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "read", "id": release.id }),
    )
    .await?;
    Ok(Json(view(&state, &principal, release).await?))
}

#[utoipa::path(post, path = "/releases/{id}/attachments", tag = "releases",
    request_body(content = AttachmentForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Attached (encrypted)", body = Attachment)))]
pub async fn attach(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    request: axum::extract::Request,
) -> AppResult<super::state::Created<Attachment>> {
    // Authorised before a byte of the body is read.
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let release = release_of(&state, &principal, &raw_id).await?;
    use super::multipart::{read_chunk, BoundedMultipart};
    let mut multipart = BoundedMultipart::from_request(request, &state)
        .await
        .map_err(|_| {
            AppError::invalid(
                "send the attachment as multipart/form-data with fields kind and file",
            )
        })?;
    let meter = multipart.meter();
    let config = &state.config.releases;
    let mut kind = None;
    let mut file: Option<(Vec<u8>, String)> = None;
    let field_limit = |name: Option<&str>| match name {
        Some("kind") => MAX_KIND_BYTES,
        Some("file") => MAX_ATTACHMENT_BYTES as u64,
        _ => 0,
    };
    let malformed = || AppError::invalid("malformed multipart body");
    while let Some(mut field) = multipart.next_field(field_limit, malformed).await? {
        match field.name() {
            Some("kind") => {
                let mut text = Vec::new();
                let malformed_kind = || AppError::invalid("malformed kind field");
                while let Some(chunk) = read_chunk(&mut field, &meter, malformed_kind).await? {
                    text.extend_from_slice(&chunk);
                }
                if text.len() as u64 > MAX_KIND_BYTES {
                    return Err(AppError::new(
                        ErrorCode::PayloadTooLarge,
                        "the kind field is larger than this route accepts",
                    ));
                }
                let text = String::from_utf8(text)
                    .map_err(|_| AppError::invalid("the kind field is not UTF-8 text"))?;
                kind = Some(text.trim().to_string());
            }
            Some("file") => {
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let mut bytes = Vec::new();
                let malformed_file = || AppError::invalid("malformed file field");
                while let Some(chunk) = read_chunk(&mut field, &meter, malformed_file).await? {
                    if bytes.len() + chunk.len() > MAX_ATTACHMENT_BYTES {
                        return Err(AppError::new(
                            ErrorCode::PayloadTooLarge,
                            format!(
                                "an attachment may be at most {} MiB",
                                MAX_ATTACHMENT_BYTES / (1024 * 1024)
                            ),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((bytes, content_type));
            }
            _ => {
                return Err(AppError::invalid(
                    "unexpected multipart field: only kind and file",
                ))
            }
        }
    }
    let kind = kind.ok_or_else(|| AppError::invalid("the kind field is missing"))?;
    if !config.known_kind(&kind) {
        return Err(AppError::invalid(format!(
            "kind must be one of: {}, {} (or an authorization named in \
             releases.category_requirements)",
            crate::config::AUTHORIZING_KINDS.join(", "),
            crate::config::OTHER_KINDS.join(", ")
        )));
    }
    let (bytes, content_type) =
        file.ok_or_else(|| AppError::invalid("the file field is missing"))?;
    if bytes.is_empty() {
        return Err(AppError::invalid("the attached file is empty"));
    }
    if !matches!(
        content_type.as_str(),
        "application/pdf" | "image/tiff" | "image/png" | "image/jpeg"
    ) {
        return Err(AppError::new(
            ErrorCode::UnsupportedMediaType,
            "an attachment is a PDF, TIFF, PNG or JPEG scan",
        ));
    }
    let id = AttachmentId::new_random();
    let attachment = Attachment {
        id,
        kind: kind.clone(),
        content_type,
        sha256: hex::encode(Sha256::digest(&bytes)),
        size_bytes: bytes.len() as i64,
        created_by: principal.user_id.to_string(),
        created_at: crate::store::now(),
    };
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "attach", "id": release.id, "kind": kind, "sha256": attachment.sha256 }),
    )
    .await?;
    state.vault.put(ObjectRef::Attachment(id), bytes).await?;
    state
        .db
        .insert_attachment(release.id, &attachment, config.authorizes(&kind))
        .await?;
    // The attachment is listed in its release.
    Ok(super::state::Created(
        state.link(&format!("/api/v1/releases/{}", release.id)),
        attachment,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExclusionBody {
    document_ids: Vec<String>,
    reason: String,
}

#[utoipa::path(post, path = "/releases/{id}/exclusions", tag = "releases", request_body = ExclusionBody,
    responses((status = 200, description = "The release with the document left out", body = ReleaseView)))]
pub async fn exclude(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<ExclusionBody>,
) -> AppResult<Json<ReleaseView>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let body = body.read()?;
    let release = release_of(&state, &principal, &raw_id).await?;
    let reason = optional_text("reason", Some(body.reason), 1000)?
        .ok_or_else(|| AppError::invalid("reason must not be empty"))?;
    let ids = super::holds::visible_documents(&state, &principal, &body.document_ids).await?;
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "exclude", "id": release.id, "documents": ids }),
    )
    .await?;
    state
        .db
        .insert_exclusions(release.id, &ids, &reason, principal.user_id)
        .await?;
    Ok(Json(view(&state, &principal, release).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncludeBody {
    document_ids: Vec<String>,
}

/// `DELETE /releases/{id}/exclusions` with `{document_ids}`: the documents are covered again.
#[utoipa::path(delete, path = "/releases/{id}/exclusions", tag = "releases", request_body = IncludeBody,
    responses((status = 200, description = "The release with the document back in", body = ReleaseView)))]
pub async fn include(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<IncludeBody>,
) -> AppResult<Json<ReleaseView>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let body = body.read()?;
    let release = release_of(&state, &principal, &raw_id).await?;
    let ids = super::holds::visible_documents(&state, &principal, &body.document_ids).await?;
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "include", "id": release.id, "documents": ids }),
    )
    .await?;
    state.db.delete_exclusions(release.id, &ids).await?;
    Ok(Json(view(&state, &principal, release).await?))
}

/// `DELETE /releases/{id}/redactions/{rid}`: a wrong or too wide redaction is dropped
/// before the next production (productions made already keep theirs).
#[utoipa::path(delete, path = "/releases/{id}/redactions/{rid}", tag = "releases",
    responses((status = 200, description = "The release without the redaction", body = ReleaseView)))]
pub async fn unredact(
    State(state): State<AppState>,
    principal: Principal,
    Path((raw_id, raw_rid)): Path<(String, String)>,
) -> AppResult<Json<ReleaseView>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let release = release_of(&state, &principal, &raw_id).await?;
    let known = state
        .db
        .redactions(release.id)
        .await?
        .iter()
        .any(|r| r.id == raw_rid);
    if !known {
        AuditEvent::new(&principal, Action::ManageReleases)
            .outcome(Outcome::NotFound)
            .patient(release.patient_ids.first().copied())
            .detail(json!({ "redaction": "unknown", "patients": release.patient_ids }))
            .record(&state.db)
            .await?;
        return Err(AppError::not_found());
    }
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "unredact", "id": release.id, "redaction": raw_rid }),
    )
    .await?;
    state.db.delete_redaction(release.id, &raw_rid).await?;
    Ok(Json(view(&state, &principal, release).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactionBody {
    document_id: String,
    page: u32,
    #[serde(default)]
    regions: Vec<Region>,
    #[serde(default)]
    whole_page: bool,
}

/// The document of a redaction, which must be one the release covers, and its page size.
async fn page_of_release(
    state: &AppState,
    principal: &Principal,
    release: &Release,
    raw_doc: &str,
    page: u32,
) -> AppResult<(DocumentId, u32, u32)> {
    let doc =
        crate::access::lookup::document_in_scope(state, principal, Action::ReadDocument, raw_doc)
            .await?;
    let covered = documents_in_scope(state, principal, release)
        .await?
        .iter()
        .any(|d| d.id == doc.id);
    if !covered {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the release does not cover this document (or excludes it)",
        ));
    }
    let row = state
        .db
        .pages(doc.id)
        .await?
        .into_iter()
        .find(|p| p.page == page)
        .ok_or_else(|| AppError::invalid(format!("the document has no page {page}")))?;
    Ok((doc.id, row.width, row.height))
}

#[utoipa::path(post, path = "/releases/{id}/redactions", tag = "releases", request_body = RedactionBody,
    responses((status = 201, description = "The redaction", body = RedactionCreated)))]
pub async fn redact(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<RedactionBody>,
) -> AppResult<super::state::Created<RedactionCreated>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let body = body.read()?;
    let release = release_of(&state, &principal, &raw_id).await?;
    let (doc, width, height) =
        page_of_release(&state, &principal, &release, &body.document_id, body.page).await?;
    if body.regions.is_empty() && !body.whole_page {
        return Err(AppError::invalid("give regions, or whole_page: true"));
    }
    if body.regions.len() > 1000 {
        return Err(AppError::invalid("at most 1000 regions per request"));
    }
    for r in &body.regions {
        let inside = r.width > 0
            && r.height > 0
            && r.left
                .checked_add(r.width)
                .is_some_and(|right| right <= width)
            && r.top
                .checked_add(r.height)
                .is_some_and(|bottom| bottom <= height);
        if !inside {
            return Err(AppError::invalid(format!(
                "every region must be a non-empty rectangle inside the {width}x{height} page image"
            )));
        }
    }
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "redact", "id": release.id, "document": doc, "page": body.page,
                "regions": body.regions.len(), "whole_page": body.whole_page }),
    )
    .await?;
    let id = state
        .db
        .insert_redaction(
            release.id,
            doc,
            body.page,
            &body.regions,
            body.whole_page,
            principal.user_id,
        )
        .await?;
    Ok(super::state::Created(
        state.link(&format!("/api/v1/releases/{}/redactions/{id}", release.id)),
        RedactionCreated { id },
    ))
}

/// A redaction recorded.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RedactionCreated {
    id: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalBody {
    /// A named pattern: `ssn`, `phone`, `email`, `date`.
    pattern: Option<String>,
    /// A word or phrase (case-insensitive, whole words).
    text: Option<String>,
    /// Record the proposals as redactions of the release.
    #[serde(default)]
    apply: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Proposal {
    document_id: DocumentId,
    page: u32,
    regions: Vec<Region>,
    /// How many words each proposal covers (never the words themselves).
    words: usize,
}

/// Pixels around a word box that a proposed region adds (ascenders, descenders, the edge
/// of a stroke the OCR box missed).
const PROPOSAL_MARGIN: u32 = 6;

#[utoipa::path(post, path = "/releases/{id}/redaction-proposals", tag = "releases", request_body = ProposalBody,
    responses((status = 200, description = "Regions matching the patterns, page by page (recorded when `apply`)", body = Proposals)))]
pub async fn propose(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<ProposalBody>,
) -> AppResult<Json<Proposals>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let body = body.read()?;
    let release = release_of(&state, &principal, &raw_id).await?;
    let matcher = match (&body.pattern, &body.text) {
        (Some(pattern), None) => crate::legal::release::redaction::Matcher::pattern(pattern),
        (None, Some(text)) => crate::legal::release::redaction::Matcher::phrase(text),
        _ => Err("give exactly one of pattern and text".into()),
    }
    .map_err(AppError::invalid)?;
    let documents = documents_in_scope(&state, &principal, &release).await?;
    let mut proposals = Vec::new();
    for doc in &documents {
        for row in state.db.pages(doc.id).await? {
            let words_json = state
                .vault
                .get(ObjectRef::PageWords(doc.id, row.page))
                .await?;
            let words: Vec<chartvault_ocr::OcrWord> =
                serde_json::from_slice(&words_json).map_err(AppError::internal)?;
            let hits = matcher.find(&words);
            if hits.is_empty() {
                continue;
            }
            let regions: Vec<Region> = hits
                .iter()
                .map(|&i| {
                    let w = &words[i];
                    let left = w.left.saturating_sub(PROPOSAL_MARGIN);
                    let top = w.top.saturating_sub(PROPOSAL_MARGIN);
                    let right = (w.left + w.width + PROPOSAL_MARGIN).min(row.width);
                    let bottom = (w.top + w.height + PROPOSAL_MARGIN).min(row.height);
                    Region {
                        left,
                        top,
                        width: right.saturating_sub(left).max(1),
                        height: bottom.saturating_sub(top).max(1),
                    }
                })
                .collect();
            proposals.push(Proposal {
                document_id: doc.id,
                page: row.page,
                words: hits.len(),
                regions,
            });
        }
    }
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "propose-redactions", "id": release.id, "apply": body.apply,
                "pages": proposals.len() }),
    )
    .await?;
    if body.apply {
        for p in &proposals {
            state
                .db
                .insert_redaction(
                    release.id,
                    p.document_id,
                    p.page,
                    &p.regions,
                    false,
                    principal.user_id,
                )
                .await?;
        }
    }
    Ok(Json(Proposals {
        proposals,
        applied: body.apply,
    }))
}

/// Redaction proposals, page by page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Proposals {
    proposals: Vec<Proposal>,
    /// Whether they were recorded as redactions.
    applied: bool,
}

#[utoipa::path(post, path = "/releases/{id}/productions", tag = "releases", request_body = ProductionRequest,
    responses(
        (status = 201, description = "The Bates-numbered production (`Location`)", body = production::Produced),
        (status = 409, description = "The checklist is not satisfied (the detail says what is missing)", body = super::error::ErrorBody, content_type = "application/problem+json"),
    ))]
pub async fn produce(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<ProductionRequest>,
) -> AppResult<super::state::Created<production::Produced>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let body = body.read()?;
    let release = release_of(&state, &principal, &raw_id).await?;
    let produced = production::produce(&state, &principal, &release, &body).await?;
    let location = state.link(&format!(
        "/api/v1/releases/{}/productions/{}",
        release.id, produced.production.id
    ));
    Ok(super::state::Created(location, produced))
}

/// The production `raw_pid` of release `raw_id`.
async fn production_of(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
    raw_pid: &str,
) -> AppResult<(Release, Production, String)> {
    let release = release_of(state, principal, raw_id).await?;
    let found = match raw_pid.parse::<ProductionId>() {
        Ok(pid) => state.db.production(pid).await?,
        Err(_) => None,
    };
    match found {
        Some((production, manifest)) if production.release_id == release.id => {
            Ok((release, production, manifest))
        }
        _ => {
            AuditEvent::new(principal, Action::ManageReleases)
                .outcome(Outcome::NotFound)
                .patient(release.patient_ids.first().copied())
                .detail(json!({ "production": "unknown", "patients": release.patient_ids }))
                .record(&state.db)
                .await?;
            Err(AppError::not_found())
        }
    }
}

#[utoipa::path(get, path = "/releases/{id}/productions/{pid}", tag = "releases",
    responses((status = 200, description = "The production PDF, decrypted as it streams", body = super::error::Binary, content_type = "application/pdf")))]
pub async fn download(
    State(state): State<AppState>,
    principal: Principal,
    Path((raw_id, raw_pid)): Path<(String, String)>,
) -> AppResult<Response> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let (release, production, _) = production_of(&state, &principal, &raw_id, &raw_pid).await?;
    let reader = state
        .vault
        .open(ObjectRef::Production(production.id))
        .await?;
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "download", "production": production.id, "sha256": production.sha256 }),
    )
    .await?;
    let headers = [
        (header::CONTENT_TYPE, "application/pdf".to_string()),
        (header::CONTENT_LENGTH, production.size_bytes.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"production-{}.pdf\"", production.id),
        ),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ];
    Ok((
        headers,
        Body::from_stream(super::documents::decrypting_stream(reader, production.id.0)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/releases/{id}/productions/{pid}/manifest", tag = "releases",
    responses((status = 200, description = "What the production holds, Bates number by Bates number", body = crate::legal::release::manifest::Manifest)))]
pub async fn manifest(
    State(state): State<AppState>,
    principal: Principal,
    Path((raw_id, raw_pid)): Path<(String, String)>,
) -> AppResult<Response> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let (release, production, manifest) =
        production_of(&state, &principal, &raw_id, &raw_pid).await?;
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "manifest", "production": production.id }),
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        manifest,
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBody {
    reason: String,
}

#[utoipa::path(post, path = "/releases/{id}/extension", tag = "releases", request_body = ExtensionBody,
    responses((status = 200, description = "The release with its due date extended", body = ReleaseView)))]
pub async fn extend(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<ExtensionBody>,
) -> AppResult<Json<ReleaseView>> {
    authorize(&state.db, &principal, Action::ManageReleases, None).await?;
    let body = body.read()?;
    let release = release_of(&state, &principal, &raw_id).await?;
    let reason = optional_text("reason", Some(body.reason), 1000)?
        .ok_or_else(|| AppError::invalid("reason must not be empty"))?;
    if release.legal_basis != LegalBasis::PatientAccess {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "only a patient's request for access has a 30-day extension",
        ));
    }
    if release.extended_at.is_some() {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the request was extended already: one extension is allowed",
        ));
    }
    let due_on =
        release.due_on + chrono::Days::new(u64::from(state.config.releases.access_extension_days));
    audit_release(
        &state,
        &principal,
        &release,
        json!({ "release": "extend", "id": release.id, "due_on": due_on }),
    )
    .await?;
    if !state.db.extend_release(release.id, due_on, &reason).await? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the request was extended already: one extension is allowed",
        ));
    }
    let release = state
        .db
        .release(release.id)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(view(&state, &principal, release).await?))
}
