//! STOW-RS: instances stored from a `multipart/related` body, each as a document.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::instances::{base_url, dicom_json, Uids};
use crate::access::audit::authorize;
use crate::access::policy::{Action, Principal};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::state::AppState;

/// The failure reasons of PS3.18 Table 10.5.3-3 the archive answers.
const PROCESSING_FAILURE: u16 = 0x0110;
const OUT_OF_RESOURCES: u16 = 0xA700;
const CANNOT_UNDERSTAND: u16 = 0xC000;

pub(super) async fn store_instances(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(uids): Path<Uids>,
    request: Request,
) -> AppResult<Response> {
    store(&state, &principal, &headers, uids.study, request).await
}

/// `POST /studies[/{study}]`: each `application/dicom` part of a `multipart/related` body
/// stored as a document. `200` when every instance is stored (or was already), `202` when
/// some are refused, `409` when none is stored; the body is the PS3.18 store response
/// (Referenced SOP Sequence, Failed SOP Sequence with each failure's reason and an Error
/// Comment saying what was wrong).
async fn store(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    study: Option<String>,
    request: Request,
) -> AppResult<Response> {
    authorize(&state.db, principal, Action::Ingest, None).await?;
    let boundary = related_boundary(request.headers())?;
    // The multipart parser reads `multipart/related` as it reads forms: only the boundary
    // matters to it.
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/form-data; boundary=\"{boundary}\""))
            .map_err(|_| AppError::invalid("the multipart boundary is not valid"))?,
    );
    let request = Request::from_parts(parts, body);
    let malformed = || AppError::invalid("the multipart/related body is malformed");
    let mut multipart = crate::http::multipart::BoundedMultipart::from_request(request, &())
        .await
        .map_err(|_| malformed())?;
    let meter = multipart.meter();
    let limit = state.config.limits.max_upload_bytes;
    let base = base_url(state, headers);
    let (mut stored, mut failed) = (Vec::new(), Vec::new());
    let mut studies = std::collections::BTreeSet::new();
    loop {
        let field = match multipart.next_field(|_| limit + 1, malformed).await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                multipart
                    .drain(limit, std::time::Duration::from_secs(10))
                    .await;
                return Err(error);
            }
        };
        let declared = field.content_type().map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let mut field = field;
        if declared
            .as_deref()
            .is_some_and(|t| t != chartvault_ocr::DICOM_MIME)
        {
            // Read past it: this archive stores Part 10 instances, not JSON or XML
            // metadata with bulk data.
            while crate::http::multipart::read_chunk(&mut field, &meter, malformed)
                .await?
                .is_some()
            {}
            failed.push(failed_item(
                None,
                CANNOT_UNDERSTAND,
                "the part is not application/dicom (this archive stores DICOM Part 10 instances)",
            ));
            continue;
        }
        let mut staging = crate::ingest::upload::StagingUpload::begin(&state.vault, limit)?;
        let mut too_large = false;
        loop {
            match crate::http::multipart::read_chunk(&mut field, &meter, malformed).await {
                Ok(Some(chunk)) if !too_large => {
                    if staging.push(chunk).await.is_err() {
                        too_large = true;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) if error.code == ErrorCode::PayloadTooLarge => {
                    // The parser stopped inside the part: nothing after it can be read.
                    staging.abort().await;
                    failed.push(failed_item(
                        None,
                        OUT_OF_RESOURCES,
                        &format!("the instance is larger than the limit of {limit} bytes"),
                    ));
                    multipart
                        .drain(limit, std::time::Duration::from_secs(10))
                        .await;
                    return Ok(store_response(&base, &studies, stored, failed));
                }
                Err(error) => {
                    staging.abort().await;
                    return Err(error);
                }
            }
        }
        if too_large {
            staging.abort().await;
            failed.push(failed_item(
                None,
                OUT_OF_RESOURCES,
                &format!("the instance is larger than the limit of {limit} bytes"),
            ));
            continue;
        }
        let staged = staging.finish().await?;
        match crate::ingest::dicom::accept_instance(state, staged, principal, study.as_deref())
            .await
        {
            Ok(instance) => {
                let info = &instance.info;
                let study_uid = info.study_instance_uid.clone().unwrap_or_default();
                let url = format!(
                    "{base}/studies/{study_uid}/series/{}/instances/{}",
                    info.series_instance_uid.as_deref().unwrap_or_default(),
                    info.sop_instance_uid
                );
                studies.insert(study_uid);
                stored.push(json!({
                    "00081150": { "vr": "UI", "Value": [info.sop_class_uid.clone().unwrap_or_default()] },
                    "00081155": { "vr": "UI", "Value": [info.sop_instance_uid] },
                    "00081190": { "vr": "UR", "Value": [url] },
                }));
            }
            Err(refused) => {
                let reason = match refused.error.code {
                    ErrorCode::PayloadTooLarge => OUT_OF_RESOURCES,
                    ErrorCode::UnsupportedMediaType | ErrorCode::InvalidScan => CANNOT_UNDERSTAND,
                    ErrorCode::InvalidRequest if refused.info.is_none() => CANNOT_UNDERSTAND,
                    ErrorCode::Internal | ErrorCode::AuditUnavailable | ErrorCode::Unavailable => {
                        return Err(refused.error);
                    }
                    _ => PROCESSING_FAILURE,
                };
                failed.push(failed_item(
                    refused.info.as_ref(),
                    reason,
                    &refused.error.message,
                ));
            }
        }
    }
    Ok(store_response(&base, &studies, stored, failed))
}

