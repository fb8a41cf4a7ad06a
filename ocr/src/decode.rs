//! Decoding one page of a scan to 8-bit grayscale pixels, in Rust.
//!
//! Decoders: PNG and JPEG through the `image` crate (`png`, `zune-jpeg`); TIFF through the
//! `tiff` crate (uncompressed, PackBits, LZW, Deflate, CCITT Group 4 via `fax`).
//!
//! Promises:
//! - the page's header is preflighted against [`Limits`] before any pixel buffer exists, and
//!   the decoders run with memory limits derived from those limits, so a decompression bomb
//!   fails instead of allocating;
//! - the reader is read through directly (it is usually a decrypting reader); nothing is
//!   written to a temporary file;
//! - the result is "ink dark, paper light": 0 is black and 255 white whatever the file's
//!   photometric interpretation (the `tiff` crate maps WhiteIsZero to BlackIsZero), and
//!   transparent pixels are composited onto white paper;
//! - EXIF orientation is not applied (orientation is detected on the pixels later).

use std::io::{BufReader, Read, Seek, SeekFrom};

use image::{DynamicImage, GrayImage};
use tiff::decoder::{Decoder as TiffDecoder, DecodingResult};

use crate::preflight::tiff::{read_pages, TiffPage, PHOTOMETRIC_RGB};
use crate::preflight::{self, sniff_reader, Limits, PageInfo};
use crate::{ScanError, ScanFormat};

/// One decoded page.
#[derive(Debug, Clone)]
pub struct DecodedPage {
    /// 8-bit grayscale, 0 = black.
    pub image: GrayImage,
    /// Horizontal and vertical dots per inch, when the file states them.
    pub dpi: Option<(f32, f32)>,
    /// The page's own text with word boxes in `image` pixels (a PDF's born-digital text or
    /// OCR layer, or a DICOM file's indexed attributes): such a page needs no OCR.
    pub text_layer: Option<crate::PageOcr>,
    /// Why the page has no real image (a DICOM file whose pixel data is not decoded: the
    /// image is then a blank placeholder).
    pub no_image: Option<String>,
}

/// Decodes page `page_index` (0-based) of a scan of the given format to grayscale.
///
/// The reader is rewound first. For a TIFF, the IFD chain is walked (and checked) up to the
/// requested page, so decoding every page of an n-page TIFF reads O(n²) directory entries:
/// negligible next to the pixel work for the page counts [`Limits`] allows.
pub fn decode_page<R: Read + Seek>(
    mut reader: R,
    format: ScanFormat,
    page_index: usize,
    limits: &Limits,
) -> Result<DecodedPage, ScanError> {
    let sniffed = sniff_reader(&mut reader)?;
    if sniffed != format {
        return Err(ScanError::Malformed {
            format,
            detail: format!("the content is {sniffed}, not {format}"),
        });
    }
    match format {
        ScanFormat::Png | ScanFormat::Jpeg => {
            if page_index != 0 {
                return Err(ScanError::PageOutOfRange {
                    requested: page_index.saturating_add(1),
                    pages: 1,
                });
            }
            let info = preflight::preflight(&mut reader, limits)?.pages[0];
            reader.seek(SeekFrom::Start(0))?;
            let image = decode_with_image_crate(reader, format, limits)?;
            Ok(DecodedPage {
                image,
                dpi: info.dpi,
                text_layer: None,
                no_image: None,
            })
        }
        ScanFormat::Pdf | ScanFormat::Dicom => {
            PageReader::open(reader, format, limits)?.decode(page_index)
        }
        ScanFormat::Tiff => {
            let pages = read_pages(&mut reader, limits, Some(page_index))?;
            let Some(page) = pages.get(page_index).copied() else {
                return Err(ScanError::PageOutOfRange {
                    requested: page_index.saturating_add(1),
                    pages: pages.len(),
                });
            };
            reader.seek(SeekFrom::Start(0))?;
            let image = decode_tiff_page(reader, page_index, &page, limits)?;
            Ok(DecodedPage {
                image,
                dpi: page.info.dpi,
                text_layer: None,
                no_image: None,
            })
        }
    }
}

