//! What OCR of one page yields: its text, its words with boxes and confidences.
//!
//! These types are serialised (encrypted) as per-page artifacts by the app, so their serde
//! form is part of the stored format: add fields only with `#[serde(default)]`.

use serde::{Deserialize, Serialize};

/// One recognised word with its box in page pixels (origin top left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrWord {
    pub text: String,
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
    /// Tesseract's word confidence, 0–100.
    pub confidence: f32,
    /// Tesseract's layout position: block, paragraph in block, line in paragraph, word in line
    /// (all 1-based, as in Tesseract's TSV output).
    pub block: u32,
    pub par: u32,
    pub line: u32,
    pub word: u32,
    /// A word of a PDF's own text layer that the rendered page does not show: its place on
    /// the page image has no ink-and-paper contrast (invisible text over an empty area, white
    /// on white, text under a filled rectangle). It stays in the page's text, but a reviewer
    /// never saw it on the page, so a production must not put it in its text layer. Always
    /// `false` for words Tesseract read off the image, and absent from the stored JSON when
    /// `false` (words stored before the field existed read as seen).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// The OCR result of one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageOcr {
    /// The page text in reading order, as Tesseract lays it out.
    pub text: String,
    pub words: Vec<OcrWord>,
    /// Tesseract's mean word confidence for the page, 0–100.
    pub mean_confidence: f32,
}

/// Word rows (level 5) of Tesseract's TSV output; rows without a confidence (-1), without
/// text, or that do not parse are skipped.
pub(crate) fn words_from_tsv(tsv: &str) -> Vec<OcrWord> {
    tsv.lines().filter_map(word_from_tsv_row).collect()
}

fn word_from_tsv_row(row: &str) -> Option<OcrWord> {
    let mut fields = row.splitn(12, '\t');
    let mut number = || fields.next()?.trim().parse::<u32>().ok();
    let level = number()?;
    if level != 5 {
        return None;
    }
    let _page = number()?;
    let (block, par, line, word) = (number()?, number()?, number()?, number()?);
    let (left, top, width, height) = (number()?, number()?, number()?, number()?);
    let confidence: f32 = fields.next()?.trim().parse().ok()?;
    let text = fields.next()?.trim_end_matches(['\r', '\n']);
    if confidence < 0.0 || text.trim().is_empty() {
        return None;
    }
    Some(OcrWord {
        text: text.to_owned(),
        left,
        top,
        width,
        height,
        confidence,
        block,
        par,
        line,
        word,
        hidden: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_rows_are_parsed_and_others_skipped() {
        let tsv = "1\t1\t0\t0\t0\t0\t0\t0\t640\t480\t-1\t\n\
                   4\t1\t1\t1\t1\t0\t36\t92\t582\t26\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t36\t92\t60\t24\t96.5\tThis\n\
                   5\t1\t1\t1\t1\t2\t109\t92\t20\t24\t-1\t \n\
                   5\t1\t2\t1\t3\t4\t1\t2\t3\t4\tnot-a-number\tbad\n";
        let words = words_from_tsv(tsv);
        assert_eq!(words.len(), 1);
        let word = &words[0];
        assert_eq!(word.text, "This");
        assert_eq!(
            (word.left, word.top, word.width, word.height),
            (36, 92, 60, 24)
        );
        assert_eq!((word.block, word.par, word.line, word.word), (1, 1, 1, 1));
        assert!((word.confidence - 96.5).abs() < f32::EPSILON);
        assert!(!word.hidden, "Tesseract's words are what the image shows");
    }

    #[test]
    fn words_stored_before_the_hidden_flag_read_as_seen() {
        let stored = r#"{"text":"Doe","left":10,"top":20,"width":30,"height":12,"confidence":91.5,"block":1,"par":1,"line":2,"word":3}"#;
        let word: OcrWord = serde_json::from_str(stored).unwrap();
        assert!(!word.hidden);
        assert_eq!((word.text.as_str(), word.line, word.word), ("Doe", 2, 3));
        // A seen word is stored exactly as before; a hidden one carries the flag.
        assert_eq!(serde_json::to_string(&word).unwrap(), stored);
        let hidden = OcrWord {
            hidden: true,
            ..word
        };
        let json = serde_json::to_string(&hidden).unwrap();
        assert!(json.ends_with(r#""word":3,"hidden":true}"#), "{json}");
        assert_eq!(serde_json::from_str::<OcrWord>(&json).unwrap(), hidden);
    }
}
