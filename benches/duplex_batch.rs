//! A duplex-scanned batch through `/batches` against OCRmyPDF on the same pages.
//!
//! The batch (generated here, 300 dpi, 1 bit, CCITT G4 as a document scanner sends it) is 9
//! pages: 3 barcode cover sheets (Data Matrix, QR, Code 128, in the default cover format),
//! 2 blank backs and 4 chart pages, filed as 3 documents of 3 patients. The service is timed
//! from the upload until every document cut from the batch is `indexed` (every page
//! searchable); the baseline is `OMP_THREAD_LIMIT=1 ocrmypdf --jobs N -O0 --output-type pdf`
//! on the same multi-page TIFF, N the number of cores. Prints both times and their ratio.
//!
//! Run: `cargo bench --profile dev --bench duplex_batch`. The baseline needs OCRmyPDF
//! (`apt-get install ocrmypdf`); without it only the service is timed.

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::Instant;

use chartvault_ocr::{render_cover_page, CoverSheetFormat, Symbology};
use helpers::*;
use image::GrayImage;

/// The batch: (patients as (MRN, name), pages).
fn duplex_batch() -> (Vec<(&'static str, &'static str)>, Vec<GrayImage>) {
    let format = CoverSheetFormat::default();
    let patients = vec![
        ("DX-2001", "Dora Duplex"),
        ("DX-2002", "Edwin Duplex"),
        ("DX-2003", "Fern Duplex"),
    ];
    let covers = [
        (
            Symbology::DataMatrix,
            format.encode("DX-2001", "progress-note", None, None),
        ),
        (
            Symbology::Qr,
            format.encode("DX-2002", "discharge-summary", None, None),
        ),
        (
            Symbology::Code128,
            format.encode("DX-2003", "lab-report", None, None),
        ),
    ];
    let cover = |i: usize| render_cover_page(covers[i].0, &covers[i].1);
    let pages = vec![
        cover(0),
        blank_back(2550, 3300, 1),
        letter_page(11),
        letter_page(12),
        cover(1),
        blank_back(2550, 3300, 2),
        letter_page(13),
        cover(2),
        letter_page(14),
    ];
    (patients, pages)
}

fn main() {
    std::env::set_var("OMP_THREAD_LIMIT", "1");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (patients, pages) = duplex_batch();
    let batch = g4_tiff_of(&pages);
    println!(
        "duplex batch: {} pages (3 covers, 2 blank backs, 4 chart pages), {cores} cores",
        pages.len()
    );

    let app = spawn_app().await;
    // Cover sheets file against known patients: admit them first (not timed).
    for (seed, (mrn, name)) in patients.iter().enumerate() {
        let id = app
            .upload(
                png_of(&scanned_page(&["Admission form"], 0.0, 100 + seed as u64)),
                &metadata(mrn, name, "admission"),
            )
            .await;
        app.wait_indexed(&id).await;
    }
    let started_at = chrono::Utc::now();
    let (status, accepted) = json_of(app.upload_batch_as(&app.records, batch.clone()).await).await;
    assert_eq!(status, 202, "{accepted}");
    let split = app
        .wait_split(accepted["id"].as_str().expect("a batch id"))
        .await;
    let segments = split["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 3, "three documents: {split}");
    // Until the last document was indexed, as the service recorded it: the polling only waits.
    let mut last = started_at;
    for segment in segments {
        assert_eq!(segment["status"], "filed", "{segment}");
        let id = segment["document_id"].as_str().expect("a document id");
        app.wait_indexed(id).await;
        last = last.max(app.indexed_at(id).await);
    }
    let service = (last - started_at)
        .to_std()
        .expect("indexed after the upload")
        .as_secs_f64();
    println!("chartvault /batches → every page searchable: {service:>6.2} s");
    drop(app);

    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("batch.tif");
    std::fs::write(&input, &batch).unwrap();
    let output = work.path().join("batch.pdf");
    let started = Instant::now();
    let ocrmypdf = Command::new("ocrmypdf")
        .args([
            "--jobs",
            &cores.to_string(),
            "-O0",
            "--output-type",
            "pdf",
            "--quiet",
        ])
        .arg(&input)
        .arg(&output)
        .env("OMP_THREAD_LIMIT", "1")
        .status();
    match ocrmypdf {
        Ok(status) if status.success() => {
            let baseline = started.elapsed().as_secs_f64();
            println!("ocrmypdf --jobs {cores} -O0 --output-type pdf:     {baseline:>6.2} s");
            println!(
                "ratio (OCRmyPDF time / chartvault time): {:.2}",
                baseline / service
            );
        }
        Ok(status) => panic!("ocrmypdf failed: {status}"),
        Err(_) => println!("ocrmypdf is not installed (apt-get install ocrmypdf): no baseline"),
    }
}
