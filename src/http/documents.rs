//! Document routes: upload (multipart), metadata, the original, and each page's image, text
//! and word boxes. Each read is authorised through `decide` and audited before any byte of
//! PHI is sent.

use std::io::Read;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::multipart::{read_chunk, BoundedMultipart, Meter};
use crate::access::audit::{authorize, AuditEvent};
use crate::access::lookup::document_in_scope;
use crate::access::policy::{Action, Principal};
use crate::domain::{DocumentId, DocumentStatus, Outcome};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::ingest::upload::{self, Staged, StagingUpload, ValidMetadata};
use crate::store::documents::Document;
use crate::store::pages::PageRow;
use crate::store::prelude::*;
use crate::store::vault::ObjectRef;

const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The document routes' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    upload, list, metadata, delete, correct, retry, original, page_image, page_text, page_words
))]
pub(super) struct ApiDoc;

/// One recognised word of a page (the stored form of `chartvault_ocr::OcrWord`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PageWord {
    text: String,
    /// Its box in page pixels, origin top left.
    left: u32,
    top: u32,
    width: u32,
    height: u32,
    /// Tesseract's confidence, 0–100.
    confidence: f32,
    /// Tesseract's layout position (1-based): block, paragraph, line, word.
    block: u32,
    par: u32,
    line: u32,
    word: u32,
    /// A word of a PDF's text layer the rendered page does not show (absent when false).
    hidden: Option<bool>,
}

/// The form of an upload (`multipart/form-data`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The scan: JPEG, PNG, TIFF, PDF or a DICOM Part 10 file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Who and what it is.
    metadata: upload::UploadMetadata,
}
use super::multipart::MULTIPART_OVERHEAD;

