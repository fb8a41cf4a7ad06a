//! What crosses the decoder process's pipes, and how.
//!
//! Every message is a frame: a tag byte, the payload's length (u64, little-endian), the
//! payload. Structured payloads are JSON; file bytes and page pixels are raw.
//!
//! | tag | direction | payload |
//! |---|---|---|
//! | `H` | child → parent | [`GREETING`], first thing the child sends |
//! | `Q` | parent → child | JSON [`Request`], once, after the greeting (and the limits) |
//! | `K` | child → parent | empty: the request was taken; from here on the child reads the file |
//! | `R` | child → parent | offset (u64 LE), length (u32 LE): "send me these bytes" |
//! | `D` | parent → child | the bytes, at most the length asked; fewer only at end of file |
//! | `A` | child → parent | JSON [`crate::Preflight`]: the answer to a preflight |
//! | `O` | child → parent | empty: the file is open with the expected page count |
//! | `P` | child → parent | header length (u32 LE), JSON [`PageHeader`], width × height pixels |
//! | `F` | child → parent | JSON [`WireError`]: the request failed; nothing follows |
//!
//! The answer is complete with `A`, `F`, or the last page asked for; the parent then kills
//! the child (it is exiting anyway) rather than wait for it.
//!
//! The parent bounds every length before it allocates: a child is treated as hostile too.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::{Limits, PageOcr, ScanError, ScanFormat};

/// The greeting, naming the protocol version: a parent and a child of different builds
/// (a binary replaced under a running server) refuse each other.
pub(super) const GREETING: &[u8] = b"chartvault-decoder/1";

pub(super) const TAG_GREETING: u8 = b'H';
pub(super) const TAG_REQUEST: u8 = b'Q';
pub(super) const TAG_ACCEPTED: u8 = b'K';
pub(super) const TAG_READ: u8 = b'R';
pub(super) const TAG_DATA: u8 = b'D';
pub(super) const TAG_PREFLIGHT: u8 = b'A';
pub(super) const TAG_OPENED: u8 = b'O';
pub(super) const TAG_PAGE: u8 = b'P';
pub(super) const TAG_FAILED: u8 = b'F';

/// The most file bytes one `R` may ask for (the parent's buffer for them).
pub(super) const MAX_READ: u32 = 4 << 20;
/// The longest JSON payload either side accepts (a page's text layer is the largest).
pub(super) const MAX_JSON: u64 = 64 << 20;

/// The one request of a decoder process.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Request {
    /// The length of the file being served (for `SeekFrom::End`).
    pub file_len: u64,
    pub job: Job,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Job {
    Preflight {
        limits: Limits,
    },
    DecodePages {
        format: ScanFormat,
        limits: Limits,
        expected_pages: usize,
        pages: Vec<usize>,
    },
}

/// Everything of a [`crate::DecodedPage`] but its pixels.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PageHeader {
    /// The page's 0-based index in the file.
    pub index: usize,
    pub width: u32,
    pub height: u32,
    pub dpi: Option<(f32, f32)>,
    pub text_layer: Option<PageOcr>,
    pub no_image: Option<String>,
}

/// Writes one frame whose payload is `parts` one after the other.
pub(super) fn write_frame(out: &mut impl Write, tag: u8, parts: &[&[u8]]) -> io::Result<()> {
    let len: u64 = parts.iter().map(|part| part.len() as u64).sum();
    let mut head = [0u8; 9];
    head[0] = tag;
    head[1..].copy_from_slice(&len.to_le_bytes());
    out.write_all(&head)?;
    for part in parts {
        out.write_all(part)?;
    }
    Ok(())
}

/// Reads a frame's tag and payload length.
pub(super) fn read_frame_head(input: &mut impl Read) -> io::Result<(u8, u64)> {
    let mut head = [0u8; 9];
    input.read_exact(&mut head)?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&head[1..]);
    Ok((head[0], u64::from_le_bytes(len)))
}

