//! Barcode cover (separator) sheets: reading the codes on a page and parsing a cover sheet.
//!
//! A batch upload may interleave cover sheets: each one starts a new document and carries its
//! metadata (MRN, document type, optionally category and service date) in a barcode such as
//! `CV|MRN=00123|TYPE=progress-note`. This module only *reads*: [`read_barcodes`] finds the
//! codes of the five supported symbologies on a grayscale page and [`parse_cover_sheet`] turns
//! them into a [`CoverSheet`] verdict. Splitting the batch, looking the MRN up and routing to
//! QA is the caller's job.
//!
//! # Reading strategy ([`read_barcodes`])
//!
//! Every page of a batch goes through the reader and nearly all pages carry no code, so the
//! empty case must be cheap; but a cover sheet's code may sit anywhere on the page. Decoding is
//! done by `rxing` 0.9 (a port of ZXing) with `TRY_HARDER`, in two passes that always both run
//! (so two codes of different kinds on one page are both seen, and can be checked to agree):
//!
//! 1. **2D pass** (QR, Data Matrix, PDF417) on the page box-filtered to half size (300 → 150
//!    dpi), which quarters the pixel work and averages away salt-and-pepper noise. Modules of
//!    ≥ 0.4 mm (≥ 5 px at 300 dpi) are read; smaller 2D modules are not supported.
//! 2. **1D pass** (Code 39, Code 128) on the page with every band of 8 rows averaged into one
//!    (2550×3300 → 2550×413): full horizontal resolution for thin bars (Code 39 at 0.25 mm =
//!    3 px), an eighth of the rows to scan, and an isolated noise pixel diluted to 1/8 grey so
//!    that it no longer splits a bar (plain 0.5% salt-and-pepper defeats rxing's 1D readers on
//!    the raw page). The cost: 1D codes must have vertical bars (upright or upside down, a few
//!    degrees of skew); a sideways 1D code is not read.
//!
//! Without `TRY_HARDER` rxing's 1D readers scan only 15 rows around the middle of the image and
//! the Data Matrix detector starts from the centre, so a code in the top third of a page was
//! missed; `TRY_HARDER` on the small images above costs less than the plain mode on the full
//! page. Timings: `barcode::tests::timings` (run with `--nocapture`); on this 2-core machine a
//! 300-dpi letter text page takes ≈ 60-140 ms in all (≈ 2/3 of it the 2D pass), a cover page
//! 80-300 ms (the multiple-code reader re-scans the regions around a code it found).
//!
//! # Code 39
//!
//! Basic Code 39 has only `0-9 A-Z - . space $ / + %`: no lowercase, no `|` or `=`. Code 39
//! results are therefore read as *Code 39 Full ASCII* whenever every shift pair in them is
//! valid (`+A`..`+Z` = `a`..`z`, `%Q` = `|`, `%H` = `=`, …), so a Code 39 cover carries the very same payload as the other
//! symbologies; rxing's writer switches to Full ASCII by itself. A Code 39 text with an invalid
//! shift pair is returned as read. Limits: at most 80 symbol characters once shifted (each
//! lowercase letter, `|` and `=` takes two), and Code 39 is wide: `CV|MRN=00123|TYPE=progress-note`
//! is 47 symbol characters, 6.6 in at 0.25 mm modules. So a Code 39 cover carries MRN and type
//! (and at most a short category); with category and date use a 2D code or Code 128. A site
//! that must use basic Code 39 can configure a basic-set [`CoverSheetFormat`] (e.g. separator
//! ` `, key/value `.`: `CV MRN.00123 TYPE.PROGRESS-NOTE`, values then in uppercase).
//!
//! # A cover sheet whose code cannot be read
//!
//! From pixels alone an undecodable code is indistinguishable from no code. This module leaves
//! that to the caller, with one helper: a cover sheet also carries a printed marker (by
//! default `CHARTVAULT COVER SHEET`), and [`has_cover_marker`] looks for it in the page's
//! OCR text. A page that is [`CoverSheet::NotCover`] but whose OCR text has the marker should
//! go to QA as an unreadable cover sheet.
//!
//! # PHI
//!
//! Code text is patient data. [`Barcode`] and [`CoverSheet`] print their values redacted in
//! `Debug`, and every [`CoverSheet::Unreadable`] reason describes structure only (which field
//! is missing or malformed, how many codes disagree), never a value.

