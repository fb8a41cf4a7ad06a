//! JPEG header reading: markers from SOI up to the frame header (SOFn), picking up the JFIF
//! density (APP0) or, failing that, the resolution in a simple EXIF segment (APP1). Segment
//! bodies are skipped by seeking; only an EXIF body (at most 64 KiB) is read whole.

use std::io::{Read, Seek, SeekFrom};

use super::{check_page_size, plausible_dpi, read_exact_or_truncated, Limits, PageInfo};
use crate::{ScanError, ScanFormat};

const FORMAT: ScanFormat = ScanFormat::Jpeg;
const STRUCTURE: &str = "the markers before the frame header";

/// Reads the header of the single page of a JPEG, rewinding first.
pub(crate) fn read_header<R: Read + Seek>(
    reader: &mut R,
    limits: &Limits,
) -> Result<PageInfo, ScanError> {
    reader.seek(SeekFrom::Start(0))?;
    let mut soi = [0u8; 2];
    read_exact_or_truncated(reader, &mut soi, FORMAT, "the start-of-image marker")?;
    if soi != [0xFF, 0xD8] {
        return Err(malformed(
            "the file does not start with a start-of-image marker",
        ));
    }
    let mut jfif_dpi = None;
    let mut exif_dpi = None;
    loop {
        let marker = next_marker(reader)?;
        match marker {
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => {
                return Err(malformed(
                    "a second start-of-image marker precedes the frame",
                ))
            }
            0xD9 | 0xDA => return Err(malformed("no frame header (SOF) before the image data")),
            _ => {}
        }
        let mut length_bytes = [0u8; 2];
        read_exact_or_truncated(reader, &mut length_bytes, FORMAT, STRUCTURE)?;
        let length = u16::from_be_bytes(length_bytes);
        if length < 2 {
            return Err(malformed("a segment length is below 2"));
        }
        let body_len = usize::from(length - 2);
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let mut frame = [0u8; 6];
                if body_len < frame.len() {
                    return Err(malformed("the frame header is too short"));
                }
                read_exact_or_truncated(reader, &mut frame, FORMAT, "the frame header")?;
                let precision = frame[0];
                let height = u32::from(u16::from_be_bytes([frame[1], frame[2]]));
                let width = u32::from(u16::from_be_bytes([frame[3], frame[4]]));
                let components = frame[5];
                if !matches!(marker, 0xC0..=0xC2) {
                    return Err(layout(format!(
                        "coding process SOF{} (lossless, hierarchical or arithmetic coding) is not supported",
                        marker - 0xC0
                    )));
                }
                if height == 0 {
                    return Err(layout(
                        "the height is defined later in the stream (DNL marker)".into(),
                    ));
                }
                check_page_size(FORMAT, 1, width, height, limits)?;
                if precision != 8 {
                    return Err(layout(format!("{precision}-bit samples")));
                }
                if !matches!(components, 1 | 3 | 4) {
                    return Err(layout(format!("{components} colour components")));
                }
                return Ok(PageInfo {
                    width,
                    height,
                    dpi: jfif_dpi.or(exif_dpi),
                });
            }
            0xE0 => {
                let mut jfif = [0u8; 12];
                let read = body_len.min(jfif.len());
                read_exact_or_truncated(reader, &mut jfif[..read], FORMAT, STRUCTURE)?;
                if read == jfif.len() && &jfif[0..5] == b"JFIF\0" {
                    let x = f64::from(u16::from_be_bytes([jfif[8], jfif[9]]));
                    let y = f64::from(u16::from_be_bytes([jfif[10], jfif[11]]));
                    jfif_dpi = match jfif[7] {
                        1 => plausible_dpi(x, y),
                        2 => plausible_dpi(x * 2.54, y * 2.54),
                        _ => None,
                    };
                }
                skip(reader, body_len - read)?;
            }
            0xE1 => {
                let mut body = vec![0u8; body_len];
                read_exact_or_truncated(reader, &mut body, FORMAT, STRUCTURE)?;
                if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                    exif_dpi = super::tiff::exif_density(tiff);
                }
            }
            _ => skip(reader, body_len)?,
        }
    }
}

