//! Retention through the API (`records`): `POST /retention/runs` lists what has expired
//! and, with `{"apply": true}`, destroys what no hold covers (see [`crate::retention`]);
//! `GET /retention/certificates` lists the destruction certificates (`records`, `legal`,
//! `auditor`).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{audit, authorize, Action, Principal};
use crate::domain::DocumentId;
use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::retention::{RunBy, RunReport};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    #[serde(default)]
    apply: bool,
}

pub async fn run(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Json<RunBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<RunReport>> {
    authorize(&state.db, &principal, Action::RunRetention, None).await?;
    let Json(body) = body.map_err(super::json_rejection)?;
    audit(
        &state.db,
        &principal,
        Action::RunRetention,
        "ok",
        None,
        None,
        Some(json!({ "apply": body.apply })),
    )
    .await?;
    let report = crate::retention::run(&state, RunBy::Person(&principal), body.apply)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFilter {
    run_id: Option<String>,
    document_id: Option<String>,
}

pub async fn certificates(
    State(state): State<AppState>,
    principal: Principal,
    Query(filter): Query<CertificateFilter>,
) -> ApiResult<Json<serde_json::Value>> {
    authorize(&state.db, &principal, Action::ReadCertificates, None).await?;
    let document_id = filter
        .document_id
        .as_deref()
        .map(|raw| {
            raw.parse::<DocumentId>()
                .map_err(|_| ApiError::invalid("document_id is not a document id"))
        })
        .transpose()?;
    let certificates = state
        .db
        .certificates(filter.run_id.as_deref(), document_id)
        .await?;
    audit(
        &state.db,
        &principal,
        Action::ReadCertificates,
        "ok",
        None,
        document_id,
        Some(json!({ "certificates": certificates.len() })),
    )
    .await?;
    Ok(Json(json!({ "certificates": certificates })))
}
