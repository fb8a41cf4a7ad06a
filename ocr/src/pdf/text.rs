//! From the glyphs a page shows to a [`PageOcr`]: words, lines and blocks with boxes in the
//! rendered image's pixels.
//!
//! Glyphs are taken in content-stream order, which is the order producers write text in (and
//! for an OCRmyPDF text layer, Tesseract's own reading order). A word ends at a space
//! character or a gap of more than [`WORD_GAP_EM`] em between one glyph's advance and the next
//! glyph; a line ends when the next glyph leaves the baseline or moves backwards; a block ends
//! at a vertical gap of more than a line height or a jump upwards (a new column).

use hayro::kurbo::{Rect, Vec2};

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

struct WordBuild {
    text: String,
    bbox: Rect,
    new_line: bool,
}

/// The text layer of a page, or `None` if it has no usable text. `scale` maps survey device
/// units to image pixels; boxes are clipped to the `width` × `height` image.
pub(crate) fn text_layer(
    glyphs: &[PlacedGlyph],
    scale: f64,
    width: u32,
    height: u32,
) -> Option<PageOcr> {
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
            }
            None => {
                current = Some(WordBuild {
                    text: text.trim().to_owned(),
                    bbox: glyph.bbox,
                    new_line: std::mem::take(&mut pending_line_break),
                });
            }
        }
    }
    finish(&mut current, &mut words);

    if mapped == 0 || (mapped as f64) < MIN_MAPPED_SHARE * ((mapped + unmapped) as f64) {
        return None;
    }
    layout(words, scale, width, height)
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

/// Word boxes in pixels; lines and blocks numbered; the text assembled.
fn layout(words: Vec<WordBuild>, scale: f64, width: u32, height: u32) -> Option<PageOcr> {
    struct Line {
        words: Vec<OcrWord>,
        top: u32,
        bottom: u32,
    }
    let bounds = Rect::new(0.0, 0.0, f64::from(width), f64::from(height));
    let mut lines: Vec<Line> = Vec::new();
    for word in words {
        let pixels = Rect::new(
            word.bbox.x0 * scale,
            word.bbox.y0 * scale,
            word.bbox.x1 * scale,
            word.bbox.y1 * scale,
        )
        .intersect(bounds);
        if !(pixels.width() > 0.0 && pixels.height() > 0.0) {
            continue; // off the visible page
        }
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
