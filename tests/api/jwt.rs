//! OIDC / SMART bearer tokens: the test is its own identity provider, with a freshly
//! generated P-256 key published in a JWKS file. Every broken token is 401; scopes narrow
//! the user's role; a patient-scoped token sees one patient only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chartvault::store::prelude::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::helpers::*;

const ISSUER: &str = "https://idp.test.example/realms/clinical";
const AUDIENCE: &str = "chartvault";

/// A P-256 signing key and its public JWK.
fn generate_key(kid: &str) -> (EncodingKey, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref(); // 0x04 ‖ x ‖ y
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
    });
    (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(user: &str, scope: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": user, "scope": scope,
        "iat": now(), "nbf": now() - 10, "exp": now() + 600,
    })
}

fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    encode(&header, claims, key).unwrap()
}

async fn status_and_message(app: &TestApp, token: &str) -> (u16, String) {
    let response = app
        .post_json(token, "/api/v1/search", &json!({ "query": "larch" }))
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["message"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_are_verified_and_their_scopes_narrow_access() {
    let (key, jwk) = generate_key("k1");
    let (other_key, _) = generate_key("k2");
    let jwks_dir = tempfile::tempdir().unwrap();
    let jwks = jwks_dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string()).unwrap();
    let app = spawn_app_with(|config| {
        config.auth.jwt_issuer = Some(ISSUER.to_string());
        config.auth.jwt_audience = Some(AUDIENCE.to_string());
        config.auth.jwks_file = Some(jwks.clone());
        config.auth.smart_patient_system = Some("urn:oid:1.2.3.99".into());
        config.patients.default_fhir_system = Some("urn:oid:1.2.3.99".into());
    })
    .await;
    let first = app
        .upload(
            png_of(&scanned_page(&["Clinic letter", "Marker larch"], 0.0, 71)),
            &metadata("JW-1", "Jo Tokenholder", "letter"),
        )
        .await;
    let second = app
        .upload(
            png_of(&scanned_page(
                &["Clinic letter", "Marker larch again"],
                0.0,
                72,
            )),
            &metadata("JW-2", "Sam Otherpatient", "letter"),
        )
        .await;
    let first_doc = app.wait_indexed(&first).await;
    app.wait_indexed(&second).await;

    // A good token acts as the user it names, with that user's role.
    let good = sign(
        &key,
        "k1",
        &claims("rec", "openid user/DocumentReference.read"),
    );
    let (status, _) = status_and_message(&app, &good).await;
    assert_eq!(status, 200);
    let hits = app.search(&good, json!({ "query": "larch" })).await;
    assert_eq!(hits["total"], 2);
    // Scopes narrow the role: a read scope does not ingest, and no scope does not read.
    let upload = app
        .upload_as(
            &good,
            png_of(&scanned_page(&["x"], 0.0, 73)),
            &metadata("JW-1", "Jo Tokenholder", "letter"),
        )
        .await;
    assert_eq!(upload.status(), 403);
    let no_scope = sign(&key, "k1", &claims("rec", "openid profile"));
    assert_eq!(status_and_message(&app, &no_scope).await.0, 403);
    // ...and never widen it: an auditor with every scope still reads nothing.
    let auditor = sign(&key, "k1", &claims("aud", "user/*.*"));
    assert_eq!(status_and_message(&app, &auditor).await.0, 403);

    // Every broken token is 401, with the failed check named.
    let mut expired = claims("rec", "user/*.read");
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("rec", "user/*.read");
    early["nbf"] = json!(now() + 3600);
    let mut audience = claims("rec", "user/*.read");
    audience["aud"] = json!("another-service");
    let mut issuer = claims("rec", "user/*.read");
    issuer["iss"] = json!("https://evil.example");
    let unknown_user = claims("nobody", "user/*.read");
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = B64.encode(claims("rec", "user/*.read").to_string());
    let cases = [
        (sign(&key, "k1", &expired), "expired"),
        (sign(&key, "k1", &early), "not valid yet"),
        (sign(&key, "k1", &audience), "audience"),
        (sign(&key, "k1", &issuer), "issuer"),
        (
            sign(&other_key, "k1", &claims("rec", "user/*.read")),
            "signature",
        ),
        (
            sign(&other_key, "k9", &claims("rec", "user/*.read")),
            "unknown",
        ),
        (format!("{none_header}.{none_payload}."), "JWT"),
        (sign(&key, "k1", &unknown_user), "not a chartvault user"),
        ("not.a.token".to_string(), "JWT"),
    ];
    for (token, reason) in cases {
        let (status, message) = status_and_message(&app, &token).await;
        assert_eq!(status, 401, "{reason}: {message}");
        assert!(message.contains(reason), "{reason}: {message}");
    }

    // A patient-scoped token sees its patient only: 404 for another patient's document,
    // exactly as for an unknown id, and search returns its patient's pages only.
    let patient = first_doc["patient_id"].as_str().unwrap();
    let mut scoped = claims("rec", "launch/patient patient/*.read");
    scoped["patient"] = json!(patient);
    let scoped = sign(&key, "k1", &scoped);
    let mine = app
        .get(&scoped, &format!("/api/v1/documents/{first}"))
        .await;
    assert_eq!(mine.status(), 200);
    let theirs = app
        .get(&scoped, &format!("/api/v1/documents/{second}"))
        .await;
    assert_eq!(theirs.status(), 404);
    let hits = app.search(&scoped, json!({ "query": "larch" })).await;
    assert_eq!(hits["total"], 1);
    assert_eq!(hits["hits"][0]["document_id"], first.as_str());
    let lookup = app
        .post_json(
            &scoped,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "JW-2" }),
        )
        .await;
    assert_eq!(lookup.status(), 404);
    // An EHR launch names the patient by MRN (bare, under auth.smart_patient_system, or
    // system|MRN): the same patient, the same narrowing, through FHIR too. An MRN of no
    // patient here is refused.
    for claim in ["JW-1", "urn:oid:1.2.3.99|JW-1"] {
        let mut by_mrn = claims("rec", "launch/patient patient/*.read");
        by_mrn["patient"] = json!(claim);
        let by_mrn = sign(&key, "k1", &by_mrn);
        let mine = app
            .get(&by_mrn, &format!("/fhir/DocumentReference/{first}"))
            .await;
        assert_eq!(mine.status(), 200, "{claim}");
        let theirs = app
            .get(&by_mrn, &format!("/fhir/DocumentReference/{second}"))
            .await;
        assert_eq!(theirs.status(), 404, "{claim}");
    }
    for claim in ["JW-404", "urn:oid:9.9.9|JW-1"] {
        let mut unknown = claims("rec", "launch/patient patient/*.read");
        unknown["patient"] = json!(claim);
        let (status, message) = status_and_message(&app, &sign(&key, "k1", &unknown)).await;
        assert_eq!(status, 401, "{claim}: {message}");
        assert!(message.contains("names no patient"), "{message}");
    }
    // The accesses are audited as the token's user.
    let (rec_id, _, _) = app.state.db.user_by_name("rec").await.unwrap().unwrap();
    let audit = app.state.db.audit_rows(0).await.unwrap();
    assert!(audit.iter().any(
        |r| r.user_id.as_deref() == Some(rec_id.to_string().as_str())
            && r.outcome == "denied-scope"
            && r.document_id.as_deref() == Some(second.as_str())
    ));
}

