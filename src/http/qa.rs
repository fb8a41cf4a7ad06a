//! The QA queue: documents a person has to look at before they are filed (today: a DICOM
//! file whose PatientID is not the MRN it was uploaded under). `records` lists them and
//! resolves each: accept it as filed, file it under another patient (and type or date), or
//! reject it (crypto-shred, with a reason). Every listing and resolution is audited; a
//! document filed elsewhere is re-indexed under its new patient before the answer.

use axum::extract::{Path, State};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{audit, authorize, Action, Principal};
use crate::domain::{parse_slug, DocumentId, DocumentStatus, Mrn, PatientId};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AppState;

#[derive(Serialize)]
pub struct QaEntry {
    id: DocumentId,
    patient_id: PatientId,
    mrn: String,
    patient_name: String,
    document_type: String,
    content_type: String,
    page_count: u32,
    qa_reason: Option<String>,
    created_at: String,
}

#[derive(Serialize)]
pub struct QaQueue {
    documents: Vec<QaEntry>,
}

pub async fn list(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<QaQueue>> {
    authorize(&state.db, &principal, Action::ReviewQa, None).await?;
    let mut documents = Vec::new();
    for doc in state.db.qa_documents().await? {
        let Some(patient) = state.db.patient(doc.patient_id).await? else {
            continue;
        };
        documents.push(QaEntry {
            id: doc.id,
            patient_id: doc.patient_id,
            mrn: patient.mrn,
            patient_name: patient.name,
            document_type: doc.document_type,
            content_type: doc.content_type,
            page_count: doc.page_count,
            qa_reason: doc.qa_reason,
            created_at: doc.created_at,
        });
    }
    audit(
        &state.db,
        &principal,
        Action::ReviewQa,
        "ok",
        None,
        None,
        Some(json!({ "documents": documents.len() })),
    )
    .await?;
    Ok(Json(QaQueue { documents }))
}

/// How a document leaves the queue.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Resolution {
    /// Filed as it is.
    Accept,
    /// Filed under another patient (who must exist, unless `name` is given), optionally with
    /// another type or service date.
    Assign {
        mrn: String,
        name: Option<String>,
        document_type: Option<String>,
        service_date: Option<NaiveDate>,
    },
    /// Not kept: crypto-shredded with the reason.
    Reject { reason: String },
}

#[derive(Serialize)]
pub struct Resolved {
    id: DocumentId,
    status: DocumentStatus,
    patient_id: PatientId,
}

pub async fn resolve(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: Result<Json<Resolution>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Resolved>> {
    authorize(&state.db, &principal, Action::ReviewQa, None).await?;
    let Json(resolution) = body.map_err(super::json_rejection)?;
    // Unknown ids and documents outside the caller's scope (a sensitive category without a
    // grant) are audited and 404, as on every document route.
    let doc =
        super::documents::document_in_scope(&state, &principal, Action::ReviewQa, &raw_id).await?;
    if doc.status != DocumentStatus::Qa {
        audit(
            &state.db,
            &principal,
            Action::ReviewQa,
            "refused",
            Some(doc.patient_id),
            Some(doc.id),
            Some(json!({ "refusal": "not in the QA queue" })),
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the document is not in the QA queue",
        ));
    }
    match resolution {
        Resolution::Accept => {
            audit_resolution(&state, &principal, &doc, doc.patient_id, "accept").await?;
            state
                .db
                .resolve_qa(doc.id, doc.patient_id, &doc.document_type, doc.service_date)
                .await?;
            Ok(Json(Resolved {
                id: doc.id,
                status: DocumentStatus::Indexed,
                patient_id: doc.patient_id,
            }))
        }
        Resolution::Assign {
            mrn,
            name,
            document_type,
            service_date,
        } => {
            let mrn = Mrn::parse(&mrn).map_err(|e| ApiError::invalid(format!("mrn: {e}")))?;
            let document_type = match document_type {
                Some(raw) => parse_slug("document_type", &raw).map_err(ApiError::invalid)?,
                None => doc.document_type.clone(),
            };
            let patient_id = match state.db.patient_by_mrn(&mrn).await? {
                Some(patient) => patient.id,
                None => {
                    let name = name
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty() && n.len() <= 200)
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "no patient has that MRN: give the patient's name to create one",
                            )
                        })?;
                    let mut tx = state.db.begin().await?;
                    let id = state.db.ensure_patient(&mut tx, &mrn, &name, None).await?;
                    tx.commit().await?;
                    id
                }
            };
            audit_resolution(&state, &principal, &doc, patient_id, "assign").await?;
            state
                .db
                .resolve_qa(
                    doc.id,
                    patient_id,
                    &document_type,
                    service_date.or(doc.service_date),
                )
                .await?;
            crate::worker::reindex_document(&state, doc.id)
                .await
                .map_err(ApiError::internal)?;
            Ok(Json(Resolved {
                id: doc.id,
                status: DocumentStatus::Indexed,
                patient_id,
            }))
        }
        Resolution::Reject { reason } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 1000 {
                return Err(ApiError::invalid("reason must be 1 to 1000 characters"));
            }
            audit_resolution(&state, &principal, &doc, doc.patient_id, "reject").await?;
            if !crate::shred::shred(&state, &doc, principal.user_id, reason).await? {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "the document changed state during the request; retry",
                ));
            }
            Ok(Json(Resolved {
                id: doc.id,
                status: DocumentStatus::Deleted,
                patient_id: doc.patient_id,
            }))
        }
    }
}

/// Audited before the act, naming the resolution and where the document was filed before.
async fn audit_resolution(
    state: &AppState,
    principal: &Principal,
    doc: &crate::db::Document,
    patient_id: PatientId,
    resolution: &'static str,
) -> ApiResult<()> {
    audit(
        &state.db,
        principal,
        Action::ReviewQa,
        "ok",
        Some(patient_id),
        Some(doc.id),
        Some(json!({ "resolution": resolution, "filed_under_before": doc.patient_id })),
    )
    .await
}
