use std::time::Duration;

use image::{GrayImage, Luma};

use super::*;
use crate::testing::fixture_page;

const PAYLOAD: &str = "CV|MRN=00123|TYPE=progress-note";

fn code(symbology: Symbology, text: &str) -> Barcode {
    Barcode {
        symbology,
        text: text.to_owned(),
    }
}

/// Deterministic xorshift64* generator (no `rand` dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Rotates about the centre by `degrees` (bilinear), filling with white paper.
fn rotate(image: &GrayImage, degrees: f64) -> GrayImage {
    let (w, h) = image.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let src = |x: i64, y: i64| -> f64 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            255.0
        } else {
            image.get_pixel(x as u32, y as u32)[0] as f64
        }
    };
    GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
        let sx = cos * dx + sin * dy + cx - 0.5;
        let sy = -sin * dx + cos * dy + cy - 0.5;
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let top = src(x0, y0) * (1.0 - fx) + src(x0 + 1, y0) * fx;
        let bottom = src(x0, y0 + 1) * (1.0 - fx) + src(x0 + 1, y0 + 1) * fx;
        Luma([(top * (1.0 - fy) + bottom * fy).round() as u8])
    })
}

/// Like a 1-bit scan: thresholded at mid-grey, then `fraction` of the pixels flipped.
fn bilevel_with_noise(image: &GrayImage, fraction: f64, seed: u64) -> GrayImage {
    let mut rng = Rng(seed);
    let mut out = image.clone();
    for p in out.pixels_mut() {
        let black = p[0] < 128;
        let flip = rng.unit() < fraction;
        p[0] = if black != flip { 0 } else { 255 };
    }
    out
}

fn scanned(page: &GrayImage) -> GrayImage {
    bilevel_with_noise(&rotate(page, 2.0), 0.005, 0x5eed)
}

#[test]
fn code39_full_ascii_round_trips() {
    assert_eq!(
        code39_full_ascii("CV%QMRN%H00123").as_deref(),
        Some("CV|MRN=00123")
    );
    assert_eq!(
        code39_full_ascii("+P+R+O+G-+N+O+T+E").as_deref(),
        Some("prog-note")
    );
    assert_eq!(code39_full_ascii("/Z%V$M").as_deref(), Some(":@\r"));
    // Plain Code 39 with a shift character not followed by a valid letter stays as read.
    assert_eq!(code39_full_ascii("A+1"), None);
    assert_eq!(code39_full_ascii("ABC"), None);
    assert_eq!(code39_full_ascii("AB%"), None);
}

