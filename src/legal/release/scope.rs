//! Which documents a request covers for the person producing it.

use crate::access::policy::{decide, Action, Principal};
use crate::app::Archive;
use crate::domain::{DocumentId, DocumentStatus};
use crate::error::AppResult;
use crate::store::documents::Document;
use crate::store::prelude::*;
use crate::store::releases::Release;

/// The documents a request covers for this caller, in production order (patient, service
/// date, archive time), exclusions left out.
pub async fn documents_in_scope(
    state: &Archive,
    principal: &Principal,
    release: &Release,
) -> AppResult<Vec<Document>> {
    let excluded: Vec<DocumentId> = state
        .db
        .exclusions(release.id)
        .await?
        .into_iter()
        .map(|e| e.document_id)
        .collect();
    let mut out = Vec::new();
    for patient in &release.patient_ids {
        let mut docs: Vec<Document> = state
            .db
            .documents_of_patient(*patient)
            .await?
            .into_iter()
            .filter(|d| d.status == DocumentStatus::Indexed && !excluded.contains(&d.id))
            .filter(
                |d| match (release.date_from, release.date_to, d.service_date) {
                    (None, None, _) => true,
                    (_, _, None) => false,
                    (from, to, Some(date)) => {
                        from.is_none_or(|f| date >= f) && to.is_none_or(|t| date <= t)
                    }
                },
            )
            .filter(|d| {
                release.document_types.is_empty()
                    || release.document_types.contains(&d.document_type)
            })
            .filter(|d| {
                release.categories.is_empty()
                    || release.categories.iter().any(|c| d.category.as_str() == c)
            })
            .filter(|d| {
                let resource = d.resource();
                decide(principal, Action::ReadDocument, Some(&resource)).is_allow()
            })
            .collect();
        docs.sort_by(|a, b| {
            (a.service_date, &a.created_at, a.id).cmp(&(b.service_date, &b.created_at, b.id))
        });
        out.extend(docs);
    }
    Ok(out)
}
