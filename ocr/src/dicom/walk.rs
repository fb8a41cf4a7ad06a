//! A bounded walk over the structure of a DICOM Part 10 file, before dicom-rs parses it.
//!
//! dicom-rs reserves and zero-fills a buffer of the length an element header *claims* before
//! reading the value: a 200-byte file with one element claiming 0xFFFFFFF0 bytes would make it
//! touch 4 GiB. This walk reads every element and item header (with dicom-rs' own header
//! decoders, so it sees the same structure dicom-rs will see) and checks that every defined
//! length fits inside its container (the file, the sequence or the item), without reading or
//! allocating any value. Once it passes, every allocation dicom-rs makes while parsing is
//! bounded by the size of the file.
//!
//! It also bounds the work: at most [`MAX_ELEMENTS`] elements and items in all and a nesting
//! depth of [`MAX_DEPTH`] sequences, and for a deflated data set at most
//! [`MAX_INFLATED_BYTES`] after inflation.

use std::io::Read;

use dicom_core::header::{HasLength, Header, SequenceItemHeader};
use dicom_core::{Tag, VR};
use dicom_encoding::decode::explicit_le::ExplicitVRLittleEndianDecoder;
use dicom_encoding::decode::DecodeFrom;
use dicom_encoding::transfer_syntax::DynDecoder;
use dicom_encoding::transfer_syntax::{Codec, TransferSyntaxIndex};
use dicom_encoding::TransferSyntax;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::{malformed, truncated};
use crate::ScanError;

/// Offset of the "DICM" magic, after the 128-byte preamble.
pub(super) const PREAMBLE_LEN: usize = 128;

/// Elements, items and fragments in one file, all levels together. Real files hold a few
/// hundred to a few tens of thousands; dicom-rs keeps each in memory, so a file of millions
/// of empty elements would cost far more memory than its size.
pub(crate) const MAX_ELEMENTS: usize = 500_000;

/// Nesting depth of sequences.
pub(crate) const MAX_DEPTH: usize = 32;

/// A deflated data set may inflate to at most this many bytes.
pub(crate) const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;

const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const ITEM_DELIMITER: Tag = Tag(0xFFFE, 0xE00D);
const TRANSFER_SYNTAX_UID: Tag = Tag(0x0002, 0x0010);

/// The size of one value of a binary VR (1 for text and bytes).
fn value_unit(vr: VR) -> u32 {
    match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// What the walk learnt on its way.
#[derive(Debug)]
pub(super) struct Structure {
    /// Transfer syntax UID from the file meta group (trimmed).
    pub transfer_syntax: String,
    /// Whether the top-level data set has Pixel Data (7FE0,0010).
    pub has_pixel_data: bool,
}

/// The file with a File Meta Information Group Length (0002,0000) when its meta group lacks
/// one (pydicom writes such files unless told to enforce the file format; PS3.10 requires the
/// element, and dicom-rs reads the group by it): the group's explicit VR little endian
/// elements are measured and the element put in front of them. A copy for reading only; the
/// original is kept as it came. Anything else (a group length present, a file that is not
/// Part 10, a meta group that cannot be measured) is returned as it is, for [`check`] to
/// judge.
pub(super) fn with_group_length(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    let start = PREAMBLE_LEN + 4;
    if !super::is_dicom(bytes) || bytes.len() < start + 8 {
        return Cow::Borrowed(bytes);
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    if u16_at(start) != 0x0002 || u16_at(start + 2) == 0x0000 {
        return Cow::Borrowed(bytes);
    }
    let mut pos = start;
    while pos + 8 <= bytes.len() && u16_at(pos) == 0x0002 {
        let long = matches!(
            &bytes[pos + 4..pos + 6],
            b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"SQ"
                | b"SV"
                | b"UC"
                | b"UN"
                | b"UR"
                | b"UT"
                | b"UV"
        );
        let (header, length) = if long {
            if pos + 12 > bytes.len() {
                return Cow::Borrowed(bytes);
            }
            let raw = &bytes[pos + 8..pos + 12];
            (
                12,
                u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
            )
        } else {
            (8, usize::from(u16_at(pos + 6)))
        };
        match pos.checked_add(header + length) {
            Some(next) if next <= bytes.len() && length != 0xFFFF_FFFF => pos = next,
            _ => return Cow::Borrowed(bytes),
        }
    }
    let Ok(group_length) = u32::try_from(pos - start) else {
        return Cow::Borrowed(bytes);
    };
    let mut out = Vec::with_capacity(bytes.len() + 12);
    out.extend_from_slice(&bytes[..start]);
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00]);
    out.extend_from_slice(&group_length.to_le_bytes());
    out.extend_from_slice(&bytes[start..]);
    Cow::Owned(out)
}

