-- Legal holds and retention.
--
-- A hold covers a patient (every document filed under them, now or later), a set of
-- documents, or the documents a search found when the hold was placed (kept in
-- hold_documents, with the query sealed). Matter, custodian, reasons and the query are
-- sealed (a matter name is often a case caption naming the patient). A hold is never
-- deleted: releasing it records who, when and why.

CREATE TABLE holds (
    id              TEXT PRIMARY KEY,
    matter          BLOB NOT NULL,      -- sealed
    custodian       BLOB NOT NULL,      -- sealed
    reason          BLOB NOT NULL,      -- sealed
    scope           TEXT NOT NULL CHECK (scope IN ('patient', 'documents', 'query')),
    patient_id      TEXT REFERENCES patients(id),
    query           BLOB,               -- sealed JSON of the search that found the documents
    created_by      TEXT NOT NULL REFERENCES users(id),
    created_at      TEXT NOT NULL,
    released_by     TEXT REFERENCES users(id),
    released_at     TEXT,
    release_reason  BLOB,               -- sealed
    CHECK ((scope = 'patient') = (patient_id IS NOT NULL))
);
CREATE INDEX holds_patient ON holds(patient_id) WHERE released_at IS NULL;

CREATE TABLE hold_documents (
    hold_id      TEXT NOT NULL REFERENCES holds(id),
    document_id  TEXT NOT NULL REFERENCES documents(id),
    PRIMARY KEY (hold_id, document_id)
);
CREATE INDEX hold_documents_document ON hold_documents(document_id);
CREATE TRIGGER hold_documents_no_delete BEFORE DELETE ON hold_documents
BEGIN SELECT RAISE(ABORT, 'a hold keeps its documents; release the hold instead'); END;

-- One row per run of the retention job (listing, or destroying with `apply`).
CREATE TABLE retention_runs (
    id          TEXT PRIMARY KEY,
    as_of       TEXT NOT NULL,          -- YYYY-MM-DD: the day expiry was computed for
    applied     INTEGER NOT NULL,       -- 1: expired documents were destroyed
    expired     INTEGER NOT NULL,       -- documents past their retention period
    held        INTEGER NOT NULL,       -- of those, kept because a hold covers them
    destroyed   INTEGER NOT NULL,
    run_by      TEXT REFERENCES users(id), -- NULL: the scheduled job of the service
    started_at  TEXT NOT NULL,
    finished_at TEXT
);

-- What retention destroyed: outlives the data, append-only. No PHI: the document's opaque
-- id, type, the SHA-256 of its original, the rule and the dates the rule counted from.
CREATE TABLE destruction_certificates (
    id               TEXT PRIMARY KEY,
    run_id           TEXT NOT NULL REFERENCES retention_runs(id),
    document_id      TEXT NOT NULL,
    document_sha256  TEXT NOT NULL,
    document_type    TEXT NOT NULL,
    page_count       INTEGER NOT NULL,
    rule             TEXT NOT NULL,     -- the rule as configured, e.g. "default: 10 years"
    counted_from     TEXT NOT NULL,     -- service date (or the date archived) the rule counted from
    expired_on       TEXT NOT NULL,     -- the first day the document could be destroyed
    destroyed_at     TEXT NOT NULL,
    destroyed_by     TEXT NOT NULL      -- a user id, or 'retention-job'
);
CREATE INDEX destruction_certificates_run ON destruction_certificates(run_id);
CREATE TRIGGER destruction_certificates_no_update BEFORE UPDATE ON destruction_certificates
BEGIN SELECT RAISE(ABORT, 'destruction certificates are append-only'); END;
CREATE TRIGGER destruction_certificates_no_delete BEFORE DELETE ON destruction_certificates
BEGIN SELECT RAISE(ABORT, 'destruction certificates are append-only'); END;
