-- Integrity of the rows that grant access: each carries an HMAC-SHA256 under the service's
-- `row-mac` key over the columns that decide what it grants (see src/db/integrity.rs). Rows
-- written before this migration get theirs at the first start (the audit log records it);
-- after that a row without a valid MAC grants nothing.
ALTER TABLE users ADD COLUMN mac BLOB;
ALTER TABLE tokens ADD COLUMN mac BLOB;
ALTER TABLE care_relationships ADD COLUMN mac BLOB;
ALTER TABLE category_grants ADD COLUMN mac BLOB;
ALTER TABLE break_glass ADD COLUMN mac BLOB;
