//! The QA queue: documents a person has to look at before they are filed (today: a DICOM
//! file whose PatientID is not the MRN it was uploaded under). `records` lists them and
//! resolves each: accept it as filed, file it under another patient (and type or date), or
//! reject it (crypto-shred, with a reason). Every listing and resolution is audited; a
//! document filed elsewhere is re-indexed under its new patient before the answer.

use axum::extract::{Path, State};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{decide, Action, Principal};
use crate::domain::{
    parse_slug, BatchId, Category, DocumentId, DocumentStatus, Mrn, Outcome, PatientId,
};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::store::batches::{NewSegment, Segment};
use crate::store::prelude::*;
use chartvault_ocr::CoverSheet;

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, resolve, page_image))]
pub(super) struct ApiDoc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct QaEntry {
    id: DocumentId,
    patient_id: PatientId,
    mrn: Mrn,
    patient_name: String,
    document_type: String,
    content_type: String,
    page_count: u32,
    qa_reason: Option<String>,
    created_at: String,
}

/// A page range of a batch upload that could not be filed by itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QaPageRange {
    id: DocumentId,
    batch_id: BatchId,
    /// Pages of the batch (numbered from 1 in scan order) that make up the range.
    first_page: u32,
    last_page: u32,
    page_count: u32,
    /// The batch page of its cover sheet, if it has one.
    cover_page: Option<u32>,
    /// What the cover sheet says, when it could be read (e.g. an MRN no patient has).
    cover: Option<serde_json::Value>,
    qa_reason: Option<String>,
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QaQueue {
    documents: Vec<QaEntry>,
    page_ranges: Vec<QaPageRange>,
}

#[utoipa::path(get, path = "/qa", tag = "qa",
    responses((status = 200, description = "Documents and page ranges waiting for a person", body = QaQueue)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> AppResult<Json<QaQueue>> {
    authorize(&state.db, &principal, Action::ReviewQa, None).await?;
    let mut documents = Vec::new();
    for doc in state.db.qa_documents().await? {
        // A sensitive category without a grant: not listed (not even its patient's name).
        if !decide(&principal, Action::ReviewQa, Some(&doc.resource())).is_allow() {
            continue;
        }
        let Some(patient) = state.db.patient(doc.patient_id).await? else {
            continue;
        };
        documents.push(QaEntry {
            id: doc.id,
            patient_id: doc.patient_id,
            mrn: patient.mrn,
            patient_name: patient.name,
            document_type: doc.document_type,
            content_type: doc.content_type,
            page_count: doc.page_count,
            qa_reason: doc.qa_reason,
            created_at: doc.created_at,
        });
    }
    let mut page_ranges = Vec::new();
    for segment in state.db.qa_segments().await? {
        let Some(batch) = state.db.batch(segment.batch_id).await? else {
            continue;
        };
        let cover = readable_cover(&state, &segment).await?;
        if !page_range_visible(&principal, cover.as_ref()) {
            continue;
        }
        let cover = cover.and_then(|cover| serde_json::to_value(cover).ok());
        page_ranges.push(QaPageRange {
            id: segment.id,
            batch_id: segment.batch_id,
            first_page: segment.first_page,
            last_page: segment.last_page,
            page_count: segment.page_count(),
            cover_page: segment.cover_page,
            cover,
            qa_reason: segment.qa_reason,
            created_at: batch.created_at,
        });
    }
    AuditEvent::new(&principal, Action::ReviewQa)
        .detail(json!({ "documents": documents.len(), "page_ranges": page_ranges.len() }))
        .record(&state.db)
        .await?;
    Ok(Json(QaQueue {
        documents,
        page_ranges,
    }))
}

/// How a document leaves the queue.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Resolution {
    /// Filed as it is.
    Accept,
    /// Filed under another patient (who must exist, unless `name` is given), optionally with
    /// another type or service date.
    Assign {
        mrn: String,
        /// The MRN's issuer (default: the archive's default issuer).
        issuer: Option<String>,
        name: Option<String>,
        document_type: Option<String>,
        service_date: Option<NaiveDate>,
    },
    /// Not kept: crypto-shredded with the reason.
    Reject { reason: String },
    /// A page range only: cut it before each of these pages (numbered from 1 within it).
    Split { at: Vec<u32> },
    /// A page range only: join it with the page range of the same batch next to it.
    Merge { with: String },
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Resolved {
    /// The document (for a page range: the document it was filed as; for a split or merge,
    /// the page range that was split or merged).
    id: DocumentId,
    /// The document's status, or `split` / `merged`.
    status: &'static str,
    patient_id: Option<PatientId>,
    /// The page ranges a split or merge made, in page order.
    #[serde(skip_serializing_if = "Option::is_none")]
    page_ranges: Option<Vec<DocumentId>>,
}

#[utoipa::path(post, path = "/qa/{id}", tag = "qa", request_body = Resolution,
    responses(
        (status = 200, description = "Resolved", body = Resolved),
        (status = 409, description = "No longer in the queue", body = super::error::ErrorBody, content_type = "application/problem+json"),
    ))]
