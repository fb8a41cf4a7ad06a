//! A record named in a request, for a principal: a document by id or a patient by MRN, each
//! unknown one audited and answered like a record outside the caller's scope (404).

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::Principal;
use crate::app::Archive;
use crate::domain::{Action, DocumentId, Mrn, Outcome};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::documents::Document;
use crate::store::patients::Patient;
use crate::store::prelude::*;

/// The document `raw_id` if `action` on it is allowed; an unknown id is audited and 404,
/// exactly like a document outside the caller's scope.
pub async fn document_in_scope(
    state: &Archive,
    principal: &Principal,
    action: Action,
    raw_id: &str,
) -> AppResult<Document> {
    let Ok(id) = raw_id.parse::<DocumentId>() else {
        return Err(AppError::not_found());
    };
    let Some(doc) = state.db.document(id).await? else {
        AuditEvent::new(principal, action)
            .outcome(Outcome::NotFound)
            .document(id)
            .record(&state.db)
            .await?;
        return Err(AppError::not_found());
    };
    let resource = doc.resource();
    authorize(&state.db, principal, action, Some(&resource)).await?;
    Ok(doc)
}

/// The patient with the MRN `raw` (400 when it is not an MRN). An unknown MRN is audited
/// (as `action`, `not-found`, with `detail`) and 404.
pub async fn patient_by_mrn(
    archive: &Archive,
    principal: &Principal,
    action: Action,
    raw: &str,
    detail: Option<serde_json::Value>,
) -> AppResult<Patient> {
    let mrn = Mrn::parse(raw).map_err(AppError::invalid)?;
    if let Some(patient) = archive.db.patient_by_mrn(&mrn).await? {
        return Ok(patient);
    }
    AuditEvent::new(principal, action)
        .outcome(Outcome::NotFound)
        .detail(detail)
        .record(&archive.db)
        .await?;
    Err(AppError::new(
        ErrorCode::NotFound,
        "that MRN belongs to no patient in the archive",
    ))
}
