//! Crypto-shredding of a document.
//!
//! Promises:
//! - [`destruction_refusal`] is the one place that decides whether a document may be
//!   destroyed by a person: its state, an active legal hold (409 naming the hold), its
//!   retention period. The destruction transaction checks the holds again, so a hold placed
//!   in between still wins.
//! - Every copy the archive holds goes: the document, every earlier version it corrects
//!   (entered in error: the same pages under the old filing), and the batch file it was cut
//!   from while that batch still waits for other page ranges to be filed. A hold on any
//!   of the versions refuses the whole destruction.
//! - The moment of destruction is one database transaction ([`Db::tombstone_document`]):
//!   the keyring rows of every object of the document and its earlier versions go (with
//!   `secure_delete` on, their bytes are zeroed in the file; the WAL is truncated afterwards,
//!   and that truncation is retried until no reader holds it back), their page rows go, and
//!   each document row becomes a tombstone (id, sha256, when, who, the sealed reason). From
//!   that commit on, no byte of the document can be decrypted with any KEK.
//! - Then the index entries are purged (a forced merge of the segments that held them, so
//!   their terms leave the files), the blobs are deleted, and the tombstone is marked
//!   purged. A stop in between is finished at the next start ([`finish_pending`]).

use chartvault_storage::BlobName;

use crate::app::Archive;
use crate::domain::{DocumentId, DocumentStatus};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::documents::Document;
use crate::store::holds::HoldRef;
use crate::store::prelude::*;
use crate::store::retention::NewCertificate;
use crate::store::vault::ObjectRef;

/// Why a document may not be destroyed now by a person (delete, QA reject), or `None` if it
/// may: its state, then any active legal hold (named, with its matter), then its retention
/// period. Retention's own destruction asks [`state_or_hold_refusal`] instead.
pub async fn destruction_refusal(state: &Archive, doc: &Document) -> AppResult<Option<AppError>> {
    if let Some(refusal) = state_or_hold_refusal(state, doc).await? {
        return Ok(Some(refusal));
    }
    crate::legal::period::refusal(state, doc).await
}

/// The state and legal-hold part of [`destruction_refusal`].
pub async fn state_or_hold_refusal(state: &Archive, doc: &Document) -> AppResult<Option<AppError>> {
    if let Some(refusal) = status_refusal(doc) {
        return Ok(Some(refusal));
    }
    // The versions it corrects go with it: a hold on any of them keeps them all.
    for version in versions(state, doc).await? {
        let holds = state.db.holds_covering(version.id).await?;
        if !holds.is_empty() {
            return Ok(Some(hold_refusal(&holds)));
        }
    }
    Ok(None)
}

/// The versions a destruction of `doc` destroys: `doc` itself, then every earlier version it
/// corrects, newest first (each entered in error by the next one's correction).
pub async fn versions(state: &Archive, doc: &Document) -> AppResult<Vec<Document>> {
    let mut versions = vec![doc.clone()];
    let mut seen = std::collections::HashSet::from([doc.id]);
    let mut next = doc.supersedes;
    // A chain is as long as the corrections made; `seen` only guards a corrupt loop.
    while let Some(id) = next {
        if !seen.insert(id) {
            break;
        }
        let Some(earlier) = state.db.document(id).await? else {
            break;
        };
        next = earlier.supersedes;
        if earlier.status != DocumentStatus::Deleted {
            versions.push(earlier);
        }
    }
    Ok(versions)
}

/// Whether `principal` may do `action` to every earlier version a destruction of `doc`
/// would destroy with it (another patient's chart, a sensitive category): the refusal when
/// not. It names no version: the caller may not see them.
pub async fn versions_refusal(
    state: &Archive,
    principal: &crate::access::policy::Principal,
    action: crate::access::policy::Action,
    doc: &Document,
) -> AppResult<Option<AppError>> {
    for version in versions(state, doc).await?.iter().skip(1) {
        if !crate::access::policy::decide(principal, action, Some(&version.resource())).is_allow() {
            return Ok(Some(AppError::new(
                ErrorCode::Conflict,
                "the document corrects earlier versions of itself that you may not destroy; \
                 ask someone who may see them all",
            )));
        }
    }
    Ok(None)
}

/// The 409 that names the holds covering a document.
pub fn hold_refusal(holds: &[HoldRef]) -> AppError {
    let named: Vec<String> = holds
        .iter()
        .map(|h| format!("{} (matter \"{}\")", h.id, h.matter))
        .collect();
    AppError::new(
        ErrorCode::Conflict,
        format!(
            "the document is under legal hold {}; it cannot be destroyed or altered until \
             the hold is released",
            named.join(", ")
        ),
    )
}

fn status_refusal(doc: &Document) -> Option<AppError> {
    match doc.status {
        DocumentStatus::Indexed
        | DocumentStatus::Qa
        | DocumentStatus::EnteredInError
        | DocumentStatus::Failed => None,
        DocumentStatus::Accepted | DocumentStatus::Processing => Some(AppError::new(
            ErrorCode::Conflict,
            "the document is still being processed; delete it once it is indexed or failed",
        )),
        DocumentStatus::Deleted => Some(AppError::new(
            ErrorCode::Gone,
            "the document was deleted already",
        )),
    }
}

