//! PDF uploads: each page to an 8-bit grayscale image at its native resolution, and the
//! page's text layer when it has one.
//!
//! # Why `hayro`
//!
//! Pages are rendered with [`hayro`] 0.9 (with `hayro-interpret` / `hayro-syntax` 0.9,
//! `hayro-jbig2` 0.4, `hayro-jpeg2000` 0.5, `hayro-ccitt` 0.5 beneath it): a PDF renderer in
//! pure, memory-safe Rust (`#![forbid(unsafe_code)]` in the parser, interpreter and renderer;
//! though hayro-interpret turns on `hayro-syntax`'s `unsafe` feature: Flate goes through
//! flate2's zlib-rs first, the JPEG, JBIG2 and JPX decoders use SIMD). Rendering the page,
//! rather than extracting its image, handles everything a scanner or OCRmyPDF emits
//! uniformly: JPEG, CCITT G3/G4, Flate, JBIG2 (with globals) and JPEG 2000 images, skew placed
//! through the CTM, `/Rotate`, soft masks, several strips per page, and born-digital pages
//! with vector text.
//! The same interpreter feeds a [`Device`](hayro::hayro_interpret::Device) of our own (the
//! `survey` module) that sees every image placement and every glyph with its Unicode text and
//! transform: that gives the native resolution and the text layer without a second PDF crate.
//!
//! Rejected:
//! - poppler (`pdftoppm`, poppler-rs) and MuPDF: capable, in Debian, but C/C++ parsers of
//!   untrusted input running in-process (poppler's and MuPDF's CVE history is long); and
//!   MuPDF is AGPL.
//! - pdfium (`pdfium-render`): not in Debian, a prebuilt binary blob to ship and trust.
//! - `pdf` (pdf-rs) and `lopdf`: parsers only. Each would need our own image placement,
//!   colour handling and decoders (no JBIG2 or JPX), and they panic on some malformed input.
//! - `pdf-extract`: text only, built on `lopdf`, no positions of use and no rendering.
//!
//! Caveats: hayro is young (0.x, "no effort on performance yet"), needs Rust 1.92, and has
//! no decompression limits of its own, which is why this module checks streams first (the
//! `guard` module) and wraps every call into it in `catch_unwind`.
//!
//! # What a page becomes
//!
//! - Resolution: if one image covers at least half of the page (a scan, with or without an
//!   OCRmyPDF text layer), the page is rendered at that image's pixel density, so its pixels
//!   map one to one (crisp for Tesseract, no resampling of 1-bit scans). Otherwise it is
//!   rendered at [`BORN_DIGITAL_DPI`]. The size is then scaled down (never failed) to fit
//!   [`Limits::max_dimension`] and [`Limits::max_pixels_per_page`].
//! - Image: drawn upright as a viewer shows it (`/Rotate` and the crop box applied), on
//!   white, converted to luma (0 = black, 255 = white). Anti-aliasing stays on: at the native
//!   density a scan's pixels fall on the pixel grid anyway, and anti-aliased vector text
//!   suits Tesseract.
//! - Text layer: every shown glyph counts, including invisible text (render mode 3), so an
//!   OCRmyPDF/Tesseract text layer is used as a text layer like born-digital text. It is kept
//!   only if at least 90% of its glyphs map to Unicode; otherwise the page needs OCR. A word
//!   the rendered image does not show (no ink-and-paper contrast where its glyphs are: white
//!   on white, under a filled rectangle, invisible over an empty area) is kept but marked
//!   [`OcrWord::hidden`](crate::OcrWord::hidden) (the `text` module says how).
//!
//! # Hostile input
//!
//! Every call into hayro runs under `catch_unwind`; a panic becomes [`ScanError::Pdf`].
//! Before that, the `guard` module bounds what decoding can cost (see there). Encrypted files
//! are refused outright, even those that open without a password: their streams cannot be
//! checked before parsing. A corrupt image makes the page an error, not a blank page.

