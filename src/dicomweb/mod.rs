//! DICOMweb at `/dicom-web` (PS3.18) for the archive's DICOM attachments: STOW-RS to store
//! instances, QIDO-RS to find studies, series and instances, WADO-RS to retrieve them as
//! stored, their metadata, and a rendered preview. A front end over the same services as
//! `/api/v1`: the same bearer tokens, the same policy function, the same audit.
//!
//! Promises:
//! - an instance is a document: stored through the same preflight, encryption and
//!   duplicate rule (by SOP Instance UID) as `POST /api/v1/documents`, filed under the
//!   patient its PatientID names under its issuer;
//! - a search answers only instances the caller may read; a retrieval of one they may not
//!   read is `404`, as in the API; every retrieval is audited per document, every search
//!   with the documents it answered;
//! - instances are returned byte for byte as stored (their own transfer syntax);
//! - errors are the API's problem+json, without PHI; query strings (they carry patient IDs)
//!   are never logged.

mod instances;
mod qido;
mod stow;
mod wado;

use axum::http::Method;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::error::AppError;
use crate::http::state::AppState;

pub use instances::DICOM_JSON;
use qido::{qido, Level};
use stow::store_instances;
use wado::{instance_rendered, metadata, retrieve};

const INSTANCE: &str = "/studies/{study}/series/{series}/instances/{instance}";

/// Every DICOMweb route: method, path under `/dicom-web`, handler. The router is built from
/// this table and nothing else, so the access-control test, which walks [`route_table`],
/// covers every route there is.
fn dicomweb_routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    const SERIES: &str = "/studies/{study}/series/{series}";
    vec![
        (Method::POST, "/studies", post(store_instances)),
        (Method::POST, "/studies/{study}", post(store_instances)),
        (Method::GET, "/studies", qido(Level::Study)),
        (Method::GET, "/series", qido(Level::Series)),
        (Method::GET, "/instances", qido(Level::Instance)),
        (Method::GET, "/studies/{study}/series", qido(Level::Series)),
        (
            Method::GET,
            "/studies/{study}/instances",
            qido(Level::Instance),
        ),
        (
            Method::GET,
            "/studies/{study}/series/{series}/instances",
            qido(Level::Instance),
        ),
        (Method::GET, "/studies/{study}", get(retrieve)),
        (Method::GET, "/studies/{study}/metadata", get(metadata)),
        (Method::GET, SERIES, get(retrieve)),
        (
            Method::GET,
            "/studies/{study}/series/{series}/metadata",
            get(metadata),
        ),
        (Method::GET, INSTANCE, get(retrieve)),
        (
            Method::GET,
            "/studies/{study}/series/{series}/instances/{instance}/metadata",
            get(metadata),
        ),
        (
            Method::GET,
            "/studies/{study}/series/{series}/instances/{instance}/rendered",
            get(instance_rendered),
        ),
    ]
}

/// (method, path under `/dicom-web`) of every DICOMweb route.
pub fn route_table() -> Vec<(Method, &'static str)> {
    dicomweb_routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The `/dicom-web` routes (nested under `/dicom-web` by the service's router, which bounds
/// bodies to `limits.max_json_bytes`): a STOW-RS request may carry `store_limit` bytes
/// (`limits.max_upload_bytes`) and the multipart framing.
pub fn routes(store_limit: u64) -> Router<AppState> {
    let store_limit =
        usize::try_from(store_limit.saturating_add(1024 * 1024)).unwrap_or(usize::MAX);
    dicomweb_routes()
        .into_iter()
        .fold(Router::new(), |router, (method, path, handler)| {
            let handler = if method == Method::POST {
                handler.layer(axum::extract::DefaultBodyLimit::max(store_limit))
            } else {
                handler
            };
            router.route(path, handler)
        })
        .fallback(|| async { AppError::not_found() })
}
