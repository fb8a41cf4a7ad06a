//! The job loop. Claims a document's job (or a batch) and runs it: [`super::pages`] does a
//! document's pages, [`super::batch`] splits a batch. Every step is idempotent, so after a
//! crash the job is simply run again: pages already stored are skipped, and re-indexing a page
//! replaces it.
//!
//! A claim is a lease ([`crate::store::jobs::LEASE_SECS`]): renewed while the work goes on,
//! so a job whose worker died (a process killed on another node sharing PostgreSQL) goes
//! back to the queue when its lease runs out, found by the sweep each process runs.

use std::future::Future;
use std::time::Duration;

use crate::app::Archive;
use crate::ingest::pages::process_document;
use crate::store::jobs::Job;
use crate::store::prelude::*;

/// A job is tried this many times at most. Attempts are counted when a job is claimed, so a
/// document whose processing took the whole process down (and is claimed again at every
/// start) fails with a reason instead of taking it down again and again.
const MAX_ATTEMPTS: i64 = 3;

/// Starts the job loops: two per OCR engine, each working on one document at a time with up
/// to one page more than there are engines in flight. While one document waits for its
/// pages to be decoded, stored or committed to the index, the engines already have the
/// next pages queued: OCR, the bottleneck, never waits for the rest.
pub fn spawn(state: Archive, engines: usize) {
    for _ in 0..engines.max(1) * 2 {
        let state = state.clone();
        tokio::spawn(async move { run(state).await });
    }
    tokio::spawn(sweep(state));
}

/// How often a lease is renewed, and expired ones are looked for: a third of the lease.
const RENEW_EVERY: Duration = Duration::from_secs(crate::store::jobs::LEASE_SECS as u64 / 3);

/// Puts the jobs and batches whose lease ran out back in the queue, until shutdown.
async fn sweep(state: Archive) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RENEW_EVERY) => {}
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

/// Runs `work`, renewing its lease every [`RENEW_EVERY`] until it is done.
async fn holding_lease<T>(state: &Archive, lease: Leased<'_>, work: impl Future<Output = T>) -> T {
    tokio::pin!(work);
    let mut renew =
        tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
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

async fn run(state: Archive) {
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        let claimed = match state.db.claim_job().await {
            Ok(Some(job)) => Ok(Some(Claimed::Job(job))),
            Ok(None) => state
                .db
                .claim_batch()
                .await
                .map(|batch| batch.map(Claimed::Batch)),
            Err(error) => Err(error),
        };
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
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
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

async fn process(state: &Archive, job: Job) {
    let doc_id = job.document_id;
    let started = std::time::Instant::now();
    match holding_lease(state, Leased::Job(&job), process_document(state, doc_id)).await {
        Ok(pages) => {
            if let Err(error) = state.db.finish_job(&job, doc_id).await {
                tracing::error!(document_id = %doc_id, error = %error, "could not mark the job done");
                return;
            }
            state.metrics.documents_indexed.inc();
            tracing::info!(document_id = %doc_id, pages, elapsed_ms = started.elapsed().as_millis() as u64, "document indexed");
        }
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
