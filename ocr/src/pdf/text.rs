//! From the glyphs a page shows to a [`PageOcr`]: words, lines and blocks with boxes in the
//! rendered image's pixels.
//!
//! Glyphs are taken in content-stream order, which is the order producers write text in (and
//! for an OCRmyPDF text layer, Tesseract's own reading order). A word ends at a space
//! character or a gap of more than [`WORD_GAP_EM`] em between one glyph's advance and the next
//! glyph; a line ends when the next glyph leaves the baseline or moves backwards; a block ends
//! at a vertical gap of more than a line height or a jump upwards (a new column).
//!
//! # Seen and hidden words
//!
//! A PDF's text can say more than its page shows: text in render mode 3 over an empty area,
//! white text on white, text under a filled rectangle (the failed redaction). A word counts as
//! **seen** only where the rendered page shows it: its place in the final grayscale image must
//! show ink-and-paper contrast, the darkest pixels and the lightest (a tail's worth of each)
//! at least [`MIN_CONTRAST`] levels apart. Otherwise it is marked [`OcrWord::hidden`] (it
//! stays in the text).
//!
//! - The place of a word drawn visibly: the box of its glyphs' outlines (where they put ink),
//!   widened by [`RING_EM`] em (at least [`RING_MIN_PX`] pixels) so that a glyph that is all
//!   ink inside its own box (a period, a dash, a block) still has paper around it, while a
//!   rectangle drawn over the text with any real margin covers all of it; tails of 5%
//!   ([`INK_TAIL`]), so that a sliver of paper at the edge of a cover does not count.
//! - The place of invisible text (render mode 3 or 7, as OCR text layers are written) and of
//!   glyphs without an outline (Type 3): the word's box with the space after it (Tesseract's
//!   and OCRmyPDF's renderer stretch "word " over the word's box in the scan, and their
//!   GlyphLessFont's glyphs are plain boxes, not ink), with tails of 2% ([`BOX_TAIL`]): such a
//!   box is loose, and thin or small print in a scan inks only a few percent of it.
//! - The contrast: 48 levels (about a fifth of the range) is well above the noise of a
//!   scanned blank area (JPEG noise and paper texture stay within 20–30 levels between those
//!   tails) and below the contrast of any legible text (black on white 255, light grey
//!   #C0C0C0 on white 63). White text on white, text under a black or white box and invisible
//!   text on a blank area have none.
//! - Measured on real OCR layers (Tesseract's PDF renderer over the fixture scans): none of
//!   phototest's 60 words, letter300_scan_g4's 235 or eurotext's 66 comes out hidden; of the
//!   694 of the real scan 8087_054 only specks read as words do.

use hayro::kurbo::{Rect, Vec2};
use image::GrayImage;

use super::survey::PlacedGlyph;
use crate::{OcrWord, PageOcr};

/// A gap wider than this (in em of the font size) between glyphs separates words.
const WORD_GAP_EM: f64 = 0.15;
/// Leaving the baseline by more than this (in em) starts a new line.
const LINE_SHIFT_EM: f64 = 0.5;
/// Moving back along the baseline by more than this (in em) starts a new line.
const BACKWARDS_EM: f64 = 0.6;
/// The text layer is used only if at least this share of its glyphs map to real Unicode
/// text; otherwise (fonts without a `ToUnicode` map, symbol fonts) the page needs OCR.
const MIN_MAPPED_SHARE: f64 = 0.9;
/// Levels (of 255) between the darkest and the lightest 5% of a word's place for it to count
/// as seen (see the module docs).
const MIN_CONTRAST: u8 = 48;
/// Share of the pixels in each tail: of a place drawn tight around the glyphs' outlines, and
/// of a word's box (glyphs without outlines: OCR text layers), where the ink is sparser.
const INK_TAIL: f64 = 0.05;
const BOX_TAIL: f64 = 0.02;
/// Margin around the glyphs' ink box, in em of the font size, and at least in pixels.
const RING_EM: f64 = 0.04;
const RING_MIN_PX: f64 = 1.5;
/// Pixels looked at for one word at most when a page has few words; a page of many words
/// gets fewer per word (at least [`MIN_SAMPLES`]), so the check stays a small share of
/// rendering the page whatever the text layer holds.
const PAGE_SAMPLES: usize = 1 << 24;
const MIN_SAMPLES: usize = 256;
const MAX_SAMPLES: usize = 1 << 16;

