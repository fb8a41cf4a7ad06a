//! Page clean-up before OCR, with real Tesseract (OSD and recognition) on real scans: pages
//! come out upright and straight, blank pages are recognised as blank, and high-resolution
//! scans are brought to 300 dpi.

mod common;

use std::io::Cursor;
use std::sync::OnceLock;

use chartvault_ocr::cleanup::{estimate_skew, rotate, rotate_quarter_turns};
use chartvault_ocr::{decode_page, sniff, Limits, OcrConfig, OcrPool, ProcessedPage};
use image::{GrayImage, Luma};

fn pool() -> &'static OcrPool {
    static POOL: OnceLock<OcrPool> = OnceLock::new();
    POOL.get_or_init(|| {
        OcrPool::start(&OcrConfig {
            threads: 2,
            ..OcrConfig::default()
        })
        .expect("the OCR pool starts (tesseract-ocr-eng and -osd installed)")
    })
}

fn decode(bytes: Vec<u8>) -> (GrayImage, Option<u32>) {
    let format = sniff(&bytes).expect("a known format");
    let page = decode_page(Cursor::new(bytes), format, 0, &Limits::default()).expect("decodes");
    (page.image, page.dpi.map(|(x, _)| x.round() as u32))
}

async fn process(image: GrayImage, dpi: Option<u32>) -> ProcessedPage {
    pool().process(image, dpi).await.expect("processed")
}

fn words(page: &ProcessedPage) -> String {
    page.ocr.text.to_lowercase()
}

#[tokio::test]
async fn sideways_and_upside_down_pages_are_turned_upright() {
    for (name, rotation) in [
        ("phototest-rotated-L.png", 90u16),
        ("phototest-rotated-180.png", 180),
    ] {
        let Some(bytes) = common::fixture_bytes(name) else {
            return;
        };
        let (image, dpi) = decode(bytes);
        let (width, height) = image.dimensions();
        let page = process(image, dpi).await;
        assert_eq!(page.rotation, rotation, "{name}");
        assert!(!page.blank);
        let expected = if rotation == 180 {
            (width, height)
        } else {
            (height, width)
        };
        assert_eq!(page.image.dimensions(), expected, "{name}");
        let text = words(&page);
        for word in ["quick", "brown", "lazy", "jumped"] {
            assert!(text.contains(word), "{name}: {word:?} not found");
        }
    }
}

#[tokio::test]
async fn a_crooked_scan_is_straightened() {
    let Some(bytes) = common::fixture_bytes("letter300_scan_g4.tif") else {
        return;
    };
    let (image, dpi) = decode(bytes);
    let before = estimate_skew(&image).expect("a text page has a skew");
    let page = process(image, dpi).await;
    let after = estimate_skew(&page.image).expect("still a text page");
    println!("letter300_scan_g4.tif: skew {before:.2}° before, {after:.2}° after");
    assert!(
        before.abs() > 1.0,
        "the fixture is skewed by 1.7°: {before}"
    );
    assert!(after.abs() < 0.5, "stored skew {after}");
    assert_eq!(page.rotation, 0);
    assert!(words(&page).contains("metformin"));
}

#[tokio::test]
async fn a_letter_scanned_turned_any_quarter_way_comes_out_upright() {
    let Some(bytes) = common::fixture_bytes("letter300_clean.png") else {
        return;
    };
    let (clean, dpi) = decode(bytes);
    let upright = process(clean.clone(), dpi).await;
    assert_eq!(upright.rotation, 0);
    for turn in [90u16, 180, 270] {
        let page = process(rotate_quarter_turns(clean.clone(), turn), dpi).await;
        assert_eq!(page.rotation, (360 - turn) % 360, "scanned turned {turn}°");
        assert_eq!(page.image.dimensions(), clean.dimensions());
        assert!(words(&page).contains("metformin"), "scanned turned {turn}°");
    }
}

#[tokio::test]
async fn a_page_cleaned_up_without_reading_is_straightened_and_has_no_text() {
    let Some(bytes) = common::fixture_bytes("letter300_clean.png") else {
        return;
    };
    let (clean, dpi) = decode(bytes);
    let page = pool()
        .clean_up(rotate(&clean, 2.0), dpi)
        .await
        .expect("cleaned up");
    assert!(page.straightened() && !page.blank);
    let after = estimate_skew(&page.image).expect("a text page");
    assert!(after.abs() < 0.5, "stored skew {after}");
    assert!(page.ocr.words.is_empty() && page.ocr.text.is_empty());
}

#[tokio::test]
async fn generated_pages_rotated_by_three_degrees_are_stored_straight() {
    let Some(bytes) = common::fixture_bytes("letter300_clean.png") else {
        return;
    };
    let (clean, dpi) = decode(bytes);
    for degrees in [3.0f32, -3.0] {
        let page = process(rotate(&clean, degrees), dpi).await;
        let corrected = page.skew_degrees.expect("skew measured");
        let after = estimate_skew(&page.image).expect("a text page");
        println!("rotated {degrees}°: corrected {corrected:.2}°, stored skew {after:.2}°");
        assert!((corrected - degrees).abs() < 0.3, "{corrected}");
        assert!(after.abs() < 0.5, "stored skew {after}");
        assert!(words(&page).contains("metformin"));
    }
}

#[tokio::test]
async fn blank_backs_are_flagged_and_not_recognised() {
    // A scanned blank back: paper-gray with speckle noise and a dark scanner edge.
    let mut state = 7u64;
    let page = GrayImage::from_fn(2550, 3300, |x, _| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if x < 30 || (state >> 40).is_multiple_of(300) {
            Luma([20])
        } else {
            Luma([235])
        }
    });
    let processed = process(page, Some(300)).await;
    assert!(processed.blank, "ink {}", processed.ink);
    assert!(processed.ocr.words.is_empty());
    assert_eq!(processed.image.dimensions(), (2550, 3300));

    // A page with one short handwritten-size line is not blank.
    let Some(bytes) = common::fixture_bytes("phototest.tif") else {
        return;
    };
    let (image, dpi) = decode(bytes);
    let processed = process(image, dpi).await;
    assert!(!processed.blank, "ink {}", processed.ink);
}

#[tokio::test]
async fn six_hundred_dpi_scans_are_recognised_at_three_hundred() {
    let Some(bytes) = common::fixture_bytes("letter300_clean.png") else {
        return;
    };
    let (clean, _) = decode(bytes);
    let (width, height) = clean.dimensions();
    let large = image::imageops::resize(
        &clean,
        width * 2,
        height * 2,
        image::imageops::FilterType::Triangle,
    );
    let page = process(large, Some(600)).await;
    assert_eq!(page.dpi, 300);
    assert_eq!(page.image.dimensions(), (width, height));
    assert!(words(&page).contains("metformin"));
}
