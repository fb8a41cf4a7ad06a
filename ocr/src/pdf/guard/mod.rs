//! Bounds on what a PDF can make the reader do, checked before hayro decodes anything.
//!
//! hayro decodes a stream whole into memory and has no limits of its own, so:
//!
//! - [`check_file`], before parsing: the file must not be encrypted (its streams could not be
//!   checked); then every `FlateDecode` stream in the raw bytes (streams are never inside
//!   object streams, so all of them are visible) is inflated with a streaming decoder into a
//!   fixed buffer, counting bytes only: a stream over its cap, or all of them together over
//!   [`TOTAL_BASE`] + [`TOTAL_RATIO`] × the file size, is an error. Caps: image streams
//!   (dictionary mentions `/Image`) at [`IMAGE_BYTES_PER_PIXEL`] × `max_pixels_per_page`;
//!   anything else (content streams, fonts, object and xref streams) at [`STREAM_CAP`].
//!   Memory stays O(1) and time linear in the bounded output.
//! - [`check_page`], before a page is interpreted: every image it can reach through its
//!   resources (and forms' resources) must be within the page limits by its declared size
//!   (the JBIG2, CCITT and JPEG decoders allocate what it declares), and the drawing, with
//!   every form XObject expanded as often as it is invoked, must stay under
//!   `MAX_PAGE_OPERATIONS` operators (a few nested forms each drawing the next ten times
//!   would otherwise keep the renderer busy for ever).
//!
//! Not covered (documented gaps): `FlateDecode` behind another filter (`ASCII85Decode` then
//! `FlateDecode`), `LZWDecode` (at most ~3000× expansion), inline images (their size is
//! checked by nothing but hayro), tiling patterns and Type 3 glyph procedures in the operator
//! count.

mod page;

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

use crate::{Limits, ScanError};

pub(super) use page::check_page;

/// Cap on the inflated size of one non-image stream.
const STREAM_CAP: u64 = 128 << 20;
/// An image stream may inflate to this many bytes per allowed page pixel (16-bit CMYK).
const IMAGE_BYTES_PER_PIXEL: u64 = 8;
/// All streams of a file together may inflate to this plus [`TOTAL_RATIO`] × the file size.
const TOTAL_BASE: u64 = 1 << 30;
const TOTAL_RATIO: u64 = 100;
/// How far back from `stream` a stream's dictionary is looked for.
const DICT_WINDOW: usize = 64 << 10;

/// Checks the raw file: not encrypted, no decompression bomb among its Flate streams.
pub(super) fn check_file(bytes: &[u8], limits: &Limits) -> Result<(), ScanError> {
    // Acrobat's rule: the end-of-file marker within the last 1024 bytes. Without it the file
    // was cut short; hayro would repair it and render whatever survived, silently.
    if find(&bytes[bytes.len().saturating_sub(1024)..], b"%%EOF").is_none() {
        return Err(ScanError::Pdf {
            page: None,
            detail: "it is truncated (no end-of-file marker in its last 1024 bytes)".to_owned(),
        });
    }
    if is_encrypted(bytes) {
        return Err(ScanError::PdfEncrypted {
            detail:
                "remove the encryption (even one that opens without a password) before uploading",
        });
    }
    let image_cap = limits
        .max_pixels_per_page
        .saturating_mul(IMAGE_BYTES_PER_PIXEL)
        .saturating_add(1 << 20);
    let total_cap = TOTAL_BASE.saturating_add(TOTAL_RATIO.saturating_mul(bytes.len() as u64));
    let mut total = 0u64;
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], b"stream") {
        let keyword = from + found;
        from = keyword + 6;
        if keyword >= 3 && &bytes[keyword - 3..keyword] == b"end" {
            continue;
        }
        let data_start = match bytes.get(from..from + 2) {
            Some([b'\r', b'\n']) => from + 2,
            Some([b'\r' | b'\n', _]) => from + 1,
            _ => continue,
        };
        let dict = stream_dictionary(bytes, keyword);
        if !is_flate(dict) {
            continue;
        }
        let cap = if mentions(dict, b"/Image") {
            image_cap
        } else {
            STREAM_CAP
        };
        let size = inflated_size(&bytes[data_start..], cap);
        if size > cap {
            return Err(ScanError::Pdf {
                page: None,
                detail: format!("a compressed stream expands to more than {} MiB", cap >> 20),
            });
        }
        total += size;
        if total > total_cap {
            return Err(ScanError::Pdf {
                page: None,
                detail: format!(
                    "its compressed streams expand to more than {} MiB together",
                    total_cap >> 20
                ),
            });
        }
    }
    Ok(())
}

/// `/Encrypt` as a key (a trailer or xref-stream dictionary entry), not `/EncryptMetadata`.
fn is_encrypted(bytes: &[u8]) -> bool {
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], b"/Encrypt") {
        let end = from + found + 8;
        match bytes.get(end) {
            Some(b) if b.is_ascii_alphanumeric() => {}
            _ => return true,
        }
        from = end;
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The bytes between the start of the object (`obj`) and the `stream` keyword, bounded.
fn stream_dictionary(bytes: &[u8], keyword: usize) -> &[u8] {
    let window_start = keyword.saturating_sub(DICT_WINDOW);
    let window = &bytes[window_start..keyword];
    match window.windows(3).rposition(|w| w == b"obj") {
        Some(at) => &window[at..],
        None => window,
    }
}

fn mentions(dict: &[u8], name: &[u8]) -> bool {
    let mut from = 0;
    while let Some(found) = find(&dict[from..], name) {
        let end = from + found + name.len();
        match dict.get(end) {
            Some(b) if b.is_ascii_alphanumeric() => from = end,
            _ => return true,
        }
    }
    false
}

fn is_flate(dict: &[u8]) -> bool {
    mentions(dict, b"/FlateDecode") || mentions(dict, b"/Fl")
}

/// Inflated size of the deflate or zlib stream at the start of `data`, counting no further
/// than just past `cap`; a corrupt stream counts what it produced before the error.
fn inflated_size(data: &[u8], cap: u64) -> u64 {
    let zlib = data.len() >= 2
        && data[0] & 0x0f == 8
        && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
    let format = if zlib {
        DataFormat::Zlib
    } else {
        DataFormat::Raw
    };
    let mut state = InflateState::new_boxed(format);
    let mut out = vec![0u8; 64 << 10];
    let mut input = data;
    let mut total = 0u64;
    loop {
        let result = inflate(&mut state, input, &mut out, MZFlush::None);
        input = &input[result.bytes_consumed..];
        total += result.bytes_written as u64;
        if total > cap {
            return total;
        }
        match result.status {
            Ok(MZStatus::Ok) if result.bytes_consumed > 0 || result.bytes_written > 0 => {}
            _ => return total,
        }
    }
}
