//! Patient lookup by MRN (in the body: MRNs never go in URLs).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal, Resource};
use crate::domain::Category;
use crate::error::{AppError, AppResult};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::store::documents::Document;
use crate::store::patients::Patient;
use crate::store::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    mrn: String,
    /// The MRN's issuer (default: the archive's default issuer).
    issuer: Option<String>,
}

#[derive(Serialize)]
pub struct Chart {
    patient: Patient,
    /// The visits the registration system reported, the latest first.
    encounters: Vec<crate::store::patients::Encounter>,
    documents: Vec<Document>,
}

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
        Some(&Resource {
            patient_id: patient.id,
            document_id: None,
            category: &Category::general(),
            records_only: false,
        }),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameSearchBody {
    name: String,
    #[serde(default = "default_name_limit")]
    limit: usize,
}

fn default_name_limit() -> usize {
    20
}

#[derive(Serialize)]
pub struct NameMatch {
    #[serde(flatten)]
    patient: Patient,
    /// Pages of the patient's indexed documents.
    pages: u64,
}

#[derive(Serialize)]
pub struct NameMatches {
    patients: Vec<NameMatch>,
}

/// `POST /patients/search {"name": "quarr"}`: patients by name, through the encrypted index
/// (the database holds names sealed, so it cannot search them). Names go in the body, never
/// the URL; the audit row lists the patient ids returned.
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
    // The caller's scope is part of the index query, as in `/search`: patients off their
    // list, categories they may not see and documents waiting in QA never match, so neither
    // the patients found, nor their page counts, nor the limit reflect them.
    let allowed: Option<Vec<uuid::Uuid>> = principal
        .scope
        .visible_patients()
        .map(|patients| patients.into_iter().map(|p| p.0).collect());
    let excluded_categories = principal.scope.hidden_categories();
    let excluded_documents = crate::search::hidden_qa_documents(&state, &principal).await?;
    let index = state.index.clone();
    let found = tokio::task::spawn_blocking(move || {
        let scope = chartvault_index::NameScope {
            allowed_patients: allowed.as_deref(),
            excluded_categories: &excluded_categories,
            excluded_documents: &excluded_documents,
        };
        index.find_patients(&body.name, &scope, body.limit)
    })
    .await?
    .map_err(|e| match e {
        chartvault_index::IndexError::Query(message) => AppError::invalid(message),
        other => AppError::internal(other),
    })?;
    let mut patients = Vec::with_capacity(found.len());
    for matched in found {
        let patient_id = crate::domain::PatientId(matched.patient_id);
        let general = Category::general();
        let resource = Resource {
            patient_id,
            document_id: None,
            category: &general,
            records_only: false,
        };
        // (The index query applied the scope already; the policy function has the last word.)
        if !crate::access::policy::decide(&principal, Action::LookupPatient, Some(&resource))
            .is_allow()
        {
            continue;
        }
        if let Some(patient) = state.db.patient(patient_id).await? {
            patients.push(NameMatch {
                patient,
                pages: matched.pages,
            });
        }
    }
    let ids: Vec<String> = patients.iter().map(|m| m.patient.id.to_string()).collect();
    AuditEvent::new(&principal, Action::LookupPatient)
        .detail(serde_json::json!({ "by": "name", "patients": ids }))
        .record(&state.db)
        .await?;
    Ok(Json(NameMatches { patients }))
}
