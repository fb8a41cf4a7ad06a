-- A document's job has two stages: `recognise` (its pages decoded, recognised and stored,
-- by any process running OCR engines) and `index` (its stored pages indexed, by the one
-- process holding the index writer). A process that does both runs them in one claim.
ALTER TABLE jobs ADD COLUMN stage TEXT NOT NULL DEFAULT 'recognise'
    CHECK (stage IN ('recognise', 'index'));
CREATE INDEX jobs_stage ON jobs(state, stage, id);
