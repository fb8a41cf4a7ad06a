//! Crypto-shredding of a document.
//!
//! Promises:
//! - [`destruction_refusal`] is the one place that decides whether a document may be
//!   destroyed by a person: its state, an active legal hold (409 naming the hold), its
//!   retention period. The destruction transaction checks the holds again, so a hold placed
//!   in between still wins.
//! - The moment of destruction is one database transaction ([`Db::tombstone_document`]):
//!   the keyring rows of every object of the document go (with `secure_delete` on, their
//!   bytes are zeroed in the file; the WAL is truncated afterwards), its page rows go, and
//!   the document row becomes a tombstone (id, sha256, when, who, the sealed reason). From
//!   that commit on, no byte of the document can be decrypted with any KEK.
//! - Then the index entries are purged (a forced merge of the segments that held them, so
//!   their terms leave the files), the blobs are deleted, and the tombstone is marked
//!   purged. A stop in between is finished at the next start ([`finish_pending`]).

use std::io::{Seek, SeekFrom};

use chartvault_storage::{read_key_id, BlobName};

use crate::db::holds::HoldRef;
use crate::db::retention::NewCertificate;
use crate::db::Document;
use crate::domain::{DocumentId, DocumentStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AppState;
use crate::vault::ObjectRef;

/// Why a document may not be destroyed now by a person (delete, QA reject), or `None` if it
/// may: its state, then any active legal hold (named, with its matter), then its retention
/// period. Retention's own destruction asks [`state_or_hold_refusal`] instead.
pub async fn destruction_refusal(state: &AppState, doc: &Document) -> ApiResult<Option<ApiError>> {
    if let Some(refusal) = state_or_hold_refusal(state, doc).await? {
        return Ok(Some(refusal));
    }
    crate::retention::refusal(state, doc).await
}

/// The state and legal-hold part of [`destruction_refusal`].
pub async fn state_or_hold_refusal(
    state: &AppState,
    doc: &Document,
) -> ApiResult<Option<ApiError>> {
    if let Some(refusal) = status_refusal(doc) {
        return Ok(Some(refusal));
    }
    let holds = state.db.holds_covering(doc.id).await?;
    Ok((!holds.is_empty()).then(|| hold_refusal(&holds)))
}

/// The 409 that names the holds covering a document.
pub fn hold_refusal(holds: &[HoldRef]) -> ApiError {
    let named: Vec<String> = holds
        .iter()
        .map(|h| format!("{} (matter \"{}\")", h.id, h.matter))
        .collect();
    ApiError::new(
        ErrorCode::Conflict,
        format!(
            "the document is under legal hold {}; it cannot be destroyed or altered until \
             the hold is released",
            named.join(", ")
        ),
    )
}

fn status_refusal(doc: &Document) -> Option<ApiError> {
    match doc.status {
        DocumentStatus::Indexed
        | DocumentStatus::Qa
        | DocumentStatus::EnteredInError
        | DocumentStatus::Failed => None,
        DocumentStatus::Accepted | DocumentStatus::Processing => Some(ApiError::new(
            ErrorCode::Conflict,
            "the document is still being processed; delete it once it is indexed or failed",
        )),
        DocumentStatus::Deleted => Some(ApiError::new(
            ErrorCode::Gone,
            "the document was deleted already",
        )),
    }
}

/// The states [`destruction_refusal`] lets through, re-checked inside the transaction.
/// (A document in the QA queue is `indexed` in the database.)
const DESTROYABLE: &[DocumentStatus] = &[DocumentStatus::Indexed, DocumentStatus::Failed];

/// Every blob of a document: its original and all page artifacts.
fn blobs_of(state: &AppState, doc: DocumentId) -> anyhow::Result<Vec<BlobName>> {
    let mut names = state.vault.blobs.list(&ObjectRef::pages_prefix(doc))?;
    let original = ObjectRef::Original(doc).blob_name();
    if state.vault.blobs.exists(&original)? {
        names.push(original);
    }
    Ok(names)
}

/// Destroys a document (the caller has authorised it and checked
/// [`destruction_refusal`]). Returns false if the document changed state meanwhile or a
/// hold now covers it.
pub async fn shred(
    state: &AppState,
    doc: &Document,
    by: &str,
    reason: &str,
    certificate: Option<&NewCertificate>,
) -> anyhow::Result<bool> {
    let id = doc.id;
    let worker_state = state.clone();
    let key_ids = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut key_ids = Vec::new();
        for name in blobs_of(&worker_state, id)? {
            let mut reader = worker_state.vault.blobs.open(&name)?;
            reader.seek(SeekFrom::Start(0))?;
            // A blob that is not an object (cut short by a crash) has no key to destroy.
            if let Ok(key_id) = read_key_id(&mut reader) {
                key_ids.push(key_id.to_hex());
            }
        }
        key_ids.sort();
        key_ids.dedup();
        Ok(key_ids)
    })
    .await??;
    if !state
        .db
        .tombstone_document(id, DESTROYABLE, &key_ids, by, reason, certificate)
        .await?
    {
        return Ok(false);
    }
    tracing::info!(document_id = %id, keys = key_ids.len(), "document keys destroyed");
    purge(state, id).await?;
    Ok(true)
}

/// Removes what is left of a tombstone: index entries, blobs; then marks it purged.
async fn purge(state: &AppState, id: DocumentId) -> anyhow::Result<()> {
    if let Err(error) = state.db.truncate_wal().await {
        tracing::warn!(error = %error, "could not truncate the WAL after destroying keys");
    }
    state.index_writer.purge_document(id.0).await?;
    let worker_state = state.clone();
    let removed = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let names = blobs_of(&worker_state, id)?;
        for name in &names {
            worker_state.vault.blobs.delete(name)?;
        }
        Ok(names.len())
    })
    .await??;
    state.db.mark_purged(id).await?;
    tracing::info!(document_id = %id, blobs = removed, "document purged");
    Ok(())
}

/// Finishes shredding interrupted by a stop (run at startup, once the index writer runs).
pub async fn finish_pending(state: &AppState) -> anyhow::Result<usize> {
    let pending = state.db.unpurged_tombstones().await?;
    for id in &pending {
        purge(state, *id).await?;
    }
    Ok(pending.len())
}
