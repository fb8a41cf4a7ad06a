//! The registration system's ADT feed, sent by a real HL7 toolkit (hl7apy, in the tests'
//! Python environment; `tests/hl7/feed.py`) over MLLP: a registered patient's cover sheet
//! files without QA, a name change reaches the name search, a resent message is not applied
//! twice, and malformed, unknown or foreign messages are refused while the listener keeps
//! serving.

use std::path::PathBuf;

use chartvault::store::prelude::*;
use chartvault_ocr::{render_cover_page, CoverSheetFormat, Symbology};
use serde_json::{json, Value};

use crate::helpers::*;

/// The tests' Python with hl7apy (`scripts/test.sh` makes it); `None` outside CI when it is
/// not there.
pub(crate) fn python() -> Option<PathBuf> {
    let path = std::env::var_os("CHARTVAULT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-tests/bin/python")
        });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: scripts/test.sh creates it",
        path.display()
    );
    eprintln!("skipped: no test Python with hl7apy at {}", path.display());
    None
}

/// Runs a test client script of the repository (`tests/...`) with `request` as its standard
/// input; its standard output is the JSON it found (a failure shows its standard error).
pub(crate) fn run_client(python: &PathBuf, script: &str, request: &Value) -> Value {
    let output = output_with_input(
        std::process::Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script)),
        request.to_string().as_bytes(),
    );
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Where the test's MLLP-over-TLS CA lives (set once the certificates are made).
static CA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sends the steps over one MLLP connection (over TLS, trusting the test's CA); the ACKs as
/// hl7apy read them.
fn feed(python: &PathBuf, app: &TestApp, steps: Value) -> Vec<Value> {
    let addr = app.hl7.expect("the HL7 listener is on");
    let output = output_with_input(
        std::process::Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hl7/feed.py"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(CA.get().expect("the CA is made first")),
        steps.to_string().as_bytes(),
    );
    assert!(
        output.status.success(),
        "feed.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A batch of one page behind a cover sheet for `mrn`, uploaded and filed without QA: the
/// document it became, once indexed.
async fn filed_behind_cover(
    app: &TestApp,
    (mrn, issuer): (&str, Option<&str>),
    symbology: Symbology,
    marker: &str,
    seed: u64,
) -> Value {
    let cover = CoverSheetFormat::default().encode_issued(mrn, issuer, "progress-note", None, None);
    let pages = vec![
        render_cover_page(symbology, &cover),
        scanned_page(
            &["Progress note", &format!("Marker word: {marker}")],
            0.0,
            seed,
        ),
    ];
    let (status, accepted) =
        json_of(app.upload_batch_as(&app.records, g4_tiff_of(&pages)).await).await;
    assert_eq!(status, 202, "{accepted}");
    let batch = app.wait_split(accepted["id"].as_str().unwrap()).await;
    let segment = &batch["segments"][0];
    assert_eq!(segment["status"], "filed", "{batch}");
    app.wait_indexed(segment["document_id"].as_str().unwrap())
        .await
}

fn adt(event: &str, control_id: &str, mrn: &str, family: &str) -> Value {
    json!({
        "kind": "adt", "event": event, "control_id": control_id, "facility": "NORTH",
        "mrn": mrn, "issuer": "HOSP", "family": family, "given": "JANE", "birth": "19800214",
    })
}

async fn lookup(app: &TestApp, mrn: &str) -> (u16, Value) {
    lookup_issued(app, mrn, None).await
}

async fn lookup_issued(app: &TestApp, mrn: &str, issuer: Option<&str>) -> (u16, Value) {
    json_of(
        app.post_json(
            &app.records,
            "/api/v1/patients/lookup",
            &json!({ "mrn": mrn, "issuer": issuer }),
        )
        .await,
    )
    .await
}

async fn names_found(app: &TestApp, name: &str) -> usize {
    let (_, found) = json_of(
        app.post_json(
            &app.records,
            "/api/v1/patients/search",
            &json!({ "name": name }),
        )
        .await,
    )
    .await;
    found["patients"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adt_messages_register_and_update_patients_once_and_bad_ones_are_refused() {
    let Some(python) = python() else { return };
    // MLLP over TLS, with a certificate of the test's own CA.
    let certificates = tempfile::tempdir().unwrap();
    let (ca, cert, key) =
        crate::operations::make_certificates(certificates.path(), "interface-engine");
    CA.set(ca).unwrap();
    let app = spawn_app_with(|config| {
        config.hl7.tls_cert_file = Some(cert.clone());
        config.hl7.tls_key_file = Some(key.clone());
        config.hl7.listen = Some("127.0.0.1:0".parse().unwrap());
        config.hl7.allowed_facilities = vec!["NORTH".into()];
        config.patients.default_issuer = Some("HOSP".into());
        config.patients.issuers = vec![chartvault::config::IssuerConfig {
            name: "SOUTHCLINIC".into(),
            fhir_system: None,
            dicom_issuer: None,
        }];
    })
    .await;

    // A plain MLLP connection to the TLS listener gets no answer.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut plain = tokio::net::TcpStream::connect(app.hl7.unwrap())
            .await
            .unwrap();
        plain
            .write_all(b"\x0bMSH|^~\\&|REG|NORTH|||20261207||ADT^A04|P-1|P|2.5\r\x1c\x0d")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            plain.read_to_end(&mut answer),
        )
        .await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("MSA|"),
            "no ACK over plain TCP: {read:?}"
        );
    }

    // A04 registers a patient the archive has never seen.
    let acks = feed(&python, &app, json!([adt("A04", "REG-1", "H-2001", "DOE")]));
    assert_eq!(acks[0]["code"], "AA", "{acks:?}");
    assert_eq!(acks[0]["control_id"], "REG-1");
    assert_eq!(acks[0]["type"], "ACK^A04^ACK");
    let (status, patient) = lookup(&app, "H-2001").await;
    assert_eq!(status, 200, "{patient}");
    assert_eq!(patient["patient"]["name"], "JANE DOE", "{patient}");
    assert_eq!(patient["patient"]["birth_date"], "1980-02-14");

    // Their cover sheet files the batch without QA: the patient is known.
    filed_behind_cover(&app, ("H-2001", None), Symbology::DataMatrix, "avocet", 81).await;
    assert_eq!(names_found(&app, "doe").await, 1);

    // A visit: recorded as an encounter of the patient, which documents are filed against
    // (its admission date is their service date unless given). Another patient's document
    // naming it waits for QA.
    let mut admit = adt("A01", "ADM-1", "H-2001", "DOE");
    admit["visit"] = json!("V-5001");
    admit["admitted"] = json!("202612010830");
    admit["class"] = json!("I");
    let acks = feed(&python, &app, json!([admit]));
    assert_eq!(acks[0]["code"], "AA", "{acks:?}");
    let (_, chart) = lookup(&app, "H-2001").await;
    assert_eq!(
        chart["encounters"],
        json!([{
            "visit_number": "V-5001", "patient_class": "I",
            "admitted_at": "2026-12-01T08:30:00", "discharged_at": null,
        }]),
        "{chart}"
    );
    let mut note = metadata("H-2001", "JANE DOE", "progress-note");
    note["patient"]["birth_date"] = json!("1980-02-14");
    note["encounter"] = json!("V-5001");
    note.as_object_mut().unwrap().remove("service_date");
    let filed = app
        .upload(
            png_of(&scanned_page(
                &["Ward note", "Marker word: whimbrel"],
                0.0,
                86,
            )),
            &note,
        )
        .await;
    let filed = app.wait_indexed(&filed).await;
    assert_eq!(filed["service_date"], "2026-12-01", "{filed}");
    assert_eq!(filed["encounter"], "V-5001");
    let mut stray = metadata("H-7777", "RAY STRAY", "progress-note");
    stray["encounter"] = json!("V-5001");
    let stray = app
        .upload(
            png_of(&scanned_page(&["Ward note", "Marker word: stint"], 0.0, 87)),
            &stray,
        )
        .await;
    let stray = app.wait_status(&stray, "qa").await;
    assert_eq!(
        stray["qa_reason"],
        "the encounter given at upload is a visit of another patient"
    );

    // A08 changes the name: the name search follows.
    let acks = feed(
        &python,
        &app,
        json!([adt("A08", "UPD-1", "H-2001", "SMITH")]),
    );
    assert_eq!(acks[0]["code"], "AA", "{acks:?}");
    assert_eq!(
        lookup(&app, "H-2001").await.1["patient"]["name"],
        "JANE SMITH"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while names_found(&app, "smith").await != 1 || names_found(&app, "doe").await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the name index did not follow"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // The same message again (a resend after a lost ACK): acknowledged, not applied twice.
    let acks = feed(
        &python,
        &app,
        json!([adt("A08", "UPD-1", "H-2001", "JONES")]),
    );
    assert_eq!(acks[0]["code"], "AA");
    assert_eq!(
        lookup(&app, "H-2001").await.1["patient"]["name"],
        "JANE SMITH"
    );
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let updates = rows
        .iter()
        .filter(|r| {
            r.action == "patient-update" && r.detail.as_deref().is_some_and(|d| d.contains("UPD-1"))
        })
        .count();
    assert_eq!(updates, 1, "applied and audited once");
    assert!(
        !rows
            .iter()
            .any(|r| r.detail.as_deref().is_some_and(|d| d.contains("SMITH"))),
        "the audit names messages, not their content"
    );

    // Refused, each with its reason, on one connection that keeps serving.
    let acks = feed(
        &python,
        &app,
        json!([
            { "kind": "raw", "text": "this is not an HL7 message" },
            { "kind": "oru", "control_id": "LAB-1", "facility": "NORTH" },
            {
                "kind": "adt", "event": "A04", "control_id": "S-1", "facility": "SOUTH",
                "mrn": "H-2002", "issuer": "HOSP", "family": "ROE", "given": "RAY",
                "birth": "19700101",
            },
            {
                "kind": "adt", "event": "A04", "control_id": "F-1", "facility": "NORTH",
                "mrn": "X-9", "issuer": "OTHER", "family": "ROE", "given": "RAY",
                "birth": "19700101",
            },
            adt("A04", "REG-2", "H-2002", "ROE"),
        ]),
    );
    let codes: Vec<&str> = acks.iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["AR", "AR", "AR", "AE", "AA"], "{acks:?}");
    assert!(acks[1]["text"].as_str().unwrap().contains("not handled"));
    assert!(acks[2]["text"].as_str().unwrap().contains("not allowed"));
    assert!(acks[3]["text"]
        .as_str()
        .unwrap()
        .contains("assigning authority"));
    assert_eq!(lookup(&app, "H-2002").await.0, 200);
    assert_eq!(lookup(&app, "X-9").await.0, 404);
    // The answers are counted for the metrics: AA for REG-1, ADM-1, UPD-1 (twice), REG-2.
    for (ack, count) in [("AA", 5.0), ("AE", 1.0), ("AR", 3.0)] {
        let family = format!("chartvault_hl7_messages_total{{ack=\"{ack}\"}}");
        assert_eq!(metric(&app, &family).await, count, "{family}");
    }

    // A40: the registration system merges H-2003 (a chart of its own here) into H-2001.
    let acks = feed(&python, &app, json!([adt("A04", "REG-3", "H-2003", "ROE")]));
    assert_eq!(acks[0]["code"], "AA");
    let mut letter = metadata("H-2003", "JANE ROE", "letter");
    letter["patient"]["birth_date"] = json!("1980-02-14");
    let prior_doc = app
        .upload(
            png_of(&scanned_page(
                &["Clinic letter", "Marker word: curlew"],
                0.0,
                82,
            )),
            &letter,
        )
        .await;
    app.wait_indexed(&prior_doc).await;
    let survivor = lookup(&app, "H-2001").await.1["patient"]["id"].clone();
    let prior = lookup(&app, "H-2003").await.1["patient"]["id"].clone();
    assert_ne!(survivor, prior);
    let acks = feed(
        &python,
        &app,
        json!([{
            "kind": "merge", "control_id": "MRG-1", "facility": "NORTH", "mrn": "H-2001",
            "prior_mrn": "H-2003", "issuer": "HOSP", "family": "SMITH", "given": "JANE",
        }]),
    );
    assert_eq!(acks[0]["code"], "AA", "{acks:?}");
    // The document is the survivor's; a search scoped to the survivor finds its pages; the
    // prior MRN finds the survivor's chart.
    let (_, doc) = json_of(
        app.get(&app.records, &format!("/api/v1/documents/{prior_doc}"))
            .await,
    )
    .await;
    assert_eq!(doc["patient_id"], survivor);
    let found = app
        .search(&app.records, json!({ "query": "curlew", "mrn": "H-2001" }))
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let (_, chart) = lookup(&app, "H-2003").await;
    assert_eq!(
        chart["patient"]["id"], survivor,
        "the prior MRN is an alias"
    );
    // The audit names both.
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let merge = rows
        .iter()
        .find(|r| r.action == "patient-merge")
        .expect("the merge is audited");
    assert_eq!(merge.patient_id.as_deref(), survivor.as_str());
    assert!(merge
        .detail
        .as_deref()
        .unwrap()
        .contains(prior.as_str().unwrap()));
    // An old cover sheet with the prior MRN files under the survivor.
    let filed = filed_behind_cover(&app, ("H-2003", None), Symbology::Code128, "dunlin", 83).await;
    assert_eq!(filed["patient_id"], survivor);

    // MRNs are unique per issuer: the hospital's 00123 and the south clinic's 00123 are two
    // patients, told apart by PID-3.4, the API's `issuer` and the cover code's `ISS=`.
    let acks = feed(
        &python,
        &app,
        json!([
            adt("A04", "ISS-1", "00123", "HOSPITALSON"),
            {
                "kind": "adt", "event": "A04", "control_id": "ISS-2", "facility": "NORTH",
                "mrn": "00123", "issuer": "SOUTHCLINIC", "family": "CLINICSON", "given": "SAM",
                "birth": "19900101",
            },
        ]),
    );
    assert_eq!(
        (acks[0]["code"].as_str(), acks[1]["code"].as_str()),
        (Some("AA"), Some("AA")),
        "{acks:?}"
    );
    let (_, ours) = lookup(&app, "00123").await;
    let (_, theirs) = lookup_issued(&app, "00123", Some("southclinic")).await;
    assert_ne!(ours["patient"]["id"], theirs["patient"]["id"]);
    assert_eq!(ours["patient"]["name"], "JANE HOSPITALSON");
    assert!(ours["patient"].get("issuer").is_none(), "{ours}");
    assert_eq!(theirs["patient"]["name"], "SAM CLINICSON");
    assert_eq!(theirs["patient"]["issuer"], "SOUTHCLINIC");
    assert_eq!(
        lookup_issued(&app, "00123", Some("HOSP")).await.1["patient"]["id"],
        ours["patient"]["id"]
    );
    let (status, refused) = lookup_issued(&app, "00123", Some("ELSEWHERE")).await;
    assert_eq!(status, 400, "{refused}");
    // A cover code with ISS= files under the clinic's patient; an upload naming the issuer too.
    let filed = filed_behind_cover(
        &app,
        ("00123", Some("SOUTHCLINIC")),
        Symbology::DataMatrix,
        "plover",
        84,
    )
    .await;
    assert_eq!(filed["patient_id"], theirs["patient"]["id"]);
    let mut letter = metadata("00123", "SAM CLINICSON", "letter");
    letter["patient"]["issuer"] = json!("SOUTHCLINIC");
    letter["patient"]["birth_date"] = json!("1990-01-01");
    let uploaded = app
        .upload(
            png_of(&scanned_page(
                &["Clinic letter", "Marker word: godwit"],
                0.0,
                85,
            )),
            &letter,
        )
        .await;
    let uploaded = app.wait_indexed(&uploaded).await;
    assert_eq!(uploaded["patient_id"], theirs["patient"]["id"]);
    // A search scoped to the clinic's 00123 finds its pages, not the hospital's.
    let found = app
        .search(
            &app.records,
            json!({ "query": "godwit", "mrn": "00123", "issuer": "SOUTHCLINIC" }),
        )
        .await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(
        found["hits"][0]["patient"]["issuer"], "SOUTHCLINIC",
        "{found}"
    );
    let found = app
        .search(&app.records, json!({ "query": "godwit", "mrn": "00123" }))
        .await;
    assert_eq!(found["total"], 0, "{found}");
}

/// The test's receiving system (`tests/hl7/receiver.py`): what it printed, line by line.
struct Receiver {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
    port: u16,
}

impl Receiver {
    /// Starts it on `port` (0: a free one), over TLS with `(certificate, key)`.
    fn start(python: &PathBuf, port: u16, tls: &(PathBuf, PathBuf)) -> Receiver {
        use std::io::BufRead;
        let mut child = std::process::Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hl7/receiver.py"))
            .arg("127.0.0.1")
            .arg(port.to_string())
            .arg(&tls.0)
            .arg(&tls.1)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut receiver = Receiver {
            child,
            lines,
            port: 0,
        };
        let listening = receiver.next();
        receiver.port = listening["listening"].as_u64().unwrap() as u16;
        receiver
    }

    /// The next line it printed (waiting up to a minute).
    fn next(&mut self) -> Value {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the receiver printed nothing in time")
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ehr_is_told_of_each_document_in_order_even_after_its_receiver_was_down() {
    let Some(python) = python() else { return };
    // MLLP over TLS, the receiver's certificate from the test's own CA.
    let certificates = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::operations::make_certificates(certificates.path(), "ehr");
    let tls = (cert, key);
    let mut receiver = Receiver::start(&python, 0, &tls);
    let port = receiver.port;
    let app = spawn_app_with(|config| {
        config.patients.default_issuer = Some("HOSP".into());
        config.hl7.mdm.endpoint = Some(format!("127.0.0.1:{port}"));
        config.hl7.mdm.tls_ca_file = Some(ca.clone());
        config.hl7.mdm.retry_max_secs = 1;
        config.hl7.mdm.ack_timeout_secs = 5;
        config.server.public_url = Some("https://archive.example".into());
    })
    .await;
    let page = |marker: &str, seed| {
        png_of(&scanned_page(
            &["Clinic letter", &format!("Marker word: {marker}")],
            0.0,
            seed,
        ))
    };

    // Indexed: T02, naming the patient under the archive's authority and pointing at the
    // document (never its text).
    let first = app
        .upload(
            page("sandpiper", 91),
            &metadata("M-1", "ADA KING", "letter"),
        )
        .await;
    app.wait_indexed(&first).await;
    let seen = receiver.next();
    assert_eq!(seen["type"], "MDM^T02", "{seen}");
    assert_eq!(seen["structure"], "MDM_T02");
    assert_eq!(
        (seen["mrn"].as_str(), seen["issuer"].as_str()),
        (Some("M-1"), Some("HOSP"))
    );
    assert_eq!(seen["document"], first.as_str());
    assert_eq!(seen["availability"], "AV");
    assert_eq!(
        seen["url"],
        format!("https://archive.example/fhir/DocumentReference/{first}")
    );
    assert!(!seen["text"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("sandpiper"));

    // Corrected: the old version is taken back (T11, obsolete, naming its replacement),
    // then the new one replaces it (T10, naming the old).
    let corrected: Value = app
        .post_json(
            &app.records,
            &format!("/api/v1/documents/{first}/corrections"),
            &json!({ "document_type": "clinic-letter", "reason": "wrong type" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let second = corrected["id"].as_str().unwrap().to_string();
    app.wait_indexed(&second).await;
    let seen = receiver.next();
    assert_eq!(seen["type"], "MDM^T11", "{seen}");
    assert_eq!(seen["document"], first.as_str());
    assert_eq!(seen["related"], second.as_str());
    assert_eq!(seen["availability"], "OB");
    let seen = receiver.next();
    assert_eq!(seen["type"], "MDM^T10", "{seen}");
    assert_eq!(seen["document"], second.as_str());
    assert_eq!(seen["related"], first.as_str());

    // The receiver is down while two documents are indexed: they wait, counted.
    receiver.stop();
    let third = app
        .upload(
            page("turnstone", 92),
            &metadata("M-2", "ALAN TURING", "letter"),
        )
        .await;
    app.wait_indexed(&third).await;
    let fourth = app
        .upload(page("knot", 93), &metadata("M-1", "ADA KING", "letter"))
        .await;
    app.wait_indexed(&fourth).await;
    assert_eq!(metric(&app, "chartvault_mdm_backlog").await, 2.0);
    // Up again on its address: both arrive, in the order they were indexed, each once.
    let mut receiver = Receiver::start(&python, port, &tls);
    let seen: Vec<Value> = (0..2).map(|_| receiver.next()).collect();
    let documents: Vec<&str> = seen
        .iter()
        .map(|s| s["document"].as_str().unwrap())
        .collect();
    assert_eq!(documents, [third.as_str(), fourth.as_str()], "{seen:?}");
    assert!(seen.iter().all(|s| s["type"] == "MDM^T02"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while metric(&app, "chartvault_mdm_backlog").await != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog did not drain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(&app, "chartvault_mdm_messages_total{ack=\"AA\"}").await,
        5.0
    );
    assert!(
        receiver
            .lines
            .recv_timeout(std::time::Duration::from_secs(2))
            .is_err(),
        "nothing is sent twice"
    );
}
