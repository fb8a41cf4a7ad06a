-- Core schema: keyring, patients, documents, pages, jobs, users, tokens, audit.
-- Identifiers are random UUIDs (text). Times are RFC 3339 UTC text.

CREATE TABLE keyring (
    key_id      TEXT PRIMARY KEY,          -- hex of the 16-byte key id named in object headers
    kek_version INTEGER NOT NULL,
    wrapped     BLOB NOT NULL,             -- the data key, wrapped under the KEK
    created_at  TEXT NOT NULL
);

CREATE TABLE patients (
    id          TEXT PRIMARY KEY,          -- internal, opaque; the index only knows this
    mrn         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    birth_date  TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE documents (
    id              TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(id),
    document_type   TEXT NOT NULL,
    category        TEXT NOT NULL,
    service_date    TEXT,
    encounter       TEXT,
    content_type    TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    page_count      INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('accepted','processing','indexed','failed')),
    failure_reason  TEXT,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    indexed_at      TEXT
);
CREATE INDEX documents_patient ON documents(patient_id);
CREATE INDEX documents_sha256 ON documents(sha256);

CREATE TABLE pages (
    document_id      TEXT NOT NULL REFERENCES documents(id),
    page             INTEGER NOT NULL,     -- 1-based, scan order
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    dpi              REAL,
    mean_confidence  REAL NOT NULL,
    word_count       INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (document_id, page)
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id  TEXT NOT NULL UNIQUE REFERENCES documents(id),
    state        TEXT NOT NULL CHECK (state IN ('pending','running','done','failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX jobs_state ON jobs(state, id);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin','records','clinician','legal','auditor')),
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    token_hash  TEXT NOT NULL UNIQUE,      -- SHA-256 of the token; the token itself is never stored
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX tokens_user ON tokens(user_id);

-- Append-only. Rows reference opaque ids, never names or MRNs.
CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    user_id      TEXT,
    role         TEXT,
    action       TEXT NOT NULL,
    patient_id   TEXT,
    document_id  TEXT,
    outcome      TEXT NOT NULL,
    client_addr  TEXT,
    request_id   TEXT,
    detail       TEXT                       -- JSON of opaque ids (e.g. the patients a search returned)
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
