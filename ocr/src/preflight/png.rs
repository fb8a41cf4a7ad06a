//! PNG header reading: signature, IHDR (checksum verified), then the chunks before the first
//! IDAT for a pHYs density. Chunk bodies other than IHDR and pHYs are skipped by seeking.

use std::io::{Read, Seek, SeekFrom};

use super::{check_page_size, plausible_dpi, read_exact_or_truncated, Limits, PageInfo};
use crate::format::PNG_SIGNATURE;
use crate::{ScanError, ScanFormat};

const FORMAT: ScanFormat = ScanFormat::Png;
/// The PNG spec's bound on a chunk length.
const MAX_CHUNK_LEN: u32 = 0x7FFF_FFFF;
const METRES_PER_INCH: f64 = 0.0254;

/// Reads the header of the single page of a PNG, rewinding first.
pub(crate) fn read_header<R: Read + Seek>(
    reader: &mut R,
    limits: &Limits,
) -> Result<PageInfo, ScanError> {
    reader.seek(SeekFrom::Start(0))?;
    let mut signature = [0u8; 8];
    read_exact_or_truncated(reader, &mut signature, FORMAT, "the signature")?;
    if signature != PNG_SIGNATURE {
        return Err(malformed("the signature is wrong"));
    }

    // Length (4) + type (4) + 13 bytes of IHDR + CRC (4).
    let mut ihdr = [0u8; 25];
    read_exact_or_truncated(reader, &mut ihdr, FORMAT, "the IHDR header chunk")?;
    if &ihdr[4..8] != b"IHDR" {
        return Err(malformed("the first chunk is not IHDR"));
    }
    if be_u32(&ihdr[0..4]) != 13 {
        return Err(malformed("the IHDR chunk does not have length 13"));
    }
    if crc32(&ihdr[4..21]) != be_u32(&ihdr[21..25]) {
        return Err(malformed("the IHDR chunk checksum does not match"));
    }
    let width = be_u32(&ihdr[8..12]);
    let height = be_u32(&ihdr[12..16]);
    let (bit_depth, color_type) = (ihdr[16], ihdr[17]);
    let valid_depth = match color_type {
        0 => matches!(bit_depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(bit_depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(bit_depth, 8 | 16),
        _ => false,
    };
    if !valid_depth {
        return Err(malformed(format!(
            "IHDR states colour type {color_type} with bit depth {bit_depth}, which PNG does not define"
        )));
    }
    // Limits before anything else: nothing further is read for an oversized page.
    check_page_size(FORMAT, 1, width, height, limits)?;

    let dpi = read_density(reader)?;
    Ok(PageInfo { width, height, dpi })
}

/// Walks the chunks after IHDR up to the first IDAT, returning the pHYs density if any.
fn read_density<R: Read + Seek>(reader: &mut R) -> Result<Option<(f32, f32)>, ScanError> {
    let mut dpi = None;
    loop {
        let mut chunk_header = [0u8; 8];
        read_exact_or_truncated(
            reader,
            &mut chunk_header,
            FORMAT,
            "the chunks before the image data",
        )?;
        let length = be_u32(&chunk_header[0..4]);
        if length > MAX_CHUNK_LEN {
            return Err(malformed("a chunk length exceeds 2^31-1"));
        }
        match &chunk_header[4..8] {
            b"IDAT" => return Ok(dpi),
            b"IEND" => return Err(malformed("the file has no image data (IDAT) chunk")),
            b"pHYs" if length == 9 => {
                let mut body = [0u8; 9 + 4];
                read_exact_or_truncated(reader, &mut body, FORMAT, "the pHYs chunk")?;
                if body[8] == 1 {
                    let x = f64::from(be_u32(&body[0..4])) * METRES_PER_INCH;
                    let y = f64::from(be_u32(&body[4..8])) * METRES_PER_INCH;
                    dpi = plausible_dpi(x, y);
                }
            }
            _ => {
                // Body and CRC.
                reader.seek(SeekFrom::Current(i64::from(length) + 4))?;
            }
        }
    }
}

fn malformed(detail: impl Into<String>) -> ScanError {
    ScanError::Malformed {
        format: FORMAT,
        detail: detail.into(),
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(
        bytes[..4]
            .try_into()
            .expect("callers pass slices of at least 4 bytes"),
    )
}

/// CRC-32 (ISO-HDLC, as PNG uses it) over `bytes`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(body);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut out = PNG_SIGNATURE.to_vec();
        out.extend(chunk(b"IHDR", &ihdr));
        out
    }

    #[test]
    fn crc_matches_the_png_specification_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn phys_in_metres_becomes_dots_per_inch() {
        let mut file = png_header(100, 50);
        let mut phys = 11811u32.to_be_bytes().to_vec();
        phys.extend_from_slice(&11811u32.to_be_bytes());
        phys.push(1);
        file.extend(chunk(b"pHYs", &phys));
        file.extend(chunk(b"IDAT", &[]));
        let info = read_header(&mut Cursor::new(file), &Limits::default()).expect("valid header");
        let (x, y) = info.dpi.expect("pHYs gives a density");
        assert!((x - 300.0).abs() < 0.1 && (y - 300.0).abs() < 0.1);
        assert_eq!((info.width, info.height), (100, 50));
    }

    #[test]
    fn corrupted_ihdr_checksum_is_rejected() {
        let mut file = png_header(100, 50);
        file[20] ^= 1;
        let error = read_header(&mut Cursor::new(file), &Limits::default()).unwrap_err();
        assert!(matches!(error, ScanError::Malformed { .. }), "{error}");
    }

    #[test]
    fn header_without_image_data_is_truncated() {
        let file = png_header(100, 50);
        let error = read_header(&mut Cursor::new(file), &Limits::default()).unwrap_err();
        assert!(matches!(error, ScanError::Truncated { .. }), "{error}");
    }
}
