//! The audit log is a sealed hash chain with signed checkpoints: real requests append to
//! it; `audit verify` passes on an untouched log and names the first bad entry after each
//! kind of tampering an attacker with the database file could do (the append-only triggers
//! dropped first, as such an attacker would); concurrent requests make one unbroken chain;
//! nothing of an entry but its seq, time, action, outcome, break-glass flag and blind
//! indexes is in the clear; the audit query API finds entries by patient, user and
//! break-glass flag, for auditors only.

use chartvault::store::prelude::*;
use std::path::{Path, PathBuf};

use chartvault::audit::verify::{verify_audit, AuditFindingKind, AuditVerifyReport};
use chartvault::audit::{AuditCipher, AUDIT_BLIND_INDEX_KEY, AUDIT_KEY};
use chartvault::config::Config;
use chartvault::store::audit_log::AuditEntry;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::helpers::*;

/// seq, sealed, user_index, patient_index, prev_hash, hash as stored.
type RawAuditRow = (
    i64,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<u8>,
    Vec<u8>,
);

/// Uploads a scan, waits for it, reads and searches it, and makes a few denied and
/// not-found requests: a mix of audit entries. Returns the document id.
async fn traffic(app: &TestApp, mrn: &str, word: &str) -> String {
    let page = png_of(&scanned_page(
        &["Ward round note", &format!("Dressing with {word} applied")],
        0.0,
        21,
    ));
    let doc = app
        .upload(page, &metadata(mrn, "Tamsin Audit", "progress-note"))
        .await;
    app.wait_indexed(&doc).await;
    let text = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{doc}/pages/1/text"),
        )
        .await;
    assert_eq!(text.status(), 200);
    let hits = app.search(&app.clinician, json!({ "query": word })).await;
    assert_eq!(hits["total"], 1, "{hits}");
    let denied = app
        .get(&app.auditor, &format!("/api/v1/documents/{doc}"))
        .await;
    assert_eq!(denied.status(), 403);
    let unknown = app
        .post_json(
            &app.legal,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "NO-SUCH-1" }),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    doc
}

/// A copy of the app's database (one consistent snapshot) in a directory of its own, the
/// config to verify it with (the same KEK and audit public key), and a connection to it
/// as an attacker has it: the append-only triggers dropped, no foreign keys.
struct Tampered {
    _dir: tempfile::TempDir,
    config: Config,
    pool: SqlitePool,
}