pub async fn resolve(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<Resolution>,
) -> AppResult<Json<Resolved>> {
    authorize(&state.db, &principal, Action::ReviewQa, None).await?;
    let resolution = body.read()?;
    if let Ok(id) = raw_id.parse::<DocumentId>() {
        if let Some(segment) = state.db.segment(id).await? {
            return resolve_page_range(&state, &principal, segment, resolution).await;
        }
    }
    // Unknown ids and documents outside the caller's scope (a sensitive category without a
    // grant) are audited and 404, as on every document route.
    let doc =
        crate::access::lookup::document_in_scope(&state, &principal, Action::ReviewQa, &raw_id)
            .await?;
    if doc.status != DocumentStatus::Qa {
        AuditEvent::new(&principal, Action::ReviewQa)
            .outcome(Outcome::Refused)
            .patient(doc.patient_id)
            .document(doc.id)
            .detail(json!({ "refusal": "not in the QA queue" }))
            .record(&state.db)
            .await?;
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the document is not in the QA queue",
        ));
    }
    match resolution {
        Resolution::Split { .. } | Resolution::Merge { .. } => Err(AppError::invalid(
            "only a page range of a batch can be split or merged; file or reject this document",
        )),
        Resolution::Accept => {
            audit_resolution(&state, &principal, &doc, doc.patient_id, "accept").await?;
            state
                .db
                .resolve_qa(doc.id, doc.patient_id, &doc.document_type, doc.service_date)
                .await?;
            Ok(Json(Resolved {
                id: doc.id,
                status: DocumentStatus::Indexed.as_str(),
                patient_id: Some(doc.patient_id),
                page_ranges: None,
            }))
        }
        Resolution::Assign {
            mrn,
            issuer,
            name,
            document_type,
            service_date,
        } => {
            let document_type = match document_type {
                Some(raw) => parse_slug("document_type", &raw).map_err(AppError::invalid)?,
                None => doc.document_type.clone(),
            };
            let patient_id =
                crate::ingest::upload::patient_for(&state, &mrn, issuer.as_deref(), name).await?;
            audit_resolution(&state, &principal, &doc, patient_id, "assign").await?;
            state
                .db
                .resolve_qa(
                    doc.id,
                    patient_id,
                    &document_type,
                    service_date.or(doc.service_date),
                )
                .await?;
            crate::ingest::pages::reindex_document(&state, doc.id)
                .await
                .map_err(AppError::internal)?;
            Ok(Json(Resolved {
                id: doc.id,
                status: DocumentStatus::Indexed.as_str(),
                patient_id: Some(patient_id),
                page_ranges: None,
            }))
        }
        Resolution::Reject { reason } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 1000 {
                return Err(AppError::invalid("reason must be 1 to 1000 characters"));
            }
            if let Some(refusal) = crate::legal::shred::state_or_hold_refusal(&state, &doc).await? {
                return Err(refusal);
            }
            audit_resolution(&state, &principal, &doc, doc.patient_id, "reject").await?;
            let by = principal.user_id.to_string();
            if !crate::legal::shred::shred(&state, &doc, &by, reason, None).await? {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    "the document changed state during the request; retry",
                ));
            }
            Ok(Json(Resolved {
                id: doc.id,
                status: DocumentStatus::Deleted.as_str(),
                patient_id: Some(doc.patient_id),
                page_ranges: None,
            }))
        }
    }
}

/// Audited before the act, naming the resolution and where the document was filed before.
async fn audit_resolution(
    state: &AppState,
    principal: &Principal,
    doc: &crate::store::documents::Document,
    patient_id: PatientId,
    resolution: &'static str,
) -> AppResult<()> {
    AuditEvent::new(principal, Action::ReviewQa)
        .patient(patient_id)
        .document(doc.id)
        .detail(json!({ "resolution": resolution, "filed_under_before": doc.patient_id }))
        .record(&state.db)
        .await
}

