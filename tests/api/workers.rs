//! OCR workers as processes: an API node on PostgreSQL that runs no engines
//! (`ocr.engines_in_serve = false`), and `chartvault worker` processes (the real binary) that
//! claim the documents' jobs from the shared queue, recognise and store their pages, and
//! hand each to the API node, which holds the index writer and indexes it. A worker killed
//! (`kill -9`) in the middle of a document loses nothing: its job's lease runs out and
//! another worker finishes it; every page is indexed once and nothing PHI reaches a
//! worker's log.

use std::time::{Duration, Instant};

use chartvault_storage::testsuite::postgres;
use serde_json::json;

use crate::helpers::*;

/// A document a worker is in the middle of: its job claimed to be recognised, a page of it
/// stored and more to come. Its id.
async fn document_in_the_middle(queue: &sqlx::PgPool, deadline: Duration) -> String {
    let until = Instant::now() + deadline;
    loop {
        let running: Option<String> = sqlx::query_scalar(
            "SELECT j.document_id FROM jobs j
             WHERE j.state = 'running' AND j.stage = 'recognise'
               AND (SELECT COUNT(*) FROM pages p WHERE p.document_id = j.document_id)
                   BETWEEN 1 AND 2",
        )
        .fetch_optional(queue)
        .await
        .unwrap();
        if let Some(document) = running {
            return document;
        }
        assert!(
            Instant::now() < until,
            "no worker got into a document in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_recognise_the_api_node_indexes_and_a_killed_worker_loses_nothing() {
    let Some(cluster) = postgres::shared() else {
        return;
    };
    let database = cluster.new_database();
    let app = spawn_app_with(|c| {
        c.database.url = Some(database.clone());
        c.ocr.engines_in_serve = false;
        c.ocr.lease_seconds = 3;
    })
    .await;
    let queue = sqlx::PgPool::connect(&database).await.unwrap();
    let logs = tempfile::tempdir().unwrap();

    // Three three-page documents, each with a word of its own on page 3 and a dense letter
    // on page 2 (seconds to recognise).
    let words = ["quokkamab", "dugongavir", "bilbyzumab"];
    let mut ids = Vec::new();
    for (n, word) in words.iter().enumerate() {
        let seed = 80 + 3 * n as u64;
        let pages = [
            scanned_page(
                &["Outpatient letter", "Seen in the wallaroo clinic"],
                0.0,
                seed,
            ),
            letter_page(seed + 1),
            scanned_page(
                &["Plan", &format!("Continue {word} 40 mg daily")],
                0.0,
                seed + 2,
            ),
        ];
        let mrn = format!("WK-{}", 4410 + n);
        let id = app
            .upload(
                tiff_of(&pages),
                &metadata(&mrn, "Wilhelmina Workerson", "clinic-letter"),
            )
            .await;
        ids.push(id);
    }
    // The API node recognises nothing itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in &ids {
        let (_, doc) = json_of(
            app.get(&app.records, &format!("/api/v1/documents/{id}"))
                .await,
        )
        .await;
        assert_eq!(doc["status"], "accepted", "{doc}");
    }

    // The first worker claims a document; killed in the middle of it, its claim is left.
    let mut first = WorkerProcess::start(&app, &database, 1, &logs.path().join("first.log"));
    let interrupted = document_in_the_middle(&queue, Duration::from_secs(120)).await;
    first.kill();
    let (state, stage): (String, String) =
        sqlx::query_as("SELECT state, stage FROM jobs WHERE document_id = $1")
            .bind(&interrupted)
            .fetch_one(&queue)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), stage.as_str()),
        ("running", "recognise"),
        "the killed worker's claim outlives it"
    );

    // Two more workers: the interrupted job comes back once its lease runs out.
    let second = WorkerProcess::start(&app, &database, 1, &logs.path().join("second.log"));
    let third = WorkerProcess::start(&app, &database, 1, &logs.path().join("third.log"));
    for id in &ids {
        app.wait_indexed(id).await;
    }

    // Every page indexed once, on its page, found through the API node.
    for (word, id) in words.iter().zip(&ids) {
        let hits = app.search(&app.clinician, json!({ "query": word })).await;
        assert_eq!(hits["total"], 1, "{word}: {hits}");
        assert_eq!(hits["hits"][0]["document_id"], id.as_str(), "{hits}");
        assert_eq!(hits["hits"][0]["page"], 3, "{hits}");
    }
    let hits = app
        .search(&app.clinician, json!({ "query": "wallaroo" }))
        .await;
    assert_eq!(hits["total"], 3, "one page 1 per document: {hits}");
    let jobs: Vec<(String, String, String)> =
        sqlx::query_as("SELECT document_id, state, stage FROM jobs ORDER BY id")
            .fetch_all(&queue)
            .await
            .unwrap();
    assert_eq!(jobs.len(), 3);
    for (document, state, stage) in &jobs {
        assert_eq!(
            (state.as_str(), stage.as_str()),
            ("done", "index"),
            "{document}"
        );
    }
    let pages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pages")
        .fetch_one(&queue)
        .await
        .unwrap();
    assert_eq!(pages, 9, "each page stored once");

    // The workers, not the API node, recognised them; the interrupted document was handed
    // to the index writer by a worker that finished it.
    let finished: String = [&second, &third].iter().map(|w| w.log()).collect();
    assert!(
        finished.contains(&interrupted) && finished.contains("handed to the index writer"),
        "{finished}"
    );
    assert!(
        !first
            .log()
            .lines()
            .any(|line| line.contains(&interrupted) && line.contains("handed")),
        "the killed worker did not finish it"
    );

    // `verify` and the audit chain are clean; the workers' logs hold no PHI.
    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
    let audit = chartvault::audit::verify::verify_audit(&app.config())
        .await
        .expect("audit verify runs");
    assert!(audit.is_clean(), "{:?}", audit.findings);
    let all_logs = first.log() + &finished;
    for secret in [
        "Wilhelmina",
        "Workerson",
        "WK-4410",
        "quokkamab",
        "wallaroo",
    ] {
        assert!(!all_logs.contains(secret), "{secret} in a worker's log");
    }
    drop((second, third));
}

