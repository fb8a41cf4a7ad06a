//! Patient lookup by MRN (in the body: MRNs never go in URLs).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal, Resource};
use crate::error::{AppError, AppResult};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::store::documents::Document;
use crate::store::patients::Patient;
use crate::store::prelude::*;

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(lookup, search_by_name))]
pub(super) struct ApiDoc;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    mrn: String,
    /// The MRN's issuer (default: the archive's default issuer).
    issuer: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Chart {
    patient: Patient,
    /// The visits the registration system reported, the latest first.
    encounters: Vec<crate::store::patients::Encounter>,
    documents: Vec<Document>,
}

#[utoipa::path(post, path = "/patients/lookup", tag = "patients", request_body = LookupBody,
    responses((status = 200, description = "The patient's chart: the documents the caller may see", body = Chart)))]
pub async fn lookup(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<LookupBody>,
) -> AppResult<Json<Chart>> {
    authorize(&state.db, &principal, Action::LookupPatient, None).await?;
    let body = body.read()?;
    let patient = crate::access::lookup::patient_by_mrn(
        &state,
        &principal,
        Action::LookupPatient,
        (&body.mrn, body.issuer.as_deref()),
        None,
    )
    .await?;
    let documents = state.db.documents_of_patient(patient.id).await?;
    let mut visible = Vec::with_capacity(documents.len());
    for doc in documents {
        // Through break-the-glass too: the chart is what the emergency access is for (the
        // lookup's audit entry is flagged with the access).
        if crate::access::policy::decide(&principal, Action::ReadDocument, Some(&doc.resource()))
            .is_allow()
        {
            visible.push(doc);
        }
    }
    authorize(
        &state.db,
        &principal,
        Action::LookupPatient,
        Some(&Resource::patient(patient.id)),
    )
    .await?;
    AuditEvent::new(&principal, Action::LookupPatient)
        .patient(patient.id)
        .record(&state.db)
        .await?;
    let encounters = state.db.encounters_of(patient.id).await?;
    Ok(Json(Chart {
        patient,
        encounters,
        documents: visible,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameSearchBody {
    name: String,
    #[serde(default = "default_name_limit")]
    limit: usize,
}

fn default_name_limit() -> usize {
    20
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NameMatch {
    #[serde(flatten)]
    patient: Patient,
    /// Pages of the patient's indexed documents.
    pages: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NameMatches {
    patients: Vec<NameMatch>,
}

/// `POST /patients/search {"name": "quarr"}`: patients by name, through the encrypted index
/// (the database holds names sealed, so it cannot search them). Names go in the body, never
/// the URL; the audit row lists the patient ids returned.
#[utoipa::path(post, path = "/patients/search", tag = "patients", request_body = NameSearchBody,
    responses((status = 200, description = "Patients whose name matches, within the caller's scope", body = NameMatches)))]
pub async fn search_by_name(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<NameSearchBody>,
) -> AppResult<Json<NameMatches>> {
    authorize(&state.db, &principal, Action::LookupPatient, None).await?;
    let body = body.read()?;
    if body.name.chars().count() > 200 {
        return Err(AppError::invalid("name must be at most 200 characters"));
    }
    if !(1..=100).contains(&body.limit) {
        return Err(AppError::invalid("limit must be 1 to 100"));
    }
    let mut patients = Vec::new();
    for (patient_id, pages) in
        crate::search::patients_named(&state, &principal, &body.name, body.limit).await?
    {
        if let Some(patient) = state.db.patient(patient_id).await? {
            patients.push(NameMatch { patient, pages });
        }
    }
    let ids: Vec<String> = patients.iter().map(|m| m.patient.id.to_string()).collect();
    AuditEvent::new(&principal, Action::LookupPatient)
        .detail(serde_json::json!({ "by": "name", "patients": ids }))
        .record(&state.db)
        .await?;
    Ok(Json(NameMatches { patients }))
}
