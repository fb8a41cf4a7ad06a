//! Retention with a clock the test sets (`retention.today`): `chartvault retention run`
//! lists what expired under the rules (the minor rule from the patient's birth date),
//! `--apply` crypto-shreds it, the destruction certificates remain, held documents stay.

use chartvault::store::prelude::*;
use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;

fn page(marker: &str, seed: u64) -> Vec<u8> {
    png_of(&scanned_page(
        &["Outpatient record", &format!("Marker {marker}")],
        0.0,
        seed,
    ))
}

fn meta(mrn: &str, birth: &str, document_type: &str, service: &str) -> Value {
    json!({
        "patient": { "mrn": mrn, "name": "Retention Patient", "birth_date": birth },
        "document_type": document_type,
        "service_date": service,
    })
}

fn retention_cli(app: &TestApp, apply: bool) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chartvault"));
    command
        .args(["retention", "run", "--server", &app.base])
        .env("CHARTVAULT_TOKEN", &app.records);
    if apply {
        command.arg("--apply");
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn listed(report: &Value) -> Vec<String> {
    let mut ids: Vec<String> = report["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["document_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_documents_are_listed_then_shredded_with_a_certificate_and_holds_win() {
    let app = spawn_app_with(|config| {
        config.retention.today = Some("2030-01-01".parse().unwrap());
        config.retention.rules = vec![
            chartvault::config::RetentionRule {
                document_type: "*".into(),
                jurisdiction: None,
                years: 10,
                minor_years_after_majority: Some(3),
            },
            chartvault::config::RetentionRule {
                document_type: "x-ray-report".into(),
                jurisdiction: None,
                years: 40,
                minor_years_after_majority: None,
            },
        ];
    })
    .await;
    // An adult's 2015 note: expired 2025.
    let adult = app
        .upload(
            page("aster", 41),
            &meta("RT-1", "1950-02-01", "progress-note", "2015-03-01"),
        )
        .await;
    // The same patient's 2015 x-ray report: kept 40 years.
    let xray = app
        .upload(
            page("bugle", 42),
            &meta("RT-1", "1950-02-01", "x-ray-report", "2015-03-01"),
        )
        .await;
    // A child's 2012 note: 10 years ends 2022, but 18 + 3 ends 2031-06-01.
    let minor = app
        .upload(
            page("clover", 43),
            &meta("RT-2", "2010-06-01", "progress-note", "2012-01-01"),
        )
        .await;
    // Expired, but its patient is on hold.
    let held = app
        .upload(
            page("daisy", 44),
            &meta("RT-3", "1960-01-01", "progress-note", "2001-01-01"),
        )
        .await;
    for id in [&adult, &xray, &minor, &held] {
        app.wait_indexed(id).await;
    }
    let hold: Value = app
        .post_json(
            &app.legal,
            "/api/v1/holds",
            &json!({ "matter": "Estate of RT-3", "custodian": "HIM director",
                     "reason": "wrongful death claim", "mrn": "RT-3" }),
        )
        .await
        .json()
        .await
        .unwrap();

    // Within its retention period, a person's delete is refused, naming the rule and date.
    let refused = app
        .delete(
            &app.records,
            &format!("/api/v1/documents/{minor}"),
            &json!({ "reason": "clean-up" }),
        )
        .await;
    assert_eq!(refused.status(), 409);
    let message = refused.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("2031-06-01"), "{message}");

    // Listing destroys nothing.
    let listing = retention_cli(&app, false);
    assert_eq!(listing["applied"], false);
    assert_eq!(listing["as_of"], "2030-01-01");
    let mut expected = vec![adult.clone(), held.clone()];
    expected.sort();
    assert_eq!(listed(&listing), expected, "{listing}");
    assert_eq!(listing["destroyed"], 0);
    let adult_entry = listing["expired"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["document_id"] == adult.as_str())
        .unwrap();
    assert_eq!(adult_entry["expired_on"], "2025-03-01");
    assert_eq!(adult_entry["counted_from"], "2015-03-01");
    let held_entry = listing["expired"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["document_id"] == held.as_str())
        .unwrap();
    assert_eq!(held_entry["holds"][0]["id"], hold["id"]);
    let status = |id: String| {
        let app = &app;
        async move {
            let doc: Value = app
                .get(&app.records, &format!("/api/v1/documents/{id}"))
                .await
                .json()
                .await
                .unwrap();
            doc["status"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(status(adult.clone()).await, "indexed");

    // Apply: the expired, unheld document is shredded; everything else is untouched.
    let applied = retention_cli(&app, true);
    assert_eq!(applied["applied"], true);
    assert_eq!(applied["destroyed"], 1, "{applied}");
    assert_eq!(applied["held"], 1, "{applied}");
    assert_eq!(status(adult.clone()).await, "deleted");
    for id in [&xray, &minor, &held] {
        assert_eq!(status(id.clone()).await, "indexed");
    }
    let found = app.search(&app.records, json!({ "query": "aster" })).await;
    assert_eq!(found["total"], 0, "{found}");
    assert!(!files_under(&app.data_dir.join("blobs"))
        .iter()
        .any(|p| p.to_string_lossy().contains(&adult)));

    // The certificate outlives the data: what, when, which rule, by whom.
    let certificates: Value = app
        .get(&app.auditor, "/api/v1/retention/certificates")
        .await
        .json()
        .await
        .unwrap();
    let certificates = certificates["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 1, "{certificates:?}");
    let certificate = &certificates[0];
    assert_eq!(certificate["document_id"], adult.as_str());
    assert_eq!(certificate["run_id"], applied["run_id"]);
    assert_eq!(certificate["document_type"], "progress-note");
    assert_eq!(certificate["expired_on"], "2025-03-01");
    assert!(certificate["rule"].as_str().unwrap().contains("10 years"));
    assert_eq!(certificate["page_count"], 1);
    let (records_id, _, _) = app.state.db.user_by_name("rec").await.unwrap().unwrap();
    assert_eq!(certificate["destroyed_by"], records_id.to_string().as_str());
    let doc_sha: String = sqlx::query_scalar("SELECT sha256 FROM documents WHERE id = $1")
        .bind(&adult)
        .fetch_one(&app.sql)
        .await
        .unwrap();
    assert_eq!(certificate["document_sha256"], doc_sha.as_str());
    // It cannot be edited or deleted.
    for statement in [
        "UPDATE destruction_certificates SET rule = 'none'",
        "DELETE FROM destruction_certificates",
    ] {
        assert!(sqlx::query(statement).execute(&app.sql).await.is_err());
    }
    // Audited before the act, with the rule.
    let rows = app.state.db.audit_rows(0).await.unwrap();
    assert!(rows.iter().any(|r| r.action == "retention-destroy"
        && r.document_id.as_deref() == Some(adult.as_str())
        && r.detail.as_deref().is_some_and(|d| d.contains("10 years"))));

    // A second run finds nothing new to destroy; the certificate is still there.
    let again = retention_cli(&app, true);
    assert_eq!(listed(&again), vec![held.clone()]);
    assert_eq!(again["destroyed"], 0);
}
