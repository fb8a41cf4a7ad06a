//! The raw pre-scan: every stream in the file's bytes bounded before hayro parses anything
//! (hayro decodes cross-reference streams while it opens the file, and object streams as soon
//! as it needs an object inside one).
//!
//! Nothing here depends on finding a stream's dictionary. The data after every `stream`
//! keyword (to the end of the file: a wrong `/Length` must not hide anything) is decoded as
//! hayro would decode it if its dictionary said FlateDecode, LZWDecode (either
//! `/EarlyChange`), or either of those behind ASCIIHexDecode or ASCII85Decode; whichever
//! expands most is what the stream counts. Those die within a few bytes on data of another
//! kind, so the cost is about one decoding of each real stream.
//!
//! The dictionary, where hayro's own parser finds one ending right before the keyword (tried
//! from the nearest `obj` tokens back), adds its declared chain, with references left
//! unresolved as hayro leaves them when it reads a cross-reference stream, and sets the cap
//! (an image's by its declared size). Without one, the cap is the image cap if `/Image`
//! appears since the previous stream, [`STREAM_CAP`] otherwise.

use hayro::hayro_syntax::object::{Dict, FromBytes};

use super::chain::{self, image_cap};
use super::filters::{self, Count, Step};
use super::{
    expands_beyond, refused, too_much_reading, total_beyond, total_cap, StreamTotal, STREAM_CAP,
};
use crate::{Limits, ScanError};

/// How many `obj` tokens before a `stream` keyword are tried as the start of its object.
const DICT_CANDIDATES: usize = 8;

/// The dictionary-free readings of every stream.
const SPECULATIVE: &[&[Step]] = &[
    &[Step::Flate],
    &[Step::Lzw { early_change: true }],
    &[Step::Lzw {
        early_change: false,
    }],
];

/// The same behind an ASCII encoding, tried when the data starts like one.
const BEHIND_ASCII: &[Step] = &[
    Step::Flate,
    Step::Lzw { early_change: true },
    Step::Lzw {
        early_change: false,
    },
];

/// Data the readings of all streams together may read, per byte of the file (plus 64 MiB).
/// A real stream is read about twice (Flate from both starts; the other readings die within
/// bytes), but every `stream` keyword starts readings that may run to the end of the file:
/// many keywords before data that some reading accepts without end (empty stored blocks, white
/// space) would make the scan quadratic.
const SCAN_READ_RATIO: u64 = 32;

/// The largest `/Columns` value allowed anywhere in the file: hayro's predictor
/// allocates a row of `/Columns` × (`/Colors` × `/BitsPerComponent`, at most 255) bits before
/// it reads any data, and aborts the process when that allocation fails. Legitimate values are
/// image widths (at most the page limits) and cross-reference field widths.
pub(super) const MAX_COLUMNS: u64 = (STREAM_CAP * 8) / 255;

/// What the name scan found.
pub(super) enum Name {
    /// `/Encrypt`: the file is encrypted (its streams could not be checked before parsing).
    Encrypt,
    /// A `/Columns` over [`MAX_COLUMNS`] or given as an indirect reference.
    Columns { indirect: bool },
}

/// Looks at every name in the raw bytes, however it is written (`#xx` escapes decoded, as
/// hayro decodes them): `/Encrypt` anywhere means the file is encrypted; a `/Columns` whose
/// value is over [`MAX_COLUMNS`] or an indirect reference is refused. The parameters of a
/// cross-reference stream, which hayro decodes while it opens the file, are always in the raw
/// bytes and always direct (hayro reads them without context), so no dictionary needs to be
/// found for either.
pub(super) fn check_names(bytes: &[u8]) -> Result<(), Name> {
    let mut from = 0;
    while let Some(slash) = bytes[from..].iter().position(|&b| b == b'/') {
        let start = from + slash + 1;
        let end = bytes[start..]
            .iter()
            .position(|&b| is_white_space(b) || is_delimiter(b))
            .map_or(bytes.len(), |at| start + at);
        from = end;
        match unescape_name(&bytes[start..end]).as_deref() {
            Some(b"Encrypt") => return Err(Name::Encrypt),
            Some(b"Columns") => check_columns_value(bytes, end)?,
            _ => {}
        }
    }
    Ok(())
}

/// The value after a `/Columns` ending at `at`: a number, or an indirect reference
/// (`number number R`).
fn check_columns_value(bytes: &[u8], at: usize) -> Result<(), Name> {
    let number = |at: usize| {
        let at = skip_white_space_and_comments(bytes, at, bytes.len());
        let len = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-'))
            .count();
        (&bytes[at..at + len], at + len)
    };
    let (value, after) = number(at);
    let integer_part = value.split(|&b| b == b'.').next().unwrap_or_default();
    let digits = integer_part.strip_prefix(b"+").unwrap_or(integer_part);
    let too_large = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() > 18
            || std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
                .is_some_and(|columns| columns > MAX_COLUMNS));
    let (generation, after_generation) = number(after);
    let indirect = !value.is_empty()
        && value.iter().all(u8::is_ascii_digit)
        && !generation.is_empty()
        && generation.iter().all(u8::is_ascii_digit)
        && bytes.get(skip_white_space_and_comments(
            bytes,
            after_generation,
            bytes.len(),
        )) == Some(&b'R');
    if too_large || indirect {
        return Err(Name::Columns { indirect });
    }
    Ok(())
}