/// The largest decoded buffer a page may need: every allowed pixel at `bytes_per_pixel`,
/// plus a little for row padding.
fn decoder_budget(limits: &Limits, bytes_per_pixel: u64) -> u64 {
    limits
        .max_pixels_per_page
        .saturating_mul(bytes_per_pixel)
        .saturating_add(1 << 20)
}

fn decode_with_image_crate<R: Read + Seek>(
    reader: R,
    format: ScanFormat,
    limits: &Limits,
) -> Result<GrayImage, ScanError> {
    let image_format = match format {
        ScanFormat::Png => image::ImageFormat::Png,
        ScanFormat::Jpeg => image::ImageFormat::Jpeg,
        ScanFormat::Tiff | ScanFormat::Pdf | ScanFormat::Dicom => {
            unreachable!("TIFF, PDF and DICOM have decoders of their own")
        }
    };
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_dimension);
    decoder_limits.max_image_height = Some(limits.max_dimension);
    // RGBA with 16 bits per sample is the widest pixel either decoder produces.
    decoder_limits.max_alloc = Some(decoder_budget(limits, 8));
    let mut image_reader = image::ImageReader::with_format(BufReader::new(reader), image_format);
    image_reader.limits(decoder_limits);
    let decoded = image_reader.decode().map_err(|error| match error {
        image::ImageError::Limits(limit) => ScanError::DecoderLimit {
            format,
            page: 1,
            detail: limit.to_string(),
        },
        image::ImageError::IoError(io) => ScanError::Io(io),
        other => ScanError::Decode {
            format,
            page: 1,
            detail: other.to_string(),
        },
    })?;
    Ok(to_gray_on_white(decoded))
}

/// Grayscale, with any alpha channel composited onto white paper.
fn to_gray_on_white(image: DynamicImage) -> GrayImage {
    if !image.color().has_alpha() {
        return image.to_luma8();
    }
    let luma_alpha = image.to_luma_alpha8();
    let (width, height) = luma_alpha.dimensions();
    let pixels = luma_alpha
        .pixels()
        .map(|pixel| over_white(pixel.0[0], pixel.0[1]))
        .collect();
    GrayImage::from_raw(width, height, pixels).expect("one byte per pixel of the source")
}

fn over_white(luma: u8, alpha: u8) -> u8 {
    let (luma, alpha) = (u32::from(luma), u32::from(alpha));
    ((luma * alpha + 255 * (255 - alpha) + 127) / 255) as u8
}

fn rec601_luma(red: u32, green: u32, blue: u32) -> u8 {
    ((red * 299 + green * 587 + blue * 114 + 500) / 1000) as u8
}

fn decode_tiff_page<R: Read + Seek>(
    reader: R,
    page_index: usize,
    page: &TiffPage,
    limits: &Limits,
) -> Result<GrayImage, ScanError> {
    let mut decoder = tiff_decoder(reader, std::slice::from_ref(page), limits)?;
    read_tiff_page(&mut decoder, page_index, page)
}

type TiffReader<R> = TiffDecoder<BufReader<R>>;

fn tiff_error(page_number: usize) -> impl Fn(tiff::TiffError) -> ScanError {
    let format = ScanFormat::Tiff;
    move |error| match error {
        tiff::TiffError::LimitsExceeded => ScanError::DecoderLimit {
            format,
            page: page_number,
            detail: "the page's decoded size exceeds the configured limits".into(),
        },
        tiff::TiffError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
            ScanError::Io(io)
        }
        other => ScanError::Decode {
            format,
            page: page_number,
            detail: other.to_string(),
        },
    }
}

