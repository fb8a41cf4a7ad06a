use std::time::Instant;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("fixture {path}: {error}"))
}

/// Share of pixels darker than mid-grey.
fn ink(image: &GrayImage) -> f64 {
    let dark = image.as_raw().iter().filter(|&&p| p < 128).count();
    dark as f64 / image.as_raw().len() as f64
}

/// Opens a fixture, renders every page, checks each is neither blank nor black; returns
/// (width, height, dpi) per page.
fn render_all(name: &str, limits: &Limits) -> Vec<(u32, u32, f32)> {
    render_all_with(name, limits, 0.9)
}

fn render_all_with(name: &str, limits: &Limits, max_ink: f64) -> Vec<(u32, u32, f32)> {
    let pdf = PdfFile::open(fixture(name), limits).unwrap();
    let mut sizes = Vec::new();
    for index in 0..pdf.page_count() {
        let info = pdf.page_info(index, limits).unwrap();
        let start = Instant::now();
        let page = pdf.page(index, limits).unwrap();
        let elapsed = start.elapsed();
        let (w, h) = page.image.dimensions();
        let share = ink(&page.image);
        println!(
            "{name} page {}: {w}x{h} at {:.1} dpi, ink {:.3}, text layer {}, rendered in {} ms",
            index + 1,
            page.dpi.0,
            share,
            page.text_layer.as_ref().map_or(0, |t| t.words.len()),
            elapsed.as_millis()
        );
        assert_eq!(
            (info.width, info.height),
            (w, h),
            "{name} page {}",
            index + 1
        );
        assert!(
            w <= limits.max_dimension
                && h <= limits.max_dimension
                && u64::from(w) * u64::from(h) <= limits.max_pixels_per_page
        );
        assert!(share > 0.001, "{name} page {} is blank", index + 1);
        assert!(share < max_ink, "{name} page {} is black", index + 1);
        sizes.push((w, h, page.dpi.0));
    }
    sizes
}

#[test]
fn pdf_ccitt_page_renders_at_its_native_300_dpi() {
    let sizes = render_all("ccitt.pdf", &Limits::default());
    assert_eq!(sizes, vec![(2550, 3300, 300.0)]);
}

#[test]
fn pdf_scan5_g4_has_five_300_dpi_pages() {
    let sizes = render_all("scan5_g4.pdf", &Limits::default());
    assert_eq!(sizes.len(), 5);
    for (w, h, dpi) in sizes {
        assert_eq!(dpi, 300.0);
        assert!(w >= 2500 && h >= 2500, "{w}x{h}");
    }
}

#[test]
fn pdf_cardinal_has_four_jbig2_pages() {
    let sizes = render_all("cardinal.pdf", &Limits::default());
    assert_eq!(sizes.len(), 4);
    for (_, _, dpi) in &sizes {
        assert!((dpi - 300.0).abs() < 1.0, "{dpi}");
    }
}

#[test]
fn pdf_skewed_jbig2_pages_render() {
    for name in ["skew.pdf", "rotated_skew.pdf"] {
        let sizes = render_all(name, &Limits::default());
        assert_eq!(sizes.len(), 1);
    }
}

#[test]
fn pdf_multipage_mixed_resolutions_respect_limits() {
    let sizes = render_all("multipage.pdf", &Limits::default());
    assert_eq!(sizes.len(), 6);
    assert_eq!(sizes[1], (9000, 9000, 300.0));
    // A tighter side limit scales the big page down instead of failing.
    let narrow = Limits {
        max_dimension: 3000,
        ..Limits::default()
    };
    let sizes = render_all("multipage.pdf", &narrow);
    assert_eq!(sizes.len(), 6);
    assert_eq!((sizes[1].0, sizes[1].1), (3000, 3000));
    assert!((sizes[1].2 - 100.0).abs() < 0.01);
    // An image over the pixel limit itself is refused (decoding it is what costs memory).
    let few_pixels = Limits {
        max_pixels_per_page: 4_000_000,
        ..Limits::default()
    };
    let error = PdfFile::open(fixture("multipage.pdf"), &few_pixels)
        .err()
        .expect("the 9000x9000 image is over 4 megapixels");
    println!("{error}");
}

