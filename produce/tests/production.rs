//! End-to-end tests of the production PDF, checked with poppler-utils (`pdfinfo`,
//! `pdftotext`, `pdftoppm`, `pdfimages`), which must be installed.

mod common;

use chartvault_produce::{text_page_count, ImagePage, PageImage, ProductionWriter, Word};
use common::*;

fn image_page<'a>(
    image: PageImage<'a>,
    dpi: f32,
    words: &'a [Word],
    stamp: &'a str,
) -> ImagePage<'a> {
    ImagePage {
        image,
        dpi,
        words,
        stamp: Some(stamp),
        redactions: &[],
        redact_whole_page: false,
    }
}

/// Certification (text) + two scans + manifest (text): four pages, each stamped once, in
/// order; the scans' OCR words are extractable; page sizes follow pixels / dpi.
#[test]
fn production_has_stamps_text_layer_and_page_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let words_a = [
        word("Patient", 300, 300, 420, 60),
        word("Name:", 760, 300, 330, 60),
        word("Jane", 1130, 300, 260, 60),
        word("Doe", 1430, 300, 220, 60),
        word("Diagnosis:", 300, 420, 560, 60),
        word("Fracture", 900, 420, 480, 60),
    ];
    let scan_a = png(&scan(2550, 3300, &words_a, &[rect(300, 1000, 1900, 1200)]));
    let words_b = [
        word("Discharge", 200, 200, 520, 70),
        word("Summary", 760, 200, 470, 70),
    ];
    let scan_b = png(&scan(1700, 2800, &words_b, &[rect(200, 600, 1000, 800)]));

    let certification = "CERTIFICATION OF RECORDS\n\n\
        I certify that this production (ACME) contains 4 pages \\ copies are true.\n\
        Signed: Dr. Müller, custodian";
    assert_eq!(text_page_count(certification), 1);
    let manifest = "MANIFEST\n\nPage 2  scan  Patient intake\nPage 3  scan  Discharge summary\n";

    let mut pdf = ProductionWriter::new(Vec::new(), &info("Production ACME-001")).expect("new");
    assert_eq!(
        pdf.text_pages(certification, Some("ACME-000001"))
            .expect("certification"),
        1
    );
    pdf.image_page(&image_page(
        PageImage::Png(&scan_a),
        300.0,
        &words_a,
        "ACME-000002",
    ))
    .expect("scan A");
    pdf.image_page(&image_page(
        PageImage::Png(&scan_b),
        200.0,
        &words_b,
        "ACME-000003",
    ))
    .expect("scan B");
    assert_eq!(
        pdf.text_pages(manifest, Some("ACME-000004"))
            .expect("manifest"),
        1
    );
    let (bytes, pages) = pdf.finish().expect("finish");
    assert_eq!(pages, 4);
    let path = write_pdf(dir.path(), "production.pdf", &bytes);

    let info = pdfinfo(&path, &[]);
    assert!(info.contains("Pages:           4"), "{info}");
    assert!(
        info.contains("Title:           Production ACME-001"),
        "{info}"
    );
    assert!(info.contains("PDF version:     1.7"), "{info}");
    // pdfinfo prints e.g. "Page    2 size:  612 x 792 pts (letter)"; compare word by word.
    let sizes: Vec<String> = pdfinfo(&path, &["-f", "1", "-l", "4"])
        .lines()
        .filter(|l| l.starts_with("Page") && l.contains(" size:"))
        .map(|l| l.split_whitespace().take(7).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        sizes,
        [
            "Page 1 size: 612 x 792 pts",
            "Page 2 size: 612 x 792 pts",
            "Page 3 size: 612 x 1008 pts",
            "Page 4 size: 612 x 792 pts",
        ]
    );

    let text = pdftotext(&path, 1, 4);
    let mut last = 0;
    for stamp in ["ACME-000001", "ACME-000002", "ACME-000003", "ACME-000004"] {
        assert_eq!(text.matches(stamp).count(), 1, "{stamp} in {text:?}");
        let at = text[last..]
            .find(stamp)
            .unwrap_or_else(|| panic!("{stamp} not after offset {last} in {text:?}"));
        last += at + stamp.len();
    }
    for (page, stamp) in [
        (1, "ACME-000001"),
        (2, "ACME-000002"),
        (3, "ACME-000003"),
        (4, "ACME-000004"),
    ] {
        let page_text = pdftotext(&path, page, page);
        assert!(page_text.contains(stamp), "page {page}: {page_text:?}");
    }

    let page2 = pdftotext(&path, 2, 2);
    assert!(page2.contains("Patient Name: Jane Doe"), "{page2:?}");
    assert!(page2.contains("Diagnosis: Fracture"), "{page2:?}");
    assert!(
        page2.find("Patient").expect("Patient") < page2.find("Diagnosis").expect("Diagnosis"),
        "{page2:?}"
    );
    let page3 = pdftotext(&path, 3, 3);
    assert!(page3.contains("Discharge Summary"), "{page3:?}");
    let page1 = pdftotext(&path, 1, 1);
    assert!(page1.contains("CERTIFICATION OF RECORDS"), "{page1:?}");
    assert!(
        page1
            .contains("I certify that this production (ACME) contains 4 pages \\ copies are true."),
        "{page1:?}"
    );
    assert!(page1.contains("Dr. Müller"), "{page1:?}");

    // The stamp is visible: its white box keeps the area behind it white even on a black
    // scan region... here the bottom-right corner of page 2, rendered at 72 dpi, holds dark
    // glyph pixels (the stamp text) inside an otherwise white box.
    let render2 = render(&path, 2, 72);
    assert_eq!((render2.width, render2.height), (612, 792));
    let corner = render2.region(480, 755, 600, 780);
    assert!(corner.iter().any(|&p| p < 100), "stamp glyphs expected");
    // And the scan itself is drawn: its black rectangle (300..2200 x 1000..2200 px at 300 dpi).
    assert!(render2.region(100, 260, 500, 500).iter().all(|&p| p < 10));
}

