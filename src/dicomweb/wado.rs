//! WADO-RS: instances retrieved as stored, their metadata, and a rendered preview.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};

use super::instances::{dicom_json, shown, text, visible_instances, Uids};
use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal};
use crate::domain::{DocumentStatus, Outcome};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::state::AppState;
use crate::store::documents::{DicomLookup, Document};
use crate::store::objects::ObjectRef;
use crate::store::prelude::*;

/// What a retrieval names: a study, a series of it, or one instance.
struct Target {
    study: String,
    series: Option<String>,
    instance: Option<String>,
}

impl From<Uids> for Target {
    fn from(uids: Uids) -> Target {
        Target {
            // Every retrieval route names its study.
            study: uids.study.unwrap_or_default(),
            series: uids.series,
            instance: uids.instance,
        }
    }
}

/// The instances a retrieval names that the caller may read (with their documents),
/// in series then instance order. None there, or none the caller may read: `404` (the
/// refusal audited as such).
async fn retrieved(
    state: &AppState,
    principal: &Principal,
    target: &Target,
) -> AppResult<Vec<(Document, Value)>> {
    authorize(&state.db, principal, Action::ReadDocument, None).await?;
    let (candidates, hidden) = match &target.instance {
        Some(sop) => {
            let doc = state.db.document_by_sop_instance(sop).await?;
            match doc.filter(shown) {
                Some(doc) => {
                    let instances = state
                        .db
                        .dicom_instances(DicomLookup::Documents(&[doc.id]))
                        .await?;
                    let metadata = instances.into_iter().next().map(|i| i.metadata);
                    match metadata {
                        Some(metadata) => {
                            // Out of scope: audited as refused, 404 as for no instance.
                            authorize(
                                &state.db,
                                principal,
                                Action::ReadDocument,
                                Some(&doc.resource()),
                            )
                            .await?;
                            (vec![(doc, metadata)], 0)
                        }
                        None => (Vec::new(), 0),
                    }
                }
                None => (Vec::new(), 0),
            }
        }
        None => visible_instances(state, principal, None, Some(&target.study)).await?,
    };
    let mut matching: Vec<(Document, Value)> = candidates
        .into_iter()
        .filter(|(_, metadata)| {
            text(metadata, "0020000D") == Some(target.study.as_str())
                && target
                    .series
                    .as_deref()
                    .is_none_or(|s| text(metadata, "0020000E") == Some(s))
        })
        .collect();
    if matching.is_empty() {
        AuditEvent::new(principal, Action::ReadDocument)
            .outcome(if hidden > 0 {
                Outcome::DeniedScope
            } else {
                Outcome::NotFound
            })
            .detail(json!({ "dicomweb": "retrieve" }))
            .record(&state.db)
            .await?;
        return Err(AppError::not_found());
    }
    let number = |m: &Value, tag: &str| m[tag]["Value"][0].as_i64().unwrap_or(0);
    matching.sort_by(|(_, a), (_, b)| {
        number(a, "00200011")
            .cmp(&number(b, "00200011"))
            .then(number(a, "00200013").cmp(&number(b, "00200013")))
            .then(text(a, "00080018").cmp(&text(b, "00080018")))
    });
    Ok(matching)
}

async fn audit_reads(
    state: &AppState,
    principal: &Principal,
    found: &[(Document, Value)],
    what: &str,
) -> AppResult<()> {
    for (doc, _) in found {
        AuditEvent::new(principal, Action::ReadDocument)
            .patient(doc.patient_id)
            .document(doc.id)
            .detail(json!({ "dicomweb": what }))
            .record(&state.db)
            .await?;
    }
    Ok(())
}

/// Whether an `Accept` header admits the instances as stored (in `stored` transfer
/// syntaxes): some media range of `multipart/related` (of `application/dicom`), or `*/*`,
/// whose `transfer-syntax`, if any, is `*` or the one each instance is stored in.
fn accepts_as_stored(accept: Option<&str>, stored: &[&str]) -> bool {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let mut pieces = range.split(';');
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut kind_ok = true;
        let mut syntax_ok = true;
        for piece in pieces {
            let Some((name, value)) = piece.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "type" => kind_ok = value.eq_ignore_ascii_case(chartvault_ocr::DICOM_MIME),
                "transfer-syntax" => syntax_ok = value == "*" || stored.iter().all(|s| *s == value),
                _ => {}
            }
        }
        matches!(media.as_str(), "multipart/related" | "*/*" | "multipart/*")
            && kind_ok
            && syntax_ok
    })
}

