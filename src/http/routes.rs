//! The route table, the router built from it, and the request middleware.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};

use super::client::ClientAddr;
use super::multipart::MULTIPART_OVERHEAD;
use super::state::AppState;
use super::{
    access, admin, audit, batches, documents, holds, patients, qa, releases, retention, search,
};
use crate::error::{AppError, AppResult, REQUEST_ID};
use crate::store::prelude::*;

/// Every API route: method, path under `/api/v1`, handler. The router is built from this
/// table and nothing else, so the access-control test, which walks [`api_route_table`],
/// covers every route there is.
fn api_routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::POST, "/documents", post(documents::upload)),
        (Method::GET, "/documents", get(documents::list)),
        (Method::GET, "/documents/{id}", get(documents::metadata)),
        (Method::DELETE, "/documents/{id}", delete(documents::delete)),
        // The POST forms of DELETEs with a body (proxies may strip a DELETE's body).
        (
            Method::POST,
            "/documents/{id}/delete",
            post(documents::delete),
        ),
        (
            Method::POST,
            "/documents/{id}/corrections",
            post(documents::correct),
        ),
        (
            Method::POST,
            "/documents/{id}/retry",
            post(documents::retry),
        ),
        (
            Method::GET,
            "/documents/{id}/original",
            get(documents::original),
        ),
        (
            Method::GET,
            "/documents/{id}/pages/{page}/image",
            get(documents::page_image),
        ),
        (
            Method::GET,
            "/documents/{id}/pages/{page}/text",
            get(documents::page_text),
        ),
        (
            Method::GET,
            "/documents/{id}/pages/{page}/words",
            get(documents::page_words),
        ),
        (Method::POST, "/search", post(search::search)),
        (Method::POST, "/patients/lookup", post(patients::lookup)),
        (
            Method::POST,
            "/patients/search",
            post(patients::search_by_name),
        ),
        (Method::POST, "/care-relationships", post(access::add_care)),
        (
            Method::DELETE,
            "/care-relationships/{id}",
            delete(access::end_care),
        ),
        (
            Method::POST,
            "/category-grants",
            post(access::grant_category),
        ),
        (
            Method::DELETE,
            "/category-grants",
            delete(access::revoke_category),
        ),
        (
            Method::POST,
            "/category-grants/revoke",
            post(access::revoke_category),
        ),
        (Method::POST, "/break-glass", post(access::break_glass)),
        (
            Method::GET,
            "/break-glass/review",
            get(access::review_queue),
        ),
        (
            Method::POST,
            "/break-glass/{id}/review",
            post(access::review),
        ),
        (Method::GET, "/admin/keys", get(admin::key_status)),
        (Method::POST, "/admin/keys/rotate", post(admin::rotate)),
        (Method::POST, "/admin/keys/retire", post(admin::retire)),
        (Method::POST, "/audit/query", post(audit::query)),
        (Method::POST, "/disclosures", post(audit::record_disclosure)),
        (
            Method::POST,
            "/disclosures/accounting",
            post(audit::accounting),
        ),
        (Method::GET, "/qa", get(qa::list)),
        (Method::POST, "/qa/{id}", post(qa::resolve)),
        (
            Method::GET,
            "/qa/{id}/pages/{page}/image",
            get(qa::page_image),
        ),
        (Method::POST, "/batches", post(batches::upload)),
        (Method::GET, "/batches/{id}", get(batches::status)),
        (Method::POST, "/holds", post(holds::create)),
        (Method::GET, "/holds", get(holds::list)),
        (Method::GET, "/holds/{id}", get(holds::get_one)),
        (Method::POST, "/holds/{id}/release", post(holds::release)),
        (Method::POST, "/releases", post(releases::create)),
        (Method::GET, "/releases", get(releases::list)),
        (Method::GET, "/releases/{id}", get(releases::get_one)),
        (
            Method::POST,
            "/releases/{id}/attachments",
            post(releases::attach),
        ),
        (
            Method::POST,
            "/releases/{id}/exclusions",
            post(releases::exclude),
        ),
        (
            Method::DELETE,
            "/releases/{id}/exclusions",
            delete(releases::include),
        ),
        (
            Method::POST,
            "/releases/{id}/exclusions/remove",
            post(releases::include),
        ),
        (
            Method::POST,
            "/releases/{id}/redactions",
            post(releases::redact),
        ),
        (
            Method::DELETE,
            "/releases/{id}/redactions/{rid}",
            delete(releases::unredact),
        ),
        (
            Method::POST,
            "/releases/{id}/redaction-proposals",
            post(releases::propose),
        ),
        (
            Method::POST,
            "/releases/{id}/productions",
            post(releases::produce),
        ),
        (
            Method::GET,
            "/releases/{id}/productions/{pid}",
            get(releases::download),
        ),
        (
            Method::GET,
            "/releases/{id}/productions/{pid}/manifest",
            get(releases::manifest),
        ),
        (
            Method::POST,
            "/releases/{id}/extension",
            post(releases::extend),
        ),
        (Method::POST, "/retention/runs", post(retention::run)),
        (
            Method::GET,
            "/retention/certificates",
            get(retention::certificates),
        ),
    ]
}

