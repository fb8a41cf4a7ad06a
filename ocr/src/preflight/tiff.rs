//! TIFF header reading: walks the IFD chain (classic and BigTIFF, both byte orders), reading
//! only the tags that size a page and decide whether [`crate::decode_page`] can decode it.
//!
//! The walk keeps a set of visited IFD offsets (a chain that loops is malformed) and stops
//! with [`ScanError::TooManyPages`] once [`Limits::max_pages`] pages were read. Every IFD's
//! entries are read one at a time and only a handful of tags are kept, so memory stays
//! constant whatever the file claims. The same IFD reader parses the TIFF inside a JPEG's
//! EXIF segment.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};

use super::{check_page_size, plausible_dpi, read_exact_or_truncated, Limits, PageInfo};
use crate::{ScanError, ScanFormat};

const FORMAT: ScanFormat = ScanFormat::Tiff;

const TAG_IMAGE_WIDTH: u16 = 256;
const TAG_IMAGE_LENGTH: u16 = 257;
const TAG_BITS_PER_SAMPLE: u16 = 258;
const TAG_COMPRESSION: u16 = 259;
const TAG_PHOTOMETRIC: u16 = 262;
const TAG_SAMPLES_PER_PIXEL: u16 = 277;
const TAG_X_RESOLUTION: u16 = 282;
const TAG_Y_RESOLUTION: u16 = 283;
const TAG_PLANAR_CONFIGURATION: u16 = 284;
const TAG_RESOLUTION_UNIT: u16 = 296;
const TAG_SAMPLE_FORMAT: u16 = 339;

const KEPT_TAGS: [u16; 11] = [
    TAG_IMAGE_WIDTH,
    TAG_IMAGE_LENGTH,
    TAG_BITS_PER_SAMPLE,
    TAG_COMPRESSION,
    TAG_PHOTOMETRIC,
    TAG_SAMPLES_PER_PIXEL,
    TAG_X_RESOLUTION,
    TAG_Y_RESOLUTION,
    TAG_PLANAR_CONFIGURATION,
    TAG_RESOLUTION_UNIT,
    TAG_SAMPLE_FORMAT,
];

/// More samples per pixel than any layout we decode; bounds what is read for per-sample tags.
const MAX_SAMPLES: u64 = 16;
/// Classic TIFF cannot have more entries in an IFD; BigTIFF is held to the same bound.
const MAX_IFD_ENTRIES: u64 = u16::MAX as u64;

pub(crate) const PHOTOMETRIC_WHITE_IS_ZERO: u16 = 0;
pub(crate) const PHOTOMETRIC_BLACK_IS_ZERO: u16 = 1;
pub(crate) const PHOTOMETRIC_RGB: u16 = 2;

/// One TIFF page as preflight read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TiffPage {
    pub info: PageInfo,
    pub compression: u16,
    pub photometric: u16,
    pub bits_per_sample: u16,
    pub samples_per_pixel: u16,
}