/// Whether the caller may see a page range: its cover sheet's category, when it names one,
/// is checked like a document's (a `CAT=HIV` range is hidden from a clerk without the grant).
/// A category the cover sheet names but that does not parse (`HIV/AIDS`) could be any of
/// them: the range is shown only to someone who may see every sensitive category.
fn page_range_visible(principal: &Principal, cover: Option<&CoverSheet>) -> bool {
    let Some(CoverSheet::Cover {
        category: Some(raw),
        ..
    }) = cover
    else {
        return true;
    };
    match Category::parse(raw) {
        Ok(category) => principal.scope.may_see_category(&category),
        Err(_) => principal
            .scope
            .sensitive
            .iter()
            .all(|category| principal.scope.may_see_category(category)),
    }
}

/// What a page range's cover sheet says, when it has one that could be read.
async fn readable_cover(state: &AppState, segment: &Segment) -> AppResult<Option<CoverSheet>> {
    let Some(page) = segment.cover_page else {
        return Ok(None);
    };
    Ok(state
        .db
        .batch_pages(segment.batch_id)
        .await?
        .into_iter()
        .find(|p| p.row.page == page)
        .map(|p| p.cover)
        .filter(|cover| matches!(cover, CoverSheet::Cover { .. })))
}

/// Resolves a page range of a batch: `assign` files it as a document of that patient (type
/// and date from the request, else from its cover sheet), `accept` files it as its cover
/// sheet says (once its MRN is a known patient's), `reject` crypto-shreds its pages.
async fn resolve_page_range(
    state: &AppState,
    principal: &Principal,
    segment: Segment,
    resolution: Resolution,
) -> AppResult<Json<Resolved>> {
    let refused = |why: &'static str| async move {
        AuditEvent::new(principal, Action::ReviewQa)
            .outcome(Outcome::Refused)
            .document(segment.id)
            .detail(json!({ "refusal": why }))
            .record(&state.db)
            .await?;
        Err::<Json<Resolved>, _>(AppError::new(ErrorCode::Conflict, why))
    };
    let readable = readable_cover(state, &segment).await?;
    if !page_range_visible(principal, readable.as_ref()) {
        return hidden_page_range(state, principal, segment.id).await;
    }
    if segment.status != "qa" {
        return refused("the page range is not in the QA queue").await;
    }
    let Some(batch) = state.db.batch(segment.batch_id).await? else {
        return Err(AppError::not_found());
    };
    let cover = match readable {
        Some(CoverSheet::Cover {
            mrn,
            issuer,
            document_type,
            category,
            service_date,
        }) => Some((mrn, issuer, document_type, category, service_date)),
        _ => None,
    };
    let detail = |resolution: &str, patient: Option<PatientId>| {
        json!({
            "resolution": resolution,
            "batch": segment.batch_id,
            "batch_pages": [segment.first_page, segment.last_page],
            "document": segment.document_id,
            "patient": patient,
        })
    };
    let filing = match resolution {
        Resolution::Split { at } => return split(state, principal, &segment, at).await,
        Resolution::Merge { with } => return merge(state, principal, &segment, &with).await,
        Resolution::Reject { reason } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 1000 {
                return Err(AppError::invalid("reason must be 1 to 1000 characters"));
            }
            AuditEvent::new(principal, Action::ReviewQa)
                .document(segment.id)
                .detail(detail("reject", None))
                .record(&state.db)
                .await?;
            if !crate::ingest::batch::reject(state, &segment, principal.user_id)
                .await
                .map_err(AppError::internal)?
            {
                return refused("the page range was resolved meanwhile").await;
            }
            return Ok(Json(Resolved {
                id: segment.id,
                status: DocumentStatus::Deleted.as_str(),
                patient_id: None,
                page_ranges: None,
            }));
        }
        Resolution::Accept => {
            let Some((mrn, issuer, document_type, category, service_date)) = cover else {
                return Err(AppError::invalid(
                    "the page range has no readable cover sheet: assign it to a patient",
                ));
            };
            let mrn = state
                .config
                .patients
                .mrn(&mrn, issuer.as_deref())
                .map_err(|_| {
                    AppError::invalid(
                        "the cover sheet's MRN or issuer is not valid: assign the page range",
                    )
                })?;
            let Some(patient) = state.db.patient_by_mrn(&mrn).await? else {
                return Err(AppError::invalid(
                    "no patient has the cover sheet's MRN: assign the page range, with the \
                     patient's name to create one",
                ));
            };
            let (document_type, category) = crate::ingest::batch::cover_fields(
                &document_type,
                category.as_deref(),
            )
            .map_err(|why| {
                AppError::invalid(format!("{why}: assign the page range with a document_type"))
            })?;
            crate::ingest::batch::Filing {
                patient_id: patient.id,
                document_type,
                category,
                service_date: service_date.and_then(|d| d.parse().ok()),
            }
        }
        Resolution::Assign {
            mrn,
            issuer,
            name,
            document_type,
            service_date,
        } => {
            let from_cover = cover
                .as_ref()
                .map(|c| crate::ingest::batch::cover_fields(&c.2, c.3.as_deref()));
            let category = match &from_cover {
                Some(Ok((_, category))) => category.clone(),
                Some(Err(why)) if cover.as_ref().is_some_and(|c| c.3.is_some()) => {
                    return Err(AppError::invalid(format!(
                        "{why}: it cannot be filed under it; reject the page range, or fix the \
                         cover sheet and scan it again"
                    )))
                }
                _ => Category::general(),
            };
            let document_type = match (document_type, from_cover) {
                (Some(raw), _) => parse_slug("document_type", &raw).map_err(AppError::invalid)?,
                (None, Some(Ok((from_cover, _)))) => from_cover,
                (None, _) => {
                    return Err(AppError::invalid(
                        "document_type is required: the page range has no readable cover sheet \
                         with a valid type",
                    ))
                }
            };
            let patient_id =
                crate::ingest::upload::patient_for(state, &mrn, issuer.as_deref(), name).await?;
            crate::ingest::batch::Filing {
                patient_id,
                document_type,
                category,
                service_date: service_date.or_else(|| {
                    cover
                        .as_ref()
                        .and_then(|c| c.4.as_deref())
                        .and_then(|d| d.parse().ok())
                }),
            }
        }
    };
    AuditEvent::new(principal, Action::ReviewQa)
        .patient(filing.patient_id)
        .document(segment.document_id)
        .detail(detail("file", Some(filing.patient_id)))
        .record(&state.db)
        .await?;
    if !crate::ingest::batch::file(state, &batch, &segment, &filing, Some(principal.user_id))
        .await
        .map_err(AppError::internal)?
    {
        return refused("the page range was resolved meanwhile").await;
    }
    Ok(Json(Resolved {
        id: segment.document_id,
        status: DocumentStatus::Accepted.as_str(),
        patient_id: Some(filing.patient_id),
        page_ranges: None,
    }))
}