/// WADO-RS retrieval: the instances as stored, each a part of a `multipart/related;
/// type="application/dicom"` answer, decrypted as it streams.
pub(super) async fn retrieve(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(uids): Path<Uids>,
) -> AppResult<Response> {
    let (state, principal) = (&state, &principal);
    let found = retrieved(state, principal, &Target::from(uids)).await?;
    let syntaxes: Vec<String> = found
        .iter()
        .map(|(_, m)| text(m, "00083002").unwrap_or("").to_string())
        .collect();
    let stored: Vec<&str> = syntaxes.iter().map(String::as_str).collect();
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok());
    if !accepts_as_stored(accept, &stored) {
        let mut unique = stored.clone();
        unique.sort();
        unique.dedup();
        return Err(AppError::new(
            ErrorCode::NotAcceptable,
            format!(
                "the archive returns instances as stored (transfer syntax {}): ask for \
                 multipart/related; type=\"application/dicom\" with transfer-syntax=* or that one",
                unique.join(", ")
            ),
        ));
    }
    audit_reads(state, principal, &found, "retrieve").await?;
    let boundary = format!("chartvault-{}", uuid::Uuid::new_v4().simple());
    let mut parts = Vec::with_capacity(found.len() * 2 + 1);
    for ((doc, _), syntax) in found.iter().zip(&syntaxes) {
        let head = format!(
            "--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n\
             Content-Length: {}\r\n\r\n",
            doc.size_bytes
        );
        parts.push(futures::stream::iter([Ok(Bytes::from(head))]).boxed());
        let reader = state.vault.open(ObjectRef::Original(doc.id)).await?;
        parts.push(crate::http::decrypting_stream(reader, doc.id.0).boxed());
        parts.push(futures::stream::iter([Ok(Bytes::from_static(b"\r\n"))]).boxed());
    }
    parts.push(futures::stream::iter([Ok(Bytes::from(format!("--{boundary}--\r\n")))]).boxed());
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(futures::stream::iter(parts).flatten()),
    )
        .into_response())
}

/// `/metadata`: each instance's data set as DICOM JSON (as stored in the file: without
/// pixel data and large binary values).
pub(super) async fn metadata(
    State(state): State<AppState>,
    principal: Principal,
    Path(uids): Path<Uids>,
) -> AppResult<Response> {
    let found = retrieved(&state, &principal, &Target::from(uids)).await?;
    audit_reads(&state, &principal, &found, "metadata").await?;
    let items: Vec<Value> = found.into_iter().map(|(_, metadata)| metadata).collect();
    Ok(dicom_json(StatusCode::OK, Value::Array(items)))
}

/// `/rendered`: the instance's preview (the first frame as a radiologist sees it), as
/// `image/jpeg` (the default) or `image/png`.
pub(super) async fn instance_rendered(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(uids): Path<Uids>,
) -> AppResult<Response> {
    let target = Target::from(uids);
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("image/jpeg")
        .to_ascii_lowercase();
    let png =
        if accept.contains("image/jpeg") || accept.contains("*/*") || accept.contains("image/*") {
            false
        } else if accept.contains("image/png") {
            true
        } else {
            return Err(AppError::new(
                ErrorCode::NotAcceptable,
                "a rendered instance is image/jpeg or image/png",
            ));
        };
    let found = retrieved(&state, &principal, &target).await?;
    let (doc, _) = &found[0];
    let pages = state.db.pages(doc.id).await?;
    if pages.is_empty() || !matches!(doc.status, DocumentStatus::Indexed | DocumentStatus::Qa) {
        return Err(AppError::new(
            ErrorCode::NotFound,
            "the instance has no rendered preview (not processed yet, or its image could not \
             be decoded)",
        ));
    }
    audit_reads(&state, &principal, &found[..1], "rendered").await?;
    let stored = state.vault.get(ObjectRef::PageImage(doc.id, 1)).await?;
    let (content_type, bytes) = if png {
        ("image/png", stored)
    } else {
        let jpeg = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
            let image = image::load_from_memory_with_format(&stored, image::ImageFormat::Png)?;
            let mut out = std::io::Cursor::new(Vec::new());
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&image.to_luma8())?;
            Ok(out.into_inner())
        })
        .await?
        .map_err(AppError::internal)?;
        ("image/jpeg", jpeg)
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_offered_as_stored_unless_another_syntax_is_asked_for() {
        let stored = ["1.2.840.10008.1.2.4.91"];
        assert!(accepts_as_stored(None, &stored));
        assert!(accepts_as_stored(
            Some("multipart/related; type=\"application/dicom\""),
            &stored
        ));
        assert!(accepts_as_stored(
            Some("multipart/related; type=\"application/dicom\"; transfer-syntax=*"),
            &stored
        ));
        assert!(!accepts_as_stored(
            Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1"),
            &stored
        ));
        assert!(accepts_as_stored(
            Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1, */*"),
            &stored
        ));
        assert!(!accepts_as_stored(Some("application/json"), &stored));
    }
}
