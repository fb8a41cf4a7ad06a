//! Crash safety: the server runs as a child process and is killed with SIGKILL while pages
//! are being OCRed. After a restart, every document that got 202 ends `indexed` and each of
//! its pages is found by search exactly once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

const MARKERS: [&str; 6] = [
    "pelican",
    "marigold",
    "juniper",
    "saffron",
    "tangerine",
    "obsidian",
];

fn chartvault(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chartvault"));
    command
        .env("CHARTVAULT__KEYS__KEK_FILE", data_dir.with_extension("key"))
        .env("CHARTVAULT__INDEX__COMMIT_INTERVAL_MS", "200")
        .env("RUST_LOG", "warn");
    command
}

/// Starts `serve` on port 0 and returns the child and its base URL (the caller kills and
/// waits for it).
#[allow(clippy::zombie_processes)]
fn start_server(data_dir: &Path) -> (Child, String) {
    let mut child = chartvault(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines
            .next()
            .expect("the server prints its address")
            .unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, addr.trim().to_string());
        }
        assert!(Instant::now() < deadline);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_acknowledged_before_a_sigkill_are_all_indexed_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (mut child, base) = start_server(&data_dir);
    let output = chartvault(&data_dir)
        .args(["user", "add", "clerk", "--role", "records", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(token.lines().count(), 1, "user add prints only the token");

    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for (doc, markers) in MARKERS.chunks(3).enumerate() {
        let pages: Vec<_> = markers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                scanned_page(
                    &[
                        &format!("Progress note page {}", i + 1),
                        &format!("Marker word {m} appears here"),
                    ],
                    0.5,
                    (doc * 3 + i) as u64,
                )
            })
            .collect();
        let form = reqwest::multipart::Form::new()
            .part(
                "metadata",
                reqwest::multipart::Part::text(
                    metadata("00777", "Kill Test", "progress-note").to_string(),
                ),
            )
            .part("file", reqwest::multipart::Part::bytes(tiff_of(&pages)));
        let response = http
            .post(format!("{base}/api/v1/documents"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }

    // Kill while OCR is under way: once the first page is stored, before all are.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let doc: serde_json::Value = http
            .get(format!("{base}/api/v1/documents/{}", ids[0]))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !doc["pages"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "OCR never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let (mut child, base) = start_server(&data_dir);
    for id in &ids {
        wait_indexed(&http, &base, &token, id).await;
    }
    for marker in MARKERS {
        let result: serde_json::Value = http
            .post(format!("{base}/api/v1/search"))
            .bearer_auth(&token)
            .json(&json!({ "query": marker }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(result["total"], 1, "{marker}: {result}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
