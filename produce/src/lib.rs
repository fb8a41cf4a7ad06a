//! chartvault-produce: the PDF of a legal production.
//!
//! A production hands scanned records to another party as one PDF: every page carries a
//! Bates number ("stamp"), scanned pages keep their OCR text as an invisible, searchable
//! layer, redacted areas are burned into the pixels (nothing under a redaction survives in
//! the file, neither pixels nor text), and plain text pages (a certification, a manifest)
//! can be added anywhere.
//!
//! [`ProductionWriter`] streams: each PDF object goes to the output as soon as it is
//! complete, and between pages the writer keeps only the byte offset of every object and
//! the reference of every page. Memory therefore stays flat with page count; one page's
//! working set (its image while it is decoded, burned and compressed) is the peak.
//!
//! ```
//! use chartvault_produce::{
//!     text_page_count, DocumentInfo, ImagePage, PageImage, PdfDate, ProductionWriter, Rect,
//!     Word,
//! };
//!
//! # fn main() -> Result<(), chartvault_produce::ProduceError> {
//! let info = DocumentInfo {
//!     title: "Production ACME-001".to_string(),
//!     producer: "chartvault".to_string(),
//!     creation: PdfDate { year: 2024, month: 5, day: 17, hour: 9, minute: 30, second: 0 },
//! };
//! let mut pdf = ProductionWriter::new(Vec::new(), &info)?;
//!
//! // A 2 x 1 inch scan at 100 dpi: white, with one word recognised on it.
//! let pixels = vec![255u8; 200 * 100];
//! let words = [Word { text: "Hello".to_string(), left: 10, top: 10, width: 60, height: 20 }];
//! let redactions = [Rect { left: 100, top: 10, width: 80, height: 20 }];
//! let certification = "I certify that this production has 2 pages.";
//! assert_eq!(text_page_count(certification), 1);
//! pdf.text_pages(certification, Some("ACME-000001"))?;
//! pdf.image_page(&ImagePage {
//!     image: PageImage::Gray { width: 200, height: 100, pixels: &pixels },
//!     dpi: 100.0,
//!     words: &words,
//!     stamp: Some("ACME-000002"),
//!     redactions: &redactions,
//!     redact_whole_page: false,
//! })?;
//! let (bytes, pages) = pdf.finish()?;
//! assert_eq!(pages, 2);
//! assert!(bytes.starts_with(b"%PDF-1.7"));
//! # Ok(())
//! # }
//! ```
//!
//! Errors ([`ProduceError`]) carry no pixel data and no page text.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod image;
mod text;
mod writer;

pub use writer::ProductionWriter;

/// The document information written to the PDF's `/Info` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    /// `/Title`, e.g. "Production ACME-001 to Smith & Jones LLP".
    pub title: String,
    /// `/Producer`, e.g. "chartvault 0.1.0".
    pub producer: String,
    /// `/CreationDate` (and `/ModDate`), in UTC.
    pub creation: PdfDate,
}

/// A UTC date and time, written as `D:YYYYMMDDHHmmSSZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdfDate {
    /// 0..=9999.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
}