/// Reads a payload of `len` bytes, refusing more than `max`.
pub(super) fn read_payload(input: &mut impl Read, len: u64, max: u64) -> io::Result<Vec<u8>> {
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a frame is longer than its kind allows",
        ));
    }
    let mut payload = vec![0u8; len as usize];
    input.read_exact(&mut payload)?;
    Ok(payload)
}

/// A [`ScanError`] as it crosses the pipe: the same variants, owned strings for the
/// `&'static str` fields, an I/O error as its kind and message.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum WireError {
    Empty,
    UnknownFormat,
    Truncated {
        format: ScanFormat,
        structure: String,
    },
    Malformed {
        format: ScanFormat,
        detail: String,
    },
    NoPages {
        format: ScanFormat,
    },
    TooManyPages {
        format: ScanFormat,
        limit: u32,
    },
    EmptyPage {
        format: ScanFormat,
        page: usize,
        width: u32,
        height: u32,
    },
    DimensionTooLarge {
        format: ScanFormat,
        page: usize,
        width: u32,
        height: u32,
        limit: u32,
    },
    TooManyPixels {
        format: ScanFormat,
        page: usize,
        width: u32,
        height: u32,
        limit: u64,
    },
    UnsupportedCompression {
        page: usize,
        code: u16,
        name: String,
    },
    UnsupportedPhotometric {
        page: usize,
        name: String,
    },
    UnsupportedPixelLayout {
        format: ScanFormat,
        page: usize,
        detail: String,
    },
    PageOutOfRange {
        requested: usize,
        pages: usize,
    },
    DecoderLimit {
        format: ScanFormat,
        page: usize,
        detail: String,
    },
    Decode {
        format: ScanFormat,
        page: usize,
        detail: String,
    },
    PdfEncrypted {
        detail: String,
    },
    Pdf {
        page: Option<usize>,
        detail: String,
    },
    Dicom {
        detail: String,
    },
    DicomNoPreview {
        detail: String,
    },
    DecoderStopped {
        page: Option<usize>,
        detail: String,
    },
    Io {
        kind: String,
        message: String,
    },
}

impl From<&ScanError> for WireError {
    fn from(error: &ScanError) -> WireError {
        // Exhaustive on purpose: a new ScanError variant must be given a wire form.
        match error {
            ScanError::Empty => WireError::Empty,
            ScanError::UnknownFormat => WireError::UnknownFormat,
            ScanError::Truncated { format, structure } => WireError::Truncated {
                format: *format,
                structure: (*structure).to_owned(),
            },
            ScanError::Malformed { format, detail } => WireError::Malformed {
                format: *format,
                detail: detail.clone(),
            },
            ScanError::NoPages { format } => WireError::NoPages { format: *format },
            ScanError::TooManyPages { format, limit } => WireError::TooManyPages {
                format: *format,
                limit: *limit,
            },
            ScanError::EmptyPage {
                format,
                page,
                width,
                height,
            } => WireError::EmptyPage {
                format: *format,
                page: *page,
                width: *width,
                height: *height,
            },
            ScanError::DimensionTooLarge {
                format,
                page,
                width,
                height,
                limit,
            } => WireError::DimensionTooLarge {
                format: *format,
                page: *page,
                width: *width,
                height: *height,
                limit: *limit,
            },
            ScanError::TooManyPixels {
                format,
                page,
                width,
                height,
                limit,
            } => WireError::TooManyPixels {
                format: *format,
                page: *page,
                width: *width,
                height: *height,
                limit: *limit,
            },
            ScanError::UnsupportedCompression { page, code, name } => {
                WireError::UnsupportedCompression {
                    page: *page,
                    code: *code,
                    name: (*name).to_owned(),
                }
            }
            ScanError::UnsupportedPhotometric { page, name } => WireError::UnsupportedPhotometric {
                page: *page,
                name: name.clone(),
            },
            ScanError::UnsupportedPixelLayout {
                format,
                page,
                detail,
            } => WireError::UnsupportedPixelLayout {
                format: *format,
                page: *page,
                detail: detail.clone(),
            },
            ScanError::PageOutOfRange { requested, pages } => WireError::PageOutOfRange {
                requested: *requested,
                pages: *pages,
            },
            ScanError::DecoderLimit {
                format,
                page,
                detail,
            } => WireError::DecoderLimit {
                format: *format,
                page: *page,
                detail: detail.clone(),
            },
            ScanError::Decode {
                format,
                page,
                detail,
            } => WireError::Decode {
                format: *format,
                page: *page,
                detail: detail.clone(),
            },
            ScanError::PdfEncrypted { detail } => WireError::PdfEncrypted {
                detail: (*detail).to_owned(),
            },
            ScanError::Pdf { page, detail } => WireError::Pdf {
                page: *page,
                detail: detail.clone(),
            },
            ScanError::Dicom { detail } => WireError::Dicom {
                detail: detail.clone(),
            },
            ScanError::DicomNoPreview { detail } => WireError::DicomNoPreview {
                detail: detail.clone(),
            },
            ScanError::DecoderStopped { page, detail } => WireError::DecoderStopped {
                page: *page,
                detail: detail.clone(),
            },
            ScanError::Io(error) => WireError::Io {
                kind: format!("{:?}", error.kind()),
                message: error.to_string(),
            },
        }
    }
}

