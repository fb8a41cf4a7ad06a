//! The user query language, parsed by this crate (not by tantivy's `QueryParser`).
//!
//! Owns: lexing and parsing the query a clinician types, analysing its words with the same
//! analyzer as the page text, and lowering the result into a tantivy query over the `text`
//! field only.
//!
//! Promises:
//! - Only the page text is searchable. There is no `field:value` syntax: `patient_id:x` is
//!   three words of text (`patient id x`, as a phrase), so a query can never reach the
//!   patient, category or any other field; those are the filters `search` adds itself.
//! - A query that cannot be parsed yields [`IndexError::Query`] whose message describes only
//!   the syntax problem; it never repeats words of the query.
//! - Parsing is bounded: query length, nesting depth, number of words and prefix expansions
//!   all have limits, so no query can exhaust the stack or the term dictionary.
//!
//! Syntax:
//! - `metformin insulin`: every word must occur (implicit AND).
//! - `"heart failure"`: a phrase, the words adjacent and in order.
//! - `metf*`: a prefix (at least [`MIN_PREFIX_CHARS`] letters); `"type 2 diab"*` is a phrase
//!   whose last word is a prefix.
//! - `AND`, `OR`, `NOT` (upper case only; lower-case `and`/`or`/`not` are plain words),
//!   `-word` (= `NOT word`), `+word` (= `word`, already required), `( … )` to group.
//! - Precedence: `NOT` binds tightest, then `OR`, then `AND` (explicit or implicit), as in
//!   web search: `metformin insulin OR glipizide` = `metformin AND (insulin OR glipizide)`.
//! - A query made only of exclusions (`-aspirin`) matches every page, within the filters,
//!   that lacks the excluded words.
//! - Words that analyse to nothing (punctuation) are ignored.

use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::Term;

use crate::error::IndexError;
use crate::schema::{analyze, text_analyzer};

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Most words and phrases in one query.
pub const MAX_QUERY_WORDS: usize = 64;
/// Deepest nesting of parentheses and `NOT`s.
const MAX_DEPTH: usize = 16;
/// Shortest prefix accepted before `*`, in characters.
pub const MIN_PREFIX_CHARS: usize = 2;
/// Most index terms one prefix expands to, per segment (in term order). A prefix matching
/// more terms than this finds only pages containing the first ones.
pub const PREFIX_MAX_EXPANSIONS: u32 = 1000;
/// Expansion bound for the prefix word of a phrase prefix (each expansion is a phrase).
const PHRASE_PREFIX_MAX_EXPANSIONS: u32 = 200;

/// A query after parsing and analysis: every string is an analysed index token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Clause {
    And(Vec<Clause>),
    Or(Vec<Clause>),
    Not(Box<Clause>),
    Term(String),
    Phrase(Vec<String>),
    Prefix(String),
    /// Leading words of a phrase, then the prefix of its last word.
    PhrasePrefix(Vec<String>, String),
}

/// Parses and analyses a user query.
pub(crate) fn parse_query(query: &str) -> Result<Clause, IndexError> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(IndexError::Query(format!(
            "the query is too long (at most {MAX_QUERY_CHARS} characters)"
        )));
    }
    let lexemes = lex(query)?;
    if lexemes.is_empty() {
        return Err(IndexError::query("the query is empty"));
    }
    let mut parser = Parser {
        lexemes,
        position: 0,
    };
    let ast = parser.parse_and(0)?;
    if parser.position < parser.lexemes.len() {
        // parse_and stops only at the end or at a ')' it did not open.
        return Err(IndexError::query("a ')' has no matching '('"));
    }
    let mut analysis = Analysis {
        analyzer: text_analyzer(),
        words: 0,
    };
    analysis
        .clause(ast)?
        .ok_or_else(|| IndexError::query("the query contains no searchable words"))
}

