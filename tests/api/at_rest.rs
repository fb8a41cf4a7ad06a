//! No PHI at rest: after ingesting generated scans and a real fixture page under distinctive
//! patient names, MRNs, encounters and marker words, a byte search of the whole data_dir
//! (blobs, index, the database with its WAL and shared-memory files) and of the TRACE log
//! finds none of them, in UTF-8 or UTF-16; every blob and index file is an envelope.

use chartvault::store::prelude::*;
use serde_json::json;

use crate::helpers::*;

const MARKERS: &[&str] = &["zanzibarite", "quillfeather", "ombrellino"];
const NAME: &str = "Philippa Quarrendon";
const MRN: &str = "QZ-48213";
const ENCOUNTER: &str = "ENC-77120-XR";
const FIXTURE_NAME: &str = "Ottoline Brackwater";
const FIXTURE_MRN: &str = "RX-90331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_readable_is_left_in_the_data_dir_or_the_log() {
    let app = spawn_app().await;
    let pages = [
        scanned_page(
            &[
                "Outpatient clinic letter",
                &format!("Patient: {NAME}   MRN {MRN}"),
                "Findings: a zanzibarite lesion on the left forearm",
            ],
            0.3,
            11,
        ),
        scanned_page(
            &[
                "Plan: quillfeather dressing changed every other day",
                "Review in the ombrellino clinic in two weeks",
            ],
            -0.4,
            12,
        ),
    ];
    let mut meta = metadata(MRN, NAME, "clinic-letter");
    meta["encounter"] = json!(ENCOUNTER);
    let generated = app.upload(tiff_of(&pages), &meta).await;

    // A real scan from ../shared/fixtures, with its own distinctive words.
    let mut needles: Vec<String> = [MARKERS, &[NAME, MRN, ENCOUNTER]]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect();
    // (Digit-only fragments are left out: timings in the log hold any 5-digit run.)
    needles.extend(["Philippa", "Quarrendon"].map(String::from));
    let mut fixture_doc = None;
    if let (Some(scan), Some(truth)) = (fixture("8087_054.3B.tif"), fixture_text("8087_054.3B.txt"))
    {
        fixture_doc = Some(
            app.upload(scan, &metadata(FIXTURE_MRN, FIXTURE_NAME, "correspondence"))
                .await,
        );
        needles.extend([FIXTURE_NAME, FIXTURE_MRN, "Brackwater"].map(String::from));
        // The page's longest words: distinctive enough not to occur by chance in binary data.
        let mut words: Vec<String> = truth
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.len() >= 9)
            .map(str::to_string)
            .collect();
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        words.dedup();
        assert!(words.len() >= 3, "the fixture has long words");
        needles.extend(words.into_iter().take(6));
    }

    let doc = app.wait_indexed(&generated).await;
    assert_eq!(doc["encounter"], ENCOUNTER, "sealed columns open again");
    if let Some(id) = &fixture_doc {
        app.wait_indexed(id).await;
    }
    // The archive still works on what it sealed: search, MRN lookup (blind index), names.
    let hits = app
        .search(
            &app.clinician,
            json!({ "query": "zanzibarite", "mrn": "qz-48213" }),
        )
        .await;
    assert_eq!(hits["total"], 1, "{hits}");
    assert_eq!(hits["hits"][0]["patient"]["name"], NAME);
    assert_eq!(hits["hits"][0]["patient"]["mrn"], MRN);
    let chart = app
        .post_json(
            &app.clinician,
            "/api/v1/patients/lookup",
            &json!({ "mrn": MRN }),
        )
        .await;
    assert_eq!(chart.status(), 200);
    let chart: serde_json::Value = chart.json().await.unwrap();
    assert_eq!(chart["patient"]["name"], NAME);
    assert_eq!(chart["patient"]["birth_date"], "1950-02-01");

    // Patient-name search goes through the encrypted index (the database cannot search
    // sealed names): a prefix of the surname, any case.
    let by_name = app
        .post_json(
            &app.clinician,
            "/api/v1/patients/search",
            &json!({ "name": "QUARREN" }),
        )
        .await;
    assert_eq!(by_name.status(), 200);
    let by_name: serde_json::Value = by_name.json().await.unwrap();
    let matches = by_name["patients"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{by_name}");
    assert_eq!(matches[0]["name"], NAME);
    assert_eq!(matches[0]["mrn"], MRN);
    assert_eq!(matches[0]["pages"], 2);
    let none = app
        .post_json(
            &app.clinician,
            "/api/v1/patients/search",
            &json!({ "name": "philippa brackwater" }),
        )
        .await;
    let none: serde_json::Value = none.json().await.unwrap();
    assert_eq!(none["patients"], json!([]));
    let refused = app
        .post_json(
            &app.auditor,
            "/api/v1/patients/search",
            &json!({ "name": "quarr" }),
        )
        .await;
    assert_eq!(refused.status(), 403);

    // The database's own view: every PHI column is an envelope.
    let rows = sqlx::query_as::<_, (Vec<u8>, Vec<u8>, Vec<u8>, Option<Vec<u8>>)>(
        "SELECT mrn_index, mrn, name, birth_date FROM patients",
    )
    .fetch_all(&app.sql)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    for (index, mrn, name, birth_date) in rows {
        assert_eq!(index.len(), 32, "the blind index is an HMAC-SHA256");
        for sealed in [Some(mrn), Some(name), birth_date].into_iter().flatten() {
            assert!(
                chartvault_storage::FormatVersion::of_object(&sealed)
                    == Some(chartvault_storage::FormatVersion::CURRENT)
            );
        }
    }

    // Every file under the data dir, the database's WAL included while the server runs.
    let files = files_under(&app.data_dir);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "chartvault.db"), "{names:?}");
    assert!(names.iter().any(|n| n == "chartvault.db-wal"), "{names:?}");
    let mut checked_bytes = 0usize;
    for path in &files {
        let Some(bytes) = read_live(path) else {
            continue;
        };
        checked_bytes += bytes.len();
        for needle in &needles {
            assert!(
                !contains_in_any_encoding(&bytes, needle),
                "{needle:?} is readable in {}",
                path.display()
            );
        }
        let relative = path.strip_prefix(&app.data_dir).unwrap();
        let is_lock = relative.to_string_lossy().ends_with(".lock");
        let under_store = relative.starts_with("blobs") || relative.starts_with("index");
        if under_store && !is_lock && !bytes.is_empty() {
            assert!(
                chartvault_storage::FormatVersion::of_object(&bytes)
                    == Some(chartvault_storage::FormatVersion::CURRENT),
                "{} is not an envelope",
                path.display()
            );
        }
    }
    assert!(checked_bytes > 100_000, "the data dir holds the archive");

    // The key file lives outside the data dir.
    assert!(!names.iter().any(|n| n.ends_with(".key")));

    // The TRACE log of everything this test binary did: requests were logged (the document
    // id appears), PHI was not.
    let log = std::fs::read(trace_log_path()).unwrap();
    assert!(
        contains_ignore_case(&log, &generated),
        "the trace log covers this test's requests"
    );
    assert!(contains_ignore_case(&log, "TRACE"));
    for needle in &needles {
        assert!(
            !contains_in_any_encoding(&log, needle),
            "{needle:?} is in the trace log"
        );
    }
}

