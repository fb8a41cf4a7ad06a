//! Real OCR text layers, as Tesseract's PDF renderer (the one OCRmyPDF uses) writes them: the
//! scan as an image and the recognised words as invisible text in GlyphLessFont over it. Their
//! words are what the scan shows, so they must all come out seen.

mod common;

use chartvault_ocr::{Limits, PdfFile};

#[test]
fn a_tesseract_text_layer_over_its_scan_is_seen() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    if !common::tesseract_cli_available() {
        return;
    }
    // A clean 200-dpi page, and a simulated 300-dpi scan (skewed, blurred, noisy, 1-bit).
    for (fixture, expected) in [
        ("phototest.tif", "quick brown"),
        ("letter300_scan_g4.tif", "Discharge"),
    ] {
        let stem = fixture.trim_end_matches(".tif");
        let base = std::env::temp_dir().join(format!(
            "chartvault-text-layer-{}-{stem}",
            std::process::id()
        ));
        let output = std::process::Command::new("tesseract")
            .arg(dir.join(fixture))
            .arg(&base)
            .arg("pdf")
            .env("OMP_THREAD_LIMIT", "1")
            .output()
            .expect("tesseract runs");
        assert!(output.status.success(), "tesseract CLI failed on {fixture}");
        let pdf_path = base.with_extension("pdf");
        let bytes = std::fs::read(&pdf_path).expect("tesseract wrote a PDF");
        let _ = std::fs::remove_file(&pdf_path);

        let limits = Limits::default();
        let page = PdfFile::open(bytes, &limits)
            .unwrap()
            .page(0, &limits)
            .unwrap();
        let layer = page.text_layer.expect("the OCR text layer");
        let hidden: Vec<&str> = layer
            .words
            .iter()
            .filter(|word| word.hidden)
            .map(|word| word.text.as_str())
            .collect();
        println!("{fixture}: {} words, hidden: {hidden:?}", layer.words.len());
        assert!(layer.text.contains(expected), "{fixture}: {}", layer.text);
        assert!(
            layer.words.len() >= 50,
            "{fixture}: {} words",
            layer.words.len()
        );
        assert!(
            hidden.is_empty(),
            "{fixture}: words the scan shows came out hidden: {hidden:?}"
        );
    }
}
