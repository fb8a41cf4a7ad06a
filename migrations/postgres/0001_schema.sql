-- The schema of the PostgreSQL backend: the SQLite schema (migrations/*.sql) as it stands
-- after its last migration, in PostgreSQL's types (TEXT, BIGINT, DOUBLE PRECISION, BYTEA).
-- Every table has a `rowid` as SQLite's tables do, which the store's upgrades of old rows
-- walk by. The append-only tables refuse UPDATE and DELETE as their SQLite triggers do.

CREATE TABLE keyring (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    key_id      TEXT PRIMARY KEY,          -- hex of the 16-byte key id named in object headers
    kek_version BIGINT NOT NULL,
    wrapped     BYTEA NOT NULL,             -- the data key, wrapped under the KEK
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin','records','clinician','legal','auditor')),
    disabled    BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
, mac BYTEA);

CREATE TABLE tokens (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    token_hash  TEXT NOT NULL UNIQUE,      -- SHA-256 of the token; the token itself is never stored
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
, mac BYTEA);

CREATE TABLE service_keys (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    purpose     TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES keyring(key_id),
    created_at  TEXT NOT NULL
);

CREATE TABLE patients (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    mrn_index   BYTEA UNIQUE,               -- HMAC of the MRN; NULL only until an old row is sealed
    mrn         BYTEA NOT NULL,             -- sealed
    name        BYTEA NOT NULL,             -- sealed
    birth_date  BYTEA,                      -- sealed
    created_at  TEXT NOT NULL
, merged_into TEXT REFERENCES patients(id), merged_at TEXT, issuer TEXT);

CREATE TABLE documents (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(id),
    document_type   TEXT NOT NULL,
    category        TEXT NOT NULL,
    service_date    TEXT,
    encounter       BYTEA,                  -- sealed
    content_type    TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    page_count      BIGINT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('accepted','processing','indexed','failed','deleted')),
    failure_reason  TEXT,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    indexed_at      TEXT,
    deleted_at      TEXT,
    deleted_by      TEXT,
    deletion_reason BYTEA,                  -- sealed (free text)
    purged_at       TEXT                   -- when blobs and index entries were gone too
, sop_index BYTEA, qa_reason TEXT, notice TEXT, supersedes TEXT, superseded_by TEXT, entered_in_error_at TEXT, entered_in_error_by TEXT, correction_reason BYTEA, sha1 TEXT);

CREATE TABLE care_relationships (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    starts_on   TEXT NOT NULL,             -- first day (UTC date) the relationship holds
    ends_on     TEXT,                      -- last day it holds; NULL = open-ended
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    ended_by    TEXT                       -- who ended it early (ends_on set then)
, mac BYTEA);

CREATE TABLE category_grants (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    user_id     TEXT NOT NULL REFERENCES users(id),
    category    TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL, mac BYTEA,
    PRIMARY KEY (user_id, category)
);

CREATE TABLE break_glass (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    patient_id   TEXT NOT NULL REFERENCES patients(id),
    reason_code  TEXT NOT NULL,
    reason       BYTEA NOT NULL,            -- sealed free text
    started_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    reviewed_at  TEXT,
    reviewed_by  TEXT,
    review_outcome TEXT CHECK (review_outcome IN ('appropriate','inappropriate')),
    review_note  BYTEA                      -- sealed free text
, mac BYTEA);

CREATE TABLE audit (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    seq            BIGINT PRIMARY KEY,     -- 1, 2, 3, ... without gaps: the writer takes last + 1
    at             TEXT NOT NULL,           -- RFC 3339 UTC, milliseconds
    action         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    break_glass    BIGINT NOT NULL CHECK (break_glass IN (0, 1)),
    user_index     BYTEA,                    -- HMAC of the user id; NULL when there is none
    patient_index  BYTEA,                    -- HMAC of the entry's patient id
    sealed         BYTEA NOT NULL,           -- the whole entry, sealed
    prev_hash      BYTEA NOT NULL,           -- 32 bytes; zeros for seq 1
    hash           BYTEA NOT NULL            -- 32 bytes
);

CREATE TABLE audit_patients (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    patient_index  BYTEA NOT NULL,
    seq            BIGINT NOT NULL REFERENCES audit(seq),
    PRIMARY KEY (patient_index, seq)
);

CREATE TABLE disclosures (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                 TEXT PRIMARY KEY,
    patient_id         TEXT NOT NULL REFERENCES patients(id),
    disclosed_at       TEXT NOT NULL,       -- the date of the disclosure, YYYY-MM-DD
    document_ids       TEXT NOT NULL,       -- JSON array of document ids (opaque)
    recipient_name     BYTEA NOT NULL,       -- sealed
    recipient_address  BYTEA,                -- sealed
    description        BYTEA NOT NULL,       -- sealed: what was disclosed
    purpose            BYTEA NOT NULL,       -- sealed: purpose or legal basis
    source             TEXT NOT NULL CHECK (source IN ('manual', 'production')),
    recorded_by        TEXT NOT NULL REFERENCES users(id),
    recorded_at        TEXT NOT NULL
);

CREATE TABLE batches (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                    TEXT PRIMARY KEY,
    content_type          TEXT NOT NULL,
    sha256                TEXT NOT NULL,
    size_bytes            BIGINT NOT NULL,
    page_count            BIGINT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('accepted','processing','split','failed')),
    failure_reason        TEXT,
    attempts              BIGINT NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL,
    created_by            TEXT NOT NULL,
    split_at              TEXT,
    original_destroyed_at TEXT
);

CREATE TABLE batch_pages (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    batch_id         TEXT NOT NULL REFERENCES batches(id),
    page             BIGINT NOT NULL,
    width            BIGINT NOT NULL,
    height           BIGINT NOT NULL,
    dpi              DOUBLE PRECISION,
    mean_confidence  DOUBLE PRECISION NOT NULL,
    word_count       BIGINT NOT NULL,
    blank            BOOLEAN NOT NULL,
    rotation         BIGINT NOT NULL,
    skew_degrees     DOUBLE PRECISION,
    ink              DOUBLE PRECISION,
    text_source      TEXT NOT NULL,
    cover            TEXT NOT NULL CHECK (cover IN ('none','cover','unreadable')),
    cover_fields     BYTEA,
    cover_reason     TEXT,
    PRIMARY KEY (batch_id, page)
);

CREATE TABLE batch_segments (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id           TEXT PRIMARY KEY,
    batch_id     TEXT NOT NULL REFERENCES batches(id),
    seq          BIGINT NOT NULL,
    first_page   BIGINT NOT NULL,
    last_page    BIGINT NOT NULL,
    cover_page   BIGINT,
    status       TEXT NOT NULL CHECK (status IN ('pending','qa','filed','rejected','merged','split')),
    qa_reason    TEXT,
    document_id  TEXT NOT NULL,
    resolved_at  TEXT,
    resolved_by  TEXT,
    UNIQUE (batch_id, seq)
);

CREATE TABLE holds (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY,
    matter          BYTEA NOT NULL,      -- sealed
    custodian       BYTEA NOT NULL,      -- sealed
    reason          BYTEA NOT NULL,      -- sealed
    scope           TEXT NOT NULL CHECK (scope IN ('patient', 'documents', 'query')),
    patient_id      TEXT REFERENCES patients(id),
    query           BYTEA,               -- sealed JSON of the search that found the documents
    created_by      TEXT NOT NULL REFERENCES users(id),
    created_at      TEXT NOT NULL,
    released_by     TEXT REFERENCES users(id),
    released_at     TEXT,
    release_reason  BYTEA,               -- sealed
    CHECK ((scope = 'patient') = (patient_id IS NOT NULL))
);

CREATE TABLE hold_documents (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    hold_id      TEXT NOT NULL REFERENCES holds(id),
    document_id  TEXT NOT NULL REFERENCES documents(id),
    PRIMARY KEY (hold_id, document_id)
);

CREATE TABLE retention_runs (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    as_of       TEXT NOT NULL,          -- YYYY-MM-DD: the day expiry was computed for
    applied     BOOLEAN NOT NULL,       -- 1: expired documents were destroyed
    expired     BIGINT NOT NULL,       -- documents past their retention period
    held        BIGINT NOT NULL,       -- of those, kept because a hold covers them
    destroyed   BIGINT NOT NULL,
    run_by      TEXT REFERENCES users(id), -- NULL: the scheduled job of the service
    started_at  TEXT NOT NULL,
    finished_at TEXT
);

CREATE TABLE destruction_certificates (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id               TEXT PRIMARY KEY,
    run_id           TEXT NOT NULL REFERENCES retention_runs(id),
    document_id      TEXT NOT NULL,
    document_sha256  TEXT NOT NULL,
    document_type    TEXT NOT NULL,
    page_count       BIGINT NOT NULL,
    rule             TEXT NOT NULL,     -- the rule as configured, e.g. "default: 10 years"
    counted_from     TEXT NOT NULL,     -- service date (or the date archived) the rule counted from
    expired_on       TEXT NOT NULL,     -- the first day the document could be destroyed
    destroyed_at     TEXT NOT NULL,
    destroyed_by     TEXT NOT NULL      -- a user id, or 'retention-job'
);

CREATE TABLE releases (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id               TEXT PRIMARY KEY,
    legal_basis      TEXT NOT NULL CHECK (legal_basis IN
                        ('subpoena', 'court-order', 'patient-authorization', 'patient-access',
                         'other')),
    details          BYTEA NOT NULL,      -- sealed JSON: requester, recipient, matter, ...
    received_on      TEXT NOT NULL,      -- YYYY-MM-DD
    due_on           TEXT NOT NULL,
    extended_at      TEXT,               -- a patient-access request's one 30-day extension
    extension_reason BYTEA,               -- sealed
    date_from        TEXT,
    date_to          TEXT,
    document_types   TEXT NOT NULL,      -- JSON array of slugs; empty: every type
    categories       TEXT NOT NULL,      -- JSON array of slugs; empty: every category
    authorizations   TEXT NOT NULL,      -- JSON array: court-order, part2-consent, ...
    bates_prefix     TEXT NOT NULL,
    created_by       TEXT NOT NULL REFERENCES users(id),
    created_at       TEXT NOT NULL
);

CREATE TABLE release_patients (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    release_id  TEXT NOT NULL REFERENCES releases(id),
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    PRIMARY KEY (release_id, patient_id)
);

CREATE TABLE release_attachments (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id            TEXT PRIMARY KEY,
    release_id    TEXT NOT NULL REFERENCES releases(id),
    kind          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    TEXT NOT NULL
);

CREATE TABLE release_exclusions (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    release_id   TEXT NOT NULL REFERENCES releases(id),
    document_id  TEXT NOT NULL REFERENCES documents(id),
    reason       BYTEA NOT NULL,          -- sealed
    created_by   TEXT NOT NULL REFERENCES users(id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (release_id, document_id)
);

CREATE TABLE release_redactions (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id           TEXT PRIMARY KEY,
    release_id   TEXT NOT NULL REFERENCES releases(id),
    document_id  TEXT NOT NULL REFERENCES documents(id),
    page         BIGINT NOT NULL,
    regions      TEXT NOT NULL,          -- JSON array of {left, top, width, height}
    whole_page   BOOLEAN NOT NULL,
    created_by   TEXT NOT NULL REFERENCES users(id),
    created_at   TEXT NOT NULL
);

CREATE TABLE bates_counters (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    prefix  TEXT PRIMARY KEY,
    next    BIGINT NOT NULL
);

CREATE TABLE productions (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY,
    release_id      TEXT NOT NULL REFERENCES releases(id),
    bates_prefix    TEXT,                -- NULL: not Bates-stamped (a patient's own copy)
    bates_first     BIGINT,
    bates_last      BIGINT,
    record_pages    BIGINT NOT NULL,    -- pages of records produced
    pdf_pages       BIGINT NOT NULL,    -- with the certification and manifest pages
    documents       BIGINT NOT NULL,
    certified       BOOLEAN NOT NULL,
    custodian       BYTEA,                -- sealed
    sha256          TEXT NOT NULL,       -- of the PDF
    size_bytes      BIGINT NOT NULL,
    manifest        TEXT NOT NULL,       -- JSON: Bates number → document, page, SHA-256
    created_by      TEXT NOT NULL REFERENCES users(id),
    created_at      TEXT NOT NULL
);

CREATE TABLE hl7_inbound (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    sending_facility TEXT NOT NULL,
    control_id       TEXT NOT NULL,
    message_type     TEXT NOT NULL,
    ack_code         TEXT NOT NULL CHECK (ack_code IN ('AA', 'AE', 'AR')),
    received_at      TEXT NOT NULL,
    PRIMARY KEY (sending_facility, control_id)
);

CREATE TABLE hl7_outbox (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    seq         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('available', 'cancelled')),
    document_id TEXT NOT NULL,
    -- `cancelled` by a correction: the version that replaces it.
    replaced_by TEXT,
    -- MSH-10 of the message, the same on every attempt, so a receiver can drop a resend.
    control_id  TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'refused')),
    created_at  TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    answered_at TEXT,
    ack_code    TEXT
);

CREATE TABLE encounters (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id            TEXT PRIMARY KEY,
    patient_id    TEXT NOT NULL REFERENCES patients(id),
    visit_index   BYTEA NOT NULL UNIQUE,
    visit_number  BYTEA NOT NULL,
    patient_class TEXT,
    admitted_at   BYTEA,
    discharged_at BYTEA,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE dicom_instances (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    document_id  TEXT PRIMARY KEY REFERENCES documents(id),
    study_index  BYTEA NOT NULL,
    series_index BYTEA NOT NULL,
    metadata     BYTEA NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE pages (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    document_id      TEXT NOT NULL REFERENCES documents(id),
    page             BIGINT NOT NULL,     -- 1-based, scan order
    width            BIGINT NOT NULL,
    height           BIGINT NOT NULL,
    dpi              DOUBLE PRECISION,
    mean_confidence  DOUBLE PRECISION NOT NULL,
    word_count       BIGINT NOT NULL,
    created_at       TEXT NOT NULL, blank BOOLEAN NOT NULL DEFAULT FALSE, rotation BIGINT NOT NULL DEFAULT 0, skew_degrees DOUBLE PRECISION, ink DOUBLE PRECISION, text_source TEXT NOT NULL DEFAULT 'ocr',
    PRIMARY KEY (document_id, page)
);

CREATE TABLE jobs (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    document_id  TEXT NOT NULL UNIQUE REFERENCES documents(id),
    state        TEXT NOT NULL CHECK (state IN ('pending','running','done','failed')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE INDEX jobs_state ON jobs(state, id);

CREATE INDEX tokens_user ON tokens(user_id);

CREATE INDEX documents_patient ON documents(patient_id);

CREATE INDEX documents_sha256 ON documents(sha256);

CREATE INDEX care_relationships_user ON care_relationships(user_id, patient_id);

CREATE INDEX break_glass_user ON break_glass(user_id, expires_at);

CREATE INDEX break_glass_unreviewed ON break_glass(reviewed_at);

CREATE INDEX audit_user ON audit(user_index, seq);

CREATE INDEX audit_patient ON audit(patient_index, seq);

CREATE INDEX audit_at ON audit(at);

CREATE INDEX audit_action ON audit(action, seq);

CREATE INDEX audit_break_glass ON audit(seq) WHERE break_glass = 1;

CREATE INDEX disclosures_patient ON disclosures(patient_id, disclosed_at);

CREATE UNIQUE INDEX documents_sop_index ON documents(sop_index)
    WHERE sop_index IS NOT NULL AND status != 'deleted';

CREATE INDEX batches_sha256 ON batches(sha256);

CREATE INDEX batches_status ON batches(status);

CREATE INDEX batch_segments_status ON batch_segments(status);

CREATE INDEX holds_patient ON holds(patient_id) WHERE released_at IS NULL;

CREATE INDEX hold_documents_document ON hold_documents(document_id);

CREATE INDEX destruction_certificates_run ON destruction_certificates(run_id);

CREATE INDEX release_attachments_release ON release_attachments(release_id);

CREATE INDEX release_redactions_release ON release_redactions(release_id, document_id, page);

CREATE INDEX productions_release ON productions(release_id);

CREATE INDEX documents_records_only ON documents(id)
    WHERE qa_reason IS NOT NULL AND status != 'deleted';

CREATE INDEX hl7_outbox_pending ON hl7_outbox (seq) WHERE state = 'pending';

CREATE INDEX hl7_outbox_document ON hl7_outbox (document_id);

CREATE INDEX encounters_patient ON encounters (patient_id);

CREATE INDEX dicom_instances_study ON dicom_instances (study_index);

CREATE FUNCTION audit_no_update_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION audit_no_update_refused();

CREATE FUNCTION audit_no_delete_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit is append-only'; END $$;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_no_delete_refused();

CREATE FUNCTION audit_patients_no_update_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit is append-only'; END $$;
CREATE TRIGGER audit_patients_no_update BEFORE UPDATE ON audit_patients FOR EACH ROW EXECUTE FUNCTION audit_patients_no_update_refused();

CREATE FUNCTION audit_patients_no_delete_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit is append-only'; END $$;
CREATE TRIGGER audit_patients_no_delete BEFORE DELETE ON audit_patients FOR EACH ROW EXECUTE FUNCTION audit_patients_no_delete_refused();

CREATE FUNCTION disclosures_no_update_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'disclosures are append-only'; END $$;
CREATE TRIGGER disclosures_no_update BEFORE UPDATE ON disclosures FOR EACH ROW EXECUTE FUNCTION disclosures_no_update_refused();

CREATE FUNCTION disclosures_no_delete_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'disclosures are append-only'; END $$;
CREATE TRIGGER disclosures_no_delete BEFORE DELETE ON disclosures FOR EACH ROW EXECUTE FUNCTION disclosures_no_delete_refused();

CREATE FUNCTION hold_documents_no_delete_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'a hold keeps its documents; release the hold instead'; END $$;
CREATE TRIGGER hold_documents_no_delete BEFORE DELETE ON hold_documents FOR EACH ROW EXECUTE FUNCTION hold_documents_no_delete_refused();

CREATE FUNCTION destruction_certificates_no_update_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'destruction certificates are append-only'; END $$;
CREATE TRIGGER destruction_certificates_no_update BEFORE UPDATE ON destruction_certificates FOR EACH ROW EXECUTE FUNCTION destruction_certificates_no_update_refused();

CREATE FUNCTION destruction_certificates_no_delete_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'destruction certificates are append-only'; END $$;
CREATE TRIGGER destruction_certificates_no_delete BEFORE DELETE ON destruction_certificates FOR EACH ROW EXECUTE FUNCTION destruction_certificates_no_delete_refused();

CREATE FUNCTION productions_no_update_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'productions are append-only'; END $$;
CREATE TRIGGER productions_no_update BEFORE UPDATE ON productions FOR EACH ROW EXECUTE FUNCTION productions_no_update_refused();

CREATE FUNCTION productions_no_delete_refused() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'productions are append-only'; END $$;
CREATE TRIGGER productions_no_delete BEFORE DELETE ON productions FOR EACH ROW EXECUTE FUNCTION productions_no_delete_refused();
