//! The job loop. Claims a document's job (or a batch) and runs it: [`super::pages`] does a
//! document's pages, [`super::batch`] splits a batch. Every step is idempotent, so after a
//! crash the job is simply run again: pages already stored are skipped, and re-indexing a page
//! replaces it.
//!
//! A document's job has two stages ([`JobStage`]): its pages are recognised and stored, then
//! indexed. The embedded archive's one process runs both in one claim. In a scaled setup,
//! `chartvault worker` processes run OCR engines and do the first stage of any job (and
//! batches), then hand the job to the index writer's process, whose loops do the second.
//!
//! A claim is a lease (`ocr.lease_seconds`): renewed while the work goes on, so a job whose
//! worker died (a process killed on another node sharing PostgreSQL) goes back to the queue
//! when its lease runs out, found by the sweep each process runs.

use std::future::Future;
use std::time::Duration;

use crate::app::Archive;
use crate::ingest::pages::{index_document, process_document, recognise_document};
use crate::store::jobs::{Claim, Job, JobStage};
use crate::store::prelude::*;

/// A job is tried this many times at most. Attempts are counted when a job is claimed, so a
/// document whose processing took the whole process down (and is claimed again at every
/// start) fails with a reason instead of taking it down again and again.
const MAX_ATTEMPTS: i64 = 3;

/// Starts the job loops and the sweep of expired leases. Each loop claims what this
/// process can do when it claims (see [`claim_now`]). Two loops per OCR engine, each
/// working on one document at a time with up to one page more than there are engines in
/// flight: while one document waits for its pages to be decoded, stored or committed to
/// the index, the engines already have the next pages queued: OCR, the bottleneck, never
/// waits for the rest. Without engines, two loops that index what workers recognised.
pub fn spawn(state: Archive) {
    for _ in 0..state.ocr.threads().max(1) * 2 {
        let state = state.clone();
        tokio::spawn(async move { run(state).await });
    }
    tokio::spawn(sweep(state));
}

/// How often a lease is renewed, and expired ones are looked for: a third of the lease.
fn renew_every(state: &Archive) -> Duration {
    Duration::from_secs(state.config.ocr.lease_seconds / 3)
}

/// How long an idle loop waits before it looks at the queue again. Work queued in this
/// process wakes it at once; work another process queued (on PostgreSQL, a worker handing
/// a recognised document to the index writer) is found at the next look.
fn idle_wait(state: &Archive) -> Duration {
    match state.db {
        crate::store::Db::Postgres(_) => Duration::from_millis(250),
        crate::store::Db::Sqlite(_) => Duration::from_secs(2),
    }
}

/// Puts the jobs and batches whose lease ran out back in the queue, until shutdown.
async fn sweep(state: Archive) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(renew_every(&state)) => {}
            _ = state.shutdown.cancelled() => return,
        }
        let requeued = match state.db.requeue_expired_jobs().await {
            Ok(jobs) => state.db.requeue_expired_batches().await.map(|b| jobs + b),
            Err(error) => Err(error),
        };
        match requeued {
            Ok(0) => {}
            Ok(requeued) => {
                tracing::warn!(
                    requeued,
                    "jobs whose worker stopped renewing went back to the queue"
                );
                state.jobs_waiting.notify_waiters();
            }
            Err(error) => tracing::error!(error = %error, "could not look for expired leases"),
        }
    }
}

/// What a running piece of work holds the lease of.
enum Leased<'a> {
    Job(&'a Job),
    Batch(crate::domain::BatchId),
}

/// Runs `work`, renewing its lease every third of the lease until it is done.
async fn holding_lease<T>(state: &Archive, lease: Leased<'_>, work: impl Future<Output = T>) -> T {
    tokio::pin!(work);
    let every = renew_every(state);
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = renew.tick() => {
                let renewed = match &lease {
                    Leased::Job(job) => state.db.renew_job_lease(job).await,
                    Leased::Batch(id) => state.db.renew_batch_lease(*id).await,
                };
                match renewed {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("a lease ran out while its work went on"),
                    Err(error) => tracing::error!(error = %error, "could not renew a lease"),
                }
            }
        }
    }
}

enum Claimed {
    Job(Job),
    Batch(crate::store::batches::Batch),
}

/// What a job loop claims now: jobs to recognise where there are OCR engines, jobs to
/// index where the index writer is (a standby that takes the writer's role over starts
/// claiming them then).
fn claim_now(state: &Archive) -> Option<Claim> {
    match (state.ocr.threads() > 0, state.writes_index()) {
        (true, true) => Some(Claim::Any),
        (true, false) => Some(Claim::Only(JobStage::Recognise)),
        (false, true) => Some(Claim::Only(JobStage::Index)),
        (false, false) => None,
    }
}