/// The hospital's identity provider as the test runs it: a discovery document and a JWKS
/// that the test can rotate, counting how often the JWKS is fetched.
struct TestIssuer {
    base: String,
    jwks: std::sync::Arc<std::sync::Mutex<Value>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn start_issuer() -> TestIssuer {
    use axum::routing::get;
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwks = std::sync::Arc::new(std::sync::Mutex::new(json!({ "keys": [] })));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let discovery = json!({ "issuer": base, "jwks_uri": format!("{base}/protocol/certs") });
    let (served, counted) = (jwks.clone(), fetches.clone());
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/protocol/certs",
            get(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(served.lock().unwrap().clone())
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestIssuer {
        base,
        jwks,
        fetches,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_discovery_rotate_without_a_restart_and_first_sign_ins_are_provisioned() {
    use std::sync::atomic::Ordering;
    let issuer = start_issuer().await;
    let (key1, jwk1) = generate_key("2026-a");
    let (key2, jwk2) = generate_key("2026-b");
    let (unpublished, _) = generate_key("stolen");
    *issuer.jwks.lock().unwrap() = json!({ "keys": [jwk1] });
    let base = issuer.base.clone();
    let app = spawn_app_with(|config| {
        config.auth.jwt_issuer = Some(base.clone());
        config.auth.jwt_audience = Some(AUDIENCE.to_string());
        config.auth.role_claim = Some("groups".into());
        config.auth.role_mapping = [
            (
                "cv-clinicians".to_string(),
                chartvault::domain::Role::Clinician,
            ),
            ("cv-records".to_string(), chartvault::domain::Role::Records),
        ]
        .into();
    })
    .await;
    let token = |key: &EncodingKey, kid: &str, user: &str, groups: Value| {
        let mut claims = claims(user, "user/DocumentReference.read");
        claims["iss"] = json!(issuer.base);
        claims["groups"] = groups;
        sign(key, kid, &claims)
    };

    // A first sign-in: the user is created with the role the groups map to, audited.
    let jackie = token(
        &key1,
        "2026-a",
        "nurse.jackie",
        json!(["staff", "cv-clinicians"]),
    );
    assert_eq!(
        status_and_message(&app, &jackie).await,
        (200, String::new())
    );
    let (_, role, disabled) = app
        .state
        .db
        .user_by_name("nurse.jackie")
        .await
        .unwrap()
        .expect("provisioned");
    assert_eq!(
        (role, disabled),
        (chartvault::domain::Role::Clinician, false)
    );
    let rows = app.state.db.audit_rows(0).await.unwrap();
    assert!(rows.iter().any(|r| r.action == "user-add"
        && r.detail
            .as_deref()
            .is_some_and(|d| d.contains("oidc first sign-in"))));
    // Nothing maps, or two roles do: refused, nobody created.
    let visitor = token(&key1, "2026-a", "visitor", json!("staff"));
    let (status, message) = status_and_message(&app, &visitor).await;
    assert_eq!(status, 401);
    assert!(message.contains("maps to no role"), "{message}");
    assert!(app
        .state
        .db
        .user_by_name("visitor")
        .await
        .unwrap()
        .is_none());
    let both = token(
        &key1,
        "2026-a",
        "both",
        json!(["cv-clinicians", "cv-records"]),
    );
    let (status, message) = status_and_message(&app, &both).await;
    assert_eq!(status, 401);
    assert!(message.contains("more than one"), "{message}");

    // The provider rotates its key: tokens of the new key work without a restart.
    *issuer.jwks.lock().unwrap() = json!({ "keys": [jwk2] });
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rotated = token(&key2, "2026-b", "nurse.jackie", json!(["cv-clinicians"]));
    assert_eq!(status_and_message(&app, &rotated).await.0, 200);

    // A key the provider never published is refused, and a burst of such tokens costs the
    // provider at most one more fetch.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = issuer.fetches.load(Ordering::SeqCst);
    for _ in 0..5 {
        let forged = token(
            &unpublished,
            "stolen",
            "nurse.jackie",
            json!(["cv-clinicians"]),
        );
        let (status, message) = status_and_message(&app, &forged).await;
        assert_eq!(status, 401);
        assert!(
            message.contains("signing key (kid) is unknown"),
            "{message}"
        );
    }
    assert!(issuer.fetches.load(Ordering::SeqCst) - before <= 1);

    // A disabled user stays out, whatever their token.
    chartvault::cli::user_disable(&app.config(), "nurse.jackie")
        .await
        .unwrap();
    let (status, message) = status_and_message(&app, &rotated).await;
    assert_eq!(status, 401);
    assert!(message.contains("disabled"), "{message}");
}
