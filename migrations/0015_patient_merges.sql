-- A patient merged into another by the registration system (HL7 ADT^A40): their documents,
-- care relationships, break-the-glass accesses, holds, disclosures and release requests moved
-- to the survivor; the row stays, so their MRN still finds the survivor's chart (an alias).
ALTER TABLE patients ADD COLUMN merged_into TEXT REFERENCES patients(id);
ALTER TABLE patients ADD COLUMN merged_at TEXT;