mod guard;
mod survey;
mod text;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_interpret::{interpret_page, Context, InterpreterSettings, InterpreterWarning};
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::{DecryptionError, LoadPdfError, Pdf};
use hayro::kurbo::{Affine, Rect};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{render_into, RenderCache, RenderSettings};
use image::GrayImage;

use crate::{Limits, PageInfo, PageOcr, ScanError};
use survey::Survey;

/// Resolution of a page that is not essentially one scanned image.
pub const BORN_DIGITAL_DPI: f32 = 300.0;

/// A page counts as a scan when one image covers at least this share of its area.
const SCAN_COVERAGE: f64 = 0.5;
/// Bounds on a native density taken from an image (a tiny image stretched over the page
/// would otherwise give a few dozen pixels; a huge one is then scaled to the limits anyway).
const MIN_NATIVE_DPI: f64 = 50.0;
const MAX_NATIVE_DPI: f64 = 2400.0;
/// The largest page side PDF allows (ISO 32000: 14 400 default user-space units, 200 inches);
/// larger pages are rejected rather than rendered at a meaningless resolution.
const MAX_PAGE_SIDE_PT: f64 = 14_400.0;

/// A PDF opened from the whole file in memory (PDF needs random access; the caller bounds
/// the size of what it reads).
pub struct PdfFile {
    pdf: Pdf,
    pages: usize,
}

/// One rendered page.
#[derive(Debug, Clone)]
pub struct PdfPage {
    /// 8-bit grayscale, 0 = black, 255 = white paper; upright as a viewer shows the page.
    pub image: GrayImage,
    /// The resolution the page was rendered at (pixels per inch of the page, both axes).
    pub dpi: (f32, f32),
    /// The page's own text (born-digital text or an OCR text layer such as OCRmyPDF's), with
    /// word boxes in `image` pixels and confidence 100, words that `image` does not show
    /// marked hidden; `None` when the page has no usable text and needs OCR.
    pub text_layer: Option<PageOcr>,
}

/// Size and scale a page renders at.
#[derive(Debug, Clone, Copy)]
struct Plan {
    width: u32,
    height: u32,
    /// Pixels per PDF point (1/72 inch).
    scale: f64,
}

impl Plan {
    fn dpi(&self) -> f32 {
        (self.scale * 72.0) as f32
    }
}

impl PdfFile {
    /// Parses the file structure and the page tree, with every stream checked against the
    /// decompression bounds: in the raw bytes before parsing, and every stream the parser
    /// knows right after (see the `guard` module).
    ///
    /// Errors: [`ScanError::Empty`]; [`ScanError::PdfEncrypted`] for any encrypted file
    /// (even one that opens without a password); [`ScanError::Pdf`] for a truncated or
    /// malformed file, a file without pages, more pages than [`Limits::max_pages`], or a
    /// stream that inflates past its cap (see the `guard` module).
    pub fn open(bytes: Vec<u8>, limits: &Limits) -> Result<PdfFile, ScanError> {
        if bytes.is_empty() {
            return Err(ScanError::Empty);
        }
        guarded(None, || guard::check_file(&bytes, limits))??;
        let file_len = bytes.len();
        let pdf = guarded(None, || Pdf::new(bytes))?.map_err(|error| match error {
            LoadPdfError::Decryption(DecryptionError::PasswordProtected) => {
                ScanError::PdfEncrypted {
                    detail: "it needs a password to open",
                }
            }
            LoadPdfError::Decryption(DecryptionError::UnsupportedAlgorithm) => {
                ScanError::PdfEncrypted {
                    detail: "it uses an encryption method that is not supported",
                }
            }
            LoadPdfError::Decryption(
                DecryptionError::InvalidEncryption | DecryptionError::MissingIDEntry,
            ) => ScanError::PdfEncrypted {
                detail: "its encryption dictionary is invalid",
            },
            LoadPdfError::Invalid => {
                malformed(None, "no readable cross-reference table or page tree")
            }
        })?;
        guarded(None, || guard::check_objects(&pdf, limits, file_len))??;
        let pages = guarded(None, || pdf.pages().len())?;
        if pages == 0 {
            return Err(malformed(None, "it contains no pages"));
        }
        if pages > limits.max_pages as usize {
            return Err(malformed(
                None,
                &format!("it has more than the limit of {} pages", limits.max_pages),
            ));
        }
        Ok(PdfFile { pdf, pages })
    }

