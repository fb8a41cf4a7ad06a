//! Errors of this crate: [`ScanError`] for everything that reads an uploaded scan
//! (sniffing, preflight, decoding) and [`OcrError`] for the Tesseract pool.
//!
//! Promise: no message ever contains a file name, a path of an upload or page text. Scans are
//! PHI; a message describes the *structure* of the file ("TIFF page 2 is 60000x60000 pixels,
//! ...") so it can go to the uploader and into logs. Page numbers in messages are 1-based,
//! as a person counts them.

use crate::ScanFormat;

/// What is wrong with an uploaded scan, or with reading it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The input has no bytes at all.
    #[error("the file is empty")]
    Empty,

    /// The first bytes match none of the supported formats.
    #[error("the file is not a JPEG, PNG, TIFF or PDF scan (unrecognised magic bytes)")]
    UnknownFormat,

    /// The file ends inside a structure that preflight has to read.
    #[error("the {format} file is truncated: it ends inside {structure}")]
    Truncated {
        format: ScanFormat,
        structure: &'static str,
    },

    /// A structure is present but inconsistent (bad signature, bad checksum, IFD loop, ...).
    #[error("the {format} file is malformed: {detail}")]
    Malformed { format: ScanFormat, detail: String },

    /// The file is well formed but holds no page at all.
    #[error("the {format} file contains no pages")]
    NoPages { format: ScanFormat },

    /// More pages than [`crate::Limits::max_pages`].
    #[error("the {format} file has more than the limit of {limit} pages")]
    TooManyPages { format: ScanFormat, limit: u32 },

    /// A page has a zero width or height.
    #[error("{format} page {page} has an empty size ({width}x{height} pixels)")]
    EmptyPage {
        format: ScanFormat,
        page: usize,
        width: u32,
        height: u32,
    },

    /// A side is longer than [`crate::Limits::max_dimension`].
    #[error(
        "{format} page {page} is {width}x{height} pixels, over the limit of {limit} pixels per side"
    )]
    DimensionTooLarge {
        format: ScanFormat,
        page: usize,
        width: u32,
        height: u32,
        limit: u32,
    },

    /// Width × height is over [`crate::Limits::max_pixels_per_page`].
    #[error(
        "{format} page {page} is {width}x{height} pixels, over the limit of {limit} pixels per page"
    )]
    TooManyPixels {
        format: ScanFormat,
        page: usize,
        width: u32,
        height: u32,
        limit: u64,
    },

    /// A TIFF page uses a compression scheme this crate does not decode.
    #[error("TIFF page {page} uses unsupported compression {name} (code {code})")]
    UnsupportedCompression {
        page: usize,
        code: u16,
        name: &'static str,
    },

    /// A TIFF page uses a colour model this crate does not decode (or none is given).
    #[error("TIFF page {page} uses unsupported photometric interpretation {name}")]
    UnsupportedPhotometric { page: usize, name: String },

    /// A page's sample layout (bits per sample, samples per pixel, planar layout, sample
    /// format, JPEG coding process) is not one this crate decodes.
    #[error("{format} page {page} has an unsupported pixel layout: {detail}")]
    UnsupportedPixelLayout {
        format: ScanFormat,
        page: usize,
        detail: String,
    },

    /// `decode_page` was asked for a page the file does not have.
    #[error("page {requested} was requested but the file has {pages} pages")]
    PageOutOfRange { requested: usize, pages: usize },

    /// The pixel decoder refused to allocate what the page would need.
    #[error("{format} page {page} exceeds the decoder memory limit: {detail}")]
    DecoderLimit {
        format: ScanFormat,
        page: usize,
        detail: String,
    },

    /// The pixel data could not be decoded (corrupt stream, unsupported feature).
    #[error("{format} page {page} could not be decoded: {detail}")]
    Decode {
        format: ScanFormat,
        page: usize,
        detail: String,
    },

    /// The PDF file is encrypted. Every encrypted PDF is refused, even one with an empty user
    /// password (permission-only protection): its streams cannot be checked for
    /// decompression bombs before they are parsed.
    #[error("the PDF file is encrypted: {detail}")]
    PdfEncrypted { detail: &'static str },

    /// A PDF file or one of its pages cannot be read: malformed structure, no pages, too many
    /// pages, an image or a stream over the limits, an image that does not decode, a drawing
    /// too complex to render. `page` is 1-based; `None` for the file as a whole.
    #[error("{}", pdf_message(*page, detail))]
    Pdf { page: Option<usize>, detail: String },

    /// A DICOM file is malformed (bad structure, absurd lengths, missing SOP Instance UID) or
    /// over [`crate::Limits`]. The detail describes the structure only (tags, lengths, sizes,
    /// transfer syntax UIDs), never an attribute value. Reads "the DICOM file {detail}".
    #[error("the DICOM file {detail}")]
    Dicom { detail: String },

    /// A DICOM file was read (its metadata is usable) but no preview can be rendered from its
    /// pixel data: no pixel data, a transfer syntax or pixel layout this crate does not decode,
    /// or a corrupt compressed stream. The detail names the transfer syntax or layout, never
    /// an attribute value.
    #[error("the DICOM file has no preview: {detail}")]
    DicomNoPreview { detail: String },

    /// The decoder process (see [`crate::Sandbox`]) stopped before it answered: the page
    /// needed more memory than the process may have, the decoder crashed, or it stopped
    /// making progress. `page` is 1-based; `None` for the file as a whole. The detail says
    /// which, in words for the person who uploaded the file, never anything of its content.
    #[error("{}", decoder_stopped_message(*page, detail))]
    DecoderStopped { page: Option<usize>, detail: String },

    /// Reading the underlying stream failed (for example the decrypting reader).
    #[error("reading the scan failed")]
    Io(#[from] std::io::Error),
}

fn decoder_stopped_message(page: Option<usize>, detail: &str) -> String {
    match page {
        Some(page) => format!("page {page} could not be decoded: {detail}"),
        None => format!("the file could not be read: {detail}"),
    }
}

fn pdf_message(page: Option<usize>, detail: &str) -> String {
    match page {
        Some(page) => format!("PDF page {page} cannot be read: {detail}"),
        None => format!("the PDF file cannot be read: {detail}"),
    }
}

/// Why the OCR pool could not start or could not recognise a page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcrError {
    /// The configuration is unusable (zero threads, odd language name, bad PSM).
    #[error("invalid OCR configuration: {0}")]
    InvalidConfig(String),

    /// Tesseract has no data for the language.
    #[error(
        "Tesseract could not load language data for '{language}': install the Debian package {package} (or point tessdata_dir at a folder holding {language}.traineddata)"
    )]
    LanguageDataMissing { language: String, package: String },

    /// Tesseract failed to initialise for another reason.
    #[error("Tesseract failed to initialise: {0}")]
    EngineInit(String),

    /// An engine thread could not be spawned.
    #[error("could not start an OCR engine thread")]
    ThreadSpawn(#[source] std::io::Error),

    /// The page cannot be handed to Tesseract (size, stride).
    #[error("the page cannot be passed to Tesseract: {0}")]
    InvalidPage(String),

    /// Tesseract failed while recognising a page.
    #[error("Tesseract failed: {0}")]
    Recognition(String),

    /// Every engine thread has stopped; nothing can serve the page.
    #[error("the OCR pool has no running engine threads")]
    PoolClosed,

    /// Cleaning up and recognising the page took longer than its limit (counted from the
    /// moment an engine started on it).
    #[error("the page took longer than {limit_ms} ms to clean up and recognise")]
    PageTimeout { limit_ms: u64 },

    /// The page image could not be encoded as PNG.
    #[error("the page image could not be encoded: {0}")]
    PageImage(String),
}
