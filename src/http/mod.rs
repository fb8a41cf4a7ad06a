//! The HTTP surface: the one place that builds the router, the shared state, and the
//! request middleware (request ids, tracing without PHI). Only this module and `error` know
//! axum.

mod admin;
mod audit;
mod documents;
mod patients;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chartvault_index::{IndexWriterService, SearchIndex};
use chartvault_ocr::OcrPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::config::Config;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, REQUEST_ID};
use crate::search::{SearchBody, SearchResponse};
use crate::vault::Vault;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub vault: Vault,
    pub index: SearchIndex,
    pub index_writer: IndexWriterService,
    pub ocr: OcrPool,
    pub jobs_waiting: Arc<Notify>,
    pub shutdown: CancellationToken,
    /// Signs audit checkpoints (periodically, and once more at shutdown).
    pub audit_checkpoints: crate::audit::checkpoint::Checkpointer,
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/documents", post(documents::upload))
        .route(
            "/documents/{id}",
            get(documents::metadata).delete(documents::delete),
        )
        .route("/documents/{id}/original", get(documents::original))
        .route(
            "/documents/{id}/pages/{page}/image",
            get(documents::page_image),
        )
        .route(
            "/documents/{id}/pages/{page}/text",
            get(documents::page_text),
        )
        .route(
            "/documents/{id}/pages/{page}/words",
            get(documents::page_words),
        )
        .route("/search", post(search))
        .route("/patients/lookup", post(patients::lookup))
        .route("/patients/search", post(patients::search_by_name))
        .route("/admin/keys", get(admin::key_status))
        .route("/admin/keys/rotate", post(admin::rotate))
        .route("/admin/keys/retire", post(admin::retire))
        .route("/audit/query", post(audit::query))
        .route("/disclosures", post(audit::record_disclosure))
        .route("/disclosures/accounting", post(audit::accounting));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        // Uploads are limited by the ingest code itself, which counts as it streams and
        // answers 413 with a clear message; every other body is small.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// Gives each request an id (echoed as `x-request-id` and in error bodies) and logs the
/// method, the route pattern (never the raw path), the status and the latency.
async fn request_context(request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "-".to_string());
    let started = std::time::Instant::now();
    let mut response = REQUEST_ID
        .scope(request_id.clone(), async move { next.run(request).await })
        .await;
    tracing::info!(
        request_id = %request_id,
        %method,
        route = %route,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and the index can be searched.
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let db_ok = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(state.db.pool()),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let index = state.index.clone();
    let index_ok = tokio::task::spawn_blocking(move || index.page_count().is_ok())
        .await
        .unwrap_or(false);
    if !(db_ok && index_ok) {
        return Err(ApiError::new(
            crate::error::ErrorCode::Unavailable,
            "not ready: the database or the index is unavailable",
        ));
    }
    Ok(Json(
        serde_json::json!({ "status": "ready", "ocr_threads": state.ocr.threads() }),
    ))
}

async fn search(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Json<SearchBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<SearchResponse>> {
    let Json(body) = body.map_err(json_rejection)?;
    Ok(Json(crate::search::search(&state, &principal, body).await?))
}

/// A JSON body that could not be read: the message names the problem, not the content.
pub(crate) fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection as R;
    match rejection {
        R::MissingJsonContentType(_) => {
            ApiError::invalid("the body must be JSON with Content-Type: application/json")
        }
        R::JsonSyntaxError(_) => ApiError::invalid("the body is not valid JSON"),
        R::JsonDataError(e) => {
            let text = e.body_text();
            // serde's messages for unknown or missing fields name fields, not values.
            if text.contains("unknown field") || text.contains("missing field") {
                ApiError::invalid(text.replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                ))
            } else {
                ApiError::invalid("a field of the body has the wrong type or format")
            }
        }
        _ => ApiError::invalid("the body could not be read"),
    }
}
