-- What clean-up did to each page before OCR: blank pages are flagged (kept, not recognised),
-- and the turn and skew correction that made the stored page image upright and straight.
-- Structure only, no content.

ALTER TABLE pages ADD COLUMN blank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pages ADD COLUMN rotation INTEGER NOT NULL DEFAULT 0;   -- degrees turned clockwise
ALTER TABLE pages ADD COLUMN skew_degrees REAL;                     -- skew measured and corrected
ALTER TABLE pages ADD COLUMN ink REAL;                              -- fraction of the page inked
