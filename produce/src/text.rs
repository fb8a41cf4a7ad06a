//! Text encoding, font metrics and the pagination of plain text pages.
//!
//! Everything drawn as text uses a standard-14 font (Helvetica or Courier) with
//! `/WinAnsiEncoding`, so strings are single bytes: [`encode_winansi`] maps Unicode to that
//! encoding, replacing what it cannot represent with `?`. [`helvetica_width`] holds the
//! advance widths of the standard Helvetica AFM for every WinAnsi code, which size the
//! invisible OCR words and the visible stamps. [`paginate`] lays plain text out in fixed
//! Courier lines and pages; [`crate::text_page_count`] and
//! [`crate::ProductionWriter::text_pages`] share it, so the count a caller is told is the
//! count that gets written.

/// Lines of text on one text page (Courier 10 pt at an 11.5 pt leading inside 72 pt margins).
pub(crate) const LINES_PER_PAGE: usize = 56;
/// Characters in one text line: 468 pt of line width / 6 pt per Courier glyph at 10 pt.
pub(crate) const CHARS_PER_LINE: usize = 78;
/// Tab stops of text pages, in characters.
const TAB_WIDTH: usize = 8;

/// Advance widths of Helvetica (standard AFM, 1/1000 em) for WinAnsi codes 32..=255.
/// Codes WinAnsi leaves undefined (127, 129, 141, 143, 144, 157) are never produced by
/// [`encode_winansi`]; they carry the bullet's width like most viewers draw them.
const HELVETICA_WIDTHS: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // 32..=47
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 48..=63
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722,
    778, // 64..=79
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 80..=95
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556,
    556, // 96..=111
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
    350, // 112..=127
    556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611,
    350, // 128..=143
    350, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500,
    667, // 144..=159
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737,
    333, // 160..=175
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834,
    611, // 176..=191
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278,
    278, // 192..=207
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667,
    611, // 208..=223
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278,
    278, // 224..=239
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556,
    500, // 240..=255
];

/// The advance width of WinAnsi code `code` in Helvetica, in 1/1000 em. Control codes
/// (never produced by [`encode_winansi`]) get the width of `?`.
pub(crate) fn helvetica_width(code: u8) -> u16 {
    match code.checked_sub(32) {
        Some(i) => HELVETICA_WIDTHS[usize::from(i)],
        None => HELVETICA_WIDTHS[usize::from(b'?' - 32)],
    }
}

/// The width of a WinAnsi string in Helvetica, in em.
pub(crate) fn helvetica_string_width(bytes: &[u8]) -> f32 {
    let thousandths: u32 = bytes.iter().map(|&b| u32::from(helvetica_width(b))).sum();
    thousandths as f32 / 1000.0
}

/// The WinAnsiEncoding code of a printable character, if it has one.
///
/// Control characters (C0, DEL, C1) have none: they are not printable glyphs.
pub(crate) fn winansi_code(c: char) -> Option<u8> {
    let code = match c {
        ' '..='~' => c as u8,
        '\u{A0}'..='\u{FF}' => c as u8,
        '\u{20AC}' => 0x80,
        '\u{201A}' => 0x82,
        '\u{0192}' => 0x83,
        '\u{201E}' => 0x84,
        '\u{2026}' => 0x85,
        '\u{2020}' => 0x86,
        '\u{2021}' => 0x87,
        '\u{02C6}' => 0x88,
        '\u{2030}' => 0x89,
        '\u{0160}' => 0x8A,
        '\u{2039}' => 0x8B,
        '\u{0152}' => 0x8C,
        '\u{017D}' => 0x8E,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201C}' => 0x93,
        '\u{201D}' => 0x94,
        '\u{2022}' => 0x95,
        '\u{2013}' => 0x96,
        '\u{2014}' => 0x97,
        '\u{02DC}' => 0x98,
        '\u{2122}' => 0x99,
        '\u{0161}' => 0x9A,
        '\u{203A}' => 0x9B,
        '\u{0153}' => 0x9C,
        '\u{017E}' => 0x9E,
        '\u{0178}' => 0x9F,
        _ => return None,
    };
    Some(code)
}

/// Encodes `s` as WinAnsi bytes; characters without a WinAnsi glyph (including control
/// characters) become `?`.
pub(crate) fn encode_winansi(s: &str) -> Vec<u8> {
    s.chars().map(|c| winansi_code(c).unwrap_or(b'?')).collect()
}

/// Encodes one source line for a text page: tabs expand to the next multiple of
/// [`TAB_WIDTH`], carriage returns are dropped, anything else goes through
/// [`winansi_code`] (`?` when it has no code).
fn encode_text_line(line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\r' => {}
            '\t' => {
                let spaces = TAB_WIDTH - out.len() % TAB_WIDTH;
                out.resize(out.len() + spaces, b' ');
            }
            _ => out.push(winansi_code(c).unwrap_or(b'?')),
        }
    }
    out
}

