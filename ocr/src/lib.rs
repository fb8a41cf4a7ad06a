//! chartvault-ocr: from uploaded scan bytes to recognised text.
//!
//! This crate owns three things and knows nothing of HTTP, the database or encryption:
//!
//! - [`sniff`] and [`preflight`]: what an upload is (from magic bytes only) and how many
//!   pages of what size it holds, from headers alone, enforcing [`Limits`] before any pixel is
//!   decoded (`preflight` module);
//! - [`decode_page`]: one page to 8-bit grayscale in Rust (`image` for PNG/JPEG, `tiff` for
//!   TIFF including CCITT Group 4), so Tesseract never parses file bytes (`decode` module);
//! - [`OcrPool`]: a fixed set of OS threads, each owning one single-threaded libtesseract
//!   engine created once, fed pages through a channel (`pool` module), returning text, word
//!   boxes and confidences ([`PageOcr`]).
//!
//! [`Sandbox`] runs the preflight and the decoders in a child process under a memory ceiling
//! ([`serve_child`] is that process's `main`), so a decoder that allocates without bound or
//! crashes on a hostile file fails the file's page, not the server (`sandbox` module).
//!
//! [`character_error_rate`] is the measure used to check OCR quality against ground truth.
//!
//! Errors ([`ScanError`], [`OcrError`]) never contain file names or page text.

mod barcode;
mod cer;
pub mod cleanup;
mod decode;
mod dicom;
mod engine;
mod error;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod osd;
mod page_image;
mod pdf;
mod pool;
mod preflight;
mod sandbox;
mod split;
#[cfg(test)]
mod testing;
mod words;

pub use barcode::{
    default_module_px, has_cover_marker, parse_cover_sheet, read_barcodes, render_code,
    render_cover_page, try_render_code, Barcode, CoverSheet, CoverSheetFormat, Symbology,
};
pub use cer::character_error_rate;
pub use cleanup::CleanupConfig;
pub use decode::{decode_page, DecodedPage, PageReader};
pub use dicom::{
    dicom_info, dicom_json_text, dicom_preview, dicom_read, is_dicom, DicomInfo, DICOM_MIME,
    DICOM_PREVIEW_MAX_SIDE,
};
pub use error::{OcrError, ScanError};
pub use format::{sniff, ScanFormat, SNIFF_LEN};
pub use page_image::encode_page_png;
pub use pdf::{PdfFile, PdfPage, BORN_DIGITAL_DPI};
pub use pool::{OcrConfig, OcrPool, ProcessedPage, DEFAULT_DPI};
pub use preflight::{preflight, Limits, PageInfo, Preflight};
pub use sandbox::{serve_child, Sandbox};
pub use split::TiffPagesWriter;
pub use words::{OcrWord, PageOcr};
