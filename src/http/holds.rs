//! Legal holds (`legal`): `POST /holds` on a patient, a set of documents or a search;
//! `GET /holds`, `GET /holds/{id}`; `POST /holds/{id}/release` with a reason.
//!
//! While an active hold covers a document, deleting it, rejecting it in QA, correcting it
//! (which takes the held version out of the index) and retention's purge all fail with
//! 409 naming the hold (see [`crate::legal::shred`]). A search hold covers what the search found
//! when it was placed, in every category (preserving is not disclosing); its answer lists
//! only the documents the caller may see.

use axum::extract::{Path, State};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{decide, Action, Principal, Resource};
use crate::domain::{DocumentId, Outcome, PatientId};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::store::holds::{Hold, HoldScope, NewHold};
use crate::store::prelude::*;

/// Documents a search hold may cover at most.
const MAX_QUERY_DOCUMENTS: usize = 100_000;
/// Hits asked of the index at once (its largest page).
const SEARCH_PAGE: usize = 1000;

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, get_one, release))]
pub(super) struct ApiDoc;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    matter: String,
    custodian: String,
    reason: String,
    /// Exactly one of `mrn`, `document_ids` and `query`.
    mrn: Option<String>,
    /// The issuer of `mrn` (default: the archive's default issuer).
    issuer: Option<String>,
    document_ids: Option<Vec<String>>,
    query: Option<HoldQuery>,
}

/// The search a hold covers the results of.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    query: String,
    mrn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    document_type: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

fn text_field(name: &str, value: &str, max: usize) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AppError::invalid(format!(
            "{name} must be 1 to {max} characters"
        )));
    }
    Ok(value.to_string())
}

/// The documents of `ids` the caller may see, sorted, without repeats; any other id is
/// 404, like an unknown one.
pub(super) async fn visible_documents(
    state: &AppState,
    principal: &Principal,
    ids: &[String],
) -> AppResult<Vec<DocumentId>> {
    if ids.is_empty() || ids.len() > 10_000 {
        return Err(AppError::invalid(
            "document_ids must name 1 to 10000 documents",
        ));
    }
    let mut documents = Vec::with_capacity(ids.len());
    for raw in ids {
        let doc =
            crate::access::lookup::document_in_scope(state, principal, Action::ReadDocument, raw)
                .await?;
        documents.push(doc.id);
    }
    documents.sort();
    documents.dedup();
    Ok(documents)
}

/// Every document with a page the search matches (in every category, QA included).
async fn documents_found(state: &AppState, query: &HoldQuery) -> AppResult<Vec<DocumentId>> {
    let text = text_field("query.query", &query.query, 1000)?;
    let patient_ids = match &query.mrn {
        None => None,
        Some(raw) => {
            let mrn = crate::access::lookup::parse_mrn(state, raw, query.issuer.as_deref())?;
            Some(match state.db.patient_by_mrn(&mrn).await? {
                Some(patient) => vec![patient.id.0],
                None => Vec::new(),
            })
        }
    };
    let document_type = query
        .document_type
        .as_deref()
        .map(|t| crate::domain::parse_slug("document_type", t).map_err(AppError::invalid))
        .transpose()?;
    let mut found = std::collections::BTreeSet::new();
    let mut offset = 0;
    loop {
        let request = chartvault_index::SearchRequest {
            query: text.clone(),
            patient_ids: patient_ids.clone(),
            categories: None,
            excluded_categories: Vec::new(),
            excluded_documents: Vec::new(),
            document_ids: None,
            document_type: document_type.clone(),
            from: query.from,
            to: query.to,
            limit: SEARCH_PAGE,
            offset,
        };
        let index = state.index()?.clone();
        let results = tokio::task::spawn_blocking(move || index.search(&request))
            .await?
            .map_err(|e| match e {
                chartvault_index::IndexError::Query(message) => AppError::invalid(message),
                other => AppError::internal(other),
            })?;
        let n = results.hits.len();
        found.extend(results.hits.iter().map(|h| DocumentId(h.document_id)));
        offset += n;
        if n < SEARCH_PAGE || offset >= results.total {
            break;
        }
        if found.len() > MAX_QUERY_DOCUMENTS {
            return Err(AppError::invalid(format!(
                "the search finds more than {MAX_QUERY_DOCUMENTS} documents; narrow it"
            )));
        }
    }
    Ok(found.into_iter().collect())
}

/// A hold's document ids as the caller may see them.
async fn visible_view(state: &AppState, principal: &Principal, mut hold: Hold) -> AppResult<Hold> {
    let mut visible = Vec::with_capacity(hold.document_ids.len());
    for id in &hold.document_ids {
        let Some(doc) = state.db.document(*id).await? else {
            continue;
        };
        let resource = Resource {
            records_only: false,
            ..doc.resource()
        };
        if decide(principal, Action::ReadDocument, Some(&resource)).is_allow() {
            visible.push(*id);
        }
    }
    hold.document_ids = visible;
    Ok(hold)
}

