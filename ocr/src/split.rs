//! Writing pages back out as one multi-page TIFF: the original of a document that a batch
//! upload was split into (a batch holds several patients' documents, so no document can
//! point at the batch file itself).
//!
//! Lossless for what the pages decoded to: a bilevel page (every pixel black or white, as a
//! G4 fax or a 1-bit scan decodes) is written as 1-bit CCITT Group 4, any other page as 8-bit
//! grayscale with Deflate. The resolution of each page is kept.

use std::io::Cursor;

use fax::{encoder::Encoder as G4Encoder, Color, VecWriter};
use image::GrayImage;
use tiff::encoder::{colortype, compression::DeflateLevel, Compression, Rational, TiffEncoder};
use tiff::tags::{ResolutionUnit, Tag};

/// A multi-page TIFF being written in memory, one page at a time.
pub struct TiffPagesWriter {
    encoder: TiffEncoder<SharedBuffer>,
    buffer: SharedBuffer,
    pages: usize,
}

/// The TIFF encoder owns its writer and gives it no way back; this one shares its buffer.
#[derive(Clone, Default)]
struct SharedBuffer(std::rc::Rc<std::cell::RefCell<Cursor<Vec<u8>>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for SharedBuffer {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0.borrow_mut().seek(pos)
    }
}

impl TiffPagesWriter {
    pub fn new() -> Result<TiffPagesWriter, tiff::TiffError> {
        let buffer = SharedBuffer::default();
        Ok(TiffPagesWriter {
            encoder: TiffEncoder::new(buffer.clone())?
                .with_compression(Compression::Deflate(DeflateLevel::Fast)),
            buffer,
            pages: 0,
        })
    }

    /// Appends a page; `dpi` is its (horizontal, vertical) resolution when known.
    pub fn add(
        &mut self,
        page: &GrayImage,
        dpi: Option<(f32, f32)>,
    ) -> Result<(), tiff::TiffError> {
        let (width, height) = page.dimensions();
        let resolution = dpi.map(|(x, y)| (rational(x), rational(y)));
        let bilevel = page.as_raw().iter().all(|&p| p == 0 || p == 255);
        if bilevel && width <= u32::from(u16::MAX) {
            let data = g4(page);
            let mut dir = self.encoder.image_directory()?;
            let offset = u32::try_from(dir.write_data(data.as_slice())?)
                .map_err(|_| tiff::TiffError::LimitsExceeded)?;
            dir.write_tag(Tag::ImageWidth, width)?;
            dir.write_tag(Tag::ImageLength, height)?;
            dir.write_tag(Tag::BitsPerSample, 1u16)?;
            dir.write_tag(Tag::Compression, 4u16)?;
            dir.write_tag(Tag::PhotometricInterpretation, 0u16)?; // WhiteIsZero
            dir.write_tag(Tag::StripOffsets, offset)?;
            dir.write_tag(Tag::SamplesPerPixel, 1u16)?;
            dir.write_tag(Tag::RowsPerStrip, height)?;
            dir.write_tag(Tag::StripByteCounts, data.len() as u32)?;
            if let Some((x, y)) = resolution {
                dir.write_tag(Tag::XResolution, x)?;
                dir.write_tag(Tag::YResolution, y)?;
                dir.write_tag(Tag::ResolutionUnit, ResolutionUnit::Inch.to_u16())?;
            }
            dir.finish()?;
        } else {
            let mut image = self.encoder.new_image::<colortype::Gray8>(width, height)?;
            if let Some((x, _)) = resolution {
                image.resolution(ResolutionUnit::Inch, x);
            }
            image.write_data(page.as_raw())?;
        }
        self.pages += 1;
        Ok(())
    }

    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The TIFF file's bytes.
    pub fn finish(self) -> Vec<u8> {
        drop(self.encoder);
        std::mem::take(&mut *self.buffer.0.borrow_mut()).into_inner()
    }
}

fn rational(dpi: f32) -> Rational {
    Rational {
        n: (dpi * 100.0).round().clamp(1.0, u32::MAX as f32) as u32,
        d: 100,
    }
}

/// CCITT Group 4 of a bilevel page (black is 0).
fn g4(page: &GrayImage) -> Vec<u8> {
    let width = page.width() as u16;
    let mut encoder = G4Encoder::new(VecWriter::new());
    for row in page.rows() {
        let pels = row.map(|p| {
            if p.0[0] < 128 {
                Color::Black
            } else {
                Color::White
            }
        });
        // Writing to a Vec cannot fail.
        let _ = encoder.encode_line(pels, width);
    }
    match encoder.finish() {
        Ok(writer) => writer.finish(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{preflight, Limits, PageReader, ScanFormat};

    fn page(width: u32, height: u32, gray: bool) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            let ink = (x / 7 + y / 5) % 3 == 0;
            let value = match (ink, gray) {
                (true, true) => 40 + (x % 50) as u8,
                (true, false) => 0,
                (false, _) => 255,
            };
            image::Luma([value])
        })
    }

    #[test]
    fn pages_come_back_pixel_for_pixel_with_their_resolution() {
        let pages = [
            (page(850, 1100, false), Some((300.0, 300.0))),
            (page(640, 480, true), Some((200.0, 200.0))),
            (page(33, 17, false), None),
        ];
        let mut writer = TiffPagesWriter::new().unwrap();
        for (image, dpi) in &pages {
            writer.add(image, *dpi).unwrap();
        }
        assert_eq!(writer.pages(), 3);
        let bytes = writer.finish();
        let limits = Limits::default();
        let checked = preflight(Cursor::new(bytes.clone()), &limits).unwrap();
        assert_eq!(checked.format, ScanFormat::Tiff);
        assert_eq!(checked.pages.len(), 3);
        let mut reader = PageReader::open(Cursor::new(bytes), ScanFormat::Tiff, &limits).unwrap();
        for (i, (image, dpi)) in pages.iter().enumerate() {
            let decoded = reader.decode(i).unwrap();
            assert_eq!(decoded.image.dimensions(), image.dimensions(), "page {i}");
            assert!(decoded.image == *image, "page {i} pixels differ");
            if let Some((x, _)) = dpi {
                let (got, _) = decoded.dpi.expect("resolution kept");
                assert!((got - x).abs() < 0.5, "page {i}: {got} dpi");
            }
        }
    }
}
