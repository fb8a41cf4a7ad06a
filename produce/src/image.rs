//! Preparing a page image for embedding: the PNG fast path, decoding, redaction burn-in,
//! bilevel packing and Flate compression.
//!
//! [`prepare`] does all the work that can fail on bad input *before* anything is written, so
//! a rejected page leaves the PDF untouched. Its result is at most one page's working set:
//! the borrowed IDAT slices of the PNG (fast path), or the decoded pixels while they are
//! burned and compressed, then only the compressed samples.
//!
//! - Fast path: an 8-bit (or 1/2/4-bit) grayscale, non-interlaced PNG of a page with no
//!   redaction inside the image is embedded as it is stored: its concatenated IDAT data is a
//!   zlib stream of PNG-filtered rows, which PDF's `/FlateDecode` with
//!   `/DecodeParms << /Predictor 15 ... >>` reads directly. Chunk CRCs are checked; the zlib
//!   data itself is not inflated.
//! - Otherwise the image is decoded (the `image` crate for PNG), converted to 8-bit gray,
//!   every redaction rectangle clipped to the image is set to 0 (black) in the pixels, and
//!   the rows are Flate-compressed; a page whose pixels are all 0 or 255 is packed to 1 bit
//!   per pixel first.
//! - A page redacted whole embeds no image at all: only its size is read.

use std::borrow::Cow;
use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};

use crate::{PageImage, ProduceError, Rect};

/// The 8-byte PNG file signature.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// The samples to embed for one page.
pub(crate) enum ImageData<'a> {
    /// Nothing: the page is redacted whole.
    None,
    /// IDAT chunk payloads of a grayscale PNG, in order; `bits` per sample, `len` in total.
    Png {
        bits: u8,
        idat: Vec<&'a [u8]>,
        len: u64,
    },
    /// Zlib-compressed rows of `bits`-per-sample gray, no predictor.
    Flate { bits: u8, data: Vec<u8> },
}

/// A page image ready to be written: its size in pixels and its samples.
pub(crate) struct PreparedImage<'a> {
    pub width: u32,
    pub height: u32,
    pub data: ImageData<'a>,
}

/// The fields of a PNG `IHDR` chunk that matter here.
struct PngHeader {
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
    compression: u8,
    filter: u8,
    interlace: u8,
}

impl PngHeader {
    /// Whether PDF can read this PNG's IDAT data directly as a predictor-15 Flate stream.
    fn embeddable(&self) -> bool {
        self.color_type == 0
            && matches!(self.bit_depth, 1 | 2 | 4 | 8)
            && self.compression == 0
            && self.filter == 0
            && self.interlace == 0
    }
}

fn corrupt(what: &str) -> ProduceError {
    ProduceError::ImageDecode(format!("corrupt PNG: {what}"))
}

/// Iterates over the chunks of a PNG after its signature, checking lengths and CRCs: yields
/// `(type, data)` until `IEND` (inclusive).
struct Chunks<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<([u8; 4], &'a [u8]), ProduceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.next_chunk();
        if !matches!(&result, Ok((kind, _)) if kind != b"IEND") {
            self.done = true;
        }
        Some(result)
    }
}

impl<'a> Chunks<'a> {
    fn new(png: &'a [u8]) -> Result<Self, ProduceError> {
        match png.strip_prefix(&PNG_SIGNATURE) {
            Some(rest) => Ok(Self { rest, done: false }),
            None => Err(ProduceError::ImageDecode(
                "not a PNG file (bad signature)".to_string(),
            )),
        }
    }

    fn next_chunk(&mut self) -> Result<([u8; 4], &'a [u8]), ProduceError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt("truncated before IEND"))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = usize::try_from(len).map_err(|_| corrupt("chunk too long"))?;
        let kind = [head[4], head[5], head[6], head[7]];
        if len > rest.len() || rest.len() - len < 4 {
            return Err(corrupt("truncated chunk"));
        }
        let (data, rest) = rest.split_at(len);
        let (crc_bytes, rest) = rest.split_at(4);
        let mut crc = Crc::new();
        crc.update(&kind);
        crc.update(data);
        if crc.sum().to_be_bytes() != crc_bytes {
            return Err(corrupt("chunk CRC mismatch"));
        }
        self.rest = rest;
        Ok((kind, data))
    }
}

