//! The key-encryption key in a KMS (`keys.provider = "openbao"`), against a real OpenBao
//! dev server the test starts: the archive stores, finds and returns a scan with every data
//! key wrapped by the KMS's Transit key (no key file anywhere); rotation is a new Transit
//! key version plus the re-wrap, retirement makes the KMS refuse the old version, and
//! everything still decrypts; `verify` on the archive is clean; the token never reaches the
//! log.

use chartvault::config::KeyProviderKind;
use chartvault_storage::testsuite::openbao::{bao, OpenBao};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_with_its_kek_in_openbao_rotates_and_retires_through_the_kms() {
    let Some(bao) = bao() else {
        return;
    };
    let kms = OpenBao::start(&bao);
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("openbao-token");
    std::fs::write(&token_file, format!("{}\n", kms.token)).unwrap();
    let app = spawn_app_with(|c| {
        c.keys.provider = KeyProviderKind::Openbao;
        c.keys.openbao.address = kms.address.clone();
        c.keys.openbao.key = "hospital-a".into();
        c.keys.openbao.token_file = Some(token_file.clone());
    })
    .await;
    assert!(
        !app.state.config.keys.kek_file.exists(),
        "no key file is made when the KEK is in the KMS"
    );
    let (status, key) = kms
        .request("GET", "/v1/transit/keys/hospital-a", "")
        .unwrap();
    assert_eq!(status, 200, "the server created its Transit key: {key}");

    let scan = png_of(&scanned_page(
        &["Discharge summary", "Started on quokkamycin twice daily"],
        0.0,
        61,
    ));
    let id = app
        .upload(scan.clone(), &metadata("KMS-1", "Kim Transit", "discharge"))
        .await;
    app.wait_indexed(&id).await;
    let readable = |app: &TestApp, id: String, scan: Vec<u8>| {
        let (http, base, token) = (app.http.clone(), app.base.clone(), app.clinician.clone());
        async move {
            let hits: Value = http
                .post(format!("{base}/api/v1/search"))
                .bearer_auth(&token)
                .json(&json!({ "query": "quokkamycin" }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(hits["hits"][0]["document_id"], id.as_str(), "{hits}");
            let original = http
                .get(format!("{base}/api/v1/documents/{id}/original"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(original.status(), 200);
            assert!(original.bytes().await.unwrap() == scan, "byte for byte");
        }
    };
    readable(&app, id.clone(), scan.clone()).await;

    // Every keyring row is the KMS's ciphertext under version 1.
    let status: Value = app
        .get(&app.admin, "/api/v1/admin/keys")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["current_version"], 1, "{status}");
    assert_eq!(status["loaded_versions"], json!([1]), "{status}");
    let rows = status["rows_by_version"][0][1].as_i64().unwrap();
    assert!(rows >= 4, "object, index and column keys: {status}");
    let db = sql_pool(&app.state.config.db_path(), false).await;
    let wrapped: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT kek_version, wrapped FROM keyring ORDER BY key_id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(wrapped.len() as i64, rows);
    assert!(
        wrapped
            .iter()
            .all(|(v, bytes)| *v == 1 && bytes.starts_with(b"vault:v1:")),
        "every data key is wrapped by the KMS"
    );

    // Rotation: a new Transit version, every row re-wrapped under it.
    let rotated: Value = app
        .post_json(&app.admin, "/api/v1/admin/keys/rotate", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["current_version"], 2, "{rotated}");
    assert_eq!(rotated["rewrapped"].as_i64(), Some(rows), "{rotated}");
    readable(&app, id.clone(), scan.clone()).await;

    // Retirement: the KMS's minimum decryption version moves past 1.
    let retired = app
        .post_json(
            &app.admin,
            "/api/v1/admin/keys/retire",
            &json!({ "version": 1 }),
        )
        .await;
    assert_eq!(retired.status(), 200, "{}", retired.text().await.unwrap());
    let (_, key) = kms
        .request("GET", "/v1/transit/keys/hospital-a", "")
        .unwrap();
    let key: Value = serde_json::from_str(&key).unwrap();
    assert_eq!(key["data"]["min_decryption_version"], 2, "{key}");
    let status: Value = app
        .get(&app.admin, "/api/v1/admin/keys")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["loaded_versions"], json!([2]), "{status}");
    // A key wrapped under version 1 before the rotation no longer opens anywhere.
    let (old_version, old_bytes) = wrapped[0].clone();
    let provider = chartvault::ops::keys::load_existing_keys(&app.state.config).unwrap();
    let key_ids: Vec<(String,)> = sqlx::query_as("SELECT key_id FROM keyring ORDER BY key_id")
        .fetch_all(&db)
        .await
        .unwrap();
    let first = chartvault_storage::KeyId::from_hex(&key_ids[0].0).unwrap();
    let refused = tokio::task::spawn_blocking(move || {
        provider
            .unwrap_key(
                &first,
                &chartvault_storage::WrappedKey {
                    kek_version: old_version as u32,
                    bytes: old_bytes,
                },
            )
            .map(|_| ())
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "version 1 is retired in the KMS");
    readable(&app, id.clone(), scan.clone()).await;

    // The operator tools reach the KMS the same way.
    let report = chartvault::ops::verify::verify(&app.state.config)
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());

    // The token appears in no log line, at any level.
    let log = std::fs::read(trace_log_path()).unwrap();
    assert!(
        !contains_bytes_ignore_case(&log, kms.token.as_bytes()),
        "the KMS token is in the log"
    );
}
