//! Highlighting of search hits on page text and on OCR word boxes.
//!
//! Owns: what counts as "a word the query matched". A [`Highlighter`] is built from the
//! parsed query and holds the analysed terms and prefixes the query matches *positively*
//! (words under `NOT` are never highlighted). It re-analyses words and text with the very
//! analyzer used for indexing, so what is highlighted is what was searched.
//!
//! Promises: [`Highlighter::snippet`] returns HTML-safe text (everything escaped; the only
//! markup is `<mark>`/`</mark>`), whose visible length, "…" included, is at most `max_chars`
//! characters, cut only at character boundaries. Snippets are built by the caller from the
//! decrypted page text after authorisation: the index does not store page text.

use std::collections::BTreeSet;
use std::fmt;

use tantivy::tokenizer::TextAnalyzer;

use crate::query::Clause;
use crate::schema::{analyze, text_analyzer};

const ELLIPSIS: char = '…';
/// Weight of a word inside a matched phrase, against 1 for a lone matching word, so windows
/// holding the phrase win.
const PHRASE_WORD_WEIGHT: usize = 3;

/// What a query matches positively, for highlighting. Cheap to clone.
#[derive(Clone)]
pub struct Highlighter {
    terms: BTreeSet<String>,
    prefixes: BTreeSet<String>,
    /// Phrases as analysed words; `true` when the last word is a prefix.
    phrases: Vec<(Vec<String>, bool)>,
    analyzer: TextAnalyzer,
}

impl fmt::Debug for Highlighter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Query terms can be PHI (a name searched for): keep them out of debug output.
        f.debug_struct("Highlighter")
            .field("terms", &self.terms.len())
            .field("prefixes", &self.prefixes.len())
            .field("phrases", &self.phrases.len())
            .finish()
    }
}

/// One analysed token of the text being highlighted, in characters.
struct TextToken {
    char_start: usize,
    char_end: usize,
    position: usize,
    text: String,
}

impl Highlighter {
    pub(crate) fn from_clause(clause: &Clause) -> Self {
        let mut highlighter = Highlighter {
            terms: BTreeSet::new(),
            prefixes: BTreeSet::new(),
            phrases: Vec::new(),
            analyzer: text_analyzer(),
        };
        highlighter.collect(clause, true);
        highlighter
    }

    /// A highlighter that matches nothing.
    pub fn empty() -> Self {
        Highlighter {
            terms: BTreeSet::new(),
            prefixes: BTreeSet::new(),
            phrases: Vec::new(),
            analyzer: text_analyzer(),
        }
    }

    fn collect(&mut self, clause: &Clause, positive: bool) {
        match clause {
            Clause::Not(inner) => self.collect(inner, !positive),
            Clause::And(items) | Clause::Or(items) => {
                for item in items {
                    self.collect(item, positive);
                }
            }
            _ if !positive => {}
            Clause::Term(term) => {
                self.terms.insert(term.clone());
            }
            Clause::Prefix(prefix) => {
                self.prefixes.insert(prefix.clone());
            }
            Clause::Phrase(words) => {
                self.terms.extend(words.iter().cloned());
                self.phrases.push((words.clone(), false));
            }
            Clause::PhrasePrefix(words, prefix) => {
                self.terms.extend(words.iter().cloned());
                self.prefixes.insert(prefix.clone());
                let mut all = words.clone();
                all.push(prefix.clone());
                self.phrases.push((all, true));
            }
        }
    }

