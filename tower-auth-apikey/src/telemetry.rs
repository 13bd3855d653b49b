//! tracing events (target `tower_auth::apikey`) and `tower_auth_apikey_*` counters, compiled away
//! when their features are off. Nothing here ever receives key material: only outcomes, public
//! key ids and store errors.

#![allow(unused_variables)]

#[cfg(feature = "tracing")]
pub(crate) const TARGET: &str = "tower_auth::apikey";

/// One authentication attempt and how it ended: `authenticated`, `malformed`, `bad_checksum`,
/// `other_environment`, `unknown`, `revoked`, `expired` or `unavailable`.
pub(crate) fn outcome(outcome: &'static str, key_id: Option<&str>) {
    #[cfg(feature = "tracing")]
    {
        if outcome == "authenticated" {
            tracing::trace!(target: TARGET, outcome, key_id, "api key accepted");
        } else {
            tracing::debug!(target: TARGET, outcome, key_id, "api key rejected");
        }
    }
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_requests_total", "outcome" => outcome).increment(1);
}

/// A lookup answered from the cache (`hit`) or from the store (`miss`).
pub(crate) fn cache(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_cache_requests_total", "outcome" => outcome).increment(1);
}

/// A store call (`find_by_hash`, `record_last_used`) is about to be made.
pub(crate) fn store_query(op: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_store_queries_total", "op" => op).increment(1);
}

/// A store call failed (`reason` = `error` or `timeout`).
pub(crate) fn store_failure(op: &'static str, reason: &'static str, error: &crate::StoreError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, op, reason, error = %error, "api key store call failed");
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_auth_apikey_store_failures_total",
        "op" => op,
        "reason" => reason
    )
    .increment(1);
}

/// A lookup failed and was answered from the stale-if-error copy.
pub(crate) fn stale_served(key_id: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, key_id, "api key store unavailable: serving a stale record");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_stale_served_total").increment(1);
}

/// A cache invalidation pushed by the store (`key` or `all`).
pub(crate) fn invalidation(kind: &'static str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, kind, "api key cache invalidated by the store");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_invalidations_total", "kind" => kind).increment(1);
}

/// The store's invalidation feed is (again) listening.
#[cfg(feature = "postgres")]
pub(crate) fn listener_connected() {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, "api key invalidation listener connected");
}

/// The store's invalidation feed lost its connection or failed to connect; it retries.
#[cfg(feature = "postgres")]
pub(crate) fn listener_failed(error: &crate::StoreError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, error = %error, "api key invalidation listener failed, reconnecting");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_listener_failures_total").increment(1);
}
