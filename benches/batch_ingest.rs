//! A 500-page CCITT G4 TIFF batch through the HTTP API: peak resident memory while it is
//! ingested, and its pages/second against the same pages uploaded one file per page.
//!
//! Pages: generated letter-size pages at 300 dpi (20 different ones, cycled), thresholded to
//! 1 bit and compressed with Group 4 like a document scanner's output. The single-page run
//! uploads 40 of them as separate one-page G4 TIFFs first; then the peak-RSS mark of the
//! process (which runs the server) is reset and the 500-page batch is uploaded as one file.
//!
//! Run: `cargo bench --profile dev --bench batch_ingest` (`BATCH_PAGES=N` for another size).

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::Instant;

use helpers::*;

fn main() {
    std::env::set_var("OMP_THREAD_LIMIT", "1");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let batch_pages: usize = std::env::var("BATCH_PAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let single_pages = 40.min(batch_pages);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let distinct: Vec<G4Page> = (0..20).map(|seed| g4_encode(&letter_page(seed))).collect();
    let app = spawn_app_with(|config| {
        config.limits.max_upload_bytes = 1 << 30;
    })
    .await;

    // One file per page.
    let singles: Vec<Vec<u8>> = (0..single_pages)
        .map(|i| g4_tiff_of_encoded([&distinct[i % distinct.len()]]))
        .collect();
    let started = Instant::now();
    let mut ids = Vec::new();
    for (i, bytes) in singles.into_iter().enumerate() {
        let mrn = format!("{:05}", 10_000 + i);
        ids.push(
            app.upload(bytes, &metadata(&mrn, "Bench Patient", "progress-note"))
                .await,
        );
    }
    for id in &ids {
        app.wait_indexed(id).await;
    }
    let single_rate = single_pages as f64 / started.elapsed().as_secs_f64();

    // One batch file.
    let batch = g4_tiff_of_encoded((0..batch_pages).map(|i| &distinct[i % distinct.len()]));
    let batch_mib = batch.len() as f64 / (1 << 20) as f64;
    // Reset the peak-RSS mark: from here it measures the batch alone.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (rss_before, _) = rss_mib();
    let started = Instant::now();
    let id = app
        .upload(batch, &metadata("20000", "Batch Patient", "chart"))
        .await;
    let accepted = started.elapsed();
    // The helper's five-minute wait is too short for 500 pages.
    let doc = app
        .wait_processed_within(&id, std::time::Duration::from_secs(3 * 3600))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(doc["page_count"], batch_pages);
    let batch_rate = batch_pages as f64 / elapsed.as_secs_f64();
    let (_, peak) = rss_mib();

    println!("batch ingest: {batch_pages}-page G4 TIFF ({batch_mib:.1} MiB), {cores} cores");
    println!("single pages:  {single_pages} one-page uploads     {single_rate:>6.3} pages/s");
    println!(
        "batch:         1 upload of {batch_pages} pages        {batch_rate:>6.3} pages/s  \
         ({:.1} s; acknowledged after {:.2} s)",
        elapsed.as_secs_f64(),
        accepted.as_secs_f64()
    );
    println!(
        "ratio (batch / single pages): {:.2}",
        batch_rate / single_rate
    );
    println!(
        "peak resident memory during the batch: {peak:.0} MiB (process, server included; \
         {rss_before:.0} MiB before the upload)"
    );
}
