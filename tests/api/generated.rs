//! The whole story on scans the tests make themselves (runs without ../shared): a clerk
//! uploads a 3-page chart, a clinician finds "metformin" on page 2 with a highlighted
//! snippet and boxes on the word, opens the page image and downloads the original. Nothing
//! readable is left at rest in the blob store.

use chartvault::store::prelude::*;
use serde_json::json;

use crate::helpers::*;

const PAGE_1: &[&str] = &[
    "Riverside General Hospital  Admission note",
    "Patient: Jane Q Doe   MRN 00123",
    "Chief complaint: chest pain radiating to the left arm",
    "History of hypertension, treated with lisinopril",
    "Marker word for this page: pelican",
];
const PAGE_2: &[&str] = &[
    "Medication reconciliation",
    "Continue metformin 500 mg twice daily with meals",
    "Stop glipizide because of low blood sugar episodes",
    "Follow up with the endocrinology clinic in six weeks",
    "Marker word for this page: marigold",
];
const PAGE_3: &[&str] = &[
    "Discharge summary",
    "The patient was discharged home in stable condition",
    "Diet as tolerated and walking every day",
    "Marker word for this page: juniper",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_finds_metformin_on_page_two_of_a_generated_chart() {
    let app = spawn_app().await;
    let pages = [
        scanned_page(PAGE_1, 0.6, 1),
        scanned_page(PAGE_2, -0.8, 2),
        scanned_page(PAGE_3, 0.4, 3),
    ];
    let original = tiff_of(&pages);
    let started = std::time::Instant::now();
    let id = app
        .upload(
            original.clone(),
            &metadata("00123", "Jane Q Doe", "progress-note"),
        )
        .await;
    assert!(
        started.elapsed().as_secs_f32() < 5.0,
        "202 took {:?}",
        started.elapsed()
    );
    let doc = app.wait_indexed(&id).await;
    assert_eq!(doc["page_count"], 3);
    assert_eq!(doc["pages"].as_array().unwrap().len(), 3);

    let result = app
        .search(&app.clinician, json!({ "query": "metformin" }))
        .await;
    assert_eq!(result["total"], 1, "{result}");
    let hit = &result["hits"][0];
    assert_eq!(hit["document_id"], id.as_str());
    assert_eq!(hit["page"], 2);
    assert_eq!(hit["patient"]["mrn"], "00123");
    assert_eq!(hit["patient"]["name"], "Jane Q Doe");
    assert_eq!(hit["document_type"], "progress-note");
    assert_eq!(hit["service_date"], "1998-05-01");
    let snippet = hit["snippet"].as_str().unwrap();
    assert!(
        snippet.to_lowercase().contains("<mark>metformin</mark>"),
        "{snippet}"
    );

    // The box is on the word: inside the page, word-sized, and the ink is there.
    let image = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{id}/pages/2/image"),
        )
        .await;
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    let image = image::load_from_memory(&image.bytes().await.unwrap())
        .unwrap()
        .to_luma8();
    assert_eq!(image.dimensions(), pages[1].dimensions());
    let boxes = hit["boxes"].as_array().unwrap();
    assert_eq!(boxes.len(), 1, "{hit}");
    let (left, top, width, height) = (
        boxes[0]["left"].as_u64().unwrap() as u32,
        boxes[0]["top"].as_u64().unwrap() as u32,
        boxes[0]["width"].as_u64().unwrap() as u32,
        boxes[0]["height"].as_u64().unwrap() as u32,
    );
    assert!(left + width <= image.width() && top + height <= image.height());
    assert!(
        (150..400).contains(&width),
        "a 9-letter word at 12 pt is ~250 px wide: {width}"
    );
    // The word sits on the second line of the page (drawn at y = 150 + 75).
    assert!((180..300).contains(&top), "top {top}");
    let ink = (top..top + height)
        .flat_map(|y| (left..left + width).map(move |x| (x, y)))
        .filter(|&(x, y)| image.get_pixel(x, y)[0] < 100)
        .count();
    assert!(ink > 500, "the box holds ink: {ink}");

    // A phrase matches only adjacent words.
    let phrase = app
        .search(&app.clinician, json!({ "query": "\"twice daily\"" }))
        .await;
    assert_eq!(phrase["total"], 1);
    let not_adjacent = app
        .search(&app.clinician, json!({ "query": "\"metformin daily\"" }))
        .await;
    assert_eq!(not_adjacent["total"], 0);
    // Prefix, boolean and filters.
    let prefix = app
        .search(&app.clinician, json!({ "query": "metf*" }))
        .await;
    assert_eq!(prefix["hits"][0]["page"], 2);
    let either = app
        .search(&app.clinician, json!({ "query": "pelican OR juniper" }))
        .await;
    assert_eq!(either["total"], 2);
    let other_patient = app
        .search(
            &app.clinician,
            json!({ "query": "metformin", "mrn": "99999" }),
        )
        .await;
    assert_eq!(other_patient["total"], 0);
    let out_of_range = app
        .search(
            &app.clinician,
            json!({ "query": "metformin", "from": "2001-01-01" }),
        )
        .await;
    assert_eq!(out_of_range["total"], 0);
    let in_range = app
        .search(&app.clinician, json!({ "query": "metformin", "mrn": "00123", "from": "1998-01-01", "to": "1998-12-31", "document_type": "progress-note" }))
        .await;
    assert_eq!(in_range["total"], 1);

    // The original comes back byte for byte.
    let download = app
        .get(&app.clinician, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "image/tiff");
    assert_eq!(download.bytes().await.unwrap().to_vec(), original);

    // The chart, by MRN in the body.
    let chart = app
        .post_json(
            &app.clinician,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "00123" }),
        )
        .await;
    assert_eq!(chart.status(), 200);
    let chart: serde_json::Value = chart.json().await.unwrap();
    assert_eq!(chart["patient"]["name"], "Jane Q Doe");
    assert_eq!(chart["documents"][0]["id"], id.as_str());
    assert_eq!(chart["documents"][0]["page_count"], 3);
    assert_eq!(chart["documents"][0]["status"], "indexed");

    // Text and words of a page.
    let text = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{id}/pages/3/text"),
        )
        .await;
    assert!(text.text().await.unwrap().contains("juniper"));
    let words: serde_json::Value = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{id}/pages/1/words"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(words
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["text"] == "pelican"));

    // Every read above left an audit row; the search's names the patient it returned.
    let audit = app.state.db.audit_rows(0).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.action == "ingest" && r.document_id.as_deref() == Some(id.as_str())));
    assert!(audit.iter().any(|r| r.action == "search"
        && r.detail
            .as_deref()
            .unwrap_or("")
            .contains(hit["patient"]["id"].as_str().unwrap())));
    assert!(audit.iter().filter(|r| r.action == "read").count() >= 4);

    // At rest: every blob and index file is an envelope (the index's two empty lock files
    // aside), and no page word, name or MRN is readable in either.
    let blobs = files_under(&app.data_dir.join("blobs"));
    assert!(blobs.len() >= 10, "original + 3 artifacts x 3 pages");
    let index_files: Vec<_> = files_under(&app.data_dir.join("index"))
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(index_files.len() >= 3, "{index_files:?}");
    for path in blobs.iter().chain(&index_files) {
        let Some(bytes) = read_live(path) else {
            continue;
        };
        // A file the index writer has only just created (a merge under way) may be empty.
        assert!(
            bytes.is_empty()
                || chartvault_storage::FormatVersion::of_object(&bytes)
                    == Some(chartvault_storage::FormatVersion::CURRENT),
            "{} is not an envelope: {} bytes, starting {:?}",
            path.display(),
            bytes.len(),
            &bytes[..bytes.len().min(16)]
        );
        for word in [
            "metformin",
            "pelican",
            "marigold",
            "juniper",
            "Jane Q Doe",
            "00123",
            "Riverside",
            "glipizide",
        ] {
            assert!(
                !contains_ignore_case(&bytes, word),
                "{word} readable in {}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_and_jpeg_single_pages_are_accepted_and_found() {
    let app = spawn_app().await;
    let page = scanned_page(
        &["Allergy list: penicillin causes hives", "Marker saffron"],
        0.0,
        4,
    );
    let png = png_of(&page);
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(scanned_page(
        &["Radiology request for the tangerine clinic"],
        0.3,
        5,
    ))
    .write_to(&mut jpeg, image::ImageFormat::Jpeg)
    .unwrap();
    let a = app
        .upload(png, &metadata("A-77", "Sam Example", "allergy-list"))
        .await;
    let b = app
        .upload(
            jpeg.into_inner(),
            &metadata("A-77", "Sam Example", "request"),
        )
        .await;
    app.wait_indexed(&a).await;
    let b_doc = app.wait_indexed(&b).await;
    assert_eq!(b_doc["content_type"], "image/jpeg");
    let hits = app
        .search(&app.legal, json!({ "query": "penicillin" }))
        .await;
    assert_eq!(hits["hits"][0]["document_id"], a.as_str());
    let hits = app
        .search(&app.records, json!({ "query": "tangerine", "mrn": "a-77" }))
        .await;
    assert_eq!(hits["hits"][0]["document_id"], b.as_str());
}