#[test]
fn pdf_jpeg_and_jpx_pages_render() {
    let sizes = render_all("c02-22.pdf", &Limits::default());
    assert_eq!(sizes.len(), 1);
    let (w, h, dpi) = sizes[0];
    assert!((dpi - 150.0).abs() < 1.0, "{dpi}");
    assert!(w.abs_diff(800) <= 2 && h.abs_diff(981) <= 2, "{w}x{h}");
    // A wavelet-decomposition picture: mostly dark by nature, not all black.
    let sizes = render_all_with("lichtenstein.pdf", &Limits::default(), 0.97);
    assert_eq!(sizes, vec![(512, 512, 96.0)]);
}

#[test]
fn pdf_file_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PdfFile>();
}

// ---- hand-written PDFs ----

/// A PDF with the given objects (numbered from 1; object 1 must be the catalog), a correct
/// xref table and `trailer_extra` in the trailer.
fn build_pdf(objects: &[Vec<u8>], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (index, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", index + 1).as_bytes());
        out.extend(body);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn obj(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    out.extend(data);
    out.extend(b"\nendstream");
    out
}

const CATALOG: &str = "<< /Type /Catalog /Pages 2 0 R >>";
const PAGES: &str = "<< /Type /Pages /Kids [3 0 R] /Count 1 >>";

/// One Letter page with Helvetica text, `extra` added to the page dictionary.
fn text_pdf(extra: &str) -> Vec<u8> {
    build_pdf(
        &[
            obj(CATALOG),
            obj(PAGES),
            obj(&format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] {extra} \
                 /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
            )),
            stream(
                "",
                b"BT /F1 24 Tf 72 700 Td (Patient Jane Doe) Tj 0 -40 Td (Discharged 2024) Tj ET",
            ),
            obj(
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
            ),
        ],
        "",
    )
}

#[test]
fn pdf_born_digital_text_layer_has_words_with_boxes() {
    let limits = Limits::default();
    let pdf = PdfFile::open(text_pdf(""), &limits).unwrap();
    let page = pdf.page(0, &limits).unwrap();
    assert_eq!(page.image.dimensions(), (2550, 3300));
    assert_eq!(page.dpi, (300.0, 300.0));
    assert!(ink(&page.image) > 0.0005, "the text is drawn");
    let layer = page.text_layer.expect("a text layer");
    assert_eq!(layer.text, "Patient Jane Doe\nDischarged 2024\n");
    let texts: Vec<_> = layer.words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(texts, ["Patient", "Jane", "Doe", "Discharged", "2024"]);
    let patient = &layer.words[0];
    // 72 pt from the left at 300 dpi is 300 px; the baseline 92 pt from the top is 383 px,
    // and 24 pt Helvetica rises ~0.75 em above it.
    assert!(patient.left.abs_diff(300) <= 3, "{patient:?}");
    assert!(patient.top > 290 && patient.top < 320, "{patient:?}");
    assert!(patient.top + patient.height > 383 && patient.top + patient.height < 420);
    assert!(patient.width > 250 && patient.width < 400, "{patient:?}");
    assert_eq!(
        (patient.block, patient.par, patient.line, patient.word),
        (1, 1, 1, 1)
    );
    let year = &layer.words[4];
    assert_eq!((year.block, year.line, year.word), (1, 2, 2));
    assert!(year.top > patient.top + 150);
    assert_eq!(layer.mean_confidence, 100.0);
    // Ink lies inside the first word's box.
    let (x, y) = (
        patient.left + patient.width / 2,
        patient.top + patient.height / 2,
    );
    let region = image::imageops::crop_imm(&page.image, x - 100, y - 40, 200, 80).to_image();
    assert!(ink(&region) > 0.02);
}