/// Reads the pages of a TIFF, rewinding first. With `up_to_index`, stops after that 0-based
/// page (the result is shorter if the file has fewer pages).
pub(crate) fn read_pages<R: Read + Seek>(
    reader: &mut R,
    limits: &Limits,
    up_to_index: Option<usize>,
) -> Result<Vec<TiffPage>, ScanError> {
    reader.seek(SeekFrom::Start(0))?;
    let mut header = [0u8; 8];
    read_exact_or_truncated(reader, &mut header, FORMAT, "the TIFF header")?;
    let big_endian = match &header[0..2] {
        b"II" => false,
        b"MM" => true,
        _ => return Err(malformed("the byte-order mark is neither II nor MM")),
    };
    let mut ifd_reader = IfdReader {
        reader,
        big_endian,
        bigtiff: false,
    };
    let version = ifd_reader.u16_from(&header[2..4]);
    let mut next_offset = match version {
        42 => u64::from(ifd_reader.u32_from(&header[4..8])),
        43 => {
            ifd_reader.bigtiff = true;
            if ifd_reader.u16_from(&header[4..6]) != 8 || ifd_reader.u16_from(&header[6..8]) != 0 {
                return Err(malformed(
                    "the BigTIFF header has an unsupported offset size",
                ));
            }
            let mut offset = [0u8; 8];
            read_exact_or_truncated(ifd_reader.reader, &mut offset, FORMAT, "the TIFF header")?;
            ifd_reader.u64_from(&offset)
        }
        other => {
            return Err(malformed(format!(
                "the version number is {other}, not 42 or 43"
            )))
        }
    };

    let mut pages = Vec::new();
    let mut visited = HashSet::new();
    while next_offset != 0 {
        if up_to_index.is_some_and(|index| pages.len() > index) {
            break;
        }
        let page_number = pages.len() + 1;
        if pages.len() >= limits.max_pages as usize {
            return Err(ScanError::TooManyPages {
                format: FORMAT,
                limit: limits.max_pages,
            });
        }
        if !visited.insert(next_offset) {
            return Err(malformed(format!(
                "the directory of page {page_number} points back to an earlier directory (a loop)"
            )));
        }
        if next_offset < 8 {
            return Err(malformed(format!(
                "the directory of page {page_number} starts inside the file header"
            )));
        }
        let ifd = ifd_reader.read_ifd(next_offset)?;
        pages.push(ifd_reader.page(&ifd, page_number, limits)?);
        next_offset = ifd.next;
    }
    if pages.is_empty() {
        return Err(ScanError::NoPages { format: FORMAT });
    }
    Ok(pages)
}

/// The resolution stated by the first IFD of the TIFF structure in `tiff_bytes` (an EXIF
/// payload), or `None` when it states none or is not simple to read.
pub(crate) fn exif_density(tiff_bytes: &[u8]) -> Option<(f32, f32)> {
    let mut cursor = std::io::Cursor::new(tiff_bytes);
    let big_endian = match tiff_bytes.get(0..2)? {
        b"II" => false,
        b"MM" => true,
        _ => return None,
    };
    let mut ifd_reader = IfdReader {
        reader: &mut cursor,
        big_endian,
        bigtiff: false,
    };
    if ifd_reader.u16_from(tiff_bytes.get(2..4)?) != 42 {
        return None;
    }
    let offset = u64::from(ifd_reader.u32_from(tiff_bytes.get(4..8)?));
    let ifd = ifd_reader.read_ifd(offset).ok()?;
    ifd_reader.resolution(&ifd).ok()?
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u16,
    kind: u16,
    count: u64,
    /// The value field: inline data, or the offset of the data.
    value: [u8; 8],
}

struct Ifd {
    entries: Vec<Entry>,
    next: u64,
}

impl Ifd {
    fn find(&self, tag: u16) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.tag == tag)
    }
}

struct IfdReader<'r, R> {
    reader: &'r mut R,
    big_endian: bool,
    bigtiff: bool,
}

