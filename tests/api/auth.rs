//! Tokens and roles: missing, unknown, expired, revoked tokens and disabled users get 401;
//! a role without the action gets 403; an unknown document gets 404.

use chartvault::store::prelude::*;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

async fn status_of_search(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app
        .post_json(token, "/api/v1/search", &json!({ "query": "anything" }))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revoked_and_disabled_tokens_get_401() {
    let app = spawn_app().await;
    assert_eq!(status_of_search(&app, &app.clinician).await.0, 200);

    // Missing and unknown tokens.
    let response = app
        .http
        .post(app.url("/api/v1/search"))
        .json(&json!({"query": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    assert!(body["request_id"].as_str().is_some_and(|r| r.len() > 8));
    assert_eq!(status_of_search(&app, "cv_not-a-real-token").await.0, 401);

    // Expired: a token whose expiry has passed.
    let (user, _, _) = app.state.db.user_by_name("doc").await.unwrap().unwrap();
    let (expired, hash) = chartvault::access::policy::generate_token();
    app.state
        .db
        .insert_token("expired1", user, &hash, Utc::now() - Duration::minutes(1))
        .await
        .unwrap();
    let (status, body) = status_of_search(&app, &expired).await;
    assert_eq!(status, 401, "{body}");

    // Revoked: the clinician's token stops working, other users' do not.
    let config = chartvault::config::Config {
        data_dir: app.data_dir.clone(),
        ..chartvault::config::Config::for_data_dir(&app.data_dir)
    };
    chartvault::cli::token_revoke(&config, None, Some("doc"))
        .await
        .unwrap();
    assert_eq!(status_of_search(&app, &app.clinician).await.0, 401);
    assert_eq!(status_of_search(&app, &app.legal).await.0, 200);
    // A new token for the same user works again...
    let fresh = chartvault::cli::token_create(&config, "doc").await.unwrap();
    assert_eq!(status_of_search(&app, &fresh).await.0, 200);
    // ...until the user is disabled.
    chartvault::cli::user_disable(&config, "doc").await.unwrap();
    assert_eq!(status_of_search(&app, &fresh).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_the_action_get_403_and_unknown_ids_get_404() {
    let app = spawn_app().await;
    for token in [&app.admin, &app.auditor] {
        let (status, body) = status_of_search(&app, token).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["code"], "forbidden");
    }
    let page = png_of(&scanned_page(&["Consent form signed"], 0.0, 9));
    for token in [&app.clinician, &app.legal, &app.admin, &app.auditor] {
        let response = app
            .upload_as(token, page.clone(), &metadata("1", "A B", "consent"))
            .await;
        assert_eq!(response.status(), 403);
    }
    let id = app.upload(page, &metadata("1", "A B", "consent")).await;
    for token in [&app.admin, &app.auditor] {
        assert_eq!(
            app.get(token, &format!("/api/v1/documents/{id}"))
                .await
                .status(),
            403
        );
        assert_eq!(
            app.get(token, &format!("/api/v1/documents/{id}/original"))
                .await
                .status(),
            403
        );
    }
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/v1/documents/{unknown}"),
        format!("/api/v1/documents/{unknown}/original"),
        format!("/api/v1/documents/{unknown}/pages/1/image"),
        "/api/v1/documents/not-a-uuid".to_string(),
        format!("/api/v1/documents/{id}/pages/7/text"),
    ] {
        let response = app.get(&app.clinician, &path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
    }
    let lookup = app
        .post_json(
            &app.clinician,
            "/api/v1/patients/lookup",
            &json!({"mrn": "424242"}),
        )
        .await;
    assert_eq!(lookup.status(), 404);
    // Denials are audited too.
    let audit = app.state.db.audit_rows(0).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.outcome == "denied-role" && r.role.as_deref() == Some("auditor")));
}

/// Rows that grant access carry a MAC under a key only the service holds: a token, a role,
/// a care relationship or a grant written into the database file by someone else grants
/// nothing. User and token changes made at the console are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rows_written_outside_the_service_grant_nothing_and_console_changes_are_audited() {
    let app = spawn_app().await;
    let pool = &app.sql;
    let (doctor, _, _) = app.state.db.user_by_name("doc").await.unwrap().unwrap();

    // A token row inserted straight into the file: unknown.
    let (forged, hash) = chartvault::access::policy::generate_token();
    sqlx::query(
        "INSERT INTO tokens (id, user_id, token_hash, created_at, expires_at)
         VALUES ('forged1', $1, $2, '2026-01-01T00:00:00.000Z', '2099-01-01T00:00:00.000Z')",
    )
    .bind(doctor.to_string())
    .bind(&hash)
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(status_of_search(&app, &forged).await.0, 401);
    // Nor can the one-time pass that MACs rows older than MACs be run again to launder it:
    // whether it ran is read from the audit log, whose entries cannot be removed unnoticed.
    assert_eq!(app.state.db.mac_legacy_rows().await.unwrap(), 0);
    assert_eq!(status_of_search(&app, &forged).await.0, 401);

    // A genuine token whose owner's role was raised in the file: refused outright.
    assert_eq!(status_of_search(&app, &app.auditor).await.0, 403);
    sqlx::query("UPDATE users SET role = 'records' WHERE name = 'aud'")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(status_of_search(&app, &app.auditor).await.0, 401);

    // A grant and a care relationship written into the file: ignored.
    let doc = app
        .upload(
            text_pdf_of(&[&["HIV clinic letter", "Marker word sandpiper"]]),
            &json!({ "patient": { "mrn": "MAC-1", "name": "Mac Row" },
                     "document_type": "letter", "category": "hiv" }),
        )
        .await;
    app.wait_processed_in_db(&doc).await;
    sqlx::query(
        "INSERT INTO category_grants (user_id, category, granted_by, created_at)
         VALUES ($1, 'hiv', 'nobody', '2026-01-01T00:00:00.000Z')",
    )
    .bind(doctor.to_string())
    .execute(pool)
    .await
    .unwrap();
    let read = app
        .get(&app.clinician, &format!("/api/v1/documents/{doc}"))
        .await;
    assert_eq!(read.status(), 404, "a forged grant grants nothing");

    // The console's changes are in the audit log: the users created for this test, and a
    // token issued now.
    let config = app.config();
    chartvault::cli::token_create(&config, "law").await.unwrap();
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert!(actions.contains(&"user-add"), "{actions:?}");
    assert!(actions.contains(&"token-create"), "{actions:?}");
    let added = rows.iter().filter(|r| r.action == "user-add").count();
    assert_eq!(added, 5, "admin at first start, then rec, doc, law and aud");
}

/// `chartvault search` takes its query from stdin (never the command line, where `ps` and
/// the shell history would keep it), and no command that decrypts can dump core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_command_reads_its_query_from_stdin_and_no_command_dumps_core() {
    use std::io::Write;
    let app = spawn_app().await;
    let id = app
        .upload(
            text_pdf_of(&[&["Clinic letter", "Marker word curlew"]]),
            &metadata("CLI-1", "Cleo Line", "letter"),
        )
        .await;
    app.wait_indexed(&id).await;

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chartvault"))
        .args(["search", "--server", &app.base])
        .env("CHARTVAULT_TOKEN", &app.records)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it waits for its query: core dumps are off for it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
    child.stdin.take().unwrap().write_all(b"curlew\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.starts_with("1 pages match"), "{printed}");
    assert!(printed.contains(&id), "{printed}");
}