/// A TIFF decoder whose memory limit fits the widest of `pages`.
fn tiff_decoder<R: Read + Seek>(
    mut reader: R,
    pages: &[TiffPage],
    limits: &Limits,
) -> Result<TiffReader<R>, ScanError> {
    reader.seek(SeekFrom::Start(0))?;
    let widest = pages
        .iter()
        .map(|page| u64::from(page.bits_per_sample) * u64::from(page.samples_per_pixel))
        .max()
        .unwrap_or(8);
    let mut tiff_limits = tiff::decoder::Limits::default();
    let budget = decoder_budget(limits, widest.div_ceil(8));
    tiff_limits.decoding_buffer_size = usize::try_from(budget).unwrap_or(usize::MAX);
    Ok(TiffDecoder::new(BufReader::new(reader))
        .map_err(tiff_error(1))?
        .with_limits(tiff_limits))
}

/// Decodes page `page_index` with an open decoder. The decoder remembers the directory
/// offsets it has passed, so reading the pages of a file in order reads each directory once.
fn read_tiff_page<R: Read + Seek>(
    decoder: &mut TiffReader<R>,
    page_index: usize,
    page: &TiffPage,
) -> Result<GrayImage, ScanError> {
    let page_number = page_index + 1;
    let format = ScanFormat::Tiff;
    let map_error = tiff_error(page_number);
    decoder.seek_to_image(page_index).map_err(&map_error)?;
    let (width, height) = decoder.dimensions().map_err(&map_error)?;
    if (width, height) != (page.info.width, page.info.height) {
        return Err(ScanError::Malformed {
            format,
            detail: format!("page {page_number} has inconsistent dimensions"),
        });
    }
    let decoded = decoder.read_image().map_err(&map_error)?;
    let samples = usize::from(page.samples_per_pixel);
    let pixels = match decoded {
        DecodingResult::U8(data) if page.photometric == PHOTOMETRIC_RGB => {
            rgb_to_gray(&data, width, height, samples, u32::from)
        }
        DecodingResult::U16(data) if page.photometric == PHOTOMETRIC_RGB => {
            rgb_to_gray(&data, width, height, samples, |v| u32::from(v >> 8))
        }
        DecodingResult::U8(data) => {
            unpack_gray(&data, width, height, u32::from(page.bits_per_sample))
        }
        DecodingResult::U16(data) => data.iter().map(|&v| (v >> 8) as u8).collect(),
        _ => {
            return Err(ScanError::UnsupportedPixelLayout {
                format,
                page: page_number,
                detail: "the decoder produced samples wider than 16 bits".into(),
            })
        }
    };
    GrayImage::from_raw(width, height, pixels).ok_or_else(|| ScanError::Decode {
        format,
        page: page_number,
        detail: "the decoded data is shorter than the page".into(),
    })
}

/// The pages of one scan, decoded from a single open reader: for a TIFF one pass over the
/// directory chain at [`PageReader::open`] (the preflight), then one decoder that moves from
/// page to page; for a PDF the parsed file, rendering one page at a time. Memory holds one
/// decoded page at a time, whatever the page count.
pub struct PageReader<R: Read + Seek> {
    format: ScanFormat,
    limits: Limits,
    source: Source<R>,
}

enum Source<R: Read + Seek> {
    /// PNG and JPEG: one page; the reader, until it is decoded.
    Single {
        reader: Option<R>,
        info: PageInfo,
    },
    Tiff {
        decoder: Box<TiffReader<R>>,
        pages: Vec<TiffPage>,
    },
    Pdf(crate::PdfFile),
    /// The whole file: its one page is read from it at once.
    Dicom(Vec<u8>),
}