#[utoipa::path(
    post,
    path = "/documents",
    tag = "documents",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored (encrypted) and queued for OCR", body = upload::Accepted),
        (status = 200, description = "The patient has this original already: the existing document", body = upload::Accepted),
        (status = 415, description = "Not a supported file type", body = super::error::ErrorBody, content_type = "application/problem+json"),
        (status = 422, description = "The file cannot be read (corrupt, a decompression bomb, no pages)", body = super::error::ErrorBody, content_type = "application/problem+json"),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    principal: Result<Principal, AppError>,
    request: Request,
) -> Response {
    let (principal, metadata, staged) = match receive(&state, principal, request, true).await {
        Ok(received) => received,
        Err(response) => return response,
    };
    let Some(metadata) = metadata else {
        drop(staged); // its staging object goes with it
        return AppError::invalid("the 'metadata' part is missing").into_response();
    };
    match upload::accept(&state, staged, metadata, &principal).await {
        Ok(accepted) => {
            let status = if accepted.duplicate {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let location = state.link(&format!("/api/v1/documents/{}", accepted.id));
            (status, [(header::LOCATION, location)], Json(accepted)).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// Authorises an upload and receives it: the `file` part encrypted into its staging object
/// as it streams in, and (when `with_metadata`) the `metadata` part parsed. Any refusal is the
/// response to send, with nothing left staged.
pub(super) async fn receive(
    state: &AppState,
    principal: Result<Principal, AppError>,
    request: Request,
    with_metadata: bool,
) -> Result<(Principal, Option<ValidMetadata>, Staged), Response> {
    let (parts, body) = request.into_parts();
    // An unauthenticated client's body is not read at all: the connection closes after
    // the 401 (only a known caller is worth draining for).
    let principal = match principal {
        Ok(principal) => principal,
        Err(error) => return Err(error.into_response()),
    };
    if let Err(error) = authorize(&state.db, &principal, Action::Ingest, None).await {
        return Err(refuse(error, body).await);
    }
    let limit = state.config.limits.max_upload_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit + MULTIPART_OVERHEAD) {
        return Err(refuse(upload::too_large(limit), body).await);
    }
    let expected = if with_metadata {
        "the body must be multipart/form-data with parts 'file' and 'metadata'"
    } else {
        "the body must be multipart/form-data with one part 'file'"
    };
    let request = Request::from_parts(parts, body);
    let mut multipart = match BoundedMultipart::from_request(request, state).await {
        Ok(multipart) => multipart,
        Err(_) => return Err(AppError::invalid(expected).into_response()),
    };

    let mut metadata: Option<ValidMetadata> = None;
    let mut staged: Option<Staged> = None;
    let outcome = read_parts(
        state,
        &mut multipart,
        limit,
        with_metadata,
        &mut metadata,
        &mut staged,
    )
    .await;
    match (outcome, staged.take()) {
        (Ok(()), Some(staged)) => Ok((principal, metadata, staged)),
        (outcome, staged) => {
            drop(staged); // its staging object goes with it, before the body is drained
            multipart.drain(DRAIN_BYTES as u64, DRAIN_TIME).await;
            let error = match outcome {
                Err(error) => error,
                Ok(()) => AppError::invalid("the 'file' part is missing"),
            };
            Err(error.into_response())
        }
    }
}

/// How much of a refused upload is read and discarded so the client, still sending, gets
/// the error instead of a reset connection. Past this the connection is simply closed.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(3);

async fn refuse(error: AppError, body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    error.into_response()
}

async fn read_parts(
    state: &AppState,
    multipart: &mut BoundedMultipart,
    limit: u64,
    with_metadata: bool,
    metadata: &mut Option<ValidMetadata>,
    staged: &mut Option<Staged>,
) -> AppResult<()> {
    let meter = multipart.meter();
    let malformed = || AppError::invalid("the multipart body could not be read");
    let field_limit = |name: Option<&str>| match name {
        Some("metadata") => MAX_METADATA_BYTES as u64,
        // The staging upload counts the file against `limit` itself, with its own message.
        Some("file") => limit.saturating_add(1 << 20),
        _ => 0,
    };
    while let Some(mut field) = multipart.next_field(field_limit, malformed).await? {
        match field.name() {
            Some("metadata") if !with_metadata => {
                return Err(AppError::invalid(
                    "a batch takes no 'metadata' part: each cover sheet carries its document's",
                ))
            }
            Some("metadata") => {
                if metadata.is_some() {
                    return Err(AppError::invalid("only one 'metadata' part is allowed"));
                }
                let mut json = Vec::new();
                while let Some(chunk) = read_chunk(&mut field, &meter, malformed).await? {
                    json.extend_from_slice(&chunk);
                    if json.len() > MAX_METADATA_BYTES {
                        return Err(AppError::invalid("the 'metadata' part is too large"));
                    }
                }
                *metadata = Some(ValidMetadata::parse(&json, &state.config.patients)?);
            }
            Some("file") => {
                if staged.is_some() {
                    return Err(AppError::invalid("only one 'file' part is allowed"));
                }
                let mut upload = StagingUpload::begin(&state.vault, limit)?;
                let received = stream_field(&mut field, &meter, &mut upload).await;
                match received {
                    Ok(()) => *staged = Some(upload.finish().await?),
                    Err(error) => {
                        upload.abort().await;
                        return Err(error);
                    }
                }
            }
            _ if with_metadata => {
                return Err(AppError::invalid(
                    "unexpected part: only 'file' and 'metadata' are accepted",
                ))
            }
            _ => {
                return Err(AppError::invalid(
                    "unexpected part: only 'file' is accepted",
                ))
            }
        }
    }
    Ok(())
}

async fn stream_field(
    field: &mut axum::extract::multipart::Field<'_>,
    meter: &Meter,
    upload: &mut StagingUpload,
) -> AppResult<()> {
    let interrupted = || AppError::invalid("the upload was interrupted or malformed");
    while let Some(chunk) = read_chunk(field, meter, interrupted).await? {
        upload.push(chunk).await?;
    }
    Ok(())
}

/// Loads a document the caller may read, or the error to send (404 for unknown ids and for
/// documents outside the caller's scope alike).
async fn readable_document(
    state: &AppState,
    principal: &Principal,
    raw_id: &str,
) -> AppResult<Document> {
    authorize(&state.db, principal, Action::ReadDocument, None).await?;
    document_in_scope(state, principal, Action::ReadDocument, raw_id).await
}

async fn audit_read(
    state: &AppState,
    principal: &Principal,
    doc: &Document,
    what: &str,
    page: Option<u32>,
) -> AppResult<()> {
    let detail = serde_json::json!({ "artifact": what, "page": page });
    AuditEvent::new(principal, Action::ReadDocument)
        .patient(doc.patient_id)
        .document(doc.id)
        .detail(detail)
        .record(&state.db)
        .await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    #[serde(flatten)]
    document: Document,
    pages: Vec<PageRow>,
}

#[utoipa::path(
    get,
    path = "/documents/{id}",
    tag = "documents",
    responses((status = 200, description = "The document and its pages", body = DocumentView))
)]
pub async fn metadata(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<DocumentView>> {
    let doc = readable_document(&state, &principal, &id).await?;
    let pages = state.db.pages(doc.id).await?;
    audit_read(&state, &principal, &doc, "metadata", None).await?;
    Ok(Json(DocumentView {
        document: doc,
        pages,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    status: DocumentStatus,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentList {
    /// Documents in the status that the caller may see (a sensitive category needs a grant).
    total: usize,
    documents: Vec<ListedDocument>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListedDocument {
    id: DocumentId,
    patient_id: crate::domain::PatientId,
    mrn: String,
    patient_name: String,
    document_type: String,
    category: crate::domain::Category,
    content_type: String,
    page_count: u32,
    status: DocumentStatus,
    /// Why it failed (says what went wrong, never what the pages say).
    failure_reason: Option<String>,
    created_at: String,
}

/// `GET /documents?status=failed&limit=&offset=` (records): the documents still in work
/// (`accepted`, `processing`) or that failed, oldest first, to follow ingest and to retry
/// failures (`POST /documents/{id}/retry`). Indexed documents are found by search.
#[utoipa::path(
    get,
    path = "/documents",
    tag = "documents",
    params(ListQuery),
    responses((status = 200, description = "Documents in the status", body = DocumentList))
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    query: ApiQuery<ListQuery>,
) -> AppResult<Json<DocumentList>> {
    authorize(&state.db, &principal, Action::Ingest, None).await?;
    let query = query.read()?;
    if !matches!(
        query.status,
        DocumentStatus::Accepted | DocumentStatus::Processing | DocumentStatus::Failed
    ) {
        return Err(AppError::invalid(
            "status must be accepted, processing or failed (indexed documents are found by \
             search, the QA queue at /qa)",
        ));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit must be from 1 to 500"));
    }
    let offset = query.offset.unwrap_or(0);
    let visible: Vec<Document> = state
        .db
        .documents_with_status(query.status)
        .await?
        .into_iter()
        .filter(|doc| {
            crate::access::policy::decide(&principal, Action::Ingest, Some(&doc.resource()))
                .is_allow()
        })
        .collect();
    let total = visible.len();
    let mut documents = Vec::new();
    for doc in visible.into_iter().skip(offset).take(limit) {
        let Some(patient) = state.db.patient(doc.patient_id).await? else {
            continue;
        };
        documents.push(ListedDocument {
            id: doc.id,
            patient_id: doc.patient_id,
            mrn: patient.mrn.into(),
            patient_name: patient.name,
            document_type: doc.document_type,
            category: doc.category,
            content_type: doc.content_type,
            page_count: doc.page_count,
            status: doc.status,
            failure_reason: doc.failure_reason,
            created_at: doc.created_at,
        });
    }
    AuditEvent::new(&principal, Action::Ingest)
        .detail(serde_json::json!({
            "list": query.status.as_str(), "total": total, "listed": documents.len(),
        }))
        .record(&state.db)
        .await?;
    Ok(Json(DocumentList { total, documents }))
}

/// A tombstone's artifacts are gone for good: 410, not 404, once the caller may see it.
fn ensure_not_deleted(doc: &Document) -> AppResult<()> {
    if doc.status == DocumentStatus::Deleted {
        return Err(AppError::new(
            ErrorCode::Gone,
            "the document was deleted; only its tombstone remains",
        ));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Tombstone {
    id: DocumentId,
    status: DocumentStatus,
    sha256: String,
    deleted_at: Option<String>,
    deleted_by: Option<String>,
}

/// `POST /documents/{id}/retry` (records): processes a `failed` document again from its
/// original, once whatever failed it was dealt with; `409` unless it is `failed`. Audited
/// before the act.
#[utoipa::path(
    post,
    path = "/documents/{id}/retry",
    tag = "documents",
    responses(
        (status = 202, description = "Queued again", body = Retried),
        (status = 409, description = "The document is not failed", body = super::error::ErrorBody, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, [(header::HeaderName, String); 1], Json<Retried>)> {
    authorize(&state.db, &principal, Action::Ingest, None).await?;
    let doc = document_in_scope(&state, &principal, Action::Ingest, &id).await?;
    if doc.status != DocumentStatus::Failed {
        AuditEvent::new(&principal, Action::Ingest)
            .outcome(Outcome::Refused)
            .patient(doc.patient_id)
            .document(doc.id)
            .detail(serde_json::json!({ "retry": true, "refusal": "not failed" }))
            .record(&state.db)
            .await?;
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "only a failed document can be retried; this one is {}",
                doc.status.as_str()
            ),
        ));
    }
    AuditEvent::new(&principal, Action::Ingest)
        .patient(doc.patient_id)
        .document(doc.id)
        .detail(serde_json::json!({ "retry": true }))
        .record(&state.db)
        .await?;
    if !state.db.retry_failed(doc.id).await? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the document changed state during the request; reload it",
        ));
    }
    state.jobs_waiting.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            state.link(&format!("/api/v1/documents/{}", doc.id)),
        )],
        Json(Retried {
            id: doc.id,
            status: DocumentStatus::Accepted,
        }),
    ))
}

