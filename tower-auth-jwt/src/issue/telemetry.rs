//! tracing events and metrics counters of the issuer, compiled away when their features are
//! off. Events go to the `tower_auth::jwt::issue` target and never contain a token or a key.
//!
//! Counters:
//! - `tower_auth_jwt_tokens_issued_total`: access tokens signed;
//! - `tower_auth_jwt_refreshes_total{outcome}`: `rotated`, `invalid`,
//!   `invalid_dpop_proof` (a bound session without its key's proof), `reused` (family
//!   revoked), `unavailable`;
//! - `tower_auth_jwt_signing_key_rotations_total`: keys generated (the first one included).

#![allow(unused_variables)]

use super::{IssueError, IssueErrorKind};

#[cfg(feature = "tracing")]
const TARGET: &str = "tower_auth::jwt::issue";

pub(crate) fn issued(kid: &str) {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: TARGET, kid, "access token issued");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_tokens_issued_total").increment(1);
}

pub(crate) fn key_generated(kid: &str, first: bool) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: TARGET, kid, first, "signing key generated");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_signing_key_rotations_total").increment(1);
}

pub(crate) fn refreshed(sid: &str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, sid, "refresh token rotated");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_refreshes_total", "outcome" => "rotated").increment(1);
}

/// A refused refresh; `sid` when the token belonged to a known family.
pub(crate) fn refresh_refused(error: &IssueError, sid: Option<&str>) {
    let outcome = match error.kind() {
        IssueErrorKind::TokenReused => "reused",
        IssueErrorKind::InvalidToken => "invalid",
        IssueErrorKind::InvalidDpopProof => "invalid_dpop_proof",
        _ => "unavailable",
    };
    #[cfg(feature = "tracing")]
    if outcome == "reused" {
        tracing::warn!(
            target: TARGET,
            sid,
            "consumed refresh token presented again; session revoked"
        );
    } else {
        tracing::debug!(target: TARGET, sid, outcome, reason = %error, "refresh refused");
    }
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_refreshes_total", "outcome" => outcome).increment(1);
}

pub(crate) fn session_revoked(sid: &str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, sid, "session revoked");
}

#[cfg(feature = "revocation")]
pub(crate) fn access_token_revoked() {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, "access token revoked");
}

#[cfg(feature = "revocation")]
pub(crate) fn logged_out_everywhere(sessions: u64) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, sessions, "subject logged out everywhere");
}