impl<R: Read + Seek> PageReader<R> {
    /// Sniffs and preflights the whole file (every page against `limits`), then gets ready to
    /// decode. Fails with the preflight's error.
    pub fn open(
        mut reader: R,
        format: ScanFormat,
        limits: &Limits,
    ) -> Result<PageReader<R>, ScanError> {
        let sniffed = sniff_reader(&mut reader)?;
        if sniffed != format {
            return Err(ScanError::Malformed {
                format,
                detail: format!("the content is {sniffed}, not {format}"),
            });
        }
        let source = match format {
            ScanFormat::Png | ScanFormat::Jpeg => {
                let info = preflight::preflight(&mut reader, limits)?.pages[0];
                Source::Single {
                    reader: Some(reader),
                    info,
                }
            }
            ScanFormat::Tiff => {
                let pages = read_pages(&mut reader, limits, None)?;
                let decoder = Box::new(tiff_decoder(reader, &pages, limits)?);
                Source::Tiff { decoder, pages }
            }
            ScanFormat::Pdf => Source::Pdf(crate::PdfFile::open(
                preflight::read_whole(&mut reader)?,
                limits,
            )?),
            ScanFormat::Dicom => {
                let bytes = preflight::read_whole(&mut reader)?;
                crate::dicom_info(&bytes, limits)?;
                Source::Dicom(bytes)
            }
        };
        Ok(PageReader {
            format,
            limits: limits.clone(),
            source,
        })
    }

    pub fn page_count(&self) -> usize {
        match &self.source {
            Source::Single { .. } => 1,
            Source::Tiff { pages, .. } => pages.len(),
            Source::Pdf(pdf) => pdf.page_count(),
            Source::Dicom(_) => 1,
        }
    }

    /// Decodes page `page_index` (0-based). Pages are cheapest read in order; a PNG or JPEG
    /// page can be decoded once.
    pub fn decode(&mut self, page_index: usize) -> Result<DecodedPage, ScanError> {
        let pages = self.page_count();
        if page_index >= pages {
            return Err(ScanError::PageOutOfRange {
                requested: page_index.saturating_add(1),
                pages,
            });
        }
        match &mut self.source {
            Source::Single { reader, info } => {
                let mut reader = reader.take().ok_or_else(|| ScanError::Malformed {
                    format: self.format,
                    detail: "the page was decoded already".into(),
                })?;
                reader.seek(SeekFrom::Start(0))?;
                let image = decode_with_image_crate(reader, self.format, &self.limits)?;
                Ok(DecodedPage {
                    image,
                    dpi: info.dpi,
                    text_layer: None,
                    no_image: None,
                })
            }
            Source::Tiff { decoder, pages } => {
                let page = pages[page_index];
                let image = read_tiff_page(decoder, page_index, &page)?;
                Ok(DecodedPage {
                    image,
                    dpi: page.info.dpi,
                    text_layer: None,
                    no_image: None,
                })
            }
            Source::Pdf(pdf) => {
                let page = pdf.page(page_index, &self.limits)?;
                Ok(DecodedPage {
                    image: page.image,
                    dpi: Some(page.dpi),
                    text_layer: page.text_layer,
                    no_image: None,
                })
            }
            Source::Dicom(bytes) => {
                let (info, preview) = crate::dicom_read(bytes, &self.limits)?;
                let text = info.searchable_text();
                let (image, no_image) = match preview {
                    Ok(image) => (image, None),
                    Err(error) => (
                        GrayImage::from_pixel(256, 256, image::Luma([255])),
                        Some(error.to_string()),
                    ),
                };
                Ok(DecodedPage {
                    image,
                    dpi: None,
                    text_layer: Some(crate::PageOcr {
                        text,
                        words: Vec::new(),
                        mean_confidence: 100.0,
                    }),
                    no_image,
                })
            }
        }
    }
}

