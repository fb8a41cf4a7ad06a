//! Bad input gets a clear 4xx JSON error, nothing is left behind, and the server keeps
//! serving.

use serde_json::{json, Value};

use crate::helpers::*;

async fn nothing_stored(app: &TestApp) {
    let documents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents")
        .fetch_one(&app.sql)
        .await
        .unwrap();
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&app.sql)
        .await
        .unwrap();
    let keys: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM keyring WHERE key_id NOT IN (SELECT key_id FROM service_keys)",
    )
    .fetch_one(&app.sql)
    .await
    .unwrap();
    assert_eq!((documents, jobs, keys), (0, 0, 0));
    let blobs = files_under(&app.data_dir.join("blobs"));
    assert!(blobs.is_empty(), "left behind: {blobs:?}");
}

/// A PNG signature and IHDR claiming 60000 x 60000 pixels, with a correct CRC.
fn huge_png_header() -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&60000u32.to_be_bytes());
    chunk.extend_from_slice(&60000u32.to_be_bytes());
    chunk.extend_from_slice(&[8, 0, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_clear_errors_and_leave_nothing_behind() {
    let app = spawn_app_with(|c| c.limits.max_upload_bytes = 3 * 1024 * 1024).await;
    let good_meta = metadata("00123", "Jane Q Doe", "note");
    let valid_tiff = tiff_of(&[scanned_page(&["a page"], 0.0, 1)]);
    let cases: Vec<(&str, Vec<u8>, Value, u16, &str)> = vec![
        ("empty file", vec![], good_meta.clone(), 400, "empty"),
        (
            "truncated TIFF",
            valid_tiff[..120].to_vec(),
            good_meta.clone(),
            422,
            "",
        ),
        (
            "text named .tif",
            b"Patient notes in plain text, not an image\n".repeat(10),
            good_meta.clone(),
            415,
            "JPEG",
        ),
        (
            "60000x60000 PNG header",
            huge_png_header(),
            good_meta.clone(),
            422,
            "limit",
        ),
        (
            "over the size limit",
            vec![0x49; 4 * 1024 * 1024],
            good_meta.clone(),
            413,
            "limit",
        ),
        (
            "malformed metadata",
            valid_tiff.clone(),
            json!("not an object"),
            400,
            "metadata",
        ),
        (
            "metadata without mrn",
            valid_tiff.clone(),
            json!({"patient": {"name": "X"}, "document_type": "n"}),
            400,
            "mrn",
        ),
        (
            "bad mrn",
            valid_tiff.clone(),
            metadata("12 34; drop", "X", "n"),
            400,
            "mrn",
        ),
        (
            "unknown field",
            valid_tiff.clone(),
            json!({"patient": {"mrn": "1", "name": "X"}, "document_type": "n", "colour": "red"}),
            400,
            "colour",
        ),
    ];
    for (what, file, meta, status, says) in cases {
        let response = app.upload_as(&app.records, file, &meta).await;
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{what}: JSON error body"));
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            body["code"].is_string() && !message.is_empty(),
            "{what}: {body}"
        );
        assert!(message.contains(says), "{what}: {message}");
        assert!(
            !message.contains("Jane") && !message.contains("00123"),
            "{what}: PHI in {message}"
        );
        nothing_stored(&app).await;
        assert_eq!(
            app.http
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }

    // Missing parts.
    let only_meta = reqwest::multipart::Form::new().part(
        "metadata",
        reqwest::multipart::Part::text(good_meta.to_string()),
    );
    let response = app
        .http
        .post(app.url("/api/v1/documents"))
        .bearer_auth(&app.records)
        .multipart(only_meta)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let only_file = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(valid_tiff.clone()));
    let response = app
        .http
        .post(app.url("/api/v1/documents"))
        .bearer_auth(&app.records)
        .multipart(only_file)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("metadata"),
        "{body}"
    );
    let not_multipart = app
        .post_json(&app.records, "/api/v1/documents", &good_meta)
        .await;
    assert_eq!(not_multipart.status(), 400);
    nothing_stored(&app).await;

    // Bad search bodies.
    for body in [
        json!({}),
        json!({"query": ""}),
        json!({"query": "x", "limit": 0}),
        json!({"query": "x", "nope": 1}),
        json!({"query": "(unbalanced"}),
    ] {
        let response = app.post_json(&app.clinician, "/api/v1/search", &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }

    // A JSON body is judged after the caller is authorised: without the right, 403 whatever
    // was sent; with it, a 400 that names the problem and never echoes the content.
    let raw = |token: &str, body: &'static str, content_type: &'static str| {
        app.http
            .post(app.url("/api/v1/holds"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let garbage = "{\"matter\": \"Zebulon v. Mercy\",";
    let (status, _) = json_of(
        raw(&app.clinician, garbage, "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status, 403,
        "a clinician may not place holds, whatever the body"
    );
    for (body, content_type, says) in [
        (garbage, "application/json", "not valid JSON"),
        ("{}", "text/plain", "Content-Type: application/json"),
        (
            r#"{"matter": "Zebulon v. Mercy", "custodian": "c", "reason": "r", "mrn": "1", "colour": "red"}"#,
            "application/json",
            "unknown field `colour`",
        ),
        (
            r#"{"matter": "Zebulon v. Mercy", "custodian": 7, "reason": "r"}"#,
            "application/json",
            "wrong type",
        ),
    ] {
        let (status, error) = json_of(raw(&app.legal, body, content_type).await.unwrap()).await;
        assert_eq!(status, 400, "{body}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {error}");
        assert!(
            !error.to_string().contains("Zebulon"),
            "the body is echoed: {error}"
        );
    }

    // And the server still does its job.
    let id = app.upload(valid_tiff, &good_meta).await;
    app.wait_indexed(&id).await;
}