/// Reads the `IHDR` chunk (which must come first).
fn png_header(chunks: &mut Chunks<'_>) -> Result<PngHeader, ProduceError> {
    let (kind, data) = chunks.next().ok_or_else(|| corrupt("no IHDR chunk"))??;
    if &kind != b"IHDR" || data.len() != 13 {
        return Err(corrupt("first chunk is not a valid IHDR"));
    }
    let header = PngHeader {
        width: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
        height: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        bit_depth: data[8],
        color_type: data[9],
        compression: data[10],
        filter: data[11],
        interlace: data[12],
    };
    if header.width == 0 || header.height == 0 {
        return Err(corrupt("zero width or height"));
    }
    Ok(header)
}

/// A redaction rectangle clipped to a `width` x `height` image, as pixel ranges
/// `(x0, y0, x1, y1)` (exclusive ends); `None` when nothing of it lies inside.
pub(crate) fn clip(rect: &Rect, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let x1 = rect.left.saturating_add(rect.width).min(width);
    let y1 = rect.top.saturating_add(rect.height).min(height);
    (rect.left < x1 && rect.top < y1).then_some((rect.left, rect.top, x1, y1))
}

/// Prepares the image of one page; see the module documentation.
pub(crate) fn prepare<'a>(
    image: &PageImage<'a>,
    redactions: &[Rect],
    redact_whole_page: bool,
) -> Result<PreparedImage<'a>, ProduceError> {
    match *image {
        PageImage::Png(png) => {
            let mut chunks = Chunks::new(png)?;
            let header = png_header(&mut chunks)?;
            let (width, height) = (header.width, header.height);
            if redact_whole_page {
                return Ok(PreparedImage {
                    width,
                    height,
                    data: ImageData::None,
                });
            }
            let redacted = redactions.iter().any(|r| clip(r, width, height).is_some());
            if header.embeddable() && !redacted {
                let mut idat = Vec::new();
                let mut len: u64 = 0;
                for chunk in chunks {
                    let (kind, data) = chunk?;
                    if &kind == b"IDAT" {
                        len += data.len() as u64;
                        idat.push(data);
                    }
                }
                if len == 0 {
                    return Err(corrupt("no image data"));
                }
                return Ok(PreparedImage {
                    width,
                    height,
                    data: ImageData::Png {
                        bits: header.bit_depth,
                        idat,
                        len,
                    },
                });
            }
            let decoded = image::load_from_memory_with_format(png, image::ImageFormat::Png)
                .map_err(|e| ProduceError::ImageDecode(format!("PNG does not decode: {e}")))?;
            let gray = decoded.into_luma8();
            if (gray.width(), gray.height()) != (width, height) {
                return Err(corrupt("decoded size differs from IHDR"));
            }
            let pixels = gray.into_raw();
            let data = burn_and_compress(Cow::Owned(pixels), width, height, redactions)?;
            Ok(PreparedImage {
                width,
                height,
                data,
            })
        }
        PageImage::Gray {
            width,
            height,
            pixels,
        } => {
            let expected = usize::try_from(u64::from(width) * u64::from(height)).ok();
            if width == 0 || height == 0 || expected != Some(pixels.len()) {
                return Err(ProduceError::InvalidImage(format!(
                    "{width}x{height} gray image needs {} bytes, got {}",
                    u64::from(width) * u64::from(height),
                    pixels.len()
                )));
            }
            let data = if redact_whole_page {
                ImageData::None
            } else {
                burn_and_compress(Cow::Borrowed(pixels), width, height, redactions)?
            };
            Ok(PreparedImage {
                width,
                height,
                data,
            })
        }
    }
}