/// The boundary of a `multipart/related` body of DICOM instances (415 for anything else).
fn related_boundary(headers: &HeaderMap) -> AppResult<String> {
    let unsupported = || {
        AppError::new(
            ErrorCode::UnsupportedMediaType,
            "a store request is multipart/related; type=\"application/dicom\" with a boundary",
        )
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut pieces = content_type.split(';');
    if !pieces
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/related"))
    {
        return Err(unsupported());
    }
    let mut boundary = None;
    for piece in pieces {
        let Some((name, value)) = piece.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "type" if !value.eq_ignore_ascii_case(chartvault_ocr::DICOM_MIME) => {
                return Err(unsupported())
            }
            "boundary" => boundary = Some(value.to_string()),
            _ => {}
        }
    }
    boundary
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(unsupported)
}

fn failed_item(info: Option<&chartvault_ocr::DicomInfo>, reason: u16, comment: &str) -> Value {
    let mut item = serde_json::Map::new();
    if let Some(info) = info {
        if let Some(class) = &info.sop_class_uid {
            item.insert("00081150".into(), json!({ "vr": "UI", "Value": [class] }));
        }
        item.insert(
            "00081155".into(),
            json!({ "vr": "UI", "Value": [info.sop_instance_uid] }),
        );
    }
    item.insert("00081197".into(), json!({ "vr": "US", "Value": [reason] }));
    // Error Comment: what was wrong, structure only (never a value from the file).
    item.insert("00000902".into(), json!({ "vr": "LO", "Value": [comment] }));
    Value::Object(item)
}

fn store_response(
    base: &str,
    studies: &std::collections::BTreeSet<String>,
    stored: Vec<Value>,
    failed: Vec<Value>,
) -> Response {
    let status = match (stored.is_empty(), failed.is_empty()) {
        (_, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, false) => StatusCode::CONFLICT,
    };
    let mut body = serde_json::Map::new();
    if let [study] = studies.iter().collect::<Vec<_>>().as_slice() {
        body.insert(
            "00081190".into(),
            json!({ "vr": "UR", "Value": [format!("{base}/studies/{study}")] }),
        );
    }
    if !stored.is_empty() {
        body.insert("00081199".into(), json!({ "vr": "SQ", "Value": stored }));
    }
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({ "vr": "SQ", "Value": failed }));
    }
    dicom_json(status, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_request_names_multipart_related_of_dicom_with_a_boundary() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(
            related_boundary(&headers(
                "multipart/related; type=\"application/dicom\"; boundary=\"ab-12\""
            ))
            .unwrap(),
            "ab-12"
        );
        assert!(related_boundary(&headers("multipart/related; boundary=x")).is_ok());
        assert!(related_boundary(&headers("multipart/form-data; boundary=x")).is_err());
        assert!(related_boundary(&headers(
            "multipart/related; type=\"application/dicom+json\"; boundary=x"
        ))
        .is_err());
        assert!(
            related_boundary(&headers("multipart/related; type=\"application/dicom\"")).is_err()
        );
    }
}