async fn run(state: Archive) {
    // Batches are recognised page by page: claimed where there are engines.
    let batches = state.ocr.threads() > 0;
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        let mut claimed = match claim_now(&state) {
            None => Ok(None),
            Some(claim) => state
                .db
                .claim_job(claim)
                .await
                .map(|job| job.map(Claimed::Job)),
        };
        if batches && matches!(claimed, Ok(None)) {
            claimed = state
                .db
                .claim_batch()
                .await
                .map(|batch| batch.map(Claimed::Batch));
        }
        match claimed {
            Ok(Some(Claimed::Job(job))) if job.attempts > MAX_ATTEMPTS => {
                give_up(&state, job).await
            }
            Ok(Some(Claimed::Job(job))) => process(&state, job).await,
            Ok(Some(Claimed::Batch(batch)))
                if batch.attempts > crate::ingest::batch::MAX_ATTEMPTS =>
            {
                crate::ingest::batch::give_up(&state, batch).await
            }
            Ok(Some(Claimed::Batch(batch))) => {
                let id = batch.id;
                holding_lease(
                    &state,
                    Leased::Batch(id),
                    crate::ingest::batch::process(&state, batch),
                )
                .await
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.jobs_waiting.notified() => {}
                    _ = tokio::time::sleep(idle_wait(&state)) => {}
                    _ = state.shutdown.cancelled() => return,
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "could not claim a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A job claimed more often than [`MAX_ATTEMPTS`]: every earlier attempt ended without a
/// result (the process stopped while working on it), so it is not run again.
async fn give_up(state: &Archive, job: Job) {
    let reason = format!(
        "processing stopped without a result {} times (the service stopped while working on \
         it); it is not tried again: check the file, then retry it (POST \
         /api/v1/documents/{{id}}/retry) or upload it again",
        job.attempts - 1
    );
    tracing::warn!(document_id = %job.document_id, attempts = job.attempts, "giving up on a job");
    state.metrics.document_failed("gave-up");
    if let Err(error) = state.db.fail_job(&job, job.document_id, &reason).await {
        tracing::error!(document_id = %job.document_id, error = %error, "could not record the job's failure");
    }
}

/// What became of a job's work.
enum Outcome {
    /// Recognised and indexed: the document is done.
    Indexed(usize),
    /// Recognised and stored, to be indexed by the process holding the index writer.
    Recognised,
}

async fn process(state: &Archive, job: Job) {
    let doc_id = job.document_id;
    let started = std::time::Instant::now();
    let indexes_here = state.writes_index();
    let work = async {
        match job.stage {
            JobStage::Index => index_document(state, doc_id).await.map(Outcome::Indexed),
            JobStage::Recognise if indexes_here => {
                process_document(state, doc_id).await.map(Outcome::Indexed)
            }
            JobStage::Recognise => recognise_document(state, doc_id)
                .await
                .map(|()| Outcome::Recognised),
        }
    };
    match holding_lease(state, Leased::Job(&job), work).await {
        Ok(Outcome::Indexed(pages)) => {
            if let Err(error) = state.db.finish_job(&job, doc_id).await {
                tracing::error!(document_id = %doc_id, error = %error, "could not mark the job done");
                return;
            }
            state.metrics.documents_indexed.inc();
            tracing::info!(document_id = %doc_id, pages, elapsed_ms = started.elapsed().as_millis() as u64, "document indexed");
        }
        Ok(Outcome::Recognised) => match state.db.hand_to_indexer(&job).await {
            Ok(true) => {
                tracing::info!(document_id = %doc_id, elapsed_ms = started.elapsed().as_millis() as u64, "document recognised, handed to the index writer");
            }
            Ok(false) => {
                tracing::warn!(document_id = %doc_id, "a recognised document's job was no longer this worker's (its lease ran out)");
            }
            Err(error) => {
                tracing::error!(document_id = %doc_id, error = %error, "could not hand a recognised document to the index writer");
            }
        },
        Err(failure) => {
            let permanent = failure.permanent || job.attempts >= MAX_ATTEMPTS;
            tracing::warn!(document_id = %doc_id, error = ?failure.error, permanent, "document processing failed");
            let result = if permanent {
                state.metrics.document_failed(failure.class());
                state.db.fail_job(&job, doc_id, &failure.reason).await
            } else {
                // Give whatever failed (disk, database) a moment before the retry.
                tokio::time::sleep(Duration::from_secs(1)).await;
                state.db.requeue_job(&job, &failure.reason).await
            };
            if let Err(error) = result {
                tracing::error!(document_id = %doc_id, error = %error, "could not record the job's failure");
            }
        }
    }
}
