//! Character error rate, the measure this project uses to compare OCR output with ground
//! truth (in tests here and in the app).

/// Levenshtein distance between `reference` and `hypothesis`, counted in Unicode scalar
/// values after collapsing every run of whitespace to one space and trimming both ends,
/// divided by the length of the normalised reference.
///
/// An empty reference gives 0.0 for an empty hypothesis and 1.0 otherwise.
pub fn character_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let reference = normalise_whitespace(reference);
    let hypothesis = normalise_whitespace(hypothesis);
    if reference.is_empty() {
        return if hypothesis.is_empty() { 0.0 } else { 1.0 };
    }
    levenshtein(&reference, &hypothesis) as f64 / reference.len() as f64
}

fn normalise_whitespace(text: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars());
    }
    out
}

/// Edit distance with unit costs, two rows of memory.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_up_to_whitespace_has_no_errors() {
        assert_eq!(character_error_rate("a  quick\nfox ", " a quick fox"), 0.0);
    }

    #[test]
    fn edits_are_counted_against_the_reference_length() {
        assert_eq!(character_error_rate("kitten", "sitting"), 3.0 / 6.0);
        assert_eq!(character_error_rate("abcd", ""), 1.0);
        assert_eq!(character_error_rate("", ""), 0.0);
        assert_eq!(character_error_rate("", "x"), 1.0);
    }

    #[test]
    fn characters_not_bytes_are_compared() {
        assert_eq!(character_error_rate("café", "cafe"), 0.25);
    }
}
