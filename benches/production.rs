//! A 1,000-page production through the HTTP API: seconds, pages per second, and the peak
//! resident memory it adds, against a 100-page production of the same pages. The memory a
//! production adds must not grow with its page count (pages are decrypted, stamped and
//! written one at a time, and the PDF is encrypted as it streams to the blob store).
//!
//! Pages: ten generated letter-size pages at 300 dpi, OCRed once by the real pipeline (one
//! 10-page TIFF), then filed again as 100 more documents by copying their stored
//! artifacts (the production reads stored pages, not OCR). The 100-page production covers
//! the first ten documents; the 1,000-page one all hundred. Both are subpoena productions:
//! certification, Bates stamps, invisible text layer, manifest. Before each, the process's
//! peak-RSS mark is reset (`/proc/self/clear_refs`), so each peak is that production's own.
//!
//! Run: `cargo bench --profile dev --bench production` (`PRODUCTION_DOCS=N` for another
//! number of 10-page documents).

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::time::Instant;

use chartvault::domain::DocumentId;
use chartvault::store::documents::NewDocument;
use chartvault::store::prelude::*;
use chartvault::store::vault::ObjectRef;
use helpers::*;
use serde_json::{json, Value};

fn main() {
    std::env::set_var("OMP_THREAD_LIMIT", "1");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

/// Files `doc` again as a new document of `document_type`: its original and page artifacts
/// copied under the new identity, its pages indexed by its job.
async fn refile(app: &TestApp, doc: DocumentId, document_type: &str) -> DocumentId {
    let state = &app.state;
    let old = state.db.document(doc).await.unwrap().unwrap();
    let pages = state.db.pages(doc).await.unwrap();
    let new_id = DocumentId::new_random();
    let key = state.vault.new_key().unwrap();
    let reader = state.vault.open(ObjectRef::Original(doc)).await.unwrap();
    let vault = state.vault.clone();
    let key = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut writer = vault.staging_writer(new_id, &key).unwrap();
        std::io::copy(&mut reader, &mut writer).unwrap();
        writer.flush().unwrap();
        writer.finish().unwrap().commit().unwrap();
        vault.promote_staging(new_id).unwrap();
        key
    })
    .await
    .unwrap();
    for page in &pages {
        state
            .vault
            .copy_page(
                ObjectRef::page_artifacts(doc, page.page),
                ObjectRef::page_artifacts(new_id, page.page),
            )
            .await
            .unwrap();
    }
    let (user, _, _) = state.db.user_by_name("rec").await.unwrap().unwrap();
    let new_doc = NewDocument {
        id: new_id,
        patient_id: old.patient_id,
        document_type: document_type.to_string(),
        category: old.category.clone(),
        service_date: old.service_date,
        encounter: None,
        content_type: old.content_type.clone(),
        sha256: old.sha256.clone(),
        sha1: old.sha1.clone(),
        size_bytes: old.size_bytes as u64,
        page_count: old.page_count,
        created_by: user,
        sop_instance_uid: None,
        qa_reason: None,
    };
    let mut tx = state.db.begin().await.unwrap();
    state
        .db
        .insert_document_with_pages(&mut tx, &key, &new_doc, &pages)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    state.jobs_waiting.notify_one();
    new_id
}

async fn produce(app: &TestApp, document_types: &[&str]) -> (f64, Value) {
    let release: Value = app
        .post_json(
            &app.legal,
            "/api/v1/releases",
            &json!({
                "legal_basis": "subpoena",
                "requester": { "name": "Benchmark Counsel" },
                "recipient": { "name": "Benchmark Counsel", "address": "1 Court Street" },
                "satisfactory_assurances": "notice to the patient",
                "received_on": "2026-11-20",
                "patients": ["BENCH-1"],
                "document_types": document_types,
                "bates_prefix": "BENCH",
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap();
    let started = Instant::now();
    let response = app
        .post_json(
            &app.legal,
            &format!("/api/v1/releases/{id}/productions"),
            &json!({ "custodian": "Benchmark Custodian" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let produced: Value = response.json().await.unwrap();
    (started.elapsed().as_secs_f64(), produced)
}

async fn run() {
    let documents: usize = std::env::var("PRODUCTION_DOCS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
        .max(10);
    let app = spawn_app().await;
    let pages: Vec<image::GrayImage> = (0..10).map(letter_page).collect();
    let started = Instant::now();
    let first = app
        .upload(
            tiff_of(&pages),
            &metadata("BENCH-1", "Benchmark Patient", "seed"),
        )
        .await;
    app.wait_indexed(&first).await;
    eprintln!(
        "OCRed the 10 pages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let first: DocumentId = first.parse().unwrap();
    let mut ids = Vec::new();
    for n in 0..documents {
        let document_type = if n < 10 { "sample" } else { "bulk" };
        ids.push(refile(&app, first, document_type).await);
    }
    for id in &ids {
        app.wait_indexed(&id.to_string()).await;
    }
    eprintln!("filed {documents} documents of 10 pages");

    let mut results = Vec::new();
    for (label, types) in [
        ("100 pages", vec!["sample"]),
        ("all pages", vec!["sample", "bulk"]),
    ] {
        let (rss_before, _) = rss_mib();
        // Reset the peak-RSS mark to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let (seconds, produced) = produce(&app, &types).await;
        let (_, peak) = rss_mib();
        let manifest = &produced["manifest"];
        let record_pages = manifest["pages"].as_array().unwrap().len();
        let bytes = produced["production"]["size_bytes"].as_u64().unwrap();
        results.push((record_pages, peak, peak - rss_before));
        println!(
            "production of {record_pages} pages ({label}): {seconds:.2} s, {:.0} pages/s, \
             {:.0} MiB PDF, {} PDF pages; peak RSS {peak:.0} MiB, {:.0} MiB above the \
             {rss_before:.0} MiB before it",
            record_pages as f64 / seconds,
            bytes as f64 / (1024.0 * 1024.0),
            manifest["pdf_pages"],
            peak - rss_before,
        );
    }
    let (small_pages, small_peak, small_growth) = results[0];
    let (large_pages, large_peak, large_growth) = results[1];
    println!(
        "peak RSS of the process: {small_peak:.0} MiB during {small_pages} pages, \
         {large_peak:.0} MiB during {large_pages} pages ({:+.0} MiB for {:.0}x the pages); \
         above the RSS just before: {small_growth:.0} and {large_growth:.0} MiB",
        large_peak - small_peak,
        large_pages as f64 / small_pages as f64,
    );
}