/// Lowers an analysed query into a tantivy query on `field`.
pub(crate) fn to_tantivy_query(clause: &Clause, field: Field) -> Box<dyn Query> {
    let term = |text: &str| Term::from_field_text(field, text);
    match clause {
        Clause::Term(text) => Box::new(TermQuery::new(term(text), IndexRecordOption::WithFreqs)),
        Clause::Phrase(words) => Box::new(PhraseQuery::new(
            words.iter().map(|word| term(word)).collect(),
        )),
        Clause::Prefix(prefix) => {
            let mut query = PhrasePrefixQuery::new(vec![term(prefix)]);
            query.set_max_expansions(PREFIX_MAX_EXPANSIONS);
            Box::new(query)
        }
        Clause::PhrasePrefix(words, prefix) => {
            let mut terms: Vec<Term> = words.iter().map(|word| term(word)).collect();
            terms.push(term(prefix));
            let mut query = PhrasePrefixQuery::new(terms);
            query.set_max_expansions(PHRASE_PREFIX_MAX_EXPANSIONS);
            Box::new(query)
        }
        Clause::And(items) => {
            let mut subqueries: Vec<(Occur, Box<dyn Query>)> = items
                .iter()
                .map(|item| match item {
                    Clause::Not(excluded) => (Occur::MustNot, to_tantivy_query(excluded, field)),
                    required => (Occur::Must, to_tantivy_query(required, field)),
                })
                .collect();
            if !subqueries.iter().any(|(occur, _)| *occur == Occur::Must) {
                subqueries.push((Occur::Must, Box::new(AllQuery)));
            }
            Box::new(BooleanQuery::new(subqueries))
        }
        Clause::Or(items) => Box::new(BooleanQuery::new(
            items
                .iter()
                .map(|item| (Occur::Should, to_tantivy_query(item, field)))
                .collect(),
        )),
        Clause::Not(excluded) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::MustNot, to_tantivy_query(excluded, field)),
        ])),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Lexeme {
    Open,
    Close,
    And,
    Or,
    Not,
    Minus,
    Plus,
    Word { text: String, prefix: bool },
    Phrase { text: String, prefix: bool },
}

fn lex(query: &str) -> Result<Vec<Lexeme>, IndexError> {
    let chars: Vec<char> = query.chars().collect();
    let mut lexemes = Vec::new();
    let mut index = 0;
    while let Some(&c) = chars.get(index) {
        if c.is_whitespace() {
            index += 1;
            continue;
        }
        match c {
            '(' => {
                lexemes.push(Lexeme::Open);
                index += 1;
            }
            ')' => {
                lexemes.push(Lexeme::Close);
                index += 1;
            }
            '"' => {
                let start = index + 1;
                let Some(length) = chars[start..].iter().position(|&c| c == '"') else {
                    return Err(IndexError::query("a quoted phrase is not closed"));
                };
                let text: String = chars[start..start + length].iter().collect();
                index = start + length + 1;
                let stars = count_stars(&chars[index..]);
                index += stars;
                lexemes.push(Lexeme::Phrase {
                    text,
                    prefix: stars > 0,
                });
            }
            '-' | '+' if starts_operand(chars.get(index + 1)) => {
                lexemes.push(if c == '-' {
                    Lexeme::Minus
                } else {
                    Lexeme::Plus
                });
                index += 1;
            }
            _ => {
                let start = index;
                while let Some(&c) = chars.get(index) {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"') {
                        break;
                    }
                    index += 1;
                }
                let word: String = chars[start..index].iter().collect();
                lexemes.push(match word.as_str() {
                    "AND" => Lexeme::And,
                    "OR" => Lexeme::Or,
                    "NOT" => Lexeme::Not,
                    _ => {
                        let stem = word.trim_end_matches('*');
                        Lexeme::Word {
                            prefix: stem.len() < word.len(),
                            text: stem.to_string(),
                        }
                    }
                });
            }
        }
    }
    Ok(lexemes)
}

fn count_stars(chars: &[char]) -> usize {
    chars.iter().take_while(|&&c| c == '*').count()
}

/// `-`/`+` are operators only when directly followed by what they apply to.
fn starts_operand(next: Option<&char>) -> bool {
    next.is_some_and(|&c| !c.is_whitespace() && c != ')')
}

/// The parsed query before analysis; words are still as the user typed them.
#[derive(Debug)]
enum Ast {
    And(Vec<Ast>),
    Or(Vec<Ast>),
    Not(Box<Ast>),
    Word { text: String, prefix: bool },
    Phrase { text: String, prefix: bool },
}

struct Parser {
    lexemes: Vec<Lexeme>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Lexeme> {
        self.lexemes.get(self.position)
    }