    /// True when the query has nothing to highlight (e.g. it only excludes words).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.prefixes.is_empty()
    }

    fn token_matches(&self, token: &str) -> bool {
        self.terms.contains(token)
            || self
                .prefixes
                .iter()
                .any(|prefix| token.starts_with(prefix.as_str()))
    }

    /// Whether an OCR word should be highlighted: `word` is analysed like page text, and it
    /// matches when any of its tokens equals a query term or starts with a query prefix
    /// (`"Metformin,"` matches the query `metformin`).
    pub fn matches_word(&self, word: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let mut analyzer = self.analyzer.clone();
        analyze(&mut analyzer, word)
            .iter()
            .any(|token| self.token_matches(token))
    }

    /// The best window of `text` for this query, as HTML: at most `max_chars` visible
    /// characters ("…" marks included), the window holding the most matches (phrase matches
    /// count more), matched words wrapped in `<mark>…</mark>`, everything else escaped. When
    /// nothing matches, the start of the text.
    pub fn snippet(&self, text: &str, max_chars: usize) -> String {
        if max_chars == 0 {
            return String::new();
        }
        // Byte offset of every char, plus the end, to convert between bytes and chars.
        let mut char_bytes: Vec<usize> = text.char_indices().map(|(byte, _)| byte).collect();
        let total_chars = char_bytes.len();
        char_bytes.push(text.len());

        let tokens = self.tokens_of(text, &char_bytes);
        let weights = self.match_weights(&tokens);
        let matches: Vec<(usize, usize, usize)> = tokens
            .iter()
            .zip(&weights)
            .filter(|(_, &weight)| weight > 0)
            .map(|(token, &weight)| (token.char_start, token.char_end, weight))
            .collect();

        let (start, end) = if total_chars <= max_chars {
            (0, total_chars)
        } else if max_chars < 3 {
            // No room for a cut mark and text: just the first characters.
            let mut html = String::new();
            push_escaped(&mut html, &text[..char_bytes[max_chars]]);
            return html;
        } else {
            choose_window(text, &char_bytes, &matches, max_chars)
        };

        let mut html = String::with_capacity((end - start) * 2 + 32);
        if start > 0 {
            html.push(ELLIPSIS);
        }
        let mut cursor = start;
        for &(match_start, match_end, _) in &matches {
            if match_start < start || match_end > end {
                continue;
            }
            push_escaped(
                &mut html,
                &text[char_bytes[cursor]..char_bytes[match_start]],
            );
            html.push_str("<mark>");
            push_escaped(
                &mut html,
                &text[char_bytes[match_start]..char_bytes[match_end]],
            );
            html.push_str("</mark>");
            cursor = match_end;
        }
        push_escaped(&mut html, &text[char_bytes[cursor]..char_bytes[end]]);
        if end < total_chars {
            html.push(ELLIPSIS);
        }
        html
    }

    fn tokens_of(&self, text: &str, char_bytes: &[usize]) -> Vec<TextToken> {
        let to_char = |byte: usize| char_bytes.partition_point(|&b| b < byte);
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while stream.advance() {
            let token = stream.token();
            tokens.push(TextToken {
                char_start: to_char(token.offset_from),
                char_end: to_char(token.offset_to),
                position: token.position,
                text: token.text.clone(),
            });
        }
        tokens
    }

    /// Per token: 0 when it does not match, [`PHRASE_WORD_WEIGHT`] inside a phrase match,
    /// 1 otherwise.
    fn match_weights(&self, tokens: &[TextToken]) -> Vec<usize> {
        let mut weights: Vec<usize> = tokens
            .iter()
            .map(|token| usize::from(self.token_matches(&token.text)))
            .collect();
        for (words, last_is_prefix) in &self.phrases {
            for first in 0..tokens.len() {
                let Some(window) = tokens.get(first..first + words.len()) else {
                    break;
                };
                let adjacent = window
                    .windows(2)
                    .all(|pair| pair[1].position == pair[0].position + 1);
                let equal = window
                    .iter()
                    .zip(words)
                    .enumerate()
                    .all(|(i, (token, word))| {
                        if *last_is_prefix && i + 1 == words.len() {
                            token.text.starts_with(word.as_str())
                        } else {
                            token.text == *word
                        }
                    });
                if adjacent && equal {
                    for weight in &mut weights[first..first + words.len()] {
                        *weight = PHRASE_WORD_WEIGHT;
                    }
                }
            }
        }
        weights
    }
}

/// Picks `[start, end)` in chars, for a text longer than `max_chars`, leaving room for an
/// ellipsis on each cut side.
fn choose_window(
    text: &str,
    char_bytes: &[usize],
    matches: &[(usize, usize, usize)],
    max_chars: usize,
) -> (usize, usize) {
    let total_chars = char_bytes.len() - 1;
    let width = max_chars - 2;
    let is_space = |char_index: usize| {
        text[char_bytes[char_index]..]
            .chars()
            .next()
            .is_some_and(char::is_whitespace)
    };

    // Best run of matches fitting in `width`: most weight, earliest on ties.
    let mut best: Option<(usize, usize, usize)> = None; // (weight, first, last)
    let mut last = 0;
    let mut weight = 0;
    for first in 0..matches.len() {
        if last < first {
            last = first;
            weight = 0;
        }
        while last < matches.len() && matches[last].1 - matches[first].0 <= width {
            weight += matches[last].2;
            last += 1;
        }
        if last > first && best.is_none_or(|(best_weight, _, _)| weight > best_weight) {
            best = Some((weight, first, last - 1));
        }
        if last > first {
            weight -= matches[first].2;
        }
    }

    let Some((_, first, last)) = best else {
        // No match: the start of the text, ending at a word boundary when one is near.
        let mut end = width.min(total_chars);
        let floor = end / 2;
        while end > floor && end < total_chars && !is_space(end) {
            end -= 1;
        }
        if end == floor {
            end = width.min(total_chars);
        }
        return (0, end);
    };

    let span_start = matches[first].0;
    let span_end = matches[last].1;
    let slack = width - (span_end - span_start);
    let mut start = span_start.saturating_sub(slack / 2);
    let mut end = (start + width).min(total_chars);
    if end - start < width {
        start = end.saturating_sub(width);
    }
    // Do not start or end inside a word, unless that would drop a chosen match.
    while start > 0 && start < span_start && !is_space(start - 1) {
        start += 1;
    }
    while end < total_chars && end > span_end && !is_space(end) {
        end -= 1;
    }
    (start, end)
}

