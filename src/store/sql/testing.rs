//! A store of its own for each unit test, on the backend that includes this file (a temp
//! SQLite file, or a database of its own on the test cluster of PostgreSQL), migrated,
//! with fresh keys.

use chartvault_storage::{DataKey, KeyId};

use super::Backend as Db;
use crate::domain::{Category, DocumentId, Mrn, PatientId, Role};
use crate::store::api::prelude::*;
use crate::store::audit_record::AuditCipher;
use crate::store::documents::NewDocument;
use crate::store::phi::PhiCipher;
use crate::store::row_mac::RowMac;

/// A migrated store with its PHI, audit and row MAC keys set; the file goes with it.
pub(crate) struct TestStore {
    pub db: Db,
    place: super::TestPlace,
    /// Its audit keys, for a second handle on the same database.
    audit: (KeyId, DataKey, DataKey),
}

impl std::ops::Deref for TestStore {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

pub(crate) async fn store() -> TestStore {
    let (db, place) = super::open_test_store().await;
    db.set_phi(PhiCipher::from_keys(
        KeyId::generate(),
        DataKey::generate(),
        DataKey::generate(),
    ));
    let audit = (KeyId::generate(), DataKey::generate(), DataKey::generate());
    db.set_audit_cipher(AuditCipher::from_keys(
        audit.0,
        audit.1.clone(),
        audit.2.clone(),
    ));
    db.set_row_mac(RowMac::from_key(DataKey::generate()));
    TestStore { db, place, audit }
}

/// Another handle on the same database, with its own connections and the same audit keys:
/// what a second node (or process) of the archive holds.
pub(crate) async fn second_handle(store: &TestStore) -> Db {
    let db = super::reopen_test_store(&store.place).await;
    db.set_audit_cipher(AuditCipher::from_keys(
        store.audit.0,
        store.audit.1.clone(),
        store.audit.2.clone(),
    ));
    db
}

/// Every byte the database holds: a SQLite file and its WAL, a dump of a PostgreSQL
/// database.
pub(crate) async fn file_bytes(store: &TestStore) -> Vec<u8> {
    super::stored_bytes(&store.place)
}

/// A document of the patient with `mrn` (created with them if new), accepted and queued:
/// its row and its job, as an upload leaves them.
pub(crate) async fn document_with_job(store: &TestStore, mrn: &str) -> (PatientId, DocumentId) {
    let user = match store.user_by_name("rita").await.unwrap() {
        Some((user, _, _)) => user,
        None => store.create_user("rita", Role::Records).await.unwrap(),
    };
    let mut tx = store.begin().await.unwrap();
    let mrn = Mrn::parse(mrn).unwrap();
    let patient = store
        .ensure_patient(&mut tx, &mrn, "P", None)
        .await
        .unwrap();
    let doc = NewDocument {
        id: DocumentId::new_random(),
        patient_id: patient,
        document_type: "progress-note".into(),
        category: Category::general(),
        service_date: None,
        encounter: None,
        content_type: "image/png".into(),
        sha256: "00".repeat(32),
        sha1: None,
        size_bytes: 10,
        page_count: 1,
        created_by: user,
        sop_instance_uid: None,
        qa_reason: None,
    };
    store.insert_document_with_job(&mut tx, &doc).await.unwrap();
    tx.commit().await.unwrap();
    (patient, doc.id)
}
