//! Patient-name search: the names live only in this (encrypted) index, indexed on each of a
//! patient's pages and never stored; the database holds them sealed.
//!
//! Promises: every word of the name query must match a word of the patient's name (the
//! last word may be a prefix of at least two characters, so "quarr" finds "Quarrendon");
//! accents and case do not matter; results are distinct patients, those with most matching
//! pages first; an optional allow-list restricts them to patients the caller may see.

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

/// One patient a name search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientMatch {
    pub patient_id: Uuid,
    /// Pages of the patient indexed under a matching name.
    pub pages: u64,
}

impl SearchIndex {
    /// Patients whose indexed name matches `name` (see the module docs), at most `limit`.
    /// `allowed`: when given, only these patients can be returned.
    pub fn find_patients(
        &self,
        name: &str,
        allowed: Option<&[Uuid]>,
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
        if let Some(allowed) = allowed {
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