#[utoipa::path(post, path = "/holds", tag = "holds", request_body = HoldBody,
    responses((status = 201, description = "The hold (`Location`)", body = Hold)))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<HoldBody>,
) -> AppResult<super::state::Created<Hold>> {
    authorize(&state.db, &principal, Action::ManageHolds, None).await?;
    let body = body.read()?;
    let matter = text_field("matter", &body.matter, 500)?;
    let custodian = text_field("custodian", &body.custodian, 500)?;
    let reason = text_field("reason", &body.reason, 1000)?;
    let scopes = [
        body.mrn.is_some(),
        body.document_ids.is_some(),
        body.query.is_some(),
    ];
    if scopes.iter().filter(|s| **s).count() != 1 {
        return Err(AppError::invalid(
            "a hold covers exactly one of: mrn (a patient), document_ids, query (a search)",
        ));
    }
    let (scope, patient_id, query, documents): (HoldScope, Option<PatientId>, _, _) =
        if let Some(raw) = &body.mrn {
            let mrn = crate::access::lookup::parse_mrn(&state, raw, body.issuer.as_deref())?;
            // Legal sees every patient: an unknown MRN is simply unknown.
            let Some(patient) = state.db.patient_by_mrn(&mrn).await? else {
                return Err(AppError::new(
                    ErrorCode::NotFound,
                    "no patient has this MRN",
                ));
            };
            (HoldScope::Patient, Some(patient.id), None, Vec::new())
        } else if let Some(ids) = &body.document_ids {
            let documents = visible_documents(&state, &principal, ids).await?;
            (HoldScope::Documents, None, None, documents)
        } else {
            let query = body.query.clone().expect("one scope is set");
            let documents = documents_found(&state, &query).await?;
            let query = serde_json::to_string(&query).map_err(AppError::internal)?;
            (HoldScope::Query, None, Some(query), documents)
        };
    let single_patient = match (patient_id, documents.as_slice()) {
        (Some(p), _) => Some(p),
        (None, [only]) => state.db.document(*only).await?.map(|d| d.patient_id),
        _ => None,
    };
    // Audited before it takes effect, like every act on records.
    AuditEvent::new(&principal, Action::ManageHolds)
        .patient(single_patient)
        .detail(json!({ "hold": "place", "scope": scope.as_str(), "documents": documents.len() }))
        .record(&state.db)
        .await?;
    let id = state
        .db
        .insert_hold(&NewHold {
            matter,
            custodian,
            reason,
            scope,
            patient_id,
            query,
            documents,
            created_by: principal.user_id,
        })
        .await?;
    let hold = state.db.hold(id).await?.ok_or_else(AppError::not_found)?;
    let hold = visible_view(&state, &principal, hold).await?;
    let location = state.link(&format!("/api/v1/holds/{}", hold.id));
    Ok(super::state::Created(location, hold))
}

#[utoipa::path(get, path = "/holds", tag = "holds",
    responses((status = 200, description = "Every hold", body = Holds)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> AppResult<Json<Holds>> {
    authorize(&state.db, &principal, Action::ManageHolds, None).await?;
    let mut holds = Vec::new();
    for hold in state.db.holds().await? {
        holds.push(visible_view(&state, &principal, hold).await?);
    }
    AuditEvent::new(&principal, Action::ManageHolds)
        .detail(json!({ "hold": "list", "holds": holds.len() }))
        .record(&state.db)
        .await?;
    Ok(Json(Holds { holds }))
}

/// Every hold.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Holds {
    holds: Vec<Hold>,
}

/// The hold `raw_id`; an unknown one is audited and 404.
async fn hold_of(state: &AppState, principal: &Principal, raw_id: &str) -> AppResult<Hold> {
    let hold = match raw_id.parse::<crate::domain::HoldId>() {
        Ok(id) => state.db.hold(id).await?,
        Err(_) => None,
    };
    match hold {
        Some(hold) => Ok(hold),
        None => {
            AuditEvent::new(principal, Action::ManageHolds)
                .outcome(Outcome::NotFound)
                .detail(json!({ "hold": "unknown" }))
                .record(&state.db)
                .await?;
            Err(AppError::not_found())
        }
    }
}

#[utoipa::path(get, path = "/holds/{id}", tag = "holds",
    responses((status = 200, description = "The hold", body = Hold)))]
pub async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
) -> AppResult<Json<Hold>> {
    authorize(&state.db, &principal, Action::ManageHolds, None).await?;
    let hold = hold_of(&state, &principal, &raw_id).await?;
    AuditEvent::new(&principal, Action::ManageHolds)
        .patient(hold.patient_id)
        .detail(json!({ "hold": "read", "id": hold.id }))
        .record(&state.db)
        .await?;
    let hold = visible_view(&state, &principal, hold).await?;
    Ok(Json(hold))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    reason: String,
}

#[utoipa::path(post, path = "/holds/{id}/release", tag = "holds", request_body = ReleaseBody,
    responses((status = 200, description = "Released", body = Hold)))]
pub async fn release(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<ReleaseBody>,
) -> AppResult<Json<Hold>> {
    authorize(&state.db, &principal, Action::ManageHolds, None).await?;
    let body = body.read()?;
    let reason = text_field("reason", &body.reason, 1000)?;
    let hold = hold_of(&state, &principal, &raw_id).await?;
    if !hold.active {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("hold {} was released already", hold.id),
        ));
    }
    AuditEvent::new(&principal, Action::ManageHolds)
        .patient(hold.patient_id)
        .detail(json!({ "hold": "release", "id": hold.id, "scope": hold.scope.as_str() }))
        .record(&state.db)
        .await?;
    if !state
        .db
        .release_hold(hold.id, principal.user_id, &reason)
        .await?
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("hold {} was released already", hold.id),
        ));
    }
    let hold = state
        .db
        .hold(hold.id)
        .await?
        .ok_or_else(AppError::not_found)?;
    let hold = visible_view(&state, &principal, hold).await?;
    Ok(Json(hold))
}
