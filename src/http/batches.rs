//! Batch uploads: one scanned file of many documents, split at barcode cover sheets (see
//! [`crate::ingest::batch`]). `records` uploads them and follows their split.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal};
use crate::domain::{BatchId, Outcome};
use crate::error::{AppError, AppResult};
use crate::http::state::AppState;
use crate::ingest::upload;
use crate::store::batches::{Batch, Segment};
use crate::store::prelude::*;

/// The form of a batch upload (`multipart/form-data`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct BatchForm {
    /// The scanned batch: a multi-page TIFF or PDF, cover sheets between its documents.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(upload, status))]
pub(super) struct ApiDoc;

#[utoipa::path(post, path = "/batches", tag = "batches",
    request_body(content = BatchForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored (encrypted) and queued to be split", body = crate::ingest::upload::BatchAccepted),
        (status = 200, description = "The same file was uploaded as a batch already", body = crate::ingest::upload::BatchAccepted),
        (status = 415, description = "Not a supported file type", body = super::error::ErrorBody, content_type = "application/problem+json"),
        (status = 422, description = "The file cannot be read", body = super::error::ErrorBody, content_type = "application/problem+json"),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    principal: Result<Principal, AppError>,
    request: Request,
) -> Response {
    let (principal, _, staged) =
        match super::documents::receive(&state, principal, request, false).await {
            Ok(received) => received,
            Err(response) => return response,
        };
    match upload::accept_batch(&state, staged, &principal).await {
        Ok(accepted) => {
            let status = if accepted.duplicate {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let location = state.link(&format!("/api/v1/batches/{}", accepted.id));
            (
                status,
                [(axum::http::header::LOCATION, location)],
                Json(accepted),
            )
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchStatus {
    #[serde(flatten)]
    batch: Batch,
    /// The documents it was split into and the page ranges waiting in the QA queue, in scan
    /// order (empty until it is split).
    segments: Vec<SegmentView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentView {
    #[serde(flatten)]
    segment: Segment,
    pages: u32,
}

impl From<Segment> for SegmentView {
    fn from(segment: Segment) -> SegmentView {
        SegmentView {
            pages: segment.page_count(),
            segment,
        }
    }
}

/// A batch's status and what it became. Structure only: ids, page numbers, reasons.
#[utoipa::path(get, path = "/batches/{id}", tag = "batches",
    responses((status = 200, description = "The batch and what it became", body = BatchStatus)))]
pub async fn status(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
) -> AppResult<Json<BatchStatus>> {
    authorize(&state.db, &principal, Action::Ingest, None).await?;
    let batch = match raw_id.parse::<BatchId>() {
        Ok(id) => state.db.batch(id).await?,
        Err(_) => None,
    };
    let Some(batch) = batch else {
        let id = raw_id.parse::<BatchId>().ok();
        AuditEvent::new(&principal, Action::Ingest)
            .outcome(Outcome::NotFound)
            .batch(id)
            .record(&state.db)
            .await?;
        return Err(AppError::not_found());
    };
    let segments = state.db.segments(batch.id).await?;
    AuditEvent::new(&principal, Action::Ingest)
        .batch(batch.id)
        .detail(json!({ "batch_status": batch.status }))
        .record(&state.db)
        .await?;
    Ok(Json(BatchStatus {
        batch,
        segments: segments.into_iter().map(SegmentView::from).collect(),
    }))
}