/// The OCR layer is extractable but invisible: a white scan with words renders all white, and
/// each word's text lies within its box (pdftotext -bbox).
#[test]
fn text_layer_is_invisible_and_sits_on_the_word_boxes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let white = image::GrayImage::from_pixel(850, 1100, image::Luma([255]));
    let scan = png(&white);
    let words = [
        word("Invisible", 100, 100, 300, 40),
        word("(text)", 415, 100, 200, 40),
        word("café", 100, 200, 150, 30),
        word("漢字", 262, 200, 60, 30),
    ];
    let mut pdf = ProductionWriter::new(Vec::new(), &info("invisible")).expect("new");
    pdf.image_page(&ImagePage {
        stamp: None,
        ..image_page(PageImage::Png(&scan), 100.0, &words, "")
    })
    .expect("page");
    let (bytes, _) = pdf.finish().expect("finish");
    let path = write_pdf(dir.path(), "invisible.pdf", &bytes);
    let text = pdftotext(&path, 1, 1);
    assert!(text.contains("Invisible (text)"), "{text:?}");
    // Characters outside WinAnsi become '?'.
    assert!(text.contains("café ??"), "{text:?}");
    let page = render(&path, 1, 72);
    assert!(
        page.pixels.iter().all(|&p| p == 255),
        "the text layer must not be drawn"
    );

    // Word boxes: 100 dpi pixels -> points (x 0.72); pdftotext -bbox reports each word's box.
    let out = tool("pdftotext", &["-bbox"], &path, &["-"]);
    let html = String::from_utf8(out.stdout).expect("UTF-8");
    let line = html
        .lines()
        .find(|l| l.contains(">Invisible<"))
        .unwrap_or_else(|| panic!("no bbox for Invisible in {html}"));
    let attr = |name: &str| -> f64 {
        let start = line.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
        let end = start + line[start..].find('"').expect("quote");
        line[start..end].parse().expect("number")
    };
    let (x0, y0, x1, y1) = (attr("xMin"), attr("yMin"), attr("xMax"), attr("yMax"));
    let close = |a: f64, b: f64| (a - b).abs() < 3.0;
    assert!(
        close(x0, 72.0) && close(x1, 288.0),
        "x {x0}..{x1} for 72..288: {line}"
    );
    assert!(
        close(y0, 72.0) && close(y1, 100.8),
        "y {y0}..{y1} for 72..100.8: {line}"
    );
}