/// Checks the whole structure of `bytes` (preamble, meta group, data set); see the module doc.
pub(super) fn check(bytes: &[u8]) -> Result<Structure, ScanError> {
    if bytes.is_empty() {
        return Err(ScanError::Empty);
    }
    if !super::is_dicom(bytes) {
        return Err(ScanError::Dicom {
            detail: "is not a DICOM Part 10 file (no \"DICM\" marker after a 128-byte preamble)"
                .into(),
        });
    }
    let mut walker = Walker {
        buf: bytes,
        pos: PREAMBLE_LEN + 4,
        decoder: Box::new(ExplicitVRLittleEndianDecoder::default()),
        elements: 0,
        has_pixel_data: false,
    };
    let transfer_syntax = walker.meta_group()?;

    let ts = TransferSyntaxRegistry
        .get(&transfer_syntax)
        .ok_or_else(|| ScanError::Dicom {
            detail: format!("uses the unknown transfer syntax {transfer_syntax}"),
        })?;
    if ts.decoder_for::<&[u8]>().is_none() || !ts.can_decode_dataset() {
        return Err(ScanError::Dicom {
            detail: format!(
                "uses transfer syntax {} ({}), whose data set encoding cannot be read",
                ts.uid(),
                ts.name()
            ),
        });
    }

    let rest = &bytes[walker.pos..];
    let has_pixel_data = if matches!(ts.codec(), Codec::Dataset(_)) {
        // Deflated data set: inflate (bounded) and walk the result.
        let inflated = inflate_bounded(rest)?;
        data_set(&inflated, ts, walker.elements)?
    } else {
        data_set(rest, ts, walker.elements)?
    };
    Ok(Structure {
        transfer_syntax,
        has_pixel_data,
    })
}

/// Walks the main data set in `buf` (encoded as `ts` says); returns whether it has pixel data.
fn data_set(buf: &[u8], ts: &TransferSyntax, elements: usize) -> Result<bool, ScanError> {
    let decoder = ts
        .decoder_for::<&[u8]>()
        .ok_or_else(|| malformed("its data set encoding cannot be read"))?;
    let mut walker = Walker {
        buf,
        pos: 0,
        decoder,
        elements,
        has_pixel_data: false,
    };
    walker.dataset(End::Delimited, 0)?;
    Ok(walker.has_pixel_data)
}

fn inflate_bounded(compressed: &[u8]) -> Result<Vec<u8>, ScanError> {
    let mut out = Vec::new();
    let mut reader = flate2::read::DeflateDecoder::new(compressed).take(MAX_INFLATED_BYTES + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|_| malformed("its deflated data set is not a valid deflate stream"))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(malformed(&format!(
            "its deflated data set inflates to more than {MAX_INFLATED_BYTES} bytes"
        )));
    }
    Ok(out)
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    decoder: DynDecoder<&'a [u8]>,
    elements: usize,
    has_pixel_data: bool,
}

/// How far a data set or sequence reaches.
#[derive(Clone, Copy)]
enum End {
    /// Up to this offset of `buf` exactly.
    At(usize),
    /// Until a delimiter (item or sequence); the rest of `buf` at most.
    Delimited,
}

