//! Retention through the API (`records`): `POST /retention/runs` lists what has expired
//! and, with `{"apply": true}`, destroys what no hold covers (see [`crate::legal::retention`]);
//! `GET /retention/certificates` lists the destruction certificates (`records`, `legal`,
//! `auditor`).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal};
use crate::domain::DocumentId;
use crate::error::{AppError, AppResult};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::legal::retention::{RunBy, RunReport};
use crate::store::prelude::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    #[serde(default)]
    apply: bool,
}

pub async fn run(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<RunBody>,
) -> AppResult<Json<RunReport>> {
    authorize(&state.db, &principal, Action::RunRetention, None).await?;
    let body = body.read()?;
    AuditEvent::new(&principal, Action::RunRetention)
        .detail(json!({ "apply": body.apply }))
        .record(&state.db)
        .await?;
    let report = crate::legal::retention::run(&state, RunBy::Person(&principal), body.apply)
        .await
        .map_err(AppError::internal)?;
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
) -> AppResult<Json<serde_json::Value>> {
    authorize(&state.db, &principal, Action::ReadCertificates, None).await?;
    let document_id = filter
        .document_id
        .as_deref()
        .map(|raw| {
            raw.parse::<DocumentId>()
                .map_err(|_| AppError::invalid("document_id is not a document id"))
        })
        .transpose()?;
    let certificates = state
        .db
        .certificates(filter.run_id.as_deref(), document_id)
        .await?;
    AuditEvent::new(&principal, Action::ReadCertificates)
        .document(document_id)
        .detail(json!({ "certificates": certificates.len() }))
        .record(&state.db)
        .await?;
    Ok(Json(json!({ "certificates": certificates })))
}
