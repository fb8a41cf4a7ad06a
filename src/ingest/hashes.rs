//! The SHA-1 of originals accepted before it was recorded at accept (FHIR's
//! `Attachment.hash`): filled in from the service's start, one document at a time, in the
//! background, reading each original as it is decrypted. Resumable: what is not done is
//! still `NULL` at the next start. An original that cannot be read is logged and left.

use sha1::Digest;

use crate::app::Archive;
use crate::domain::DocumentId;
use crate::store::objects::ObjectRef;
use crate::store::prelude::*;

/// Starts the backfill (it ends when every document has its SHA-1).
pub fn spawn_backfill(state: Archive) {
    tokio::spawn(async move {
        match backfill(&state).await {
            Ok(0) => {}
            Ok(done) => tracing::info!(documents = done, "recorded the SHA-1 of older originals"),
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "recording the SHA-1 of older originals stopped")
            }
        }
    });
}

/// Fills in every missing SHA-1; returns how many were recorded.
pub async fn backfill(state: &Archive) -> anyhow::Result<usize> {
    let mut after: Option<DocumentId> = None;
    let mut done = 0;
    loop {
        let batch = state.db.documents_without_sha1(after, 100).await?;
        let Some(last) = batch.last().copied() else {
            return Ok(done);
        };
        for id in batch {
            if state.shutdown.is_cancelled() {
                return Ok(done);
            }
            match sha1_of_original(state, id).await {
                Ok(sha1) => {
                    state.db.set_sha1(id, &sha1).await?;
                    done += 1;
                }
                Err(error) => {
                    tracing::warn!(document_id = %id, error = %format!("{error:#}"), "the original's SHA-1 could not be computed")
                }
            }
        }
        after = Some(last);
    }
}

async fn sha1_of_original(state: &Archive, id: DocumentId) -> anyhow::Result<String> {
    let reader = state.vault.open(ObjectRef::Original(id)).await?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut reader = reader;
        let mut hasher = sha1::Sha1::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = std::io::Read::read(&mut reader, &mut buffer)?;
            if read == 0 {
                return Ok(hex::encode(hasher.finalize()));
            }
            hasher.update(&buffer[..read]);
        }
    })
    .await?
}