/// Gray samples of 1, 2, 4 or 8 bits, rows padded to whole bytes, scaled to 0..=255.
///
/// One table lookup per byte, not shifts and a division per pixel: a 300-dpi bilevel page
/// is 8.4 million pixels, and every scanned batch page is one.
fn unpack_gray(data: &[u8], width: u32, height: u32, bits: u32) -> Vec<u8> {
    if bits == 8 {
        return data.to_vec();
    }
    let width = width as usize;
    let bits = bits as usize;
    let row_bytes = (width * bits).div_ceil(8);
    let max_value = (1u32 << bits) - 1;
    let per_byte = 8 / bits;
    // Each byte value's pixels, most significant first, scaled.
    let mut table = vec![0u8; 256 * per_byte];
    for (byte, pixels) in table.chunks_exact_mut(per_byte).enumerate() {
        for (i, pixel) in pixels.iter_mut().enumerate() {
            let value = (byte as u32 >> (8 - bits * (i + 1))) & max_value;
            *pixel = (value * 255 / max_value) as u8;
        }
    }
    let mut out = Vec::with_capacity(width * height as usize);
    for row in data.chunks(row_bytes).take(height as usize) {
        let start = out.len();
        for &byte in row {
            out.extend_from_slice(&table[usize::from(byte) * per_byte..][..per_byte]);
        }
        // The padding bits of the row's last byte; a short last row keeps what it has.
        out.truncate(start + width.min(row.len() * per_byte));
    }
    out
}

fn rgb_to_gray<T: Copy>(
    data: &[T],
    width: u32,
    height: u32,
    samples: usize,
    to_u8: impl Fn(T) -> u32,
) -> Vec<u8> {
    let pixels = width as usize * height as usize;
    data.chunks_exact(samples)
        .take(pixels)
        .map(|pixel| {
            let luma = rec601_luma(to_u8(pixel[0]), to_u8(pixel[1]), to_u8(pixel[2]));
            if samples == 4 {
                over_white(luma, to_u8(pixel[3]) as u8)
            } else {
                luma
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_gray_unpacks_pixel_by_pixel() {
        // The per-pixel definition: sample x of a row, most significant bits first, scaled.
        fn reference(data: &[u8], width: usize, height: usize, bits: usize) -> Vec<u8> {
            let row_bytes = (width * bits).div_ceil(8);
            let max = (1u32 << bits) - 1;
            let mut out = Vec::new();
            for row in data.chunks(row_bytes).take(height) {
                for x in 0..width {
                    let Some(&byte) = row.get(x * bits / 8) else {
                        break;
                    };
                    let shift = 8 - bits * (x % (8 / bits) + 1);
                    out.push(((u32::from(byte) >> shift & max) * 255 / max) as u8);
                }
            }
            out
        }
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for bits in [1usize, 2, 4] {
            for width in [1usize, 7, 8, 13, 33] {
                let row_bytes = (width * bits).div_ceil(8);
                let height = data.len() / row_bytes;
                // Whole rows, and a last row cut short.
                for len in [row_bytes * height, row_bytes * height - row_bytes / 2] {
                    assert_eq!(
                        unpack_gray(&data[..len], width as u32, height as u32, bits as u32),
                        reference(&data[..len], width, height, bits),
                        "{bits} bits, {width} wide, {len} bytes"
                    );
                }
            }
        }
    }

    #[test]
    fn one_bit_rows_unpack_with_padding() {
        // Width 10: two bytes per row. Row 0: 1011 0000 01.., row 1: all set.
        let data = [0b1011_0000, 0b0100_0000, 0xFF, 0xFF];
        let out = unpack_gray(&data, 10, 2, 1);
        assert_eq!(
            &out[..10],
            &[255, 0, 255, 255, 0, 0, 0, 0, 0, 255],
            "MSB first"
        );
        assert!(out[10..].iter().all(|&v| v == 255));
        assert_eq!(out.len(), 20);
    }

    #[test]
    fn four_bit_samples_scale_to_full_range() {
        let out = unpack_gray(&[0xF0, 0x8F], 4, 1, 4);
        assert_eq!(out, vec![255, 0, 136, 255]);
    }

    #[test]
    fn transparent_pixels_become_white_paper() {
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(0, 255), 0);
        assert_eq!(over_white(100, 255), 100);
    }
}