/// A failed document queued again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Retried {
    id: DocumentId,
    status: DocumentStatus,
}

/// `DELETE /documents/{id}` with `{"reason": "..."}`: crypto-shreds the document
/// (see [`crate::legal::shred`]); answers with its tombstone.
#[utoipa::path(
    delete,
    path = "/documents/{id}",
    tag = "documents",
    request_body = DeleteBody,
    responses(
        (status = 200, description = "Crypto-shredded: its tombstone", body = Tombstone),
        (status = 409, description = "A hold or a retention period keeps it", body = super::error::ErrorBody, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<DeleteBody>,
) -> AppResult<Json<Tombstone>> {
    authorize(&state.db, &principal, Action::DeleteDocument, None).await?;
    let body = body.read()?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(AppError::invalid("reason must be 1 to 1000 characters"));
    }
    let doc = document_in_scope(&state, &principal, Action::DeleteDocument, &raw_id).await?;
    let refusal = match crate::legal::shred::destruction_refusal(&state, &doc).await? {
        Some(refusal) => Some(refusal),
        None => {
            crate::legal::shred::versions_refusal(&state, &principal, Action::DeleteDocument, &doc)
                .await?
        }
    };
    if let Some(refusal) = refusal {
        AuditEvent::new(&principal, Action::DeleteDocument)
            .outcome(Outcome::Refused)
            .patient(doc.patient_id)
            .document(doc.id)
            .detail(serde_json::json!({ "refusal": refusal.code.as_str() }))
            .record(&state.db)
            .await?;
        return Err(refusal);
    }
    // Audited before the act: a destruction that cannot be recorded does not happen.
    AuditEvent::new(&principal, Action::DeleteDocument)
        .patient(doc.patient_id)
        .document(doc.id)
        .detail(serde_json::json!({ "pages": doc.page_count, "sha256": doc.sha256 }))
        .record(&state.db)
        .await?;
    if !crate::legal::shred::shred(&state, &doc, &principal.user_id.to_string(), reason, None)
        .await?
    {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the document changed state or was put on hold during the request; retry",
        ));
    }
    let doc = state
        .db
        .document(doc.id)
        .await?
        .ok_or_else(AppError::not_found)?;
    Ok(Json(Tombstone {
        id: doc.id,
        status: doc.status,
        sha256: doc.sha256,
        deleted_at: doc.deleted_at,
        deleted_by: doc.deleted_by,
    }))
}

