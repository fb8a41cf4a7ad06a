//! The state every handler gets.

use std::sync::Arc;

use crate::app::Archive;

/// The state of every handler: the [`Archive`] the services work on, and what only the HTTP
/// front end needs (bearer-token verification, the audit checkpointer it flushes at stop).
#[derive(Clone)]
pub struct AppState {
    pub archive: Archive,
    /// Signs audit checkpoints (periodically, and once more at shutdown).
    pub audit_checkpoints: crate::audit::checkpoint::Checkpointer,
    /// Verifies OIDC/SMART bearer tokens, when configured.
    pub jwt: Option<Arc<crate::access::jwt::JwtVerifier>>,
    /// The index writer's role, while this process holds it: given up only once the writer
    /// has stopped, at the end of a shutdown.
    pub writer_role: Arc<tokio::sync::Mutex<Option<crate::store::db::WriterRole>>>,
}

impl std::ops::Deref for AppState {
    type Target = Archive;
    fn deref(&self) -> &Archive {
        &self.archive
    }
}

/// `201 Created` with the new resource's `Location` (see [`AppState::link`]) and its JSON.
pub struct Created<T>(pub String, pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Created<T> {
    fn into_response(self) -> axum::response::Response {
        (
            axum::http::StatusCode::CREATED,
            [(axum::http::header::LOCATION, self.0)],
            axum::Json(self.1),
        )
            .into_response()
    }
}

impl AppState {
    /// A link to `path` (under the service's root, starting with `/`): absolute under
    /// `server.public_url` when it is set, else relative.
    pub fn link(&self, path: &str) -> String {
        match &self.config.server.public_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path.to_string(),
        }
    }

    /// An absolute link to `path` (under the service's root, starting with `/`): under
    /// `server.public_url` when it is set, else under the scheme the service serves and the
    /// request's `Host` (a `Host` that is not a plain host name or address reads as
    /// `localhost`). For the protocols whose answers carry absolute URLs (FHIR, DICOMweb).
    pub fn absolute_link(&self, headers: &axum::http::HeaderMap, path: &str) -> String {
        if self.config.server.public_url.is_some() {
            return self.link(path);
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            })
            .unwrap_or("localhost");
        let scheme = if self.config.server.tls_cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}{path}")
    }
}