/// The routes whose body is files (multipart): their bodies may be as large as
/// `limits.max_upload_bytes` (plus the multipart framing), read as they stream. Every other
/// body is at most `limits.max_json_bytes`.
const FILE_ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/documents"),
    (Method::POST, "/batches"),
    (Method::POST, "/releases/{id}/attachments"),
];

/// (method, path under `/api/v1`) of every API route.
pub fn api_route_table() -> Vec<(Method, &'static str)> {
    api_routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// Every route of the service.
///
/// Bodies are bounded before they are buffered: a JSON body past `limits.max_json_bytes`
/// and a file route's body past `limits.max_upload_bytes` (plus framing) is refused with
/// 413 as soon as the excess arrives (or at once, by its `Content-Length`); a body that
/// pauses longer than `server.body_idle_timeout_secs` is cut off. Every extractor runs after
/// the bearer token is checked, so an unauthenticated client's body is never read.
///
/// `peers` are the other protocol front ends (FHIR), each nested under its prefix: they
/// share the request middleware (ids, client address, the log by route, body timeouts)
/// and, unless a route raises it, the JSON body limit. The composition root names them;
/// this front end does not know them.
pub fn router(state: AppState, peers: Vec<(&'static str, Router<AppState>)>) -> Router {
    let limits = &state.config.limits;
    let json_limit = usize::try_from(limits.max_json_bytes).unwrap_or(usize::MAX);
    let file_limit = usize::try_from(limits.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD))
        .unwrap_or(usize::MAX);
    let api = api_routes()
        .into_iter()
        .fold(Router::new(), |api, (method, path, handler)| {
            let takes_files = FILE_ROUTES.iter().any(|(m, p)| *m == method && *p == path);
            let handler = if takes_files {
                // Upload routes check a declared length themselves, after authorising, and
                // read what the client still sends so it gets the error.
                handler.layer(DefaultBodyLimit::max(file_limit))
            } else {
                handler.layer(DefaultBodyLimit::max(json_limit)).layer(
                    middleware::from_fn_with_state(json_limit as u64, refuse_declared_too_large),
                )
            };
            api.route(path, handler)
        })
        // The interface's description: no token, no record; outside the route table.
        .route("/openapi.json", get(super::openapi::openapi_json));
    let body_idle = Duration::from_secs(state.config.server.body_idle_timeout_secs);
    // Browsers that reached the service over TLS keep to TLS for a year.
    let hsts = state.config.server.tls_cert_file.as_ref().map(|_| {
        tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    });
    let service = peers.into_iter().fold(
        Router::new().nest("/api/v1", api),
        |service, (prefix, peer)| {
            service.nest(prefix, peer.layer(DefaultBodyLimit::max(json_limit)))
        },
    );
    service
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(super::metrics::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn_with_state(body_idle, body_idle_timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .layer(tower::util::option_layer(hsts))
        .with_state(state)
}

/// A body whose `Content-Length` is over the route's limit is refused at once, unread.
async fn refuse_declared_too_large(
    State(limit): State<u64>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return AppError::new(
            crate::error::ErrorCode::PayloadTooLarge,
            format!("the body is larger than the limit of {limit} bytes (limits.max_json_bytes)"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Cuts off a request body that pauses longer than `server.body_idle_timeout_secs` between
/// pieces (the handler reading it gets an error). Responses are not affected.
async fn body_idle_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let request = request
        .map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(limit, body)));
    next.run(request).await
}

/// Gives each request its client address ([`ClientAddr`], after trusted proxies) and an id
/// (a trusted proxy's, else a new one; echoed as `x-request-id` and in error bodies), and
/// logs the method, the route pattern (never the raw path or query), the status and the
/// latency.
async fn request_context(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let proxies = &state.config.server.trusted_proxies;
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let request_id = peer
        .and_then(|peer| super::client::forwarded_request_id(peer, request.headers(), proxies))
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if let Some(peer) = peer {
        let client = super::client::client_addr(peer, request.headers(), proxies);
        request.extensions_mut().insert(ClientAddr(client));
    }
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

async fn not_found() -> AppError {
    AppError::not_found()
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and the index can be searched.
async fn readyz(State(state): State<AppState>) -> AppResult<Json<serde_json::Value>> {
    let db_ok = tokio::time::timeout(Duration::from_secs(2), state.db.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    let index = state.index()?.clone();
    let index_ok = tokio::task::spawn_blocking(move || index.page_count().is_ok())
        .await
        .unwrap_or(false);
    if !(db_ok && index_ok) {
        return Err(AppError::new(
            crate::error::ErrorCode::Unavailable,
            "not ready: the database or the index is unavailable",
        ));
    }
    Ok(Json(
        serde_json::json!({ "status": "ready", "ocr_threads": state.ocr.threads() }),
    ))
}
