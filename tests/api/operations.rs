//! Running the service: metrics read by Prometheus's own parser, client addresses and request
//! ids believed only from trusted proxies, TLS served with a certificate from the test's own
//! CA (curl and the CLI), JSON logs, and the list of failed documents.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chartvault::store::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;

/// The metrics text parsed by `prometheus_client`'s OpenMetrics parser (Python), as
/// `{family: {"type": ..., "samples": [[name, labels, value], ...]}}`.
fn parse_with_prometheus_client(text: &str) -> Value {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps(out))
"#;
    // Debian's interpreter, where setup.sh installs python3-prometheus-client (a `python3`
    // earlier on the PATH may be another installation).
    let output = output_with_input(
        std::process::Command::new("/usr/bin/python3").args(["-c", script]),
        text.as_bytes(),
    );
    assert!(
        output.status.success(),
        "prometheus_client could not parse the metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of the sample `name` with exactly these labels.
fn sample(families: &Value, family: &str, name: &str, labels: Value) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family} in {families}"));
    samples
        .iter()
        .find(|s| s[0] == name && s[1] == labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels} in {family}: {samples:?}"))[2]
        .as_f64()
        .unwrap()
}

async fn scrape(http: &reqwest::Client, url: &str) -> (u16, Option<String>, String) {
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_in_prometheus_and_proxies_are_believed_only_when_trusted() {
    // 127.0.0.2 plays the reverse proxy; the tests' ordinary client (127.0.0.1) is not one.
    let proxy_addr: IpAddr = [127, 0, 0, 2].into();
    let app = spawn_app_with(|config| {
        config.server.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
    })
    .await;
    let page = scanned_page(
        &["Discharge summary", "plover sandpiper turnstone"],
        0.0,
        71,
    );
    let id = app
        .upload(png_of(&page), &metadata("MX-71", "Mona Metric", "letter"))
        .await;
    app.wait_indexed(&id).await;
    let found = app
        .search(&app.records, json!({ "query": "sandpiper" }))
        .await;
    assert_eq!(found["total"], 1, "{found}");

    // Scraped from loopback: the families a Prometheus server reads, with this service's
    // figures (one page recognised, one search, one document done).
    let (status, content_type, text) = scrape(&app.http, &app.url("/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{content_type:?}"
    );
    let families = parse_with_prometheus_client(&text);
    for (family, kind) in [
        ("chartvault_pages_recognised", "counter"),
        ("chartvault_ocr_page_seconds", "histogram"),
        ("chartvault_cleanup_page_seconds", "histogram"),
        ("chartvault_search_seconds", "histogram"),
        ("chartvault_audit_append_seconds", "histogram"),
        ("chartvault_jobs", "gauge"),
        ("chartvault_oldest_pending_job_age_seconds", "gauge"),
        ("chartvault_index_documents", "gauge"),
        ("chartvault_index_segments", "gauge"),
        ("chartvault_kek_version_keys", "gauge"),
        ("chartvault_document_failures", "counter"),
    ] {
        assert_eq!(families[family]["type"], kind, "{family} in {families}");
    }
    let none = json!({});
    assert_eq!(
        sample(
            &families,
            "chartvault_pages_recognised",
            "chartvault_pages_recognised_total",
            none.clone()
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "chartvault_ocr_page_seconds",
            "chartvault_ocr_page_seconds_count",
            none.clone()
        ),
        1.0
    );
    assert!(
        sample(
            &families,
            "chartvault_ocr_page_seconds",
            "chartvault_ocr_page_seconds_sum",
            none.clone()
        ) > 0.0
    );
    assert_eq!(
        sample(
            &families,
            "chartvault_search_seconds",
            "chartvault_search_seconds_count",
            none.clone()
        ),
        1.0
    );
    assert!(
        sample(
            &families,
            "chartvault_audit_append_seconds",
            "chartvault_audit_append_seconds_count",
            none.clone()
        ) >= 3.0,
        "user creation, the upload and the search were audited"
    );
    assert_eq!(
        sample(
            &families,
            "chartvault_jobs",
            "chartvault_jobs",
            json!({ "state": "done" })
        ),
        1.0
    );
    assert_eq!(
        sample(
            &families,
            "chartvault_jobs",
            "chartvault_jobs",
            json!({ "state": "pending" })
        ),
        0.0
    );
    assert_eq!(
        sample(
            &families,
            "chartvault_index_documents",
            "chartvault_index_documents",
            none.clone()
        ),
        1.0
    );
    assert!(
        sample(
            &families,
            "chartvault_kek_version_keys",
            "chartvault_kek_version_keys",
            json!({ "version": "1" })
        ) > 0.0
    );
    assert_eq!(
        sample(
            &families,
            "chartvault_document_failures",
            "chartvault_document_failures_total",
            json!({ "reason": "page-timeout" })
        ),
        0.0
    );
    // Nothing about the patient or the page in the metrics.
    for secret in ["MX-71", "Mona", "sandpiper", "plover"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // Through the trusted proxy: the forwarded client and request id reach the audit entry.
    let through_proxy = reqwest::Client::builder()
        .local_address(proxy_addr)
        .build()
        .unwrap();
    let read = |client: &reqwest::Client, request_id: &str| {
        client
            .get(app.url(&format!("/api/v1/documents/{id}")))
            .bearer_auth(&app.records)
            .header("x-forwarded-for", "198.51.100.9, 203.0.113.7")
            .header("x-request-id", request_id)
            .send()
    };
    let response = read(&through_proxy, "edge-42.a_b").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "edge-42.a_b");
    let response = read(&app.http, "forged-by-client").await.unwrap();
    assert_eq!(response.status(), 200);
    let own_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(
        own_id, "forged-by-client",
        "an untrusted peer's request id is not kept"
    );
    let rows = app.state.db.audit_rows(0).await.unwrap();
    let by_request = |request_id: &str| {
        rows.iter()
            .find(|r| r.request_id.as_deref() == Some(request_id))
            .unwrap_or_else(|| panic!("no audit entry with request id {request_id}"))
    };
    assert_eq!(
        by_request("edge-42.a_b").client_addr.as_deref(),
        Some("203.0.113.7"),
        "the trusted proxy's view of the client"
    );
    assert_eq!(
        by_request(&own_id).client_addr.as_deref(),
        Some("127.0.0.1"),
        "an untrusted peer's X-Forwarded-For is ignored"
    );

    // The metrics allow-list judges the real client: a forwarded outside address is refused,
    // the same header from an untrusted peer is ignored.
    let forwarded = |client: &reqwest::Client| {
        client
            .get(app.url("/metrics"))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
    };
    let (status, body) = json_of(forwarded(&through_proxy).await.unwrap()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("metrics.allow"));
    assert_eq!(forwarded(&app.http).await.unwrap().status(), 200);
}

/// A certificate authority and a server certificate for `localhost` and 127.0.0.1, as PEM
/// files in `dir`: (ca.pem, server.pem, server.key).
pub(crate) fn make_certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut server =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.use_authority_key_identifier_extension = true;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-server.pem")),
        dir.join(format!("{name}-server.key")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

fn cli(server: &ChildServer) -> std::process::Command {
    let mut command = ChildServer::command(&server.data_dir);
    command.env("CHARTVAULT_URL", &server.base);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_json_logs_failed_documents_are_listed_for_records() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(dir.path(), "hospital");
    let log = dir.path().join("server.log");
    // Every page runs over a 1 ms limit: each upload fails, with its reason.
    let server = ChildServer::start_logging(
        &[
            ("CHARTVAULT__SERVER__TLS_CERT_FILE", cert.to_str().unwrap()),
            ("CHARTVAULT__SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
            ("CHARTVAULT__SERVER__LOG_FORMAT", "json"),
            ("CHARTVAULT__OCR__PAGE_TIMEOUT_MS", "1"),
            (
                "CHARTVAULT__SERVER__PUBLIC_URL",
                "https://archive.hospital.example",
            ),
            ("RUST_LOG", "info"),
        ],
        &log,
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let records = server.user("rec", "records");
    let clinician = server.user("doc", "clinician");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();

    // An upload over TLS; responses tell browsers to keep to TLS.
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(
                metadata("TLS-77", "Tomas Quillfeather", "letter").to_string(),
            ),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(png_of(&scanned_page(&["Too slow"], 0.0, 77))),
        );
    let response = http
        .post(server.url("/api/v1/documents"))
        .bearer_auth(&records)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(response.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        location,
        format!("https://archive.hospital.example/api/v1/documents/{id}"),
        "links are built on server.public_url"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let doc: Value = http
            .get(server.url(&format!("/api/v1/documents/{id}")))
            .bearer_auth(&records)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if doc["status"] == "failed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{doc}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The failed list: records see the document and why; a clinician may not list; bad
    // parameters are named.
    let list = |token: &str, query: &str| {
        http.get(server.url(&format!("/api/v1/documents?{query}")))
            .bearer_auth(token)
            .send()
    };
    let (status, failed) = json_of(list(&records, "status=failed").await.unwrap()).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["total"], 1);
    let listed = &failed["documents"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["mrn"], "TLS-77");
    assert!(
        listed["failure_reason"]
            .as_str()
            .unwrap()
            .contains("ocr.page_timeout_ms"),
        "{listed}"
    );
    let (_, paged) = json_of(
        list(&records, "status=failed&limit=5&offset=1")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (
            paged["total"].as_u64(),
            paged["documents"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        list(&clinician, "status=failed").await.unwrap().status(),
        403
    );
    for bad in [
        "status=indexed",
        "status=failed&limit=0",
        "status=failed&colour=red",
        "",
    ] {
        let (status, body) = json_of(list(&records, bad).await.unwrap()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }

    // The failure is counted by its class.
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families = parse_with_prometheus_client(&metrics);
    assert_eq!(
        sample(
            &families,
            "chartvault_document_failures",
            "chartvault_document_failures_total",
            json!({ "reason": "page-timeout" })
        ),
        1.0
    );

    // curl with the CA succeeds; without it, it refuses the unknown issuer.
    let curl = |with_ca: bool| {
        let mut command = std::process::Command::new("curl");
        command.args(["--silent", "--show-error", "--fail"]);
        if with_ca {
            command.arg("--cacert").arg(&ca);
        }
        command
            .arg(server.url("/healthz"))
            .output()
            .expect("curl runs")
    };
    let trusted = curl(true);
    assert!(trusted.status.success(), "{trusted:?}");
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("ok"));
    assert!(
        !curl(false).status.success(),
        "an unknown issuer is refused"
    );
    // Plain HTTP to the TLS port gets no answer.
    let plain = server.base.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());

    // The command line client over TLS: with the CA file it searches; without, it fails.
    let search = |ca_file: Option<&Path>| {
        let mut command = cli(&server);
        command.env("CHARTVAULT_TOKEN", &records).arg("search");
        if let Some(ca_file) = ca_file {
            command.arg("--ca-file").arg(ca_file);
        }
        output_with_input(&mut command, b"slow")
    };
    let searched = search(Some(&ca));
    assert!(searched.status.success(), "{searched:?}");
    assert!(String::from_utf8_lossy(&searched.stdout).contains("0 pages match"));
    assert!(!search(None).status.success());

    // The log: one JSON object per line, requests by route pattern, never the patient.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "request"
            && l["route"] == "/api/v1/documents/{id}"
            && l["status"] == 200
            && l["request_id"].is_string()
            && l["level"] == "INFO"),
        "{text}"
    );
    for secret in [
        "TLS-77",
        "Tomas",
        "Quillfeather",
        "Too slow",
        "status=failed",
    ] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
}
