//! tracing events and metrics counters, compiled away when their features are off.
//!
//! Events go to the `tower_auth` target at debug (rejections) and trace (successes). They name
//! the scheme, the outcome and the fixed error description; never a credential.
//!
//! Counter: `tower_auth_requests_total{scheme, outcome}` where `outcome` is `authenticated`,
//! `anonymous`, or an [`AuthErrorKind`](crate::AuthErrorKind) name.

#![allow(unused_variables)]

use crate::{AuthError, Principal, Scheme};

#[cfg(feature = "tracing")]
pub(crate) const TARGET: &str = "tower_auth";

pub(crate) fn authenticated(principal: &Principal) {
    #[cfg(feature = "tracing")]
    tracing::trace!(
        target: TARGET,
        scheme = principal.scheme().as_str(),
        subject = principal.subject(),
        "request authenticated"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_auth_requests_total",
        "scheme" => principal.scheme().as_str(),
        "outcome" => "authenticated"
    )
    .increment(1);
}

pub(crate) fn anonymous() {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: TARGET, "anonymous request passed (optional authentication)");
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_auth_requests_total",
        "scheme" => "none",
        "outcome" => "anonymous"
    )
    .increment(1);
}

pub(crate) fn rejected(scheme: Option<Scheme>, error: &AuthError) {
    let scheme = scheme.map_or("none", Scheme::as_str);
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: TARGET,
        scheme,
        outcome = error.kind().as_str(),
        description = error.description(),
        cause = error_source(error).as_deref(),
        "request rejected"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_auth_requests_total",
        "scheme" => scheme,
        "outcome" => error.kind().as_str()
    )
    .increment(1);
}

#[cfg(feature = "tracing")]
fn error_source(error: &AuthError) -> Option<String> {
    std::error::Error::source(error).map(|s| s.to_string())
}
