-- DPoP proofs seen by any instance (the opt-in shared replay cache): the SHA-256 of the proof
-- key's thumbprint and the proof's jti, kept until expires_at (Unix milliseconds, UTC), when
-- the proof's iat has left the window. A row past expires_at may be taken over by a new proof.
CREATE TABLE tower_auth_jwt_dpop_proofs (
    key        BYTEA  NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE INDEX tower_auth_jwt_dpop_proofs_expires
    ON tower_auth_jwt_dpop_proofs (expires_at);
