//! Preflight against the real fixture scans and against hand-made hostile headers.

mod common;

use std::io::Cursor;

use chartvault_ocr::{preflight, sniff, Limits, PageInfo, ScanError, ScanFormat};

fn preflight_fixture(
    name: &str,
    limits: &Limits,
) -> Option<Result<chartvault_ocr::Preflight, ScanError>> {
    let bytes = common::fixture_bytes(name)?;
    Some(preflight(Cursor::new(bytes), limits))
}

fn sizes(pages: &[PageInfo]) -> Vec<(u32, u32)> {
    pages.iter().map(|page| (page.width, page.height)).collect()
}

#[test]
fn phototest_tif_is_one_640x480_page_at_200_dpi() {
    let Some(result) = preflight_fixture("phototest.tif", &Limits::default()) else {
        return;
    };
    let result = result.expect("phototest.tif passes preflight");
    assert_eq!(result.format, ScanFormat::Tiff);
    assert_eq!(sizes(&result.pages), vec![(640, 480)]);
    assert_eq!(result.pages[0].dpi, Some((200.0, 200.0)));
}

#[test]
fn multipage_g4_tiff_has_its_three_pages() {
    let Some(result) = preflight_fixture("multipage_g4_3p.tif", &Limits::default()) else {
        return;
    };
    let result = result.expect("multipage_g4_3p.tif passes preflight");
    assert_eq!(result.format, ScanFormat::Tiff);
    // 8071 (landscape magazine page), 8087 (letter page), linn (brochure page).
    assert_eq!(
        sizes(&result.pages),
        vec![(3312, 2550), (2560, 3300), (2550, 3300)]
    );
    for page in &result.pages {
        assert_eq!(page.dpi, Some((300.0, 300.0)));
    }
}

#[test]
fn linn_png_is_one_letter_page() {
    let Some(result) = preflight_fixture("linn.png", &Limits::default()) else {
        return;
    };
    let result = result.expect("linn.png passes preflight");
    assert_eq!(result.format, ScanFormat::Png);
    assert_eq!(sizes(&result.pages), vec![(2550, 3300)]);
}

#[test]
fn letter_scan_g4_is_one_page_matching_the_tiff_decoder() {
    let Some(bytes) = common::fixture_bytes("letter300_scan_g4.tif") else {
        return;
    };
    let result = preflight(Cursor::new(&bytes), &Limits::default()).expect("passes preflight");
    assert_eq!(result.format, ScanFormat::Tiff);
    assert_eq!(result.pages.len(), 1);
    let mut decoder =
        tiff::decoder::Decoder::new(Cursor::new(&bytes)).expect("tiff crate opens it");
    let (width, height) = decoder.dimensions().expect("dimensions");
    assert_eq!(sizes(&result.pages), vec![(width, height)]);
    assert!(width >= 2550 && height >= 3300, "{width}x{height}");
}

#[test]
fn sniffing_ignores_everything_but_the_magic_bytes() {
    let Some(png) = common::fixture_bytes("linn.png") else {
        return;
    };
    assert_eq!(sniff(&png[..8]), Some(ScanFormat::Png));
    assert_eq!(ScanFormat::Png.content_type(), "image/png");
}

#[test]
fn too_many_pages_are_rejected() {
    let limits = Limits {
        max_pages: 2,
        ..Limits::default()
    };
    let Some(result) = preflight_fixture("multipage_g4_3p.tif", &limits) else {
        return;
    };
    let error = result.unwrap_err();
    assert!(
        matches!(error, ScanError::TooManyPages { limit: 2, .. }),
        "{error}"
    );
}

#[test]
fn pages_over_the_pixel_limit_are_rejected() {
    let limits = Limits {
        max_pixels_per_page: 1_000_000,
        ..Limits::default()
    };
    let Some(result) = preflight_fixture("8087_054.3B.tif", &limits) else {
        return;
    };
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            ScanError::TooManyPixels {
                page: 1,
                width: 2560,
                height: 3300,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "TIFF page 1 is 2560x3300 pixels, over the limit of 1000000 pixels per page"
    );
}

#[test]
fn empty_input_is_rejected() {
    let error = preflight(Cursor::new(Vec::new()), &Limits::default()).unwrap_err();
    assert!(matches!(error, ScanError::Empty), "{error}");
}

#[test]
fn a_text_file_is_an_unknown_format() {
    let text = b"Patient notes, not an image.\n".to_vec();
    let error = preflight(Cursor::new(text), &Limits::default()).unwrap_err();
    assert!(matches!(error, ScanError::UnknownFormat), "{error}");
}

#[test]
fn a_truncated_tiff_is_rejected() {
    let Some(bytes) = common::fixture_bytes("phototest.tif") else {
        return;
    };
    let error = preflight(Cursor::new(bytes[..100].to_vec()), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            ScanError::Truncated {
                format: ScanFormat::Tiff,
                ..
            }
        ),
        "{error}"
    );
}

