//! The streaming PDF writer.
//!
//! Every indirect object is serialised on its own (with `pdf_writer::Chunk`, or by hand for
//! image streams, whose samples go straight from the caller's buffer to the output) and
//! written at once; the writer remembers its byte offset for the cross-reference table. Object
//! numbers are allocated in order, so the offsets live in a plain vector indexed by number.
//!
//! Layout: objects 1-5 are the catalog, the root page tree node, the `/Info` dictionary and
//! the two fonts (Helvetica and Courier, standard 14, WinAnsiEncoding); `/Info` and the fonts
//! are written by [`ProductionWriter::new`], the catalog and the page tree by
//! [`ProductionWriter::finish`], followed by the classic `xref` table and the trailer. Each
//! page is its image XObject (if any), its content stream and its page object.
//!
//! The page tree has the first [`PAGE_GROUP`] pages directly under the root, then one
//! intermediate node per further [`PAGE_GROUP`] pages (allocated when its first page is
//! written, so every page knows its parent), keeping every `/Kids` array short enough for old
//! readers (which limit arrays to 8191 entries) even in a very large production.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use pdf_writer::types::TextRenderingMode;
use pdf_writer::writers::{Catalog, DocumentInfo as InfoDict};
use pdf_writer::{Chunk, Content, Date, Filter, Finish, Name, Ref, Settings, Str, TextStr};
use sha2::{Digest, Sha256};

use crate::image::{prepare, ImageData, PreparedImage};
use crate::text::{encode_winansi, helvetica_string_width, paginate};
use crate::{DocumentInfo, ImagePage, ProduceError, Rect, Word};

/// Pages directly under the root page tree node, and under each intermediate node.
const PAGE_GROUP: usize = 1024;
/// Resolution assumed when a page's dpi is not positive.
const DEFAULT_DPI: f32 = 300.0;
/// The largest page side PDF 1.7 readers accept (Annex C), in points.
const MAX_PAGE_SIDE: f32 = 14_400.0;
/// The largest byte offset a classic xref entry (10 digits) can hold.
const MAX_OFFSET: u64 = 9_999_999_999;

/// US Letter, in points.
const LETTER: (f32, f32) = (612.0, 792.0);
/// Text page margins, in points.
const TEXT_MARGIN: f32 = 72.0;
/// Text page font size (Courier) and line spacing, in points.
const TEXT_SIZE: f32 = 10.0;
const TEXT_LEADING: f32 = 11.5;

/// Stamp font size (Helvetica), distance of its box from the page edges, and padding of its
/// white box, in points.
const STAMP_SIZE: f32 = 10.0;
const STAMP_MARGIN: f32 = 18.0;
const STAMP_PAD: f32 = 3.0;
/// Helvetica's ascender and descender, in em.
const HELVETICA_ASCENT: f32 = 0.718;
const HELVETICA_DESCENT: f32 = 0.207;

/// Font resource names.
const HELVETICA: Name<'static> = Name(b"F1");
const COURIER: Name<'static> = Name(b"F2");
/// Image XObject resource name.
const IMAGE: Name<'static> = Name(b"Im0");

/// Writes a production PDF to `W` page by page; see the crate documentation.
///
/// Pass a buffered writer (`std::io::BufWriter`) for files: objects are written one
/// `write_all` each, image samples one PNG chunk at a time.
pub struct ProductionWriter<W: Write> {
    out: W,
    /// Bytes written so far: the offset of the next object.
    written: u64,
    /// `offsets[n - 1]` is the byte offset of object `n`; 0 until it is written (offset 0
    /// is the header, never an object).
    offsets: Vec<u64>,
    /// Page objects in page order.
    page_refs: Vec<Ref>,
    /// Intermediate page tree nodes: the `k`-th holds pages `(k + 1) * group ..`.
    group_refs: Vec<Ref>,
    /// [`PAGE_GROUP`], smaller in tests.
    group: usize,
    catalog: Ref,
    pages_root: Ref,
    info: Ref,
    helvetica: Ref,
    courier: Ref,
    /// Hash of the document information, seed of the file identifier.
    info_hash: [u8; 32],
    poisoned: bool,
}