impl<R: Read + Seek> IfdReader<'_, R> {
    fn read_ifd(&mut self, offset: u64) -> Result<Ifd, ScanError> {
        const STRUCTURE: &str = "an image file directory";
        self.reader.seek(SeekFrom::Start(offset))?;
        let count = if self.bigtiff {
            let mut bytes = [0u8; 8];
            read_exact_or_truncated(self.reader, &mut bytes, FORMAT, STRUCTURE)?;
            self.u64_from(&bytes)
        } else {
            let mut bytes = [0u8; 2];
            read_exact_or_truncated(self.reader, &mut bytes, FORMAT, STRUCTURE)?;
            u64::from(self.u16_from(&bytes))
        };
        if count > MAX_IFD_ENTRIES {
            return Err(malformed(format!("a directory claims {count} entries")));
        }
        let mut entries = Vec::new();
        let mut raw = [0u8; 20];
        let entry_len = if self.bigtiff { 20 } else { 12 };
        for _ in 0..count {
            let raw = &mut raw[..entry_len];
            read_exact_or_truncated(self.reader, raw, FORMAT, STRUCTURE)?;
            let tag = self.u16_from(&raw[0..2]);
            if !KEPT_TAGS.contains(&tag) || entries.iter().any(|e: &Entry| e.tag == tag) {
                continue;
            }
            let kind = self.u16_from(&raw[2..4]);
            let mut value = [0u8; 8];
            let count = if self.bigtiff {
                value.copy_from_slice(&raw[12..20]);
                self.u64_from(&raw[4..12])
            } else {
                value[..4].copy_from_slice(&raw[8..12]);
                u64::from(self.u32_from(&raw[4..8]))
            };
            entries.push(Entry {
                tag,
                kind,
                count,
                value,
            });
        }
        let next = if self.bigtiff {
            let mut bytes = [0u8; 8];
            read_exact_or_truncated(self.reader, &mut bytes, FORMAT, STRUCTURE)?;
            self.u64_from(&bytes)
        } else {
            let mut bytes = [0u8; 4];
            read_exact_or_truncated(self.reader, &mut bytes, FORMAT, STRUCTURE)?;
            u64::from(self.u32_from(&bytes))
        };
        Ok(Ifd { entries, next })
    }

    /// Validates one IFD as a page this crate can decode. `page` is 1-based.
    fn page(&mut self, ifd: &Ifd, page: usize, limits: &Limits) -> Result<TiffPage, ScanError> {
        let width = self.required_uint(ifd, TAG_IMAGE_WIDTH, "ImageWidth", page)?;
        let height = self.required_uint(ifd, TAG_IMAGE_LENGTH, "ImageLength", page)?;
        check_page_size(FORMAT, page, width, height, limits)?;

        let compression = self.optional_uint(ifd, TAG_COMPRESSION, 1)?;
        let samples_per_pixel = self.optional_uint(ifd, TAG_SAMPLES_PER_PIXEL, 1)?;
        let bits = self.uints(ifd, TAG_BITS_PER_SAMPLE, MAX_SAMPLES)?;
        let bits_per_sample = match bits.as_deref() {
            None | Some([]) => 1,
            Some([first, rest @ ..]) if rest.iter().all(|b| b == first) => *first,
            Some(_) => {
                return Err(layout(page, "samples of different bit depths".into()));
            }
        };
        let planar = self.optional_uint(ifd, TAG_PLANAR_CONFIGURATION, 1)?;
        let sample_format = self
            .uints(ifd, TAG_SAMPLE_FORMAT, MAX_SAMPLES)?
            .and_then(|formats| formats.first().copied())
            .unwrap_or(1);
        let photometric = match ifd.find(TAG_PHOTOMETRIC) {
            Some(entry) => self.first_uint(entry)?,
            None => {
                return Err(ScanError::UnsupportedPhotometric {
                    page,
                    name: "(the tag is missing)".into(),
                })
            }
        };
        let photometric =
            u16::try_from(photometric).map_err(|_| malformed("photometric value out of range"))?;
        let compression =
            u16::try_from(compression).map_err(|_| malformed("compression value out of range"))?;
        let bits_per_sample = u16::try_from(bits_per_sample)
            .map_err(|_| malformed("bits per sample out of range"))?;
        let samples_per_pixel = u16::try_from(samples_per_pixel)
            .map_err(|_| malformed("samples per pixel out of range"))?;

        if !matches!(compression, 1 | 4 | 5 | 8 | 32773 | 32946) {
            return Err(ScanError::UnsupportedCompression {
                page,
                code: compression,
                name: compression_name(compression),
            });
        }
        match photometric {
            PHOTOMETRIC_WHITE_IS_ZERO | PHOTOMETRIC_BLACK_IS_ZERO => {
                if samples_per_pixel != 1 || !matches!(bits_per_sample, 1 | 2 | 4 | 8 | 16) {
                    return Err(layout(
                        page,
                        format!(
                            "grayscale with {samples_per_pixel} samples of {bits_per_sample} bits"
                        ),
                    ));
                }
            }
            PHOTOMETRIC_RGB => {
                if !matches!(samples_per_pixel, 3 | 4) || !matches!(bits_per_sample, 8 | 16) {
                    return Err(layout(
                        page,
                        format!("RGB with {samples_per_pixel} samples of {bits_per_sample} bits"),
                    ));
                }
            }
            other => {
                return Err(ScanError::UnsupportedPhotometric {
                    page,
                    name: photometric_name(other),
                })
            }
        }
        if compression == 4 && (bits_per_sample != 1 || samples_per_pixel != 1) {
            return Err(layout(
                page,
                "CCITT Group 4 with more than one bit per pixel".into(),
            ));
        }
        if planar != 1 && samples_per_pixel > 1 {
            return Err(layout(page, "planar (separate) colour planes".into()));
        }
        if sample_format != 1 {
            return Err(layout(
                page,
                format!("sample format {sample_format} (only unsigned integers are supported)"),
            ));
        }

        let dpi = self.resolution(ifd)?;
        Ok(TiffPage {
            info: PageInfo { width, height, dpi },
            compression,
            photometric,
            bits_per_sample,
            samples_per_pixel,
        })
    }

    fn resolution(&mut self, ifd: &Ifd) -> Result<Option<(f32, f32)>, ScanError> {
        let (Some(x_entry), Some(y_entry)) =
            (ifd.find(TAG_X_RESOLUTION), ifd.find(TAG_Y_RESOLUTION))
        else {
            return Ok(None);
        };
        let unit = self.optional_uint(ifd, TAG_RESOLUTION_UNIT, 2)?;
        let per_inch = match unit {
            2 => 1.0,
            3 => 2.54,
            _ => return Ok(None),
        };
        let (Some(x), Some(y)) = (self.real(x_entry)?, self.real(y_entry)?) else {
            return Ok(None);
        };
        Ok(plausible_dpi(x * per_inch, y * per_inch))
    }

    fn required_uint(
        &mut self,
        ifd: &Ifd,
        tag: u16,
        name: &str,
        page: usize,
    ) -> Result<u32, ScanError> {
        let entry = ifd
            .find(tag)
            .ok_or_else(|| malformed(format!("page {page} has no {name} tag")))?;
        let value = self.first_uint(entry)?;
        u32::try_from(value).map_err(|_| malformed(format!("page {page} has {name} {value}")))
    }

    fn optional_uint(&mut self, ifd: &Ifd, tag: u16, default: u64) -> Result<u64, ScanError> {
        match ifd.find(tag) {
            Some(entry) => self.first_uint(entry),
            None => Ok(default),
        }
    }

    fn first_uint(&mut self, entry: &Entry) -> Result<u64, ScanError> {
        let values = self.uint_values(entry, 1)?;
        values
            .first()
            .copied()
            .ok_or_else(|| malformed(format!("tag {} has no value", entry.tag)))
    }

    fn uints(&mut self, ifd: &Ifd, tag: u16, max: u64) -> Result<Option<Vec<u64>>, ScanError> {
        match ifd.find(tag) {
            Some(entry) => {
                if entry.count > max {
                    return Err(malformed(format!(
                        "tag {tag} has {} values, more than {max}",
                        entry.count
                    )));
                }
                self.uint_values(entry, max).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The first `min(count, max)` values of an integer-typed entry.
    fn uint_values(&mut self, entry: &Entry, max: u64) -> Result<Vec<u64>, ScanError> {
        let size = match entry.kind {
            1 => 1,  // BYTE
            3 => 2,  // SHORT
            4 => 4,  // LONG
            16 => 8, // LONG8
            other => {
                return Err(malformed(format!(
                    "tag {} has type {other}, not an unsigned integer",
                    entry.tag
                )))
            }
        };
        let count = entry.count.min(max);
        let bytes = self.entry_bytes(entry, size, count)?;
        Ok(bytes
            .chunks_exact(size)
            .map(|chunk| match size {
                1 => u64::from(chunk[0]),
                2 => u64::from(self.u16_from(chunk)),
                4 => u64::from(self.u32_from(chunk)),
                _ => self.u64_from(chunk),
            })
            .collect())
    }

    /// A RATIONAL (or integer) value as a real number; `None` for a zero denominator.
    fn real(&mut self, entry: &Entry) -> Result<Option<f64>, ScanError> {
        if entry.kind != 5 {
            return Ok(Some(self.first_uint(entry)? as f64));
        }
        let bytes = self.entry_bytes(entry, 8, 1)?;
        let numerator = self.u32_from(&bytes[0..4]);
        let denominator = self.u32_from(&bytes[4..8]);
        Ok((denominator != 0).then(|| f64::from(numerator) / f64::from(denominator)))
    }

    /// The bytes of the first `count` values of `size` bytes each (`count` is small).
    fn entry_bytes(
        &mut self,
        entry: &Entry,
        size: usize,
        count: u64,
    ) -> Result<Vec<u8>, ScanError> {
        if entry.count < count {
            return Err(malformed(format!("tag {} has too few values", entry.tag)));
        }
        let wanted = size * usize::try_from(count).expect("count is bounded by MAX_SAMPLES");
        let total = u64::try_from(size)
            .expect("size is at most 8")
            .saturating_mul(entry.count);
        let inline_len = if self.bigtiff { 8 } else { 4 };
        if total <= inline_len {
            return Ok(entry.value[..wanted].to_vec());
        }
        let offset = if self.bigtiff {
            self.u64_from(&entry.value)
        } else {
            u64::from(self.u32_from(&entry.value[..4]))
        };
        self.reader.seek(SeekFrom::Start(offset))?;
        let mut bytes = vec![0u8; wanted];
        read_exact_or_truncated(self.reader, &mut bytes, FORMAT, "a tag value")?;
        Ok(bytes)
    }

    fn u16_from(&self, bytes: &[u8]) -> u16 {
        let array = bytes[..2].try_into().expect("callers pass 2 bytes");
        if self.big_endian {
            u16::from_be_bytes(array)
        } else {
            u16::from_le_bytes(array)
        }
    }

    fn u32_from(&self, bytes: &[u8]) -> u32 {
        let array = bytes[..4].try_into().expect("callers pass 4 bytes");
        if self.big_endian {
            u32::from_be_bytes(array)
        } else {
            u32::from_le_bytes(array)
        }
    }

    fn u64_from(&self, bytes: &[u8]) -> u64 {
        let array = bytes[..8].try_into().expect("callers pass 8 bytes");
        if self.big_endian {
            u64::from_be_bytes(array)
        } else {
            u64::from_le_bytes(array)
        }
    }
}

fn malformed(detail: impl Into<String>) -> ScanError {
    ScanError::Malformed {
        format: FORMAT,
        detail: detail.into(),
    }
}

fn layout(page: usize, detail: String) -> ScanError {
    ScanError::UnsupportedPixelLayout {
        format: FORMAT,
        page,
        detail,
    }
}

fn compression_name(code: u16) -> &'static str {
    match code {
        1 => "none",
        2 => "CCITT modified Huffman (RLE)",
        3 => "CCITT Group 3",
        4 => "CCITT Group 4",
        5 => "LZW",
        6 => "old-style JPEG",
        7 => "JPEG",
        8 | 32946 => "Deflate",
        32773 => "PackBits",
        34661 => "JBIG",
        34712 => "JPEG 2000",
        34925 => "LZMA",
        50000 => "Zstandard",
        50001 => "WebP",
        _ => "unknown",
    }
}

fn photometric_name(code: u16) -> String {
    match code {
        3 => "palette colour".into(),
        4 => "transparency mask".into(),
        5 => "separated (CMYK)".into(),
        6 => "YCbCr".into(),
        8 => "CIE L*a*b*".into(),
        other => format!("with code {other}"),
    }
}
