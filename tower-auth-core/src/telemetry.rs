//! tracing events and metrics counters, compiled away when their features are off.
//!
//! Events go to the `tower_auth` target at debug (rejections) and trace (successes). They name
//! the scheme, the outcome and the fixed error description; never a credential.
//!
//! Counter: `tower_auth_requests_total{scheme, outcome}` where `outcome` is `authenticated`,
//! `anonymous`, or an [`AuthErrorKind`](crate::AuthErrorKind) name.
//!
//! Every label is a literal, so each counter's key is a `static` built at compile time: counting
//! a request allocates nothing and hashes nothing. Only a [`Scheme::Custom`] name, known at run
//! time, builds its key on each call.

#![allow(unused_variables)]

#[cfg(feature = "metrics")]
use crate::AuthErrorKind;
use crate::{AuthError, Principal, Scheme};

/// `tower_auth_requests_total` with literal labels: a `static` key.
#[cfg(feature = "metrics")]
macro_rules! requests_total {
    ($scheme:literal, $outcome:literal) => {
        metrics::counter!(
            "tower_auth_requests_total",
            "scheme" => $scheme,
            "outcome" => $outcome
        )
    };
}

/// `tower_auth_requests_total` for a rejection by a scheme named by a literal, one arm (and one
/// `static` key) per error kind.
#[cfg(feature = "metrics")]
macro_rules! rejected_total {
    ($scheme:literal, $kind:expr) => {
        match $kind {
            AuthErrorKind::MissingCredential => requests_total!($scheme, "missing_credential"),
            AuthErrorKind::InvalidRequest => requests_total!($scheme, "invalid_request"),
            AuthErrorKind::InvalidToken => requests_total!($scheme, "invalid_token"),
            AuthErrorKind::InsufficientScope => requests_total!($scheme, "insufficient_scope"),
            AuthErrorKind::Forbidden => requests_total!($scheme, "forbidden"),
            AuthErrorKind::Unavailable => requests_total!($scheme, "unavailable"),
            AuthErrorKind::InvalidDpopProof => requests_total!($scheme, "invalid_dpop_proof"),
            AuthErrorKind::UseDpopNonce => requests_total!($scheme, "use_dpop_nonce"),
            AuthErrorKind::TooManyRequests => requests_total!($scheme, "too_many_requests"),
        }
    };
}

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
    {
        let counter = match principal.scheme() {
            Scheme::ApiKey => requests_total!("api_key", "authenticated"),
            Scheme::Jwt => requests_total!("jwt", "authenticated"),
            Scheme::Introspection => requests_total!("introspection", "authenticated"),
            Scheme::Custom(name) => metrics::counter!(
                "tower_auth_requests_total",
                "scheme" => name,
                "outcome" => "authenticated"
            ),
        };
        counter.increment(1);
    }
}

pub(crate) fn anonymous() {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: TARGET, "anonymous request passed (optional authentication)");
    #[cfg(feature = "metrics")]
    requests_total!("none", "anonymous").increment(1);
}

pub(crate) fn rejected(scheme: Option<Scheme>, error: &AuthError) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: TARGET,
        scheme = scheme.map_or("none", Scheme::as_str),
        outcome = error.kind().as_str(),
        description = error.description(),
        cause = error_source(error).as_deref(),
        "request rejected"
    );
    #[cfg(feature = "metrics")]
    {
        let kind = error.kind();
        let counter = match scheme {
            None => rejected_total!("none", kind),
            Some(Scheme::ApiKey) => rejected_total!("api_key", kind),
            Some(Scheme::Jwt) => rejected_total!("jwt", kind),
            Some(Scheme::Introspection) => rejected_total!("introspection", kind),
            Some(Scheme::Custom(name)) => metrics::counter!(
                "tower_auth_requests_total",
                "scheme" => name,
                "outcome" => kind.as_str()
            ),
        };
        counter.increment(1);
    }
}

/// Describes the metrics this crate emits to the installed recorder, with their help texts
/// (Prometheus `# HELP` lines).
///
/// Call it once after installing the recorder: a recorder installed later does not see the
/// descriptions. The `describe_metrics` of tower-auth-apikey and tower-auth-oauth call this one
/// too.
///
/// | metric | labels | what |
/// |---|---|---|
/// | `tower_auth_requests_total` | `scheme`, `outcome` | requests through [`AuthenticateLayer`](crate::AuthenticateLayer) |
/// | `tower_auth_cache_requests_total` | `cache`, `outcome` | lookups in an [`AuthCache`](crate::cache::AuthCache) |
#[cfg(feature = "metrics")]
pub fn describe_metrics() {
    metrics::describe_counter!(
        "tower_auth_requests_total",
        "Requests through the authentication layer, by scheme and outcome: authenticated, \
         anonymous, or the rejection kind"
    );
    metrics::describe_counter!(
        "tower_auth_cache_requests_total",
        "Lookups in a credential cache, by cache and outcome (hit or miss)"
    );
}

#[cfg(feature = "tracing")]
fn error_source(error: &AuthError) -> Option<String> {
    std::error::Error::source(error).map(|s| s.to_string())
}

