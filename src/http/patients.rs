//! Patient lookup by MRN (in the body: MRNs never go in URLs).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::{audit, authorize, Action, Principal, Resource};
use crate::db::{Document, Patient};
use crate::domain::Mrn;
use crate::error::{ApiError, ApiResult};
use crate::http::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    mrn: String,
}

#[derive(Serialize)]
pub struct Chart {
    patient: Patient,
    documents: Vec<Document>,
}

pub async fn lookup(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Json<LookupBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Chart>> {
    authorize(&state.db, &principal, Action::LookupPatient, None).await?;
    let Json(body) = body.map_err(super::json_rejection)?;
    let mrn = Mrn::parse(&body.mrn).map_err(ApiError::invalid)?;
    let Some(patient) = state.db.patient_by_mrn(&mrn).await? else {
        audit(
            &state.db,
            &principal,
            Action::LookupPatient,
            "not-found",
            None,
            None,
            None,
        )
        .await?;
        return Err(ApiError::not_found());
    };
    let documents = state.db.documents_of_patient(patient.id).await?;
    let mut visible = Vec::with_capacity(documents.len());
    for doc in documents {
        let resource = Resource {
            patient_id: doc.patient_id,
            document_id: Some(doc.id),
            category: &doc.category,
        };
        if crate::auth::decide(&principal, Action::ReadDocument, Some(&resource))
            == crate::auth::Decision::Allow
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
            category: "general",
        }),
    )
    .await?;
    audit(
        &state.db,
        &principal,
        Action::LookupPatient,
        "ok",
        Some(patient.id),
        None,
        None,
    )
    .await?;
    Ok(Json(Chart {
        patient,
        documents: visible,
    }))
}
