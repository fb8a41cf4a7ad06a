-- DICOM instances as DICOMweb finds them: each DICOM document's data set as DICOM JSON
-- (without its pixel data), sealed like every PHI column (it names the patient), and its
-- Study and Series Instance UIDs as blind indexes (HMAC under the blind-index key, domains
-- `chartvault:dicom-study:` and `chartvault:dicom-series:`) so a study is found without
-- them in plaintext. Written in the transaction that records the document; documents from
-- before are filled in by the service from its next start (resumable: a DICOM document
-- without a row is still to do). A tombstone deletes the row.
CREATE TABLE dicom_instances (
    document_id  TEXT PRIMARY KEY REFERENCES documents(id),
    study_index  BLOB NOT NULL,
    series_index BLOB NOT NULL,
    metadata     BLOB NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX dicom_instances_study ON dicom_instances (study_index);
