//! Retention through the API (`records`): `POST /retention/runs` lists what has expired
//! and, with `{"apply": true}`, destroys what no hold covers (see [`crate::legal::retention`]);
//! `GET /retention/certificates` lists the destruction certificates (`records`, `legal`,
//! `auditor`).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal};
use crate::domain::DocumentId;
use crate::error::{AppError, AppResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::legal::retention::{RunBy, RunReport};
use crate::store::prelude::*;

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(run, certificates))]
pub(super) struct ApiDoc;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    #[serde(default)]
    apply: bool,
}

#[utoipa::path(post, path = "/retention/runs", tag = "retention", request_body = RunBody,
    responses((status = 200, description = "What the rules make destroyable, and what was destroyed when `apply`", body = RunReport)))]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CertificateFilter {
    run_id: Option<String>,
    document_id: Option<String>,
}

#[utoipa::path(get, path = "/retention/certificates", tag = "retention", params(CertificateFilter),
    responses((status = 200, description = "Certificates of destruction", body = Certificates)))]
pub async fn certificates(
    State(state): State<AppState>,
    principal: Principal,
    filter: ApiQuery<CertificateFilter>,
) -> AppResult<Json<Certificates>> {
    authorize(&state.db, &principal, Action::ReadCertificates, None).await?;
    let filter = filter.read()?;
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
    Ok(Json(Certificates { certificates }))
}

/// Certificates of destruction.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Certificates {
    certificates: Vec<crate::store::retention::Certificate>,
}
