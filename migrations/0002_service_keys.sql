-- Keys the service itself uses (the search index's key now; blind-index keys later), by
-- purpose. The keys themselves live wrapped in the keyring like every data key.
CREATE TABLE service_keys (
    purpose     TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES keyring(key_id),
    created_at  TEXT NOT NULL
);
