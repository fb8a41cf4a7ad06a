//! PDFs through the whole service: scanned PDFs of every image encoding (JBIG2, CCITT, JPEG,
//! JPEG 2000) become upright page images that are OCRed and found; a born-digital PDF's own
//! text is indexed without OCR; a PDF that cannot be read is refused with a clear 422.

use serde_json::{json, Value};

use crate::helpers::*;

fn pages(doc: &Value) -> &Vec<Value> {
    doc["pages"].as_array().expect("pages")
}

/// Every page of the four-orientation PDF is stored upright and the same word is found on
/// each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_page_of_a_pdf_baked_at_four_orientations_is_found_upright() {
    let Some(bytes) = fixture("cardinal.pdf") else {
        return;
    };
    let app = spawn_app().await;
    let id = app
        .upload(
            bytes.clone(),
            &metadata("00555", "Cardinal Points", "brochure"),
        )
        .await;
    let doc = app.wait_indexed(&id).await;
    assert_eq!(doc["content_type"], "application/pdf");
    assert_eq!(doc["page_count"], 4);
    let rows = pages(&doc);
    let rotations: Vec<u64> = rows
        .iter()
        .map(|p| p["rotation"].as_u64().unwrap())
        .collect();
    println!("cardinal.pdf rotations: {rotations:?}");
    assert_eq!(rotations[0], 0);
    assert_eq!(rotations[2], 180);
    assert!(rotations[1] == 90 || rotations[1] == 270, "{rotations:?}");
    assert_eq!(rotations[1] + rotations[3], 360, "{rotations:?}");
    for row in rows {
        assert_eq!(row["text_source"], "ocr");
        // Stored upright: a portrait page again.
        assert!(row["height"].as_u64() > row["width"].as_u64(), "{row}");
    }
    let result = app
        .search(
            &app.clinician,
            json!({ "query": "polyphonic", "mrn": "00555", "limit": 10 }),
        )
        .await;
    let mut found: Vec<u64> = result["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["page"].as_u64().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, [1, 2, 3, 4], "{result}");
    // The original PDF comes back byte for byte.
    let response = app
        .get(&app.records, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert_eq!(response.bytes().await.unwrap(), bytes);
}

/// Scanned PDFs with JBIG2 (skewed through the page's matrix, and with /Rotate), CCITT G4,
/// JPEG and JPEG 2000 images, and pages of odd resolutions, yield all their pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanned_pdfs_of_every_encoding_yield_their_pages() {
    let app = spawn_app().await;
    let cases = [
        ("skew.pdf", 1, Some("polyphonic")),
        ("rotated_skew.pdf", 1, Some("polyphonic")),
        ("ccitt.pdf", 1, Some("polyphonic")),
        ("multipage.pdf", 6, None),
    ];
    for (index, (name, page_count, word)) in cases.into_iter().enumerate() {
        let Some(bytes) = fixture(name) else {
            return;
        };
        let mrn = format!("{:05}", 600 + index);
        let id = app
            .upload(bytes, &metadata(&mrn, "Pdf Fixture", "scan"))
            .await;
        let doc = app.wait_indexed(&id).await;
        assert_eq!(doc["page_count"], page_count, "{name}");
        assert_eq!(pages(&doc).len(), page_count, "{name}");
        for row in pages(&doc) {
            // Every page is at most 300 dpi as stored, and within the limits.
            assert!(row["dpi"].as_f64().unwrap() <= 300.5, "{name}: {row}");
        }
        if let Some(word) = word {
            let skew = pages(&doc)[0]["skew_degrees"].as_f64().unwrap_or(0.0);
            println!("{name}: skew corrected {skew:.2}°");
            let result = app
                .search(&app.clinician, json!({ "query": word, "mrn": mrn }))
                .await;
            assert_eq!(result["total"], 1, "{name}: {result}");
        }
    }
}

/// A born-digital PDF is indexed from its own text: no OCR, confidence 100, found at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_with_a_text_layer_is_indexed_without_ocr() {
    let app = spawn_app().await;
    let pdf = text_pdf_of(&[
        &[
            "Riverside General Hospital - Laboratory report",
            "Haemoglobin A1c 6.9 percent, on metformin since 1998",
        ],
        &["Second page: creatinine 1.1 mg/dL, reviewed by the nephrologist"],
    ]);
    let started = std::time::Instant::now();
    let id = app
        .upload(pdf, &metadata("00444", "Text Layer", "lab-report"))
        .await;
    let doc = app.wait_indexed(&id).await;
    println!(
        "born-digital 2-page PDF indexed in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let rows = pages(&doc);
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["text_source"], "text-layer", "{row}");
        assert_eq!(row["mean_confidence"], 100.0);
        assert_eq!(row["blank"], false);
    }
    for (word, page) in [("metformin", 1), ("nephrologist", 2)] {
        let result = app.search(&app.clinician, json!({ "query": word })).await;
        assert_eq!(result["total"], 1, "{word}: {result}");
        assert_eq!(result["hits"][0]["page"], page);
    }
    // The word boxes are the text layer's, in the stored page image's pixels (300 dpi).
    let words: Value = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{id}/pages/1/words"),
        )
        .await
        .json()
        .await
        .unwrap();
    let first = &words.as_array().expect("words")[0];
    assert_eq!(first["text"], "Riverside");
    assert!(
        first["left"].as_u64().unwrap().abs_diff(300) <= 3,
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdfs_that_cannot_be_read_are_refused_and_leave_nothing() {
    let app = spawn_app().await;
    let good = text_pdf_of(&[&["A page"]]);
    let truncated = good[..good.len() / 2].to_vec();
    let mut encrypted = good.clone();
    let trailer = encrypted
        .windows(9)
        .rposition(|w| w == b"/Root 1 0")
        .unwrap();
    encrypted.splice(
        trailer..trailer,
        b"/Encrypt << /Filter /Standard /V 1 /R 2 /O (x) /U (y) /P -4 >> "
            .iter()
            .copied(),
    );
    for (what, bytes, expected) in [
        ("truncated", truncated, "PDF"),
        ("encrypted", encrypted, "encrypted"),
        ("header only", b"%PDF-1.7\n".to_vec(), "PDF"),
    ] {
        let before = files_under(&app.data_dir.join("blobs")).len();
        let response = app
            .upload_as(
                &app.records,
                bytes,
                &metadata("00333", "Broken Pdf", "scan"),
            )
            .await;
        assert_eq!(response.status(), 422, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_scan", "{what}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{what}: {message}");
        assert_eq!(
            files_under(&app.data_dir.join("blobs")).len(),
            before,
            "{what}: something was left behind"
        );
        let health = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert!(health.status().is_success());
    }
}