impl Tampered {
    async fn of(app: &TestApp) -> Tampered {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        app.state
            .db
            .snapshot_into(&data_dir.join("chartvault.db"))
            .await
            .unwrap();
        let original = app.config();
        let checkpoints = dir.path().join("checkpoints");
        if original.audit_checkpoint_file().exists() {
            std::fs::copy(original.audit_checkpoint_file(), &checkpoints).unwrap();
        }
        let mut config = original.clone();
        config.data_dir = data_dir.clone();
        config.audit.signing_key_file = Some(original.audit_signing_key_file());
        config.audit.checkpoint_file = Some(checkpoints);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(data_dir.join("chartvault.db"))
                    .foreign_keys(false),
            )
            .await
            .unwrap();
        for trigger in ["audit_no_update", "audit_no_delete"] {
            sqlx::query(&format!("DROP TRIGGER {trigger}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        Tampered {
            _dir: dir,
            config,
            pool,
        }
    }

    async fn exec(&self, sql: &str) {
        sqlx::query(sql).execute(&self.pool).await.unwrap();
    }

    async fn verify(&self) -> AuditVerifyReport {
        verify_audit(&self.config).await.expect("verify runs")
    }
}

fn assert_first_bad(report: &AuditVerifyReport, seq: i64, kind: AuditFindingKind, case: &str) {
    assert!(
        !report.is_clean(),
        "{case}: not detected\n{}",
        report.summary()
    );
    assert_eq!(report.exit_code(), 1);
    assert_eq!(
        report.first_bad_seq,
        Some(seq),
        "{case}: wrong first bad entry\n{}",
        report.summary()
    );
    assert!(
        report.of_kind(kind).any(|f| f.seq == Some(seq)),
        "{case}: no {kind:?} finding at seq {seq}\n{}",
        report.summary()
    );
}

async fn head(app: &TestApp) -> i64 {
    app.state.db.audit_head().await.unwrap().unwrap().0
}

fn write_config(dir: &Path, config: &Config) -> PathBuf {
    let path = dir.join("chartvault.toml");
    let text = format!(
        "data_dir = {:?}\n[keys]\nkek_file = {:?}\n[audit]\nsigning_key_file = {:?}\ncheckpoint_file = {:?}\n",
        config.data_dir,
        config.keys.kek_file,
        config.audit_signing_key_file(),
        config.audit_checkpoint_file()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run_cli_verify(config_file: &Path) -> (i32, Value) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chartvault"))
        .args(["--config"])
        .arg(config_file)
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_untouched_and_names_the_first_bad_entry_after_tampering() {
    let app = spawn_app().await;
    traffic(&app, "AC-1001", "quellerite").await;
    let checkpoint = app
        .state
        .audit_checkpoints
        .checkpoint_now()
        .await
        .unwrap()
        .expect("there are entries to checkpoint");
    let checkpointed = head(&app).await;
    assert_eq!(checkpoint.seq, checkpointed);
    assert!(
        checkpointed >= 8,
        "the traffic left entries: {checkpointed}"
    );
    // More requests after the checkpoint: not yet protected against truncation.
    for _ in 0..3 {
        let response = app
            .post_json(
                &app.legal,
                "/api/v1/patients/lookup",
                &json!({ "mrn": "NO-SUCH-2" }),
            )
            .await;
        assert_eq!(response.status(), 404);
    }
    let last = head(&app).await;
    assert_eq!(last, checkpointed + 3);

    // Untouched, while the server runs: clean, with the checkpoint and the tail counted.
    let report = verify_audit(&app.config()).await.unwrap();
    assert!(report.is_clean(), "{}", report.summary());
    assert_eq!(report.entries as i64, last);
    assert_eq!(report.checkpoints, 1);
    assert_eq!(report.last_checkpoint_seq, Some(checkpointed));
    assert_eq!(report.unprotected_entries, 3);
    assert_eq!(report.first_bad_seq, None);
    // The copy the tampering cases start from verifies clean too.
    let untouched = Tampered::of(&app).await.verify().await;
    assert!(untouched.is_clean(), "{}", untouched.summary());

    // The command line: exit 0, the JSON report on stdout.
    let cli_dir = tempfile::tempdir().unwrap();
    let (code, json) = run_cli_verify(&write_config(cli_dir.path(), &app.config()));
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["unprotected_entries"], 3);

    let k = 4;
    // One byte of an entry's sealed content changed.
    let t = Tampered::of(&app).await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM audit WHERE seq = $1")
        .bind(k)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    let mut altered = sealed.clone();
    let at = altered.len() - 20;
    altered[at] ^= 0x01;
    sqlx::query("UPDATE audit SET sealed = $1 WHERE seq = $2")
        .bind(altered)
        .bind(k)
        .execute(&t.pool)
        .await
        .unwrap();
    let report = t.verify().await;
    assert_first_bad(
        &report,
        k,
        AuditFindingKind::EntryUndecryptable,
        "byte changed",
    );
    // ...and through the command line: exit 1, the first bad entry named.
    let (code, json) = run_cli_verify(&write_config(cli_dir.path(), &t.config));
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["first_bad_seq"], k);

    // An insider with the keys edits the content and re-seals it validly: the hash no
    // longer matches the content.
    let t = Tampered::of(&app).await;
    let (key_id, key) = app.state.vault.service_key(AUDIT_KEY).await.unwrap();
    let (_, blind) = app
        .state
        .vault
        .service_key(AUDIT_BLIND_INDEX_KEY)
        .await
        .unwrap();
    let cipher = AuditCipher::from_keys(key_id, key, blind);
    let denied_seq: i64 =
        sqlx::query_scalar("SELECT seq FROM audit WHERE outcome = 'denied-role' ORDER BY seq")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM audit WHERE seq = $1")
        .bind(denied_seq)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    let mut record = cipher.open(denied_seq, &sealed).unwrap();
    record.outcome = "ok".into();
    sqlx::query("UPDATE audit SET sealed = $1, outcome = 'ok' WHERE seq = $2")
        .bind(cipher.seal(&record))
        .bind(denied_seq)
        .execute(&t.pool)
        .await
        .unwrap();
    let report = t.verify().await;
    assert_first_bad(
        &report,
        denied_seq,
        AuditFindingKind::HashMismatch,
        "re-sealed edit",
    );

    // An entry deleted.
    let t = Tampered::of(&app).await;
    t.exec(&format!("DELETE FROM audit WHERE seq = {k}")).await;
    let report = t.verify().await;
    assert_first_bad(&report, k, AuditFindingKind::EntryMissing, "deleted");

    // An entry inserted before k (the rows from k on renumbered to make room).
    let t = Tampered::of(&app).await;
    t.exec(&format!("UPDATE audit SET seq = -seq WHERE seq >= {k}"))
        .await;
    t.exec("UPDATE audit SET seq = 1 - seq WHERE seq < 0").await;
    t.exec(&format!(
        "INSERT INTO audit SELECT {k}, at, action, outcome, break_glass, user_index,
            patient_index, sealed, prev_hash, hash FROM audit WHERE seq = {}",
        k - 1
    ))
    .await;
    let report = t.verify().await;
    assert_first_bad(&report, k, AuditFindingKind::EntryUndecryptable, "inserted");

    // Two entries swapped.
    let t = Tampered::of(&app).await;
    let (a, b) = (3, 6);
    t.exec(&format!("UPDATE audit SET seq = -1 WHERE seq = {a}"))
        .await;
    t.exec(&format!("UPDATE audit SET seq = {a} WHERE seq = {b}"))
        .await;
    t.exec(&format!("UPDATE audit SET seq = {b} WHERE seq = -1"))
        .await;
    let report = t.verify().await;
    assert_first_bad(&report, a, AuditFindingKind::EntryUndecryptable, "swapped");

    // The latest entries removed, down below the checkpoint.
    let t = Tampered::of(&app).await;
    let cut_from = checkpointed - 1;
    t.exec(&format!("DELETE FROM audit WHERE seq >= {cut_from}"))
        .await;
    let report = t.verify().await;
    assert_first_bad(&report, cut_from, AuditFindingKind::Truncated, "truncated");

    // The whole chain after seq 2 rewritten consistently by an insider (every hash
    // recomputed): only the signed checkpoint can tell.
    let t = Tampered::of(&app).await;
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, sealed FROM audit WHERE seq >= 1 ORDER BY seq")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    let mut prev = [0u8; 32];
    for (seq, sealed) in rows {
        let mut record = cipher.open(seq, &sealed).unwrap();
        if seq == 3 {
            record.client_addr = Some("10.9.9.9".into());
        }
        let hash = record.hash(&prev);
        sqlx::query("UPDATE audit SET sealed = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(cipher.seal(&record))
            .bind(&prev[..])
            .bind(&hash[..])
            .bind(seq)
            .execute(&t.pool)
            .await
            .unwrap();
        prev = hash;
    }
    let report = t.verify().await;
    assert_first_bad(
        &report,
        checkpointed,
        AuditFindingKind::CheckpointMismatch,
        "rewritten chain",
    );

    // A forged checkpoint line (claims the current head, signature not by the audit key).
    let t = Tampered::of(&app).await;
    let forged = json!({
        "v": 1, "seq": last, "hash": "00".repeat(32), "time": "2030-01-01T00:00:00.000Z",
        "key": checkpoint.key, "sig": checkpoint.sig,
    });
    let path = t.config.audit_checkpoint_file();
    let mut lines = std::fs::read_to_string(&path).unwrap();
    lines.push_str(&format!("{forged}\n"));
    std::fs::write(&path, lines).unwrap();
    let report = t.verify().await;
    assert!(!report.is_clean());
    let bad: Vec<_> = report
        .of_kind(AuditFindingKind::CheckpointBadSignature)
        .collect();
    assert_eq!(bad.len(), 1, "{}", report.summary());
    assert_eq!(bad[0].line, Some(2));
    assert_eq!(report.checkpoints, 1, "the forged line does not count");
    assert_eq!(
        report.first_bad_seq, None,
        "the entries themselves are fine"
    );

    // No data directory at all: could not run (exit 2).
    let mut missing = app.config();
    missing.data_dir = cli_dir.path().join("nowhere");
    let (code, _) = run_cli_verify(&write_config(cli_dir.path(), &missing));
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_make_one_unbroken_chain_and_checkpoints_follow() {
    let app = spawn_app_with(|config| {
        config.audit.checkpoint_every_entries = 25;
    })
    .await;
    let before = app.state.db.audit_head().await.unwrap().map_or(0, |h| h.0);
    let requests = (0..60).map(|i| {
        let app = &app;
        async move {
            let (token, body) = match i % 3 {
                0 => (&app.legal, json!({ "mrn": format!("CC-{i}") })),
                1 => (&app.clinician, json!({ "mrn": format!("CC-{i}") })),
                _ => (&app.auditor, json!({ "mrn": format!("CC-{i}") })),
            };
            app.post_json(token, "/api/v1/patients/lookup", &body)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 404 || *s == 403));
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "seqs are 1..n without gaps");
    assert!(rows.len() as i64 >= before + 60);
    let report = verify_audit(&app.config()).await.unwrap();
    assert!(report.is_clean(), "{}", report.summary());
    // Every 25 entries a checkpoint (written by the background task).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let report = verify_audit(&app.config()).await.unwrap();
        assert!(report.is_clean(), "{}", report.summary());
        if report.checkpoints >= 2 && report.unprotected_entries < 25 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoints every 25 entries: {}",
            report.summary()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entries_are_sealed_and_keep_only_blind_indexes_in_the_clear() {
    let app = spawn_app().await;
    let page = png_of(&scanned_page(&["Sealed audit check"], 0.0, 5));
    let doc = app
        .upload(page, &metadata("SA-2002", "Ignatius Sealwright", "letter"))
        .await;
    let response = app
        .get(&app.records, &format!("/api/v1/documents/{doc}"))
        .await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let read = rows
        .iter()
        .find(|r| r.request_id.as_deref() == Some(request_id.as_str()))
        .expect("the read is audited");
    let patient_id = read.patient_id.clone().unwrap();
    let user_id = read.user_id.clone().unwrap();
    assert_eq!(read.document_id.as_deref(), Some(doc.as_str()));

    let raw: Vec<RawAuditRow> = sqlx::query_as(
        "SELECT seq, sealed, user_index, patient_index, prev_hash, hash FROM audit ORDER BY seq",
    )
    .fetch_all(&app.sql)
    .await
    .unwrap();
    assert_eq!(raw.len(), rows.len());
    for (_, sealed, user_index, patient_index, prev_hash, hash) in &raw {
        assert!(
            chartvault_storage::FormatVersion::of_object(sealed)
                == Some(chartvault_storage::FormatVersion::CURRENT),
            "an envelope"
        );
        assert_eq!(prev_hash.len(), 32);
        assert_eq!(hash.len(), 32);
        for index in [user_index, patient_index].into_iter().flatten() {
            assert_eq!(index.len(), 32, "an HMAC-SHA256");
        }
        for secret in [&patient_id, &user_id, &doc, &request_id] {
            assert!(!contains_ignore_case(sealed, secret));
        }
    }
    // The request id and client address exist nowhere in the clear in the database files
    // (ids of patients, users and documents are keys of their own tables, so only the
    // audit-only values can be checked file-wide).
    for path in files_under(&app.data_dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("chartvault.db") {
            let Some(bytes) = read_live(&path) else {
                continue;
            };
            assert!(!contains_in_any_encoding(&bytes, &request_id), "{name}");
            assert!(!contains_in_any_encoding(&bytes, "127.0.0.1"), "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_query_finds_entries_by_patient_user_and_break_glass_for_auditors_only() {
    let app = spawn_app().await;
    let doc_a = traffic(&app, "QA-3003", "brindlewort").await;
    let other = png_of(&scanned_page(&["Unrelated"], 0.0, 6));
    let doc_b = app
        .upload(other, &metadata("QB-4004", "Other Person", "letter"))
        .await;
    let lookup = app
        .post_json(
            &app.clinician,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "QB-4004" }),
        )
        .await;
    assert_eq!(lookup.status(), 200);
    // A break-glass access as the policy code will record it.
    let (clinician_id, _, _) = app.state.db.user_by_name("doc").await.unwrap().unwrap();
    let chart: Value = app
        .post_json(
            &app.records,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "QA-3003" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let patient_a: chartvault::domain::PatientId =
        chart["patient"]["id"].as_str().unwrap().parse().unwrap();
    let glass_seq = app
        .state
        .db
        .append_audit(&AuditEntry {
            user_id: Some(clinician_id),
            role: Some(chartvault::domain::Role::Clinician),
            action: "read",
            patient_id: Some(patient_a),
            outcome: chartvault::domain::Outcome::Ok,
            purpose_of_use: Some("emergency-treatment".into()),
            break_glass: true,
            ..AuditEntry::default()
        })
        .await
        .unwrap();

    let query = |body: Value| {
        let app = &app;
        async move {
            let response = app
                .post_json(&app.auditor, "/api/v1/audit/query", &body)
                .await;
            assert_eq!(response.status(), 200, "{body}");
            response.json::<Value>().await.unwrap()
        }
    };

    // By patient: the entries about patient A (upload, reads, lookup), and the search that
    // returned A's page; none about B.
    let by_patient = query(json!({ "patient_mrn": "qa-3003", "limit": 1000 })).await;
    let entries = by_patient["entries"].as_array().unwrap();
    assert!(entries.len() >= 4, "{by_patient}");
    for entry in entries {
        let about_a = entry["patient_id"] == json!(patient_a.to_string())
            || entry["detail"]["patients"]
                .as_array()
                .is_some_and(|p| p.contains(&json!(patient_a.to_string())));
        assert!(about_a, "{entry}");
        assert_ne!(entry["document_id"], json!(doc_b));
    }
    assert!(entries.iter().any(|e| e["action"] == "ingest"
        && e["document_id"] == json!(doc_a)
        && e["outcome"] == "accepted"));
    assert!(
        entries.iter().any(|e| e["action"] == "search"),
        "the search that returned the patient is found through audit_patients"
    );
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ascending");

    // By user (name or id): only that user's entries.
    let by_user = query(json!({ "user": "doc", "limit": 1000 })).await;
    let entries = by_user["entries"].as_array().unwrap();
    assert!(entries.len() >= 3, "{by_user}");
    assert!(entries
        .iter()
        .all(|e| e["user_id"] == json!(clinician_id.to_string())));
    let by_id = query(json!({ "user": clinician_id.to_string(), "limit": 1000 })).await;
    assert_eq!(by_id["entries"], by_user["entries"]);

    // Break-glass only: exactly the flagged entry, with its purpose of use.
    let glass = query(json!({ "break_glass_only": true })).await;
    let entries = glass["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{glass}");
    assert_eq!(entries[0]["seq"], glass_seq);
    assert_eq!(entries[0]["break_glass"], true);
    assert_eq!(entries[0]["purpose_of_use"], "emergency-treatment");

    // Action and time window; cursor paging.
    let denied = query(json!({ "action": "read", "from": "2000-01-01", "to": "2999-01-01" })).await;
    assert!(denied["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["action"] == "read"));
    let future = query(json!({ "from": "2999-01-01" })).await;
    assert_eq!(future["entries"], json!([]));
    let page1 = query(json!({ "limit": 2 })).await;
    assert_eq!(page1["entries"].as_array().unwrap().len(), 2);
    let cursor = page1["next_after_seq"].as_i64().unwrap();
    let page2 = query(json!({ "limit": 2, "after_seq": cursor })).await;
    assert_eq!(page2["entries"][0]["seq"], cursor + 1);

    // Unknown patient or user: nothing (never everything).
    let nobody = query(json!({ "patient_mrn": "NO-SUCH-9" })).await;
    assert_eq!(nobody["entries"], json!([]));
    let nobody = query(json!({ "user": "no-such-user" })).await;
    assert_eq!(nobody["entries"], json!([]));

    // The queries themselves are audited, with the auditor and the patient's id.
    let queried = query(json!({ "action": "audit-query", "limit": 1000 })).await;
    let entries = queried["entries"].as_array().unwrap();
    assert!(entries.len() >= 8, "{queried}");
    assert!(entries
        .iter()
        .any(|e| e["patient_id"] == json!(patient_a.to_string()) && e["role"] == "auditor"));

    // Everyone else: 403, and bad input 400.
    for token in [&app.records, &app.clinician, &app.legal, &app.admin] {
        let response = app
            .post_json(token, "/api/v1/audit/query", &json!({}))
            .await;
        assert_eq!(response.status(), 403);
    }
    let bad = app
        .post_json(&app.auditor, "/api/v1/audit/query", &json!({ "limit": 0 }))
        .await;
    assert_eq!(bad.status(), 400);
    let bad = app
        .post_json(
            &app.auditor,
            "/api/v1/audit/query",
            &json!({ "from": "yesterday" }),
        )
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_of_an_archive_older_than_the_chain_are_sealed_and_chained_at_first_start() {
    // An archive as the migrations before 0005 left it, with plaintext audit rows.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let old_migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&old_migrations).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0005" {
            std::fs::copy(&path, old_migrations.join(&name)).unwrap();
        }
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(data_dir.join("chartvault.db"))
                .create_if_missing(true)
                .foreign_keys(false),
        )
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old_migrations.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let (user, patient) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for (i, action) in ["read", "search"].iter().enumerate() {
        sqlx::query(
            "INSERT INTO audit (at, user_id, role, action, patient_id, outcome, client_addr,
                request_id, detail)
             VALUES ($1, $2, 'clinician', $3, $4, 'ok', '10.71.82.93', $5, $6)",
        )
        .bind(format!("2020-01-0{}T00:00:00.000Z", i + 1))
        .bind(user.to_string())
        .bind(action)
        .bind(patient.to_string())
        .bind(format!("legacyrequest{i}"))
        .bind((i == 1).then(|| json!({ "patients": [patient.to_string()] }).to_string()))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let mut config = Config::for_data_dir(&data_dir);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.decoder.program = Some(env!("CARGO_BIN_EXE_chartvault").into());
    let app = chartvault::startup::Application::build(config.clone())
        .await
        .expect("an old archive starts");
    let db = app.state().db.clone();
    let rows = db.audit_rows(0).await.unwrap();
    // The two old entries, the first start's integrity upgrade and its creation of the admin.
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[2].action, "row-integrity-upgrade");
    assert_eq!(rows[3].action, "user-add");
    assert_eq!(rows[0].seq, 1);
    assert_eq!(rows[0].at, "2020-01-01T00:00:00.000Z", "times are kept");
    assert_eq!(rows[0].request_id.as_deref(), Some("legacyrequest0"));
    assert_eq!(rows[0].patient_id, Some(patient.to_string()));
    assert_eq!(rows[1].action, "search");
    assert!(!rows[1].break_glass);
    let sql = crate::helpers::sql_pool(&config.db_path(), false).await;
    let legacy: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_legacy'",
    )
    .fetch_optional(&sql)
    .await
    .unwrap();
    sql.close().await;
    assert_eq!(legacy, None, "the plaintext table is gone");
    let report = verify_audit(&config).await.unwrap();
    assert!(report.is_clean(), "{}", report.summary());
    assert_eq!(report.entries, 4);
    for path in files_under(&data_dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("chartvault.db") {
            let Some(bytes) = read_live(&path) else {
                continue;
            };
            for needle in ["legacyrequest", "10.71.82.93", &user.to_string()] {
                assert!(
                    !contains_in_any_encoding(&bytes, needle),
                    "{needle} in {name}"
                );
            }
        }
    }
}
