-- API key records. Times are Unix milliseconds (UTC). The key itself is never stored: only its
-- SHA-256 or HMAC-SHA256 digest (key_hash, 32 bytes).
CREATE TABLE tower_auth_api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    key_hash     BLOB    NOT NULL UNIQUE,
    owner        TEXT    NOT NULL,
    name         TEXT,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    metadata     TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX tower_auth_api_keys_owner ON tower_auth_api_keys (owner);
