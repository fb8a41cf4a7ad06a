//! Answering a subpoena end to end: the request, the checklist that blocks on a Part 2
//! document, its exclusion, a proposed and burned-in redaction, the Bates-stamped,
//! certified, searchable production read back with poppler, the manifest against the
//! originals, a supplemental production, and the accounting of disclosures. Then a
//! patient's own copy: no stamps, no certification, due dates with one extension.

use chartvault::store::prelude::*;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;

fn pdftotext(pdf: &Path, page: Option<u32>) -> String {
    let mut command = Command::new("pdftotext");
    if let Some(page) = page {
        command.args(["-f", &page.to_string(), "-l", &page.to_string()]);
    }
    let output = command.arg(pdf).arg("-").output().expect("pdftotext runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn pdf_pages(pdf: &Path) -> u32 {
    let output = Command::new("pdfinfo")
        .arg(pdf)
        .output()
        .expect("pdfinfo runs");
    assert!(output.status.success());
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Every `PREFIX-NNNNNN` token in a text.
fn bates_tokens(text: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&format!("{prefix}-")) {
        let digits: String = rest[at + prefix.len() + 1..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if digits.len() == 6 {
            found.push(format!("{prefix}-{digits}"));
        }
        rest = &rest[at + prefix.len() + 1..];
    }
    found
}

/// The page rendered in gray at `dpi`, as (width, height, pixels).
fn render_page(pdf: &Path, page: u32, dpi: u32) -> (u32, u32, Vec<u8>) {
    let out = pdf.with_extension(format!("p{page}"));
    let status = Command::new("pdftoppm")
        .args([
            "-png",
            "-gray",
            "-r",
            &dpi.to_string(),
            "-f",
            &page.to_string(),
            "-l",
        ])
        .arg(page.to_string())
        .arg("-singlefile")
        .arg(pdf)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let image = image::open(out.with_extension(format!("p{page}.png")))
        .unwrap()
        .to_luma8();
    (image.width(), image.height(), image.into_raw())
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app.post_json(&app.legal, path, &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn attach(app: &TestApp, release: &str, kind: &str, file: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("kind", kind.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(file)
                .file_name("scan.png")
                .mime_str("image/png")
                .unwrap(),
        );
    app.http
        .post(app.url(&format!("/api/v1/releases/{release}/attachments")))
        .bearer_auth(&app.legal)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn download(
    app: &TestApp,
    release: &str,
    production: &str,
    dir: &Path,
) -> std::path::PathBuf {
    let response = app
        .get(
            &app.legal,
            &format!("/api/v1/releases/{release}/productions/{production}"),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let bytes = response.bytes().await.unwrap();
    let path = dir.join(format!("{production}.pdf"));
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subpoena_is_answered_with_a_certified_bates_stamped_production() {
    let app = spawn_app().await;
    for user in ["law", "rec"] {
        let grant = app
            .post_json(
                &app.admin,
                "/api/v1/category-grants",
                &json!({ "user": user, "category": "substance-use" }),
            )
            .await;
        assert_eq!(grant.status(), 201);
    }
    let patient = |document_type: &str, service_date: &str, category: &str| {
        json!({
            "patient": { "mrn": "RL-1", "name": "Jane Q Doe", "birth_date": "1961-04-02" },
            "document_type": document_type,
            "category": category,
            "service_date": service_date,
        })
    };
    let note_pages = [
        scanned_page(
            &[
                "Progress note",
                "Started metformin 500 mg twice daily",
                "SSN 123-45-6789",
            ],
            0.0,
            51,
        ),
        scanned_page(
            &["Progress note continued", "Follow up in six weeks"],
            0.0,
            52,
        ),
    ];
    let note = app
        .upload(
            tiff_of(&note_pages),
            &patient("progress-note", "2020-03-01", "general"),
        )
        .await;
    let part2 = app
        .upload(
            png_of(&scanned_page(&["Methadone clinic intake"], 0.0, 53)),
            &patient("intake", "2020-06-01", "substance-use"),
        )
        .await;
    let outside = app
        .upload(
            png_of(&scanned_page(&["Old clinic letter"], 0.0, 54)),
            &patient("letter", "2015-06-01", "general"),
        )
        .await;
    for id in [&note, &part2, &outside] {
        app.wait_indexed(id).await;
    }

    // The request, as received.
    let (status, release) = post(
        &app,
        "/api/v1/releases",
        json!({
            "legal_basis": "subpoena",
            "requester": { "name": "Morgan Lee", "organization": "Lee & Park LLP" },
            "recipient": { "name": "Morgan Lee", "organization": "Lee & Park LLP",
                           "address": "12 Harbor Street, Springfield" },
            "matter": "Doe v. Acme Insurance, No. 26-CV-0417",
            "description": "all records of Jane Q Doe, 2019-2021",
            "satisfactory_assurances": "written notice to the patient dated 2026-11-02",
            "received_on": "2026-11-20",
            "due_on": "2026-12-04",
            "patients": ["RL-1"],
            "from": "2019-01-01",
            "to": "2021-12-31",
            "bates_prefix": "ACME",
        }),
    )
    .await;
    assert_eq!(status, 201, "{release}");
    let id = release["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/releases/{id}");
    let mut covered: Vec<&str> = release["document_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    covered.sort();
    let mut expected = vec![note.as_str(), part2.as_str()];
    expected.sort();
    assert_eq!(
        covered, expected,
        "the 2015 letter is outside the date range"
    );
    let checklist = release["checklist"].as_array().unwrap();
    let item = |name: &str| {
        checklist
            .iter()
            .find(|i| i["item"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(item("satisfactory-assurances")["status"], "pass");
    let part2_item = item("category:substance-use");
    assert_eq!(part2_item["status"], "blocked");
    assert_eq!(part2_item["document_ids"], json!([part2]));
    // The subpoena scan itself, stored encrypted.
    let scan = attach(
        &app,
        &id,
        "subpoena",
        png_of(&scanned_page(&["SUBPOENA DUCES TECUM"], 0.0, 55)),
    )
    .await;
    assert_eq!(scan.status(), 201);

    // The checklist blocks the production, naming the Part 2 document.
    let (status, refused) = post(
        &app,
        &format!("{base}/productions"),
        json!({ "custodian": "Pat Keeper, Custodian of Records" }),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("42 CFR Part 2") && message.contains(&part2),
        "{message}"
    );

    // No court order: the Part 2 document is excluded.
    let (status, after) = post(
        &app,
        &format!("{base}/exclusions"),
        json!({ "document_ids": [part2], "reason": "42 CFR Part 2: no court order" }),
    )
    .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["document_ids"], json!([note]));
    assert!(after["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "pass"));

    // The social security number is proposed from the word boxes, and recorded.
    let (status, proposed) = post(
        &app,
        &format!("{base}/redaction-proposals"),
        json!({ "pattern": "ssn", "apply": true }),
    )
    .await;
    assert_eq!(status, 200, "{proposed}");
    let proposals = proposed["proposals"].as_array().unwrap();
    assert_eq!(proposals.len(), 1, "{proposed}");
    assert_eq!(proposals[0]["document_id"], note.as_str());
    assert_eq!(proposals[0]["page"], 1);
    let region = proposals[0]["regions"][0].clone();
    // A too-wide redaction drawn by hand is taken back before the production.
    let (status, wrong) = post(
        &app,
        &format!("{base}/redactions"),
        json!({ "document_id": note, "page": 2, "regions": [{ "left": 0, "top": 0, "width": 1000, "height": 200 }] }),
    )
    .await;
    assert_eq!(status, 201, "{wrong}");
    let undone = app
        .delete(
            &app.legal,
            &format!("{base}/redactions/{}", wrong["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(undone.status(), 200);
    let undone: Value = undone.json().await.unwrap();
    assert_eq!(undone["redactions"].as_array().unwrap().len(), 1);

    // The production.
    let (status, produced) = post(
        &app,
        &format!("{base}/productions"),
        json!({ "custodian": "Pat Keeper, Custodian of Records" }),
    )
    .await;
    assert_eq!(status, 201, "{produced}");
    let production = &produced["production"];
    let manifest = &produced["manifest"];
    let pid = production["id"].as_str().unwrap().to_string();
    assert_eq!(production["bates_first"], 1);
    assert_eq!(production["bates_last"], 2);
    assert_eq!(manifest["bates_first"], "ACME-000001");
    assert_eq!(manifest["bates_last"], "ACME-000002");
    let dir = tempfile::tempdir().unwrap();
    let pdf = download(&app, &id, &pid, dir.path()).await;
    let bytes = std::fs::read(&pdf).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        production["sha256"].as_str().unwrap()
    );
    assert_eq!(manifest["pdf_sha256"], production["sha256"]);

    // Pages: certification + produced pages + manifest pages.
    let pages = pdf_pages(&pdf);
    let manifest_pages = manifest["manifest_pages"].as_u64().unwrap() as u32;
    assert_eq!(manifest["certification_pages"], 1);
    assert_eq!(pages, 1 + 2 + manifest_pages);
    assert_eq!(manifest["pdf_pages"], pages);

    // The certification: the custodian, the page count, the Bates range, the date.
    let certification = pdftotext(&pdf, Some(1));
    for expected in [
        "Federal Rule of Evidence 902(11)",
        "Pat Keeper, Custodian of Records",
        "Bates numbered ACME-000001",
        "through ACME-000002",
        &format!("This production: {pages} pages"),
        &chrono::Utc::now().date_naive().to_string(),
    ] {
        assert!(
            certification.contains(expected),
            "{expected} not in:\n{certification}"
        );
    }
    // Every produced page carries its own Bates number once, in order, without gaps, and
    // no other page carries one.
    let mut stamped = Vec::new();
    for page in 1..=pages {
        let tokens = bates_tokens(&pdftotext(&pdf, Some(page)), "ACME");
        if (2..=3).contains(&page) {
            assert_eq!(tokens.len(), 1, "page {page}: {tokens:?}");
            stamped.extend(tokens);
        } else if page > 3 {
            assert!(tokens.is_empty(), "manifest page {page}: {tokens:?}");
        }
    }
    assert_eq!(stamped, ["ACME-000001", "ACME-000002"]);
    // The text layer is searchable; the redacted number is not in it.
    let all = pdftotext(&pdf, None).to_lowercase();
    assert!(all.contains("metformin"), "{all}");
    assert!(all.contains("follow up"), "{all}");
    assert!(!all.contains("6789") && !all.contains("123-45"), "{all}");
    // The redacted pixels are solid black in the produced page image.
    let (width, _, pixels) = render_page(&pdf, 2, 150);
    let scale = width as f64 / 2100.0;
    let (left, top, w, h) = (
        region["left"].as_f64().unwrap(),
        region["top"].as_f64().unwrap(),
        region["width"].as_f64().unwrap(),
        region["height"].as_f64().unwrap(),
    );
    let mut dark = 0;
    let mut total = 0;
    for y in ((top + 3.0) * scale) as u32..((top + h - 3.0) * scale) as u32 {
        for x in ((left + 3.0) * scale) as u32..((left + w - 3.0) * scale) as u32 {
            total += 1;
            if pixels[(y * width + x) as usize] < 16 {
                dark += 1;
            }
        }
    }
    assert!(
        total > 100 && dark == total,
        "{dark} of {total} pixels are black"
    );
    // The original is untouched.
    let original = app
        .get(
            &app.legal,
            &format!("/api/v1/documents/{note}/pages/1/text"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(original.contains("6789"), "{original}");

    // The manifest maps each Bates number to its document, page and the original's hash.
    let entries = manifest["pages"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (n, entry) in entries.iter().enumerate() {
        assert_eq!(entry["bates"], format!("ACME-{:06}", n + 1));
        assert_eq!(entry["document_id"], note.as_str());
        assert_eq!(entry["page"], n + 1);
        assert_eq!(entry["pdf_page"], n + 2);
        let original = app
            .get(&app.legal, &format!("/api/v1/documents/{note}/original"))
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            entry["original_sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&original))
        );
    }
    assert_eq!(entries[0]["redacted"], true);
    let manifest_text = pdftotext(&pdf, Some(4));
    assert!(
        manifest_text.contains("PRODUCTION MANIFEST"),
        "{manifest_text}"
    );
    assert!(manifest_text.contains(entries[0]["original_sha256"].as_str().unwrap()));
    let stored: Value = app
        .get(&app.legal, &format!("{base}/productions/{pid}/manifest"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(&stored, manifest);

    // A supplemental production continues the numbering.
    let (status, supplemental) = post(
        &app,
        &format!("{base}/productions"),
        json!({ "custodian": "Pat Keeper, Custodian of Records" }),
    )
    .await;
    assert_eq!(status, 201, "{supplemental}");
    assert_eq!(supplemental["manifest"]["bates_first"], "ACME-000003");
    assert_eq!(supplemental["manifest"]["bates_last"], "ACME-000004");

    // The accounting of disclosures lists the production.
    let accounting: Value = app
        .post_json(
            &app.auditor,
            "/api/v1/disclosures/accounting",
            &json!({ "mrn": "RL-1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let disclosures = accounting["disclosures"].as_array().unwrap();
    let first = disclosures
        .iter()
        .find(|d| d["description"].as_str().unwrap().contains("ACME-000001"))
        .unwrap_or_else(|| panic!("{accounting}"));
    assert_eq!(first["source"], "production");
    assert_eq!(first["recipient_name"], "Morgan Lee, Lee & Park LLP");
    assert_eq!(first["recipient_address"], "12 Harbor Street, Springfield");
    assert_eq!(
        first["disclosed_at"],
        chrono::Utc::now().date_naive().to_string()
    );
    assert!(first["purpose"].as_str().unwrap().starts_with("subpoena"));
    assert_eq!(first["document_ids"], json!([note]));
    // The audit entry carries the PDF's hash.
    let rows = app.state.db.audit_rows(0).await.unwrap();
    assert!(rows.iter().any(|r| r.action == "release"
        && r.outcome == "ok"
        && r.detail
            .as_deref()
            .is_some_and(|d| d.contains(production["sha256"].as_str().unwrap()))));
    // Nobody else produces.
    for token in [&app.records, &app.clinician, &app.auditor, &app.admin] {
        let response = app
            .post_json(token, &format!("{base}/productions"), &json!({}))
            .await;
        assert_eq!(response.status(), 403);
    }
    // Verify knows productions and attachments: each decrypts to the recorded SHA-256.
    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    // 3 originals, 1 attachment, 2 productions.
    assert_eq!(report.checked.originals_hashed, 6);
    // What the production holds is encrypted at rest.
    for path in files_under(&app.data_dir) {
        let Some(bytes) = read_live(&path) else {
            continue;
        };
        for needle in [
            "metformin",
            "Morgan Lee",
            "Doe v. Acme",
            "Pat Keeper",
            "%PDF",
        ] {
            assert!(
                !contains_ignore_case(&bytes, needle),
                "{needle} in {}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_own_copy_has_no_stamps_and_its_due_date_extends_once() {
    let app = spawn_app().await;
    let doc = app
        .upload(
            png_of(&scanned_page(
                &["Discharge summary", "Marker quillwort"],
                0.0,
                61,
            )),
            &metadata("PA-1", "Rosa Patel", "discharge-summary"),
        )
        .await;
    app.wait_indexed(&doc).await;
    let (status, release) = post(
        &app,
        "/api/v1/releases",
        json!({
            "legal_basis": "patient-access",
            "requester": { "name": "Rosa Patel" },
            "recipient": { "name": "Rosa Patel", "address": "4 Elm Road" },
            "received_on": "2026-11-02",
            "patients": ["PA-1"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{release}");
    assert_eq!(release["due_on"], "2026-12-02", "30 days after receipt");
    let id = release["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/releases/{id}");
    let (status, extended) = post(
        &app,
        &format!("{base}/extension"),
        json!({ "reason": "records stored off site" }),
    )
    .await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(extended["due_on"], "2027-01-01");
    assert_eq!(extended["extension_reason"], "records stored off site");
    let (status, _) = post(
        &app,
        &format!("{base}/extension"),
        json!({ "reason": "again" }),
    )
    .await;
    assert_eq!(status, 409, "one extension only");

    let (status, produced) = post(&app, &format!("{base}/productions"), json!({})).await;
    assert_eq!(status, 201, "{produced}");
    assert_eq!(produced["production"]["certified"], false);
    assert_eq!(produced["production"]["bates_prefix"], Value::Null);
    let dir = tempfile::tempdir().unwrap();
    let pid = produced["production"]["id"].as_str().unwrap();
    let pdf = download(&app, &id, pid, dir.path()).await;
    let manifest_pages = produced["manifest"]["manifest_pages"].as_u64().unwrap() as u32;
    assert_eq!(pdf_pages(&pdf), 1 + manifest_pages, "no certification page");
    let text = pdftotext(&pdf, None);
    assert!(bates_tokens(&text, "CV").is_empty(), "{text}");
    assert!(!text.contains("CERTIFICATION"), "{text}");
    assert!(text.to_lowercase().contains("quillwort"), "{text}");
    let listed: Value = app
        .get(&app.legal, "/api/v1/releases")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["releases"][0]["status"], "produced");
    assert_eq!(listed["releases"][0]["extended"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_record_nothing() {
    let app = spawn_app().await;
    let doc = app
        .upload(
            png_of(&scanned_page(&["Clinic letter", "Marker sorrel"], 0.0, 71)),
            &metadata("BR-1", "Bea Rowe", "letter"),
        )
        .await;
    app.wait_indexed(&doc).await;
    let request = |overrides: Value| {
        let mut body = json!({
            "legal_basis": "subpoena",
            "requester": { "name": "Counsel" },
            "recipient": { "name": "Counsel" },
            "received_on": "2026-11-20",
            "patients": ["BR-1"],
        });
        body.as_object_mut()
            .unwrap()
            .extend(overrides.as_object().unwrap().clone());
        body
    };
    for (overrides, status, says) in [
        (
            json!({ "legal_basis": "curiosity" }),
            400,
            "legal_basis must be one of",
        ),
        (
            json!({ "patients": ["NO-SUCH-MRN"] }),
            404,
            "belongs to no patient",
        ),
        (json!({ "patients": [] }), 400, "patients must name"),
        (
            json!({ "from": "2021-01-01", "to": "2020-01-01" }),
            400,
            "from must not be after to",
        ),
        (
            json!({ "due_on": "2026-11-01" }),
            400,
            "due_on must not be before",
        ),
        (
            json!({ "bates_prefix": "bad prefix" }),
            400,
            "bates_prefix must be",
        ),
        (
            json!({ "recipient": { "name": " " } }),
            400,
            "recipient.name",
        ),
    ] {
        let (got, body) = post(&app, "/api/v1/releases", request(overrides.clone())).await;
        assert_eq!(got, status, "{overrides}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }
    let listed: Value = app
        .get(&app.legal, "/api/v1/releases")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["releases"], json!([]), "nothing half-recorded");

    let (_, release) = post(&app, "/api/v1/releases", request(json!({}))).await;
    let base = format!("/api/v1/releases/{}", release["id"].as_str().unwrap());
    // A redaction off the page, or of nothing.
    for body in [
        json!({ "document_id": doc, "page": 1, "regions": [{ "left": 0, "top": 0, "width": 99999, "height": 10 }] }),
        json!({ "document_id": doc, "page": 1 }),
        json!({ "document_id": doc, "page": 9, "whole_page": true }),
    ] {
        let (got, answer) = post(&app, &format!("{base}/redactions"), body.clone()).await;
        assert_eq!(got, 400, "{body}: {answer}");
    }
    let (got, _) = post(
        &app,
        &format!("{base}/redaction-proposals"),
        json!({ "pattern": "credit-card" }),
    )
    .await;
    assert_eq!(got, 400);
    // An attachment of an unknown kind, of the wrong type, or not multipart at all.
    let response = attach(
        &app,
        release["id"].as_str().unwrap(),
        "love-letter",
        vec![1, 2, 3],
    )
    .await;
    assert_eq!(response.status(), 400);
    let (got, _) = post(&app, &format!("{base}/attachments"), json!({})).await;
    assert_eq!(got, 400);
    // Only a patient's request is extended; a certified production needs its custodian.
    let (got, _) = post(
        &app,
        &format!("{base}/extension"),
        json!({ "reason": "busy" }),
    )
    .await;
    assert_eq!(got, 409);
    let (got, answer) = post(
        &app,
        &format!("{base}/productions"),
        json!({ "certify": true }),
    )
    .await;
    assert_eq!(got, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("custodian"));
    // A hold names exactly one scope, and an unknown patient is 404.
    for (body, status) in [
        (
            json!({ "matter": "m", "custodian": "c", "reason": "r" }),
            400,
        ),
        (
            json!({ "matter": "m", "custodian": "c", "reason": "r", "mrn": "BR-1", "document_ids": [doc] }),
            400,
        ),
        (
            json!({ "matter": "m", "custodian": "c", "reason": "r", "mrn": "NO-SUCH-MRN" }),
            404,
        ),
        (
            json!({ "matter": " ", "custodian": "c", "reason": "r", "mrn": "BR-1" }),
            400,
        ),
    ] {
        let (got, answer) = post(&app, "/api/v1/holds", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    let holds: Value = app
        .get(&app.legal, "/api/v1/holds")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(holds["holds"], json!([]));
    // The service still answers.
    let found = app.search(&app.legal, json!({ "query": "sorrel" })).await;
    assert_eq!(found["total"], 1);
}

/// A production and the disclosures it makes are recorded in one transaction: when the
/// accounting cannot be written, the production is not recorded either (and its Bates
/// numbers are not used up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_is_never_recorded_without_its_disclosures() {
    let app = spawn_app().await;
    let doc = app
        .upload(
            text_pdf_of(&[&["Discharge summary", "Marker word shoveler"]]),
            &metadata("TX-1", "Tess Action", "discharge-summary"),
        )
        .await;
    app.wait_indexed(&doc).await;
    let (status, release) = post(
        &app,
        "/api/v1/releases",
        json!({
            "legal_basis": "patient-access",
            "requester": { "name": "Tess Action" },
            "recipient": { "name": "Tess Action" },
            "received_on": "2026-11-02",
            "patients": ["TX-1"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{release}");
    let release_id: chartvault::domain::ReleaseId =
        release["id"].as_str().unwrap().parse().unwrap();
    let (user, _, _) = app.state.db.user_by_name("law").await.unwrap().unwrap();
    let production = chartvault::store::releases::NewProduction {
        id: chartvault::domain::ProductionId::new_random(),
        release_id,
        bates: Some(("TX".to_string(), 1)),
        record_pages: 1,
        pdf_pages: 2,
        documents: 1,
        certified: false,
        custodian: None,
        sha256: "0".repeat(64),
        size_bytes: 1,
        manifest: "{}".to_string(),
        created_by: user,
    };
    // A disclosure that cannot be recorded (its patient does not exist).
    let disclosure = chartvault::store::disclosures::NewDisclosure {
        patient_id: chartvault::domain::PatientId::new_random(),
        disclosed_at: "2026-11-03".parse().unwrap(),
        document_ids: vec![doc.parse().unwrap()],
        recipient_name: "Tess Action".to_string(),
        recipient_address: None,
        description: "copy".to_string(),
        purpose: "patient-access".to_string(),
        source: chartvault::store::disclosures::DisclosureSource::Production,
        recorded_by: user,
    };
    assert!(app
        .state
        .db
        .insert_production(&production, &[disclosure])
        .await
        .is_err());
    assert!(app
        .state
        .db
        .productions(release_id)
        .await
        .unwrap()
        .is_empty());
    // The Bates counter did not move: the same numbers are taken by the next production.
    assert!(app
        .state
        .db
        .insert_production(&production, &[])
        .await
        .unwrap());
}

/// Every act on a release request is in the audit trail of every patient it concerns, not
/// only the first one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_audit_entries_name_every_patient_of_the_request() {
    let app = spawn_app().await;
    for (mrn, name) in [("AP-1", "Ada First"), ("AP-2", "Ben Second")] {
        let doc = app
            .upload(
                text_pdf_of(&[&["Clinic letter", "Marker word pochard"]]),
                &metadata(mrn, name, "letter"),
            )
            .await;
        app.wait_indexed(&doc).await;
    }
    let (status, release) = post(
        &app,
        "/api/v1/releases",
        json!({
            "legal_basis": "subpoena",
            "requester": { "name": "Counsel" },
            "recipient": { "name": "Counsel" },
            "received_on": "2026-11-02",
            "satisfactory_assurances": "notice given",
            "patients": ["AP-1", "AP-2"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{release}");
    let id = release["id"].as_str().unwrap();
    let read = app.get(&app.legal, &format!("/api/v1/releases/{id}")).await;
    assert_eq!(read.status(), 200);
    for mrn in ["AP-1", "AP-2"] {
        let response = app
            .post_json(
                &app.auditor,
                "/api/v1/audit/query",
                &json!({ "patient_mrn": mrn, "action": "release", "limit": 100 }),
            )
            .await;
        let entries: Value = response.json().await.unwrap();
        let acts: Vec<&str> = entries["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["detail"]["release"].as_str())
            .collect();
        assert!(
            acts.contains(&"create") && acts.contains(&"read"),
            "{mrn}: {entries}"
        );
    }
}

/// Text a born-digital page carries but does not show (white on white, under a filled box)
/// is not put into a production's text layer, where the recipient would find what the
/// reviewer never saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_carries_only_the_text_its_pages_show() {
    let app = spawn_app().await;
    let page = "BT /F1 14 Tf 72 720 Td (Clinic letter marker pintail) Tj ET \
                1 g BT /F1 14 Tf 72 600 Td (whitewashed) Tj ET \
                0 g BT /F1 14 Tf 72 500 Td (undercover) Tj ET 0 g 60 490 200 30 re f";
    let doc = app
        .upload(
            pdf_of_contents(&[page.to_string()]),
            &metadata("HT-1", "Hal Hidden", "letter"),
        )
        .await;
    app.wait_indexed(&doc).await;
    let words: Value = app
        .get(
            &app.records,
            &format!("/api/v1/documents/{doc}/pages/1/words"),
        )
        .await
        .json()
        .await
        .unwrap();
    let hidden: Vec<&str> = words
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["hidden"] == true)
        .map(|w| w["text"].as_str().unwrap())
        .collect();
    assert_eq!(hidden, ["whitewashed", "undercover"], "{words}");
    let (status, release) = post(
        &app,
        "/api/v1/releases",
        json!({
            "legal_basis": "patient-access",
            "requester": { "name": "Hal Hidden" },
            "recipient": { "name": "Hal Hidden" },
            "received_on": "2026-11-02",
            "patients": ["HT-1"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{release}");
    let id = release["id"].as_str().unwrap().to_string();
    let (status, produced) = post(
        &app,
        &format!("/api/v1/releases/{id}/productions"),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{produced}");
    let dir = tempfile::tempdir().unwrap();
    let pid = produced["production"]["id"].as_str().unwrap();
    let pdf = download(&app, &id, pid, dir.path()).await;
    let text = pdftotext(&pdf, Some(1)).to_lowercase();
    assert!(text.contains("pintail"), "{text}");
    assert!(!text.contains("whitewashed"), "{text}");
    assert!(!text.contains("undercover"), "{text}");
}