/// A stamp stays legible over a black scan: the white box is drawn over the image.
#[test]
fn stamp_box_covers_a_black_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let black = image::GrayImage::from_pixel(850, 1100, image::Luma([0]));
    let scan = png(&black);
    let mut pdf = ProductionWriter::new(Vec::new(), &info("black")).expect("new");
    pdf.image_page(&image_page(
        PageImage::Png(&scan),
        100.0,
        &[],
        "ACME-000777",
    ))
    .expect("page");
    let (bytes, _) = pdf.finish().expect("finish");
    let path = write_pdf(dir.path(), "black.pdf", &bytes);
    let page = render(&path, 1, 72);
    // Bottom-right corner: white box with black glyphs; far from it, black.
    let corner = page.region(520, 755, 594, 775);
    let white = corner.iter().filter(|&&p| p > 245).count();
    let dark = corner.iter().filter(|&&p| p < 60).count();
    assert!(white > corner.len() / 3, "white box expected ({white})");
    assert!(dark > 20, "black glyphs expected ({dark})");
    assert!(page.region(100, 100, 400, 600).iter().all(|&p| p < 10));
    assert_eq!(pdftotext(&path, 1, 1).trim(), "ACME-000777");
}

/// Redactions: covered words vanish from the text layer while their neighbours stay; the
/// covered pixels are black in the rendering *and* in the embedded image itself; the same
/// region of the unredacted page is not black; the caller's bytes are untouched; a page
/// redacted whole embeds no image and no text.
#[test]
fn redactions_are_burned_in_and_hide_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let words = [
        word("Jane", 300, 600, 260, 70),
        word("Doe", 640, 600, 220, 70),
        word("Smith", 900, 600, 300, 70),
        word("Jr.", 1260, 600, 120, 70),
        word("Allergies:", 300, 720, 560, 70),
        word("penicillin", 900, 720, 540, 70),
    ];
    let scan_png = png(&scan(2550, 3300, &words, &[]));
    let original = scan_png.clone();
    // Covers "Doe" entirely and the first 20 px of "Smith"; "Jane" and "Jr." are clear.
    let redaction = rect(620, 590, 300, 90);
    let redactions = [redaction];

    let mut pdf = ProductionWriter::new(Vec::new(), &info("redactions")).expect("new");
    pdf.image_page(&image_page(
        PageImage::Png(&scan_png),
        300.0,
        &words,
        "ACME-000010",
    ))
    .expect("unredacted page");
    pdf.image_page(&ImagePage {
        redactions: &redactions,
        ..image_page(PageImage::Png(&scan_png), 300.0, &words, "ACME-000011")
    })
    .expect("redacted page");
    pdf.image_page(&ImagePage {
        redact_whole_page: true,
        ..image_page(PageImage::Png(&scan_png), 300.0, &words, "ACME-000012")
    })
    .expect("withheld page");
    let (bytes, pages) = pdf.finish().expect("finish");
    assert_eq!(pages, 3);
    assert_eq!(scan_png, original, "input bytes must not change");
    let path = write_pdf(dir.path(), "redacted.pdf", &bytes);
    assert_eq!(page_count(&path), 3);

    let clear = pdftotext(&path, 1, 1);
    for w in ["Jane", "Doe", "Smith", "Jr.", "Allergies:", "penicillin"] {
        assert!(clear.contains(w), "{w} missing from {clear:?}");
    }
    let redacted = pdftotext(&path, 2, 2);
    assert!(redacted.contains("Jane"), "{redacted:?}");
    assert!(redacted.contains("Jr."), "{redacted:?}");
    assert!(redacted.contains("Allergies: penicillin"), "{redacted:?}");
    assert!(!redacted.contains("Doe"), "{redacted:?}");
    assert!(
        !redacted.contains("Smith"),
        "partly covered word must go: {redacted:?}"
    );
    assert!(redacted.contains("ACME-000011"), "{redacted:?}");

    // Rendered at 72 dpi, the redaction (x 620..920, y 590..680 at 300 dpi) is
    // x 148.8..220.8, y 141.6..163.2: every pixel inside, 2 px in from its edges, is black.
    let to72 = |v: u32| (v as f64 * 72.0 / 300.0) as usize;
    let (x0, y0) = (to72(redaction.left) + 2, to72(redaction.top) + 2);
    let (x1, y1) = (
        to72(redaction.left + redaction.width) - 2,
        to72(redaction.top + redaction.height) - 2,
    );
    let page2 = render(&path, 2, 72);
    let region = page2.region(x0, y0, x1, y1);
    assert!(
        region.iter().all(|&p| p < 10),
        "redaction must render black"
    );
    let page1 = render(&path, 1, 72);
    let region = page1.region(x0, y0, x1, y1);
    let mean = region.iter().map(|&p| f64::from(p)).sum::<f64>() / region.len() as f64;
    assert!(mean > 100.0, "unredacted region is not black (mean {mean})");
    // Outside the redaction page 2 still shows the scan ("Jane"'s gray block).
    assert!(page2
        .region(to72(310), to72(610), to72(550), to72(660))
        .iter()
        .all(|&p| p > 60 && p < 120));

    // Burned into the pixels: the embedded image itself is 0 under the redaction and
    // unchanged elsewhere.
    let images = extract_images(&path, 2);
    assert_eq!(images.len(), 1);
    let embedded = &images[0];
    assert_eq!(embedded.dimensions(), (2550, 3300));
    let source = image::load_from_memory(&scan_png)
        .expect("decode")
        .into_luma8();
    for y in (560..720).step_by(3) {
        for x in (580..1000).step_by(3) {
            let inside = (620..920).contains(&x) && (590..680).contains(&y);
            let want = if inside { 0 } else { source.get_pixel(x, y)[0] };
            assert_eq!(embedded.get_pixel(x, y)[0], want, "pixel {x},{y}");
        }
    }

    // Withheld page: no image, no text but the stamp, black.
    assert!(
        image_list(&path, 3).is_empty(),
        "no image on a withheld page"
    );
    assert!(!image_list(&path, 2).is_empty());
    assert_eq!(pdftotext(&path, 3, 3).trim(), "ACME-000012");
    let page3 = render(&path, 3, 72);
    assert!(page3.region(50, 50, 550, 700).iter().all(|&p| p < 10));
}