/// A page of a page range in the QA queue, for the person resolving it (PNG).
#[utoipa::path(get, path = "/qa/{id}/pages/{page}/image", tag = "qa",
    responses((status = 200, description = "The page (PNG)", body = super::error::Binary, content_type = "image/png")))]
pub async fn page_image(
    State(state): State<AppState>,
    principal: Principal,
    Path((raw_id, raw_page)): Path<(String, String)>,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    authorize(&state.db, &principal, Action::ReviewQa, None).await?;
    // Not a page number: no such page (404), as a page past the end.
    let page: u32 = raw_page.parse().unwrap_or(0);
    let segment = match raw_id.parse::<DocumentId>() {
        Ok(id) => state.db.segment(id).await?,
        Err(_) => None,
    };
    let found = segment.filter(|s| s.status == "qa" && page >= 1 && page <= s.page_count());
    let found = match found {
        Some(segment) => {
            let cover = readable_cover(&state, &segment).await?;
            page_range_visible(&principal, cover.as_ref()).then_some(segment)
        }
        None => None,
    };
    let Some(segment) = found else {
        AuditEvent::new(&principal, Action::ReviewQa)
            .outcome(Outcome::NotFound)
            .document(raw_id.parse().ok())
            .record(&state.db)
            .await?;
        return Err(AppError::not_found());
    };
    let batch_page = segment.first_page + page - 1;
    AuditEvent::new(&principal, Action::ReviewQa)
        .document(segment.id)
        .detail(json!({ "batch": segment.batch_id, "batch_page": batch_page }))
        .record(&state.db)
        .await?;
    let png = state
        .vault
        .get(crate::store::vault::ObjectRef::batch_page_image(
            segment.batch_id,
            batch_page,
        ))
        .await
        .map_err(AppError::internal)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// A page range the caller may not see (its cover sheet's category is not granted to them):
/// audited, and 404 like an unknown id.
async fn hidden_page_range(
    state: &AppState,
    principal: &Principal,
    id: DocumentId,
) -> AppResult<Json<Resolved>> {
    AuditEvent::new(principal, Action::ReviewQa)
        .outcome(Outcome::DeniedScope)
        .document(id)
        .record(&state.db)
        .await?;
    Err(AppError::not_found())
}

/// Cuts a page range in the queue into several, before each page of `at`.
async fn split(
    state: &AppState,
    principal: &Principal,
    segment: &Segment,
    mut at: Vec<u32>,
) -> AppResult<Json<Resolved>> {
    at.sort_unstable();
    at.dedup();
    let count = segment.page_count();
    if at.is_empty() || at.iter().any(|&page| page < 2 || page > count) {
        return Err(AppError::invalid(format!(
            "at: give the pages (2 to {count}) where new page ranges start"
        )));
    }
    let starts: Vec<u32> = std::iter::once(1).chain(at).collect();
    let pieces: Vec<NewSegment> = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).map_or(count, |next| next - 1);
            NewSegment {
                first_page: segment.first_page + start - 1,
                last_page: segment.first_page + end - 1,
                cover_page: if i == 0 { segment.cover_page } else { None },
                qa_reason: Some(format!(
                    "split by a person from batch pages {}-{}",
                    segment.first_page, segment.last_page
                )),
            }
        })
        .collect();
    replace(
        state,
        principal,
        segment.batch_id,
        &[segment],
        "split",
        &pieces,
    )
    .await
}

