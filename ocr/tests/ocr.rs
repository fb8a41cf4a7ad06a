//! OCR through the engine pool with real Tesseract on real scans, compared with the
//! `tesseract` CLI on the same files.

mod common;

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use chartvault_ocr::{
    character_error_rate, decode_page, DecodedPage, Limits, OcrConfig, OcrError, OcrPool, PageOcr,
    ScanFormat,
};

const PSM: u32 = 3;

/// One two-engine pool shared by the tests of this binary (engines are created once).
fn pool() -> &'static OcrPool {
    static POOL: OnceLock<OcrPool> = OnceLock::new();
    POOL.get_or_init(|| {
        OcrPool::start(&OcrConfig {
            threads: 2,
            page_seg_mode: PSM,
            ..OcrConfig::default()
        })
        .expect("the OCR pool starts (tesseract-ocr-eng installed)")
    })
}

fn decode_fixture(dir: &Path, name: &str) -> DecodedPage {
    let bytes = std::fs::read(dir.join(name)).expect("fixture readable");
    decode_page(Cursor::new(bytes), ScanFormat::Tiff, 0, &Limits::default()).expect("decodes")
}

async fn recognize(page: DecodedPage) -> PageOcr {
    let dpi = page.dpi.map(|(x, _)| x.round() as u32);
    pool().recognize(page.image, dpi).await.expect("recognised")
}

fn ground_truth(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).expect("ground truth readable")
}

#[tokio::test]
async fn phototest_is_read_almost_perfectly() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let page = decode_fixture(&dir, "phototest.tif");
    let (width, height) = page.image.dimensions();
    let ocr = recognize(page).await;
    for word in ["quick", "brown", "dog", "jumped", "lazy", "fox"] {
        assert!(ocr.text.contains(word), "missing {word:?}");
    }
    let cer = character_error_rate(&ground_truth(&dir, "phototest.txt"), &ocr.text);
    println!("phototest.tif CER {:.2}%", cer * 100.0);
    assert!(cer < 0.02, "CER {cer}");
    assert!(
        ocr.mean_confidence > 80.0,
        "mean confidence {}",
        ocr.mean_confidence
    );

    assert!(ocr.words.len() > 40);
    for word in &ocr.words {
        assert!(word.left + word.width <= width && word.top + word.height <= height);
        assert!((0.0..=100.0).contains(&word.confidence));
    }
}

#[tokio::test]
async fn word_boxes_lie_on_their_words() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let page = decode_fixture(&dir, "phototest.tif");
    let image = page.image.clone();
    let ocr = recognize(page).await;
    let quick = ocr
        .words
        .iter()
        .find(|w| w.text == "quick")
        .expect("a word 'quick'");
    let brown = ocr
        .words
        .iter()
        .find(|w| w.text == "brown" && w.line == quick.line && w.block == quick.block)
        .expect("'brown' on the same line");
    // Same line, 'brown' right of 'quick', boxes of a 12 pt word at 200 dpi.
    assert!(brown.left > quick.left + quick.width);
    assert!(quick.top.abs_diff(brown.top) < 10);
    assert!((15..60).contains(&quick.height), "height {}", quick.height);
    assert!((50..150).contains(&quick.width), "width {}", quick.width);
    // The box holds ink, and is tight: the columns just outside it are blank paper.
    let crop = image::imageops::crop_imm(&image, quick.left, quick.top, quick.width, quick.height)
        .to_image();
    let ink = crop.pixels().filter(|p| p.0[0] < 128).count();
    assert!(
        ink * 10 > crop.pixels().len(),
        "ink share {ink}/{}",
        crop.pixels().len()
    );
    let blank_column =
        |x: u32| (quick.top..quick.top + quick.height).all(|y| image.get_pixel(x, y).0[0] > 128);
    assert!(blank_column(quick.left - 2) && blank_column(quick.left + quick.width + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_are_recognised_concurrently() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let first = decode_fixture(&dir, "phototest.tif");
    let second = decode_fixture(&dir, "eurotext.tif");
    let (a, b) = tokio::join!(recognize(first), recognize(second));
    assert!(a.text.contains("quick brown"));
    assert!(!b.text.trim().is_empty());
    assert_eq!(pool().threads(), 2);
}

fn cli_text(file: &Path) -> String {
    let output = std::process::Command::new("tesseract")
        .arg(file)
        .arg("stdout")
        .args(["--psm", &PSM.to_string()])
        .env("OMP_THREAD_LIMIT", "1")
        .output()
        .expect("tesseract runs");
    assert!(output.status.success(), "tesseract CLI failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn pool_matches_cli(image: &str, truth: &str) {
    let Some(dir) = common::fixtures() else {
        return;
    };
    if !common::tesseract_cli_available() {
        return;
    }
    let reference = ground_truth(&dir, truth);
    let ours = recognize(decode_fixture(&dir, image)).await;
    let path = dir.join(image);
    let cli = tokio::task::spawn_blocking(move || cli_text(&path))
        .await
        .expect("joined");
    let ours_cer = character_error_rate(&reference, &ours.text);
    let cli_cer = character_error_rate(&reference, &cli);
    println!(
        "{image}: pool CER {:.2}%, tesseract CLI CER {:.2}% (psm {PSM})",
        ours_cer * 100.0,
        cli_cer * 100.0
    );
    assert!(
        (ours_cer - cli_cer).abs() <= 0.01,
        "pool {ours_cer} vs CLI {cli_cer}"
    );
}

#[tokio::test]
async fn g4_letter_page_reads_as_well_as_the_cli() {
    pool_matches_cli("8087_054.3B.tif", "8087_054.3B.txt").await;
}

#[tokio::test]
async fn simulated_letter_scan_reads_as_well_as_the_cli() {
    pool_matches_cli("letter300_scan_g4.tif", "letter300.txt").await;
}

#[test]
fn engines_run_without_openmp_worker_threads() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(recognize(decode_fixture(&dir, "8087_054.3B.tif")));
    // libgomp workers inherit the name of the thread that spawned them.
    let engine_threads = std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("ocr-engine"))
        .count();
    assert_eq!(
        engine_threads,
        pool().threads(),
        "OpenMP spawned worker threads"
    );
}

#[test]
fn a_missing_language_fails_at_start_naming_the_package() {
    let error = OcrPool::start(&OcrConfig {
        threads: 1,
        language: "qqq".into(),
        ..OcrConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(error, OcrError::LanguageDataMissing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("tesseract-ocr-qqq"), "{error}");
}
