//! Redaction proposals: which OCR words of a page match a sensitive pattern or a phrase.
//! Matching runs over each OCR line as text (words joined by a space), so a pattern or a
//! phrase that spans words (`123 45 6789`, a full name) is found, and every word a match
//! touches is proposed.

use chartvault_ocr::OcrWord;
use regex::Regex;

/// Named patterns for what is commonly redacted from a production.
const PATTERNS: &[(&str, &str)] = &[
    // US social security numbers: 123-45-6789, 123 45 6789, 123456789.
    ("ssn", r"\b\d{3}[- ]?\d{2}[- ]?\d{4}\b"),
    // North American phone numbers: (555) 123-4567, 555-123-4567, 555.123.4567.
    ("phone", r"(?:\(\d{3}\)\s?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b"),
    (
        "email",
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b",
    ),
    // Dates: 03/14/1998, 3-14-98, 1998-03-14.
    (
        "date",
        r"\b(?:\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|\d{4}-\d{2}-\d{2})\b",
    ),
];

pub struct Matcher {
    regex: Regex,
}

impl Matcher {
    /// One of the named patterns (`ssn`, `phone`, `email`, `date`).
    pub fn pattern(name: &str) -> Result<Matcher, String> {
        let (_, pattern) = PATTERNS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            let names: Vec<&str> = PATTERNS.iter().map(|(n, _)| *n).collect();
            format!("pattern must be one of: {}", names.join(", "))
        })?;
        Ok(Matcher {
            regex: Regex::new(pattern).expect("the named patterns compile"),
        })
    }

    /// A word or phrase: case-insensitive, whole words, any spacing between them.
    pub fn phrase(text: &str) -> Result<Matcher, String> {
        let words: Vec<String> = text.split_whitespace().map(regex::escape).collect();
        if words.is_empty() || text.chars().count() > 200 {
            return Err("text must be 1 to 200 characters".into());
        }
        let pattern = format!(r"(?i)(?:^|\W){}(?:$|\W)", words.join(r"\s+"));
        Ok(Matcher {
            regex: Regex::new(&pattern).map_err(|e| e.to_string())?,
        })
    }

    /// Indexes of the words any match touches, in order.
    pub fn find(&self, words: &[OcrWord]) -> Vec<usize> {
        let mut hits = Vec::new();
        let mut start = 0;
        while start < words.len() {
            let key = |w: &OcrWord| (w.block, w.par, w.line);
            let mut end = start + 1;
            while end < words.len() && key(&words[end]) == key(&words[start]) {
                end += 1;
            }
            let mut text = String::new();
            let mut spans = Vec::with_capacity(end - start);
            for word in &words[start..end] {
                if !text.is_empty() {
                    text.push(' ');
                }
                let from = text.len();
                text.push_str(&word.text);
                spans.push((from, text.len()));
            }
            for found in self.regex.find_iter(&text) {
                // A phrase match may include the separator before and after: trim it.
                let (mut a, mut b) = (found.start(), found.end());
                while a < b
                    && !text.as_bytes()[a].is_ascii_alphanumeric()
                    && text.as_bytes()[a] == b' '
                {
                    a += 1;
                }
                while b > a && text.as_bytes()[b - 1] == b' ' {
                    b -= 1;
                }
                for (i, &(from, to)) in spans.iter().enumerate() {
                    if from < b && a < to && !hits.contains(&(start + i)) {
                        hits.push(start + i);
                    }
                }
            }
            start = end;
        }
        hits.sort_unstable();
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(texts: &[&str], line: u32) -> Vec<OcrWord> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| OcrWord {
                text: t.to_string(),
                left: 100 * i as u32,
                top: 50 * line,
                width: 90,
                height: 30,
                confidence: 90.0,
                block: 1,
                par: 1,
                line,
                word: i as u32 + 1,
                hidden: false,
            })
            .collect()
    }

    #[test]
    fn social_security_numbers_are_found_whole_or_split_across_words() {
        let mut words = line(&["SSN:", "123-45-6789", "on", "file"], 1);
        words.extend(line(&["Alt", "987", "65", "4321", "and", "12345"], 2));
        let m = Matcher::pattern("ssn").unwrap();
        assert_eq!(m.find(&words), vec![1, 5, 6, 7]);
    }

    #[test]
    fn a_phrase_matches_whole_words_case_insensitively_and_not_across_lines() {
        let mut words = line(&["Patient:", "JANE", "Q", "DOE,", "seen"], 1);
        words.extend(line(&["by", "Dr", "Jane"], 2));
        words.extend(line(&["Q", "Doe"], 3));
        words.extend(line(&["Janet", "Q", "Doerr"], 4));
        let m = Matcher::phrase("jane q doe").unwrap();
        assert_eq!(m.find(&words), vec![1, 2, 3]);
    }

    #[test]
    fn unknown_patterns_and_empty_phrases_are_refused() {
        assert!(Matcher::pattern("credit-card").is_err());
        assert!(Matcher::phrase("   ").is_err());
    }
}