use std::collections::HashSet;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::GrayImage;
use rxing::common::HybridBinarizer;
use rxing::multi::{GenericMultipleBarcodeReader, MultipleBarcodeReader};
use rxing::{
    BarcodeFormat, BinaryBitmap, DecodeHints, EncodeHints, Luma8Source, MultiFormatWriter,
    MultiUseMultiFormatReader, Writer,
};
use serde::{Deserialize, Serialize};

/// The barcode symbologies a cover sheet may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Symbology {
    /// Code 39 (read as Full ASCII when valid), serialised `"code39"`.
    Code39,
    /// Code 128, serialised `"code128"`.
    Code128,
    /// QR Code, serialised `"qr"`.
    Qr,
    /// Data Matrix (ECC 200), serialised `"datamatrix"`.
    DataMatrix,
    /// PDF417, serialised `"pdf417"`.
    Pdf417,
}

impl Symbology {
    /// All supported symbologies.
    pub const ALL: [Symbology; 5] = [
        Symbology::Code39,
        Symbology::Code128,
        Symbology::Qr,
        Symbology::DataMatrix,
        Symbology::Pdf417,
    ];

    /// The serialised (lowercase) name, e.g. `"datamatrix"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Symbology::Code39 => "code39",
            Symbology::Code128 => "code128",
            Symbology::Qr => "qr",
            Symbology::DataMatrix => "datamatrix",
            Symbology::Pdf417 => "pdf417",
        }
    }

    fn to_rxing(self) -> BarcodeFormat {
        match self {
            Symbology::Code39 => BarcodeFormat::CODE_39,
            Symbology::Code128 => BarcodeFormat::CODE_128,
            Symbology::Qr => BarcodeFormat::QR_CODE,
            Symbology::DataMatrix => BarcodeFormat::DATA_MATRIX,
            Symbology::Pdf417 => BarcodeFormat::PDF_417,
        }
    }

    fn from_rxing(format: &BarcodeFormat) -> Option<Self> {
        Symbology::ALL.into_iter().find(|s| &s.to_rxing() == format)
    }
}

impl fmt::Display for Symbology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One code read from a page.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Barcode {
    pub symbology: Symbology,
    /// The decoded text (Code 39: Full ASCII decoded when valid).
    pub text: String,
}

impl fmt::Debug for Barcode {
    /// Redacted: the text is patient data; only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barcode")
            .field("symbology", &self.symbology)
            .field(
                "text",
                &format_args!("<{} chars>", self.text.chars().count()),
            )
            .finish()
    }
}

