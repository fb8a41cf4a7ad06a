//! Scan formats and sniffing from magic bytes.
//!
//! Promise: the format is decided by the first bytes of the content only, never by a file
//! name or a client-supplied content type.

use std::fmt;

/// The image formats an upload may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanFormat {
    Jpeg,
    Png,
    Tiff,
    Pdf,
    /// A DICOM Part 10 file (an x-ray or other imaging attachment).
    Dicom,
}

impl ScanFormat {
    /// The IANA media type of the format.
    pub fn content_type(&self) -> &'static str {
        match self {
            ScanFormat::Jpeg => "image/jpeg",
            ScanFormat::Png => "image/png",
            ScanFormat::Tiff => "image/tiff",
            ScanFormat::Pdf => "application/pdf",
            ScanFormat::Dicom => crate::DICOM_MIME,
        }
    }
}

impl fmt::Display for ScanFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScanFormat::Jpeg => "JPEG",
            ScanFormat::Png => "PNG",
            ScanFormat::Tiff => "TIFF",
            ScanFormat::Pdf => "PDF",
            ScanFormat::Dicom => "DICOM",
        })
    }
}

/// How many leading bytes [`sniff`] needs to decide (DICOM's `DICM` follows a 128-byte
/// preamble).
pub const SNIFF_LEN: usize = 132;

pub(crate) const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// The format of a file from its first bytes (at least [`SNIFF_LEN`] for certainty; fewer
/// bytes only match if they already hold the whole signature).
///
/// TIFF is recognised in both byte orders, classic (42) and BigTIFF (43); PDF by its
/// `%PDF-` header at the very start; DICOM Part 10 by `DICM` after its 128-byte preamble.
pub fn sniff(first_bytes: &[u8]) -> Option<ScanFormat> {
    if first_bytes.starts_with(&PNG_SIGNATURE) {
        return Some(ScanFormat::Png);
    }
    // SOI followed by the first marker's 0xFF.
    if first_bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(ScanFormat::Jpeg);
    }
    if crate::is_dicom(first_bytes) {
        return Some(ScanFormat::Dicom);
    }
    if first_bytes.starts_with(b"%PDF-") {
        return Some(ScanFormat::Pdf);
    }
    match first_bytes.get(..4) {
        Some([b'I', b'I', 42 | 43, 0]) | Some([b'M', b'M', 0, 42 | 43]) => Some(ScanFormat::Tiff),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_the_format() {
        assert_eq!(sniff(&PNG_SIGNATURE), Some(ScanFormat::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ScanFormat::Jpeg));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(ScanFormat::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Some(ScanFormat::Tiff));
        assert_eq!(sniff(b"II+\0\x08\0\0\0"), Some(ScanFormat::Tiff));
        assert_eq!(sniff(b"%PDF-1.7"), Some(ScanFormat::Pdf));
        assert_eq!(sniff(b"%PDF"), None);
        assert_eq!(sniff(b"Patient:"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(&PNG_SIGNATURE[..4]), None);
    }

    #[test]
    fn content_types_are_iana_names() {
        assert_eq!(ScanFormat::Jpeg.content_type(), "image/jpeg");
        assert_eq!(ScanFormat::Png.content_type(), "image/png");
        assert_eq!(ScanFormat::Tiff.content_type(), "image/tiff");
    }
}