#[utoipa::path(
    get,
    path = "/documents/{id}/original",
    tag = "documents",
    responses(
        (status = 200, description = "The original, byte for byte, decrypted as it streams", body = super::error::Binary, content_type = "application/octet-stream"),
        (status = 410, description = "Deleted: only its tombstone remains", body = super::error::ErrorBody, content_type = "application/problem+json"),
    )
)]
pub async fn original(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let doc = readable_document(&state, &principal, &id).await?;
    ensure_not_deleted(&doc)?;
    let reader = state.vault.open(ObjectRef::Original(doc.id)).await?;
    audit_read(&state, &principal, &doc, "original", None).await?;
    let extension = match doc.content_type.as_str() {
        "image/tiff" => "tif",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        _ => "bin",
    };
    let headers = [
        (header::CONTENT_TYPE, doc.content_type.clone()),
        (header::CONTENT_LENGTH, doc.size_bytes.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}.{extension}\"", doc.id),
        ),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ];
    Ok((
        headers,
        Body::from_stream(decrypting_stream(reader, doc.id.0)),
    )
        .into_response())
}

/// Streams a decrypting reader from a blocking thread, 64 KiB at a time. A chunk that fails
/// authentication ends the stream with an error (the client sees a broken transfer), never
/// with unauthenticated bytes.
pub fn decrypting_stream<R: Read + Send + 'static>(
    mut reader: R,
    record: uuid::Uuid,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buffer[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    tracing::error!(record_id = %record, error = %error, "decryption failed while streaming");
                    let _ = tx.blocking_send(Err(error));
                    return;
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// The three stored artifacts of a page.
#[derive(Debug, Clone, Copy)]
enum PageArtifact {
    Image,
    Text,
    Words,
}

impl PageArtifact {
    fn object(self, doc: DocumentId, page: u32) -> ObjectRef {
        match self {
            PageArtifact::Image => ObjectRef::PageImage(doc, page),
            PageArtifact::Text => ObjectRef::PageText(doc, page),
            PageArtifact::Words => ObjectRef::PageWords(doc, page),
        }
    }

    /// The name in audit entries.
    fn name(self) -> &'static str {
        match self {
            PageArtifact::Image => "image",
            PageArtifact::Text => "text",
            PageArtifact::Words => "words",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            PageArtifact::Image => "image/png",
            PageArtifact::Text => "text/plain; charset=utf-8",
            PageArtifact::Words => "application/json",
        }
    }
}