#[cfg(all(test, feature = "metrics"))]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    /// The counters `f` moved, as `name{label=value,...}` (labels in emission order) => count.
    pub(crate) fn counters(f: impl FnOnce()) -> BTreeMap<String, u64> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = value else {
                    panic!("{} is not a counter", key.name())
                };
                (format!("{}{{{}}}", key.name(), labels.join(",")), n)
            })
            .collect()
    }

    /// The one counter `f` moved, and by how much.
    fn only(f: impl FnOnce()) -> (String, u64) {
        let moved = counters(f);
        assert_eq!(moved.len(), 1, "expected one counter, got {moved:?}");
        moved.into_iter().next().unwrap()
    }

    const SCHEMES: [Scheme; 4] = [
        Scheme::ApiKey,
        Scheme::Jwt,
        Scheme::Introspection,
        Scheme::Custom("in_house"),
    ];

    fn errors() -> Vec<AuthError> {
        vec![
            AuthError::missing_credential(),
            AuthError::invalid_request("bad request"),
            AuthError::invalid_token("bad token"),
            AuthError::insufficient_scope("write"),
            AuthError::forbidden("no"),
            AuthError::unavailable("down"),
        ]
    }

    fn requests(scheme: &str, outcome: &str) -> String {
        format!("tower_auth_requests_total{{scheme={scheme},outcome={outcome}}}")
    }

    #[test]
    fn authenticated_is_labelled_with_the_scheme() {
        for scheme in SCHEMES {
            let principal = Principal::builder("s", scheme).build();
            assert_eq!(
                only(|| authenticated(&principal)),
                (requests(scheme.as_str(), "authenticated"), 1)
            );
        }
        // The documented names, spelt out.
        let principal = Principal::builder("s", Scheme::ApiKey).build();
        assert_eq!(
            only(|| authenticated(&principal)).0,
            "tower_auth_requests_total{scheme=api_key,outcome=authenticated}"
        );
        let principal = Principal::builder("s", Scheme::Introspection).build();
        assert_eq!(
            only(|| authenticated(&principal)).0,
            "tower_auth_requests_total{scheme=introspection,outcome=authenticated}"
        );
    }

    #[test]
    fn anonymous_is_labelled_none() {
        assert_eq!(
            only(anonymous),
            (
                "tower_auth_requests_total{scheme=none,outcome=anonymous}".to_owned(),
                1
            )
        );
    }

    #[test]
    fn rejected_is_labelled_with_the_scheme_and_the_error_kind() {
        let schemes = std::iter::once(None).chain(SCHEMES.map(Some));
        for scheme in schemes {
            for error in errors() {
                assert_eq!(
                    only(|| rejected(scheme, &error)),
                    (
                        requests(scheme.map_or("none", Scheme::as_str), error.kind().as_str()),
                        1
                    ),
                );
            }
        }
        assert_eq!(
            only(|| rejected(Some(Scheme::Jwt), &AuthError::invalid_token("x"))).0,
            "tower_auth_requests_total{scheme=jwt,outcome=invalid_token}"
        );
        assert_eq!(
            only(|| rejected(None, &AuthError::missing_credential())).0,
            "tower_auth_requests_total{scheme=none,outcome=missing_credential}"
        );
    }

    /// Runs `f` with the no-op metrics recorder and no tracing subscriber on this thread: another
    /// test of this binary may install a global subscriber, whose events would allocate.
    fn quietly(f: impl FnOnce()) {
        let f = || metrics::with_local_recorder(&metrics::NoopRecorder, f);
        #[cfg(feature = "tracing")]
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f);
        #[cfg(not(feature = "tracing"))]
        f();
    }

    #[test]
    fn counting_a_request_allocates_nothing() {
        let principals: Vec<Principal> = SCHEMES[..3]
            .iter()
            .map(|&s| Principal::builder("s", s).build())
            .collect();
        let errors = errors();
        let schemes = [
            None,
            Some(Scheme::ApiKey),
            Some(Scheme::Jwt),
            Some(Scheme::Introspection),
        ];
        let count_all = || {
            for p in &principals {
                authenticated(p);
            }
            anonymous();
            for scheme in schemes {
                for e in &errors {
                    rejected(scheme, e);
                }
            }
        };
        quietly(|| {
            // First calls may set up thread-locals and tracing call sites.
            count_all();
            let info = allocation_counter::measure(count_all);
            assert_eq!(info.count_total, 0, "{info:?}");
            // A custom scheme's name is only known at run time: its key is built per call. This
            // is also what shows the measurement above is live.
            let custom = Principal::builder("s", Scheme::Custom("in_house")).build();
            let info = allocation_counter::measure(|| authenticated(&custom));
            assert!(info.count_total > 0, "{info:?}");
        });
    }

    /// `describe_metrics` gives a help text to every metric the crate's code emits.
    #[test]
    fn every_emitted_metric_is_described() {
        let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
        crate::testing::assert_metrics_described(
            crate::describe_metrics,
            &crate::testing::metric_names_in(src),
            &["tower_auth_cache_requests_total"],
            &[],
        );
    }
}
