-- Revocations: an append-only log of revoked tokens (kind 'jti', value = the jti) and subject
-- cut-offs (kind 'subject', value = the sub: tokens issued before issued_before are revoked).
-- seq orders the log for polling; rows are deleted once expires_at has passed. Times are Unix
-- milliseconds (UTC).
CREATE TABLE tower_auth_jwt_revocations (
    seq           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL CHECK (kind IN ('jti', 'subject')),
    issuer        TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    issued_before INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE INDEX tower_auth_jwt_revocations_expires
    ON tower_auth_jwt_revocations (expires_at);