/// One artifact of one page, decrypted, after the read is authorised and audited.
async fn page_artifact(
    state: AppState,
    principal: Principal,
    (id, page): (String, String),
    artifact: PageArtifact,
) -> AppResult<Response> {
    let doc = readable_document(&state, &principal, &id).await?;
    ensure_not_deleted(&doc)?;
    let page: u32 = page.parse().map_err(|_| AppError::not_found())?;
    // Page 0 is a batch document's cover sheet, when kept (`batches.keep_cover_sheet`).
    if page > doc.page_count || (page == 0 && !state.db.page_exists(doc.id, 0).await?) {
        return Err(AppError::not_found());
    }
    let bytes = match state.vault.get(artifact.object(doc.id, page)).await {
        Ok(bytes) => bytes,
        Err(error)
            if matches!(
                error.downcast_ref::<chartvault_storage::StorageError>(),
                Some(chartvault_storage::StorageError::NotFound(_))
            ) =>
        {
            let message = if doc.status == DocumentStatus::Failed {
                "this page was not processed: the document failed"
            } else {
                "this page is not processed yet"
            };
            return Err(AppError::new(ErrorCode::NotFound, message));
        }
        Err(error) => return Err(error.into()),
    };
    audit_read(&state, &principal, &doc, artifact.name(), Some(page)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, artifact.content_type()),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/documents/{id}/pages/{page}/image",
    tag = "documents",
    responses((status = 200, description = "The page as the archive rendered it (PNG)", body = super::error::Binary, content_type = "image/png"))
)]
pub async fn page_image(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<(String, String)>,
) -> AppResult<Response> {
    page_artifact(state, principal, path, PageArtifact::Image).await
}

#[utoipa::path(
    get,
    path = "/documents/{id}/pages/{page}/text",
    tag = "documents",
    responses((status = 200, description = "The page's recognised text", body = String, content_type = "text/plain"))
)]
pub async fn page_text(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<(String, String)>,
) -> AppResult<Response> {
    page_artifact(state, principal, path, PageArtifact::Text).await
}

