//! Administration of the key hierarchy (role `admin`): KEK status, rotation, retirement.
//! Every call is audited; none of them returns or touches PHI.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::auth::{audit, authorize, Action, Principal};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::AppState;
use crate::kek::{self, KekSource, KeyStatus, Rotation};

pub async fn key_status(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<KeyStatus>> {
    authorize(&state.db, &principal, Action::ManageKeys, None).await?;
    let status = kek::status(&state.db, &state.vault).await?;
    let detail = serde_json::json!({ "operation": "status" });
    audit(
        &state.db,
        &principal,
        Action::ManageKeys,
        "ok",
        None,
        None,
        Some(detail),
    )
    .await?;
    Ok(Json(status))
}

/// `POST /admin/keys/rotate`: a new KEK version, and every keyring row re-wrapped under it.
pub async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Rotation>> {
    authorize(&state.db, &principal, Action::ManageKeys, None).await?;
    let source = KekSource::from_config(&state.config);
    let result = kek::rotate(&state.db, &state.vault, &source).await;
    let detail = match &result {
        Ok(rotation) => {
            serde_json::json!({ "operation": "rotate", "kek_version": rotation.current_version, "rewrapped": rotation.rewrapped })
        }
        Err(_) => serde_json::json!({ "operation": "rotate" }),
    };
    let outcome = if result.is_ok() { "ok" } else { "refused" };
    audit(
        &state.db,
        &principal,
        Action::ManageKeys,
        outcome,
        None,
        None,
        Some(detail),
    )
    .await?;
    result
        .map(Json)
        .map_err(|error| ApiError::new(ErrorCode::Conflict, format!("{error:#}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireBody {
    version: u32,
}

/// `POST /admin/keys/retire {"version": N}`: refused while any keyring row uses it.
pub async fn retire(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Json<RetireBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<KeyStatus>> {
    authorize(&state.db, &principal, Action::ManageKeys, None).await?;
    let Json(body) = body.map_err(super::json_rejection)?;
    let source = KekSource::from_config(&state.config);
    let result = kek::retire(&state.db, &state.vault, &source, body.version).await;
    let outcome = if result.is_ok() { "ok" } else { "refused" };
    let detail = serde_json::json!({ "operation": "retire", "kek_version": body.version });
    audit(
        &state.db,
        &principal,
        Action::ManageKeys,
        outcome,
        None,
        None,
        Some(detail),
    )
    .await?;
    result.map_err(|error| ApiError::new(ErrorCode::Conflict, format!("{error:#}")))?;
    Ok(Json(kek::status(&state.db, &state.vault).await?))
}
