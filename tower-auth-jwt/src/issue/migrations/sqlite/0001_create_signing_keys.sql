-- Signing keys of tower-auth-jwt's issuer. Times are Unix milliseconds (UTC). `material` is the
-- private key (PKCS #8 DER) or the HMAC secret: keep this database readable by the issuing
-- service only.
CREATE TABLE tower_auth_jwt_signing_keys (
    kid        TEXT    NOT NULL PRIMARY KEY,
    algorithm  TEXT    NOT NULL,
    material   BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);

-- At most one active (not retired) key.
CREATE UNIQUE INDEX tower_auth_jwt_signing_keys_one_active
    ON tower_auth_jwt_signing_keys ((retired_at IS NULL))
    WHERE retired_at IS NULL;
