-- The SHA-1 of each original (FHIR's Attachment.hash), beside its SHA-256. Recorded when a
-- document is accepted; documents from before are filled in by the service, one at a
-- time, in the background from its next start (resumable: a NULL is still to do).
ALTER TABLE documents ADD COLUMN sha1 TEXT;
