//! The HTTP side of [`AppError`]: the status of each code and the body, an RFC 9457 problem
//! (`application/problem+json`: `type`, `title`, `status`, `detail`) that keeps the fields
//! clients of the first API read (`code`, `message` — the same text as `detail` —, and
//! `request_id`). A 401 says `WWW-Authenticate: Bearer`; a 503 says when to try again.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::error::{current_request_id, AppError, ErrorCode};

/// The HTTP status of an error code.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidScan => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Gone => StatusCode::GONE,
        ErrorCode::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error, as every route answers it (RFC 9457 `application/problem+json`, with the fields
/// the first clients of the API read kept as extensions). `Problem` in the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ErrorBody<'a> {
    /// A URI naming the kind of problem (`tag:chartvault,2026:problem:<code>`).
    #[serde(rename = "type")]
    kind: String,
    /// The HTTP status's reason phrase.
    title: &'a str,
    status: u16,
    /// What was wrong, without PHI.
    detail: &'a str,
    /// The machine-readable code (`invalid_request`, `not_found`, ...).
    code: &'a str,
    /// The same text as `detail`.
    message: &'a str,
    /// The request's id, as in the service's log and audit.
    request_id: String,
}

/// The bytes of a file (an original, a page image, a production) in the OpenAPI document,
/// as the route's media type says.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// The media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = status(self.code);
        let body = ErrorBody {
            kind: format!("tag:chartvault,2026:problem:{}", self.code.as_str()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &self.message,
            code: self.code.as_str(),
            message: &self.message,
            request_id: current_request_id(),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(PROBLEM_JSON),
        );
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("5"),
                );
            }
            _ => {}
        }
        response
    }
}