/// Reads every Code 39, Code 128, QR, Data Matrix and PDF417 code on a page (8-bit gray,
/// 0 = black): 2D codes first, then 1D codes, in the decoder's order, without exact
/// duplicates.
///
/// Two passes always run (see the module docs): a 2D pass at half resolution and a 1D pass on
/// the page averaged over bands of rows. 1D codes must be printed with vertical bars (upright
/// or upside down, skew of a few degrees is fine); 2D codes may be at any angle. Never panics
/// on a decoder fault: a page the decoder cannot handle yields no codes.
pub fn read_barcodes(page: &GrayImage) -> Vec<Barcode> {
    let (width, height) = page.dimensions();
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let mut codes = if width >= MIN_SIDE_TO_HALVE && height >= MIN_SIDE_TO_HALVE {
        decode_pass(&downscale_half(page), &TWO_D, true)
    } else {
        decode_pass(page, &TWO_D, true)
    };
    for code in decode_pass(&squash_rows(page, ROWS_PER_BAND), &ONE_D, true) {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

const TWO_D: [Symbology; 3] = [Symbology::Qr, Symbology::DataMatrix, Symbology::Pdf417];
const ONE_D: [Symbology; 2] = [Symbology::Code39, Symbology::Code128];

/// Pages smaller than this (in both sides) get their 2D pass at full resolution.
const MIN_SIDE_TO_HALVE: u32 = 1200;

/// Rows averaged into one for the 1D pass: 8 rows (0.68 mm at 300 dpi) smear a bar's edge by
/// 0.28 px at a 2° skew, and turn an isolated noise pixel into a 1/8 grey that no longer
/// breaks a bar or a space.
const ROWS_PER_BAND: u32 = 8;

/// Halves a page with a 2×2 box filter (odd last row/column dropped).
fn downscale_half(page: &GrayImage) -> GrayImage {
    let (w, h) = (page.width() / 2, page.height() / 2);
    let src = page.as_raw();
    let stride = page.width() as usize;
    let mut out = vec![0u8; w as usize * h as usize];
    for (y, dst) in out.chunks_exact_mut(w as usize).enumerate() {
        let r0 = &src[2 * y * stride..][..stride];
        let r1 = &src[(2 * y + 1) * stride..][..stride];
        for (x, d) in dst.iter_mut().enumerate() {
            let sum =
                r0[2 * x] as u16 + r0[2 * x + 1] as u16 + r1[2 * x] as u16 + r1[2 * x + 1] as u16;
            *d = ((sum + 2) / 4) as u8;
        }
    }
    GrayImage::from_raw(w, h, out).expect("buffer sized to the image")
}

/// Averages each band of `k` rows into one row (a last partial band is averaged over the rows
/// it has). Keeps the full horizontal resolution that thin bars need.
fn squash_rows(page: &GrayImage, k: u32) -> GrayImage {
    let (w, h) = (page.width() as usize, page.height() as usize);
    let k = k as usize;
    let bands = h.div_ceil(k);
    let mut out = vec![0u8; w * bands];
    let mut sums = vec![0u32; w];
    for (band, dst) in out.chunks_exact_mut(w).enumerate() {
        sums.iter_mut().for_each(|s| *s = 0);
        let rows = page.as_raw()[band * k * w..].chunks_exact(w).take(k);
        let mut n = 0;
        for row in rows {
            n += 1;
            for (s, &p) in sums.iter_mut().zip(row) {
                *s += p as u32;
            }
        }
        for (d, &s) in dst.iter_mut().zip(&sums) {
            *d = ((s + n / 2) / n) as u8;
        }
    }
    GrayImage::from_raw(w as u32, bands as u32, out).expect("buffer sized to the image")
}

/// One decoding pass over the whole image: the given formats, every code found (the generic
/// multiple reader re-decodes the regions around each code found).
fn decode_pass(image: &GrayImage, formats: &[Symbology], try_harder: bool) -> Vec<Barcode> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Vec::new();
    }
    let hints = DecodeHints {
        PossibleFormats: Some(formats.iter().map(|s| s.to_rxing()).collect()),
        TryHarder: Some(try_harder),
        ..DecodeHints::default()
    };
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let source = Luma8Source::new_with_slice(image.as_raw(), width, height).ok()?;
        let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
        let mut reader = GenericMultipleBarcodeReader::new(MultiUseMultiFormatReader::default());
        reader.decode_multiple_with_hints(&mut bitmap, &hints).ok()
    }));
    let results = match decoded {
        Ok(Some(results)) => results,
        Ok(None) => return Vec::new(),
        Err(_) => {
            tracing::warn!(
                width,
                height,
                "barcode decoder panicked; page treated as having no code"
            );
            return Vec::new();
        }
    };
    let mut seen = HashSet::new();
    results
        .iter()
        .filter_map(|r| {
            let symbology = Symbology::from_rxing(r.getBarcodeFormat())?;
            let raw = r.getText();
            let text = match symbology {
                Symbology::Code39 => code39_full_ascii(raw).unwrap_or_else(|| raw.to_owned()),
                _ => raw.to_owned(),
            };
            Some(Barcode { symbology, text })
        })
        .filter(|b| seen.insert(b.clone()))
        .collect()
}

