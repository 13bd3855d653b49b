//! tracing events and metrics counters of the JWT scheme, compiled away when their features are
//! off. Events go to the `tower_auth::jwt` target and never contain a token.
//!
//! Counters:
//! - `tower_auth_jwt_verifications_total{outcome}`: `valid`, `invalid`, `unavailable`, for every
//!   token checked (cache hits included);
//! - `tower_auth_jwt_cache_requests_total{outcome}`: `hit`, `miss` of the verified-token cache.

#![allow(unused_variables)]

use tower_auth_core::AuthError;

#[cfg(feature = "tracing")]
const TARGET: &str = "tower_auth::jwt";

pub(crate) fn verified(cached: bool) {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: TARGET, cached, "token verified");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_verifications_total", "outcome" => "valid").increment(1);
}

pub(crate) fn rejected(error: &AuthError) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: TARGET,
        outcome = error.kind().as_str(),
        reason = error.description(),
        "token rejected"
    );
    #[cfg(feature = "metrics")]
    {
        let outcome = match error.kind() {
            tower_auth_core::AuthErrorKind::Unavailable => "unavailable",
            _ => "invalid",
        };
        metrics::counter!("tower_auth_jwt_verifications_total", "outcome" => outcome).increment(1);
    }
}

pub(crate) fn cache(hit: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_auth_jwt_cache_requests_total",
        "outcome" => if hit { "hit" } else { "miss" }
    )
    .increment(1);
}
