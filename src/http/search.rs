//! `POST /search`: words on the pages, within the caller's scope (see [`crate::search`]).

use axum::extract::State;
use axum::Json;

use crate::access::policy::Principal;
use crate::error::AppResult;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::search::{SearchBody, SearchResponse};

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(search))]
pub(super) struct ApiDoc;

#[utoipa::path(post, path = "/search", tag = "search", request_body = SearchBody,
    responses((status = 200, description = "Pages matching the query, within the caller's scope, with snippets and word boxes", body = SearchResponse)))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<SearchBody>,
) -> AppResult<Json<SearchResponse>> {
    let body = body.read()?;
    Ok(Json(crate::search::search(&state, &principal, body).await?))
}
