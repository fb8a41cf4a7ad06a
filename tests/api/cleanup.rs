//! Page clean-up through the whole service: a chart scanned with an upside-down page, a
//! crooked page and a blank back is stored upright and straight, the blank page is flagged
//! and not OCRed, and page numbers stay those of the scan. The chart is a bilevel CCITT G4
//! TIFF, as document scanners send.

use chartvault_ocr::cleanup::estimate_skew;
use image::{GrayImage, Luma};
use serde_json::json;

use crate::helpers::*;

const UPRIGHT: &[&str] = &[
    "Riverside General Hospital  Progress note",
    "The patient reports less pain in the left knee today",
    "Continue physiotherapy twice a week for a month",
    "Marker word for this page: pelican",
];
const UPSIDE_DOWN: &[&str] = &[
    "Nursing observations during the night shift",
    "Blood pressure stable and oxygen saturation normal",
    "The patient slept well and asked for breakfast early",
    "Marker word for this page: juniper",
];
const CROOKED: &[&str] = &[
    "Medication reconciliation before discharge home",
    "Continue metformin 500 mg twice daily with meals",
    "Follow up with the endocrinology clinic in six weeks",
    "Marker word for this page: marigold",
];

/// A blank back as a scanner sends it: light gray paper, speckle noise, a dark edge.
fn blank_back() -> GrayImage {
    let mut state = 99u64;
    GrayImage::from_fn(2100, 1200, |x, _| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if x < 25 || (state >> 40).is_multiple_of(250) {
            Luma([30])
        } else {
            Luma([238])
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_with_an_upside_down_page_a_crooked_page_and_a_blank_back_is_stored_clean() {
    let app = spawn_app().await;
    let pages = [
        scanned_page(UPRIGHT, 0.0, 1),
        blank_back(),
        image::imageops::rotate180(&scanned_page(UPSIDE_DOWN, 0.0, 3)),
        scanned_page(CROOKED, 3.0, 4),
    ];
    let id = app
        .upload(
            g4_tiff_of(&pages),
            &metadata("00777", "Ada Lovelace", "progress-note"),
        )
        .await;
    let doc = app.wait_indexed(&id).await;
    let rows = doc["pages"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "the blank page is kept: {doc}");
    let numbers: Vec<u64> = rows.iter().map(|p| p["page"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3, 4], "numbered as scanned");

    assert_eq!(rows[1]["blank"], true, "{}", rows[1]);
    assert_eq!(rows[1]["word_count"], 0);
    for row in [&rows[0], &rows[2], &rows[3]] {
        assert_eq!(row["blank"], false, "{row}");
        assert!(row["word_count"].as_u64().unwrap() > 10, "{row}");
    }
    assert_eq!(rows[0]["rotation"], 0);
    assert_eq!(rows[2]["rotation"], 180, "{}", rows[2]);
    let skew = rows[3]["skew_degrees"].as_f64().expect("skew measured");
    assert!((skew - 3.0).abs() < 0.3, "measured skew {skew}");

    // Each marker is found on its own page, the turned one included.
    for (word, page) in [("pelican", 1), ("juniper", 3), ("marigold", 4)] {
        let result = app.search(&app.clinician, json!({ "query": word })).await;
        assert_eq!(result["total"], 1, "{word}: {result}");
        assert_eq!(result["hits"][0]["page"], page, "{word}");
    }

    // The stored page images are the corrected ones.
    for page in [3, 4] {
        let response = app
            .get(
                &app.clinician,
                &format!("/api/v1/documents/{id}/pages/{page}/image"),
            )
            .await;
        assert_eq!(response.status(), 200);
        let png = response.bytes().await.unwrap();
        let image = image::load_from_memory(&png).unwrap().to_luma8();
        let skew = estimate_skew(&image).expect("a text page");
        assert!(skew.abs() < 0.5, "page {page} stored with skew {skew}");
    }
    // The original is untouched.
    let response = app
        .get(&app.records, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert_eq!(response.bytes().await.unwrap(), g4_tiff_of(&pages));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_pages_turned_sideways_or_upside_down_are_found_upright() {
    let app = spawn_app().await;
    for (name, rotation, mrn) in [
        ("phototest-rotated-L.png", 90, "00901"),
        ("phototest-rotated-180.png", 180, "00902"),
    ] {
        let Some(bytes) = fixture(name) else {
            return;
        };
        let id = app
            .upload(bytes, &metadata(mrn, "Rotated Page", "letter"))
            .await;
        let doc = app.wait_indexed(&id).await;
        assert_eq!(doc["pages"][0]["rotation"], rotation, "{name}: {doc}");
        let result = app
            .search(&app.clinician, json!({ "query": "jumped", "mrn": mrn }))
            .await;
        assert_eq!(result["total"], 1, "{name}: {result}");
    }
}
