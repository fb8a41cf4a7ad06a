//! Administration of the key hierarchy (role `admin`): KEK status, rotation, retirement.
//! Every call is audited; none of them returns or touches PHI.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal};
use crate::domain::Outcome;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::ops::keys::{self, KekSource, KeyStatus, Rotation};

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(key_status, rotate, retire))]
pub(super) struct ApiDoc;

#[utoipa::path(get, path = "/admin/keys", tag = "admin",
    responses((status = 200, description = "The key-encryption keys and how many keys each wraps", body = KeyStatus)))]
pub async fn key_status(
    State(state): State<AppState>,
    principal: Principal,
) -> AppResult<Json<KeyStatus>> {
    authorize(&state.db, &principal, Action::ManageKeys, None).await?;
    let status = keys::status(&state.db, &state.vault).await?;
    let detail = serde_json::json!({ "operation": "status" });
    AuditEvent::new(&principal, Action::ManageKeys)
        .detail(detail)
        .record(&state.db)
        .await?;
    Ok(Json(status))
}

/// `POST /admin/keys/rotate`: a new KEK version, and every keyring row re-wrapped under it.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin",
    responses((status = 200, description = "Every key re-wrapped under the new KEK", body = Rotation)))]
pub async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
) -> AppResult<Json<Rotation>> {
    authorize(&state.db, &principal, Action::ManageKeys, None).await?;
    let source = KekSource::from_config(&state.config);
    let result = keys::rotate(&state.db, &state.vault, &source).await;
    let detail = match &result {
        Ok(rotation) => {
            serde_json::json!({ "operation": "rotate", "kek_version": rotation.current_version, "rewrapped": rotation.rewrapped })
        }
        Err(_) => serde_json::json!({ "operation": "rotate" }),
    };
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Refused
    };
    AuditEvent::new(&principal, Action::ManageKeys)
        .outcome(outcome)
        .detail(detail)
        .record(&state.db)
        .await?;
    result
        .map(Json)
        .map_err(|error| AppError::new(ErrorCode::Conflict, format!("{error:#}")))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireBody {
    version: u32,
}

/// `POST /admin/keys/retire {"version": N}`: refused while any keyring row uses it.
#[utoipa::path(post, path = "/admin/keys/retire", tag = "admin", request_body = RetireBody,
    responses(
        (status = 200, description = "Retired", body = KeyStatus),
        (status = 409, description = "The KEK still wraps keys", body = super::error::ErrorBody, content_type = "application/problem+json"),
    ))]
pub async fn retire(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<RetireBody>,
) -> AppResult<Json<KeyStatus>> {
    authorize(&state.db, &principal, Action::ManageKeys, None).await?;
    let body = body.read()?;
    let source = KekSource::from_config(&state.config);
    let result = keys::retire(&state.db, &state.vault, &source, body.version).await;
    let outcome = if result.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Refused
    };
    let detail = serde_json::json!({ "operation": "retire", "kek_version": body.version });
    AuditEvent::new(&principal, Action::ManageKeys)
        .outcome(outcome)
        .detail(detail)
        .record(&state.db)
        .await?;
    result.map_err(|error| AppError::new(ErrorCode::Conflict, format!("{error:#}")))?;
    Ok(Json(keys::status(&state.db, &state.vault).await?))
}
