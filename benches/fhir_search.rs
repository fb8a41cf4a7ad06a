//! FHIR DocumentReference searches at scale: 100,000 pages (10,000 documents of 10 pages,
//! 200 patients) written straight through the store and the encrypted index (no OCR), then
//! searched over HTTP as an EHR would, `patient+category+date` and `patient+_content`.
//! Goal: p50 ≤ 20 ms for each.
//!
//! `cargo bench --profile dev --bench fhir_search` (`CV_BENCH_PAGES` to change the size)

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use chartvault::store::prelude::*;
use chartvault_index::PageRecord;
use helpers::*;

const PAGES_PER_DOCUMENT: usize = 10;
const PATIENTS: usize = 200;
const WORDS: [&str; 24] = [
    "patient",
    "history",
    "examination",
    "blood",
    "pressure",
    "pulse",
    "chest",
    "clear",
    "abdomen",
    "soft",
    "plan",
    "review",
    "clinic",
    "weeks",
    "tablets",
    "daily",
    "pain",
    "left",
    "right",
    "knee",
    "follow",
    "discharge",
    "ward",
    "nurse",
];
/// One page in 50 carries a rarer word.
const MARKERS: [&str; 5] = [
    "metformin",
    "warfarin",
    "amoxicillin",
    "ramipril",
    "atorvastatin",
];

fn main() {
    std::env::set_var("OMP_THREAD_LIMIT", "1");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

fn page_text(n: usize) -> String {
    let mut state = (n as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut words = Vec::with_capacity(81);
    for _ in 0..80 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        words.push(WORDS[(state >> 33) as usize % WORDS.len()]);
    }
    if n % 50 == 7 {
        words.push(MARKERS[(n / 50) % MARKERS.len()]);
    }
    words.join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

async fn run() {
    let pages: usize = std::env::var("CV_BENCH_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let documents = pages / PAGES_PER_DOCUMENT;
    let app = spawn_app().await;
    let (user, _, _) = app.state.db.user_by_name("rec").await.unwrap().unwrap();

    let started = Instant::now();
    let mut patients = Vec::with_capacity(PATIENTS);
    let mut tx = app.state.db.begin_write().await.unwrap();
    for n in 0..PATIENTS {
        let mrn = chartvault::domain::Mrn::parse(&format!("FS-{n:05}")).unwrap();
        let id = app
            .state
            .db
            .ensure_patient(&mut tx, &mrn, &format!("Bench Patient{n}"), None)
            .await
            .unwrap();
        patients.push(id);
    }
    tx.commit().await.unwrap();
    // The document rows, as indexed documents leave them (no originals: searches do not
    // read them).
    let now = chartvault::store::now();
    let mut sql = app.sql.begin().await.unwrap();
    let mut records = Vec::with_capacity(pages);
    for d in 0..documents {
        let id = uuid::Uuid::from_u64_pair(0xbe7c_0000_0000_0000 | d as u64, d as u64);
        let patient = patients[d % PATIENTS];
        let document_type = ["progress-note", "discharge-summary", "letter"][d % 3];
        let service_date = chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap()
            + chrono::Duration::days((d % 3650) as i64);
        sqlx::query(
            "INSERT INTO documents (id, patient_id, document_type, category, service_date,
                content_type, sha256, size_bytes, page_count, status, created_at, created_by,
                indexed_at)
             VALUES ($1, $2, $3, 'general', $4, 'image/tiff', $5, 1000, $6, 'indexed', $7, $8, $7)",
        )
        .bind(id.to_string())
        .bind(patient.to_string())
        .bind(document_type)
        .bind(service_date.to_string())
        .bind(format!("{:064x}", d))
        .bind(PAGES_PER_DOCUMENT as i64)
        .bind(&now)
        .bind(user.to_string())
        .execute(&mut *sql)
        .await
        .unwrap();
        for page in 0..PAGES_PER_DOCUMENT {
            records.push(PageRecord {
                document_id: id,
                page: page as u32 + 1,
                patient_id: patient.0,
                patient_name: format!("Bench Patient{}", d % PATIENTS),
                document_type: document_type.to_string(),
                category: "general".to_string(),
                service_date: Some(service_date),
                text: page_text(d * PAGES_PER_DOCUMENT + page),
            });
        }
    }
    sql.commit().await.unwrap();
    while !records.is_empty() {
        let batch: Vec<PageRecord> = records.drain(..records.len().min(10_000)).collect();
        app.state
            .index_writer()
            .unwrap()
            .index_pages(batch)
            .await
            .unwrap();
    }
    // Searches see what the index committed (every `index.commit_interval_ms`): measured
    // once every page is in.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let index = app.state.index().unwrap().clone();
        let (in_index, _) = tokio::task::spawn_blocking(move || index.stats())
            .await
            .unwrap();
        if in_index as usize >= pages {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the index holds {in_index} of {pages} pages"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "fhir search: {pages} pages ({documents} documents, {PATIENTS} patients) written through \
         the store and the encrypted index in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let searches: [(&str, Box<dyn Fn(usize) -> String>); 2] = [
        (
            "patient+category+date",
            Box::new(|n: usize| {
                format!(
                    "/fhir/DocumentReference?patient={}&category=clinical-note&date=ge2020-01-01&_count=20",
                    patients[n % PATIENTS]
                )
            }),
        ),
        (
            "patient+_content",
            Box::new(|n: usize| {
                format!(
                    "/fhir/DocumentReference?patient={}&_content={}&_count=20",
                    patients[n % PATIENTS],
                    MARKERS[n % MARKERS.len()]
                )
            }),
        ),
    ];
    for (name, url) in &searches {
        // Warm up, then measure.
        for n in 0..20 {
            let response = app.get(&app.records, &url(n)).await;
            assert_eq!(response.status(), 200);
        }
        let mut times = Vec::with_capacity(200);
        let mut found = 0.0;
        for n in 0..200 {
            let started = Instant::now();
            let response = app.get(&app.records, &url(n)).await;
            let bundle: serde_json::Value = response.json().await.unwrap();
            times.push(started.elapsed());
            found += bundle["total"].as_f64().unwrap();
        }
        assert!(found > 0.0, "{name} found nothing");
        times.sort();
        let p50 = percentile(&times, 0.5);
        println!(
            "{name:<22} p50 {p50:>6.1} ms  p95 {:>6.1} ms  ({:.1} documents found on average; goal p50 <= 20 ms: {})",
            percentile(&times, 0.95),
            found / 200.0,
            if p50 <= 20.0 { "met" } else { "missed" }
        );
    }
}