#[test]
fn pdf_rotate_puts_text_boxes_on_the_upright_page() {
    let limits = Limits::default();
    let pdf = PdfFile::open(text_pdf("/Rotate 90"), &limits).unwrap();
    let page = pdf.page(0, &limits).unwrap();
    assert_eq!(page.image.dimensions(), (3300, 2550));
    let layer = page.text_layer.expect("a text layer");
    assert_eq!(layer.words.len(), 5);
    for word in &layer.words {
        assert!(word.left + word.width <= 3300 && word.top + word.height <= 2550);
        // Rotated clockwise: the text runs down the page, so its boxes are tall.
        assert!(word.height > word.width, "{word:?}");
    }
}

#[test]
fn pdf_invisible_text_over_a_scan_is_the_text_layer_at_the_scan_resolution() {
    // An OCRmyPDF-style page: an 850x1100 grey image filling Letter (100 dpi) and invisible
    // text (render mode 3) over it.
    let mut pixels = vec![255u8; 850 * 1100];
    for row in 200..260 {
        pixels[row * 850 + 100..row * 850 + 600].fill(0);
    }
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&pixels, 6);
    let limits = Limits::default();
    let bytes = build_pdf(
        &[
            obj(CATALOG),
            obj(PAGES),
            obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> /Contents 4 0 R >>"),
            stream(
                "",
                b"q 612 0 0 792 0 0 cm /Im1 Do Q BT 3 Tr /F1 36 Tf 72 600 Td (Invisible words) Tj ET",
            ),
            obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"),
            stream(
                "/Type /XObject /Subtype /Image /Width 850 /Height 1100 /ColorSpace /DeviceGray \
                 /BitsPerComponent 8 /Filter /FlateDecode",
                &compressed,
            ),
        ],
        "",
    );
    let pdf = PdfFile::open(bytes, &limits).unwrap();
    let info = pdf.page_info(0, &limits).unwrap();
    assert_eq!((info.width, info.height), (850, 1100));
    let page = pdf.page(0, &limits).unwrap();
    assert_eq!(page.dpi, (100.0, 100.0));
    // The bar is where the image has it: rows 200..260, columns 100..600.
    assert_eq!(page.image.get_pixel(300, 230).0, [0]);
    assert_eq!(page.image.get_pixel(300, 300).0, [255]);
    let layer = page.text_layer.expect("the invisible text layer");
    assert_eq!(layer.text, "Invisible words\n");
    assert!(layer.words[0].left.abs_diff(100) <= 2);
}

#[test]
fn pdf_scan_without_text_has_no_text_layer() {
    let limits = Limits::default();
    let pdf = PdfFile::open(fixture("ccitt.pdf"), &limits).unwrap();
    assert!(pdf.page(0, &limits).unwrap().text_layer.is_none());
}

#[test]
fn pdf_page_out_of_range_is_an_error() {
    let limits = Limits::default();
    let pdf = PdfFile::open(text_pdf(""), &limits).unwrap();
    assert!(matches!(
        pdf.page(1, &limits),
        Err(ScanError::PageOutOfRange {
            requested: 2,
            pages: 1
        })
    ));
}

// ---- hostile input: an error, quickly, never a panic ----

/// Asserts `bytes` fail to open or to render page 1, within a few seconds.
fn assert_rejected(what: &str, bytes: Vec<u8>) -> ScanError {
    let limits = Limits::default();
    let start = Instant::now();
    let result = PdfFile::open(bytes, &limits).and_then(|pdf| pdf.page(0, &limits).map(|_| ()));
    let elapsed = start.elapsed();
    let error = result.expect_err(what);
    println!("{what}: {error} ({} ms)", elapsed.as_millis());
    assert!(elapsed.as_secs() < 10, "{what} took {elapsed:?}");
    error
}

#[test]
fn pdf_truncated_file_is_rejected() {
    let mut bytes = fixture("ccitt.pdf");
    bytes.truncate(bytes.len() / 2);
    let error = assert_rejected("truncated", bytes);
    assert!(error.to_string().contains("truncated"), "{error}");
    let mut bytes = fixture("ccitt.pdf");
    bytes.truncate(bytes.len() - 10);
    assert_rejected("truncated in the trailer", bytes);
}

