//! Bounds on what a PDF can make the reader do, checked before hayro decodes anything of its
//! own accord.
//!
//! hayro decodes a stream whole into memory and has no limits of its own; it decodes
//! cross-reference streams while it opens a file, object streams as soon as it needs an object
//! inside one, and everything else (content, forms, fonts, images) while it draws. So:
//!
//! - [`check_file`], before parsing (`scan` module): the file must end in `%%EOF`; every name
//!   in the raw bytes is read however it is written (`#xx` escapes decoded): an `/Encrypt`
//!   means an encrypted file, refused (its streams could not be checked), and a `/Columns`
//!   over the limit or given by reference is refused (a predictor allocates its row first, and
//!   a failed allocation aborts the process). Then **every stream in the raw bytes** is
//!   bounded without trusting its dictionary: the data after every `stream` keyword is decoded
//!   as Flate (zlib and raw deflate), as LZW (either `/EarlyChange`), and as either behind
//!   ASCIIHex or ASCII85; and, where hayro's parser reads a dictionary ending right before the
//!   keyword (tried from the nearest eight `obj` tokens back, without context, the way hayro
//!   reads cross-reference streams), its declared chain too. The largest expansion counts.
//! - [`check_objects`], right after parsing (`walk` module): **every stream hayro knows**,
//!   with hayro's own reading of its dictionary (indirect `/Filter`, arrays, `#` escapes,
//!   abbreviations, `/DecodeParms`), through its whole chain in order (FlateDecode, LZWDecode,
//!   RunLengthDecode, ASCIIHexDecode, ASCII85Decode), stopping at an image filter; streams
//!   stored inside object streams included, and a second pass over the objects of a
//!   cross-reference table hayro rebuilt during the first.
//! - [`check_page`], before a page is interpreted (`page` module): images by their declared
//!   size, operators with forms expanded.
//!
//! Caps: every step of a stream's chain at [`STREAM_CAP`], or for an image (`/Subtype
//! /Image`) [`IMAGE_BYTES_PER_PIXEL`] × its declared pixels (at most `max_pixels_per_page`)
//! plus 1 MiB; the streams of the file together at [`TOTAL_BASE`] + [`TOTAL_RATIO`] × the
//! file size (each pass on its own). A predictor row (`/Columns` × `/Colors` ×
//! `/BitsPerComponent`) over [`STREAM_CAP`] is refused. Decoding is counted with streaming
//! copies of hayro's own decoders (`filters`, `inflate`), as lenient as hayro's: a stricter
//! decoder such as miniz_oxide stops at a bad stored-block length, an incomplete Huffman code
//! or a preset-dictionary flag where hayro goes on, and would let a bomb behind the flaw
//! through. Memory is fixed per stream (for Flate a 32 KiB window and Huffman tables of at
//! most 128 KiB, for LZW a 4096-entry table, 8 KiB between steps; the last step only
//! counts); time is linear in the data read, which is bounded too (the pre-scan reads at most 32 × the file size, the walk parses at most
//! 16 × the file size of object syntax).
//!
//! Not covered:
//! - Streams hayro decodes before the walk (cross-reference and object streams) whose chain
//!   the pre-scan cannot read and cannot guess: RunLengthDecode (64:1) or two expanding
//!   filters in a row, in a stream whose dictionary hides behind more than eight `obj`
//!   tokens, or (object streams only: hayro reads them with the file's context) whose
//!   `/Filter` or `/DecodeParms` is a reference. Likewise predictor parameters given by
//!   reference to an object inside another object stream (invisible in the raw bytes).
//! - Inline images (their size is checked by nothing but hayro), tiling patterns and Type 3
//!   glyph procedures in the operator count.
//! - CPU only: hayro's strict Flate decoders run before its lenient one, so a stream may be
//!   decoded up to three times; hayro builds a Huffman table per block, which the guard bounds
//!   at [`filters::WORK_CAP`] entries per stream.

mod chain;
mod filters;
mod inflate;
mod page;
mod scan;
mod stage;
mod walk;

