-- DICOM attachments and the QA queue.
--
-- sop_index: a DICOM instance's SOP Instance UID as a keyed blind index (HMAC-SHA256 under
-- the `mrn-blind-index` service key, domain-separated): an instance is stored once; a second
-- upload of it is a duplicate. A tombstone frees it.
-- qa_reason: why a person has to look at the document before clinicians see it; structure
-- only, never a value from the file. A processed document with a qa_reason is in the QA queue
-- (the API shows its status as 'qa'; the row stays 'indexed', within the status CHECK).
-- notice: what the archive could not do but the document is still usable for (a DICOM file
-- without a decodable preview); structure only.

ALTER TABLE documents ADD COLUMN sop_index BLOB;
ALTER TABLE documents ADD COLUMN qa_reason TEXT;
ALTER TABLE documents ADD COLUMN notice TEXT;
CREATE UNIQUE INDEX documents_sop_index ON documents(sop_index)
    WHERE sop_index IS NOT NULL AND status != 'deleted';