/// A value sealed in envelope format version 1 under a long-lived service key (every value
/// before version 2 existed) opens as before, and is sealed again in version 2 by the
/// resumable re-sealing, plaintext unchanged; append-only tables keep their guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_sealed_in_format_version_1_are_resealed_in_version_2() {
    use std::io::Write;
    let app = spawn_app().await;
    let id = app
        .upload(
            text_pdf_of(&[&["Clinic letter", "Marker word wigeon"]]),
            &metadata("RS-1", "Reseal Patient", "letter"),
        )
        .await;
    app.wait_indexed(&id).await;
    let recorded = app
        .post_json(
            &app.records,
            "/api/v1/disclosures",
            &json!({ "mrn": "RS-1", "disclosed_at": "2026-01-05", "recipient_name": "County Court",
                     "description": "clinic letter", "purpose": "subpoena" }),
        )
        .await;
    assert_eq!(recorded.status(), 201);
    let pool = &app.sql;
    let (key_id, key) = app.state.vault.service_key("metadata").await.unwrap();
    let seal_v1 = |aad: String, plaintext: &str| {
        let header = chartvault_storage::ObjectHeader::test_vector_v1(key_id, [7; 7]);
        let mut writer = chartvault_storage::EncryptWriter::with_test_vector_header(
            Vec::new(),
            header,
            &key,
            aad.as_bytes(),
        )
        .unwrap();
        writer.write_all(plaintext.as_bytes()).unwrap();
        writer.finish().unwrap()
    };
    // The patient's name and the disclosure's recipient, as version 1 wrote them.
    let (patient,): (String,) = sqlx::query_as("SELECT id FROM patients")
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE patients SET name = $1 WHERE id = $2")
        .bind(seal_v1(
            format!("chartvault:column:patients.name:{patient}"),
            "Reseal Patient",
        ))
        .bind(&patient)
        .execute(pool)
        .await
        .unwrap();
    let (disclosure,): (String,) = sqlx::query_as("SELECT id FROM disclosures")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("DROP TRIGGER disclosures_no_update")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE disclosures SET recipient_name = $1 WHERE id = $2")
        .bind(seal_v1(
            format!("chartvault:column:disclosures.recipient_name:{disclosure}"),
            "County Court",
        ))
        .bind(&disclosure)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER disclosures_no_update BEFORE UPDATE ON disclosures BEGIN SELECT \
         RAISE(ABORT, 'disclosures are append-only'); END",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let version_of = |sealed: &[u8]| chartvault_storage::FormatVersion::of_object(sealed);
    let (name,): (Vec<u8>,) = sqlx::query_as("SELECT name FROM patients")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        version_of(&name),
        Some(chartvault_storage::FormatVersion::V1)
    );
    // Version 1 still opens.
    let chart: serde_json::Value = app
        .post_json(
            &app.records,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "RS-1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chart["patient"]["name"], "Reseal Patient");

    // Re-sealed in batches of one (resumable), then nothing is left to do.
    let resealed = app.state.db.reseal_v1_values(1).await.unwrap();
    assert_eq!(resealed, 2);
    assert_eq!(app.state.db.reseal_v1_values(1).await.unwrap(), 0);
    let (name,): (Vec<u8>,) = sqlx::query_as("SELECT name FROM patients")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        version_of(&name),
        Some(chartvault_storage::FormatVersion::V2)
    );
    let chart: serde_json::Value = app
        .post_json(
            &app.records,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "RS-1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chart["patient"]["name"], "Reseal Patient");
    let accounting: serde_json::Value = app
        .post_json(
            &app.auditor,
            "/api/v1/disclosures/accounting",
            &json!({ "mrn": "RS-1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        accounting["disclosures"][0]["recipient_name"], "County Court",
        "{accounting}"
    );
    // The disclosures are append-only again.
    let updated = sqlx::query("UPDATE disclosures SET source = 'manual'")
        .execute(pool)
        .await;
    assert!(updated.is_err(), "the no-update trigger is back");
}
