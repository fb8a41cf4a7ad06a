//! Decoding real scans and synthetic pages of every supported encoding to grayscale.

mod common;

use std::io::Cursor;

use chartvault_ocr::{decode_page, DecodedPage, Limits, ScanError, ScanFormat};
use image::{GrayImage, Luma};

fn decode_fixture(name: &str, format: ScanFormat, page: usize) -> Option<DecodedPage> {
    let bytes = common::fixture_bytes(name)?;
    Some(decode_page(Cursor::new(bytes), format, page, &Limits::default()).expect("page decodes"))
}

fn mean_luma(image: &GrayImage) -> f64 {
    image.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / image.pixels().len() as f64
}

#[test]
fn phototest_decodes_as_black_text_on_white() {
    let Some(page) = decode_fixture("phototest.tif", ScanFormat::Tiff, 0) else {
        return;
    };
    assert_eq!(page.image.dimensions(), (640, 480));
    assert_eq!(page.dpi, Some((200.0, 200.0)));
    let mean = mean_luma(&page.image);
    assert!(mean > 200.0, "mean luma {mean}: photometric inverted?");
    assert!(page.image.pixels().any(|p| p.0[0] == 0), "there is ink");
}

#[test]
fn g4_letter_page_decodes_as_black_text_on_white() {
    let Some(page) = decode_fixture("8087_054.3B.tif", ScanFormat::Tiff, 0) else {
        return;
    };
    assert_eq!(page.image.dimensions(), (2560, 3300));
    let mean = mean_luma(&page.image);
    assert!(mean > 200.0, "mean luma {mean}: photometric inverted?");
}

#[test]
fn page_two_of_the_multipage_g4_tiff_is_the_8087_page() {
    let Some(single) = decode_fixture("8087_054.3B.tif", ScanFormat::Tiff, 0) else {
        return;
    };
    let Some(second) = decode_fixture("multipage_g4_3p.tif", ScanFormat::Tiff, 1) else {
        return;
    };
    assert_eq!(second.image.dimensions(), single.image.dimensions());
    let mean = mean_luma(&second.image);
    assert!(mean > 200.0, "mean luma {mean}");
    let differing = single
        .image
        .pixels()
        .zip(second.image.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        differing * 1000 < single.image.pixels().len(),
        "{differing} pixels differ"
    );
}

#[test]
fn a_page_past_the_end_is_out_of_range() {
    let Some(bytes) = common::fixture_bytes("phototest.tif") else {
        return;
    };
    let error =
        decode_page(Cursor::new(bytes), ScanFormat::Tiff, 1, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            ScanError::PageOutOfRange {
                requested: 2,
                pages: 1
            }
        ),
        "{error}"
    );
}

#[test]
fn png_fixture_decodes_light() {
    let Some(page) = decode_fixture("linn.png", ScanFormat::Png, 0) else {
        return;
    };
    assert_eq!(page.image.dimensions(), (2550, 3300));
    assert!(mean_luma(&page.image) > 200.0);
}

/// A 64x32 gradient with a black bar, the reference for the synthetic encodings.
fn reference_page() -> GrayImage {
    GrayImage::from_fn(64, 32, |x, y| {
        if (10..20).contains(&y) && (8..56).contains(&x) {
            Luma([0])
        } else {
            Luma([(128 + x * 2) as u8])
        }
    })
}

fn encode_tiff<C: tiff::encoder::colortype::ColorType<Inner = u8>>(
    compression: tiff::encoder::Compression,
    pixels: &[u8],
) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut out)
        .expect("encoder")
        .with_compression(compression);
    encoder.write_image::<C>(64, 32, pixels).expect("encode");
    out.into_inner()
}

#[test]
fn gray_tiffs_decode_identically_with_every_compression() {
    use tiff::encoder::{colortype::Gray8, Compression};
    let reference = reference_page();
    for (name, compression) in [
        ("uncompressed", Compression::Uncompressed),
        ("LZW", Compression::Lzw),
        (
            "Deflate",
            Compression::Deflate(tiff::encoder::DeflateLevel::Balanced),
        ),
        ("PackBits", Compression::Packbits),
    ] {
        let file = encode_tiff::<Gray8>(compression, reference.as_raw());
        let page = decode_page(Cursor::new(file), ScanFormat::Tiff, 0, &Limits::default())
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(page.image, reference, "{name}");
    }
}

#[test]
fn rgb_tiff_decodes_to_luma() {
    use tiff::encoder::{colortype::RGB8, Compression};
    let reference = reference_page();
    let rgb: Vec<u8> = reference.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
    let file = encode_tiff::<RGB8>(Compression::Lzw, &rgb);
    let page =
        decode_page(Cursor::new(file), ScanFormat::Tiff, 0, &Limits::default()).expect("decodes");
    assert_eq!(page.image, reference);
}

