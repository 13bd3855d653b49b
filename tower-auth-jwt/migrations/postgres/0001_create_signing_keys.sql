-- Signing keys of tower-auth-jwt's issuer. Times are Unix milliseconds (UTC), as in the SQLite
-- store. `material` is the private key (PKCS #8 DER) or the HMAC secret: grant access to this
-- table to the issuing service only.
CREATE TABLE tower_auth_jwt_signing_keys (
    kid        TEXT   NOT NULL PRIMARY KEY,
    algorithm  TEXT   NOT NULL,
    material   BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- At most one active (not retired) key.
CREATE UNIQUE INDEX tower_auth_jwt_signing_keys_one_active
    ON tower_auth_jwt_signing_keys ((retired_at IS NULL))
    WHERE retired_at IS NULL;