impl From<WireError> for ScanError {
    fn from(error: WireError) -> ScanError {
        match error {
            WireError::Empty => ScanError::Empty,
            WireError::UnknownFormat => ScanError::UnknownFormat,
            WireError::Truncated { format, structure } => ScanError::Truncated {
                format,
                structure: interned(structure, "a structure of the file"),
            },
            WireError::Malformed { format, detail } => ScanError::Malformed { format, detail },
            WireError::NoPages { format } => ScanError::NoPages { format },
            WireError::TooManyPages { format, limit } => ScanError::TooManyPages { format, limit },
            WireError::EmptyPage {
                format,
                page,
                width,
                height,
            } => ScanError::EmptyPage {
                format,
                page,
                width,
                height,
            },
            WireError::DimensionTooLarge {
                format,
                page,
                width,
                height,
                limit,
            } => ScanError::DimensionTooLarge {
                format,
                page,
                width,
                height,
                limit,
            },
            WireError::TooManyPixels {
                format,
                page,
                width,
                height,
                limit,
            } => ScanError::TooManyPixels {
                format,
                page,
                width,
                height,
                limit,
            },
            WireError::UnsupportedCompression { page, code, name } => {
                ScanError::UnsupportedCompression {
                    page,
                    code,
                    name: interned(name, "unknown"),
                }
            }
            WireError::UnsupportedPhotometric { page, name } => {
                ScanError::UnsupportedPhotometric { page, name }
            }
            WireError::UnsupportedPixelLayout {
                format,
                page,
                detail,
            } => ScanError::UnsupportedPixelLayout {
                format,
                page,
                detail,
            },
            WireError::PageOutOfRange { requested, pages } => {
                ScanError::PageOutOfRange { requested, pages }
            }
            WireError::DecoderLimit {
                format,
                page,
                detail,
            } => ScanError::DecoderLimit {
                format,
                page,
                detail,
            },
            WireError::Decode {
                format,
                page,
                detail,
            } => ScanError::Decode {
                format,
                page,
                detail,
            },
            WireError::PdfEncrypted { detail } => ScanError::PdfEncrypted {
                detail: interned(detail, "its encryption cannot be read"),
            },
            WireError::Pdf { page, detail } => ScanError::Pdf { page, detail },
            WireError::Dicom { detail } => ScanError::Dicom { detail },
            WireError::DicomNoPreview { detail } => ScanError::DicomNoPreview { detail },
            WireError::DecoderStopped { page, detail } => {
                ScanError::DecoderStopped { page, detail }
            }
            WireError::Io { kind, message } => {
                ScanError::Io(io::Error::new(io_error_kind(&kind), message))
            }
        }
    }
}