/// The PNG fast path (IDAT embedded as is) renders exactly like the decode paths: raw gray
/// pixels, a colour PNG (decoded and converted), 4-bit and 1-bit PNGs (embedded as is) and
/// bilevel gray packed to 1 bit.
#[test]
fn fast_path_and_decode_path_render_the_same_pixels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, h) = (600u32, 800u32);
    // 8-bit content: a diagonal gradient with a black and a mid-gray rectangle.
    let gray = image::GrayImage::from_fn(w, h, |x, y| {
        let v = if (100..300).contains(&x) && (200..260).contains(&y) {
            0
        } else if (350..500).contains(&x) && (500..700).contains(&y) {
            128
        } else {
            ((x + 2 * y) % 256) as u8
        };
        image::Luma([v])
    });
    let png8 = png(&gray);
    let rgb = image::DynamicImage::ImageLuma8(gray.clone()).into_rgb8();
    let mut png_rgb = Vec::new();
    rgb.write_to(
        &mut std::io::Cursor::new(&mut png_rgb),
        image::ImageFormat::Png,
    )
    .expect("encode RGB");
    // 4-bit content: 16 levels.
    let gray4 = image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([(((x / 37 + y / 50) % 16) * 17) as u8])
    });
    let png4 = low_depth_png(&gray4, png::BitDepth::Four);
    // Bilevel content.
    let bilevel = image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if (x / 20 + y / 30) % 3 == 0 { 0 } else { 255 }])
    });
    let png1 = low_depth_png(&bilevel, png::BitDepth::One);
    let png_bilevel8 = png(&bilevel);

    let pages: Vec<(&str, PageImage<'_>, &image::GrayImage)> = vec![
        ("8-bit PNG, fast path", PageImage::Png(&png8), &gray),
        (
            "gray pixels",
            PageImage::Gray {
                width: w,
                height: h,
                pixels: gray.as_raw(),
            },
            &gray,
        ),
        ("RGB PNG, decoded", PageImage::Png(&png_rgb), &gray),
        ("4-bit PNG, fast path", PageImage::Png(&png4), &gray4),
        (
            "4-bit levels as gray pixels",
            PageImage::Gray {
                width: w,
                height: h,
                pixels: gray4.as_raw(),
            },
            &gray4,
        ),
        ("1-bit PNG, fast path", PageImage::Png(&png1), &bilevel),
        (
            "bilevel 8-bit PNG, fast path",
            PageImage::Png(&png_bilevel8),
            &bilevel,
        ),
        (
            "bilevel gray pixels, packed to 1 bit",
            PageImage::Gray {
                width: w,
                height: h,
                pixels: bilevel.as_raw(),
            },
            &bilevel,
        ),
    ];
    let mut pdf = ProductionWriter::new(Vec::new(), &info("paths")).expect("new");
    for (_, image, _) in &pages {
        pdf.image_page(&ImagePage {
            stamp: None,
            ..image_page(*image, 100.0, &[], "")
        })
        .expect("page");
    }
    let (bytes, count) = pdf.finish().expect("finish");
    assert_eq!(count as usize, pages.len());
    let path = write_pdf(dir.path(), "paths.pdf", &bytes);
    assert_eq!(page_count(&path) as usize, pages.len());

    // The fast path really embeds the PNG's compressed data unchanged.
    for png in [&png8, &png4, &png1] {
        let data = idat(png);
        assert!(
            bytes.windows(data.len()).any(|w| w == data.as_slice()),
            "IDAT data must appear verbatim"
        );
    }
    // The bilevel raw page is stored with 1 bit per component.
    let listed = image_list(&path, 8);
    assert_eq!(listed.len(), 1);
    let columns: Vec<&str> = listed[0].split_whitespace().collect();
    assert_eq!(columns[7], "1", "bpc of the packed page: {listed:?}");

    // What is embedded is exactly the source, whichever way it got there (pdfimages decodes
    // the streams, predictor included).
    for (index, (name, _, source)) in pages.iter().enumerate() {
        let images = extract_images(&path, index as u32 + 1);
        assert_eq!(images.len(), 1, "{name}");
        assert!(
            images[0] == **source,
            "{name}: embedded pixels differ from the source"
        );
    }

    // Pages with the same pixels render identically, whichever path embedded them.
    // (Rendered at the scans' own 100 dpi; poppler resamples even at 1:1, so renders are
    // compared with each other, not with the source.)
    let renders: Vec<Gray> = (1..=pages.len() as u32)
        .map(|p| render(&path, p, 100))
        .collect();
    for r in &renders {
        assert_eq!((r.width, r.height), (w as usize, h as usize));
    }
    for (a, b) in [(0, 1), (0, 2), (3, 4), (5, 6), (5, 7)] {
        assert!(
            renders[a].pixels == renders[b].pixels,
            "{} and {} render differently",
            pages[a].0,
            pages[b].0
        );
    }
    // ... and the renders do show the content (the black rectangle, 100..300 x 200..260).
    assert!(renders[0].region(110, 210, 290, 250).iter().all(|&p| p < 5));
    assert!(renders[0]
        .region(360, 510, 490, 690)
        .iter()
        .all(|&p| p.abs_diff(128) < 3));
}

