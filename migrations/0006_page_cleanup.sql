-- What clean-up did to each page before OCR: blank pages are flagged (kept, not recognised),
-- and the turn and skew correction that made the stored page image upright and straight.
-- Where the page's text came from: 'ocr', 'text-layer' (a PDF's own text, no OCR), 'dicom'
-- (a DICOM file's attributes) or 'none' (a blank page). Structure only, no content.

ALTER TABLE pages ADD COLUMN blank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pages ADD COLUMN rotation INTEGER NOT NULL DEFAULT 0;   -- degrees turned clockwise
ALTER TABLE pages ADD COLUMN skew_degrees REAL;                     -- skew measured and corrected
ALTER TABLE pages ADD COLUMN ink REAL;                              -- fraction of the page inked
ALTER TABLE pages ADD COLUMN text_source TEXT NOT NULL DEFAULT 'ocr';