#[test]
fn pdf_garbage_after_the_header_is_rejected() {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    let mut x = 0x1234_5678u32;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push(x as u8);
    }
    // With an end-of-file marker, so the parser itself has to cope with the garbage.
    bytes.extend(b"\n%%EOF\n");
    let error = assert_rejected("garbage", bytes);
    assert!(!error.to_string().contains("truncated"), "{error}");
    assert!(matches!(
        PdfFile::open(Vec::new(), &Limits::default()),
        Err(ScanError::Empty)
    ));
}

#[test]
fn pdf_encrypted_file_is_rejected_clearly() {
    let mut objects = vec![obj(CATALOG), obj(PAGES)];
    objects.push(obj(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ));
    let bytes = build_pdf(
        &objects,
        "/Encrypt << /Filter /Standard /V 2 /R 3 /Length 128 /P -4 \
         /O <00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF> \
         /U <00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF> >> \
         /ID [<0123456789ABCDEF0123456789ABCDEF> <0123456789ABCDEF0123456789ABCDEF>]",
    );
    let error = assert_rejected("encrypted", bytes.clone());
    assert!(matches!(error, ScanError::PdfEncrypted { .. }), "{error}");
    assert!(error.to_string().contains("encrypted"));
    // However the key is written (hayro decodes `#xx` escapes in names).
    let escaped = String::from_utf8_lossy(&bytes).replace("/Encrypt", "/Encr#79pt");
    let error = assert_rejected("encrypted, escaped key", escaped.into_bytes());
    assert!(matches!(error, ScanError::PdfEncrypted { .. }), "{error}");
}

#[test]
fn pdf_absurd_media_box_is_rejected() {
    let bytes = build_pdf(
        &[
            obj(CATALOG),
            obj(PAGES),
            obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 1e9 1e9] /Contents 4 0 R >>"),
            stream("", b"0 0 m 100 100 l S"),
        ],
        "",
    );
    assert_rejected("absurd MediaBox", bytes);
}

#[test]
fn pdf_deflate_bomb_is_rejected() {
    // 200 MiB of zeros compress to ~200 KiB.
    let zeros = vec![0u8; 200 << 20];
    let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 1);
    drop(zeros);
    let bytes = build_pdf(
        &[
            obj(CATALOG),
            obj(PAGES),
            obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"),
            stream("/Filter /FlateDecode", &bomb),
        ],
        "",
    );
    let error = assert_rejected("deflate bomb", bytes);
    assert!(error.to_string().contains("expands"), "{error}");
}

#[test]
fn pdf_page_tree_loops_are_rejected() {
    // /Kids pointing back at the Pages node itself.
    let bytes = build_pdf(
        &[
            obj(CATALOG),
            obj("<< /Type /Pages /Kids [2 0 R] /Count 1 >>"),
        ],
        "",
    );
    assert_rejected("Kids loop", bytes);
    // A page that is its own parent and resources.
    let bytes = build_pdf(
        &[
            obj(CATALOG),
            obj("<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>"),
            obj("<< /Type /Page /Parent 3 0 R /Resources 3 0 R /Contents 3 0 R /MediaBox 3 0 R >>"),
        ],
        "",
    );
    let limits = Limits::default();
    // hayro may accept this page (it falls back to defaults); it must not hang or panic.
    if let Ok(pdf) = PdfFile::open(bytes, &limits) {
        let _ = pdf.page(0, &limits);
    }
}

#[test]
fn pdf_forms_drawing_forms_are_rejected() {
    // Nine levels of forms, each drawing the next ten times: 10^9 operations.
    let mut objects = vec![
        obj(CATALOG),
        obj(PAGES),
        obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /XObject << /X 5 0 R >> >> /Contents 4 0 R >>"),
        stream("", b"/X Do"),
    ];
    let levels = 9;
    for level in 0..levels {
        let number = 5 + level;
        if level + 1 < levels {
            objects.push(stream(
                &format!(
                    "/Type /XObject /Subtype /Form /BBox [0 0 10 10] \
                     /Resources << /XObject << /X {} 0 R >> >>",
                    number + 1
                ),
                "/X Do ".repeat(10).as_bytes(),
            ));
        } else {
            objects.push(stream(
                "/Type /XObject /Subtype /Form /BBox [0 0 10 10]",
                b"0 0 m 10 10 l S",
            ));
        }
    }
    let error = assert_rejected("form fan-out", build_pdf(&objects, ""));
    assert!(error.to_string().contains("operations"), "{error}");
}

