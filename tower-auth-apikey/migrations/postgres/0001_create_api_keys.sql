-- API key records. Times are Unix milliseconds (UTC), as in the SQLite schema; read them with
-- to_timestamp(expires_at / 1000.0). The key itself is never stored: only its SHA-256 or
-- HMAC-SHA256 digest (key_hash, 32 bytes).
CREATE TABLE tower_auth_api_keys (
    id           TEXT   NOT NULL PRIMARY KEY,
    key_hash     BYTEA  NOT NULL UNIQUE,
    owner        TEXT   NOT NULL,
    name         TEXT,
    scopes       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    metadata     JSONB  NOT NULL DEFAULT '{}'
);

CREATE INDEX tower_auth_api_keys_owner ON tower_auth_api_keys (owner);