/// An uncompressed 16x2 1-bit TIFF: row 0 bits 1111 0000 0000 0000, row 1 all zero.
fn one_bit_tiff(photometric: u16) -> Vec<u8> {
    let entries: [(u16, u16, u32); 8] = [
        (256, 3, 16),
        (257, 3, 2),
        (258, 3, 1),
        (259, 3, 1),
        (262, 3, u32::from(photometric)),
        (273, 4, 8 + 2 + 8 * 12 + 4),
        (278, 3, 2),
        (279, 4, 4),
    ];
    let mut file = b"II*\0".to_vec();
    file.extend_from_slice(&8u32.to_le_bytes());
    file.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        file.extend_from_slice(&tag.to_le_bytes());
        file.extend_from_slice(&kind.to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        file.extend_from_slice(&value.to_le_bytes());
    }
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&[0xF0, 0x00, 0x00, 0x00]);
    file
}

#[test]
fn one_bit_photometric_is_honoured() {
    let decode = |photometric| {
        decode_page(
            Cursor::new(one_bit_tiff(photometric)),
            ScanFormat::Tiff,
            0,
            &Limits::default(),
        )
        .expect("decodes")
        .image
    };
    // WhiteIsZero: set bits are black ink on a white page.
    let white_is_zero = decode(0);
    assert_eq!(white_is_zero.get_pixel(0, 0).0[0], 0);
    assert_eq!(white_is_zero.get_pixel(4, 0).0[0], 255);
    assert_eq!(white_is_zero.get_pixel(0, 1).0[0], 255);
    // BlackIsZero: set bits are white.
    let black_is_zero = decode(1);
    assert_eq!(black_is_zero.get_pixel(0, 0).0[0], 255);
    assert_eq!(black_is_zero.get_pixel(4, 0).0[0], 0);
}

#[test]
fn jpeg_decodes_with_its_jfif_density() {
    let reference = reference_page();
    let mut file = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 95)
        .encode_image(&reference)
        .expect("encode");
    let page =
        decode_page(Cursor::new(file), ScanFormat::Jpeg, 0, &Limits::default()).expect("decodes");
    assert_eq!(page.image.dimensions(), (64, 32));
    assert!(page.image.get_pixel(30, 15).0[0] < 40, "the bar stays dark");
    assert!(
        page.image.get_pixel(30, 2).0[0] > 150,
        "the background stays light"
    );
}

#[test]
fn decoding_rejects_an_oversized_header_before_allocating() {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&60_000u32.to_be_bytes());
    chunk.extend_from_slice(&60_000u32.to_be_bytes());
    chunk.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut crc = !0u32;
    for &byte in &chunk {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut file = b"\x89PNG\r\n\x1a\n".to_vec();
    file.extend_from_slice(&13u32.to_be_bytes());
    file.extend_from_slice(&chunk);
    file.extend_from_slice(&(!crc).to_be_bytes());
    let error = decode_page(Cursor::new(file), ScanFormat::Png, 0, &Limits::default()).unwrap_err();
    assert!(
        matches!(error, ScanError::DimensionTooLarge { .. }),
        "{error}"
    );
}

#[test]
fn a_format_that_does_not_match_the_content_is_rejected() {
    let Some(bytes) = common::fixture_bytes("linn.png") else {
        return;
    };
    let error =
        decode_page(Cursor::new(bytes), ScanFormat::Tiff, 0, &Limits::default()).unwrap_err();
    assert!(matches!(error, ScanError::Malformed { .. }), "{error}");
}

/// Reading every page through one `PageReader` gives the same pixels as decoding each page
/// on its own, and asks for pages in any order.
#[test]
fn a_page_reader_decodes_every_page_of_a_multipage_tiff_in_one_pass() {
    let Some(bytes) = common::fixture_bytes("multipage_g4_3p.tif") else {
        return;
    };
    let limits = Limits::default();
    let mut reader =
        chartvault_ocr::PageReader::open(Cursor::new(bytes.clone()), ScanFormat::Tiff, &limits)
            .expect("opens");
    assert_eq!(reader.page_count(), 3);
    for index in [0, 1, 2, 1] {
        let streamed = reader.decode(index).expect("decodes");
        let alone = decode_page(Cursor::new(bytes.clone()), ScanFormat::Tiff, index, &limits)
            .expect("decodes alone");
        assert_eq!(streamed.image, alone.image, "page {}", index + 1);
        assert_eq!(streamed.dpi, alone.dpi);
    }
    assert!(matches!(
        reader.decode(3),
        Err(ScanError::PageOutOfRange {
            requested: 4,
            pages: 3
        })
    ));
}
