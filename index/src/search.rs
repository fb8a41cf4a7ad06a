//! The search side of the index: opening it, and answering authorised searches.
//!
//! Owns: [`SearchIndex`] (the tantivy index plus its one reader), [`SearchRequest`] and its
//! results. Promises:
//! - Authorisation and filters (patients, categories, documents, document type, service
//!   dates) are clauses of the one tantivy query that is run, so `total`, the hits and any
//!   paging only ever cover pages the caller may see.
//! - `Some(vec![])` for a restriction means "nothing allowed" and matches nothing.
//! - Hits are in BM25 order; equal scores are ordered by (document id, page), so paging
//!   through one searcher returns each page exactly once, whatever the segment layout.
//! - The reader reloads only when the writer service has committed
//!   ([`ReloadPolicy::Manual`]), so what a search sees changes only after a commit.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use tantivy::collector::sort_key::SortBySimilarityScore;
use tantivy::collector::sort_key::SortByString;
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{
    Directory, DocAddress, Index, IndexReader, Order, ReloadPolicy, Searcher, TantivyDocument, Term,
};
use uuid::Uuid;

use crate::error::IndexError;
use crate::highlight::Highlighter;
use crate::query::{parse_query, to_tantivy_query};
use crate::schema::{
    build_schema, date_value, doc_page_term, parse_doc_page_key, register_analyzers, uuid_string,
    Fields, F_DOC_PAGE,
};

/// Largest `limit` a request may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Largest `offset + limit` a request may reach (deep paging costs memory per request).
pub const MAX_WINDOW: usize = 100_000;

/// One search: the user's query plus the restrictions the caller's authorisation and
/// filters impose.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    /// The user's query, in the syntax of [`crate::query`].
    pub query: String,
    /// Patients whose pages may match; `None` = no patient restriction, `Some(empty)` =
    /// nothing matches.
    pub patient_ids: Option<Vec<Uuid>>,
    /// Categories the caller may see; `None` = all.
    pub categories: Option<Vec<String>>,
    /// Categories the caller may not see (sensitive ones without a grant): pages in them
    /// never match, so totals, paging and snippets never reflect them.
    pub excluded_categories: Vec<String>,
    /// Documents the caller may not see (waiting in the QA queue): their pages never match.
    pub excluded_documents: Vec<Uuid>,
    /// Restrict to these documents; `None` = all.
    pub document_ids: Option<Vec<Uuid>>,
    /// Restrict to one document type.
    pub document_type: Option<String>,
    /// Inclusive service-date range. When either end is given, pages without a service date
    /// are excluded.
    pub from: Option<NaiveDate>,
    /// The last service date (inclusive).
    pub to: Option<NaiveDate>,
    /// Page size (at most [`MAX_LIMIT`]); 0 only counts.
    pub limit: usize,
    /// Hits to skip.
    pub offset: usize,
}

/// One matching page.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The document of the hit.
    pub document_id: Uuid,
    /// The page number (1-based).
    pub page: u32,
    /// The patient the page belongs to.
    pub patient_id: Uuid,
    /// The relevance score (BM25).
    pub score: f32,
}

/// The answer to a [`SearchRequest`].
#[derive(Clone, Debug)]
pub struct SearchResults {
    /// Number of pages matching the query within the request's restrictions.
    pub total: usize,
    /// The `offset..offset + limit` window of those pages, best first.
    pub hits: Vec<SearchHit>,
    /// What to highlight on the hits' text and word boxes.
    pub highlighter: Highlighter,
}

