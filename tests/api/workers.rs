//! OCR workers as processes: an API node on PostgreSQL that runs no engines
//! (`ocr.engines_in_serve = false`), and `chartvault worker` processes (the real binary) that
//! claim the documents' jobs from the shared queue, recognise and store their pages, and
//! hand each to the API node, which holds the index writer and indexes it. A worker killed
//! (`kill -9`) in the middle of a document loses nothing: its job's lease runs out and
//! another worker finishes it; every page is indexed once and nothing PHI reaches a
//! worker's log.
//!
//! Two API nodes: the first holds the index writer's role, the other stands by and takes it
//! over. On local storage they share the index directory; on S3 each keeps its own copy,
//! following the commits the writer publishes to the bucket. The whole scaled setup as
//! processes (API nodes, workers, PostgreSQL, S3) loses nothing when a worker and the writer
//! are killed.

use std::time::{Duration, Instant};

use chartvault::store::prelude::*;
use chartvault_storage::testsuite::{postgres, seaweed};
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

/// Uploads a one-page ward-round note through `node` that mentions `word`, and waits until
/// it is indexed: its id.
async fn note_indexed(node: &TestApp, word: &str, seed: u64, mrn: &str, name: &str) -> String {
    let scan = png_of(&scanned_page(
        &["Ward round", &format!("Given {word}")],
        0.0,
        seed,
    ));
    let id = node
        .upload(scan, &metadata(mrn, name, "progress-note"))
        .await;
    node.wait_indexed(&id).await;
    id
}