#[test]
fn pdf_image_declaring_absurd_size_is_rejected() {
    let bytes = build_pdf(
        &[
            obj(CATALOG),
            obj(PAGES),
            obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>"),
            stream("", b"q 612 0 0 792 0 0 cm /Im1 Do Q"),
            stream(
                "/Type /XObject /Subtype /Image /Width 200000 /Height 200000 /ImageMask true \
                 /Filter /CCITTFaxDecode /DecodeParms << /K -1 /Columns 200000 /Rows 200000 >>",
                b"\x00\x10\x01",
            ),
        ],
        "",
    );
    let error = assert_rejected("absurd image", bytes);
    assert!(error.to_string().contains("200000x200000"), "{error}");
}

// ---- the guard's two passes on their own ----

/// zlib data for `len` zero bytes, without ever holding them.
fn deflated_zeros(len: usize) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        encoder.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

/// One page whose content stream is `dict` + `data`, `extra` objects from 5.
fn page_with_contents(dict: &str, data: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    let mut objects = vec![
        obj(CATALOG),
        obj(PAGES),
        obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"),
        stream(dict, data),
    ];
    objects.extend(extra.iter().cloned());
    build_pdf(&objects, "")
}

#[test]
fn pdf_walk_alone_refuses_chains_the_parser_decodes_while_drawing() {
    // What the pre-scan also catches here (it sees the dictionaries), the walk must catch
    // on its own: it is the only check of streams stored inside object streams.
    let limits = Limits::default();
    let flate = deflated_zeros(200 << 20);
    let mut ascii85 = Vec::new();
    for chunk in flate.chunks(4) {
        let mut group = [0u8; 4];
        group[..chunk.len()].copy_from_slice(chunk);
        let mut value = u32::from_be_bytes(group);
        let mut digits = [0u8; 5];
        for digit in digits.iter_mut().rev() {
            *digit = (value % 85) as u8 + b'!';
            value /= 85;
        }
        ascii85.extend(&digits[..chunk.len() + 1]);
    }
    ascii85.extend(b"~>");
    let mut run_length = [129u8, 0].repeat((200 << 20) / 128);
    run_length.push(128);
    let twice = miniz_oxide::deflate::compress_to_vec_zlib(&flate, 9);
    let shapes = [
        (
            "indirect filter",
            page_with_contents("/Filter 5 0 R", &flate, &[obj("/FlateDecode")]),
        ),
        (
            "ASCII85 then Flate",
            page_with_contents("/Filter [/A85 /Fl]", &ascii85, &[]),
        ),
        (
            "RunLength",
            page_with_contents("/Filter /RunLengthDecode", &run_length, &[]),
        ),
        (
            "Flate twice",
            page_with_contents("/Filter [/FlateDecode /FlateDecode]", &twice, &[]),
        ),
    ];
    for (name, bytes) in shapes {
        let len = bytes.len();
        let pdf = Pdf::new(bytes).expect("parses");
        let error = guard::check_objects(&pdf, &limits, len).expect_err(name);
        assert!(error.to_string().contains("expands"), "{name}: {error}");
    }
}

