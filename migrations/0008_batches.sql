-- Batch uploads: one scanned file of several documents, split by barcode cover sheets.
--
-- batches: the upload. Its file is the object `originals/../{id}` until every one of its
-- pages is filed in a document or rejected; then it is crypto-shredded (`original_destroyed_at`)
-- since each document keeps its own original (its pages of the batch). The row remains.
-- batch_pages: each page as processed (clean-up, OCR, cover-sheet verdict), its artifacts
-- stored under the batch's id until the page is filed; `cover_fields` is sealed (it holds an MRN).
-- batch_segments: the documents the batch was split into, and the page ranges in the QA queue
-- (a range a person split or merged in QA stays, 'split' or 'merged', beside its successors).

CREATE TABLE batches (
    id                    TEXT PRIMARY KEY,
    content_type          TEXT NOT NULL,
    sha256                TEXT NOT NULL,
    size_bytes            INTEGER NOT NULL,
    page_count            INTEGER NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('accepted','processing','split','failed')),
    failure_reason        TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL,
    created_by            TEXT NOT NULL,
    split_at              TEXT,
    original_destroyed_at TEXT
);
CREATE INDEX batches_sha256 ON batches(sha256);
CREATE INDEX batches_status ON batches(status);

CREATE TABLE batch_pages (
    batch_id         TEXT NOT NULL REFERENCES batches(id),
    page             INTEGER NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    dpi              REAL,
    mean_confidence  REAL NOT NULL,
    word_count       INTEGER NOT NULL,
    blank            INTEGER NOT NULL,
    rotation         INTEGER NOT NULL,
    skew_degrees     REAL,
    ink              REAL,
    text_source      TEXT NOT NULL,
    cover            TEXT NOT NULL CHECK (cover IN ('none','cover','unreadable')),
    cover_fields     BLOB,
    cover_reason     TEXT,
    PRIMARY KEY (batch_id, page)
);

CREATE TABLE batch_segments (
    id           TEXT PRIMARY KEY,
    batch_id     TEXT NOT NULL REFERENCES batches(id),
    seq          INTEGER NOT NULL,
    first_page   INTEGER NOT NULL,
    last_page    INTEGER NOT NULL,
    cover_page   INTEGER,
    status       TEXT NOT NULL CHECK (status IN ('pending','qa','filed','rejected','merged','split')),
    qa_reason    TEXT,
    document_id  TEXT NOT NULL,
    resolved_at  TEXT,
    resolved_by  TEXT,
    UNIQUE (batch_id, seq)
);
CREATE INDEX batch_segments_status ON batch_segments(status);
