//! Tokens and roles: missing, unknown, expired, revoked tokens and disabled users get 401;
//! a role without the action gets 403; an unknown document gets 404.

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
    let (expired, hash) = chartvault::auth::generate_token();
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
