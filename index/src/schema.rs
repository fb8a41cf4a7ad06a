//! The index schema and the text analysis shared by indexing, querying and highlighting.
//!
//! Owns: field names and options, the `cv_text` analyzer, and the encoding of ids, dates and
//! the unique per-page key into index terms. Promises: page text is indexed with positions
//! but never stored; the only stored values are opaque ids, page numbers, document type,
//! category and service date; every page has exactly one `doc_page` key, which both makes
//! re-indexing idempotent (delete by key, then add) and gives search a deterministic
//! tie-break order.

use chrono::NaiveDate;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, Schema,
    TextFieldIndexing, TextOptions, FAST, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{DateTime, Index, Term};
use uuid::Uuid;

/// Name under which the text analyzer is registered on every opened index.
pub const TEXT_ANALYZER: &str = "cv_text";

/// Tokens longer than this many bytes are dropped (OCR noise, base64 blobs).
const MAX_TOKEN_BYTES: usize = 40;

pub(crate) const F_TEXT: &str = "text";
pub(crate) const F_DOCUMENT_ID: &str = "document_id";
pub(crate) const F_PAGE: &str = "page";
pub(crate) const F_PATIENT_ID: &str = "patient_id";
pub(crate) const F_DOCUMENT_TYPE: &str = "document_type";
pub(crate) const F_CATEGORY: &str = "category";
pub(crate) const F_SERVICE_DATE: &str = "service_date";
pub(crate) const F_DOC_PAGE: &str = "doc_page";
pub(crate) const F_PATIENT_NAME: &str = "patient_name";

/// The analyzer for page text and query words: split on non-alphanumerics, drop over-long
/// tokens, lowercase, fold accents to ASCII (`Café` → `cafe`).
pub fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Runs `text` through [`text_analyzer`] and returns the token texts.
pub(crate) fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        tokens.push(stream.token().text.clone());
    }
    tokens
}

/// Handles on the schema's fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub text: Field,
    pub document_id: Field,
    pub page: Field,
    pub patient_id: Field,
    pub document_type: Field,
    pub category: Field,
    pub service_date: Field,
    pub doc_page: Field,
    pub patient_name: Field,
}

