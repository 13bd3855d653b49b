-- The change log of API keys: one row per change (kind 'created', 'revoked', 'rotated' or
-- 'updated'), written in the transaction that makes the change, so that every process holding
-- a cache of keys drops the changed key's entry (it polls the log when PRAGMA data_version
-- says another connection committed). seq never decreases and is never reused
-- (AUTOINCREMENT); rows older than the store's retention are deleted, always the oldest first.
-- Last-used times are not changes. Times are Unix milliseconds (UTC).
CREATE TABLE tower_auth_api_key_changes (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    key_hash   BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX tower_auth_api_key_changes_created ON tower_auth_api_key_changes (created_at);
