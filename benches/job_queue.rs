//! The job queue's own cost, on SQLite and on PostgreSQL: what a worker pays the store per
//! job besides OCR (claim with its lease, one lease renewal, finish), with 1 and 2 workers
//! claiming at once. PostgreSQL runs in a throwaway cluster with its durable defaults
//! (`fsync`, `synchronous_commit` on), SQLite as the service opens it (WAL,
//! `synchronous=FULL`). Goal: under 5 ms a job on PostgreSQL (a job is a document of one
//! or more pages, so this bounds the cost per page).
//!
//! `cargo bench --profile dev --bench job_queue` (`CV_BENCH_JOBS`, default 2000 per run;
//! without `--bench`, as under `cargo test --all-targets`, 20)

use std::time::{Duration, Instant};

use chartvault::config::DatabaseLocation;
use chartvault::domain::{Category, DocumentId, Mrn, Role};
use chartvault::store::documents::NewDocument;
use chartvault::store::phi::PhiCipher;
use chartvault::store::prelude::*;
use chartvault::store::row_mac::RowMac;
use chartvault::store::Db;
use chartvault_storage::testsuite::postgres::{bin_dir, Postgres};
use chartvault_storage::{DataKey, KeyId};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let benching = std::env::args().any(|a| a == "--bench");
    let jobs: usize = std::env::var("CV_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 2000 } else { 20 });
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::open(&dir.path().join("chartvault.db")).await.unwrap();
    let Some(bin) = bin_dir() else {
        eprintln!("no PostgreSQL: nothing to compare");
        return;
    };
    let cluster = Postgres::start_durable(&bin);
    let postgres = Db::open_at(&DatabaseLocation::Postgres(cluster.new_database()))
        .await
        .unwrap();
    println!("job queue: {jobs} jobs per run; per job: claim (leased), one renewal, finish");
    println!(
        "{:<11} {:>7} {:>9} {:>9} {:>9} {:>10}",
        "backend", "workers", "p50 ms", "p99 ms", "mean ms", "jobs/s"
    );
    for (name, db) in [("sqlite", &sqlite), ("postgresql", &postgres)] {
        db.set_phi(PhiCipher::from_keys(
            KeyId::generate(),
            DataKey::generate(),
            DataKey::generate(),
        ));
        db.set_row_mac(RowMac::from_key(DataKey::generate()));
        let user = db.create_user("bench", Role::Records).await.unwrap();
        for workers in [1, 2] {
            fill(db, jobs, user).await;
            let (mut times, elapsed) = drain(db, workers).await;
            assert_eq!(times.len(), jobs, "every job claimed once");
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let mean = times.iter().sum::<Duration>() / times.len() as u32;
            println!(
                "{name:<11} {workers:>7} {:>9.2} {:>9.2} {:>9.2} {:>10.0}",
                ms(times[times.len() / 2]),
                ms(times[(times.len() * 99 / 100).min(times.len() - 1)]),
                ms(mean),
                jobs as f64 / elapsed.as_secs_f64()
            );
        }
    }
}

/// `jobs` documents queued, as uploads leave them.
async fn fill(db: &Db, jobs: usize, user: chartvault::domain::UserId) {
    let mut tx = db.begin().await.unwrap();
    let patient = db
        .ensure_patient(&mut tx, &Mrn::parse("BENCH-1").unwrap(), "P", None)
        .await
        .unwrap();
    for _ in 0..jobs {
        let doc = NewDocument {
            id: DocumentId::new_random(),
            patient_id: patient,
            document_type: "progress-note".into(),
            category: Category::general(),
            service_date: None,
            encounter: None,
            content_type: "image/png".into(),
            sha256: "00".repeat(32),
            sha1: None,
            size_bytes: 10,
            page_count: 1,
            created_by: user,
            sop_instance_uid: None,
            qa_reason: None,
        };
        db.insert_document_with_job(&mut tx, &doc).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// `workers` loops claim, renew and finish until the queue is empty: each job's time, and
/// the whole run's.
async fn drain(db: &Db, workers: usize) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut loops = Vec::new();
    for _ in 0..workers {
        let db = db.clone();
        loops.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let t = Instant::now();
                let Some(job) = db
                    .claim_job(chartvault::store::jobs::Claim::Any)
                    .await
                    .unwrap()
                else {
                    return times;
                };
                assert!(db.renew_job_lease(&job).await.unwrap());
                db.finish_job(&job, job.document_id).await.unwrap();
                times.push(t.elapsed());
            }
        }));
    }
    let mut times = Vec::new();
    for l in loops {
        times.extend(l.await.unwrap());
    }
    (times, started.elapsed())
}