impl PdfDate {
    /// The date as PDF writes it, e.g. `D:20240517093000Z`.
    pub fn to_pdf_string(&self) -> String {
        format!(
            "D:{:04}{:02}{:02}{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// One scanned page to write with [`ProductionWriter::image_page`].
#[derive(Debug, Clone, Copy)]
pub struct ImagePage<'a> {
    /// The page as stored.
    pub image: PageImage<'a>,
    /// Resolution of the scan in pixels per inch; the page is `pixels / dpi * 72` points in
    /// each direction. Zero, negative or non-finite values mean 300.
    pub dpi: f32,
    /// OCR words in image pixel coordinates (origin top-left), in reading order: written as
    /// the invisible text layer.
    pub words: &'a [Word],
    /// The Bates number or other stamp, drawn visibly in the bottom-right corner.
    pub stamp: Option<&'a str>,
    /// Rectangles in image pixel coordinates (origin top-left) to black out: their pixels are
    /// set to 0 in the embedded image, and every word whose box overlaps one is left out of
    /// the text layer.
    pub redactions: &'a [Rect],
    /// Withhold the whole page: it is written as a solid black page of the image's size (still
    /// stamped), with no image data and no text layer.
    pub redact_whole_page: bool,
}

/// The pixels of a scanned page.
#[derive(Debug, Clone, Copy)]
pub enum PageImage<'a> {
    /// A PNG file. An 8-bit (or 1/2/4-bit) grayscale, non-interlaced PNG (what the archive
    /// stores) is embedded without decoding when the page has no redaction inside the image;
    /// any other PNG (colour, 16-bit, interlaced) is decoded and converted to 8-bit gray.
    Png(&'a [u8]),
    /// Raw 8-bit gray pixels, row by row, top row first, `width * height` bytes (0 = black).
    Gray {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The pixels.
        pixels: &'a [u8],
    },
}

/// One OCR word: its text and its box in image pixel coordinates (origin top-left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The recognised text; characters outside WinAnsiEncoding are written as `?`.
    pub text: String,
    /// Left edge, in pixels from the left of the image.
    pub left: u32,
    /// Top edge, in pixels from the top of the image.
    pub top: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A rectangle in image pixel coordinates (origin top-left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge, in pixels from the left of the image.
    pub left: u32,
    /// Top edge, in pixels from the top of the image.
    pub top: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// What can go wrong writing a production.
///
/// Every error but [`ProduceError::Io`] is detected before any byte of the page is written,
/// so the writer stays usable (the caller may, say, write a placeholder page instead). After
/// an I/O error the output is incomplete and every later call returns
/// [`ProduceError::Poisoned`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// Writing to the output failed.
    #[error("writing the PDF failed: {0}")]
    Io(#[from] std::io::Error),
    /// A page image is not a readable PNG (the message never contains pixel data).
    #[error("page image cannot be read: {0}")]
    ImageDecode(String),
    /// A page image's size and pixel buffer do not agree, or the page is too large for PDF.
    #[error("invalid page image: {0}")]
    InvalidImage(String),
    /// The document information is invalid (e.g. month 13).
    #[error("invalid document information: {0}")]
    InvalidInfo(String),
    /// [`ProductionWriter::finish`] was called before any page was written.
    #[error("a production needs at least one page")]
    NoPages,
    /// The PDF outgrew what a classic cross-reference table can address (10 GB, or 2^31
    /// objects).
    #[error("the PDF is too large: {0}")]
    TooLarge(&'static str),
    /// An earlier I/O error left the output incomplete.
    #[error("an earlier write error left the PDF incomplete")]
    Poisoned,
}

/// A page of black and white pixels (0 or 255 only), as [`bilevel_page`] makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilevelPage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels, row by row, top row first: each 0 or 255.
    pub pixels: Vec<u8>,
}

/// The page of a PNG thresholded to black and white, if at least `min_share` (0 to 1) of
/// its pixels are near black or near white (below 48 or above 207): what a bilevel scan
/// looks like once straightened, grey only along the edges of strokes. `None` for a grey
/// page (a photograph, an x-ray preview, a grey scan), or a PNG that does not decode.
/// Written with [`PageImage::Gray`], such a page is stored at one bit per pixel.
pub fn bilevel_page(png: &[u8], min_share: f64) -> Option<BilevelPage> {
    let decoded = ::image::load_from_memory_with_format(png, ::image::ImageFormat::Png).ok()?;
    let gray = decoded.into_luma8();
    let (width, height) = gray.dimensions();
    let mut pixels = gray.into_raw();
    let extreme = pixels.iter().filter(|&&v| !(48..=207).contains(&v)).count();
    if (extreme as f64) < min_share * pixels.len().max(1) as f64 {
        return None;
    }
    for v in &mut pixels {
        *v = if *v < 128 { 0 } else { 255 };
    }
    Some(BilevelPage {
        width,
        height,
        pixels,
    })
}

/// How many pages [`ProductionWriter::text_pages`] will write for `text`: callers need the
/// count before writing (a certification states the total page count).
///
/// Text pages are US Letter in Courier 10 pt: 56 lines of 78 characters inside 1-inch
/// margins. Long lines wrap at the last space that fits (or hard, when a word alone is too
/// long), `\t` advances to the next multiple of 8 columns, and a form feed (`\x0c`) starts a
/// new page (a form feed at the very end adds no blank page). Any text, even an empty one,
/// takes at least one page.
pub fn text_page_count(text: &str) -> u32 {
    match text::paginate::<std::convert::Infallible>(text, |_| Ok(())) {
        Ok(pages) => pages,
        Err(never) => match never {},
    }
}
