//! What page clean-up costs beside recognition, per stage, on one engine.
//!
//! Run: `cargo bench -p chartvault-ocr --bench cleanup_cost --profile dev` (the profile the
//! service runs: this crate and its dependencies at opt-level 2). Needs ../shared/fixtures.
//!
//! Pages: `letter300_clean.png` (a dense 300-dpi letter) upright, crooked by 2°, turned 90°,
//! 180° and 270°, and turned and crooked by ±3° at once; `8087_054.3B.tif` (a real scanned
//! letter). Prints, per page, the milliseconds of recognition alone ([`OcrPool::recognize`]
//! on the page as given) and of the whole clean-up and recognition ([`OcrPool::process`]),
//! their ratio, the orientation and skew found, and the character error rate against the
//! ground truth of both readings (clean-up's, and the page read as it is, as the `tesseract`
//! command line reads it); then the time of each Rust clean-up stage. The best of three
//! runs counts, so a cold start does not.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Instant;

use chartvault_ocr::cleanup::{
    estimate_skew, ink_coverage, reduce_binarised, rotate, rotate_quarter_turns,
};
use chartvault_ocr::{character_error_rate, decode_page, sniff, Limits, OcrConfig, OcrPool};
use image::GrayImage;

fn best_of<T>(runs: usize, mut work: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let value = work();
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        last = Some(value);
    }
    (best, last.expect("at least one run"))
}

fn decode(bytes: Vec<u8>) -> (GrayImage, Option<u32>) {
    let format = sniff(&bytes).expect("a known format");
    let page = decode_page(Cursor::new(bytes), format, 0, &Limits::default()).expect("decodes");
    (page.image, page.dpi.map(|(x, _)| x.round() as u32))
}

fn main() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let read = |name: &str| {
        std::fs::read(fixtures.join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let pool = OcrPool::start(&OcrConfig {
        threads: 1,
        ..OcrConfig::default()
    })
    .expect("the OCR pool starts");

    let (letter, letter_dpi) = decode(read("letter300_clean.png"));
    let (scan, scan_dpi) = decode(read("8087_054.3B.tif"));
    let letter_truth = String::from_utf8(read("letter300.txt")).expect("UTF-8 ground truth");
    let scan_truth = String::from_utf8(read("8087_054.3B.txt")).expect("UTF-8 ground truth");
    let turned_crooked =
        |turn: u16, degrees: f32| rotate_quarter_turns(rotate(&letter, degrees), turn);
    let pages: Vec<(&str, GrayImage, Option<u32>, &str)> = vec![
        ("letter upright", letter.clone(), letter_dpi, &letter_truth),
        (
            "letter crooked 2°",
            rotate(&letter, 2.0),
            letter_dpi,
            &letter_truth,
        ),
        (
            "letter turned 90°",
            turned_crooked(90, 0.0),
            letter_dpi,
            &letter_truth,
        ),
        (
            "letter turned 180°",
            turned_crooked(180, 0.0),
            letter_dpi,
            &letter_truth,
        ),
        (
            "letter turned 270°",
            turned_crooked(270, 0.0),
            letter_dpi,
            &letter_truth,
        ),
        (
            "90° and +3°",
            turned_crooked(90, 3.0),
            letter_dpi,
            &letter_truth,
        ),
        (
            "180° and -3°",
            turned_crooked(180, -3.0),
            letter_dpi,
            &letter_truth,
        ),
        (
            "270° and -3°",
            turned_crooked(270, -3.0),
            letter_dpi,
            &letter_truth,
        ),
        ("scanned letter", scan, scan_dpi, &scan_truth),
    ];

    println!(
        "{:<20} {:>12} {:>12} {:>7} {:>9} {:>7} {:>7} {:>7}",
        "page", "recognise ms", "process ms", "ratio", "rotation", "skew°", "CER %", "as-is %"
    );
    let mut totals = (0.0, 0.0);
    for (name, image, dpi, truth) in &pages {
        let (recognise, as_is) = best_of(3, || {
            runtime
                .block_on(pool.recognize(image.clone(), *dpi))
                .expect("recognised")
        });
        let (process, page) = best_of(3, || {
            runtime
                .block_on(pool.process(image.clone(), *dpi))
                .expect("processed")
        });
        totals.0 += recognise;
        totals.1 += process;
        println!(
            "{name:<20} {recognise:>12.0} {process:>12.0} {:>7.2} {:>9} {:>7} {:>7.2} {:>7.2}",
            process / recognise,
            page.rotation,
            page.skew_degrees
                .map_or("-".to_string(), |s| format!("{s:.2}")),
            100.0 * character_error_rate(truth, &page.ocr.text),
            100.0 * character_error_rate(truth, &as_is.text),
        );
    }
    println!(
        "{:<20} {:>12.0} {:>12.0} {:>7.2}",
        "all",
        totals.0,
        totals.1,
        totals.1 / totals.0
    );

    // Below which skew is straightening not worth its rotation? Recognition of the letter
    // crooked by each angle, as scanned, against its ground truth.
    let truth = String::from_utf8(read("letter300.txt")).expect("UTF-8 ground truth");
    println!("\nCER of the letter recognised crooked, not straightened:");
    for degrees in [0.0f32, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2] {
        let crooked = rotate(&letter, degrees);
        let ocr = runtime
            .block_on(pool.recognize(crooked, letter_dpi))
            .expect("recognised");
        println!(
            "  {degrees:>4.1}°  CER {:.2} %",
            100.0 * character_error_rate(&truth, &ocr.text)
        );
    }

    println!("\nRust stages on the upright letter (ms, best of 5):");
    let (ms, _) = best_of(5, || ink_coverage(&letter, 300.0));
    println!("  ink coverage     {ms:>7.1}");
    let (ms, _) = best_of(5, || estimate_skew(&letter));
    println!("  skew estimate    {ms:>7.1}");
    let (ms, _) = best_of(5, || rotate(&letter, 0.5));
    println!("  rotate (0.5°)    {ms:>7.1}");
    let (ms, _) = best_of(5, || rotate_quarter_turns(letter.clone(), 90));
    println!("  quarter turn     {ms:>7.1}");
    let (ms, _) = best_of(5, || reduce_binarised(&letter));
    println!("  reduce for OSD   {ms:>7.1}");
    let (ms, _) = best_of(5, || chartvault_ocr::read_barcodes(&letter));
    println!("  barcode reading  {ms:>7.1}");
}