fn push_escaped(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            _ => html.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_query;

    fn highlighter(query: &str) -> Highlighter {
        Highlighter::from_clause(&parse_query(query).expect("test queries are valid"))
    }

    /// The text a reader sees: tags removed, entities decoded.
    fn visible(html: &str) -> String {
        html.replace("<mark>", "")
            .replace("</mark>", "")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    #[test]
    fn matches_word_folds_punctuation_case_and_accents() {
        let h = highlighter("metformin café glip*");
        assert!(h.matches_word("Metformin,"));
        assert!(h.matches_word("CAFE"));
        assert!(h.matches_word("Glipizide."));
        assert!(!h.matches_word("insulin"));
    }

    #[test]
    fn excluded_words_are_not_highlighted() {
        let h = highlighter("metformin -insulin NOT (aspirin)");
        assert!(h.matches_word("metformin"));
        assert!(!h.matches_word("insulin"));
        assert!(!h.matches_word("aspirin"));
        assert!(highlighter("-insulin").is_empty());
    }

    #[test]
    fn snippet_marks_the_matched_word() {
        let h = highlighter("metformin");
        assert_eq!(
            h.snippet("Started Metformin 500mg.", 100),
            "Started <mark>Metformin</mark> 500mg."
        );
    }

    #[test]
    fn snippet_escapes_html_in_page_text() {
        let h = highlighter("metformin");
        let html = h.snippet("<script>alert('x')</script> metformin & co", 200);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&amp; co"));
        assert!(html.contains("<mark>metformin</mark>"));
    }

    #[test]
    fn snippet_respects_max_chars_and_centres_the_match() {
        let filler = "lorem ipsum dolor sit amet ".repeat(40);
        let text = format!("{filler}patient started metformin today. {filler}");
        let h = highlighter("metformin");
        for max_chars in [1, 2, 3, 10, 30, 80, 200] {
            let html = h.snippet(&text, max_chars);
            let shown = visible(&html);
            assert!(
                shown.chars().count() <= max_chars,
                "{max_chars}: {shown:?} is too long"
            );
        }
        let html = h.snippet(&text, 80);
        assert!(html.contains("<mark>metformin</mark>"), "{html}");
        assert!(html.starts_with(ELLIPSIS) && html.ends_with(ELLIPSIS));
    }

    #[test]
    fn snippet_never_cuts_inside_a_character() {
        let text = "é".repeat(500) + " café " + &"ü".repeat(500);
        let h = highlighter("cafe");
        for max_chars in 1..40 {
            let html = h.snippet(&text, max_chars);
            assert!(visible(&html).chars().count() <= max_chars);
        }
        assert!(h.snippet(&text, 30).contains("<mark>café</mark>"));
    }

    #[test]
    fn snippet_without_match_is_the_start_of_the_text() {
        let h = highlighter("metformin");
        let text = "Discharge summary for the admission of ".repeat(10);
        let html = h.snippet(&text, 40);
        assert!(html.starts_with("Discharge summary"));
        assert!(html.ends_with(ELLIPSIS));
        assert!(visible(&html).chars().count() <= 40);
    }

    #[test]
    fn snippet_prefers_the_phrase_match() {
        let h = highlighter("\"heart failure\"");
        let text = format!(
            "heart rate normal. {} Assessment: congestive heart failure, stable.",
            "filler words here ".repeat(20)
        );
        let html = h.snippet(&text, 60);
        assert!(
            html.contains("<mark>heart</mark> <mark>failure</mark>"),
            "{html}"
        );
    }
}