    /// and := or ( [AND] or )*, up to the end or a ')'.
    fn parse_and(&mut self, depth: usize) -> Result<Ast, IndexError> {
        let mut items = vec![self.parse_or(depth)?];
        loop {
            match self.peek() {
                None | Some(Lexeme::Close) => break,
                Some(Lexeme::And) => {
                    self.position += 1;
                    if matches!(self.peek(), None | Some(Lexeme::Close)) {
                        return Err(IndexError::query(
                            "'AND' must stand between two words or phrases",
                        ));
                    }
                    items.push(self.parse_or(depth)?);
                }
                Some(_) => items.push(self.parse_or(depth)?),
            }
        }
        Ok(single_or(items, Ast::And))
    }

    /// or := unary ( OR unary )*
    fn parse_or(&mut self, depth: usize) -> Result<Ast, IndexError> {
        let mut items = vec![self.parse_unary(depth)?];
        while self.peek() == Some(&Lexeme::Or) {
            self.position += 1;
            if matches!(self.peek(), None | Some(Lexeme::Close)) {
                return Err(IndexError::query(
                    "'OR' must stand between two words or phrases",
                ));
            }
            items.push(self.parse_unary(depth)?);
        }
        Ok(single_or(items, Ast::Or))
    }

    /// unary := (NOT | - | +) unary | '(' and ')' | word | phrase
    fn parse_unary(&mut self, depth: usize) -> Result<Ast, IndexError> {
        if depth >= MAX_DEPTH {
            return Err(IndexError::query("the query is nested too deeply"));
        }
        let Some(lexeme) = self.lexemes.get(self.position).cloned() else {
            return Err(IndexError::query(
                "the query ends where a word or phrase was expected",
            ));
        };
        self.position += 1;
        match lexeme {
            Lexeme::Not | Lexeme::Minus => {
                if matches!(self.peek(), None | Some(Lexeme::Close)) {
                    return Err(IndexError::query(
                        "'NOT' or '-' must be followed by a word or phrase",
                    ));
                }
                Ok(Ast::Not(Box::new(self.parse_unary(depth + 1)?)))
            }
            Lexeme::Plus => self.parse_unary(depth + 1),
            Lexeme::Open => {
                if self.peek() == Some(&Lexeme::Close) {
                    return Err(IndexError::query("the query has empty parentheses"));
                }
                let inner = self.parse_and(depth + 1)?;
                if self.peek() != Some(&Lexeme::Close) {
                    return Err(IndexError::query("a '(' is not closed"));
                }
                self.position += 1;
                Ok(inner)
            }
            Lexeme::Close => Err(IndexError::query("a ')' has no matching '('")),
            Lexeme::And => Err(IndexError::query(
                "'AND' must stand between two words or phrases",
            )),
            Lexeme::Or => Err(IndexError::query(
                "'OR' must stand between two words or phrases",
            )),
            Lexeme::Word { text, prefix } => Ok(Ast::Word { text, prefix }),
            Lexeme::Phrase { text, prefix } => Ok(Ast::Phrase { text, prefix }),
        }
    }
}

fn single_or<T>(mut items: Vec<T>, combine: impl FnOnce(Vec<T>) -> T) -> T {
    if items.len() == 1 {
        items.pop().expect("a list of length one has a last item")
    } else {
        combine(items)
    }
}

struct Analysis {
    analyzer: TextAnalyzer,
    words: usize,
}

impl Analysis {
    /// Analyses the words of `ast`; `None` when nothing searchable remains.
    fn clause(&mut self, ast: Ast) -> Result<Option<Clause>, IndexError> {
        match ast {
            Ast::And(items) => self.list(items, Clause::And),
            Ast::Or(items) => self.list(items, Clause::Or),
            Ast::Not(inner) => Ok(self.clause(*inner)?.map(|c| Clause::Not(Box::new(c)))),
            Ast::Word { text, prefix } | Ast::Phrase { text, prefix } => {
                self.words += 1;
                if self.words > MAX_QUERY_WORDS {
                    return Err(IndexError::Query(format!(
                        "the query has too many words or phrases (at most {MAX_QUERY_WORDS})"
                    )));
                }
                self.leaf(&text, prefix)
            }
        }
    }