impl<'a> Walker<'a> {
    fn count(&mut self) -> Result<(), ScanError> {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(malformed(&format!(
                "it has more than {MAX_ELEMENTS} data elements and items"
            )));
        }
        Ok(())
    }

    fn limit(&self, end: End) -> usize {
        match end {
            End::At(at) => at,
            End::Delimited => self.buf.len(),
        }
    }

    /// Skips `len` value bytes, checking they are within `limit`.
    fn skip(&mut self, len: u32, limit: usize, what: &str) -> Result<(), ScanError> {
        let remaining = limit - self.pos;
        if len as usize > remaining {
            return Err(malformed(&format!(
                "{what} claims {len} bytes but only {remaining} remain in its container"
            )));
        }
        self.pos += len as usize;
        Ok(())
    }

    /// The file meta group, mirroring dicom-object: (0002,0000) first with a 4-byte value,
    /// then elements until that many bytes are read. Returns the transfer syntax UID.
    fn meta_group(&mut self) -> Result<String, ScanError> {
        let (header, _) = self.header(self.buf.len(), "the file meta group")?;
        if header.tag() != Tag(0x0002, 0x0000) || header.length().get() != Some(4) {
            return Err(malformed(
                "its file meta group does not start with a 4-byte group length (0002,0000)",
            ));
        }
        let value = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| truncated("the file meta group"))?;
        let group_length = u32::from_le_bytes([value[0], value[1], value[2], value[3]]) as usize;
        self.pos += 4;
        let start = self.pos;
        if group_length > self.buf.len() - start {
            return Err(malformed(&format!(
                "its file meta group claims {group_length} bytes but only {} remain",
                self.buf.len() - start
            )));
        }
        let mut transfer_syntax = None;
        while self.pos - start < group_length {
            self.count()?;
            let (header, _) = self.header(self.buf.len(), "the file meta group")?;
            let Some(len) = header.length().get() else {
                return Err(malformed(
                    "an element of its file meta group has an undefined length",
                ));
            };
            let value_start = self.pos;
            self.skip(len, self.buf.len(), "an element of the file meta group")?;
            if header.tag() == TRANSFER_SYNTAX_UID {
                let raw = &self.buf[value_start..self.pos];
                let uid = std::str::from_utf8(raw)
                    .ok()
                    .map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_owned())
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                    .ok_or_else(|| malformed("its transfer syntax UID is not a valid UID"))?;
                transfer_syntax = Some(uid);
            }
        }
        transfer_syntax.ok_or_else(|| malformed("its file meta group has no transfer syntax UID"))
    }

    fn header(
        &mut self,
        limit: usize,
        inside: &'static str,
    ) -> Result<(dicom_core::DataElementHeader, usize), ScanError> {
        let mut src: &'a [u8] = &self.buf[self.pos..limit];
        let before = src.len();
        let (header, _) = self
            .decoder
            .decode_header(&mut src)
            .map_err(|_| truncated(inside))?;
        self.pos += before - src.len();
        Ok((header, before - src.len()))
    }

    fn item_header(
        &mut self,
        limit: usize,
        inside: &'static str,
    ) -> Result<SequenceItemHeader, ScanError> {
        if limit - self.pos < 8 {
            return Err(truncated(inside));
        }
        let mut src: &'a [u8] = &self.buf[self.pos..limit];
        let before = src.len();
        let header = self
            .decoder
            .decode_item_header(&mut src)
            .map_err(|_| malformed(&format!("{inside} holds something other than an item")))?;
        self.pos += before - src.len();
        Ok(header)
    }

    /// A data set: the top level (`Delimited` = to the end of the buffer), an item of defined
    /// length (`At`) or an item of undefined length (`Delimited`, ends at an item delimiter).
    fn dataset(&mut self, end: End, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(malformed(&format!(
                "its sequences are nested more than {MAX_DEPTH} deep"
            )));
        }
        let limit = self.limit(end);
        loop {
            if self.pos == limit {
                return if depth == 0 || matches!(end, End::At(_)) {
                    Ok(())
                } else {
                    Err(truncated("a sequence item"))
                };
            }
            self.count()?;
            let (header, _) = self.header(limit, "a data element header")?;
            let tag = header.tag();
            if tag == ITEM_DELIMITER {
                if depth == 0 {
                    // dicom-rs ignores a stray item delimiter at the top level.
                    continue;
                }
                if matches!(end, End::Delimited) {
                    return Ok(());
                }
                return Err(malformed(
                    "an item of defined length contains an item delimiter",
                ));
            }
            if tag.group() == 0xFFFE {
                return Err(malformed(&format!(
                    "it has an item tag ({:04X},{:04X}) where a data element was expected",
                    tag.group(),
                    tag.element()
                )));
            }
            if depth == 0 && tag == PIXEL_DATA {
                self.has_pixel_data = true;
            }
            match header.length().get() {
                None if tag == PIXEL_DATA => self.fragments(limit)?,
                // dicom-rs reads any other element of undefined length as a sequence.
                None => self.sequence(End::Delimited, limit, depth + 1)?,
                Some(len) if header.vr() == VR::SQ => {
                    let at = self.pos;
                    self.skip(len, limit, "a sequence")?;
                    self.pos = at;
                    self.sequence(End::At(at + len as usize), limit, depth + 1)?;
                }
                Some(len) => {
                    // dicom-rs reads binary values in whole units but advances by the
                    // length: a UL of 2 bytes would leave it 2 bytes off, reading values
                    // as headers (one claimed gigabytes and was zero-filled).
                    let unit = value_unit(header.vr());
                    if len % unit != 0 {
                        return Err(malformed(&format!(
                            "data element ({:04X},{:04X}) has VR {} and a length of {len} \
                             bytes, not a multiple of {unit}",
                            tag.group(),
                            tag.element(),
                            header.vr().to_string()
                        )));
                    }
                    self.skip(
                        len,
                        limit,
                        &format!("data element ({:04X},{:04X})", tag.group(), tag.element()),
                    )?
                }
            }
        }
    }

    /// Items of a sequence, each a data set.
    fn sequence(&mut self, end: End, outer_limit: usize, depth: usize) -> Result<(), ScanError> {
        let limit = match end {
            End::At(at) => at,
            End::Delimited => outer_limit,
        };
        loop {
            if let End::At(at) = end {
                if self.pos == at {
                    return Ok(());
                }
            }
            self.count()?;
            match self.item_header(limit, "a sequence")? {
                SequenceItemHeader::Item { len } => match len.get() {
                    None => {
                        // An undefined-length item ends at its delimiter, inside our limit.
                        let saved = self.buf;
                        self.buf = &saved[..limit];
                        let result = self.dataset(End::Delimited, depth);
                        self.buf = saved;
                        result?;
                    }
                    Some(len) => {
                        let at = self.pos;
                        self.skip(len, limit, "a sequence item")?;
                        self.pos = at;
                        self.dataset(End::At(at + len as usize), depth)?;
                    }
                },
                SequenceItemHeader::SequenceDelimiter if matches!(end, End::Delimited) => {
                    return Ok(())
                }
                _ => return Err(malformed("a sequence has a misplaced delimiter")),
            }
        }
    }

    /// Encapsulated pixel data: items of defined length up to a sequence delimiter.
    fn fragments(&mut self, limit: usize) -> Result<(), ScanError> {
        loop {
            self.count()?;
            match self.item_header(limit, "the encapsulated pixel data")? {
                SequenceItemHeader::Item { len } => match len.get() {
                    Some(len) => self.skip(len, limit, "a pixel data fragment")?,
                    None => return Err(malformed("a pixel data fragment has an undefined length")),
                },
                SequenceItemHeader::SequenceDelimiter => return Ok(()),
                SequenceItemHeader::ItemDelimiter => {
                    return Err(malformed(
                        "the encapsulated pixel data has a misplaced item delimiter",
                    ))
                }
            }
        }
    }
}