/// Polls `node`'s search until `word` has `total` hits: a standby reads the writer's
/// commits again every second.
async fn hits_on(node: &TestApp, word: &str, total: u64) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let hits = node.search(&node.clinician, json!({ "query": word })).await;
        if hits["total"] == total || Instant::now() > until {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two API nodes on one archive: the first to start holds the index writer's role, the
/// second stands by. A scan uploaded through the standby is recognised by its engines and
/// indexed by the writer, and the standby finds it in the writer's commits. When the writer
/// stops, the standby takes the role over and indexes what comes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_searches_the_writers_commits_and_takes_the_role_over() {
    let Some(cluster) = postgres::shared() else {
        return;
    };
    let database = cluster.new_database();
    let writer = spawn_app_with(|c| {
        c.database.url = Some(database.clone());
        c.ocr.threads = 1;
    })
    .await;
    let mut config = writer.config();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let standby = spawn_app_from(config, &writer, tempfile::tempdir().unwrap()).await;
    assert!(writer.state.writes_index());
    assert!(!standby.state.writes_index(), "one writer");

    let scan = |word: &str, seed| {
        png_of(&scanned_page(
            &["Ward round", &format!("Given {word}")],
            0.0,
            seed,
        ))
    };
    let first = standby
        .upload(
            scan("platypuvir", 91),
            &metadata("SB-1", "Stella Standby", "progress-note"),
        )
        .await;
    standby.wait_indexed(&first).await;
    let hits = hits_on(&standby, "platypuvir", 1).await;
    assert_eq!(
        hits["total"], 1,
        "the standby searches the writer's commit: {hits}"
    );
    assert_eq!(hits["hits"][0]["document_id"], first.as_str());
    let hits = writer
        .search(&writer.clinician, json!({ "query": "platypuvir" }))
        .await;
    assert_eq!(hits["total"], 1, "{hits}");

    writer.stop_server();
    let until = Instant::now() + Duration::from_secs(30);
    while !standby.state.writes_index() {
        assert!(
            Instant::now() < until,
            "the standby did not take the role over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = standby
        .upload(
            scan("echidnamab", 92),
            &metadata("SB-2", "Stella Standby", "progress-note"),
        )
        .await;
    standby.wait_indexed(&second).await;
    for (word, id) in [("platypuvir", &first), ("echidnamab", &second)] {
        let hits = hits_on(&standby, word, 1).await;
        assert_eq!(hits["total"], 1, "{word}: {hits}");
        assert_eq!(hits["hits"][0]["document_id"], id.as_str());
    }
    let audit = chartvault::audit::verify::verify_audit(&standby.config())
        .await
        .expect("audit verify runs");
    assert!(audit.is_clean(), "{:?}", audit.findings);
}
