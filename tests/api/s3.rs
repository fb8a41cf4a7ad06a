//! The archive on S3-compatible object storage (`storage.url = "s3://…"`), against a real S3
//! server the test starts (SeaweedFS): a scan is stored, recognised, found and read back byte
//! for byte; every object is in the bucket and is an envelope; none is in the data
//! directory; a backup reads the bucket, and its restore into another bucket prefix is
//! searchable with the original byte for byte; `verify` checks the bucket (and finds an
//! object deleted from it).

use chartvault_storage::testsuite::seaweed;
use chartvault_storage::{BlobStore, S3BlobStore, S3Location};
use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_on_object_storage_keeps_every_object_in_the_bucket_encrypted() {
    let Some(server) = seaweed::shared() else {
        return;
    };
    server.create_bucket("chartvault-archive");
    let endpoint = format!("http://127.0.0.1:{}", server.s3_port);
    // Credentials come from the environment, as in production (SeaweedFS without
    // identities takes any).
    std::env::set_var("AWS_ACCESS_KEY_ID", "chartvault");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "chartvault");
    let app = spawn_app_with(|c| {
        c.storage.url = Some("s3://chartvault-archive/hospital-a".into());
        c.storage.s3.endpoint = Some(endpoint.clone());
        c.storage.s3.region = Some("us-east-1".into());
    })
    .await;
    let scan = png_of(&scanned_page(
        &[
            "Outpatient clinic letter",
            "Plan: bandicoot splint for six weeks",
        ],
        0.2,
        21,
    ));
    let id = app
        .upload(
            scan.clone(),
            &metadata("S3-1", "Sasha Bucket", "clinic-letter"),
        )
        .await;
    app.wait_indexed(&id).await;
    let hits = app
        .search(&app.clinician, json!({ "query": "bandicoot" }))
        .await;
    assert_eq!(hits["total"], 1, "{hits}");
    let original = app
        .get(&app.records, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert_eq!(original.status(), 200);
    assert!(original.bytes().await.unwrap() == scan, "byte for byte");

    // Every object is in the bucket, under the archive's prefix, and is an envelope.
    let bucket = S3BlobStore::open(&S3Location {
        bucket: "chartvault-archive".into(),
        prefix: "hospital-a".into(),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: None,
        secret_access_key: None,
    })
    .unwrap();
    let names = tokio::task::spawn_blocking(move || {
        let names = bucket.list("").unwrap();
        let objects: Vec<(String, Vec<u8>)> = names
            .iter()
            .map(|name| {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut bucket.open(name).unwrap(), &mut bytes).unwrap();
                (name.as_str().to_string(), bytes)
            })
            .collect();
        objects
    })
    .await
    .unwrap();
    assert!(
        names.iter().any(|(n, _)| n.contains(&id)),
        "the document's objects are in the bucket: {:?}",
        names.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &names {
        assert!(
            chartvault_storage::FormatVersion::of_object(bytes)
                == Some(chartvault_storage::FormatVersion::CURRENT),
            "{name} is not an envelope"
        );
        for word in ["bandicoot", "Sasha", "S3-1"] {
            assert!(
                !contains_in_any_encoding(bytes, word),
                "{word} readable in {name}"
            );
        }
    }
    let local: Vec<_> = files_under(&app.data_dir.join("blobs"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert!(local.is_empty(), "objects on local disk: {local:?}");

    // A backup reads the objects from the bucket; its restore goes into another prefix.
    let backup_dir = tempfile::tempdir().unwrap();
    let taken = chartvault::ops::backup::backup(&app.state.config, &backup_dir.path().join("b"))
        .await
        .expect("the backup of an archive on S3");
    assert!(taken.manifest.counts.blobs >= 3, "{}", taken.describe());
    assert!(
        taken.manifest.counts.index_files > 0,
        "{}",
        taken.describe()
    );
    assert_unreadable_under(backup_dir.path(), &["bandicoot", "Sasha", "S3-1"]);
    let restored_root = tempfile::tempdir().unwrap();
    let mut restored = app.config();
    restored.data_dir = restored_root.path().join("data");
    restored.storage.url = Some("s3://chartvault-archive/hospital-a-restored".into());
    restored.audit.signing_key_file = Some(app.config().audit_signing_key_file());
    restored.audit.checkpoint_file = Some(restored_root.path().join("checkpoints"));
    restored.server.listen = "127.0.0.1:0".parse().unwrap();
    let summary = chartvault::ops::backup::restore(&restored, &backup_dir.path().join("b"))
        .await
        .expect("the restore into another bucket prefix");
    assert_eq!(summary.documents, 1, "{}", summary.describe());
    assert!(
        !restored.data_dir.join("blobs").exists(),
        "the staging objects are gone"
    );
    let back = spawn_app_from(restored, &app, restored_root).await;
    let hits = back
        .search(&back.clinician, json!({ "query": "bandicoot" }))
        .await;
    assert_eq!(hits["total"], 1, "the restored archive: {hits}");
    let original = back
        .get(&back.records, &format!("/api/v1/documents/{id}/original"))
        .await;
    assert!(original.bytes().await.unwrap() == scan, "byte for byte");
    back.stop_server();

    // `verify` reads the bucket as it reads a local directory: clean, then a deleted object
    // is found missing.
    let report = chartvault::ops::verify::verify(&app.state.config)
        .await
        .expect("verify runs");
    assert_eq!(report.errors(), 0, "{}", report.summary());
    assert!(report.checked.blobs >= 3, "{}", report.summary());
    let original = names
        .iter()
        .map(|(n, _)| n.clone())
        .find(|n| n.contains(&id) && n.starts_with("originals/"))
        .expect("the original is in the bucket");
    let blobs = app.state.vault.blobs.clone();
    let gone = original.clone();
    tokio::task::spawn_blocking(move || {
        blobs.delete(&chartvault_storage::BlobName::new(gone).unwrap())
    })
    .await
    .unwrap()
    .unwrap();
    let report = chartvault::ops::verify::verify(&app.state.config)
        .await
        .expect("verify runs");
    assert!(
        report.findings.iter().any(|f| f.kind
            == chartvault::ops::findings::FindingKind::BlobMissing
            && f.blob.as_deref() == Some(original.as_str())),
        "{}",
        report.summary()
    );
}