#[test]
fn pdf_predictor_rows_too_large_to_allocate_are_refused() {
    // hayro allocates a predictor row of /Columns × /Colors × /BitsPerComponent bits before
    // reading the data, and the process aborts when that fails (no panic to catch).
    let data = miniz_oxide::deflate::compress_to_vec_zlib(b"0 0 m 10 10 l S", 6);
    for columns in [
        "/Columns 1000000000000000",
        "/Col#75mns 1000000000000000",
        "/Columns 7 0 R",
    ] {
        let bytes = page_with_contents(
            &format!(
                "/Filter /FlateDecode /DecodeParms << /Predictor 2 /BitsPerComponent 16 {columns} >>"
            ),
            &data,
            &[],
        );
        let error = assert_rejected(columns, bytes);
        assert!(error.to_string().contains("/Columns"), "{error}");
    }
    // Within the limit: opens and draws.
    let bytes = page_with_contents(
        "/Filter /FlateDecode /DecodeParms << /Predictor 2 /BitsPerComponent 8 /Columns 1 >>",
        &data,
        &[],
    );
    let limits = Limits::default();
    PdfFile::open(bytes, &limits)
        .unwrap()
        .page(0, &limits)
        .unwrap();
}

#[test]
fn pdf_stream_keywords_that_make_the_pre_scan_quadratic_are_refused() {
    // 2000 `stream` keywords, each followed by 200 empty stored blocks and a stored block
    // whose payload is the next keyword: raw deflate read from any keyword goes on to the
    // end of the file, producing almost nothing.
    let mut bytes = b"%PDF-1.7\n".to_vec();
    for _ in 0..2000 {
        bytes.extend([0x00, 7, 0, 0xF8, 0xFF]);
        bytes.extend(b"stream\n");
        for _ in 0..200 {
            bytes.extend([0x00, 0, 0, 0xFF, 0xFF]);
        }
    }
    bytes.extend(b"\n%%EOF\n");
    let error = assert_rejected("quadratic keywords", bytes);
    assert!(error.to_string().contains("too much work"), "{error}");
}

// ---- text the page does not show ----