pub(crate) fn build_schema() -> Schema {
    let mut builder = Schema::builder();
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer(TEXT_ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    builder.add_text_field(
        F_TEXT,
        TextOptions::default().set_indexing_options(text_indexing),
    );
    builder.add_text_field(F_DOCUMENT_ID, STRING | STORED);
    builder.add_u64_field(F_PAGE, NumericOptions::default().set_indexed().set_stored());
    // Fast too: a patient-name search gathers the distinct patients of its matches.
    builder.add_text_field(F_PATIENT_ID, STRING | STORED | FAST);
    builder.add_text_field(F_DOCUMENT_TYPE, STRING | STORED);
    builder.add_text_field(F_CATEGORY, STRING | STORED);
    builder.add_date_field(
        F_SERVICE_DATE,
        DateOptions::default()
            .set_indexed()
            .set_stored()
            .set_fast()
            .set_precision(DateTimePrecision::Seconds),
    );
    builder.add_text_field(F_DOC_PAGE, STRING | FAST);
    // The patient's name, indexed (never stored) on each of their pages, so a name search
    // needs no plaintext name anywhere but this encrypted index.
    builder.add_text_field(
        F_PATIENT_NAME,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TEXT_ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    builder.build()
}

impl Fields {
    pub(crate) fn from_schema(schema: &Schema) -> Result<Self, tantivy::TantivyError> {
        Ok(Fields {
            text: schema.get_field(F_TEXT)?,
            document_id: schema.get_field(F_DOCUMENT_ID)?,
            page: schema.get_field(F_PAGE)?,
            patient_id: schema.get_field(F_PATIENT_ID)?,
            document_type: schema.get_field(F_DOCUMENT_TYPE)?,
            category: schema.get_field(F_CATEGORY)?,
            service_date: schema.get_field(F_SERVICE_DATE)?,
            doc_page: schema.get_field(F_DOC_PAGE)?,
            patient_name: schema.get_field(F_PATIENT_NAME)?,
        })
    }
}

/// Registers the analyzers the schema names; tantivy does not persist them in the index.
pub(crate) fn register_analyzers(index: &Index) {
    index.tokenizers().register(TEXT_ANALYZER, text_analyzer());
}

/// Ids are stored as lowercase hyphenated strings, so their lexical order is the UUID's
/// byte order.
pub(crate) fn uuid_string(id: Uuid) -> String {
    id.as_hyphenated().to_string()
}

/// The unique key of one page: `<document uuid>:<page, zero-padded to 10 digits>`. Sorting
/// keys as strings sorts by (document id, page).
pub(crate) fn doc_page_key(document_id: Uuid, page: u32) -> String {
    format!("{}:{page:010}", uuid_string(document_id))
}

/// The (document id, page) of a [`doc_page_key`]; `None` if `key` is not one.
pub(crate) fn parse_doc_page_key(key: &str) -> Option<(Uuid, u32)> {
    let (document_id, page) = key.split_once(':')?;
    if page.len() != 10 || !page.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((Uuid::parse_str(document_id).ok()?, page.parse().ok()?))
}

pub(crate) fn doc_page_term(fields: &Fields, document_id: Uuid, page: u32) -> Term {
    Term::from_field_text(fields.doc_page, &doc_page_key(document_id, page))
}

/// A service date is indexed as midnight UTC of that day. tantivy keeps nanoseconds in an
/// i64 (the years 1678 to 2261): a date outside is indexed and searched as the nearest
/// instant it can hold, so a range from or to the year 885 still orders correctly.
pub(crate) fn date_value(date: NaiveDate) -> DateTime {
    const NANOS: i64 = 1_000_000_000;
    let seconds = date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists on every calendar day")
        .and_utc()
        .timestamp();
    DateTime::from_timestamp_secs(seconds.clamp(i64::MIN / NANOS + 1, i64::MAX / NANOS - 1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_beyond_what_tantivy_holds_are_held_at_its_bounds_in_order() {
        let day = |y, m, d| super::date_value(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap());
        assert!(day(885, 8, 26) < day(1998, 5, 1));
        assert!(day(1998, 5, 1) < day(9999, 12, 31));
        assert_eq!(
            day(1998, 5, 1).into_timestamp_secs(),
            chrono::NaiveDate::from_ymd_opt(1998, 5, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp()
        );
    }

    use super::*;

    #[test]
    fn page_text_is_indexed_with_positions_but_not_stored() {
        let schema = build_schema();
        let entry = schema.get_field_entry(schema.get_field(F_TEXT).expect("text field"));
        assert!(!entry.is_stored());
        assert!(entry
            .field_type()
            .get_index_record_option()
            .is_some_and(IndexRecordOption::has_positions));
    }

    #[test]
    fn doc_page_keys_sort_by_document_then_page() {
        let document = Uuid::from_u128(7);
        assert!(doc_page_key(document, 9) < doc_page_key(document, 10));
        assert!(doc_page_key(document, u32::MAX) < doc_page_key(Uuid::from_u128(8), 1));
    }

    #[test]
    fn doc_page_keys_parse_back() {
        let document = Uuid::new_v4();
        for page in [1, 10, u32::MAX] {
            assert_eq!(
                parse_doc_page_key(&doc_page_key(document, page)),
                Some((document, page))
            );
        }
        let key = doc_page_key(document, 7);
        assert_eq!(parse_doc_page_key(&key.replace(':', "-")), None);
        assert_eq!(parse_doc_page_key(&format!("{key}0")), None);
        assert_eq!(parse_doc_page_key("not-a-uuid:0000000001"), None);
        assert_eq!(parse_doc_page_key(&format!("{document}:99999999999")), None);
    }

    #[test]
    fn analyzer_folds_case_and_accents_and_drops_long_tokens() {
        let mut analyzer = text_analyzer();
        let long = "x".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            analyze(&mut analyzer, &format!("Café, METFORMIN {long} naïve")),
            vec!["cafe", "metformin", "naive"]
        );
    }
}