    fn list(
        &mut self,
        items: Vec<Ast>,
        combine: fn(Vec<Clause>) -> Clause,
    ) -> Result<Option<Clause>, IndexError> {
        let mut clauses = Vec::with_capacity(items.len());
        for item in items {
            if let Some(clause) = self.clause(item)? {
                clauses.push(clause);
            }
        }
        Ok(match clauses.len() {
            0 => None,
            _ => Some(single_or(clauses, combine)),
        })
    }

    fn leaf(&mut self, text: &str, prefix: bool) -> Result<Option<Clause>, IndexError> {
        let mut tokens = analyze(&mut self.analyzer, text);
        if prefix {
            let too_short = || {
                IndexError::Query(format!(
                    "a prefix search needs at least {MIN_PREFIX_CHARS} letters or digits before '*'"
                ))
            };
            let last = tokens.pop().ok_or_else(too_short)?;
            if tokens.is_empty() {
                if last.chars().count() < MIN_PREFIX_CHARS {
                    return Err(too_short());
                }
                return Ok(Some(Clause::Prefix(last)));
            }
            return Ok(Some(Clause::PhrasePrefix(tokens, last)));
        }
        Ok(match tokens.len() {
            0 => None,
            1 => tokens.pop().map(Clause::Term),
            _ => Some(Clause::Phrase(tokens)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(text: &str) -> Clause {
        Clause::Term(text.to_string())
    }

    fn error_of(query: &str) -> String {
        match parse_query(query) {
            Err(IndexError::Query(message)) => message,
            other => panic!("expected a query error for {query:?}, got {other:?}"),
        }
    }

    #[test]
    fn words_are_a_conjunction() {
        assert_eq!(
            parse_query("Metformin insulin").expect("valid"),
            Clause::And(vec![term("metformin"), term("insulin")])
        );
    }

    #[test]
    fn or_binds_tighter_than_and() {
        assert_eq!(
            parse_query("metformin insulin OR glipizide").expect("valid"),
            Clause::And(vec![
                term("metformin"),
                Clause::Or(vec![term("insulin"), term("glipizide")])
            ])
        );
    }

    #[test]
    fn not_minus_and_plus() {
        assert_eq!(
            parse_query("+a -b NOT c").expect("valid"),
            Clause::And(vec![
                term("a"),
                Clause::Not(Box::new(term("b"))),
                Clause::Not(Box::new(term("c")))
            ])
        );
    }

    #[test]
    fn parentheses_group() {
        assert_eq!(
            parse_query("(a OR b) AND c").expect("valid"),
            Clause::And(vec![Clause::Or(vec![term("a"), term("b")]), term("c")])
        );
    }

    #[test]
    fn phrases_and_prefixes() {
        assert_eq!(
            parse_query("\"Heart  Failure\" metf*").expect("valid"),
            Clause::And(vec![
                Clause::Phrase(vec!["heart".into(), "failure".into()]),
                Clause::Prefix("metf".into())
            ])
        );
        assert_eq!(
            parse_query("\"type 2 diab\"*").expect("valid"),
            Clause::PhrasePrefix(vec!["type".into(), "2".into()], "diab".into())
        );
    }

    #[test]
    fn field_syntax_is_plain_text() {
        assert_eq!(
            parse_query("patient_id:abc").expect("valid"),
            Clause::Phrase(vec!["patient".into(), "id".into(), "abc".into()])
        );
    }

    #[test]
    fn lower_case_operators_are_words() {
        assert_eq!(
            parse_query("not and or").expect("valid"),
            Clause::And(vec![term("not"), term("and"), term("or")])
        );
    }

    #[test]
    fn syntax_errors_are_reported_without_query_words() {
        for query in [
            "",
            "   ",
            "\"open phrase",
            "(a b",
            "a b)",
            "a OR",
            "AND a",
            "a AND",
            "NOT",
            "()",
            "m*",
            "*",
            "!!! ...",
        ] {
            let message = error_of(query);
            assert!(!message.is_empty());
        }
        let message = error_of("secretword OR");
        assert!(!message.contains("secretword"));
    }

    #[test]
    fn limits_are_enforced() {
        error_of(&"x ".repeat(MAX_QUERY_CHARS));
        error_of(&"w ".repeat(MAX_QUERY_WORDS + 1));
        error_of(&format!("{}a{}", "(".repeat(40), ")".repeat(40)));
        error_of(&format!("{}a", "NOT ".repeat(40)));
    }
}