struct WordBuild {
    text: String,
    bbox: Rect,
    /// Union of the glyphs' ink boxes (`None` if none has an outline).
    ink: Option<Rect>,
    /// The largest font size in the word (device units).
    em: f64,
    /// The box of the space that ended the word, if one did.
    trailing: Option<Rect>,
    new_line: bool,
}

/// The text layer of a page, or `None` if it has no usable text. `scale` maps survey device
/// units to the pixels of `image`, the rendered page; boxes are clipped to it, and words it
/// does not show are marked hidden.
pub(crate) fn text_layer(glyphs: &[PlacedGlyph], scale: f64, image: &GrayImage) -> Option<PageOcr> {
    let mut words: Vec<WordBuild> = Vec::new();
    let mut current: Option<WordBuild> = None;
    let mut pending_line_break = false;
    let mut previous: Option<&PlacedGlyph> = None;
    let (mut mapped, mut unmapped) = (0usize, 0usize);

    for glyph in glyphs {
        // Where this glyph sits relative to where the previous one said the next would go.
        if let Some(prev) = previous {
            let em = prev.em.max(glyph.em).max(1e-6);
            let direction = unit(prev.advance).unwrap_or(Vec2::new(1.0, 0.0));
            let offset = glyph.origin - (prev.origin + prev.advance);
            let along = offset.dot(direction);
            let across = direction.cross(offset);
            if across.abs() > LINE_SHIFT_EM * em || along < -BACKWARDS_EM * em {
                finish(&mut current, &mut words);
                pending_line_break = true;
            } else if along > WORD_GAP_EM * em {
                finish(&mut current, &mut words);
            }
        }
        previous = Some(glyph);

        let text = match &glyph.text {
            Some(text) => clean(text),
            None => {
                unmapped += 1;
                continue;
            }
        };
        if text.trim().is_empty() {
            if let Some(word) = &mut current {
                word.trailing = Some(glyph.bbox);
            }
            finish(&mut current, &mut words);
            continue;
        }
        if text.chars().any(is_unmapped_char) {
            unmapped += 1;
            continue;
        }
        mapped += 1;
        match &mut current {
            Some(word) => {
                word.text.push_str(text.trim());
                word.bbox = word.bbox.union(glyph.bbox);
                word.ink = match (word.ink, glyph.ink) {
                    (Some(a), Some(b)) => Some(a.union(b)),
                    (a, b) => a.or(b),
                };
                word.em = word.em.max(glyph.em);
            }
            None => {
                current = Some(WordBuild {
                    text: text.trim().to_owned(),
                    bbox: glyph.bbox,
                    ink: glyph.ink,
                    em: glyph.em,
                    trailing: None,
                    new_line: std::mem::take(&mut pending_line_break),
                });
            }
        }
    }
    finish(&mut current, &mut words);

    if mapped == 0 || (mapped as f64) < MIN_MAPPED_SHARE * ((mapped + unmapped) as f64) {
        return None;
    }
    layout(words, scale, image)
}

fn finish(current: &mut Option<WordBuild>, words: &mut Vec<WordBuild>) {
    if let Some(word) = current.take() {
        words.push(word);
    }
}

fn unit(v: Vec2) -> Option<Vec2> {
    let len = v.hypot();
    (len.is_finite() && len > 1e-9).then(|| v / len)
}

/// Drops control characters (a glyph's mapping may carry them) except spaces.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

/// Characters that mean the font had no real mapping for the glyph.
fn is_unmapped_char(c: char) -> bool {
    c == '\u{FFFD}' || ('\u{E000}'..='\u{F8FF}').contains(&c)
}