/// Decodes Code 39 Full ASCII shift pairs (`$`, `%`, `/`, `+` followed by a letter), or `None`
/// when the text has an invalid pair (then it is plain Code 39).
fn code39_full_ascii(raw: &str) -> Option<String> {
    if !raw.contains(['$', '%', '/', '+']) {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if !matches!(c, '$' | '%' | '/' | '+') {
            out.push(c);
            continue;
        }
        let next = chars.next()?;
        let n = next as u32;
        let decoded = match (c, next) {
            ('+', 'A'..='Z') => n + 32,
            ('$', 'A'..='Z') => n - 64,
            ('%', 'A'..='E') => n - 38,
            ('%', 'F'..='J') => n - 11,
            ('%', 'K'..='O') => n + 16,
            ('%', 'P'..='T') => n + 43,
            ('%', 'U') => 0,
            ('%', 'V') => '@' as u32,
            ('%', 'W') => '`' as u32,
            ('%', 'X'..='Z') => 127,
            ('/', 'A'..='O') => n - 32,
            ('/', 'Z') => ':' as u32,
            _ => return None,
        };
        out.push(char::from_u32(decoded)?);
    }
    Some(out)
}

/// How a cover sheet's code text is laid out: `PREFIX|KEY=value|KEY=value…`.
///
/// The prefix must be the whole first field. Field order is free, unknown keys are ignored
/// (room for later fields), empty fields (a trailing separator) are ignored, a repeated key is
/// an error. Keys match exactly (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoverSheetFormat {
    /// First field of every cover code, e.g. `CV`.
    pub prefix: String,
    /// Between fields, e.g. `|`.
    pub field_separator: char,
    /// Between a key and its value, e.g. `=`.
    pub key_value_separator: char,
    /// Key of the medical record number (required).
    pub mrn_key: String,
    /// Key of the document type (required).
    pub type_key: String,
    /// Key of the category (optional field).
    pub category_key: String,
    /// Key of the service date, `YYYY-MM-DD` (optional field).
    pub date_key: String,
    /// Key of the MRN's issuer (assigning authority; optional field: the default issuer).
    pub issuer_key: String,
    /// Printed (human-readable) marker that a cover sheet carries, for [`has_cover_marker`].
    pub marker_text: String,
}

impl Default for CoverSheetFormat {
    fn default() -> Self {
        CoverSheetFormat {
            prefix: "CV".to_owned(),
            field_separator: '|',
            key_value_separator: '=',
            mrn_key: "MRN".to_owned(),
            type_key: "TYPE".to_owned(),
            category_key: "CAT".to_owned(),
            date_key: "DATE".to_owned(),
            issuer_key: "ISS".to_owned(),
            // Specific enough that a fax cover sheet in a chart is not taken for one.
            marker_text: "CHARTVAULT COVER SHEET".to_owned(),
        }
    }
}

impl CoverSheetFormat {
    /// Renders the code text for a cover sheet (for printing cover sheets, and tests).
    pub fn encode(
        &self,
        mrn: &str,
        document_type: &str,
        category: Option<&str>,
        service_date: Option<&str>,
    ) -> String {
        self.encode_issued(mrn, None, document_type, category, service_date)
    }

