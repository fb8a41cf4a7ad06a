//! Patient-name search: the names live only in this (encrypted) index, indexed on each of a
//! patient's pages and never stored; the database holds them sealed.
//!
//! Promises: every word of the name query must match a word of the patient's name (the
//! last word may be a prefix of at least two characters, so "quarr" finds "Quarrendon");
//! accents and case do not matter; results are distinct patients, those with most matching
//! pages first. The caller's scope is part of the query ([`NameScope`]): patients off their
//! list, pages of categories they may not see and documents they may not see never match, so
//! a patient known only through hidden documents is not found and page counts never count
//! hidden pages.

use std::collections::{BTreeMap, HashMap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, Occur, PhrasePrefixQuery, Query, TermQuery, TermSetQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, Term};
use uuid::Uuid;

use crate::error::IndexError;
use crate::schema::{analyze, text_analyzer, uuid_string, F_PATIENT_ID};
use crate::search::SearchIndex;

/// Most words a name query may hold.
const MAX_NAME_WORDS: usize = 8;
/// Shortest last word taken as a prefix.
const MIN_NAME_PREFIX: usize = 2;

/// What a name search may see: the same restrictions as a [`crate::SearchRequest`]'s.
#[derive(Debug, Clone, Copy, Default)]
pub struct NameScope<'a> {
    /// When given, only these patients can be returned (empty: none).
    pub allowed_patients: Option<&'a [Uuid]>,
    /// Pages in these categories never match.
    pub excluded_categories: &'a [String],
    /// Pages of these documents never match.
    pub excluded_documents: &'a [Uuid],
}

/// One patient a name search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientMatch {
    /// The patient the name belongs to.
    pub patient_id: Uuid,
    /// Pages of the patient indexed under a matching name.
    pub pages: u64,
}

impl SearchIndex {
    /// Patients whose indexed name matches `name` on pages `scope` lets the caller see (see
    /// the module docs), at most `limit` (applied after the scope).
    pub fn find_patients(
        &self,
        name: &str,
        scope: &NameScope<'_>,
        limit: usize,
    ) -> Result<Vec<PatientMatch>, IndexError> {
        let fields = *self.fields();
        let words = analyze(&mut text_analyzer(), name);
        if words.is_empty() {
            return Err(IndexError::Query(
                "a name search needs at least one word".to_string(),
            ));
        }
        if words.len() > MAX_NAME_WORDS {
            return Err(IndexError::Query(format!(
                "a name search takes at most {MAX_NAME_WORDS} words"
            )));
        }
        let (last, leading) = words.split_last().expect("checked non-empty");
        let term = |word: &str| Term::from_field_text(fields.patient_name, word);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = leading
            .iter()
            .map(|word| -> (Occur, Box<dyn Query>) {
                (
                    Occur::Must,
                    Box::new(TermQuery::new(term(word), IndexRecordOption::Basic)),
                )
            })
            .collect();
        let last_query: Box<dyn Query> = if last.chars().count() >= MIN_NAME_PREFIX {
            Box::new(PhrasePrefixQuery::new(vec![term(last)]))
        } else {
            Box::new(TermQuery::new(term(last), IndexRecordOption::Basic))
        };
        clauses.push((Occur::Must, last_query));
        if let Some(allowed) = scope.allowed_patients {
            if allowed.is_empty() {
                return Ok(Vec::new());
            }
            let ids = allowed
                .iter()
                .map(|id| Term::from_field_text(fields.patient_id, &uuid_string(*id)));
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(TermSetQuery::new(ids)), 0.0)),
            ));
        }
        if !scope.excluded_categories.is_empty() {
            let hidden = scope
                .excluded_categories
                .iter()
                .map(|category| Term::from_field_text(fields.category, category));
            clauses.push((Occur::MustNot, Box::new(TermSetQuery::new(hidden))));
        }
        if !scope.excluded_documents.is_empty() {
            let hidden = scope
                .excluded_documents
                .iter()
                .map(|id| Term::from_field_text(fields.document_id, &uuid_string(*id)));
            clauses.push((Occur::MustNot, Box::new(TermSetQuery::new(hidden))));
        }
        let counts = self
            .searcher()
            .search(&BooleanQuery::new(clauses), &DistinctPatients)?;
        let mut found = Vec::with_capacity(counts.len());
        for (id, pages) in counts {
            let patient_id =
                Uuid::parse_str(&id).map_err(|_| IndexError::CorruptDocument("patient_id"))?;
            found.push(PatientMatch { patient_id, pages });
        }
        found.sort_by(|a, b| b.pages.cmp(&a.pages).then(a.patient_id.cmp(&b.patient_id)));
        found.truncate(limit);
        Ok(found)
    }
}

/// Counts matching pages per patient id, from the patient id's fast column.
struct DistinctPatients;

struct SegmentPatients {
    column: StrColumn,
    counts: HashMap<u64, u64>,
}

impl Collector for DistinctPatients {
    type Fruit = BTreeMap<String, u64>;
    type Child = SegmentPatients;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentPatients> {
        let column = reader.fast_fields().str(F_PATIENT_ID)?.ok_or_else(|| {
            tantivy::TantivyError::SchemaError("patient_id is not a fast field".to_string())
        })?;
        Ok(SegmentPatients {
            column,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<BTreeMap<String, u64>>) -> tantivy::Result<Self::Fruit> {
        let mut merged = BTreeMap::new();
        for fruit in fruits {
            for (id, pages) in fruit {
                *merged.entry(id).or_insert(0) += pages;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for SegmentPatients {
    type Fruit = BTreeMap<String, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        for ord in self.column.term_ords(doc) {
            *self.counts.entry(ord).or_insert(0) += 1;
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut out = BTreeMap::new();
        let mut id = String::new();
        for (ord, pages) in self.counts {
            id.clear();
            if self.column.ord_to_str(ord, &mut id).unwrap_or(false) {
                *out.entry(id.clone()).or_insert(0) += pages;
            }
        }
        out
    }
}