#[test]
fn symbology_serialises_lowercase() {
    let names = serde_json::to_string(&Symbology::ALL).unwrap();
    assert_eq!(names, r#"["code39","code128","qr","datamatrix","pdf417"]"#);
    for s in Symbology::ALL {
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
    }
    let json = serde_json::to_string(&code(Symbology::DataMatrix, "x")).unwrap();
    assert_eq!(json, r#"{"symbology":"datamatrix","text":"x"}"#);
}

#[test]
fn reads_each_symbology_on_a_clean_page() {
    for symbology in Symbology::ALL {
        let page = render_cover_page(symbology, PAYLOAD);
        assert_eq!(
            read_barcodes(&page),
            vec![code(symbology, PAYLOAD)],
            "{symbology} on a clean page"
        );
    }
}

#[test]
fn reads_each_symbology_on_a_noisy_skewed_bilevel_page() {
    for symbology in Symbology::ALL {
        let page = scanned(&render_cover_page(symbology, PAYLOAD));
        assert_eq!(
            read_barcodes(&page),
            vec![code(symbology, PAYLOAD)],
            "{symbology} on a 2°-skewed, thresholded page with 0.5% salt and pepper"
        );
    }
}

#[test]
fn reads_two_codes_on_one_page_and_they_disagree() {
    let mut page = render_cover_page(Symbology::Qr, PAYLOAD);
    let other = render_code(Symbology::DataMatrix, "CV|MRN=00999|TYPE=progress-note", 6);
    image::imageops::replace(&mut page, &other, 1500, 2600);
    let mut codes = read_barcodes(&page);
    codes.sort_by_key(|c| c.symbology.as_str());
    assert_eq!(
        codes,
        vec![
            code(Symbology::DataMatrix, "CV|MRN=00999|TYPE=progress-note"),
            code(Symbology::Qr, PAYLOAD),
        ]
    );
    match parse_cover_sheet(&codes, &CoverSheetFormat::default()) {
        CoverSheet::Unreadable { reason } => {
            assert_eq!(reason, "2 cover codes on the page disagree")
        }
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

#[test]
fn pages_without_codes_give_nothing() {
    assert!(read_barcodes(&GrayImage::from_pixel(2550, 3300, Luma([255]))).is_empty());
    assert!(read_barcodes(&GrayImage::new(0, 0)).is_empty());
    assert!(read_barcodes(&GrayImage::from_pixel(3, 2, Luma([0]))).is_empty());
    for name in [
        "letter300_clean.png",
        "8087_054.3B.tif",
        "letter300_scan_g4.tif",
    ] {
        if let Some(page) = fixture_page(name) {
            assert!(read_barcodes(&page).is_empty(), "{name} has no code");
        }
    }
}

#[test]
fn render_cover_page_and_code_sizes() {
    for symbology in Symbology::ALL {
        let code = render_code(symbology, PAYLOAD, default_module_px(symbology));
        eprintln!("{symbology}: {}x{} px", code.width(), code.height());
        assert!(code.width() <= 2250 && code.height() <= 1500);
    }
    // Code 39 Full ASCII tops out at 80 characters once shifted.
    let long = "CV|MRN=00123|TYPE=progress-note|CAT=clinical|DATE=2024-03-01";
    assert!(try_render_code(Symbology::Code39, long, 3).is_none());
    assert!(try_render_code(Symbology::Code128, long, 3).is_some());
    assert!(try_render_code(Symbology::Qr, long, 0).is_none());
}

/// CPU time of the calling thread: unlike wall time, not inflated by other processes on a
/// shared machine.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Mean thread CPU time per run, after one warm-up run.
fn time<T>(runs: u32, f: impl Fn() -> T) -> (Duration, T) {
    let mut out = f();
    let start = thread_cpu_time();
    for _ in 0..runs {
        out = f();
    }
    ((thread_cpu_time() - start) / runs, out)
}

/// Timings per page of each pass and of `read_barcodes`; run with `--nocapture` to see them.
#[test]
fn timings() {
    let mut pages: Vec<(String, GrayImage)> = Vec::new();
    for name in [
        "letter300_clean.png",
        "8087_054.3B.tif",
        "letter300_scan_g4.tif",
    ] {
        if let Some(page) = fixture_page(name) {
            pages.push((name.to_owned(), page));
        }
    }
    pages.push((
        "blank 2550x3300".to_owned(),
        GrayImage::from_pixel(2550, 3300, Luma([255])),
    ));
    for symbology in Symbology::ALL {
        let page = render_cover_page(symbology, PAYLOAD);
        pages.push((format!("{symbology} cover (scanned)"), scanned(&page)));
        pages.push((format!("{symbology} cover"), page));
    }
    eprintln!(
        "{:<28} {:>8} {:>8} {:>8} {:>8}  found",
        "page (CPU ms per page)", "2D pass", "1D pass", "total", "[fast]"
    );
    for (name, page) in &pages {
        let (two_d, _) = time(2, || decode_pass(&downscale_half(page), &TWO_D, true));
        let (one_d, _) = time(2, || {
            decode_pass(&squash_rows(page, ROWS_PER_BAND), &ONE_D, true)
        });
        let (total, found) = time(3, || read_barcodes(page));
        // For comparison: rxing without TRY_HARDER, all five formats, half resolution.
        let (fast, fast_found) = time(2, || {
            decode_pass(&downscale_half(page), &Symbology::ALL, false)
        });
        let found: Vec<&str> = found.iter().map(|b| b.symbology.as_str()).collect();
        eprintln!(
            "{name:<28} {:>8} {:>8} {:>8} {:>5}/{}  {found:?}",
            two_d.as_millis(),
            one_d.as_millis(),
            total.as_millis(),
            fast.as_millis(),
            fast_found.len(),
        );
    }
}

// ---- parser ----

fn cover(mrn: &str, ty: &str, cat: Option<&str>, date: Option<&str>) -> CoverSheet {
    CoverSheet::Cover {
        mrn: mrn.to_owned(),
        issuer: None,
        document_type: ty.to_owned(),
        category: cat.map(str::to_owned),
        service_date: date.map(str::to_owned),
    }
}

fn parse(texts: &[&str]) -> CoverSheet {
    let codes: Vec<Barcode> = texts.iter().map(|t| code(Symbology::Qr, t)).collect();
    parse_cover_sheet(&codes, &CoverSheetFormat::default())
}

fn reason(sheet: CoverSheet) -> String {
    match sheet {
        CoverSheet::Unreadable { reason } => reason,
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

#[test]
fn parses_good_cover_codes() {
    assert_eq!(
        parse(&[PAYLOAD]),
        cover("00123", "progress-note", None, None)
    );
    assert_eq!(
        parse(&["CV|DATE=2024-02-29|CAT=clinical|TYPE=lab_result|MRN=A-77|X-NEW=ignored|"]),
        cover("A-77", "lab_result", Some("clinical"), Some("2024-02-29"))
    );
    // An issuer, written by the encoder and read back.
    let format = CoverSheetFormat::default();
    let issued = format.encode_issued("00123", Some("NORTH"), "note", None, None);
    assert_eq!(issued, "CV|MRN=00123|TYPE=note|ISS=NORTH");
    let CoverSheet::Cover { issuer, .. } = parse(&[&issued]) else {
        panic!("a cover code");
    };
    assert_eq!(issuer.as_deref(), Some("NORTH"));
    assert!(matches!(
        parse(&["CV|MRN=00123|TYPE=note|ISS=NO RTH"]),
        CoverSheet::Unreadable { .. }
    ));
    // The same payload twice (two symbologies) and an unrelated code are fine.
    let codes = [
        code(Symbology::Qr, PAYLOAD),
        code(Symbology::Code128, PAYLOAD),
        code(Symbology::Code39, "LAB12345"),
    ];
    assert_eq!(
        parse_cover_sheet(&codes, &CoverSheetFormat::default()),
        cover("00123", "progress-note", None, None)
    );
    // Trailing newline from a scanner-style payload.
    assert_eq!(parse(&["CV|MRN=1|TYPE=x\r\n"]), cover("1", "x", None, None));
}

#[test]
fn a_configured_format() {
    let format = CoverSheetFormat {
        prefix: "HOSP".to_owned(),
        field_separator: '/',
        key_value_separator: ':',
        mrn_key: "PID".to_owned(),
        type_key: "DOC".to_owned(),
        ..CoverSheetFormat::default()
    };
    let text = format.encode("987", "CONSENT", Some("ADMIN"), Some("2023-12-31"));
    assert_eq!(text, "HOSP/PID:987/DOC:CONSENT/CAT:ADMIN/DATE:2023-12-31");
    assert_eq!(
        parse_cover_sheet(&[code(Symbology::Code39, &text)], &format),
        cover("987", "CONSENT", Some("ADMIN"), Some("2023-12-31"))
    );
    assert_eq!(
        CoverSheetFormat::default().encode("00123", "progress-note", None, None),
        PAYLOAD
    );
}

#[test]
fn not_cover_without_the_prefix() {
    assert_eq!(parse(&[]), CoverSheet::NotCover);
    assert_eq!(
        parse(&["XX|MRN=00123|TYPE=progress-note"]),
        CoverSheet::NotCover
    );
    assert_eq!(
        parse(&["CVX|MRN=00123|TYPE=progress-note"]),
        CoverSheet::NotCover
    );
    assert_eq!(
        parse(&["cv|MRN=00123|TYPE=progress-note"]),
        CoverSheet::NotCover
    );
    assert_eq!(
        parse(&["LAB12345", "https://example.org"]),
        CoverSheet::NotCover
    );
}

#[test]
fn unreadable_cover_codes_and_reasons_without_values() {
    let cases: &[(&[&str], &str)] = &[
        (&["CV|MRN=00123"], "qr cover code: missing TYPE field"),
        (&["CV|TYPE=progress-note"], "qr cover code: missing MRN field"),
        (&["CV"], "qr cover code: missing MRN field"),
        (
            &["CV|MRN=00123|TYPE=progress-note|MRN=00124"],
            "qr cover code: MRN field appears more than once",
        ),
        (
            &["CV|MRN00123|TYPE=progress-note"],
            "qr cover code: a field has no '=' between key and value",
        ),
        (
            &["CV|MRN=|TYPE=progress-note"],
            "qr cover code: MRN field is empty, longer than 64 characters or has characters other than letters, digits and '-'",
        ),
        (
            &["CV|MRN=001 23|TYPE=progress-note"],
            "qr cover code: MRN field is empty, longer than 64 characters or has characters other than letters, digits and '-'",
        ),
        (
            &["CV|MRN=00123|TYPE=progress note"],
            "qr cover code: TYPE field is empty, longer than 64 characters or has characters other than letters, digits, '-', '_' and '.'",
        ),
        (
            &["CV|MRN=00123|TYPE=x|CAT="],
            "qr cover code: CAT field is empty, longer than 64 characters or has characters other than letters, digits, '-', '_' and '.'",
        ),
        (
            &["CV|MRN=00123|TYPE=x|DATE=2023-02-29"],
            "qr cover code: DATE field is not a calendar date written YYYY-MM-DD",
        ),
        (
            &["CV|MRN=00123|TYPE=x|DATE=20230101"],
            "qr cover code: DATE field is not a calendar date written YYYY-MM-DD",
        ),
        (
            &[PAYLOAD, "CV|MRN=00124|TYPE=progress-note"],
            "2 cover codes on the page disagree",
        ),
        (
            &[PAYLOAD, "CV|MRN=00123|TYPE=progress-note|CAT=clinical"],
            "2 cover codes on the page disagree",
        ),
        (
            &[PAYLOAD, "CV|MRN=00123"],
            "qr cover code (2 of 2): missing TYPE field",
        ),
    ];
    for (texts, expected) in cases {
        let reason = reason(parse(texts));
        assert_eq!(&reason, expected, "for {} code(s)", texts.len());
        for value in ["00123", "00124", "progress", "2023", "clinical", "001 23"] {
            assert!(!reason.contains(value), "a reason leaks a value");
        }
    }
}

#[test]
fn debug_output_is_redacted() {
    let shown = format!(
        "{:?} {:?}",
        code(Symbology::Qr, PAYLOAD),
        cover(
            "00123",
            "progress-note",
            Some("clinical"),
            Some("2024-01-02")
        )
    );
    for value in ["00123", "progress", "clinical", "2024"] {
        assert!(!shown.contains(value), "Debug shows a value: {shown}");
    }
}

#[test]
fn cover_marker_in_ocr_text() {
    let format = CoverSheetFormat::default();
    assert!(has_cover_marker(
        "St. Elsewhere\nChartVault   Cover\n  sheet\n",
        &format
    ));
    // A fax cover sheet filed in a chart is a page like any other.
    assert!(!has_cover_marker("FAX COVER SHEET\nTo: Dr Who", &format));
    assert!(!has_cover_marker(
        "Progress note: covered sheets of gauze",
        &format
    ));
    let no_marker = CoverSheetFormat {
        marker_text: "  ".to_owned(),
        ..format
    };
    assert!(!has_cover_marker("COVER SHEET", &no_marker));
}

#[test]
fn basic_code39_cover_format() {
    let format = CoverSheetFormat {
        field_separator: ' ',
        key_value_separator: '.',
        ..CoverSheetFormat::default()
    };
    let text = format.encode("00123", "PROGRESS-NOTE", Some("CLINICAL"), None);
    assert_eq!(text, "CV MRN.00123 TYPE.PROGRESS-NOTE CAT.CLINICAL");
    let page = scanned(&render_cover_page(Symbology::Code39, &text));
    let codes = read_barcodes(&page);
    assert_eq!(codes, vec![code(Symbology::Code39, &text)]);
    assert_eq!(
        parse_cover_sheet(&codes, &format),
        cover("00123", "PROGRESS-NOTE", Some("CLINICAL"), None)
    );
}

#[test]
fn scanned_cover_page_end_to_end() {
    let format = CoverSheetFormat::default();
    let text = format.encode(
        "00123",
        "progress-note",
        Some("clinical"),
        Some("2024-03-01"),
    );
    let page = scanned(&render_cover_page(Symbology::Pdf417, &text));
    assert_eq!(
        parse_cover_sheet(&read_barcodes(&page), &format),
        cover(
            "00123",
            "progress-note",
            Some("clinical"),
            Some("2024-03-01")
        )
    );
}
