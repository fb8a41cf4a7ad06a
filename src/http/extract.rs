//! What handlers extract from a request: the caller ([`Principal`], from the bearer token)
//! and JSON bodies ([`ApiJson`]) whose rejections become the service's own error.
//!
//! There is no patient-by-MRN extractor: an MRN is PHI and never travels in a URL, so it
//! arrives in the body, after the caller is authorised;
//! [`crate::access::lookup::patient_by_mrn`] is the one lookup (scope check and audited 404).

use std::convert::Infallible;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::Json;
use serde::de::DeserializeOwned;

use super::client::ClientAddr;
use crate::access::policy::{principal_from_token, Principal};
use crate::error::AppError;
use crate::http::state::AppState;

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client_addr = parts
            .extensions
            .get::<ClientAddr>()
            .map(|ClientAddr(addr)| addr.to_string());
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AppError::unauthorized("a bearer token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() < 8192)
            .ok_or_else(|| {
                AppError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        principal_from_token(state, state.jwt.as_deref(), token, client_addr).await
    }
}

/// A JSON body, read before the handler runs and judged after it has authorised the caller:
/// a caller without the right gets 403 whatever they sent, and only then does a bad body get
/// a 400 naming the problem (never the content). Handlers call [`ApiJson::read`] after
/// `authorize`.
pub struct ApiJson<T>(Result<T, AppError>);

impl<T> ApiJson<T> {
    /// The body, or the 400 (413 when too large) that says what was wrong with it.
    pub fn read(self) -> Result<T, AppError> {
        self.0
    }
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Self, Infallible> {
        Ok(ApiJson(
            Json::<T>::from_request(request, state)
                .await
                .map(|Json(body)| body)
                .map_err(json_rejection),
        ))
    }
}

/// A JSON body that could not be read: the message names the problem, not the content.
fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> AppError {
    use axum::extract::rejection::JsonRejection as R;
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return AppError::new(
            crate::error::ErrorCode::PayloadTooLarge,
            "the body is larger than the limit for this route (limits.max_json_bytes)",
        );
    }
    match rejection {
        R::MissingJsonContentType(_) => {
            AppError::invalid("the body must be JSON with Content-Type: application/json")
        }
        R::JsonSyntaxError(_) => AppError::invalid("the body is not valid JSON"),
        R::JsonDataError(e) => {
            let text = e.body_text();
            // serde's messages for unknown or missing fields name fields, not values.
            if text.contains("unknown field") || text.contains("missing field") {
                AppError::invalid(text.replace(
                    "Failed to deserialize the JSON body into the target type: ",
                    "",
                ))
            } else {
                AppError::invalid("a field of the body has the wrong type or format")
            }
        }
        _ => AppError::invalid("the body could not be read"),
    }
}

/// A query string, judged after the handler has authorised the caller (like [`ApiJson`]).
/// Query strings are never logged; they carry no PHI on the routes that take one.
pub struct ApiQuery<T>(Result<T, AppError>);

impl<T> ApiQuery<T> {
    /// The parameters, or the 400 that says which one was wrong.
    pub fn read(self) -> Result<T, AppError> {
        self.0
    }
}

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        Ok(ApiQuery(
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map(|axum::extract::Query(query)| query)
                .map_err(|rejection| {
                    // serde_urlencoded names the parameter, never its value.
                    AppError::invalid(rejection.body_text().replace(
                        "Failed to deserialize query string: ",
                        "the query string is not valid: ",
                    ))
                }),
        ))
    }
}