    /// [`CoverSheetFormat::encode`] with the MRN's issuer (none: the default issuer).
    pub fn encode_issued(
        &self,
        mrn: &str,
        issuer: Option<&str>,
        document_type: &str,
        category: Option<&str>,
        service_date: Option<&str>,
    ) -> String {
        let (s, kv) = (self.field_separator, self.key_value_separator);
        let mut text = format!(
            "{}{s}{}{kv}{mrn}{s}{}{kv}{document_type}",
            self.prefix, self.mrn_key, self.type_key
        );
        if let Some(issuer) = issuer {
            text.push_str(&format!("{s}{}{kv}{issuer}", self.issuer_key));
        }
        if let Some(category) = category {
            text.push_str(&format!("{s}{}{kv}{category}", self.category_key));
        }
        if let Some(date) = service_date {
            text.push_str(&format!("{s}{}{kv}{date}", self.date_key));
        }
        text
    }

    /// Whether a code's text is meant as a cover code: its first field is the prefix.
    fn is_cover_code(&self, text: &str) -> bool {
        let text = text.trim();
        match text.strip_prefix(self.prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with(self.field_separator),
            None => false,
        }
    }
}

/// The verdict on one page's codes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CoverSheet {
    /// No code on the page starts with the cover prefix: an ordinary page.
    NotCover,
    /// A cover sheet: a new document starts here with this metadata.
    Cover {
        mrn: String,
        /// The MRN's issuer, when the code names one (`ISS=`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
        document_type: String,
        category: Option<String>,
        /// `YYYY-MM-DD`, a valid calendar date.
        service_date: Option<String>,
    },
    /// A code with the cover prefix whose fields are missing or malformed, or cover codes
    /// that disagree: the page is a cover sheet, but its metadata cannot be trusted (QA).
    /// The reason describes structure only, never a value.
    Unreadable { reason: String },
}

impl fmt::Debug for CoverSheet {
    /// Redacted: MRN, type, category and date are patient data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoverSheet::NotCover => f.write_str("NotCover"),
            CoverSheet::Cover {
                category,
                service_date,
                ..
            } => f
                .debug_struct("Cover")
                .field("mrn", &format_args!("<redacted>"))
                .field("document_type", &format_args!("<redacted>"))
                .field("category", &category.as_ref().map(|_| "<redacted>"))
                .field("service_date", &service_date.as_ref().map(|_| "<redacted>"))
                .finish(),
            CoverSheet::Unreadable { reason } => f
                .debug_struct("Unreadable")
                .field("reason", reason)
                .finish(),
        }
    }
}

/// Parses a page's codes (from [`read_barcodes`]) as a cover sheet.
///
/// - no code whose first field is the prefix: [`CoverSheet::NotCover`] (other codes on the
///   page, e.g. a lab label, are ignored);
/// - every cover code parses and all agree: [`CoverSheet::Cover`] (the same payload in two
///   symbologies is fine);
/// - otherwise [`CoverSheet::Unreadable`].
///
/// Field rules: MRN 1-64 of `A-Z a-z 0-9 -`; type and category 1-64 of `A-Z a-z 0-9 - _ .`;
/// date `YYYY-MM-DD` and a real calendar date. Leading and trailing whitespace of the whole
/// code text is ignored; none is allowed inside values.
pub fn parse_cover_sheet(codes: &[Barcode], format: &CoverSheetFormat) -> CoverSheet {
    let cover_codes: Vec<&Barcode> = codes
        .iter()
        .filter(|c| format.is_cover_code(&c.text))
        .collect();
    if cover_codes.is_empty() {
        return CoverSheet::NotCover;
    }
    let total = cover_codes.len();
    let mut parsed: Vec<CoverSheet> = Vec::with_capacity(total);
    for (i, code) in cover_codes.iter().enumerate() {
        match parse_one(code.text.trim(), format) {
            Ok(cover) => parsed.push(cover),
            Err(reason) => {
                let reason = if total == 1 {
                    format!("{} cover code: {reason}", code.symbology)
                } else {
                    format!(
                        "{} cover code ({} of {total}): {reason}",
                        code.symbology,
                        i + 1
                    )
                };
                return CoverSheet::Unreadable { reason };
            }
        }
    }
    let first = parsed.swap_remove(0);
    if parsed.iter().any(|p| p != &first) {
        return CoverSheet::Unreadable {
            reason: format!("{total} cover codes on the page disagree"),
        };
    }
    first
}