/// The words of page 1 of a one-page PDF whose content stream is `content` (font /F1 is
/// Helvetica, /F2 a Type 3 font whose glyphs a–z draw nothing, image /Im1 is `image`), with
/// their hidden flags.
fn words_of(content: &str, image: Option<&GrayImage>) -> Vec<(String, bool)> {
    let mut objects = vec![
        obj(CATALOG),
        obj(PAGES),
        obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 5 0 R /F2 6 0 R >> /XObject << /Im1 8 0 R >> >> \
             /Contents 4 0 R >>"),
        stream("", content.as_bytes()),
        obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"),
        obj(&format!(
            "<< /Type /Font /Subtype /Type3 /FontBBox [0 0 500 700] \
             /FontMatrix [0.001 0 0 0.001 0 0] /CharProcs 7 0 R /FirstChar 32 /LastChar 122 \
             /Widths [250 {}] /Encoding << /Type /Encoding /Differences [32 /space 97 {}] >> >>",
            "500 ".repeat(90),
            ('a'..='z')
                .map(|c| format!("/{c}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        obj(&format!(
            "<< /space 9 0 R {} >>",
            ('a'..='z')
                .map(|c| format!("/{c} 9 0 R"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    ];
    match image {
        Some(image) => objects.push(stream(
            &format!(
                "/Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /DeviceGray \
                 /BitsPerComponent 8 /Filter /FlateDecode",
                image.width(),
                image.height()
            ),
            &miniz_oxide::deflate::compress_to_vec_zlib(image.as_raw(), 6),
        )),
        None => objects.push(stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1]", b"")),
    }
    objects.push(stream("", b"500 0 d0"));
    let limits = Limits::default();
    let pdf = PdfFile::open(build_pdf(&objects, ""), &limits).unwrap();
    let page = pdf.page(0, &limits).unwrap();
    page.text_layer
        .expect("a text layer")
        .words
        .into_iter()
        .map(|word| (word.text, word.hidden))
        .collect()
}

fn hidden_words(words: &[(String, bool)]) -> Vec<&str> {
    words
        .iter()
        .filter(|(_, hidden)| *hidden)
        .map(|(text, _)| text.as_str())
        .collect()
}

#[test]
fn pdf_visible_text_is_seen() {
    let words = words_of(
        "BT /F1 24 Tf 72 700 Td (Patient Jane Doe) Tj 0 -40 Td (a . - 42) Tj ET \
         0.75 g BT /F1 12 Tf 72 600 Td (light grey) Tj ET \
         0 0 0.6 rg 60 480 300 60 re f 1 g BT /F1 24 Tf 72 500 Td (white on blue) Tj ET",
        None,
    );
    assert_eq!(words.len(), 12, "{words:?}");
    assert!(hidden_words(&words).is_empty(), "{words:?}");
}

#[test]
fn pdf_invisible_text_on_a_blank_page_is_hidden() {
    let words = words_of("BT 3 Tr /F1 24 Tf 72 700 Td (Patient Jane Doe) Tj ET", None);
    assert_eq!(hidden_words(&words), ["Patient", "Jane", "Doe"]);
}

#[test]
fn pdf_white_text_on_white_is_hidden() {
    let words = words_of(
        "BT /F1 24 Tf 72 700 Td (Visible) Tj ET \
         1 g BT /F1 24 Tf 72 600 Td (HIV positive) Tj ET",
        None,
    );
    assert_eq!(hidden_words(&words), ["HIV", "positive"]);
}

#[test]
fn pdf_text_under_a_black_rectangle_is_hidden() {
    // The classic failed redaction: the text is there, a black box drawn over it.
    let words = words_of(
        "BT /F1 24 Tf 72 700 Td (Diagnosis:) Tj ET \
         BT /F1 24 Tf 200 700 Td (schizophrenia) Tj ET \
         0 g 195 690 170 34 re f",
        None,
    );
    assert_eq!(hidden_words(&words), ["schizophrenia"], "{words:?}");
}

#[test]
fn pdf_text_under_a_white_rectangle_is_hidden() {
    let words = words_of(
        "BT /F1 24 Tf 72 700 Td (Kept) Tj 0 -40 Td (Covered words) Tj ET \
         1 g 60 650 400 30 re f",
        None,
    );
    assert_eq!(hidden_words(&words), ["Covered", "words"], "{words:?}");
}

#[test]
fn pdf_invisible_text_layer_over_a_scan_is_seen_where_the_scan_shows_the_words() {
    // The "scan": a page of visible text rendered to pixels (at ~96 dpi, within 1 MP).
    let text =
        "BT /F1 20 Tf 72 700 Td (Discharge summary for) Tj 0 -30 Td (metformin 500 mg) Tj ET";
    let small = Limits {
        max_pixels_per_page: 1_000_000,
        ..Limits::default()
    };
    let page = PdfFile::open(
        build_pdf(
            &[
                obj(CATALOG),
                obj(PAGES),
                obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                     /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"),
                stream("", text.as_bytes()),
                obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"),
            ],
            "",
        ),
        &small,
    )
    .unwrap()
    .page(0, &small)
    .unwrap();
    let scan = page.image;
    // The scan drawn over the whole page, and the same words as invisible text on it, once
    // in Helvetica (glyphs with outlines) and once in a font whose glyphs draw nothing (as
    // Tesseract's and OCRmyPDF's GlyphLessFont); then one invisible word over blank paper.
    let draw_scan = "q 612 0 0 792 0 0 cm /Im1 Do Q";
    let words = words_of(
        &format!("{draw_scan} 3 Tr {text} BT 3 Tr /F1 20 Tf 72 300 Td (unseen) Tj ET"),
        Some(&scan),
    );
    assert_eq!(words.len(), 7, "{words:?}");
    assert_eq!(hidden_words(&words), ["unseen"], "{words:?}");
    let glyphless =
        "BT 3 Tr /F2 20 Tf 72 700 Td (discharge summary for) Tj 0 -30 Td (metformin mg) Tj ET \
                     BT 3 Tr /F2 20 Tf 72 300 Td (unseen) Tj ET";
    let words = words_of(&format!("{draw_scan} {glyphless}"), Some(&scan));
    assert_eq!(words.len(), 6, "{words:?}");
    assert_eq!(hidden_words(&words), ["unseen"], "{words:?}");
}