impl<W: Write> ProductionWriter<W> {
    /// Starts a production: writes the PDF header, the `/Info` dictionary and the fonts.
    pub fn new(out: W, info: &DocumentInfo) -> Result<Self, ProduceError> {
        Self::with_group(out, info, PAGE_GROUP)
    }

    pub(crate) fn with_group(
        out: W,
        info: &DocumentInfo,
        group: usize,
    ) -> Result<Self, ProduceError> {
        let date = pdf_date(info)?;
        let mut hasher = Sha256::new();
        hasher.update(info.title.as_bytes());
        hasher.update([0]);
        hasher.update(info.producer.as_bytes());
        hasher.update([0]);
        hasher.update(info.creation.to_pdf_string().as_bytes());

        let mut writer = Self {
            out,
            written: 0,
            offsets: Vec::new(),
            page_refs: Vec::new(),
            group_refs: Vec::new(),
            group: group.max(1),
            catalog: Ref::new(1),
            pages_root: Ref::new(2),
            info: Ref::new(3),
            helvetica: Ref::new(4),
            courier: Ref::new(5),
            info_hash: hasher.finalize().into(),
            poisoned: false,
        };
        for expected in [
            writer.catalog,
            writer.pages_root,
            writer.info,
            writer.helvetica,
            writer.courier,
        ] {
            let allocated = writer.alloc()?;
            debug_assert_eq!(allocated, expected);
        }

        // The comment line of high bytes tells transfer programs the file is binary.
        writer.write_raw(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")?;

        let mut chunk = new_chunk();
        {
            let mut dict = chunk.indirect(writer.info).start::<InfoDict>();
            dict.title(TextStr(&info.title));
            dict.producer(TextStr(&info.producer));
            dict.creation_date(date);
            dict.modified_date(date);
        }
        writer.write_chunk(writer.info, &chunk)?;

        for (id, base) in [
            (writer.helvetica, Name(b"Helvetica")),
            (writer.courier, Name(b"Courier")),
        ] {
            let mut chunk = new_chunk();
            chunk
                .type1_font(id)
                .base_font(base)
                .encoding_predefined(Name(b"WinAnsiEncoding"));
            writer.write_chunk(id, &chunk)?;
        }
        Ok(writer)
    }

    /// Writes one scanned page: the image fills the page (page size = image pixels / dpi * 72
    /// pt), the stamp (e.g. "ACME-000123") is drawn visibly in the bottom-right corner over a
    /// white box so it is legible on any scan, the words form an invisible text layer (text
    /// render mode 3) and the redactions are burned into the pixels.
    ///
    /// Words whose box overlaps a redaction are left out of the text layer; with
    /// `redact_whole_page` the page is solid black (still stamped) with no image data and no
    /// text layer.
    pub fn image_page(&mut self, page: &ImagePage<'_>) -> Result<(), ProduceError> {
        self.check_usable()?;
        let dpi = if page.dpi.is_finite() && page.dpi > 0.0 {
            page.dpi
        } else {
            DEFAULT_DPI
        };
        let prepared = prepare(&page.image, page.redactions, page.redact_whole_page)?;
        let scale = 72.0 / dpi;
        let page_w = points(prepared.width, dpi);
        let page_h = points(prepared.height, dpi);
        if !(page_w <= MAX_PAGE_SIDE && page_h <= MAX_PAGE_SIDE) {
            return Err(ProduceError::InvalidImage(format!(
                "{}x{} pixels at {dpi} dpi make a {page_w}x{page_h} pt page, more than \
                 {MAX_PAGE_SIDE} pt",
                prepared.width, prepared.height
            )));
        }

        let mut content = Content::new();
        let has_image = !matches!(prepared.data, ImageData::None);
        if has_image {
            content
                .save_state()
                .transform([page_w, 0.0, 0.0, page_h, 0.0, 0.0])
                .x_object(IMAGE)
                .restore_state();
            text_layer(&mut content, page.words, page.redactions, scale, page_h);
        } else {
            content
                .save_state()
                .set_fill_gray(0.0)
                .rect(0.0, 0.0, page_w, page_h)
                .fill_nonzero()
                .restore_state();
        }
        if let Some(stamp) = page.stamp {
            draw_stamp(&mut content, page_w, stamp);
        }
        let content = deflate(&content.finish())?;

        let result = self.write_page(page_w, page_h, &content, has_image.then_some(&prepared));
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Writes `text` as as many US Letter pages as it needs (Courier 10 pt, 56 lines of 78
    /// characters; see [`crate::text_page_count`] for the layout rules), each with `footer`
    /// drawn in the bottom-right corner if given; returns the number of pages written.
    pub fn text_pages(&mut self, text: &str, footer: Option<&str>) -> Result<u32, ProduceError> {
        self.text_pages_with(text, |_, _| footer.map(str::to_string))
    }

    /// Like [`ProductionWriter::text_pages`], with a footer per page:
    /// `footer(page, pages)` gets the 1-based number of the page within this text and the
    /// number of pages of this text (e.g. for "Manifest page 2 of 3", or a Bates number per
    /// page), and returns the footer of that page, if any.
    pub fn text_pages_with<F>(&mut self, text: &str, mut footer: F) -> Result<u32, ProduceError>
    where
        F: FnMut(u32, u32) -> Option<String>,
    {
        self.check_usable()?;
        let total = crate::text_page_count(text);
        let mut number = 0;
        let result = paginate(text, |lines| {
            number += 1;
            let mut content = Content::new();
            content
                .begin_text()
                .set_font(COURIER, TEXT_SIZE)
                .set_leading(TEXT_LEADING)
                .next_line(TEXT_MARGIN, LETTER.1 - TEXT_MARGIN - TEXT_SIZE);
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    content.next_line_using_leading();
                }
                if !line.is_empty() {
                    content.show(Str(line));
                }
            }
            content.end_text();
            if let Some(footer) = footer(number, total) {
                draw_stamp_at(
                    &mut content,
                    LETTER.0 - TEXT_MARGIN,
                    TEXT_MARGIN / 2.0,
                    &footer,
                );
            }
            let content = deflate(&content.finish())?;
            self.write_page(LETTER.0, LETTER.1, &content, None)
        });
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Writes the page tree, the catalog, the cross-reference table and the trailer, and
    /// returns the output and the number of pages.
    pub fn finish(mut self) -> Result<(W, u32), ProduceError> {
        self.check_usable()?;
        let pages = self.page_refs.len();
        if pages == 0 {
            return Err(ProduceError::NoPages);
        }
        let count = i32::try_from(pages).map_err(|_| ProduceError::TooLarge("page count"))?;

        // Root: the first `group` pages, then the intermediate nodes.
        let mut chunk = new_chunk();
        chunk
            .pages(self.pages_root)
            .kids(
                self.page_refs[..pages.min(self.group)]
                    .iter()
                    .chain(&self.group_refs)
                    .copied(),
            )
            .count(count);
        self.write_chunk(self.pages_root, &chunk)?;
        let group_refs = std::mem::take(&mut self.group_refs);
        for (k, &node) in group_refs.iter().enumerate() {
            let start = (k + 1) * self.group;
            let kids = &self.page_refs[start..pages.min(start + self.group)];
            let mut chunk = new_chunk();
            chunk
                .pages(node)
                .parent(self.pages_root)
                .kids(kids.iter().copied())
                .count(kids.len() as i32);
            self.write_chunk(node, &chunk)?;
        }

        let mut chunk = new_chunk();
        chunk
            .indirect(self.catalog)
            .start::<Catalog>()
            .pages(self.pages_root);
        self.write_chunk(self.catalog, &chunk)?;

        let xref_offset = self.written;
        if xref_offset > MAX_OFFSET {
            return Err(ProduceError::TooLarge("more than 10 GB"));
        }
        // Nothing is allocated or marked from here on.
        let offsets = std::mem::take(&mut self.offsets);
        let size = offsets.len() + 1;
        let mut table = Vec::with_capacity(64 * 1024);
        table.extend_from_slice(format!("xref\n0 {size}\n0000000000 65535 f\r\n").as_bytes());
        for (index, &offset) in offsets.iter().enumerate() {
            if offset == 0 {
                // Every allocated object is written before the call that allocated it
                // returns Ok, and an error poisons the writer.
                return Err(ProduceError::Io(std::io::Error::other(format!(
                    "object {} was never written",
                    index + 1
                ))));
            }
            table.extend_from_slice(format!("{offset:010} 00000 n\r\n").as_bytes());
            if table.len() >= 60 * 1024 {
                self.write_raw(&table)?;
                table.clear();
            }
        }

        let mut id = Sha256::new();
        id.update(self.info_hash);
        id.update((pages as u64).to_le_bytes());
        id.update(xref_offset.to_le_bytes());
        let id = hex::encode(&id.finalize()[..16]);
        table.extend_from_slice(
            format!(
                "trailer\n<< /Size {size} /Root {} 0 R /Info {} 0 R /ID [<{id}> <{id}>] >>\n\
                 startxref\n{xref_offset}\n%%EOF\n",
                self.catalog.get(),
                self.info.get()
            )
            .as_bytes(),
        );
        self.write_raw(&table)?;
        self.out.flush()?;
        Ok((self.out, count as u32))
    }

    /// Number of pages written so far.
    pub fn page_count(&self) -> u32 {
        self.page_refs.len() as u32
    }

    fn check_usable(&self) -> Result<(), ProduceError> {
        if self.poisoned {
            Err(ProduceError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Allocates the next object number.
    fn alloc(&mut self) -> Result<Ref, ProduceError> {
        let id = i32::try_from(self.offsets.len() + 1)
            .map_err(|_| ProduceError::TooLarge("too many objects"))?;
        self.offsets.push(0);
        Ok(Ref::new(id))
    }

    /// The page tree node the next page goes under, allocating a new intermediate node for
    /// the first page of each group after the first.
    fn next_parent(&mut self) -> Result<Ref, ProduceError> {
        let index = self.page_refs.len();
        if index < self.group {
            return Ok(self.pages_root);
        }
        if index.is_multiple_of(self.group) {
            let node = self.alloc()?;
            self.group_refs.push(node);
        }
        self.group_refs
            .last()
            .copied()
            .ok_or(ProduceError::TooLarge("page tree"))
    }

    /// Writes the objects of one page: its image (if any), its (compressed) content stream
    /// and the page itself.
    fn write_page(
        &mut self,
        width: f32,
        height: f32,
        content: &[u8],
        image: Option<&PreparedImage<'_>>,
    ) -> Result<(), ProduceError> {
        let parent = self.next_parent()?;
        let image_ref = match image {
            Some(image) => {
                let id = self.alloc()?;
                self.write_image(id, image)?;
                Some(id)
            }
            None => None,
        };

        let content_ref = self.alloc()?;
        let mut chunk = new_chunk();
        chunk
            .stream(content_ref, content)
            .filter(Filter::FlateDecode);
        self.write_chunk(content_ref, &chunk)?;

        let page_ref = self.alloc()?;
        let mut chunk = new_chunk();
        {
            let mut page = chunk.page(page_ref);
            page.parent(parent)
                .media_box(pdf_writer::Rect::new(0.0, 0.0, width, height))
                .contents(content_ref);
            let mut resources = page.resources();
            resources
                .fonts()
                .pair(HELVETICA, self.helvetica)
                .pair(COURIER, self.courier);
            if let Some(image_ref) = image_ref {
                resources.x_objects().pair(IMAGE, image_ref);
            }
            resources.finish();
            page.finish();
        }
        self.write_chunk(page_ref, &chunk)?;
        self.page_refs.push(page_ref);
        Ok(())
    }

    /// Writes an image XObject. The stream dictionary is written by hand so that the samples
    /// (for the PNG fast path, the IDAT payloads in the caller's buffer) go to the output
    /// without being copied into a chunk first.
    fn write_image(&mut self, id: Ref, image: &PreparedImage<'_>) -> Result<(), ProduceError> {
        let (bits, len, predictor) = match &image.data {
            ImageData::Png { bits, len, .. } => (*bits, *len, true),
            ImageData::Flate { bits, data } => (*bits, data.len() as u64, false),
            ImageData::None => return Ok(()),
        };
        let mut dict = format!(
            "{} 0 obj\n<< /Type /XObject /Subtype /Image /Width {} /Height {} \
             /ColorSpace /DeviceGray /BitsPerComponent {bits} /Filter /FlateDecode",
            id.get(),
            image.width,
            image.height
        );
        if predictor {
            dict.push_str(&format!(
                " /DecodeParms << /Predictor 15 /Colors 1 /BitsPerComponent {bits} \
                 /Columns {} >>",
                image.width
            ));
        }
        dict.push_str(&format!(" /Length {len} >>\nstream\n"));

        self.mark(id)?;
        self.write_raw(dict.as_bytes())?;
        match &image.data {
            ImageData::Png { idat, .. } => {
                for part in idat {
                    self.write_raw(part)?;
                }
            }
            ImageData::Flate { data, .. } => self.write_raw(data)?,
            ImageData::None => {}
        }
        self.write_raw(b"\nendstream\nendobj\n")?;
        Ok(())
    }

    /// Records that object `id` starts at the current offset.
    fn mark(&mut self, id: Ref) -> Result<(), ProduceError> {
        if self.written > MAX_OFFSET {
            return Err(ProduceError::TooLarge("more than 10 GB"));
        }
        let index = (id.get() - 1) as usize;
        self.offsets[index] = self.written;
        Ok(())
    }

    /// Writes a chunk holding exactly the object `id`.
    fn write_chunk(&mut self, id: Ref, chunk: &Chunk) -> Result<(), ProduceError> {
        debug_assert!(chunk.refs().eq([id]));
        self.mark(id)?;
        self.write_raw(chunk.as_bytes())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ProduceError> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// `pixels` at `dpi` in points, rounded to 1/1000 pt: computed in f64 so that exact sizes
/// stay exact (600 px at 100 dpi is 432 pt, not 432.00002, which renderers would round up to
/// one more device pixel).
fn points(pixels: u32, dpi: f32) -> f32 {
    let pt = f64::from(pixels) * 72.0 / f64::from(dpi);
    ((pt * 1000.0).round() / 1000.0) as f32
}

fn new_chunk() -> Chunk {
    Chunk::with_settings(Settings { pretty: false })
}

fn pdf_date(info: &DocumentInfo) -> Result<Date, ProduceError> {
    let d = info.creation;
    let valid = d.year <= 9999
        && (1..=12).contains(&d.month)
        && (1..=31).contains(&d.day)
        && d.hour <= 23
        && d.minute <= 59
        && d.second <= 59;
    if !valid {
        return Err(ProduceError::InvalidInfo(format!(
            "creation date {} is out of range",
            d.to_pdf_string()
        )));
    }
    Ok(Date::new(d.year)
        .month(d.month)
        .day(d.day)
        .hour(d.hour)
        .minute(d.minute)
        .second(d.second)
        .utc_offset_hour(0))
}

fn deflate(bytes: &[u8]) -> Result<Vec<u8>, ProduceError> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(bytes.len() / 2), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// Whether a word's box overlaps a redaction (by at least part of a pixel). Empty
/// rectangles black out nothing and hide nothing; an empty word box counts as one pixel.
fn overlaps(word: &Word, rect: &Rect) -> bool {
    if rect.width == 0 || rect.height == 0 {
        return false;
    }
    let (wl, wt) = (u64::from(word.left), u64::from(word.top));
    let (wr, wb) = (
        wl + u64::from(word.width.max(1)),
        wt + u64::from(word.height.max(1)),
    );
    let (rl, rt) = (u64::from(rect.left), u64::from(rect.top));
    let (rr, rb) = (rl + u64::from(rect.width), rt + u64::from(rect.height));
    wl < rr && rl < wr && wt < rb && rt < wb
}

/// The invisible OCR layer: one positioned string per word, sized to its box (font size =
/// box height, horizontal scaling = box width / string width), baseline a little above the
/// box bottom so the glyphs' extent (Helvetica descender to ascender) matches the box. Each
/// word is followed by a space, which makes text extractors end the word there even when
/// boxes touch.
fn text_layer(content: &mut Content, words: &[Word], redactions: &[Rect], scale: f32, page_h: f32) {
    let mut started = false;
    for word in words {
        if redactions.iter().any(|r| overlaps(word, r)) {
            continue;
        }
        let mut bytes = encode_winansi(word.text.trim());
        let em = helvetica_string_width(&bytes);
        if bytes.is_empty() || em <= 0.0 {
            continue;
        }
        let width = word.width.max(1) as f32 * scale;
        let size = word.height.max(1) as f32 * scale;
        let x = word.left as f32 * scale;
        let bottom = page_h - (word.top as f32 + word.height.max(1) as f32) * scale;
        let baseline = bottom + HELVETICA_DESCENT * size;
        let stretch = 100.0 * width / (em * size);
        if !started {
            content
                .save_state()
                .begin_text()
                .set_text_rendering_mode(TextRenderingMode::Invisible);
            started = true;
        }
        bytes.push(b' ');
        content
            .set_font(HELVETICA, size)
            .set_horizontal_scaling(stretch)
            .set_text_matrix([1.0, 0.0, 0.0, 1.0, x, baseline])
            .show(Str(&bytes));
    }
    if started {
        content.end_text().restore_state();
    }
}

/// Draws an image page's stamp in the bottom-right corner.
fn draw_stamp(content: &mut Content, page_w: f32, stamp: &str) {
    let baseline = STAMP_MARGIN + STAMP_PAD + HELVETICA_DESCENT * STAMP_SIZE;
    draw_stamp_at(content, page_w - STAMP_MARGIN - STAMP_PAD, baseline, stamp);
}

/// Draws `stamp` in black Helvetica, right-aligned at `right` on `baseline`, over a white box
/// (so it is legible on any scan); kept inside the page on its left.
fn draw_stamp_at(content: &mut Content, right: f32, baseline: f32, stamp: &str) {
    let bytes = encode_winansi(stamp);
    if bytes.is_empty() {
        return;
    }
    let text_w = helvetica_string_width(&bytes) * STAMP_SIZE;
    let x = (right - text_w).max(STAMP_PAD);
    content
        .save_state()
        .set_fill_gray(1.0)
        .rect(
            x - STAMP_PAD,
            baseline - HELVETICA_DESCENT * STAMP_SIZE - STAMP_PAD,
            text_w + 2.0 * STAMP_PAD,
            (HELVETICA_ASCENT + HELVETICA_DESCENT) * STAMP_SIZE + 2.0 * STAMP_PAD,
        )
        .fill_nonzero()
        .set_fill_gray(0.0)
        .begin_text()
        .set_text_rendering_mode(TextRenderingMode::Fill)
        .set_horizontal_scaling(100.0)
        .set_font(HELVETICA, STAMP_SIZE)
        .set_text_matrix([1.0, 0.0, 0.0, 1.0, x, baseline])
        .show(Str(&bytes))
        .end_text()
        .restore_state();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PageImage, PdfDate};

    fn info() -> DocumentInfo {
        DocumentInfo {
            title: "Test".to_string(),
            producer: "chartvault-produce tests".to_string(),
            creation: PdfDate {
                year: 2024,
                month: 1,
                day: 2,
                hour: 3,
                minute: 4,
                second: 5,
            },
        }
    }

    #[test]
    fn overlap_is_any_shared_area() {
        let word = Word {
            text: "w".to_string(),
            left: 10,
            top: 10,
            width: 10,
            height: 10,
        };
        let rect = |left, top, width, height| Rect {
            left,
            top,
            width,
            height,
        };
        assert!(overlaps(&word, &rect(19, 19, 5, 5)));
        assert!(!overlaps(&word, &rect(20, 10, 5, 5)), "touching edges");
        assert!(!overlaps(&word, &rect(0, 0, 10, 10)), "touching corner");
        assert!(!overlaps(&word, &rect(12, 12, 0, 5)), "empty rectangle");
        assert!(overlaps(&word, &rect(0, 0, 100, 100)));
    }

    #[test]
    fn invalid_dates_and_empty_productions_are_rejected() {
        let mut bad = info();
        bad.creation.month = 13;
        assert!(matches!(
            ProductionWriter::new(Vec::new(), &bad),
            Err(ProduceError::InvalidInfo(_))
        ));
        let writer = ProductionWriter::new(Vec::new(), &info()).expect("new");
        assert!(matches!(writer.finish(), Err(ProduceError::NoPages)));
    }

    #[test]
    fn a_rejected_page_leaves_the_writer_usable() {
        let mut writer = ProductionWriter::new(Vec::new(), &info()).expect("new");
        let bad = ImagePage {
            image: PageImage::Png(b"garbage"),
            dpi: 300.0,
            words: &[],
            stamp: None,
            redactions: &[],
            redact_whole_page: false,
        };
        assert!(matches!(
            writer.image_page(&bad),
            Err(ProduceError::ImageDecode(_))
        ));
        writer.text_pages("still fine", None).expect("text page");
        let (_, pages) = writer.finish().expect("finish");
        assert_eq!(pages, 1);
    }

    /// A sink that fails after `limit` bytes.
    struct Failing {
        limit: usize,
        written: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.written + buf.len() > self.limit {
                return Err(std::io::Error::other("disk full"));
            }
            self.written += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_io_error_poisons_the_writer() {
        let sink = Failing {
            limit: 2000,
            written: 0,
        };
        let mut writer = ProductionWriter::new(sink, &info()).expect("new");
        let text = "x\n".repeat(500);
        assert!(matches!(
            writer.text_pages(&text, None),
            Err(ProduceError::Io(_))
        ));
        assert!(matches!(
            writer.text_pages("more", None),
            Err(ProduceError::Poisoned)
        ));
        assert!(matches!(writer.finish(), Err(ProduceError::Poisoned)));
    }

    /// With groups of 3 pages, 8 pages make a root with 3 pages and 2 intermediate nodes
    /// (3 and 2 pages): poppler must see all 8 pages in order.
    #[test]
    fn large_page_trees_use_intermediate_nodes() {
        let mut writer = ProductionWriter::with_group(Vec::new(), &info(), 3).expect("new");
        for i in 1..=8 {
            writer
                .text_pages(&format!("Page marker {i}"), None)
                .expect("page");
        }
        let (pdf, pages) = writer.finish().expect("finish");
        assert_eq!(pages, 8);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tree.pdf");
        std::fs::write(&path, &pdf).expect("write");
        let info = std::process::Command::new("pdfinfo")
            .arg(&path)
            .output()
            .expect("pdfinfo (poppler-utils) must be installed");
        assert!(
            info.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&info.stderr)
        );
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains("Pages:           8"), "{info}");
        let text = std::process::Command::new("pdftotext")
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils) must be installed");
        let text = String::from_utf8_lossy(&text.stdout);
        let positions: Vec<usize> = (1..=8)
            .map(|i| {
                text.find(&format!("Page marker {i}\n"))
                    .unwrap_or_else(|| panic!("page {i} missing in {text:?}"))
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        // Pages are separated by form feeds in pdftotext output.
        assert_eq!(text.matches('\x0c').count(), 8);
    }
}
