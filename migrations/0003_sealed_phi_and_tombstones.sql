-- PHI columns hold ciphertext (the storage envelope, sealed by the service under the
-- `metadata` service key, bound to table, column and row id); MRN lookups go through a
-- blind index (HMAC-SHA256 of the normalised MRN under the `mrn-blind-index` service key).
-- Documents gain tombstones: a shredded document keeps id, sha256, when, who and why.
--
-- Rows of an archive created before this migration are copied across as they are; the
-- service seals them (and fills mrn_index) at its next start, then vacuums the database
-- so the plaintext does not linger in free pages.
-- Tables are rebuilt (SQLite's way to change columns and constraints): migrations run on a
-- connection with foreign-key enforcement off, and the check at the end restores it.

CREATE TABLE patients_sealed (
    id          TEXT PRIMARY KEY,
    mrn_index   BLOB UNIQUE,               -- HMAC of the MRN; NULL only until an old row is sealed
    mrn         BLOB NOT NULL,             -- sealed
    name        BLOB NOT NULL,             -- sealed
    birth_date  BLOB,                      -- sealed
    created_at  TEXT NOT NULL
);
INSERT INTO patients_sealed (id, mrn_index, mrn, name, birth_date, created_at)
    SELECT id, NULL, mrn, name, birth_date, created_at FROM patients;
DROP TABLE patients;
ALTER TABLE patients_sealed RENAME TO patients;

CREATE TABLE documents_v3 (
    id              TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(id),
    document_type   TEXT NOT NULL,
    category        TEXT NOT NULL,
    service_date    TEXT,
    encounter       BLOB,                  -- sealed
    content_type    TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    page_count      INTEGER NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('accepted','processing','indexed','failed','deleted')),
    failure_reason  TEXT,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    indexed_at      TEXT,
    deleted_at      TEXT,
    deleted_by      TEXT,
    deletion_reason BLOB,                  -- sealed (free text)
    purged_at       TEXT                   -- when blobs and index entries were gone too
);
INSERT INTO documents_v3 (id, patient_id, document_type, category, service_date, encounter,
        content_type, sha256, size_bytes, page_count, status, failure_reason, created_at,
        created_by, indexed_at)
    SELECT id, patient_id, document_type, category, service_date, encounter, content_type,
        sha256, size_bytes, page_count, status, failure_reason, created_at, created_by,
        indexed_at
    FROM documents;
DROP TABLE documents;
ALTER TABLE documents_v3 RENAME TO documents;
CREATE INDEX documents_patient ON documents(patient_id);
CREATE INDEX documents_sha256 ON documents(sha256);

-- Every reference must still resolve: the CHECK fails the migration otherwise.
CREATE TEMP TABLE fk_guard (problems INTEGER CHECK (problems = 0));
INSERT INTO fk_guard SELECT count(*) FROM pragma_foreign_key_check;
DROP TABLE fk_guard;
