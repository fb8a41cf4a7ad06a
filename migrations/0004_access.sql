-- Who may see which patients and categories: care relationships (a clinician sees only the
-- patients on their care list), grants of sensitive categories, and break-the-glass access.
-- Ids only, except a break-glass reason, which is free text and therefore sealed.

CREATE TABLE care_relationships (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    starts_on   TEXT NOT NULL,             -- first day (UTC date) the relationship holds
    ends_on     TEXT,                      -- last day it holds; NULL = open-ended
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    ended_by    TEXT                       -- who ended it early (ends_on set then)
);
CREATE INDEX care_relationships_user ON care_relationships(user_id, patient_id);

CREATE TABLE category_grants (
    user_id     TEXT NOT NULL REFERENCES users(id),
    category    TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, category)
);

CREATE TABLE break_glass (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    patient_id   TEXT NOT NULL REFERENCES patients(id),
    reason_code  TEXT NOT NULL,
    reason       BLOB NOT NULL,            -- sealed free text
    started_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    reviewed_at  TEXT,
    reviewed_by  TEXT,
    review_outcome TEXT CHECK (review_outcome IN ('appropriate','inappropriate')),
    review_note  BLOB                      -- sealed free text
);
CREATE INDEX break_glass_user ON break_glass(user_id, expires_at);
CREATE INDEX break_glass_unreviewed ON break_glass(reviewed_at);
