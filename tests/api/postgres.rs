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
            !contains_in_any_encoding(&dump, word),
            "{word} readable in the pg_dump"
        );
    }
}