/// Signature plus an IHDR chunk claiming `width` x `height`, 8-bit gray, with a correct CRC.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut file = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    file.extend_from_slice(&13u32.to_be_bytes());
    file.extend_from_slice(&chunk);
    file.extend_from_slice(&crc32(&chunk).to_be_bytes());
    file
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_png_claiming_60000x60000_is_rejected_from_its_header() {
    let file = png_header_only(60_000, 60_000);
    assert_eq!(file.len(), 33);
    // Only 33 bytes exist: rejection cannot have come from decoding or allocating pixels.
    let error = preflight(Cursor::new(file.clone()), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            ScanError::DimensionTooLarge {
                width: 60_000,
                height: 60_000,
                ..
            }
        ),
        "{error}"
    );
    let generous_sides = Limits {
        max_dimension: 100_000,
        ..Limits::default()
    };
    let error = preflight(Cursor::new(file), &generous_sides).unwrap_err();
    assert!(matches!(error, ScanError::TooManyPixels { .. }), "{error}");
}

/// A little-endian TIFF with one IFD at offset 8 for a 10x10 1-bit uncompressed page;
/// `next` is written as the next-IFD offset, `overrides` replace (tag, value) entries.
fn tiny_tiff(next: u32, overrides: &[(u16, u32)]) -> Vec<u8> {
    let mut entries: Vec<(u16, u16, u32, u32)> = vec![
        (256, 3, 1, 10), // ImageWidth
        (257, 3, 1, 10), // ImageLength
        (258, 3, 1, 1),  // BitsPerSample
        (259, 3, 1, 1),  // Compression
        (262, 3, 1, 0),  // Photometric: WhiteIsZero
        (273, 4, 1, 0),  // StripOffsets (patched below)
        (278, 3, 1, 10), // RowsPerStrip
        (279, 4, 1, 20), // StripByteCounts
    ];
    for &(tag, value) in overrides {
        match entries.iter_mut().find(|entry| entry.0 == tag) {
            Some(entry) => entry.3 = value,
            None => entries.push((tag, 3, 1, value)),
        }
    }
    entries.sort_by_key(|entry| entry.0);
    let ifd_len = 2 + entries.len() * 12 + 4;
    let data_offset = (8 + ifd_len) as u32;
    let mut file = b"II*\0".to_vec();
    file.extend_from_slice(&8u32.to_le_bytes());
    file.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in entries {
        let value = if tag == 273 { data_offset } else { value };
        file.extend_from_slice(&tag.to_le_bytes());
        file.extend_from_slice(&kind.to_le_bytes());
        file.extend_from_slice(&count.to_le_bytes());
        if kind == 3 {
            file.extend_from_slice(&(value as u16).to_le_bytes());
            file.extend_from_slice(&[0, 0]);
        } else {
            file.extend_from_slice(&value.to_le_bytes());
        }
    }
    file.extend_from_slice(&next.to_le_bytes());
    file.extend_from_slice(&[0u8; 20]);
    file
}

#[test]
fn a_hand_made_tiny_tiff_passes() {
    let result = preflight(Cursor::new(tiny_tiff(0, &[])), &Limits::default()).expect("valid");
    assert_eq!(sizes(&result.pages), vec![(10, 10)]);
    assert_eq!(result.pages[0].dpi, None);
}

#[test]
fn a_tiff_whose_ifd_points_to_itself_terminates_with_an_error() {
    let error = preflight(Cursor::new(tiny_tiff(8, &[])), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            ScanError::Malformed {
                format: ScanFormat::Tiff,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("loop"), "{error}");
}

#[test]
fn a_tiff_without_pages_is_rejected() {
    let mut file = b"II*\0".to_vec();
    file.extend_from_slice(&0u32.to_le_bytes());
    let error = preflight(Cursor::new(file), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            ScanError::NoPages {
                format: ScanFormat::Tiff
            }
        ),
        "{error}"
    );
}

#[test]
fn unsupported_tiff_compression_is_named() {
    let file = tiny_tiff(0, &[(259, 7), (258, 8)]);
    let error = preflight(Cursor::new(file), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            ScanError::UnsupportedCompression {
                page: 1,
                code: 7,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "TIFF page 1 uses unsupported compression JPEG (code 7)"
    );
}

#[test]
fn unsupported_tiff_photometric_is_named() {
    let file = tiny_tiff(0, &[(262, 5)]);
    let error = preflight(Cursor::new(file), &Limits::default()).unwrap_err();
    assert!(
        matches!(error, ScanError::UnsupportedPhotometric { page: 1, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("CMYK"), "{error}");
}

#[test]
fn a_tiff_page_with_a_zero_side_is_rejected() {
    let file = tiny_tiff(0, &[(256, 0)]);
    let error = preflight(Cursor::new(file), &Limits::default()).unwrap_err();
    assert!(matches!(error, ScanError::EmptyPage { .. }), "{error}");
}