fn parse_one(text: &str, format: &CoverSheetFormat) -> Result<CoverSheet, String> {
    let mut fields = text.split(format.field_separator);
    fields.next(); // the prefix, checked by is_cover_code
    let keys = [
        format.mrn_key.as_str(),
        format.type_key.as_str(),
        format.category_key.as_str(),
        format.date_key.as_str(),
        format.issuer_key.as_str(),
    ];
    let mut values: [Option<&str>; 5] = [None; 5];
    for field in fields.filter(|f| !f.is_empty()) {
        let Some((key, value)) = field.split_once(format.key_value_separator) else {
            return Err(format!(
                "a field has no '{}' between key and value",
                format.key_value_separator
            ));
        };
        let Some(slot) = keys.iter().position(|k| *k == key) else {
            continue; // unknown key: ignored
        };
        if values[slot].is_some() {
            return Err(format!("{key} field appears more than once"));
        }
        values[slot] = Some(value);
    }
    let [mrn, document_type, category, service_date, issuer] = values;
    let mrn = mrn.ok_or_else(|| format!("missing {} field", format.mrn_key))?;
    let document_type =
        document_type.ok_or_else(|| format!("missing {} field", format.type_key))?;
    if !valid_token(mrn, |c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!(
            "{} field is empty, longer than 64 characters or has characters other than letters, digits and '-'",
            format.mrn_key
        ));
    }
    let label_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    for (key, value) in [
        (&format.type_key, Some(document_type)),
        (&format.category_key, category),
        (&format.issuer_key, issuer),
    ] {
        if let Some(value) = value {
            if !valid_token(value, label_char) {
                return Err(format!(
                    "{key} field is empty, longer than 64 characters or has characters other than letters, digits, '-', '_' and '.'"
                ));
            }
        }
    }
    if let Some(date) = service_date {
        if !valid_date(date) {
            return Err(format!(
                "{} field is not a calendar date written YYYY-MM-DD",
                format.date_key
            ));
        }
    }
    Ok(CoverSheet::Cover {
        mrn: mrn.to_owned(),
        issuer: issuer.map(str::to_owned),
        document_type: document_type.to_owned(),
        category: category.map(str::to_owned),
        service_date: service_date.map(str::to_owned),
    })
}

fn valid_token(value: &str, allowed: impl Fn(char) -> bool) -> bool {
    !value.is_empty() && value.len() <= 64 && value.chars().all(allowed)
}

