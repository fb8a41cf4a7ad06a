-- Corrections of misfiled documents. A correction is a new version (a new document row with
-- `supersedes`, its own copies of the original and pages); the old row stays as it was,
-- marked entered in error (`superseded_by`, when, why: the reason sealed), out of the search
-- index and readable to `records` only. In the API its status is 'entered-in-error' (the row
-- stays 'indexed', within the status CHECK).

ALTER TABLE documents ADD COLUMN supersedes TEXT;
ALTER TABLE documents ADD COLUMN superseded_by TEXT;
ALTER TABLE documents ADD COLUMN entered_in_error_at TEXT;
ALTER TABLE documents ADD COLUMN entered_in_error_by TEXT;
ALTER TABLE documents ADD COLUMN correction_reason BLOB;
