-- Document notifications for the EHR (HL7 v2 MDM over MLLP, see `feeds::mdm`), written in the
-- transaction that makes a document available (indexed, out of QA) or takes it back (entered
-- in error, destroyed), and sent in `seq` order by one sender. No PHI: the message is built
-- when it is sent, from the document and patient rows; a row holds ids, states and the
-- receiver's acknowledgement code.
CREATE TABLE hl7_outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('available', 'cancelled')),
    document_id TEXT NOT NULL,
    -- `cancelled` by a correction: the version that replaces it.
    replaced_by TEXT,
    -- MSH-10 of the message, the same on every attempt, so a receiver can drop a resend.
    control_id  TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'refused')),
    created_at  TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    answered_at TEXT,
    ack_code    TEXT
);
CREATE INDEX hl7_outbox_pending ON hl7_outbox (seq) WHERE state = 'pending';
CREATE INDEX hl7_outbox_document ON hl7_outbox (document_id);