/// The kinds an I/O error keeps across the pipe (by their `Debug` name); others become
/// `Other`. Only the message matters to people; the kind matters to code that retries.
const IO_ERROR_KINDS: [io::ErrorKind; 20] = [
    io::ErrorKind::NotFound,
    io::ErrorKind::PermissionDenied,
    io::ErrorKind::ConnectionRefused,
    io::ErrorKind::ConnectionReset,
    io::ErrorKind::ConnectionAborted,
    io::ErrorKind::NotConnected,
    io::ErrorKind::BrokenPipe,
    io::ErrorKind::AlreadyExists,
    io::ErrorKind::WouldBlock,
    io::ErrorKind::InvalidInput,
    io::ErrorKind::InvalidData,
    io::ErrorKind::TimedOut,
    io::ErrorKind::WriteZero,
    io::ErrorKind::Interrupted,
    io::ErrorKind::Unsupported,
    io::ErrorKind::UnexpectedEof,
    io::ErrorKind::OutOfMemory,
    io::ErrorKind::StorageFull,
    io::ErrorKind::QuotaExceeded,
    io::ErrorKind::Other,
];

fn io_error_kind(name: &str) -> io::ErrorKind {
    IO_ERROR_KINDS
        .into_iter()
        .find(|kind| format!("{kind:?}") == name)
        .unwrap_or(io::ErrorKind::Other)
}

/// A `&'static str` for a string that was one in the child. The values are literals of this
/// crate, a few dozen at most: each distinct one is leaked once. A child gone wrong cannot
/// make this grow without bound: past a cap (or for a long string) `fallback` stands in.
fn interned(text: String, fallback: &'static str) -> &'static str {
    const MAX_STRINGS: usize = 256;
    const MAX_LEN: usize = 256;
    static STRINGS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut strings = STRINGS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = strings.get(text.as_str()) {
        return known;
    }
    if strings.len() >= MAX_STRINGS || text.len() > MAX_LEN {
        return fallback;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    strings.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_kinds_survive_the_pipe() {
        for kind in IO_ERROR_KINDS {
            assert_eq!(io_error_kind(&format!("{kind:?}")), kind);
        }
        assert_eq!(io_error_kind("SomethingNew"), io::ErrorKind::Other);
    }

    #[test]
    fn static_strings_are_interned_once() {
        let first = interned("IFD entry".to_owned(), "fallback");
        let second = interned("IFD entry".to_owned(), "fallback");
        assert_eq!(first, "IFD entry");
        assert!(std::ptr::eq(first, second));
        assert_eq!(interned("x".repeat(1000), "fallback"), "fallback");
    }

    #[test]
    fn errors_keep_their_message_across_the_pipe() {
        let errors = [
            ScanError::Truncated {
                format: ScanFormat::Tiff,
                structure: "the IFD",
            },
            ScanError::PdfEncrypted {
                detail: "it needs a password to open",
            },
            ScanError::UnsupportedCompression {
                page: 2,
                code: 7,
                name: "JPEG",
            },
            ScanError::Pdf {
                page: Some(3),
                detail: "the page is too complex".into(),
            },
            ScanError::DecoderStopped {
                page: None,
                detail: "it stopped".into(),
            },
            ScanError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "short")),
        ];
        for error in errors {
            let json = serde_json::to_vec(&WireError::from(&error)).expect("serialisable");
            let back: WireError = serde_json::from_slice(&json).expect("parses");
            let back = ScanError::from(back);
            assert_eq!(back.to_string(), error.to_string());
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&error)
            );
        }
    }
}