#[utoipa::path(
    get,
    path = "/documents/{id}/pages/{page}/words",
    tag = "documents",
    responses((status = 200, description = "The page's words with their boxes", body = Vec<PageWord>))
)]
pub async fn page_words(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<(String, String)>,
) -> AppResult<Response> {
    page_artifact(state, principal, path, PageArtifact::Words).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// The patient it belongs to (created when `name` is given and the MRN is new).
    mrn: Option<String>,
    /// The MRN's issuer (default: the archive's default issuer).
    issuer: Option<String>,
    name: Option<String>,
    document_type: Option<String>,
    category: Option<String>,
    service_date: Option<chrono::NaiveDate>,
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Corrected {
    /// The new version.
    id: DocumentId,
    status: DocumentStatus,
    patient_id: crate::domain::PatientId,
    /// The version entered in error.
    supersedes: DocumentId,
}

/// `POST /documents/{id}/corrections`: files a misfiled document again as a new version;
/// the old one is entered in error (see [`crate::ingest::correct`]). Audited before the act.
#[utoipa::path(
    post,
    path = "/documents/{id}/corrections",
    tag = "documents",
    request_body = CorrectionBody,
    responses((status = 201, description = "The new version (`Location`); the old one is entered in error", body = Corrected))
)]
pub async fn correct(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: ApiJson<CorrectionBody>,
) -> AppResult<super::state::Created<Corrected>> {
    authorize(&state.db, &principal, Action::CorrectDocument, None).await?;
    let body = body.read()?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(AppError::invalid("reason must be 1 to 1000 characters"));
    }
    let doc = document_in_scope(&state, &principal, Action::CorrectDocument, &raw_id).await?;
    if doc.status != DocumentStatus::Indexed {
        AuditEvent::new(&principal, Action::CorrectDocument)
            .outcome(Outcome::Refused)
            .patient(doc.patient_id)
            .document(doc.id)
            .detail(serde_json::json!({ "refusal": "not an indexed document" }))
            .record(&state.db)
            .await?;
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "only an indexed document can be corrected; this one is {}",
                doc.status.as_str()
            ),
        ));
    }
    let patient_id = match &body.mrn {
        Some(mrn) => {
            crate::ingest::upload::patient_for(
                &state,
                mrn,
                body.issuer.as_deref(),
                body.name.clone(),
            )
            .await?
        }
        None => doc.patient_id,
    };
    let document_type = match &body.document_type {
        Some(raw) => crate::domain::parse_slug("document_type", raw).map_err(AppError::invalid)?,
        None => doc.document_type.clone(),
    };
    let category = match &body.category {
        Some(raw) => crate::domain::Category::parse(raw).map_err(AppError::invalid)?,
        None => doc.category.clone(),
    };
    let service_date = body.service_date.or(doc.service_date);
    let mut changed = Vec::new();
    if patient_id != doc.patient_id {
        changed.push("patient");
    }
    if document_type != doc.document_type {
        changed.push("document_type");
    }
    if category != doc.category {
        changed.push("category");
    }
    if service_date != doc.service_date {
        changed.push("service_date");
    }
    if changed.is_empty() {
        return Err(AppError::invalid(
            "the correction changes nothing: give another mrn, document_type, category or \
             service_date",
        ));
    }
    // A correction takes the held version out of the index: not while a hold covers it.
    let holds = state.db.holds_covering(doc.id).await?;
    if !holds.is_empty() {
        AuditEvent::new(&principal, Action::CorrectDocument)
            .outcome(Outcome::Refused)
            .patient(doc.patient_id)
            .document(doc.id)
            .detail(serde_json::json!({ "refusal": "legal hold" }))
            .record(&state.db)
            .await?;
        return Err(crate::legal::shred::hold_refusal(&holds));
    }
    AuditEvent::new(&principal, Action::CorrectDocument)
        .patient(patient_id)
        .document(doc.id)
        .detail(serde_json::json!({
            "changed": changed,
            "filed_under_before": doc.patient_id,
        }))
        .record(&state.db)
        .await?;
    let correction = crate::ingest::correct::Correction {
        patient_id,
        document_type,
        category,
        service_date,
        reason,
    };
    let Some(new_id) =
        crate::ingest::correct::correct(&state, &doc, &correction, principal.user_id)
            .await
            .map_err(AppError::internal)?
    else {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "the document changed state during the request; retry",
        ));
    };
    Ok(super::state::Created(
        state.link(&format!("/api/v1/documents/{new_id}")),
        Corrected {
            id: new_id,
            status: DocumentStatus::Accepted,
            patient_id,
            supersedes: doc.id,
        },
    ))
}
