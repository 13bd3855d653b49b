-- Revocations: an append-only log of revoked tokens (kind 'jti', value = the jti) and subject
-- cut-offs (kind 'subject', value = the sub: tokens issued before issued_before are revoked).
-- Each insert is announced in its transaction by a NOTIFY on tower_auth_jwt_revocations.<schema>
-- carrying only its seq (listeners read the row); rows are deleted once expires_at has passed.
-- Times are Unix milliseconds (UTC).
CREATE TABLE tower_auth_jwt_revocations (
    seq           BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT   NOT NULL CHECK (kind IN ('jti', 'subject')),
    issuer        TEXT   NOT NULL,
    value         TEXT   NOT NULL,
    issued_before BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE INDEX tower_auth_jwt_revocations_expires
    ON tower_auth_jwt_revocations (expires_at);
