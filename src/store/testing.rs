//! A store of its own for each unit test: a temp SQLite file, migrated, with fresh keys.

use chartvault_storage::{DataKey, KeyId};

use super::audit_record::AuditCipher;
use super::phi::PhiCipher;
use super::row_mac::RowMac;
use super::Db;

/// A migrated store with its PHI, audit and row MAC keys set; the file goes with it.
pub(crate) struct TestStore {
    pub db: Db,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestStore {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

pub(crate) async fn store() -> TestStore {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = Db::open(&dir.path().join("chartvault.db"))
        .await
        .expect("a new store opens");
    db.set_phi(PhiCipher::from_keys(
        KeyId::generate(),
        DataKey::generate(),
        DataKey::generate(),
    ));
    db.set_audit_cipher(AuditCipher::from_keys(
        KeyId::generate(),
        DataKey::generate(),
        DataKey::generate(),
    ));
    db.set_row_mac(RowMac::from_key(DataKey::generate()));
    TestStore { db, _dir: dir }
}

/// Every byte of the store's database file and its WAL.
pub(crate) async fn file_bytes(store: &TestStore) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(store._dir.path()).expect("the store's dir") {
        bytes.extend(std::fs::read(entry.expect("an entry").path()).unwrap_or_default());
    }
    bytes
}