/// Burns the redactions into 8-bit gray `pixels` (copying them only if a redaction lies
/// inside the image), then compresses them: packed to 1 bit when every pixel is 0 or 255.
fn burn_and_compress(
    mut pixels: Cow<'_, [u8]>,
    width: u32,
    height: u32,
    redactions: &[Rect],
) -> Result<ImageData<'static>, ProduceError> {
    let row_len = width as usize;
    for rect in redactions {
        if let Some((x0, y0, x1, y1)) = clip(rect, width, height) {
            let pixels = pixels.to_mut();
            for y in y0 as usize..y1 as usize {
                let row = y * row_len;
                pixels[row + x0 as usize..row + x1 as usize].fill(0);
            }
        }
    }

    let bilevel = pixels.iter().all(|&p| p == 0 || p == 255);
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(pixels.len() / 16), Compression::fast());
    if bilevel {
        let mut packed = vec![0u8; row_len.div_ceil(8)];
        for row in pixels.chunks_exact(row_len) {
            packed.fill(0);
            for (x, &p) in row.iter().enumerate() {
                if p == 255 {
                    packed[x / 8] |= 0x80 >> (x % 8);
                }
            }
            encoder.write_all(&packed)?;
        }
    } else {
        encoder.write_all(&pixels)?;
    }
    let data = encoder.finish()?;
    Ok(ImageData::Flate {
        bits: if bilevel { 1 } else { 8 },
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::GrayImage::from_raw(width, height, pixels.to_vec())
            .expect("buffer size")
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn clip_keeps_only_the_part_inside_the_image() {
        let r = |left, top, width, height| Rect {
            left,
            top,
            width,
            height,
        };
        assert_eq!(clip(&r(5, 5, 10, 10), 10, 8), Some((5, 5, 10, 8)));
        assert_eq!(clip(&r(10, 0, 5, 5), 10, 8), None);
        assert_eq!(clip(&r(0, 0, 0, 5), 10, 8), None);
        assert_eq!(clip(&r(u32::MAX, 0, u32::MAX, 5), 10, 8), None);
    }

    #[test]
    fn gray_png_takes_the_fast_path_and_redaction_forces_decoding() {
        let pixels: Vec<u8> = (0..64u32).map(|i| (i * 3) as u8).collect();
        let png = png(8, 8, &pixels);
        let page = prepare(&PageImage::Png(&png), &[], false).expect("prepare");
        assert!(matches!(page.data, ImageData::Png { bits: 8, .. }));

        let rect = Rect {
            left: 2,
            top: 2,
            width: 3,
            height: 3,
        };
        let page = prepare(&PageImage::Png(&png), &[rect], false).expect("prepare");
        let ImageData::Flate { bits: 8, data } = page.data else {
            panic!("expected 8-bit Flate data");
        };
        let raw = miniz_inflate(&data);
        for y in 0..8 {
            for x in 0..8 {
                let inside = (2..5).contains(&x) && (2..5).contains(&y);
                let want = if inside { 0 } else { pixels[y * 8 + x] };
                assert_eq!(raw[y * 8 + x], want, "pixel {x},{y}");
            }
        }
    }

    #[test]
    fn bilevel_pages_are_packed_to_one_bit() {
        let pixels: Vec<u8> = (0..30u32)
            .map(|i| if i % 3 == 0 { 0 } else { 255 })
            .collect();
        let page = prepare(
            &PageImage::Gray {
                width: 10,
                height: 3,
                pixels: &pixels,
            },
            &[],
            false,
        )
        .expect("prepare");
        let ImageData::Flate { bits: 1, data } = page.data else {
            panic!("expected 1-bit data");
        };
        // 10 pixels a row -> 2 bytes; 0 = black, 1 = white, most significant bit first.
        assert_eq!(
            miniz_inflate(&data),
            vec![
                0b0110_1101,
                0b1000_0000,
                0b1101_1011,
                0b0100_0000,
                0b1011_0110,
                0b1100_0000
            ]
        );
    }

    #[test]
    fn bad_input_is_rejected_before_anything_is_written() {
        let err = prepare(&PageImage::Png(b"not a png"), &[], false)
            .err()
            .expect("must fail");
        assert!(matches!(err, ProduceError::ImageDecode(_)), "{err}");

        let mut png = png(8, 8, &[7; 64]);
        let last = png.len() - 20;
        png[last] ^= 0xFF; // inside IDAT (or its CRC): the CRC check catches it
        let err = prepare(&PageImage::Png(&png), &[], false)
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("corrupt PNG"), "{err}");

        let err = prepare(
            &PageImage::Gray {
                width: 4,
                height: 4,
                pixels: &[0; 15],
            },
            &[],
            false,
        )
        .err()
        .expect("must fail");
        assert!(matches!(err, ProduceError::InvalidImage(_)), "{err}");
    }

    fn miniz_inflate(data: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(data)
            .read_to_end(&mut out)
            .expect("inflate");
        out
    }
}