/// Waits until the standby `node` holds the index writer's role.
async fn takes_the_role_over(node: &TestApp) {
    let until = Instant::now() + Duration::from_secs(40);
    while !node.state.writes_index() {
        assert!(
            Instant::now() < until,
            "the standby did not take the role over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let mut hot_folder = std::path::PathBuf::new();
    let writer = spawn_app_with(|c| {
        c.database.url = Some(database.clone());
        c.ocr.threads = 1;
        hot_folder = c.data_dir.with_file_name("scans-ward-7");
        std::fs::create_dir_all(&hot_folder).unwrap();
        c.intake.poll_interval_ms = 100;
        c.intake.settle_ms = 300;
        c.intake.folders = vec![chartvault::config::IntakeFolder {
            path: hot_folder.clone(),
            kind: chartvault::config::IntakeKind::Documents,
            user: "rec".into(),
        }];
    })
    .await;
    let mut config = writer.config();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let standby = spawn_app_from(config, &writer, tempfile::tempdir().unwrap()).await;
    assert!(writer.state.writes_index());
    assert!(!standby.state.writes_index(), "one writer");

    let first = note_indexed(&standby, "platypuvir", 91, "SB-1", "Stella Standby").await;
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
    takes_the_role_over(&standby).await;
    let second = note_indexed(&standby, "echidnamab", 92, "SB-2", "Stella Standby").await;
    for (word, id) in [("platypuvir", &first), ("echidnamab", &second)] {
        let hits = hits_on(&standby, word, 1).await;
        assert_eq!(hits["total"], 1, "{word}: {hits}");
        assert_eq!(hits["hits"][0]["document_id"], id.as_str());
    }
    // The scanners' hot folder is taken by the role's holder: now the former standby.
    std::fs::write(
        hot_folder.join("ward7.png.json"),
        metadata("SB-1", "Stella Standby", "progress-note").to_string(),
    )
    .unwrap();
    let scan = png_of(&scanned_page(&["Ward round", "Given bilbyzumab"], 0.0, 95));
    std::fs::write(hot_folder.join("ward7.png"), scan).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let receipt = loop {
        let receipt = std::fs::read_dir(hot_folder.join("done"))
            .into_iter()
            .flatten()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "json"));
        if let Some(path) = receipt {
            break serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap())
                .unwrap();
        }
        assert!(
            Instant::now() < until,
            "the new writer did not take the hot folder's file"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let taken = receipt["id"].as_str().unwrap().to_string();
    standby.wait_indexed(&taken).await;
    let hits = hits_on(&standby, "bilbyzumab", 1).await;
    assert_eq!(hits["hits"][0]["document_id"], taken.as_str(), "{hits}");
    let audit = chartvault::audit::verify::verify_audit(&standby.config())
        .await
        .expect("audit verify runs");
    assert!(audit.is_clean(), "{:?}", audit.findings);
}

/// API nodes on different machines, the objects on S3: each node keeps its own copy of the
/// index in its own data directory. The writer publishes every commit to the bucket; a
/// standby copies the published commits and finds what the writer indexed; when the writer
/// stops, the standby takes over from the published commit and publishes its own; a new node
/// started with nothing but the config finds everything at once. The bucket holds the index
/// encrypted, and only the files of the current commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_their_own_disks_follow_the_index_published_to_object_storage() {
    let Some(cluster) = postgres::shared() else {
        return;
    };
    let Some(server) = seaweed::shared() else {
        return;
    };
    server.create_bucket("chartvault-published");
    let endpoint = format!("http://127.0.0.1:{}", server.s3_port);
    std::env::set_var("AWS_ACCESS_KEY_ID", "chartvault");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "chartvault");
    let database = cluster.new_database();
    let writer = spawn_app_with(|c| {
        c.database.url = Some(database.clone());
        c.storage.url = Some("s3://chartvault-published/hospital-b".into());
        c.storage.s3.endpoint = Some(endpoint.clone());
        c.storage.s3.region = Some("us-east-1".into());
        c.ocr.threads = 1;
    })
    .await;
    // Another machine: a data directory of its own; the same database, bucket, key file and
    // audit signing key (a deployment copies the two files to each node).
    let other_machine = || {
        let dir = tempfile::tempdir().unwrap();
        let mut config = writer.config();
        config.data_dir = dir.path().join("data");
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.audit.signing_key_file = Some(writer.config().audit_signing_key_file());
        config.audit.checkpoint_file = Some(writer.config().audit_checkpoint_file());
        (config, dir)
    };
    let (config, dir) = other_machine();
    let standby = spawn_app_from(config, &writer, dir).await;
    assert!(writer.state.writes_index());
    assert!(!standby.state.writes_index(), "one writer");

    let first = note_indexed(&standby, "wombatinib", 93, "PB-1", "Petra Published").await;
    let hits = hits_on(&standby, "wombatinib", 1).await;
    assert_eq!(
        hits["total"], 1,
        "the standby finds the published commit: {hits}"
    );
    assert_eq!(hits["hits"][0]["document_id"], first.as_str());
    let standby_index = standby.data_dir.join("index");
    assert_ne!(standby_index, writer.data_dir.join("index"));

    // The published index: a head and the commit's files, every one an envelope, no word of
    // the page or the patient readable.
    let bucket = chartvault_storage::S3BlobStore::open(&chartvault_storage::S3Location {
        bucket: "chartvault-published".into(),
        prefix: "hospital-b".into(),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: None,
        secret_access_key: None,
    })
    .unwrap();
    let bucket = std::sync::Arc::new(bucket);
    let published = |bucket: std::sync::Arc<chartvault_storage::S3BlobStore>| async move {
        tokio::task::spawn_blocking(move || {
            use chartvault_storage::BlobStore as _;
            bucket
                .list("index/")
                .unwrap()
                .into_iter()
                .map(|name| {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut bucket.open(&name).unwrap(), &mut bytes)
                        .unwrap();
                    (name.as_str().to_string(), bytes)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap()
    };
    let objects = published(bucket.clone()).await;
    assert!(
        objects.iter().any(|(name, _)| name == "index/HEAD"),
        "{:?}",
        objects.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    assert!(objects.len() > 3, "the commit's files are published");
    for (name, bytes) in &objects {
        assert!(
            chartvault_storage::FormatVersion::of_object(bytes)
                == Some(chartvault_storage::FormatVersion::CURRENT),
            "{name} is not an envelope"
        );
        for word in ["wombatinib", "Petra", "PB-1"] {
            assert!(
                !contains_in_any_encoding(bytes, word),
                "{word} readable in {name}"
            );
        }
    }

    writer.stop_server();
    takes_the_role_over(&standby).await;
    let second = note_indexed(&standby, "quokkazole", 94, "PB-2", "Petra Published").await;
    for (word, id) in [("wombatinib", &first), ("quokkazole", &second)] {
        let hits = hits_on(&standby, word, 1).await;
        assert_eq!(hits["total"], 1, "{word}: {hits}");
        assert_eq!(hits["hits"][0]["document_id"], id.as_str());
    }

    // A new node: nothing on its disk, the config only. Its first search finds everything.
    let (config, dir) = other_machine();
    let fresh = spawn_app_from(config, &writer, dir).await;
    for (word, id) in [("wombatinib", &first), ("quokkazole", &second)] {
        let hits = fresh
            .search(&fresh.clinician, json!({ "query": word }))
            .await;
        assert_eq!(hits["total"], 1, "{word} on a new node: {hits}");
        assert_eq!(hits["hits"][0]["document_id"], id.as_str());
    }

    // The bucket keeps the current commit's files only: each is in the new writer's index.
    let objects = published(bucket).await;
    let local: std::collections::BTreeSet<String> = std::fs::read_dir(&standby_index)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for (name, _) in &objects {
        if let Some(file) = name.strip_prefix("index/files/") {
            assert!(
                local.contains(file),
                "{file} is published but not in the writer's commit"
            );
        }
    }
    let report = chartvault::ops::verify::verify(&standby.config())
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
    let audit = chartvault::audit::verify::verify_audit(&standby.config())
        .await
        .expect("audit verify runs");
    assert!(audit.is_clean(), "{:?}", audit.findings);

    // A backup while the nodes run: PostgreSQL at one snapshot, the objects from the bucket,
    // the published index; nothing readable in it. Restored into another database and
    // bucket prefix, it finds both scans.
    let backup_dir = tempfile::tempdir().unwrap();
    let taken = chartvault::ops::backup::backup(&standby.config(), &backup_dir.path().join("b"))
        .await
        .expect("the backup of a PostgreSQL + S3 archive");
    assert_eq!(taken.manifest.counts.documents, 2, "{}", taken.describe());
    assert!(
        taken.manifest.counts.index_files > 0,
        "{}",
        taken.describe()
    );
    assert_unreadable_under(
        backup_dir.path(),
        &["wombatinib", "quokkazole", "Petra", "PB-1"],
    );
    let (mut restored, dir) = other_machine();
    restored.database.url = Some(cluster.new_database());
    restored.storage.url = Some("s3://chartvault-published/hospital-b-restored".into());
    restored.audit.checkpoint_file = Some(dir.path().join("checkpoints"));
    let summary = chartvault::ops::backup::restore(&restored, &backup_dir.path().join("b"))
        .await
        .expect("the restore into PostgreSQL + S3");
    assert_eq!(summary.documents, 2, "{}", summary.describe());
    assert!(!restored.db_path().exists(), "the staging database is gone");
    let back = spawn_app_from(restored, &writer, dir).await;
    for (word, id) in [("wombatinib", &first), ("quokkazole", &second)] {
        let hits = back.search(&back.clinician, json!({ "query": word })).await;
        assert_eq!(hits["total"], 1, "{word} in the restored archive: {hits}");
        assert_eq!(hits["hits"][0]["document_id"], id.as_str());
    }
    back.stop_server();

    // A document shredded through a node that does not write the index: its keys go at
    // once, and the writer purges it from the index (and the bucket's commit) soon after.
    let shredded = fresh
        .delete(
            &fresh.records,
            &format!("/api/v1/documents/{first}"),
            &json!({ "reason": "patient request, duplicate record" }),
        )
        .await;
    assert_eq!(shredded.status(), 200, "{}", shredded.text().await.unwrap());
    let until = Instant::now() + Duration::from_secs(30);
    while !standby
        .state
        .db
        .unpurged_tombstones()
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < until,
            "the writer did not purge the document"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hits = hits_on(&fresh, "wombatinib", 0).await;
    assert_eq!(hits["total"], 0, "purged from the published index: {hits}");
    let hits = hits_on(&fresh, "quokkazole", 1).await;
    assert_eq!(hits["total"], 1, "{hits}");
}

/// The scaled setup as processes: two `chartvault serve` API nodes (each with its own data
/// directory, no engines), three `chartvault worker`s, PostgreSQL and S3. 100 pages are
/// uploaded through both nodes; a worker is killed (`kill -9`) while it recognises a page
/// and the index writer while it indexes; the standby takes the writer's role over from the
/// published index. Every page ends up indexed exactly once (`verify` finds no page missing
/// or indexed twice), both API nodes answer the same hits, the audit chain verifies, and no
/// process's log holds a patient's name or MRN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_nodes_and_workers_as_processes_lose_nothing_when_a_worker_and_the_writer_die() {
    let Some(cluster) = postgres::shared() else {
        return;
    };
    let Some(server) = seaweed::shared() else {
        return;
    };
    server.create_bucket("chartvault-scaled");
    let endpoint = format!("http://127.0.0.1:{}", server.s3_port);
    std::env::set_var("AWS_ACCESS_KEY_ID", "chartvault");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "chartvault");
    let database = cluster.new_database();
    // Makes the archive and its users, then steps aside for the processes.
    let setup = spawn_app_with(|c| {
        c.database.url = Some(database.clone());
        c.storage.url = Some("s3://chartvault-scaled/cluster".into());
        c.storage.s3.endpoint = Some(endpoint.clone());
        c.storage.s3.region = Some("us-east-1".into());
        c.ocr.engines_in_serve = false;
    })
    .await;
    setup.stop_server();
    let until = Instant::now() + Duration::from_secs(30);
    while setup.state.writer_role.lock().await.is_some() {
        assert!(
            Instant::now() < until,
            "the set-up node kept the writer's role"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = tempfile::tempdir().unwrap();
    let disks = tempfile::tempdir().unwrap();
    let mut writer = ServeProcess::start(
        &setup,
        &disks.path().join("node-a"),
        &logs.path().join("node-a.log"),
    )
    .await;
    let standby = ServeProcess::start(
        &setup,
        &disks.path().join("node-b"),
        &logs.path().join("node-b.log"),
    )
    .await;
    let (a, b) = (setup.through(&writer.base), setup.through(&standby.base));

    let mut documents = Vec::new();
    for i in 0..100u32 {
        let node = if i % 2 == 0 { &a } else { &b };
        let scan = png_of(&scanned_page(
            &["Ward round", &format!("Entry {i} reviewed")],
            0.0,
            1000 + u64::from(i),
        ));
        let mrn = format!("SC-{}", i % 10);
        let name = format!(
            "Scaled Patient{}",
            [
                "Ash", "Birch", "Cedar", "Daisy", "Elm", "Fern", "Gorse", "Hazel", "Iris",
                "Juniper"
            ][i as usize % 10]
        );
        documents.push(
            node.upload(scan, &metadata(&mrn, &name, "progress-note"))
                .await,
        );
    }
    let queue = sqlx::PgPool::connect(&database).await.unwrap();
    let count = |sql: &'static str| {
        let queue = queue.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&queue)
                .await
                .unwrap()
        }
    };
    let workers_log = |n: usize| logs.path().join(format!("worker-{n}.log"));
    let mut workers: Vec<WorkerProcess> = (0..3)
        .map(|n| WorkerProcess::start(&setup, &database, 1, &workers_log(n)))
        .collect();

    // A worker dies while recognising: some pages are done, its claim is running.
    let until = Instant::now() + Duration::from_secs(180);
    while count("SELECT COUNT(*) FROM pages").await < 10
        || count("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND stage = 'recognise'").await
            == 0
    {
        assert!(Instant::now() < until, "the workers did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers[0].kill();
    // The writer dies while indexing: a document's job claimed in the `index` stage.
    while count("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND stage = 'index'").await == 0
    {
        assert!(Instant::now() < until, "the writer indexed nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.kill();

    let until = Instant::now() + Duration::from_secs(300);
    while count("SELECT COUNT(*) FROM documents WHERE status = 'indexed'").await < 100 {
        assert!(
            Instant::now() < until,
            "not every document was indexed: {} of 100\n{}",
            count("SELECT COUNT(*) FROM documents WHERE status = 'indexed'").await,
            standby.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        standby.log().contains("took over the index writer's role"),
        "{}",
        standby.log()
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM pages").await,
        100,
        "one page row per page"
    );

    // A second API node beside the new writer: both answer the same hits, every page once.
    let third = ServeProcess::start(
        &setup,
        &disks.path().join("node-c"),
        &logs.path().join("node-c.log"),
    )
    .await;
    let c = setup.through(&third.base);
    let everything = json!({ "query": "ward", "limit": 100 });
    let on_b = b.search(&b.clinician, everything.clone()).await;
    let on_c = c.search(&c.clinician, everything).await;
    assert_eq!(on_b["total"], 100, "every page found once: {on_b}");
    let ids = |hits: &serde_json::Value| {
        let mut ids: Vec<String> = hits["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| format!("{}#{}", hit["document_id"], hit["page"]))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&on_b),
        ids(&on_c),
        "both API nodes answer the same hits"
    );
    let mut expected: Vec<String> = documents.iter().map(|id| format!("\"{id}\"#1")).collect();
    expected.sort();
    assert_eq!(ids(&on_b), expected);

    // No page missing from the index, none indexed twice, every object sound; the chain holds.
    let mut config = setup.config();
    config.data_dir = standby.data_dir.clone();
    let report = chartvault::ops::verify::verify(&config)
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
    let audit = chartvault::audit::verify::verify_audit(&config)
        .await
        .expect("audit verify runs");
    assert!(audit.is_clean(), "{:?}", audit.findings);
    for (who, log) in [
        ("node a", writer.log()),
        ("node b", standby.log()),
        ("node c", third.log()),
    ]
    .into_iter()
    .chain(workers.iter().map(|worker| ("a worker", worker.log())))
    {
        for word in ["Scaled", "PatientAsh", "SC-1", "Entry"] {
            assert!(!log.contains(word), "{word} in the log of {who}");
        }
    }
}
