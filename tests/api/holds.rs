//! Legal holds: while a hold covers a document, deleting it, rejecting it, correcting it and
//! retention's purge fail with 409 naming the hold; after its release they succeed. Placing,
//! refusing and releasing are all audited.

use chartvault::store::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;

fn page(marker: &str, seed: u64) -> Vec<u8> {
    png_of(&scanned_page(
        &["Clinic letter", &format!("Marker {marker}")],
        0.0,
        seed,
    ))
}

async fn place_hold(app: &TestApp, scope: Value) -> Value {
    let mut body = json!({
        "matter": "Vantongeren v. General Hospital",
        "custodian": "Director of Health Information Management",
        "reason": "litigation hold letter received 2026-11-02",
    });
    body.as_object_mut()
        .unwrap()
        .extend(scope.as_object().unwrap().clone());
    let response = app.post_json(&app.legal, "/api/v1/holds", &body).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let hold: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/holds/{}", hold["id"].as_str().unwrap())
    );
    hold
}

async fn delete_status(app: &TestApp, id: &str) -> (u16, Value) {
    let response = app
        .delete(
            &app.records,
            &format!("/api/v1/documents/{id}"),
            &json!({ "reason": "duplicate scan" }),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_document_cannot_be_destroyed_or_refiled_until_the_hold_is_released() {
    let app = spawn_app_with(|config| {
        // A rule that has expired for these 1998 documents, so retention would purge them.
        config.retention.rules = vec![chartvault::config::RetentionRule {
            document_type: "*".into(),
            jurisdiction: None,
            years: 10,
            minor_years_after_majority: None,
        }];
    })
    .await;
    let held_a = app
        .upload(
            page("wolfsbane", 31),
            &metadata("HD-1", "Iris Vantongeren", "letter"),
        )
        .await;
    let held_b = app
        .upload(
            page("larkspur", 32),
            &metadata("HD-1", "Iris Vantongeren", "x-ray-report"),
        )
        .await;
    let by_query = app
        .upload(
            page("foxglove", 33),
            &metadata("HD-2", "Otto Brandt", "letter"),
        )
        .await;
    let free = app
        .upload(
            page("yarrow", 34),
            &metadata("HD-2", "Otto Brandt", "letter"),
        )
        .await;
    for id in [&held_a, &held_b, &by_query, &free] {
        app.wait_indexed(id).await;
    }

    let on_patient = place_hold(&app, json!({ "mrn": "HD-1" })).await;
    let hold_id = on_patient["id"].as_str().unwrap().to_string();
    assert_eq!(on_patient["scope"], "patient");
    assert_eq!(on_patient["active"], true);
    let on_query = place_hold(&app, json!({ "query": { "query": "foxglove" } })).await;
    assert_eq!(on_query["scope"], "query");
    assert_eq!(on_query["document_ids"], json!([by_query]));
    // Only legal places holds.
    for token in [&app.records, &app.clinician, &app.auditor, &app.admin] {
        let response = app
            .post_json(
                token,
                "/api/v1/holds",
                &json!({ "matter": "m", "custodian": "c", "reason": "r", "mrn": "HD-2" }),
            )
            .await;
        assert_eq!(response.status(), 403);
    }

    // Delete: 409 naming the hold and its matter; nothing destroyed.
    for id in [&held_a, &held_b] {
        let (status, body) = delete_status(&app, id).await;
        assert_eq!(status, 409, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&hold_id), "{message}");
        assert!(
            message.contains("Vantongeren v. General Hospital"),
            "{message}"
        );
    }
    let (status, body) = delete_status(&app, &by_query).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains(on_query["id"].as_str().unwrap()));
    // A correction would take the held version out of the index: refused too.
    let correction = app
        .post_json(
            &app.records,
            &format!("/api/v1/documents/{held_a}/corrections"),
            &json!({ "document_type": "referral", "reason": "misfiled type" }),
        )
        .await;
    assert_eq!(correction.status(), 409);
    // Retention's purge skips held documents and says which hold keeps them.
    let run: Value = app
        .post_json(
            &app.records,
            "/api/v1/retention/runs",
            &json!({ "apply": true }),
        )
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = run["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["document_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 4, "{run}");
    assert_eq!(run["held"], 3, "{run}");
    assert_eq!(run["destroyed"], 1, "{run}");
    for entry in run["expired"].as_array().unwrap() {
        let id = entry["document_id"].as_str().unwrap();
        assert_eq!(entry["destroyed"], id == free, "{entry}");
        if id == held_a || id == held_b {
            assert_eq!(entry["holds"][0]["id"], hold_id.as_str());
        }
    }
    for id in [&held_a, &held_b, &by_query] {
        let doc: Value = app
            .get(&app.records, &format!("/api/v1/documents/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(doc["status"], "indexed", "{doc}");
    }
    let found = app
        .search(&app.legal, json!({ "query": "wolfsbane" }))
        .await;
    assert_eq!(
        found["total"], 1,
        "the held page is still searchable: {found}"
    );

    // Release (legal, with a reason), then the destruction goes through.
    let no_reason = app
        .post_json(
            &app.legal,
            &format!("/api/v1/holds/{hold_id}/release"),
            &json!({ "reason": " " }),
        )
        .await;
    assert_eq!(no_reason.status(), 400);
    let released = app
        .post_json(
            &app.legal,
            &format!("/api/v1/holds/{hold_id}/release"),
            &json!({ "reason": "the matter settled on 2026-11-20" }),
        )
        .await;
    assert_eq!(released.status(), 200);
    let released: Value = released.json().await.unwrap();
    assert_eq!(released["active"], false);
    assert_eq!(
        released["release_reason"],
        "the matter settled on 2026-11-20"
    );
    let again = app
        .post_json(
            &app.legal,
            &format!("/api/v1/holds/{hold_id}/release"),
            &json!({ "reason": "twice" }),
        )
        .await;
    assert_eq!(again.status(), 409);
    let (status, body) = delete_status(&app, &held_a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "deleted");
    // The query hold still keeps its document.
    let (status, _) = delete_status(&app, &by_query).await;
    assert_eq!(status, 409);
    let holds: Value = app
        .get(&app.legal, "/api/v1/holds")
        .await
        .json()
        .await
        .unwrap();
    let holds = holds["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 2);
    assert_eq!(holds[0]["active"], true, "active holds first");
    assert_eq!(holds[0]["id"], on_query["id"]);

    // The trail: placing, the refusals and the release, each by whom.
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let holds_audited: Vec<&str> = rows
        .iter()
        .filter(|r| r.action == "hold" && r.outcome == "ok")
        .filter_map(|r| r.detail.as_deref())
        .collect();
    assert!(holds_audited.iter().any(|d| d.contains("\"place\"")));
    assert!(holds_audited
        .iter()
        .any(|d| d.contains("\"release\"") && d.contains(&hold_id)));
    let refused_deletes = rows
        .iter()
        .filter(|r| r.action == "delete" && r.outcome == "refused")
        .count();
    assert_eq!(refused_deletes, 4);
    assert!(rows
        .iter()
        .any(|r| r.action == "correct-document" && r.outcome == "refused"));
    assert!(rows.iter().any(
        |r| r.action == "retention-destroy" && r.document_id.as_deref() == Some(free.as_str())
    ));
    // The matter, the custodian and the reasons are sealed in the database.
    let db = std::fs::read(app.data_dir.join("chartvault.db")).unwrap();
    for secret in [
        "Vantongeren v. General",
        "Director of Health",
        "settled on 2026",
    ] {
        assert!(
            !contains_ignore_case(&db, secret),
            "{secret} in the database"
        );
    }
}
