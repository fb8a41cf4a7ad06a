-- Release-of-information requests (subpoenas, court orders, authorisations, a patient's own
-- request for access) and the productions that answer them.
--
-- Who asked, who receives, the matter, the assurances and every free-text note are sealed
-- (`details`, JSON). The legal basis, dates, filters and ids stay in the clear: they hold
-- no PHI and the checklist and the due-date tracking query them.

CREATE TABLE releases (
    id               TEXT PRIMARY KEY,
    legal_basis      TEXT NOT NULL CHECK (legal_basis IN
                        ('subpoena', 'court-order', 'patient-authorization', 'patient-access',
                         'other')),
    details          BLOB NOT NULL,      -- sealed JSON: requester, recipient, matter, ...
    received_on      TEXT NOT NULL,      -- YYYY-MM-DD
    due_on           TEXT NOT NULL,
    extended_at      TEXT,               -- a patient-access request's one 30-day extension
    extension_reason BLOB,               -- sealed
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
    release_id  TEXT NOT NULL REFERENCES releases(id),
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    PRIMARY KEY (release_id, patient_id)
);

-- Supporting documents (the subpoena scan, the court order, an authorisation), stored
-- encrypted as objects of their own.
CREATE TABLE release_attachments (
    id            TEXT PRIMARY KEY,
    release_id    TEXT NOT NULL REFERENCES releases(id),
    kind          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    TEXT NOT NULL
);
CREATE INDEX release_attachments_release ON release_attachments(release_id);

CREATE TABLE release_exclusions (
    release_id   TEXT NOT NULL REFERENCES releases(id),
    document_id  TEXT NOT NULL REFERENCES documents(id),
    reason       BLOB NOT NULL,          -- sealed
    created_by   TEXT NOT NULL REFERENCES users(id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (release_id, document_id)
);

-- Regions (page-image pixels) burned out of the produced copy; the original is untouched.
CREATE TABLE release_redactions (
    id           TEXT PRIMARY KEY,
    release_id   TEXT NOT NULL REFERENCES releases(id),
    document_id  TEXT NOT NULL REFERENCES documents(id),
    page         INTEGER NOT NULL,
    regions      TEXT NOT NULL,          -- JSON array of {left, top, width, height}
    whole_page   INTEGER NOT NULL,
    created_by   TEXT NOT NULL REFERENCES users(id),
    created_at   TEXT NOT NULL
);
CREATE INDEX release_redactions_release ON release_redactions(release_id, document_id, page);

-- The next Bates number of each prefix: taken only when a production commits, so the
-- numbers are unique and without gaps.
CREATE TABLE bates_counters (
    prefix  TEXT PRIMARY KEY,
    next    INTEGER NOT NULL
);

CREATE TABLE productions (
    id              TEXT PRIMARY KEY,
    release_id      TEXT NOT NULL REFERENCES releases(id),
    bates_prefix    TEXT,                -- NULL: not Bates-stamped (a patient's own copy)
    bates_first     INTEGER,
    bates_last      INTEGER,
    record_pages    INTEGER NOT NULL,    -- pages of records produced
    pdf_pages       INTEGER NOT NULL,    -- with the certification and manifest pages
    documents       INTEGER NOT NULL,
    certified       INTEGER NOT NULL,
    custodian       BLOB,                -- sealed
    sha256          TEXT NOT NULL,       -- of the PDF
    size_bytes      INTEGER NOT NULL,
    manifest        TEXT NOT NULL,       -- JSON: Bates number → document, page, SHA-256
    created_by      TEXT NOT NULL REFERENCES users(id),
    created_at      TEXT NOT NULL
);
CREATE INDEX productions_release ON productions(release_id);
CREATE TRIGGER productions_no_update BEFORE UPDATE ON productions
BEGIN SELECT RAISE(ABORT, 'productions are append-only'); END;
CREATE TRIGGER productions_no_delete BEFORE DELETE ON productions
BEGIN SELECT RAISE(ABORT, 'productions are append-only'); END;
