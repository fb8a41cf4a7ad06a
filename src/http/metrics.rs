//! `GET /metrics`: the service's metrics in the Prometheus text format, answered to client
//! addresses in `metrics.allow` (after `server.trusted_proxies`); everyone else gets 403. No
//! token: a Prometheus server scrapes without one, and nothing here is PHI.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::client::ClientAddr;
use super::state::AppState;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::metrics::Snapshot;
use crate::store::prelude::*;

pub async fn metrics(
    State(state): State<AppState>,
    client: Option<Extension<ClientAddr>>,
) -> AppResult<Response> {
    let allowed = client.is_some_and(|Extension(ClientAddr(client))| {
        state
            .config
            .metrics
            .allow
            .iter()
            .any(|net| net.contains(&client))
    });
    if !allowed {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "the metrics are served only to the addresses of metrics.allow",
        ));
    }
    let queue = state.db.queue_summary().await?;
    let age = |since: Option<&str>| {
        let since = chrono::DateTime::parse_from_rfc3339(since?).ok()?;
        let age = chrono::Utc::now().signed_duration_since(since);
        Some(age.to_std().unwrap_or(Duration::ZERO))
    };
    let oldest_pending_job_age = age(queue.oldest_pending.as_deref());
    let outbox = state.db.outbox_backlog().await?;
    let index = state.index()?.clone();
    let (index_documents, index_segments) = tokio::task::spawn_blocking(move || index.stats())
        .await
        .map_err(AppError::internal)?;
    let snapshot = Snapshot {
        jobs_by_state: queue.by_state,
        oldest_pending_job_age,
        index_documents,
        index_segments: index_segments as u64,
        kek_versions: state.db.keyring_versions().await?,
        mdm_backlog: outbox.pending,
        mdm_oldest_pending_age: age(outbox.oldest_created_at.as_deref()),
    };
    let text = state.metrics.encode(&snapshot);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
