-- Visits the registration system reported (HL7 ADT PV1): the encounters documents are filed
-- against. The visit number (PV1-19) is found by its blind index (HMAC under the blind-index
-- key, domain `chartvault:visit:`); it and the admission and discharge times (PV1-44/45)
-- are sealed like every PHI column. The patient class (PV1-2: I, O, E, ...) is not PHI.
CREATE TABLE encounters (
    id            TEXT PRIMARY KEY,
    patient_id    TEXT NOT NULL REFERENCES patients(id),
    visit_index   BLOB NOT NULL UNIQUE,
    visit_number  BLOB NOT NULL,
    patient_class TEXT,
    admitted_at   BLOB,
    discharged_at BLOB,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX encounters_patient ON encounters (patient_id);