fn valid_date(date: &str) -> bool {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &date[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

/// Whether a page's OCR text carries the cover sheet's printed marker
/// ([`CoverSheetFormat::marker_text`], `CHARTVAULT COVER SHEET` by default):
/// case-insensitive, any run of whitespace matching any other. For a page whose code could
/// not be read: `NotCover` from [`parse_cover_sheet`] plus the marker means an unreadable
/// cover sheet (QA).
pub fn has_cover_marker(ocr_text: &str, format: &CoverSheetFormat) -> bool {
    let normalise = |s: &str| {
        s.split_whitespace()
            .map(str::to_uppercase)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let marker = normalise(&format.marker_text);
    !marker.is_empty() && normalise(ocr_text).contains(&marker)
}

/// Renders one code as black modules on white, `module_px` pixels per module, with a quiet
/// zone of 10 modules all round. 1D codes (Code 39, Code 128) are 60 modules tall; PDF417 rows
/// are 4 modules tall. Code 39 text outside its basic set is written as Full ASCII (at most 80
/// characters once shifted: lowercase letters, `|` and `=` take two each).
///
/// For tests and for printing cover sheets. Panics if the text cannot be encoded in the
/// symbology (e.g. too long for Code 39) or `module_px` is 0; see [`try_render_code`].
#[doc(hidden)]
pub fn render_code(symbology: Symbology, text: &str, module_px: u32) -> GrayImage {
    try_render_code(symbology, text, module_px).unwrap_or_else(|| {
        panic!(
            "cannot render this text as {symbology} (too long, or characters the symbology lacks)"
        )
    })
}

/// [`render_code`], or `None` if the text cannot be encoded in the symbology or `module_px`
/// is 0.
#[doc(hidden)]
pub fn try_render_code(symbology: Symbology, text: &str, module_px: u32) -> Option<GrayImage> {
    if module_px == 0 {
        return None;
    }
    let hints = EncodeHints {
        Margin: Some("0".to_owned()),
        ..EncodeHints::default()
    };
    let matrix = MultiFormatWriter
        .encode_with_hints(text, &symbology.to_rxing(), 0, 0, &hints)
        .ok()?;
    let (mw, mh) = (matrix.getWidth(), matrix.getHeight());
    let one_d = matches!(symbology, Symbology::Code39 | Symbology::Code128);
    let rows = if one_d { 60 } else { mh };
    let quiet = 10;
    let width = (mw + 2 * quiet) * module_px;
    let height = (rows + 2 * quiet) * module_px;
    let mut image = GrayImage::from_pixel(width, height, image::Luma([255]));
    for my in 0..rows {
        for mx in 0..mw {
            let black = matrix.get(mx, if one_d { 0 } else { my });
            if !black {
                continue;
            }
            for dy in 0..module_px {
                for dx in 0..module_px {
                    image.put_pixel(
                        (quiet + mx) * module_px + dx,
                        (quiet + my) * module_px + dy,
                        image::Luma([0]),
                    );
                }
            }
        }
    }
    Some(image)
}

/// A default module size per symbology for a 300-dpi cover sheet: 0.5 mm (6 px) for the 2D
/// codes, 0.34 mm (4 px) for Code 128 and 0.25 mm (3 px, 10 mil) for Code 39, so that a
/// 30-60 character payload fits across a letter page.
#[doc(hidden)]
pub fn default_module_px(symbology: Symbology) -> u32 {
    match symbology {
        Symbology::Code39 => 3,
        Symbology::Code128 => 4,
        Symbology::Qr | Symbology::DataMatrix | Symbology::Pdf417 => 6,
    }
}

/// A white 2550×3300 page (letter at 300 dpi) with the code rendered by [`render_code`] at
/// [`default_module_px`], 1 inch from the top and left edges, and a few bars of "text" below
/// it. For tests (e.g. building a batch TIFF with cover sheets). Panics like [`render_code`],
/// or if the code does not fit the page.
#[doc(hidden)]
pub fn render_cover_page(symbology: Symbology, text: &str) -> GrayImage {
    let code = render_code(symbology, text, default_module_px(symbology));
    let mut page = GrayImage::from_pixel(2550, 3300, image::Luma([255]));
    assert!(
        code.width() + 300 <= page.width() && code.height() + 300 <= page.height(),
        "code does not fit on a letter page"
    );
    image::imageops::replace(&mut page, &code, 270, 270);
    // Lines of "words": dark blocks 30 px high, like 12-pt text at 300 dpi.
    let top = 300 + code.height();
    for line in 0..20u32 {
        let y = top + 60 * line;
        let mut x = 300u32;
        let mut word = line;
        while x < 2200 {
            let w = 40 + (word * 37 % 140);
            for yy in y..y + 30 {
                for xx in x..(x + w).min(2250) {
                    page.put_pixel(xx, yy, image::Luma([30]));
                }
            }
            x += w + 25;
            word += 1;
        }
    }
    page
}

#[cfg(test)]
mod tests;
