//! The archive on the engines of a scaled setup, real and started by the test: its metadata
//! in PostgreSQL (`database.url`), its KEK in a KMS (OpenBao); S3 has a test of its own.
//! Scans are stored, recognised, found on their page and read back byte for
//! byte; another clinician's scope still hides them; the audit chain and `verify` are clean
//! on PostgreSQL; and a `pg_dump` of the database holds no name, MRN or word of a page.

use chartvault::config::KeyProviderKind;
use chartvault::domain::Role;
use chartvault_storage::testsuite::openbao::{bao, OpenBao};
use chartvault_storage::testsuite::postgres;
use serde_json::json;

use crate::helpers::*;

/// Whether `word` is in a `pg_dump`, as text or inside a `bytea` value (which the dump
/// writes in hex).
fn readable_in_dump(dump: &[u8], word: &str) -> bool {
    contains_in_any_encoding(dump, word) || contains_ignore_case(dump, &hex::encode(word))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_on_postgresql_and_a_kms_keeps_its_promises() {
    let (Some(cluster), Some(bao)) = (postgres::shared(), bao()) else {
        return;
    };
    let database = cluster.new_database();
    let kms = OpenBao::start(&bao);
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("openbao-token");
    std::fs::write(&token_file, &kms.token).unwrap();
    let app = spawn_app_with(|c| {
        c.database.url = Some(database.clone());
        c.keys.provider = KeyProviderKind::Openbao;
        c.keys.openbao.address = kms.address.clone();
        c.keys.openbao.token_file = Some(token_file.clone());
    })
    .await;
    assert!(
        !app.state.config.db_path().exists(),
        "no SQLite file is made when the metadata is in PostgreSQL"
    );

    let pages = [
        scanned_page(
            &["Cardiology clinic", "Referred by Dr Okonkwo-Baxter"],
            0.0,
            71,
        ),
        scanned_page(
            &["Assessment", "Started on wombatinib 20 mg daily"],
            0.0,
            72,
        ),
    ];
    let tiff = tiff_of(&pages);
    let id = app
        .upload(
            tiff.clone(),
            &metadata("PG-77123", "Perpetua Postgrave", "clinic-letter"),
        )
        .await;
    app.wait_indexed(&id).await;
    let hits = app
        .search(&app.clinician, json!({ "query": "wombatinib" }))
        .await;
    assert_eq!(hits["total"], 1, "{hits}");
    assert_eq!(hits["hits"][0]["document_id"], id.as_str(), "{hits}");
    assert_eq!(hits["hits"][0]["page"], 2, "{hits}");
    let original = app
        .get(&app.clinician, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert_eq!(original.status(), 200);
    assert!(original.bytes().await.unwrap() == tiff, "byte for byte");

    // A clinician without the patient on their care list finds nothing and reads nothing.
    let stranger = chartvault::cli::user_add(&app.config(), "stranger", Role::Clinician)
        .await
        .unwrap();
    let hits = app
        .search(&stranger, json!({ "query": "wombatinib" }))
        .await;
    assert_eq!(hits["total"], 0, "{hits}");
    let refused = app
        .get(&stranger, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert_eq!(refused.status(), 404);

    // The audit chain verifies on PostgreSQL and holds the reads above; `verify` is clean.
    let audit = chartvault::audit::verify::verify_audit(&app.config())
        .await
        .expect("audit verify runs");
    assert!(audit.is_clean(), "{:?}", audit.findings);
    assert!(audit.entries >= 4, "{} entries", audit.entries);
    let report = chartvault::ops::verify::verify(&app.config())
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
    assert!(report.checked.blobs >= 3, "{}", report.summary());

    // Everything PostgreSQL holds, as pg_dump writes it: no PHI in the clear.
    let dump = cluster.dump(&database);
    assert!(
        contains_in_any_encoding(&dump, "clinic-letter"),
        "the dump holds the archive (its document types)"
    );
    for word in [
        "Perpetua",
        "Postgrave",
        "PG-77123",
        "77123",
        "wombatinib",
        "Okonkwo",
        "Cardiology",
    ] {
        assert!(
            !readable_in_dump(&dump, word),
            "{word} readable in the pg_dump"
        );
    }
}

/// `migrate-store` moves an embedded archive (SQLite, local objects, a key file) to
/// PostgreSQL, another object store and the KMS: the target verifies clean, a server on it
/// finds and returns what the old one did to the same users' tokens, the keyring is the
/// KMS's ciphertext, and a second run copies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_archive_moves_to_postgresql_and_a_kms_and_serves_the_same() {
    let (Some(cluster), Some(bao)) = (postgres::shared(), bao()) else {
        return;
    };
    let app = spawn_app().await;
    let scan = png_of(&scanned_page(
        &["Operation note", "Closed with numbat sutures"],
        0.0,
        73,
    ));
    let id = app
        .upload(
            scan.clone(),
            &metadata("MV-5521", "Mona Mover", "operation-note"),
        )
        .await;
    app.wait_indexed(&id).await;
    let source = app.config();
    app.stop_server();

    let kms = OpenBao::start(&bao);
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("openbao-token");
    std::fs::write(&token_file, &kms.token).unwrap();
    let objects = secrets.path().join("objects");
    let mut target = source.clone();
    target.database.url = Some(cluster.new_database());
    target.storage.url = Some(format!("file://{}", objects.display()));
    target.keys.provider = KeyProviderKind::Openbao;
    target.keys.openbao.address = kms.address.clone();
    target.keys.openbao.token_file = Some(token_file.clone());

    // The move waits for nothing: it runs once the stopping server has let go of the archive.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let moved = loop {
        match chartvault::cli::migrate_store(&source, &target).await {
            Ok(moved) => break moved,
            Err(error)
                if error.to_string().contains("a server is running")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the move failed: {error:#}"),
        }
    };
    assert_eq!(moved.verify_errors, 0, "{}", moved.verify_summary);
    let rows = |table: &str| {
        moved
            .rows
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
            .unwrap()
    };
    assert_eq!(rows("documents"), 1);
    assert!(
        rows("keyring") >= 6 && rows("audit") >= 3,
        "{:?}",
        moved.rows
    );
    assert!(moved.objects_copied >= 3, "{moved:?}");

    // Run again: everything is there already.
    let again = chartvault::cli::migrate_store(&source, &target)
        .await
        .expect("the move runs again");
    assert!(again.rows.iter().all(|(_, n)| *n == 0), "{:?}", again.rows);
    assert_eq!(
        (again.objects_copied, again.objects_present),
        (0, moved.objects_copied)
    );

    // A server on the target answers the same users as the old one did.
    let moved_app = spawn_app_from(target.clone(), &app, tempfile::tempdir().unwrap()).await;
    let hits = moved_app
        .search(&moved_app.clinician, json!({ "query": "numbat" }))
        .await;
    assert_eq!(hits["hits"][0]["document_id"], id.as_str(), "{hits}");
    let original = moved_app
        .get(
            &moved_app.clinician,
            &format!("/api/v1/documents/{id}/original"),
        )
        .await;
    assert_eq!(original.status(), 200);
    assert!(original.bytes().await.unwrap() == scan, "byte for byte");
    let status: serde_json::Value = moved_app
        .get(&moved_app.admin, "/api/v1/admin/keys")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["current_version"], 1,
        "the KMS key's first version: {status}"
    );
    // Every data key in the target is wrapped by the KMS; no PHI is readable in it.
    let dump = cluster.dump(target.database.url.as_deref().unwrap());
    assert!(
        readable_in_dump(&dump, "vault:v1:"),
        "the keyring is the KMS's"
    );
    for word in ["Mona", "Mover", "MV-5521", "numbat"] {
        assert!(!readable_in_dump(&dump, word), "{word} in the pg_dump");
    }
}