/// Splits one encoded line into pieces of at most [`CHARS_PER_LINE`] characters: at the last
/// space that lets the piece fit (the space itself is dropped), or hard at the limit when the
/// piece has no such space.
fn wrap_line(mut line: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::with_capacity(line.len() / CHARS_PER_LINE + 1);
    while line.len() > CHARS_PER_LINE {
        match line[..=CHARS_PER_LINE].iter().rposition(|&b| b == b' ') {
            Some(space) if space > 0 => {
                pieces.push(&line[..space]);
                line = &line[space + 1..];
            }
            _ => {
                pieces.push(&line[..CHARS_PER_LINE]);
                line = &line[CHARS_PER_LINE..];
            }
        }
    }
    pieces.push(line);
    pieces
}

/// Lays `text` out in pages of at most [`LINES_PER_PAGE`] lines of at most
/// [`CHARS_PER_LINE`] WinAnsi characters, calling `page` with the lines of each page in turn
/// (at most one page is held at a time), and returns the number of pages.
///
/// Rules: `\n` ends a line (`\r\n` too; a final line break adds no empty line); long lines are
/// wrapped ([`wrap_line`]); a form feed `\x0c` ends the current page, so two in a row leave a
/// blank page and one at the very start gives a blank first page, but a form feed at the very
/// end adds no empty page. Any text, even the empty one, gives at least one page.
pub(crate) fn paginate<E>(
    text: &str,
    mut page: impl FnMut(&[Vec<u8>]) -> Result<(), E>,
) -> Result<u32, E> {
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(LINES_PER_PAGE);
    let mut pages: u32 = 0;
    for (index, segment) in text.split('\x0c').enumerate() {
        if index > 0 {
            page(&lines)?;
            pages += 1;
            lines.clear();
        }
        if segment.is_empty() {
            continue;
        }
        let segment = segment.strip_suffix('\n').unwrap_or(segment);
        for source_line in segment.split('\n') {
            let encoded = encode_text_line(source_line);
            for piece in wrap_line(&encoded) {
                if lines.len() == LINES_PER_PAGE {
                    page(&lines)?;
                    pages += 1;
                    lines.clear();
                }
                lines.push(piece.to_vec());
            }
        }
    }
    if !lines.is_empty() || pages == 0 {
        page(&lines)?;
        pages += 1;
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(text: &str) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        paginate::<()>(text, |lines| {
            pages.push(
                lines
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect(),
            );
            Ok(())
        })
        .expect("infallible");
        pages
    }

    #[test]
    fn winansi_maps_latin1_cp1252_extras_and_replaces_the_rest() {
        assert_eq!(encode_winansi("Aé€—ü"), vec![b'A', 0xE9, 0x80, 0x97, 0xFC]);
        assert_eq!(encode_winansi("漢x\u{7}"), b"?x?".to_vec());
    }

    #[test]
    fn helvetica_widths_match_the_afm() {
        assert_eq!(helvetica_width(b' '), 278);
        assert_eq!(helvetica_width(b'@'), 1015);
        assert_eq!(helvetica_width(b'i'), 222);
        assert_eq!(helvetica_width(b'W'), 944);
        assert_eq!(helvetica_width(0xE9), 556); // eacute
        assert_eq!(helvetica_width(0x97), 1000); // emdash
        assert_eq!(helvetica_width(0xFF), 500); // ydieresis
        assert!((helvetica_string_width(b"Doe") - 1.834).abs() < 1e-6);
    }

    #[test]
    fn wrapping_prefers_spaces_and_hard_wraps_words_that_do_not_fit() {
        let words = ["alpha"; 20].join(" "); // 119 characters
        let pages = layout(&words);
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].len(), 2);
        assert!(pages[0][0].len() <= CHARS_PER_LINE);
        assert_eq!(pages[0][0], ["alpha"; 13].join(" ")); // 77 characters
        assert_eq!(pages[0][1], ["alpha"; 7].join(" "));

        let long = "x".repeat(200);
        let pages = layout(&long);
        let lens: Vec<usize> = pages[0].iter().map(String::len).collect();
        assert_eq!(lens, vec![78, 78, 44]);
    }

    #[test]
    fn form_feeds_tabs_and_line_ends() {
        assert_eq!(layout(""), vec![Vec::<String>::new()]);
        assert_eq!(layout("a\n"), vec![vec!["a".to_string()]]);
        assert_eq!(
            layout("a\r\nb"),
            vec![vec!["a".to_string(), "b".to_string()]]
        );
        assert_eq!(layout("a\x0c"), vec![vec!["a".to_string()]]);
        assert_eq!(
            layout("a\n\x0cb\n"),
            vec![vec!["a".to_string()], vec!["b".to_string()]]
        );
        assert_eq!(layout("a\x0c\x0cb").len(), 3);
        assert_eq!(layout("\tx"), vec![vec!["        x".to_string()]]);
    }

    #[test]
    fn pages_hold_a_fixed_number_of_lines() {
        let text = |n: usize| (1..=n).map(|i| format!("line {i}\n")).collect::<String>();
        assert_eq!(layout(&text(56)).len(), 1);
        let pages = layout(&text(57));
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].len(), 56);
        assert_eq!(pages[1], vec!["line 57".to_string()]);
    }
}
