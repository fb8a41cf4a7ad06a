-- The audit log becomes a sealed hash chain (see src/audit/mod.rs for the exact format),
-- and disclosures are recorded for the accounting of disclosures (45 CFR 164.528).
--
-- Only what queries need stays in the clear: seq, time, action, outcome, the break-glass
-- flag, and HMAC blind indexes of the user id and patient id (under the `audit-blind-index`
-- service key). Everything else (user, role, patient, document, client address, request id,
-- purpose of use, detail) is in `sealed`: the storage envelope under the `audit` service key,
-- bound to the seq. `prev_hash`/`hash` chain the plaintext entries.
--
-- Rows of an archive created before this migration move to `audit_legacy`; the service
-- seals and chains them (oldest first, keeping their times) at its next start, then drops
-- that table and vacuums. Its old append-only triggers are dropped here so the table can go.

DROP TRIGGER audit_no_update;
DROP TRIGGER audit_no_delete;
ALTER TABLE audit RENAME TO audit_legacy;

CREATE TABLE audit (
    seq            INTEGER PRIMARY KEY,     -- 1, 2, 3, ... without gaps: the writer takes last + 1
    at             TEXT NOT NULL,           -- RFC 3339 UTC, milliseconds
    action         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    break_glass    INTEGER NOT NULL CHECK (break_glass IN (0, 1)),
    user_index     BLOB,                    -- HMAC of the user id; NULL when there is none
    patient_index  BLOB,                    -- HMAC of the entry's patient id
    sealed         BLOB NOT NULL,           -- the whole entry, sealed
    prev_hash      BLOB NOT NULL,           -- 32 bytes; zeros for seq 1
    hash           BLOB NOT NULL            -- 32 bytes
);
CREATE INDEX audit_user ON audit(user_index, seq);
CREATE INDEX audit_patient ON audit(patient_index, seq);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_action ON audit(action, seq);
CREATE INDEX audit_break_glass ON audit(seq) WHERE break_glass = 1;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;

-- Further patients an entry names (a search's hits): blind indexes, so a query by patient
-- finds the searches that returned the patient too. Derived from the sealed entry; verify
-- checks it against the entry.
CREATE TABLE audit_patients (
    patient_index  BLOB NOT NULL,
    seq            INTEGER NOT NULL REFERENCES audit(seq),
    PRIMARY KEY (patient_index, seq)
);
CREATE TRIGGER audit_patients_no_update BEFORE UPDATE ON audit_patients BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_patients_no_delete BEFORE DELETE ON audit_patients BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;

-- Disclosures of a patient's records (releases outside the system, productions). Free text
-- and recipients are sealed under the `metadata` key, bound to table, column and row id.
CREATE TABLE disclosures (
    id                 TEXT PRIMARY KEY,
    patient_id         TEXT NOT NULL REFERENCES patients(id),
    disclosed_at       TEXT NOT NULL,       -- the date of the disclosure, YYYY-MM-DD
    document_ids       TEXT NOT NULL,       -- JSON array of document ids (opaque)
    recipient_name     BLOB NOT NULL,       -- sealed
    recipient_address  BLOB,                -- sealed
    description        BLOB NOT NULL,       -- sealed: what was disclosed
    purpose            BLOB NOT NULL,       -- sealed: purpose or legal basis
    source             TEXT NOT NULL CHECK (source IN ('manual', 'production')),
    recorded_by        TEXT NOT NULL REFERENCES users(id),
    recorded_at        TEXT NOT NULL
);
CREATE INDEX disclosures_patient ON disclosures(patient_id, disclosed_at);
CREATE TRIGGER disclosures_no_update BEFORE UPDATE ON disclosures BEGIN SELECT RAISE(ABORT, 'disclosures are append-only'); END;
CREATE TRIGGER disclosures_no_delete BEFORE DELETE ON disclosures BEGIN SELECT RAISE(ABORT, 'disclosures are append-only'); END;
