//! Search: a user query plus filters, run in the index with the caller's scope as a filter
//! inside the query, then snippets and word boxes built from the decrypted page text after
//! authorisation — never from the index, which stores no text.

use chartvault_index::{SearchHit, SearchRequest, SearchResults};
use chartvault_ocr::OcrWord;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{decide, Action, Principal};
use crate::app::Archive;
use crate::domain::{DocumentId, DocumentStatus, Mrn, PatientId};
use crate::error::{AppError, AppResult};
use crate::store::prelude::*;
use crate::store::vault::ObjectRef;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
const SNIPPET_CHARS: usize = 240;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub query: String,
    pub mrn: Option<String>,
    /// The issuer of `mrn` (default: the archive's default issuer).
    pub issuer: Option<String>,
    pub document_type: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub total: usize,
    pub hits: Vec<Hit>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub document_id: DocumentId,
    pub page: u32,
    pub score: f32,
    pub snippet: String,
    pub patient: PatientSummary,
    pub document_type: String,
    pub service_date: Option<NaiveDate>,
    /// Page-image pixel boxes of the words that matched, for highlighting on the image.
    pub boxes: Vec<WordBox>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PatientSummary {
    pub id: PatientId,
    pub mrn: Mrn,
    /// For an MRN of another issuer than the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub name: String,
}

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct WordBox {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// Runs a search for `principal`: the caller's scope inside the index query, each hit
/// checked by the policy and read from its decrypted page, one audit entry for the search.
pub async fn search(
    state: &Archive,
    principal: &Principal,
    body: SearchBody,
) -> AppResult<SearchResponse> {
    let started = std::time::Instant::now();
    let response = search_scoped(state, principal, body).await;
    state
        .metrics
        .search_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn search_scoped(
    state: &Archive,
    principal: &Principal,
    body: SearchBody,
) -> AppResult<SearchResponse> {
    authorize(&state.db, principal, Action::Search, None).await?;
    let (query, limit, offset) = checked_paging(&body)?;
    let document_type = body
        .document_type
        .as_deref()
        .map(|t| crate::domain::parse_slug("document_type", t).map_err(AppError::invalid))
        .transpose()?;
    // The caller's scope is part of the query: patients off their list and sensitive
    // categories without a grant never match, so totals and paging never reflect them.
    let request = SearchRequest {
        query,
        patient_ids: patients_searched(
            state,
            principal,
            (body.mrn.as_deref(), body.issuer.as_deref()),
        )
        .await?,
        categories: None,
        excluded_categories: principal.scope.hidden_categories(),
        excluded_documents: hidden_qa_documents(state, principal).await?,
        document_ids: None,
        document_type,
        from: body.from,
        to: body.to,
        limit,
        offset,
    };
    let results = run_query(state, request).await?;
    let mut hits = Vec::with_capacity(results.hits.len());
    for hit in &results.hits {
        if let Some(hit) = readable_hit(state, principal, &results, hit).await? {
            hits.push(hit);
        }
    }
    audit_search(state, principal, &hits, results.total).await?;
    Ok(SearchResponse {
        total: results.total,
        hits,
    })
}

/// The trimmed query, the limit and the offset, once they are within bounds.
fn checked_paging(body: &SearchBody) -> AppResult<(String, usize, usize)> {
    let query = body.query.trim().to_string();
    if query.is_empty() {
        return Err(AppError::invalid("query must not be empty"));
    }
    if query.len() > 1000 {
        return Err(AppError::invalid("query must be at most 1000 characters"));
    }
    let limit = body.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::invalid(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let offset = body.offset.unwrap_or(0);
    if offset > 10_000 {
        return Err(AppError::invalid("offset must be at most 10000"));
    }
    if let (Some(from), Some(to)) = (body.from, body.to) {
        if from > to {
            return Err(AppError::invalid("from must not be after to"));
        }
    }
    Ok((query, limit, offset))
}

/// The patients a search may match: the caller's visible patients (`None`: all), narrowed
/// to one by an MRN. An unknown MRN, or one outside the caller's scope, matches nothing
/// (not an error: the response does not confirm a patient exists).
async fn patients_searched(
    state: &Archive,
    principal: &Principal,
    (mrn, issuer): (Option<&str>, Option<&str>),
) -> AppResult<Option<Vec<uuid::Uuid>>> {
    let visible = principal.scope.visible_patients();
    let Some(raw) = mrn else {
        return Ok(visible.map(|patients| patients.into_iter().map(|p| p.0).collect()));
    };
    let mrn = state
        .config
        .patients
        .mrn(raw, issuer)
        .map_err(AppError::invalid)?;
    Ok(Some(match state.db.patient_by_mrn(&mrn).await? {
        Some(patient)
            if visible
                .as_ref()
                .is_none_or(|visible| visible.contains(&patient.id)) =>
        {
            vec![patient.id.0]
        }
        _ => Vec::new(),
    }))
}

/// Runs the query on the index (off the async threads); a query the index cannot parse is
/// the caller's error.
async fn run_query(state: &Archive, request: SearchRequest) -> AppResult<SearchResults> {
    let index = state.index()?.clone();
    tokio::task::spawn_blocking(move || index.search(&request))
        .await?
        .map_err(|e| match e {
            chartvault_index::IndexError::Query(message) => AppError::invalid(message),
            other => AppError::internal(other),
        })
}

/// One index hit as the caller sees it: snippet and word boxes from the decrypted page, or
/// `None` when the document was shredded meanwhile or the policy refuses it.
async fn readable_hit(
    state: &Archive,
    principal: &Principal,
    results: &SearchResults,
    hit: &SearchHit,
) -> AppResult<Option<Hit>> {
    let doc_id = DocumentId(hit.document_id);
    let Some(doc) = state.db.document(doc_id).await? else {
        return Ok(None);
    };
    if doc.status == DocumentStatus::Deleted {
        return Ok(None); // shredded between the search and now
    }
    // The index filtered by scope already; the policy function has the last word.
    let resource = doc.resource();
    if !decide(principal, Action::ReadDocument, Some(&resource)).is_allow() {
        return Ok(None);
    }
    let Some(patient) = state.db.patient(doc.patient_id).await? else {
        return Ok(None);
    };
    let artifacts = async {
        let text = state
            .vault
            .get(ObjectRef::PageText(doc_id, hit.page))
            .await?;
        let words = state
            .vault
            .get(ObjectRef::PageWords(doc_id, hit.page))
            .await?;
        anyhow::Ok((text, words))
    };
    let (text, words_json) = match artifacts.await {
        Ok(artifacts) => artifacts,
        // A document shredded while this search ran: its keys are gone, skip it.
        Err(_) if shredded(state, doc_id).await? => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let text = String::from_utf8_lossy(&text);
    let words: Vec<OcrWord> = serde_json::from_slice(&words_json).map_err(AppError::internal)?;
    let boxes = words
        .iter()
        .filter(|w| results.highlighter.matches_word(&w.text))
        .map(|w| WordBox {
            left: w.left,
            top: w.top,
            width: w.width,
            height: w.height,
        })
        .collect();
    Ok(Some(Hit {
        document_id: doc_id,
        page: hit.page,
        score: hit.score,
        snippet: results.highlighter.snippet(&text, SNIPPET_CHARS),
        patient: PatientSummary {
            id: patient.id,
            issuer: patient.mrn.issuer().map(str::to_string),
            mrn: patient.mrn,
            name: patient.name,
        },
        document_type: doc.document_type,
        service_date: doc.service_date,
        boxes,
    }))
}

/// The search's audit entry: the patients whose pages it returned, and the break-the-glass
/// accesses those were seen through.
async fn audit_search(
    state: &Archive,
    principal: &Principal,
    hits: &[Hit],
    total: usize,
) -> AppResult<()> {
    let mut patients: Vec<String> = hits.iter().map(|h| h.patient.id.to_string()).collect();
    patients.sort();
    patients.dedup();
    let mut detail =
        serde_json::json!({ "patients": patients, "hits": hits.len(), "total": total });
    let mut accesses: Vec<&str> = hits
        .iter()
        .filter_map(|h| principal.scope.break_glass_for(h.patient.id))
        .collect();
    accesses.sort();
    accesses.dedup();
    if !accesses.is_empty() {
        detail["break_glass"] = serde_json::json!(accesses);
    }
    AuditEvent::new(principal, Action::Search)
        .detail(detail)
        .record(&state.db)
        .await
}

/// Documents in the QA queue or flagged for it in any state, unless the caller is
/// `records` (who works the queue): they are left out inside the query, so totals and
/// paging never count them.
pub(crate) async fn hidden_qa_documents(
    state: &Archive,
    principal: &Principal,
) -> AppResult<Vec<uuid::Uuid>> {
    if principal.role == crate::domain::Role::Records {
        return Ok(Vec::new());
    }
    Ok(state
        .db
        .records_only_document_ids()
        .await?
        .into_iter()
        .map(|id| id.0)
        .collect())
}

async fn shredded(state: &Archive, id: DocumentId) -> AppResult<bool> {
    Ok(state
        .db
        .document(id)
        .await?
        .is_none_or(|doc| doc.status == DocumentStatus::Deleted))
}

/// Patients whose name matches `name` (words of it), through the encrypted name index, and
/// how many of their pages match: the caller's scope is part of the index query, as in
/// [`search`] (patients off their list, categories they may not see and documents waiting
/// in QA never match, so neither the patients found, nor their page counts, nor the limit
/// reflect them), and the policy function has the last word on each.
pub async fn patients_named(
    state: &Archive,
    principal: &Principal,
    name: &str,
    limit: usize,
) -> AppResult<Vec<(crate::domain::PatientId, u64)>> {
    let allowed: Option<Vec<uuid::Uuid>> = principal
        .scope
        .visible_patients()
        .map(|patients| patients.into_iter().map(|p| p.0).collect());
    let excluded_categories = principal.scope.hidden_categories();
    let excluded_documents = hidden_qa_documents(state, principal).await?;
    let index = state.index()?.clone();
    let name = name.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let scope = chartvault_index::NameScope {
            allowed_patients: allowed.as_deref(),
            excluded_categories: &excluded_categories,
            excluded_documents: &excluded_documents,
        };
        index.find_patients(&name, &scope, limit)
    })
    .await?
    .map_err(|e| match e {
        chartvault_index::IndexError::Query(message) => AppError::invalid(message),
        other => AppError::internal(other),
    })?;
    Ok(found
        .into_iter()
        .map(|matched| (crate::domain::PatientId(matched.patient_id), matched.pages))
        .filter(|(patient_id, _)| {
            let resource = crate::access::policy::Resource::patient(*patient_id);
            decide(principal, Action::LookupPatient, Some(&resource)).is_allow()
        })
        .collect())
}

/// The documents with a page matching `query` (at most 10,000 pages looked at), best first,
/// for `principal`: the caller's scope inside the index query as in [`search`], narrowed to
/// `patient` when given. (FHIR's `_content`.)
pub async fn documents_matching(
    state: &Archive,
    principal: &Principal,
    query: &str,
    patient: Option<crate::domain::PatientId>,
) -> AppResult<Vec<DocumentId>> {
    let query = query.trim();
    if query.is_empty() || query.chars().count() > 1000 {
        return Err(AppError::invalid("_content must be 1 to 1000 characters"));
    }
    let visible = principal.scope.visible_patients();
    let patient_ids = match patient {
        Some(patient) => Some(vec![patient.0]),
        None => visible.map(|patients| patients.into_iter().map(|p| p.0).collect()),
    };
    let excluded_categories = principal.scope.hidden_categories();
    let excluded_documents = hidden_qa_documents(state, principal).await?;
    let mut documents: Vec<DocumentId> = Vec::new();
    let page_size = chartvault_index::search::MAX_LIMIT;
    for offset in (0..10_000).step_by(page_size) {
        let results = run_query(
            state,
            SearchRequest {
                query: query.to_string(),
                patient_ids: patient_ids.clone(),
                categories: None,
                excluded_categories: excluded_categories.clone(),
                excluded_documents: excluded_documents.clone(),
                document_ids: None,
                document_type: None,
                from: None,
                to: None,
                limit: page_size,
                offset,
            },
        )
        .await?;
        for hit in &results.hits {
            let id = DocumentId(hit.document_id);
            if !documents.contains(&id) {
                documents.push(id);
            }
        }
        if results.hits.len() < page_size {
            break;
        }
    }
    Ok(documents)
}
