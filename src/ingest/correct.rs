//! Correcting a misfiled document (wrong patient, type, category or date).
//!
//! What it promises:
//! - A correction is a new version: a new document (its own id and its own copies of the
//!   original and every page artifact, encrypted under its identity) filed as corrected,
//!   with `supersedes` naming the old one. The new version is indexed under its patient.
//! - The old version is kept as it was, marked entered in error (`superseded_by`, when, by
//!   whom, the reason sealed): out of the search index at once, readable to `records` alone,
//!   and still in the audit trail of everything that happened to it.
//! - Nothing is half-done: the copies are written first, then one transaction records the
//!   new version and marks the old; a failure before it leaves only unreferenced copies.

use std::io::Write;

use chrono::NaiveDate;

use crate::app::Archive;
use crate::domain::{DocumentId, PatientId, UserId};
use crate::store::documents::{Document, NewDocument};
use crate::store::prelude::*;
use crate::store::vault::ObjectRef;

/// Where and how the document should have been filed.
#[derive(Debug, Clone)]
pub struct Correction {
    pub patient_id: PatientId,
    pub document_type: String,
    pub category: crate::domain::Category,
    pub service_date: Option<NaiveDate>,
    pub reason: String,
}

/// Files `doc` (indexed, not in QA, not corrected before) again as `correction`; returns the
/// new version's id, or `None` when the document changed state meanwhile.
pub async fn correct(
    state: &Archive,
    doc: &Document,
    correction: &Correction,
    by: UserId,
) -> anyhow::Result<Option<DocumentId>> {
    let new_id = DocumentId::new_random();

    // The original, re-encrypted as it streams, under the new version's identity.
    let key = state.vault.new_key()?;
    let reader = state.vault.open(ObjectRef::Original(doc.id)).await?;
    let vault = state.vault.clone();
    let key = tokio::task::spawn_blocking(move || -> anyhow::Result<crate::store::keys::NewKey> {
        let mut reader = reader;
        let mut writer = vault.staging_writer(new_id, &key)?;
        std::io::copy(&mut reader, &mut writer)?;
        writer.flush()?;
        writer.finish()?.commit()?;
        vault.promote_staging(new_id)?;
        Ok(key)
    })
    .await??;

    // Every page's artifacts, and its row.
    let pages = state.db.pages(doc.id).await?;
    for page in &pages {
        state
            .vault
            .copy_page(
                ObjectRef::page_artifacts(doc.id, page.page),
                ObjectRef::page_artifacts(new_id, page.page),
            )
            .await?;
    }

    let new_doc = NewDocument {
        id: new_id,
        patient_id: correction.patient_id,
        document_type: correction.document_type.clone(),
        category: correction.category.clone(),
        service_date: correction.service_date,
        encounter: doc.encounter.clone(),
        content_type: doc.content_type.clone(),
        sha256: doc.sha256.clone(),
        sha1: doc.sha1.clone(),
        size_bytes: doc.size_bytes as u64,
        page_count: doc.page_count,
        created_by: by,
        sop_instance_uid: None,
        qa_reason: None,
    };
    let mut key = key;
    state.vault.refresh_wrap(&mut key)?;
    let mut tx = state.db.begin().await?;
    state
        .db
        .insert_document_with_pages(&mut tx, &key, &new_doc, &pages)
        .await?;
    if !state
        .db
        .supersede(&mut tx, doc.id, new_id, by, &correction.reason)
        .await?
    {
        drop(tx);
        discard_copies(state, new_id).await;
        return Ok(None);
    }
    tx.commit().await?;
    state.jobs_waiting.notify_one();
    // Out of the index now; the new version is indexed by its job (its pages are there).
    state.index_writer()?.purge_document(doc.id.0).await?;
    Ok(Some(new_id))
}

/// Removes the copies of a correction that was not recorded.
async fn discard_copies(state: &Archive, id: DocumentId) {
    let vault = state.vault.clone();
    let _ = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for name in vault.blobs.list(&ObjectRef::pages_prefix(id))? {
            vault.blobs.delete(&name)?;
        }
        vault.blobs.delete(&ObjectRef::Original(id).blob_name())?;
        Ok(())
    })
    .await;
}
