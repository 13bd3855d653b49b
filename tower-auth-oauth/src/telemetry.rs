//! The metrics of this crate, described for the recorder.

/// Describes the metrics this crate emits, and tower-auth-core's, to the installed recorder,
/// with their help texts (Prometheus `# HELP` lines).
///
/// Call it once after installing the recorder: a recorder installed later does not see the
/// descriptions. Introspection cache lookups are counted by tower-auth-core's
/// `tower_auth_cache_requests_total{cache="introspection"}`.
///
/// | metric | labels | what |
/// |---|---|---|
/// | `tower_auth_introspection_requests_total` | `outcome` | introspected requests: `active`, `rejected` or `error` |
/// | `tower_auth_introspection_calls_total` | | calls to the introspection endpoint |
/// | `tower_auth_client_credentials_token_requests_total` | | token requests of the client-credentials layer |
/// | `tower_auth_login_starts_total` | | logins started at the provider (feature `login`) |
/// | `tower_auth_login_callbacks_total` | `outcome` | login callbacks, by outcome (feature `login`) |
pub fn describe_metrics() {
    tower_auth_core::describe_metrics();
    metrics::describe_counter!(
        "tower_auth_introspection_requests_total",
        "Requests authenticated by token introspection, by outcome: active, rejected or error"
    );
    metrics::describe_counter!(
        "tower_auth_introspection_calls_total",
        "Calls to the introspection endpoint (RFC 7662)"
    );
    metrics::describe_counter!(
        "tower_auth_client_credentials_token_requests_total",
        "Token requests of the client-credentials layer to the token endpoint"
    );
    metrics::describe_counter!(
        "tower_auth_login_starts_total",
        "Logins started at the authorization server (authorization code with PKCE)"
    );
    metrics::describe_counter!(
        "tower_auth_login_callbacks_total",
        "Login callbacks from the authorization server, by outcome"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// `describe_metrics` gives a help text to every metric the crate's code emits.
    #[test]
    fn every_emitted_metric_is_described() {
        let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
        tower_auth_core::testing::assert_metrics_described(
            crate::describe_metrics,
            &tower_auth_core::testing::metric_names_in(src),
            &["tower_auth_introspection_requests_total"],
            &[
                "tower_auth_requests_total",
                "tower_auth_cache_requests_total",
            ],
        );
    }
}