/// PDF delimiters.
fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// A name's bytes with `#xx` escapes decoded (`None` for a malformed escape, which hayro
/// rejects too), only for names that could spell `Columns` or `Encrypt` (seven letters).
fn unescape_name(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() < 7 || raw.len() > 7 * 3 {
        return None;
    }
    let mut out = Vec::with_capacity(7);
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Bounds every stream in `bytes`.
pub(super) fn check_streams(bytes: &[u8], limits: &Limits) -> Result<(), ScanError> {
    let mut total = StreamTotal::new(total_cap(bytes.len()));
    let read_budget = SCAN_READ_RATIO
        .saturating_mul(bytes.len() as u64)
        .saturating_add(64 << 20);
    let mut read = 0u64;
    let mut from = 0;
    // Where the search for the current stream's dictionary may start: after the previous
    // stream's keyword (no dictionary spans a stream), which keeps the search linear.
    let mut window_start = 0;
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
        let window = window_start..keyword;
        window_start = from;
        let data = &bytes[data_start..];

        let dicts = dictionaries(bytes, window.start, keyword);
        let mut plans = Vec::new();
        for dict in &dicts {
            plans.push(chain::plan(dict, limits).map_err(refused)?);
        }
        let cap = match plans.iter().map(|plan| plan.cap).max() {
            Some(cap) => cap,
            None if mentions(&bytes[window], b"/Image") => image_cap(limits.max_pixels_per_page),
            None => STREAM_CAP,
        };

        let mut largest = Count::default();
        let mut run = |steps: &[Step]| -> Result<(), ScanError> {
            let count = filters::run(data, steps, cap);
            if count.over_cap || count.over_work {
                return Err(expands_beyond(cap, count));
            }
            largest.bytes = largest.bytes.max(count.bytes);
            read = read.saturating_add(count.consumed);
            if read > read_budget {
                return Err(too_much_reading());
            }
            Ok(())
        };
        for steps in SPECULATIVE {
            run(steps)?;
        }
        let first = data.iter().copied().find(|b| !is_white_space(*b));
        if first.is_some_and(|b| b.is_ascii_hexdigit() || b == b'>') {
            for step in BEHIND_ASCII {
                run(&[Step::AsciiHex, *step])?;
            }
        }
        if first.is_some_and(|b| matches!(b, b'!'..=b'u' | b'z' | b'~')) {
            for step in BEHIND_ASCII {
                run(&[Step::Ascii85, *step])?;
            }
        }
        for plan in &plans {
            if !plan.steps.is_empty() {
                run(&plan.steps)?;
            }
        }
        total.add(largest.bytes).map_err(total_beyond)?;
    }
    Ok(())
}

/// The dictionaries hayro's parser reads (without a cross-reference context) at the nearest
/// `obj` tokens before `keyword` that end right before it (only white space and comments in
/// between), searching back no further than `window_start`.
fn dictionaries(bytes: &[u8], window_start: usize, keyword: usize) -> Vec<Dict<'_>> {
    let mut dicts = Vec::new();
    let mut end = keyword;
    for _ in 0..DICT_CANDIDATES {
        let Some(at) = rfind(&bytes[window_start..end], b"obj") else {
            break;
        };
        let at = window_start + at;
        end = at;
        if at >= 3 && &bytes[at - 3..at] == b"end" {
            continue;
        }
        let start = skip_white_space_and_comments(bytes, at + 3, keyword);
        if !bytes[start..keyword].starts_with(b"<<") {
            continue;
        }
        let Some(dict) = Dict::from_bytes(&bytes[start..keyword]) else {
            continue;
        };
        let dict_end = start + dict.data().len();
        if skip_white_space_and_comments(bytes, dict_end, keyword) == keyword {
            dicts.push(dict);
        }
    }
    dicts
}

/// PDF white space (as hayro reads it).
pub(super) fn is_white_space(byte: u8) -> bool {
    matches!(byte, b'\0' | b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn skip_white_space_and_comments(bytes: &[u8], mut at: usize, end: usize) -> usize {
    while at < end {
        match bytes[at] {
            b if is_white_space(b) => at += 1,
            b'%' => {
                while at < end && !matches!(bytes[at], b'\r' | b'\n') {
                    at += 1;
                }
            }
            _ => break,
        }
    }
    at
}

/// `name` as a whole name (not the start of a longer one).
fn mentions(bytes: &[u8], name: &[u8]) -> bool {
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], name) {
        let end = from + found + name.len();
        match bytes.get(end) {
            Some(b) if b.is_ascii_alphanumeric() => from = end,
            _ => return true,
        }
    }
    false
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}
