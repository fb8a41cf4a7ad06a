//! Accounting of disclosures (45 CFR 164.528): disclosures recorded through the API (MRN in
//! the body) come back in the patient's accounting with date, recipient, address,
//! description and purpose; older than six years or of another patient they do not. Free
//! text is sealed at rest; recording and accounting are audited; roles are enforced.

use chartvault::store::prelude::*;
use chrono::{Months, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

/// recipient_name, recipient_address, description, purpose as stored.
type SealedDisclosure = (Vec<u8>, Option<Vec<u8>>, Vec<u8>, Vec<u8>);

const RECIPIENT: &str = "Wexley Assurance Underwriting";
const ADDRESS: &str = "17 Quarrington Lane, Bexford";
const DESCRIPTION: &str = "Discharge summary of the March admission";
const PURPOSE: &str = "Subpoena duces tecum, case 24-CV-0917";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_lists_the_patients_disclosures_of_the_last_six_years() {
    let app = spawn_app().await;
    let doc_a = app
        .upload(
            png_of(&scanned_page(&["Discharge summary"], 0.0, 31)),
            &metadata("DA-5005", "Perpetua Ledger", "discharge-summary"),
        )
        .await;
    let doc_b = app
        .upload(
            png_of(&scanned_page(&["Clinic letter"], 0.0, 32)),
            &metadata("DB-6006", "Other Patient", "letter"),
        )
        .await;
    let today = Utc::now().date_naive();
    let recent = today.checked_sub_months(Months::new(2)).unwrap();
    let old = today.checked_sub_months(Months::new(12 * 6 + 1)).unwrap();

    let record = |token: &str, body: Value| {
        let app = &app;
        let token = token.to_string();
        async move { app.post_json(&token, "/api/v1/disclosures", &body).await }
    };
    let created = record(
        &app.legal,
        json!({
            "mrn": "da-5005",
            "disclosed_at": recent,
            "recipient_name": RECIPIENT,
            "recipient_address": ADDRESS,
            "description": DESCRIPTION,
            "purpose": PURPOSE,
            "document_ids": [doc_a],
        }),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["source"], "manual");
    let old_one = record(
        &app.records,
        json!({
            "mrn": "DA-5005", "disclosed_at": old, "recipient_name": "Old Recipient",
            "description": "Everything", "purpose": "Old request",
        }),
    )
    .await;
    assert_eq!(
        old_one.status(),
        201,
        "old disclosures may be recorded late"
    );
    let other = record(
        &app.auditor,
        json!({
            "mrn": "DB-6006", "disclosed_at": recent, "recipient_name": "Public health",
            "description": "Notifiable disease report", "purpose": "Required by law",
        }),
    )
    .await;
    assert_eq!(other.status(), 201);

    // Refused: another patient's document, a future date, an unknown MRN, bad roles.
    let wrong_doc = record(
        &app.legal,
        json!({
            "mrn": "DA-5005", "disclosed_at": recent, "recipient_name": "X",
            "description": "Y", "purpose": "Z", "document_ids": [doc_b],
        }),
    )
    .await;
    assert_eq!(wrong_doc.status(), 400);
    let future = record(
        &app.legal,
        json!({
            "mrn": "DA-5005", "disclosed_at": today.succ_opt().unwrap(),
            "recipient_name": "X", "description": "Y", "purpose": "Z",
        }),
    )
    .await;
    assert_eq!(future.status(), 400);
    let unknown = record(
        &app.legal,
        json!({
            "mrn": "NO-SUCH-7", "disclosed_at": recent, "recipient_name": "X",
            "description": "Y", "purpose": "Z",
        }),
    )
    .await;
    assert_eq!(unknown.status(), 404);
    for token in [&app.clinician, &app.admin] {
        let refused = record(
            token,
            json!({
                "mrn": "DA-5005", "disclosed_at": recent, "recipient_name": "X",
                "description": "Y", "purpose": "Z",
            }),
        )
        .await;
        assert_eq!(refused.status(), 403);
    }

    // The accounting: the recent disclosure of A only, with every required field.
    let response = app
        .post_json(
            &app.auditor,
            "/api/v1/disclosures/accounting",
            &json!({ "mrn": "DA-5005" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let accounting: Value = response.json().await.unwrap();
    let listed = accounting["disclosures"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{accounting}");
    let entry = &listed[0];
    assert_eq!(entry["id"], created["id"]);
    assert_eq!(entry["disclosed_at"], json!(recent));
    assert_eq!(entry["recipient_name"], RECIPIENT);
    assert_eq!(entry["recipient_address"], ADDRESS);
    assert_eq!(entry["description"], DESCRIPTION);
    assert_eq!(entry["purpose"], PURPOSE);
    assert_eq!(entry["document_ids"], json!([doc_a]));
    assert_eq!(entry["source"], "manual");
    assert_eq!(accounting["patient"]["mrn"], "DA-5005");
    assert_eq!(accounting["period_end"], json!(today));
    assert_eq!(
        accounting["period_start"],
        json!(today.checked_sub_months(Months::new(72)).unwrap())
    );
    let b: Value = app
        .post_json(
            &app.auditor,
            "/api/v1/disclosures/accounting",
            &json!({ "mrn": "DB-6006" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["disclosures"].as_array().unwrap().len(), 1);
    assert_eq!(b["disclosures"][0]["recipient_name"], "Public health");

    // Only auditors produce accountings.
    for token in [&app.records, &app.clinician, &app.legal, &app.admin] {
        let refused = app
            .post_json(
                token,
                "/api/v1/disclosures/accounting",
                &json!({ "mrn": "DA-5005" }),
            )
            .await;
        assert_eq!(refused.status(), 403);
    }

    // Audited: the recording and the accounting, with the patient's id.
    let patient_a = accounting["patient"]["id"].as_str().unwrap().to_string();
    let audit = app.state.db.audit_rows(0).await.unwrap();
    assert!(audit.iter().any(|r| r.action == "record-disclosure"
        && r.outcome == "ok"
        && r.patient_id.as_deref() == Some(patient_a.as_str())
        && r.role.as_deref() == Some("legal")));
    assert!(audit.iter().any(|r| r.action == "account-disclosures"
        && r.outcome == "ok"
        && r.patient_id.as_deref() == Some(patient_a.as_str())));
    assert!(audit
        .iter()
        .any(|r| r.action == "account-disclosures" && r.outcome == "denied-role"));

    // At rest: recipient, address, description and purpose are sealed.
    let sealed: Vec<SealedDisclosure> = sqlx::query_as(
        "SELECT recipient_name, recipient_address, description, purpose FROM disclosures",
    )
    .fetch_all(&app.sql)
    .await
    .unwrap();
    assert_eq!(sealed.len(), 3);
    for (name, address, description, purpose) in sealed {
        for value in [Some(name), address, Some(description), Some(purpose)]
            .into_iter()
            .flatten()
        {
            assert!(
                chartvault_storage::FormatVersion::of_object(&value)
                    == Some(chartvault_storage::FormatVersion::CURRENT)
            );
        }
    }
    for path in files_under(&app.data_dir) {
        let Some(bytes) = read_live(&path) else {
            continue;
        };
        for needle in ["Wexley", "Quarrington", "duces tecum", "March admission"] {
            assert!(
                !contains_in_any_encoding(&bytes, needle),
                "{needle} in {}",
                path.display()
            );
        }
    }
}