fn low_depth_png(img: &image::GrayImage, depth: png::BitDepth) -> Vec<u8> {
    let bits = depth as u32;
    let (w, h) = img.dimensions();
    let row_bytes = (w * bits).div_ceil(8) as usize;
    let mut data = vec![0u8; row_bytes * h as usize];
    let max = (1u32 << bits) - 1;
    for y in 0..h {
        for x in 0..w {
            let level = u32::from(img.get_pixel(x, y)[0]) * max / 255;
            let bit = (x * bits) as usize;
            let shift = 8 - bits as usize - bit % 8;
            data[y as usize * row_bytes + bit / 8] |= (level as u8) << shift;
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(depth);
    let mut writer = encoder.write_header().expect("PNG header");
    writer.write_image_data(&data).expect("PNG data");
    writer.finish().expect("PNG end");
    out
}

/// `text_page_count` is the number of pages `text_pages` writes (and poppler sees), for
/// texts whose page counts are known by hand.
#[test]
fn text_page_count_matches_pages_written() {
    let lines = |n: usize| (1..=n).map(|i| format!("Line {i}\n")).collect::<String>();
    let long_words = format!("{}\n", ["word"; 30].join(" ")).repeat(40); // 2 lines each
    let long_run = format!("{}\n", "x".repeat(200)).repeat(20); // 3 lines each
    let cases: Vec<(&str, String, u32)> = vec![
        ("one line", "Certified true copy.".to_string(), 1),
        ("empty", String::new(), 1),
        ("56 lines", lines(56), 1),
        ("57 lines", lines(57), 2),
        ("112 lines", lines(112), 2),
        ("wrapped at spaces: 80 lines", long_words, 2),
        ("hard-wrapped: 60 lines", long_run, 2),
        ("form feed", "Certification\n\x0cManifest\n".to_string(), 2),
        ("double form feed", "a\x0c\x0cb".to_string(), 3),
        ("trailing form feed", "a\n\x0c".to_string(), 1),
        (
            "full page then form feed",
            format!("{}\x0cnext", lines(56)),
            2,
        ),
        (
            "wrap pushes over a page",
            format!("{}{}", lines(55), "y ".repeat(60)),
            2,
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text, expected) in &cases {
        assert_eq!(text_page_count(text), *expected, "{name}: text_page_count");
        let mut pdf = ProductionWriter::new(Vec::new(), &info(name)).expect("new");
        let written = pdf.text_pages(text, Some("FOOTER")).expect("text pages");
        assert_eq!(written, *expected, "{name}: text_pages");
        let (bytes, pages) = pdf.finish().expect("finish");
        assert_eq!(pages, *expected, "{name}: finish");
        let path = write_pdf(dir.path(), "text.pdf", &bytes);
        assert_eq!(page_count(&path), *expected, "{name}: pdfinfo");
        let text_out = pdftotext(&path, 1, *expected);
        assert_eq!(
            text_out.matches("FOOTER").count() as u32,
            *expected,
            "{name}"
        );
    }
}

/// Text pages keep every word through wrapping, put the 57th line on page 2, and take a
/// per-page footer.
#[test]
fn text_pages_wrap_paginate_and_number_footers() {
    let mut text = (1..=57).map(|i| format!("Line {i}\n")).collect::<String>();
    let sentence: Vec<String> = (1..=40).map(|i| format!("w{i:02}")).collect();
    text.push_str(&sentence.join(" "));
    text.push('\n');
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pdf = ProductionWriter::new(Vec::new(), &info("manifest")).expect("new");
    let pages = pdf
        .text_pages_with(&text, |page, pages| {
            Some(format!("Manifest page {page} of {pages}"))
        })
        .expect("text pages");
    assert_eq!(pages, 2);
    let (bytes, _) = pdf.finish().expect("finish");
    let path = write_pdf(dir.path(), "manifest.pdf", &bytes);
    let page1 = pdftotext(&path, 1, 1);
    let page2 = pdftotext(&path, 2, 2);
    assert!(page1.contains("Line 56\n"), "{page1:?}");
    assert!(!page1.contains("Line 57"), "{page1:?}");
    assert!(page1.contains("Manifest page 1 of 2"), "{page1:?}");
    assert!(page2.contains("Line 57"), "{page2:?}");
    assert!(page2.contains("Manifest page 2 of 2"), "{page2:?}");
    // 40 words of 3 characters = 159 characters: wrapped into 3 lines, no word lost or split.
    let words: Vec<&str> = page2.split_whitespace().collect();
    for w in &sentence {
        assert!(words.contains(&w.as_str()), "{w} missing from {page2:?}");
    }
    let page2_render = render(&path, 2, 72);
    // The footer is in the bottom-right area (right of center, below the bottom margin).
    let footer = page2_render.region(306, 792 - 72, 612 - 36, 792 - 20);
    assert!(footer.iter().any(|&p| p < 100), "footer glyphs expected");
}