    /// Number of pages (at least 1).
    pub fn page_count(&self) -> usize {
        self.pages
    }

    /// The pixel size page `index` (0-based) renders at and its resolution, checked against
    /// `limits` (a page whose native size is over them is scaled down to fit).
    ///
    /// This interprets the page's drawing operators without decoding any image.
    pub fn page_info(&self, index: usize, limits: &Limits) -> Result<PageInfo, ScanError> {
        let page = self.page_ref(index)?;
        let number = Some(index + 1);
        guarded(number, || guard::check_page(page, limits, index + 1))??;
        let survey = guarded(number, || survey_page(page, false))?;
        let plan = plan(page, &survey, limits, index + 1)?;
        Ok(PageInfo {
            width: plan.width,
            height: plan.height,
            dpi: Some((plan.dpi(), plan.dpi())),
        })
    }

    /// Renders page `index` (0-based) and reads its text layer.
    pub fn page(&self, index: usize, limits: &Limits) -> Result<PdfPage, ScanError> {
        let page = self.page_ref(index)?;
        let number = Some(index + 1);
        guarded(number, || guard::check_page(page, limits, index + 1))??;
        let survey = guarded(number, || survey_page(page, true))?;
        let plan = plan(page, &survey, limits, index + 1)?;
        let image = guarded(number, || render(page, &plan, index + 1))??;
        let text_layer = text::text_layer(&survey.glyphs, plan.scale, &image);
        Ok(PdfPage {
            image,
            dpi: (plan.dpi(), plan.dpi()),
            text_layer,
        })
    }

    fn page_ref(&self, index: usize) -> Result<&Page<'_>, ScanError> {
        self.pdf
            .pages()
            .get(index)
            .ok_or(ScanError::PageOutOfRange {
                requested: index + 1,
                pages: self.pages,
            })
    }
}

fn malformed(page: Option<usize>, detail: &str) -> ScanError {
    ScanError::Pdf {
        page,
        detail: detail.to_owned(),
    }
}

/// Runs `f`, turning a panic inside the PDF crates into an error.
fn guarded<T>(page: Option<usize>, f: impl FnOnce() -> T) -> Result<T, ScanError> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| malformed(page, "the PDF reader failed on its structure"))
}

/// Interprets the page at one device unit per point (upright, y down) into a [`Survey`];
/// `ink`: with the glyphs' ink boxes (for the text layer).
fn survey_page(page: &Page<'_>, ink: bool) -> Survey {
    let cache = hayro::hayro_interpret::InterpreterCache::new();
    let (width, height) = page.render_dimensions();
    let mut context = Context::new(
        page.initial_transform(true).to_kurbo(),
        Rect::new(0.0, 0.0, f64::from(width), f64::from(height)),
        &cache,
        page.xref(),
        InterpreterSettings::default(),
    );
    let mut survey = Survey::default();
    survey.want_ink = ink;
    interpret_page(page, &mut context, &mut survey);
    survey
}