/// The states [`destruction_refusal`] lets through, re-checked inside the transaction.
/// (A document in the QA queue is `indexed` in the database.)
const DESTROYABLE: &[DocumentStatus] = &[DocumentStatus::Indexed, DocumentStatus::Failed];

/// Every blob of a document: its original and all page artifacts.
fn blobs_of(state: &Archive, doc: DocumentId) -> anyhow::Result<Vec<BlobName>> {
    let mut names = state.vault.blobs.list(&ObjectRef::pages_prefix(doc))?;
    let original = ObjectRef::Original(doc).blob_name();
    if state.vault.blobs.exists(&original)? {
        names.push(original);
    }
    Ok(names)
}

/// Destroys a document and the earlier versions it corrects (the caller has authorised it
/// and checked [`destruction_refusal`]). Returns false if one of them changed state
/// meanwhile or a hold now covers it.
pub async fn shred(
    state: &Archive,
    doc: &Document,
    by: &str,
    reason: &str,
    certificate: Option<&NewCertificate>,
) -> anyhow::Result<bool> {
    let versions = versions(state, doc)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let ids: Vec<DocumentId> = versions.iter().map(|v| v.id).collect();
    // The batch file a document was cut from still holds its pages while other page ranges
    // of the batch wait in the QA queue: its key goes in the same transaction.
    let mut batches = Vec::new();
    for id in &ids {
        if let Some(batch) = state.db.live_batch_file_of(*id).await? {
            if let Some(key) = state
                .vault
                .key_id_of(ObjectRef::batch_original(batch))
                .await?
            {
                batches.push((batch, key));
            }
        }
    }
    let worker_state = state.clone();
    let lookup = ids.clone();
    let documents =
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(DocumentId, Vec<String>)>> {
            lookup
                .into_iter()
                .map(|id| Ok((id, key_ids_of(&worker_state, id)?)))
                .collect()
        })
        .await??;
    // Each earlier version destroyed with it is audited too, under its own patient.
    let by_user = by.parse::<crate::domain::UserId>().ok();
    for version in versions.iter().skip(1) {
        state
            .db
            .append_audit(&crate::store::audit_log::AuditEntry {
                user_id: by_user,
                role: None,
                action: "delete",
                patient_id: Some(version.patient_id),
                document_id: Some(version.id),
                outcome: crate::domain::Outcome::Ok,
                client_addr: None,
                request_id: Some(crate::error::current_request_id()),
                purpose_of_use: Some("HOPERAT".to_string()),
                break_glass: false,
                detail: Some(serde_json::json!({ "destroyed_with": doc.id, "by": by })),
            })
            .await?;
    }
    if !state
        .db
        .tombstone_document(&documents, &batches, DESTROYABLE, by, reason, certificate)
        .await?
    {
        return Ok(false);
    }
    for (id, keys) in &documents {
        tracing::info!(document_id = %id, keys = keys.len(), "document keys destroyed");
    }
    for (batch, _) in &batches {
        state
            .vault
            .delete_blob(ObjectRef::batch_original(*batch))
            .await;
        tracing::info!(batch_id = %batch, "batch file destroyed with pages that were shredded");
    }
    for id in &ids {
        purge(state, *id).await?;
    }
    Ok(true)
}

/// The keyring rows of a document's objects (read from their headers).
fn key_ids_of(state: &Archive, id: DocumentId) -> anyhow::Result<Vec<String>> {
    let mut key_ids = Vec::new();
    for name in blobs_of(state, id)? {
        // A blob that is not an object (cut short by a crash) has no key to destroy.
        key_ids.extend(state.vault.stored_key_id(&name)?);
    }
    key_ids.sort();
    key_ids.dedup();
    Ok(key_ids)
}

/// Removes what is left of a tombstone: index entries, blobs; then marks it purged. In a
/// process that does not hold the index writer (a standby API node) the tombstone is left
/// for the writer, which purges tombstones every few seconds ([`finish_pending`]): the
/// document's keys are destroyed already, so nothing of it can be read meanwhile.
async fn purge(state: &Archive, id: DocumentId) -> anyhow::Result<()> {
    if !state.writes_index() {
        tracing::info!(document_id = %id, "document left for the index writer to purge");
        return Ok(());
    }
    state.db.truncate_wal_soon().await;
    state.index_writer()?.purge_document(id.0).await?;
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

/// Finishes shredding interrupted by a stop, or left by a standby (run by the index writer's
/// holder when it takes the role, then every few seconds).
pub async fn finish_pending(state: &Archive) -> anyhow::Result<usize> {
    let pending = state.db.unpurged_tombstones().await?;
    for id in &pending {
        purge(state, *id).await?;
    }
    Ok(pending.len())
}
