//! KEK rotation under load: while clinicians search and read, an admin rotates the KEK and
//! retires the old version. No request fails, every keyring row (object keys, the index
//! key, the PHI column and blind-index keys) ends under the new version, the old KEK is gone
//! from the key file, and everything still decrypts.

use chartvault::store::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chartvault_storage::{KeyFile, KeyId, KeyProvider, WrappedKey};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_and_retiring_the_kek_under_load_fails_no_request() {
    let app = spawn_app().await;
    let words = ["heliotrope", "sassafras", "bergamot"];
    let mut docs = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let original = png_of(&scanned_page(
            &["Nursing note", &format!("Marker {word}")],
            0.0,
            40 + i as u64,
        ));
        let id = app
            .upload(original.clone(), &metadata("KR-1", "Ada Rotation", "note"))
            .await;
        docs.push((id, original, *word));
    }
    for (id, _, _) in &docs {
        app.wait_indexed(id).await;
    }
    let status: Value = app
        .get(&app.admin, "/api/v1/admin/keys")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["current_version"], 1);
    let rows: i64 = status["rows_by_version"][0][1].as_i64().unwrap();
    assert!(
        rows >= 3 * 4 + 3,
        "object keys + index, metadata, blind-index keys: {rows}"
    );

    // Load: searches and reads of every artifact, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for worker in 0..3 {
        let (http, base, token) = (app.http.clone(), app.base.clone(), app.clinician.clone());
        let docs = docs.clone();
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let mut round = worker;
            while !stop.load(Ordering::Relaxed) {
                let (id, original, word) = &docs[round % docs.len()];
                round += 1;
                let search = http
                    .post(format!("{base}/api/v1/search"))
                    .bearer_auth(&token)
                    .json(&json!({ "query": word }))
                    .send()
                    .await
                    .unwrap();
                let search_ok = search.status() == 200
                    && search.json::<Value>().await.unwrap()["hits"][0]["document_id"]
                        == id.as_str();
                let download = http
                    .get(format!("{base}/api/v1/documents/{id}/original"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let download_ok = download.status() == 200
                    && download.bytes().await.map(|b| b.to_vec()).ok().as_ref() == Some(original);
                for good in [search_ok, download_ok] {
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Only an admin manages keys.
    let refused = app
        .post_json(&app.clinician, "/api/v1/admin/keys/rotate", &json!({}))
        .await;
    assert_eq!(refused.status(), 403);
    // The current version cannot be retired; nor can one still in use.
    let refused = app
        .post_json(
            &app.admin,
            "/api/v1/admin/keys/retire",
            &json!({ "version": 1 }),
        )
        .await;
    assert_eq!(refused.status(), 409);

    let rotation = app
        .post_json(&app.admin, "/api/v1/admin/keys/rotate", &json!({}))
        .await;
    assert_eq!(rotation.status(), 200);
    let rotation: Value = rotation.json().await.unwrap();
    assert_eq!(rotation["previous_version"], 1);
    assert_eq!(rotation["current_version"], 2);
    assert!(rotation["rewrapped"].as_i64().unwrap() >= rows);

    // A document ingested now is wrapped under the new version.
    let late = png_of(&scanned_page(&["Late note", "Marker cardamom"], 0.0, 49));
    let late_id = app
        .upload(late.clone(), &metadata("KR-1", "Ada Rotation", "note"))
        .await;
    app.wait_indexed(&late_id).await;

    let retired = app
        .post_json(
            &app.admin,
            "/api/v1/admin/keys/retire",
            &json!({ "version": 1 }),
        )
        .await;
    assert_eq!(retired.status(), 200);
    let status: Value = retired.json().await.unwrap();
    assert_eq!(status["current_version"], 2);
    assert_eq!(status["loaded_versions"], json!([2]));
    assert_eq!(status["rows_by_version"].as_array().unwrap().len(), 1);
    assert_eq!(status["rows_by_version"][0][0], 2);

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(ok.load(Ordering::Relaxed) >= 12, "the load ran");

    // The key file holds only version 2, and it alone opens every keyring row.
    let key_file = KeyFile::load(app.data_dir.with_extension("key")).unwrap();
    assert_eq!(key_file.versions(), vec![2]);
    let keyring: Vec<(String, i64, Vec<u8>)> =
        sqlx::query_as("SELECT key_id, kek_version, wrapped FROM keyring")
            .fetch_all(&app.sql)
            .await
            .unwrap();
    assert!(keyring.len() as i64 > rows);
    for (id, version, bytes) in keyring {
        assert_eq!(version, 2);
        let wrapped = WrappedKey {
            kek_version: 2,
            bytes,
        };
        key_file
            .unwrap_key(&KeyId::from_hex(&id).unwrap(), &wrapped)
            .expect("every row unwraps under the new KEK alone");
    }

    // Everything still decrypts through the running service: old and new documents,
    // search (index key), names and MRNs (column keys), MRN lookup (blind index).
    for (id, original, word) in docs.iter().chain([&(late_id, late, "cardamom")]) {
        let hits = app
            .search(&app.clinician, json!({ "query": word, "mrn": "KR-1" }))
            .await;
        assert_eq!(hits["hits"][0]["document_id"], id.as_str());
        assert_eq!(hits["hits"][0]["patient"]["name"], "Ada Rotation");
        let download = app
            .get(&app.clinician, &format!("/api/v1/documents/{id}/original"))
            .await;
        assert_eq!(download.bytes().await.unwrap().to_vec(), *original);
    }
    let audit = app.state.db.audit_rows(0).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.action == "manage-keys" && r.outcome == "ok"));
}

fn cli(data_dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chartvault"));
    command
        .env("CHARTVAULT__KEYS__KEK_FILE", data_dir.with_extension("key"))
        .env("RUST_LOG", "warn")
        .env_remove("CHARTVAULT_TOKEN");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_command_works_through_the_api_and_offline_only_on_a_stopped_server() {
    let app = spawn_app().await;
    // Offline is refused while the server holds the data directory.
    let offline = cli(&app.data_dir)
        .args(["keys", "rotate", "--offline", "--data-dir"])
        .arg(&app.data_dir)
        .output()
        .unwrap();
    assert!(!offline.status.success());
    assert!(
        String::from_utf8_lossy(&offline.stderr).contains("a server is running"),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    // Through the API, with an admin token from the environment.
    let rotated = cli(&app.data_dir)
        .args(["keys", "rotate"])
        .env("CHARTVAULT_URL", &app.base)
        .env("CHARTVAULT_TOKEN", &app.admin)
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let report: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(report["current_version"], 2);
    let refused = cli(&app.data_dir)
        .args(["keys", "rotate"])
        .env("CHARTVAULT_URL", &app.base)
        .env("CHARTVAULT_TOKEN", &app.clinician)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // Offline on a stopped archive: rotate, then retire the old version.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let created = cli(&data_dir)
        .args(["user", "add", "root", "--role", "admin", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    for args in [&["keys", "rotate"][..], &["keys", "retire", "1"][..]] {
        let output = cli(&data_dir)
            .args(args)
            .args(["--offline", "--data-dir"])
            .arg(&data_dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let status = cli(&data_dir)
        .args(["keys", "status", "--offline", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["current_version"], 2);
    assert_eq!(status["loaded_versions"], json!([2]));

    // Run where there is no archive, offline key management creates nothing.
    let nowhere = dir.path().join("not-an-archive");
    let output = cli(&nowhere)
        .args(["keys", "rotate", "--offline", "--data-dir"])
        .arg(&nowhere)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no archive at"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!nowhere.exists(), "no data directory was created");
    assert!(
        !nowhere.with_extension("key").exists(),
        "no key file was created"
    );
}

/// An upload wraps its original's key when it starts and records it when it is accepted: a
/// KEK version retired in between must not leave the acknowledged original undecryptable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kek_is_not_retired_under_an_upload_in_progress() {
    let app = spawn_app().await;
    let file = png_of(&scanned_page(
        &["Referral letter", "Marker word fieldfare"],
        0.0,
        91,
    ));
    let boundary = "chartvaultTestBoundary";
    let metadata = metadata("RK-1", "Rhea Keyes", "letter");
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{metadata}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"scan.png\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let (first, rest) = file.split_at(file.len() / 2);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tx.send(Ok([head.as_bytes(), first].concat()))
        .await
        .unwrap();
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let upload = tokio::spawn({
        let request = app
            .http
            .post(app.url("/api/v1/documents"))
            .bearer_auth(&app.records)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(reqwest::Body::wrap_stream(body));
        async move { request.send().await.unwrap() }
    });
    // The upload has begun (its key is wrapped under version 1): rotate, then try to retire 1.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let rotated = app
        .post_json(&app.admin, "/api/v1/admin/keys/rotate", &json!({}))
        .await;
    assert_eq!(rotated.status(), 200);
    let refused = app
        .post_json(
            &app.admin,
            "/api/v1/admin/keys/retire",
            &json!({ "version": 1 }),
        )
        .await;
    assert_eq!(refused.status(), 409);
    let message: Value = refused.json().await.unwrap();
    assert!(
        message["message"].as_str().unwrap().contains("in progress"),
        "{message}"
    );

    // The upload completes and is accepted; its key row is under the current version.
    tx.send(Ok(
        [rest, format!("\r\n--{boundary}--\r\n").as_bytes()].concat()
    ))
    .await
    .unwrap();
    drop(tx);
    let response = upload.await.unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_string();
    let retired = app
        .post_json(
            &app.admin,
            "/api/v1/admin/keys/retire",
            &json!({ "version": 1 }),
        )
        .await;
    assert_eq!(retired.status(), 200, "{}", retired.text().await.unwrap());
    // The acknowledged original still decrypts, byte for byte.
    let original = app
        .get(&app.records, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert_eq!(original.status(), 200);
    assert_eq!(original.bytes().await.unwrap().as_ref(), file.as_slice());
    app.wait_indexed(&id).await;
}
