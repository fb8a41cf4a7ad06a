//! Preflight: what an upload is and how big its pages are, from headers only.
//!
//! Owns the header parsers for PNG (signature, IHDR, pHYs), JPEG (markers up to the frame
//! header, JFIF and simple EXIF density) and TIFF (the whole IFD chain).
//!
//! Promises:
//! - no pixel data is decoded and nothing is allocated in proportion to what a header
//!   *claims*: a PNG header announcing 60000x60000 pixels is rejected after reading 33 bytes;
//! - every page is checked against [`Limits`] before anyone decodes it, and a TIFF IFD chain
//!   is walked with a cycle guard and at most [`Limits::max_pages`] pages;
//! - anything [`crate::decode_page`] cannot decode (TIFF compression, photometric
//!   interpretation, sample layout, JPEG coding process) is rejected here already, so a
//!   scan that passes preflight fails later only if its compressed data is corrupt;
//! - errors say what is wrong with the structure, never anything about the content.

mod jpeg;
mod png;
pub(crate) mod tiff;

use std::io::{self, Read, Seek, SeekFrom};

use crate::{sniff, ScanError, ScanFormat, SNIFF_LEN};

/// Bounds on what an upload may contain; checked before any pixel is decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Width × height of any single page.
    pub max_pixels_per_page: u64,
    /// Pages in one file.
    pub max_pages: u32,
    /// Width or height of any single page.
    pub max_dimension: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels_per_page: 100_000_000,
            max_pages: 2000,
            max_dimension: 30_000,
        }
    }
}

/// Size and resolution of one page, as its header states them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageInfo {
    pub width: u32,
    pub height: u32,
    /// Horizontal and vertical dots per inch, when the file states them.
    pub dpi: Option<(f32, f32)>,
}

/// The result of a successful preflight (serialisable: it comes back from the decoder
/// process, see the `sandbox` module).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preflight {
    pub format: ScanFormat,
    /// One entry per page, in file order (never empty). A DICOM file has one page: its
    /// preview (0x0 when it has no pixel data).
    pub pages: Vec<PageInfo>,
    /// What a DICOM file says about itself.
    pub dicom: Option<crate::DicomInfo>,
}

/// Sniffs the format and reads every page header, enforcing `limits`.
///
/// The reader is rewound to its start first; it is read through (never copied to a file)
/// and only the header structures are read, seeking over everything else.
pub fn preflight<R: Read + Seek>(mut reader: R, limits: &Limits) -> Result<Preflight, ScanError> {
    let format = sniff_reader(&mut reader)?;
    if format == ScanFormat::Dicom {
        let info = crate::dicom_info(&read_whole(&mut reader)?, limits)?;
        let page = PageInfo {
            width: info.columns,
            height: info.rows,
            dpi: None,
        };
        return Ok(Preflight {
            format,
            pages: vec![page],
            dicom: Some(info),
        });
    }
    let pages = match format {
        ScanFormat::Png => vec![png::read_header(&mut reader, limits)?],
        ScanFormat::Jpeg => vec![jpeg::read_header(&mut reader, limits)?],
        ScanFormat::Tiff => tiff::read_pages(&mut reader, limits, None)?
            .into_iter()
            .map(|page| page.info)
            .collect(),
        ScanFormat::Pdf => {
            let pdf = crate::PdfFile::open(read_whole(&mut reader)?, limits)?;
            (0..pdf.page_count())
                .map(|index| pdf.page_info(index, limits))
                .collect::<Result<_, _>>()?
        }
        ScanFormat::Dicom => unreachable!("handled above"),
    };
    Ok(Preflight {
        format,
        pages,
        dicom: None,
    })
}

/// The whole file from its start (PDF needs random access to all of it; the upload limit
/// bounds its size).
///
/// The buffer is reserved at the file's size up front: grown by doubling it would reserve
/// up to twice the file, which counts against the decoder process's memory ceiling.
pub(crate) fn read_whole<R: Read + Seek>(reader: &mut R) -> Result<Vec<u8>, ScanError> {
    let len = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    // If the reservation fails, reading grows the buffer as it goes (and fails the same way).
    let _ = bytes.try_reserve_exact(usize::try_from(len).unwrap_or(0));
    reader.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Rewinds and sniffs; leaves the reader at an unspecified position.
pub(crate) fn sniff_reader<R: Read + Seek>(reader: &mut R) -> Result<ScanFormat, ScanError> {
    reader.seek(SeekFrom::Start(0))?;
    let mut first = [0u8; SNIFF_LEN];
    let mut filled = 0;
    while filled < first.len() {
        match reader.read(&mut first[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        }
    }
    if filled == 0 {
        return Err(ScanError::Empty);
    }
    sniff(&first[..filled]).ok_or(ScanError::UnknownFormat)
}

/// Checks one page's size against the limits. `page` is 1-based.
pub(crate) fn check_page_size(
    format: ScanFormat,
    page: usize,
    width: u32,
    height: u32,
    limits: &Limits,
) -> Result<(), ScanError> {
    if width == 0 || height == 0 {
        return Err(ScanError::EmptyPage {
            format,
            page,
            width,
            height,
        });
    }
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(ScanError::DimensionTooLarge {
            format,
            page,
            width,
            height,
            limit: limits.max_dimension,
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels_per_page {
        return Err(ScanError::TooManyPixels {
            format,
            page,
            width,
            height,
            limit: limits.max_pixels_per_page,
        });
    }
    Ok(())
}

/// `read_exact` that reports running out of bytes as a truncated `structure`.
pub(crate) fn read_exact_or_truncated<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    format: ScanFormat,
    structure: &'static str,
) -> Result<(), ScanError> {
    reader.read_exact(buf).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            ScanError::Truncated { format, structure }
        } else {
            ScanError::Io(error)
        }
    })
}

/// A resolution pair, or `None` unless both are finite and positive.
pub(crate) fn plausible_dpi(x: f64, y: f64) -> Option<(f32, f32)> {
    let plausible = |v: f64| v.is_finite() && v > 0.0 && v < 1.0e6;
    (plausible(x) && plausible(y)).then_some((x as f32, y as f32))
}