/// The page index: one tantivy index and its reader. Cheap to clone.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir` (an mmap directory), creating the directory and an empty
    /// index if needed.
    pub fn open_or_create(dir: &Path) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir)?;
        let directory = MmapDirectory::open(dir).map_err(tantivy::TantivyError::from)?;
        Self::open_in(Box::new(directory))
    }

    /// Opens (or creates) the index in any tantivy [`Directory`], e.g. an encrypting one.
    pub fn open_in_directory(directory: impl Directory) -> Result<Self, IndexError> {
        Self::open_in(Box::new(directory))
    }

    /// Opens (or creates) the index in a boxed [`Directory`].
    pub fn open_in(directory: Box<dyn Directory>) -> Result<Self, IndexError> {
        let index = Index::open_or_create(directory, build_schema())?;
        Self::from_index(index)
    }

    /// A fresh index in memory, for tests.
    pub fn create_in_ram() -> Result<Self, IndexError> {
        Self::from_index(Index::create_in_ram(build_schema()))
    }

    fn from_index(index: Index) -> Result<Self, IndexError> {
        register_analyzers(&index);
        let fields = Fields::from_schema(&index.schema())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            inner: Arc::new(Inner {
                index,
                reader,
                fields,
            }),
        })
    }

    pub(crate) fn index(&self) -> &Index {
        &self.inner.index
    }

    pub(crate) fn fields(&self) -> &Fields {
        &self.inner.fields
    }

    /// Searches from the index's latest commit from now on: for a process that follows the
    /// commits another process's writer makes in the same directory.
    pub fn follow(&self) -> Result<(), IndexError> {
        self.reload()
    }

    /// Makes the latest commit visible to searches.
    pub(crate) fn reload(&self) -> Result<(), IndexError> {
        Ok(self.inner.reader.reload()?)
    }

    pub(crate) fn searcher(&self) -> Searcher {
        self.inner.reader.searcher()
    }

    /// The segments (as the reader last loaded them) whose term dictionary holds `term`,
    /// whether or not a live document still carries it: deleted documents' terms stay in a
    /// segment until it is merged.
    pub(crate) fn segments_holding(&self, term: &Term) -> Result<Vec<SegmentId>, IndexError> {
        let mut holding = Vec::new();
        for segment in self.searcher().segment_readers() {
            let inverted_index = segment.inverted_index(term.field())?;
            if inverted_index.get_term_info(term)?.is_some() {
                holding.push(segment.segment_id());
            }
        }
        Ok(holding)
    }

    /// Runs an authorised search. Blocking (CPU and, with an encrypted directory, I/O): call
    /// it from a blocking context.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, IndexError> {
        if request.limit > MAX_LIMIT {
            return Err(IndexError::Query(format!(
                "at most {MAX_LIMIT} results can be requested at once"
            )));
        }
        if request.offset.saturating_add(request.limit) > MAX_WINDOW {
            return Err(IndexError::Query(format!(
                "results beyond the first {MAX_WINDOW} cannot be paged to; refine the query"
            )));
        }
        let clause = parse_query(&request.query)?;
        let highlighter = Highlighter::from_clause(&clause);
        let fields = self.fields();

        let Some(filter) = self.filter_query(request) else {
            return Ok(SearchResults {
                total: 0,
                hits: Vec::new(),
                highlighter,
            });
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, to_tantivy_query(&clause, fields.text))];
        if let Some(filter) = filter {
            // Score 0: filters decide what matches, never how it ranks.
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(filter, 0.0))));
        }
        if !request.excluded_categories.is_empty() {
            let hidden = request
                .excluded_categories
                .iter()
                .map(|category| Term::from_field_text(fields.category, category));
            clauses.push((Occur::MustNot, Box::new(TermSetQuery::new(hidden))));
        }
        if !request.excluded_documents.is_empty() {
            let hidden = request
                .excluded_documents
                .iter()
                .map(|id| Term::from_field_text(fields.document_id, &uuid_string(*id)));
            clauses.push((Occur::MustNot, Box::new(TermSetQuery::new(hidden))));
        }
        let query = BooleanQuery::new(clauses);

        let searcher = self.searcher();
        if request.limit == 0 {
            let total = searcher.search(&query, &Count)?;
            return Ok(SearchResults {
                total,
                hits: Vec::new(),
                highlighter,
            });
        }
        let top_docs = TopDocs::with_limit(request.limit)
            .and_offset(request.offset)
            .order_by((
                SortBySimilarityScore,
                (SortByString::for_field(F_DOC_PAGE), Order::Asc),
            ));
        let (total, top) = searcher.search(&query, &(Count, top_docs))?;
        let hits = top
            .into_iter()
            .map(|((score, _key), address)| self.hit(&searcher, address, score))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchResults {
            total,
            hits,
            highlighter,
        })
    }

    /// The restrictions as one query: `None` when some restriction allows nothing,
    /// `Some(None)` when there is no restriction at all.
    fn filter_query(&self, request: &SearchRequest) -> Option<Option<Box<dyn Query>>> {
        let fields = self.fields();
        let mut filters: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut term_set = |values: Vec<Term>| -> Option<()> {
            if values.is_empty() {
                return None;
            }
            filters.push((Occur::Must, Box::new(TermSetQuery::new(values))));
            Some(())
        };
        if let Some(patient_ids) = &request.patient_ids {
            term_set(
                patient_ids
                    .iter()
                    .map(|id| Term::from_field_text(fields.patient_id, &uuid_string(*id)))
                    .collect(),
            )?;
        }
        if let Some(categories) = &request.categories {
            term_set(
                categories
                    .iter()
                    .map(|category| Term::from_field_text(fields.category, category))
                    .collect(),
            )?;
        }
        if let Some(document_ids) = &request.document_ids {
            term_set(
                document_ids
                    .iter()
                    .map(|id| Term::from_field_text(fields.document_id, &uuid_string(*id)))
                    .collect(),
            )?;
        }
        if let Some(document_type) = &request.document_type {
            filters.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(fields.document_type, document_type),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if request.from.is_some() || request.to.is_some() {
            let bound = |date: Option<NaiveDate>| match date {
                Some(date) => {
                    Bound::Included(Term::from_field_date(fields.service_date, date_value(date)))
                }
                None => Bound::Unbounded,
            };
            filters.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(request.from), bound(request.to))),
            ));
        }
        if filters.is_empty() {
            return Some(None);
        }
        Some(Some(Box::new(BooleanQuery::new(filters))))
    }

    fn hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        score: f32,
    ) -> Result<SearchHit, IndexError> {
        let fields = self.fields();
        let document: TantivyDocument = searcher.doc(address)?;
        let uuid_of = |field, what| {
            document
                .get_first(field)
                .and_then(|value| value.as_str())
                .and_then(|text| Uuid::parse_str(text).ok())
                .ok_or(IndexError::CorruptDocument(what))
        };
        let page = document
            .get_first(fields.page)
            .and_then(|value| value.as_u64())
            .and_then(|page| u32::try_from(page).ok())
            .ok_or(IndexError::CorruptDocument("page"))?;
        Ok(SearchHit {
            document_id: uuid_of(fields.document_id, "document_id")?,
            page,
            patient_id: uuid_of(fields.patient_id, "patient_id")?,
            score,
        })
    }

    /// Number of live (not deleted) pages visible to searches.
    pub fn page_count(&self) -> Result<u64, IndexError> {
        Ok(self.searcher().num_docs())
    }

    /// Live pages and segments, as the reader last loaded them.
    pub fn stats(&self) -> (u64, usize) {
        let searcher = self.searcher();
        (searcher.num_docs(), searcher.segment_readers().len())
    }

    /// Every live (document id, page) in the index, sorted, as the reader last loaded it: for
    /// an integrity check against the database. A page indexed twice (which the writer's
    /// replace-by-key rules out) would appear twice. Reads one fast-field column per
    /// segment; blocking, like [`Self::search`].
    pub fn indexed_pages(&self) -> Result<Vec<(Uuid, u32)>, IndexError> {
        let searcher = self.searcher();
        let mut pages = Vec::with_capacity(usize::try_from(searcher.num_docs()).unwrap_or(0));
        let mut key = String::new();
        for segment in searcher.segment_readers() {
            let Some(keys) = segment.fast_fields().str(F_DOC_PAGE)? else {
                // A segment that never saw a page has no column; one that did must have it.
                if segment.num_docs() == 0 {
                    continue;
                }
                return Err(IndexError::CorruptDocument("doc_page"));
            };
            for doc in segment.doc_ids_alive() {
                let mut ords = keys.term_ords(doc);
                let (Some(ord), None) = (ords.next(), ords.next()) else {
                    return Err(IndexError::CorruptDocument("doc_page"));
                };
                key.clear();
                if !keys.ord_to_str(ord, &mut key)? {
                    return Err(IndexError::CorruptDocument("doc_page"));
                }
                pages
                    .push(parse_doc_page_key(&key).ok_or(IndexError::CorruptDocument("doc_page"))?);
            }
        }
        pages.sort_unstable();
        Ok(pages)
    }

    /// Number of live index documents for one page: 1 when indexed, 0 when not; anything
    /// else would be a bug in the writer's replace-by-key.
    pub fn contains_page(&self, document_id: Uuid, page: u32) -> Result<usize, IndexError> {
        let query = TermQuery::new(
            doc_page_term(self.fields(), document_id, page),
            IndexRecordOption::Basic,
        );
        Ok(self.searcher().search(&query, &Count)?)
    }

    /// Whether any segment's term dictionary still holds `word` (as the analyzer indexes
    /// it), deleted documents included: true until a merge has rewritten their segments.
    /// For checking that shredded text left the index files.
    pub fn term_in_any_segment(&self, word: &str) -> Result<bool, IndexError> {
        let fields = self.fields();
        let mut analyzer = crate::schema::text_analyzer();
        let terms = crate::schema::analyze(&mut analyzer, word);
        let searcher = self.searcher();
        for term in terms {
            let term = tantivy::Term::from_field_text(fields.text, &term);
            for segment in searcher.segment_readers() {
                let inverted = segment.inverted_index(fields.text)?;
                if inverted
                    .terms()
                    .get(term.serialized_value_bytes())?
                    .is_some()
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}