/// Joins a page range in the queue with the one next to it in the same batch (a cover sheet
/// between them becomes a page).
async fn merge(
    state: &AppState,
    principal: &Principal,
    segment: &Segment,
    with: &str,
) -> AppResult<Json<Resolved>> {
    let other = match with.parse::<DocumentId>() {
        Ok(id) => state.db.segment(id).await?,
        Err(_) => None,
    };
    let other = other.filter(|o| o.batch_id == segment.batch_id && o.id != segment.id);
    let other = match other {
        Some(other) => {
            let cover = readable_cover(state, &other).await?;
            page_range_visible(principal, cover.as_ref()).then_some(other)
        }
        None => None,
    };
    let Some(other) = other else {
        return Err(AppError::invalid(
            "with: not another page range of the same batch",
        ));
    };
    if other.status != "qa" {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the other page range is not in the QA queue",
        ));
    }
    let (a, b) = if segment.first_page < other.first_page {
        (segment, &other)
    } else {
        (&other, segment)
    };
    if b.cover_page.unwrap_or(b.first_page) != a.last_page + 1 {
        return Err(AppError::invalid(
            "the page ranges are not next to each other in the batch",
        ));
    }
    let merged = NewSegment {
        first_page: a.first_page,
        last_page: b.last_page,
        cover_page: a.cover_page,
        qa_reason: Some(format!(
            "merged by a person from batch pages {}-{} and {}-{}",
            a.first_page, a.last_page, b.first_page, b.last_page
        )),
    };
    replace(
        state,
        principal,
        segment.batch_id,
        &[a, b],
        "merged",
        &[merged],
    )
    .await
}

async fn replace(
    state: &AppState,
    principal: &Principal,
    batch: BatchId,
    old: &[&Segment],
    status: &'static str,
    new: &[NewSegment],
) -> AppResult<Json<Resolved>> {
    let old_ids: Vec<DocumentId> = old.iter().map(|s| s.id).collect();
    AuditEvent::new(principal, Action::ReviewQa)
        .document(old_ids[0])
        .detail(json!({
            "resolution": status,
            "batch": batch,
            "page_ranges": old_ids,
            "into": new.iter().map(|s| [s.first_page, s.last_page]).collect::<Vec<_>>(),
        }))
        .record(&state.db)
        .await?;
    let Some(ids) = state
        .db
        .replace_segments(batch, &old_ids, status, new, principal.user_id)
        .await?
    else {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "a page range was resolved meanwhile; reload the queue",
        ));
    };
    Ok(Json(Resolved {
        id: old_ids[0],
        status,
        patient_id: None,
        page_ranges: Some(ids),
    }))
}
