-- Refresh-token families (one per login) and their tokens. Times are Unix milliseconds (UTC),
-- as in the SQLite store. A token is never stored: only its SHA-256 (token_hash, 32 bytes).
CREATE TABLE tower_auth_jwt_refresh_families (
    id         TEXT   NOT NULL PRIMARY KEY,
    subject    TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    claims     JSONB  NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX tower_auth_jwt_refresh_families_subject
    ON tower_auth_jwt_refresh_families (subject);

CREATE TABLE tower_auth_jwt_refresh_tokens (
    token_hash  BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id   TEXT   NOT NULL REFERENCES tower_auth_jwt_refresh_families (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT
);

CREATE INDEX tower_auth_jwt_refresh_tokens_family
    ON tower_auth_jwt_refresh_tokens (family_id);