/// Word boxes in pixels; lines and blocks numbered; the text assembled; hidden words marked.
fn layout(words: Vec<WordBuild>, scale: f64, image: &GrayImage) -> Option<PageOcr> {
    struct Line {
        words: Vec<OcrWord>,
        top: u32,
        bottom: u32,
    }
    let (width, height) = image.dimensions();
    let bounds = Rect::new(0.0, 0.0, f64::from(width), f64::from(height));
    let to_pixels = |r: Rect| Rect::new(r.x0 * scale, r.y0 * scale, r.x1 * scale, r.y1 * scale);
    let samples = (PAGE_SAMPLES / words.len().max(1)).clamp(MIN_SAMPLES, MAX_SAMPLES);
    let mut lines: Vec<Line> = Vec::new();
    for word in words {
        let pixels = to_pixels(word.bbox).intersect(bounds);
        if !(pixels.width() > 0.0 && pixels.height() > 0.0) {
            continue; // off the visible page
        }
        let (place, tail) = match word.ink {
            Some(ink) => {
                let ring = (RING_EM * word.em * scale).max(RING_MIN_PX);
                (
                    to_pixels(ink).inflate(ring, ring).intersect(bounds),
                    INK_TAIL,
                )
            }
            None => {
                let with_space = word
                    .trailing
                    .map_or(word.bbox, |space| word.bbox.union(space));
                (to_pixels(with_space).intersect(bounds), BOX_TAIL)
            }
        };
        let hidden = !shows_contrast(image, place, samples, tail);
        let pixels = pixels.expand();
        // Clamped to the image above, so these fit in u32.
        let (left, top) = (pixels.x0 as u32, pixels.y0 as u32);
        let (right, bottom) = (pixels.x1 as u32, pixels.y1 as u32);
        let ocr_word = OcrWord {
            text: word.text,
            left,
            top,
            width: (right - left).max(1),
            height: (bottom - top).max(1),
            confidence: 100.0,
            block: 0,
            par: 1,
            line: 0,
            word: 0,
            hidden,
        };
        match lines.last_mut() {
            Some(line) if !word.new_line => {
                line.top = line.top.min(top);
                line.bottom = line.bottom.max(bottom);
                line.words.push(ocr_word);
            }
            _ => lines.push(Line {
                words: vec![ocr_word],
                top,
                bottom,
            }),
        }
    }
    if lines.is_empty() {
        return None;
    }

    let mut text = String::new();
    let mut all_words = Vec::new();
    let (mut block, mut line_in_block) = (0u32, 0u32);
    let mut previous: Option<(u32, u32)> = None;
    for line in lines {
        let line_height = line.bottom.saturating_sub(line.top).max(1);
        let new_block = match previous {
            None => true,
            Some((prev_top, prev_bottom)) => {
                let prev_height = prev_bottom.saturating_sub(prev_top).max(1);
                // A gap of more than a line height, or a jump back up the page (a new column).
                line.top > prev_bottom + prev_height.max(line_height)
                    || line.bottom + prev_height / 2 < prev_top
            }
        };
        if new_block {
            if block > 0 {
                text.push('\n');
            }
            block += 1;
            line_in_block = 0;
        }
        line_in_block += 1;
        previous = Some((line.top, line.bottom));
        for (index, mut word) in line.words.into_iter().enumerate() {
            if index > 0 {
                text.push(' ');
            }
            text.push_str(&word.text);
            word.block = block;
            word.line = line_in_block;
            word.word = index as u32 + 1;
            all_words.push(word);
        }
        text.push('\n');
    }
    Some(PageOcr {
        text,
        words: all_words,
        mean_confidence: 100.0,
    })
}

/// Whether `place` (in pixels) of the page shows ink-and-paper contrast: the darkest and the
/// lightest `tail` of its pixels at least [`MIN_CONTRAST`] apart. At most about `samples`
/// pixels are read, on an even grid.
fn shows_contrast(image: &GrayImage, place: Rect, samples: usize, tail: f64) -> bool {
    let (width, height) = image.dimensions();
    let x0 = place.x0.floor().max(0.0) as u32;
    let y0 = place.y0.floor().max(0.0) as u32;
    let x1 = (place.x1.ceil().max(0.0) as u32).min(width);
    let y1 = (place.y1.ceil().max(0.0) as u32).min(height);
    if x0 >= x1 || y0 >= y1 {
        return false;
    }
    let area = u64::from(x1 - x0) * u64::from(y1 - y0);
    let step = ((area as f64 / samples as f64).sqrt().ceil() as u32).max(1);
    let mut histogram = [0u32; 256];
    let mut count = 0u32;
    for y in (y0..y1).step_by(step as usize) {
        for x in (x0..x1).step_by(step as usize) {
            histogram[usize::from(image.get_pixel(x, y).0[0])] += 1;
            count += 1;
        }
    }
    let tail = ((f64::from(count) * tail).ceil() as u32).max(1);
    // The level below which (from the dark end) and above which (from the light end) a
    // tail's worth of pixels lies.
    let mut dark = 0;
    let mut seen = 0;
    for (level, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= tail {
            dark = level;
            break;
        }
    }
    let mut light = 255;
    seen = 0;
    for (level, n) in histogram.iter().enumerate().rev() {
        seen += n;
        if seen >= tail {
            light = level;
            break;
        }
    }
    light.saturating_sub(dark) >= usize::from(MIN_CONTRAST)
}