/// Chooses the render size of a page from what the survey found.
fn plan(
    page: &Page<'_>,
    survey: &Survey,
    limits: &Limits,
    number: usize,
) -> Result<Plan, ScanError> {
    let (width_pt, height_pt) = page.render_dimensions();
    let (width_pt, height_pt) = (f64::from(width_pt), f64::from(height_pt));
    if !(width_pt.is_finite() && height_pt.is_finite())
        || width_pt > MAX_PAGE_SIDE_PT
        || height_pt > MAX_PAGE_SIDE_PT
    {
        return Err(malformed(
            Some(number),
            &format!(
                "its page box is {width_pt:.0}x{height_pt:.0} points, over the PDF maximum of {MAX_PAGE_SIDE_PT:.0}"
            ),
        ));
    }
    let page_rect = Rect::new(0.0, 0.0, width_pt, height_pt);
    let page_area = page_rect.area().max(1e-9);
    let scan = survey
        .images
        .iter()
        .map(|image| (image.bbox.intersect(page_rect).area() / page_area, image))
        .filter(|(coverage, _)| *coverage >= SCAN_COVERAGE)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let mut scale = match scan {
        // Image pixels per point along its densest axis.
        Some((_, image)) => {
            let density = image.density.0.max(image.density.1);
            (density * 72.0).clamp(MIN_NATIVE_DPI, MAX_NATIVE_DPI) / 72.0
        }
        None => f64::from(BORN_DIGITAL_DPI) / 72.0,
    };
    // Snap a density within 0.05 dpi of a whole number (2550 px / 8.5 in = 300 exactly, but
    // float noise in the CTM can say 299.9999).
    let dpi = scale * 72.0;
    if (dpi - dpi.round()).abs() < 0.05 {
        scale = dpi.round() / 72.0;
    }

    let max_side = f64::from(limits.max_dimension.min(u32::from(u16::MAX)));
    let max_pixels = limits.max_pixels_per_page as f64;
    let size = |scale: f64| {
        (
            (width_pt * scale).round().max(1.0),
            (height_pt * scale).round().max(1.0),
        )
    };
    let (w, h) = size(scale);
    let fit = (max_side / w)
        .min(max_side / h)
        .min((max_pixels / (w * h)).sqrt());
    if fit < 1.0 {
        scale *= fit;
        // Rounding may still overshoot by a pixel: step down until it fits.
        for _ in 0..8 {
            let (w, h) = size(scale);
            if w <= max_side && h <= max_side && w * h <= max_pixels {
                break;
            }
            scale *= 0.999;
        }
    }
    let (w, h) = size(scale);
    if w > max_side || h > max_side || w * h > max_pixels {
        return Err(malformed(
            Some(number),
            "it cannot be rendered within the page size limits",
        ));
    }
    Ok(Plan {
        width: w as u32,
        height: h as u32,
        scale,
    })
}

/// Renders the page at the plan's size and converts it to grayscale.
fn render(page: &Page<'_>, plan: &Plan, number: usize) -> Result<GrayImage, ScanError> {
    let failed_images = Arc::new(AtomicUsize::new(0));
    let counter = failed_images.clone();
    let settings = InterpreterSettings {
        warning_sink: Arc::new(move |warning| {
            if matches!(warning, InterpreterWarning::ImageDecodeFailure) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }),
        ..InterpreterSettings::default()
    };
    // The plan keeps both sides within u16 (vello_cpu's limit).
    let (width, height) = (plan.width as u16, plan.height as u16);
    let mut context = RenderContext::new(width, height);
    let transform = Affine::scale(plan.scale) * page.initial_transform(true).to_kurbo();
    let cache = RenderCache::new();
    render_into(
        page,
        &cache,
        &settings,
        &RenderSettings::default(),
        &mut context,
        transform,
    );
    context.flush();
    let mut pixmap = Pixmap::new(width, height);
    context.render_with(
        &mut pixmap,
        &mut Resources::default(),
        RasterizerSettings {
            target_init: TargetInit::Clear(WHITE),
            ..Default::default()
        },
    );
    if failed_images.load(Ordering::Relaxed) > 0 {
        return Err(malformed(
            Some(number),
            "an image on it could not be decoded",
        ));
    }
    let gray: Vec<u8> = pixmap
        .data()
        .iter()
        .map(|p| {
            // Composited over opaque white, so alpha is 255: premultiplied equals straight.
            let luma = 299 * u32::from(p.r) + 587 * u32::from(p.g) + 114 * u32::from(p.b);
            ((luma + 500) / 1000) as u8
        })
        .collect();
    GrayImage::from_raw(plan.width, plan.height, gray)
        .ok_or_else(|| malformed(Some(number), "the rendered page has an unexpected size"))
}

#[cfg(test)]
mod tests;
