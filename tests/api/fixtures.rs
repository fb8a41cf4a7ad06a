//! Real scans written by others (../shared/fixtures): each page's words are found on the
//! right document and page, the boxes sit on the words, originals come back identical, and
//! the stored text is as good as the `tesseract` command line's.

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_page_is_found_on_the_right_document_and_page() {
    let (Some(photo), Some(p8071), Some(p8087), Some(multi)) = (
        fixture("phototest.tif"),
        fixture("8071_093.3B.tif"),
        fixture("8087_054.3B.tif"),
        fixture("multipage_g4_3p.tif"),
    ) else {
        return;
    };
    let app = spawn_app().await;
    let meta = metadata("00123", "Jane Q Doe", "scanned-chart");
    let photo_id = app.upload(photo.clone(), &meta).await;
    let a_id = app.upload(p8071.clone(), &meta).await;
    let b_id = app.upload(p8087.clone(), &meta).await;
    let multi_id = app.upload(multi.clone(), &meta).await;
    for id in [&photo_id, &a_id, &b_id, &multi_id] {
        app.wait_indexed(id).await;
    }

    // (query, document, page): a word from each page's ground truth. The 3-page TIFF holds
    // 8071, 8087 and linn in that order.
    let expected: Vec<(&str, &str, u64)> = vec![
        ("quick", &photo_id, 1),
        ("worried", &a_id, 1),
        ("worried", &multi_id, 1),
        ("dubrovnik", &b_id, 1),
        ("dubrovnik", &multi_id, 2),
        ("composition", &multi_id, 3),
    ];
    for (word, doc, page) in &expected {
        let result = app
            .search(&app.clinician, json!({ "query": word, "limit": 50 }))
            .await;
        let found = result["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["document_id"] == *doc && h["page"] == *page);
        assert!(found, "{word} not found on {doc} page {page}: {result}");
    }
    let phrase = app
        .search(&app.clinician, json!({ "query": "\"quick brown dog\"" }))
        .await;
    assert_eq!(phrase["total"], 1, "{phrase}");
    assert_eq!(phrase["hits"][0]["document_id"], photo_id.as_str());

    // Originals come back byte for byte; page images decode at the scan's size.
    for (id, bytes) in [
        (&photo_id, &photo),
        (&a_id, &p8071),
        (&b_id, &p8087),
        (&multi_id, &multi),
    ] {
        let download = app
            .get(&app.records, &format!("/api/v1/documents/{id}/original"))
            .await;
        assert_eq!(download.bytes().await.unwrap().to_vec(), *bytes);
    }
    let image = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{multi_id}/pages/2/image"),
        )
        .await;
    let image = image::load_from_memory(&image.bytes().await.unwrap())
        .unwrap()
        .to_luma8();
    assert_eq!(image.dimensions(), (2560, 3300));

    // The hit's boxes lie on the word: OCR of the boxed region reads the word again.
    let result = app
        .search(&app.clinician, json!({ "query": "quick", "mrn": "00123" }))
        .await;
    let hit = &result["hits"][0];
    let image = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{photo_id}/pages/1/image"),
        )
        .await;
    let image = image::load_from_memory(&image.bytes().await.unwrap())
        .unwrap()
        .to_luma8();
    let b = &hit["boxes"][0];
    let (left, top, width, height) = (
        b["left"].as_u64().unwrap() as u32,
        b["top"].as_u64().unwrap() as u32,
        b["width"].as_u64().unwrap() as u32,
        b["height"].as_u64().unwrap() as u32,
    );
    // The ink is there...
    let ink = (top..top + height)
        .flat_map(|y| (left..left + width).map(move |x| (x, y)))
        .filter(|&(x, y)| image.get_pixel(x, y)[0] < 128)
        .count();
    assert!(ink as u32 > width * height / 10, "the box holds ink: {ink}");
    // ...and it is where the tesseract command line, reading the file itself, puts "quick".
    let tsv = std::process::Command::new("tesseract")
        .arg(fixtures_dir().join("phototest.tif"))
        .args(["stdout", "--psm", "3", "tsv"])
        .env("OMP_THREAD_LIMIT", "1")
        .output()
        .expect("the tesseract command line (scripts/setup.sh installs it)");
    let tsv = String::from_utf8_lossy(&tsv.stdout);
    let reference: Vec<u32> = tsv
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cols| cols.len() == 12 && cols[11].eq_ignore_ascii_case("quick"))
        .map(|cols| cols[6..10].iter().map(|c| c.parse().unwrap()).collect())
        .expect("the CLI reads 'quick'");
    let (rl, rt, rw, rh) = (reference[0], reference[1], reference[2], reference[3]);
    let overlap_w = (left + width).min(rl + rw).saturating_sub(left.max(rl));
    let overlap_h = (top + height).min(rt + rh).saturating_sub(top.max(rt));
    let intersection = overlap_w * overlap_h;
    let union = width * height + rw * rh - intersection;
    assert!(
        intersection as f64 / union as f64 > 0.8,
        "box {b} vs CLI {reference:?}"
    );
}

/// The stored text's character error rate is within one point of the command line's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_text_is_as_accurate_as_the_tesseract_command_line() {
    let (Some(p8087), Some(gt8087), Some(letter), Some(gt_letter)) = (
        fixture("8087_054.3B.tif"),
        fixture_text("8087_054.3B.txt"),
        fixture("letter300_scan_g4.tif"),
        fixture_text("letter300.txt"),
    ) else {
        return;
    };
    let app = spawn_app().await;
    let meta = metadata("00555", "Cer Test", "letter");
    for (name, bytes, truth) in [
        ("8087_054.3B.tif", p8087, gt8087),
        ("letter300_scan_g4.tif", letter, gt_letter),
    ] {
        let id = app.upload(bytes, &meta).await;
        app.wait_indexed(&id).await;
        let ours = app
            .get(
                &app.clinician,
                &format!("/api/v1/documents/{id}/pages/1/text"),
            )
            .await
            .text()
            .await
            .unwrap();
        let cli = std::process::Command::new("tesseract")
            .arg(fixtures_dir().join(name))
            .arg("stdout")
            .args(["--psm", "3"])
            .env("OMP_THREAD_LIMIT", "1")
            .output()
            .expect("the tesseract command line (scripts/setup.sh installs it)");
        assert!(cli.status.success());
        let cli = String::from_utf8_lossy(&cli.stdout);
        let ours_cer = chartvault_ocr::character_error_rate(&truth, &ours);
        let cli_cer = chartvault_ocr::character_error_rate(&truth, &cli);
        println!(
            "{name}: CER service {:.2}% vs tesseract CLI {:.2}%",
            ours_cer * 100.0,
            cli_cer * 100.0
        );
        assert!(
            ours_cer <= cli_cer + 0.01,
            "{name}: {ours_cer} vs {cli_cer}"
        );
    }
}