#[cfg(test)]
mod tests;

use crate::{Limits, ScanError};

pub(super) use page::check_page;

/// Cap on the output of one decoding step of a non-image stream.
const STREAM_CAP: u64 = 128 << 20;
/// An image stream may decode to this many bytes per declared pixel (16-bit CMYK).
const IMAGE_BYTES_PER_PIXEL: u64 = 8;
/// All streams of a file together may decode to this plus [`TOTAL_RATIO`] × the file size.
const TOTAL_BASE: u64 = 1 << 30;
const TOTAL_RATIO: u64 = 100;

/// Checks the raw file before hayro parses it: complete, not encrypted, no decompression bomb
/// among its streams whatever their dictionaries say.
pub(super) fn check_file(bytes: &[u8], limits: &Limits) -> Result<(), ScanError> {
    // Acrobat's rule: the end-of-file marker within the last 1024 bytes. Without it the file
    // was cut short; hayro would repair it and render whatever survived, silently.
    if scan::find(&bytes[bytes.len().saturating_sub(1024)..], b"%%EOF").is_none() {
        return Err(ScanError::Pdf {
            page: None,
            detail: "it is truncated (no end-of-file marker in its last 1024 bytes)".to_owned(),
        });
    }
    scan::check_names(bytes).map_err(|name| match name {
        scan::Name::Encrypt => ScanError::PdfEncrypted {
            detail:
                "remove the encryption (even one that opens without a password) before uploading",
        },
        scan::Name::Columns { indirect: true } => ScanError::Pdf {
            page: None,
            detail: "a stream's /Columns is an indirect reference (it must be a number)".to_owned(),
        },
        scan::Name::Columns { indirect: false } => ScanError::Pdf {
            page: None,
            detail: format!(
                "a stream's /Columns is over the limit of {}",
                scan::MAX_COLUMNS
            ),
        },
    })?;
    scan::check_streams(bytes, limits)
}

/// Checks every stream of the parsed file, as hayro reads it (`file_len`: the file's size).
pub(super) fn check_objects(
    pdf: &hayro::hayro_syntax::Pdf,
    limits: &Limits,
    file_len: usize,
) -> Result<(), ScanError> {
    walk::check_objects(pdf, limits, file_len)
}

fn total_cap(file_len: usize) -> u64 {
    TOTAL_BASE.saturating_add(TOTAL_RATIO.saturating_mul(file_len as u64))
}

/// The decoded size of a file's streams so far, against the file's cap.
struct StreamTotal {
    bytes: u64,
    cap: u64,
}

impl StreamTotal {
    fn new(cap: u64) -> StreamTotal {
        StreamTotal { bytes: 0, cap }
    }

    /// Adds a stream's decoded size; `Err(cap)` once over the cap.
    fn add(&mut self, bytes: u64) -> Result<(), u64> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.cap {
            return Err(self.cap);
        }
        Ok(())
    }
}

fn expands_beyond(cap: u64, count: filters::Count) -> ScanError {
    let detail = if count.over_cap {
        format!("a compressed stream expands to more than {} MiB", cap >> 20)
    } else {
        "a compressed stream takes too much work to decode".to_owned()
    };
    ScanError::Pdf { page: None, detail }
}

fn total_beyond(cap: u64) -> ScanError {
    ScanError::Pdf {
        page: None,
        detail: format!(
            "its compressed streams expand to more than {} MiB together",
            cap >> 20
        ),
    }
}

fn too_much_reading() -> ScanError {
    ScanError::Pdf {
        page: None,
        detail: "checking its streams takes too much work (overlapping or unterminated streams)"
            .to_owned(),
    }
}

fn refused(refusal: chain::Refusal) -> ScanError {
    let detail = match refusal {
        chain::Refusal::PredictorRow => format!(
            "a compressed stream's decoding parameters describe rows of more than {} MiB",
            STREAM_CAP >> 20
        ),
    };
    ScanError::Pdf { page: None, detail }
}
