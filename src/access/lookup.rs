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

/// An MRN of `issuer` as a request names them (400 naming the field when either is wrong).
pub fn parse_mrn(archive: &Archive, raw: &str, issuer: Option<&str>) -> AppResult<Mrn> {
    archive
        .config
        .patients
        .mrn(raw, issuer)
        .map_err(AppError::invalid)
}

/// The patient with the MRN `raw` of `issuer` (the default issuer when `None`; 400 when it
/// is not an MRN or an issuer of the archive). An unknown MRN is audited (as `action`,
/// `not-found`, with `detail`) and 404.
pub async fn patient_by_mrn(
    archive: &Archive,
    principal: &Principal,
    action: Action,
    (raw, issuer): (&str, Option<&str>),
    detail: Option<serde_json::Value>,
) -> AppResult<Patient> {
    let mrn = parse_mrn(archive, raw, issuer)?;
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