/// Reads up to the next marker code, skipping fill bytes (0xFF).
fn next_marker<R: Read>(reader: &mut R) -> Result<u8, ScanError> {
    let mut byte = [0u8; 1];
    read_exact_or_truncated(reader, &mut byte, FORMAT, STRUCTURE)?;
    if byte[0] != 0xFF {
        return Err(malformed("expected a marker between segments"));
    }
    loop {
        read_exact_or_truncated(reader, &mut byte, FORMAT, STRUCTURE)?;
        match byte[0] {
            0xFF => continue,
            0x00 => return Err(malformed("expected a marker between segments")),
            code => return Ok(code),
        }
    }
}

fn skip<R: Seek>(reader: &mut R, len: usize) -> Result<(), ScanError> {
    let len = i64::try_from(len).expect("segment bodies are shorter than 64 KiB");
    reader.seek(SeekFrom::Current(len))?;
    Ok(())
}

fn malformed(detail: &str) -> ScanError {
    ScanError::Malformed {
        format: FORMAT,
        detail: detail.into(),
    }
}

fn layout(detail: String) -> ScanError {
    ScanError::UnsupportedPixelLayout {
        format: FORMAT,
        page: 1,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn jfif(units: u8, x: u16, y: u16) -> Vec<u8> {
        let mut body = b"JFIF\0\x01\x02".to_vec();
        body.push(units);
        body.extend_from_slice(&x.to_be_bytes());
        body.extend_from_slice(&y.to_be_bytes());
        body.extend_from_slice(&[0, 0]);
        segment(0xE0, &body)
    }

    fn frame(marker: u8, width: u16, height: u16) -> Vec<u8> {
        let mut body = vec![8];
        body.extend_from_slice(&height.to_be_bytes());
        body.extend_from_slice(&width.to_be_bytes());
        body.extend_from_slice(&[1, 1, 0x11, 0]);
        segment(marker, &body)
    }

    fn jpeg(parts: &[Vec<u8>]) -> Cursor<Vec<u8>> {
        let mut out = vec![0xFF, 0xD8];
        for part in parts {
            out.extend_from_slice(part);
        }
        Cursor::new(out)
    }

    #[test]
    fn frame_header_gives_size_and_jfif_gives_density() {
        let mut file = jpeg(&[
            jfif(1, 300, 300),
            segment(0xDB, &[0; 65]),
            frame(0xC0, 2550, 3300),
        ]);
        let info = read_header(&mut file, &Limits::default()).expect("valid header");
        assert_eq!((info.width, info.height), (2550, 3300));
        assert_eq!(info.dpi, Some((300.0, 300.0)));
    }

    #[test]
    fn density_in_centimetres_is_converted() {
        let mut file = jpeg(&[jfif(2, 118, 118), frame(0xC2, 10, 10)]);
        let info = read_header(&mut file, &Limits::default()).expect("valid header");
        let (x, _) = info.dpi.expect("density present");
        assert!((x - 299.72).abs() < 0.01);
    }

    #[test]
    fn lossless_jpeg_is_unsupported() {
        let mut file = jpeg(&[frame(0xC3, 10, 10)]);
        let error = read_header(&mut file, &Limits::default()).unwrap_err();
        assert!(
            matches!(error, ScanError::UnsupportedPixelLayout { .. }),
            "{error}"
        );
    }

    #[test]
    fn oversized_frame_is_rejected() {
        let mut file = jpeg(&[frame(0xC0, 60000, 60000)]);
        let error = read_header(&mut file, &Limits::default()).unwrap_err();
        assert!(
            matches!(error, ScanError::DimensionTooLarge { .. }),
            "{error}"
        );
    }

    #[test]
    fn stream_without_frame_is_truncated() {
        let mut file = jpeg(&[jfif(1, 300, 300)]);
        let error = read_header(&mut file, &Limits::default()).unwrap_err();
        assert!(matches!(error, ScanError::Truncated { .. }), "{error}");
    }
}
