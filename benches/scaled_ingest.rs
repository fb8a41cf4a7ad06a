//! OCR throughput and upload → indexed latency of the scaled setup against the embedded one,
//! on the same pages and cores:
//!
//! - embedded: one `serve` process, SQLite, its own engines (one per core);
//! - PostgreSQL with 1 worker: an API node running no engines (`ocr.engines_in_serve =
//!   false`) that indexes, and one `chartvault worker` process with one engine per core;
//! - PostgreSQL with 2 workers: the same, two worker processes of half the engines each;
//! - PostgreSQL + S3 with 2 workers: the same, the objects in a SeaweedFS bucket and the
//!   index published there after every commit.
//!
//! Throughput: every page uploaded at once (one generated 300-dpi letter page per document),
//! timed until the last is `indexed`. Latency: single pages uploaded one at a time on the
//! idle service, each timed from the upload until the service recorded it `indexed`: the
//! scaled setup adds the hand-off from the worker to the index writer's loops (a look at
//! the queue every 250 ms) to what the page costs.
//!
//! Run: `cargo bench --profile dev --bench scaled_ingest` (`CV_BENCH_PAGES`, default 8;
//! without `--bench`, as under `cargo test --all-targets`, 1 page and the embedded and
//! one-worker setups only).

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::*;

/// The setups measured: a name, how many worker processes (0: the embedded service), and
/// whether the objects are on S3.
const SETUPS: &[(&str, usize, bool)] = &[
    ("embedded (SQLite, engines in serve)", 0, false),
    ("PostgreSQL, 1 worker process", 1, false),
    ("PostgreSQL, 2 worker processes", 2, false),
    ("PostgreSQL + S3, 2 worker processes", 2, true),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let pages: u64 = std::env::var("CV_BENCH_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 8 } else { 1 });
    let latency_samples = if benching { 5 } else { 1 };
    let Some(cluster) = chartvault_storage::testsuite::postgres::shared() else {
        eprintln!("no PostgreSQL: nothing to compare");
        return;
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scans: Vec<Vec<u8>> = (0..pages).map(|n| png_of(&letter_page(900 + n))).collect();
    println!(
        "scaled ingest: {pages} letter pages, {cores} cores, {latency_samples} latency samples"
    );
    println!(
        "{:<38} {:>9} {:>9} {:>13} {:>13}",
        "setup", "seconds", "pages/s", "latency p50", "latency max"
    );
    let mut baseline = None;
    let setups = if benching { SETUPS } else { &SETUPS[..2] };
    for &(name, workers, on_s3) in setups {
        let bucket = match on_s3 {
            false => None,
            true => {
                let Some(server) = chartvault_storage::testsuite::seaweed::shared() else {
                    eprintln!("no SeaweedFS: {name} skipped");
                    continue;
                };
                server.create_bucket("chartvault-bench");
                std::env::set_var("AWS_ACCESS_KEY_ID", "chartvault");
                std::env::set_var("AWS_SECRET_ACCESS_KEY", "chartvault");
                Some(format!("http://127.0.0.1:{}", server.s3_port))
            }
        };
        let database = (workers > 0).then(|| cluster.new_database());
        let app = spawn_app_with(|c| {
            if let Some(url) = &database {
                c.database.url = Some(url.clone());
                c.ocr.engines_in_serve = false;
            }
            if let Some(endpoint) = &bucket {
                c.storage.url = Some(format!("s3://chartvault-bench/{}", std::process::id()));
                c.storage.s3.endpoint = Some(endpoint.clone());
                c.storage.s3.region = Some("us-east-1".into());
            }
        })
        .await;
        let logs = tempfile::tempdir().unwrap();
        let _workers: Vec<WorkerProcess> = (0..workers)
            .map(|n| {
                let url = database.as_deref().unwrap();
                let log = logs.path().join(format!("worker-{n}.log"));
                WorkerProcess::start(&app, url, (cores / workers).max(1), &log)
            })
            .collect();
        // A first page through every part (engines warm, connections open), not timed.
        let warm = app
            .upload(scans[0].clone(), &metadata("SC-1", "Scale Bench", "letter"))
            .await;
        app.wait_indexed(&warm).await;

        let started = Instant::now();
        let mut ids = Vec::new();
        for (n, scan) in scans.iter().enumerate() {
            let meta = metadata(&format!("SC-{}", n + 2), "Scale Bench", "letter");
            ids.push(app.upload(scan.clone(), &meta).await);
        }
        let mut last = started;
        for id in &ids {
            app.wait_indexed(id).await;
            last = last.max(instant_of(&app, id, started).await);
        }
        let seconds = last.duration_since(started).as_secs_f64();
        let rate = pages as f64 / seconds;

        let mut latencies = Vec::new();
        for n in 0..latency_samples {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let sent = Instant::now();
            let meta = metadata(&format!("SL-{n}"), "Scale Bench", "letter");
            let id = app.upload(scans[n % scans.len()].clone(), &meta).await;
            app.wait_indexed(&id).await;
            latencies.push(instant_of(&app, &id, sent).await.duration_since(sent));
        }
        latencies.sort();
        let ratio = match baseline {
            None => {
                baseline = Some(rate);
                String::new()
            }
            Some(base) => format!("  ({:.2}x embedded)", rate / base),
        };
        println!(
            "{name:<38} {seconds:>9.2} {rate:>9.3} {:>11.0}ms {:>11.0}ms{ratio}",
            latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
            latencies[latencies.len() - 1].as_secs_f64() * 1000.0,
        );
        app.stop_server();
    }
}

/// When the service recorded the document `indexed`, on the clock of `since` (an instant
/// taken just before its upload).
async fn instant_of(app: &TestApp, id: &str, since: Instant) -> Instant {
    let indexed = app.indexed_at(id).await;
    let now_wall = chrono::Utc::now();
    let now = Instant::now();
    let ago = (now_wall - indexed).to_std().unwrap_or(Duration::ZERO);
    now.checked_sub(ago).unwrap_or(since).max(since)
}
