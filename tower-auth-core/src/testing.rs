//! Checks every [`Authenticator`] is held to (feature `testing`), for the tests of the schemes
//! of the tower-auth crates and of your own.
//!
//! [`assert_now_decides_as_future`] enforces the trait's rule that
//! [`authenticate_now`](Authenticator::authenticate_now) decides exactly as the future of
//! [`authenticate`](Authenticator::authenticate) would, for each request of a set: a
//! well-formed credential and a malformed one, a known and an unknown one, before and after a
//! cache holds them.
//!
//! With feature `metrics` too, [`assert_metrics_described`] checks that a crate's
//! `describe_metrics` gives a help text to every metric its code emits
//! ([`metric_names_in`] finds those in its sources).
//!
//! ```
//! use std::future::{Ready, ready};
//! use http::Request;
//! use http::request::Parts;
//! use tower_auth_core::credential::{Found, Location, bearer_token};
//! use tower_auth_core::testing::assert_now_decides_as_future;
//! use tower_auth_core::{AuthError, Authenticator, Principal, Scheme};
//!
//! struct StaticToken;
//!
//! impl Authenticator for StaticToken {
//!     type Credential = String;
//!     type Future = Ready<Result<Principal, AuthError>>;
//!
//!     fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
//!         Ok(bearer_token(&parts.headers)?
//!             .map(|t| Found::new(t.to_owned(), Location::Authorization, Scheme::Custom("static"))))
//!     }
//!
//!     fn authenticate(&self, token: String) -> Self::Future {
//!         ready(if token == "letmein" {
//!             Ok(Principal::builder("demo", Scheme::Custom("static")).build())
//!         } else {
//!             Err(AuthError::invalid_token("unknown token"))
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let bearer = |t: &str| Request::get("/").header("authorization", format!("Bearer {t}"));
//! assert_now_decides_as_future(
//!     &StaticToken,
//!     [bearer("letmein").body(()).unwrap(), bearer("nope").body(()).unwrap()],
//! )
//! .await;
//! # }
//! ```

use http::Request;

use crate::{AuthError, Authentication, Authenticator, Principal};

/// For each request: extracts its credential (which must be there), decides it with
/// [`authenticate_now`](Authenticator::authenticate_now) (awaiting the future when it is
/// pending) and with [`authenticate`](Authenticator::authenticate), then with
/// `authenticate_now` again (now that a cache may hold the answer), and panics, naming the
/// request's index, unless the three decisions agree: the same principal (as its `Debug`
/// shows it: subject, kind, scheme, issuer, scopes, roles, tenant, expiry) or the same error
/// (kind, status and description).
///
/// # Panics
///
/// When the decisions differ, or a request carries no credential of this scheme or a
/// malformed one (`extract` decides those, not `authenticate`).
pub async fn assert_now_decides_as_future<A, I>(authenticator: &A, requests: I)
where
    A: Authenticator,
    I: IntoIterator<Item = Request<()>>,
{
    for (i, request) in requests.into_iter().enumerate() {
        let (parts, ()) = request.into_parts();
        let credential = || match authenticator.extract(&parts) {
            Ok(Some(found)) => found.credential,
            Ok(None) => panic!("request {i}: no credential of this scheme"),
            Err(e) => panic!("request {i}: extract refused it: {e}"),
        };
        let now = decision(now_or_later(authenticator, credential()).await);
        let future = decision(authenticator.authenticate(credential()).await);
        let again = decision(now_or_later(authenticator, credential()).await);
        assert_eq!(
            now, future,
            "request {i}: authenticate_now and authenticate decide differently"
        );
        assert_eq!(
            again, future,
            "request {i}: authenticate_now decides differently once the answer may be cached"
        );
    }
}

/// The decision of `authenticate_now`, awaiting its future when it is pending.
async fn now_or_later<A: Authenticator>(
    authenticator: &A,
    credential: A::Credential,
) -> Result<Principal, AuthError> {
    match authenticator.authenticate_now(credential) {
        Authentication::Ready(result) => result,
        Authentication::Pending(fut) => fut.await,
    }
}

/// What a decision is compared by.
fn decision(result: Result<Principal, AuthError>) -> String {
    match result {
        Ok(p) => format!("{p:?}"),
        Err(e) => format!("{:?} {} {}", e.kind(), e.status(), e.description()),
    }
}

/// The help text of every metric that `describe` describes, by name, recorded with a local
/// recorder (no global one is installed).
#[cfg(feature = "metrics")]
pub fn metric_descriptions(describe: impl FnOnce()) -> std::collections::BTreeMap<String, String> {
    let recorder = metrics_support::Descriptions::default();
    metrics::with_local_recorder(&recorder, describe);
    recorder.into_inner()
}

/// The metric names the Rust sources under `src` emit: the string literal (`"tower_auth_..."`)
/// that opens a `counter!`, `gauge!` or `histogram!` call (or a macro named `*counter!`), or a
/// `NAME` constant. `describe_*!` calls are not emissions.
///
/// # Panics
///
/// When `src` cannot be read.
#[cfg(feature = "metrics")]
pub fn metric_names_in(src: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for marker in [
                "counter!(",
                "gauge!(",
                "histogram!(",
                "NAME: &'static str =",
            ] {
                for (at, _) in text.match_indices(marker) {
                    if text[..at].ends_with("describe_") {
                        continue;
                    }
                    let rest = text[at + marker.len()..].trim_start();
                    if let Some(name) = rest.strip_prefix("\"tower_auth_")
                        && let Some(end) = name.find('"')
                    {
                        names.insert(format!("tower_auth_{}", &name[..end]));
                    }
                }
            }
        }
    }
    names
}

/// Checks that `describe` (a crate's `describe_metrics`) gives a non-empty help text to every
/// name of `emitted` and describes each of `elsewhere` (other crates' metrics it describes
/// too), and that `emitted` holds each of `sure` (so that the scan that found them is known
/// to work).
///
/// # Panics
///
/// Naming the first metric that is not described, or the sure name not found.
#[cfg(feature = "metrics")]
pub fn assert_metrics_described(
    describe: impl FnOnce(),
    emitted: &std::collections::BTreeSet<String>,
    sure: &[&str],
    elsewhere: &[&str],
) {
    let described = metric_descriptions(describe);
    for name in sure {
        assert!(emitted.contains(*name), "{name} not found in {emitted:?}");
    }
    for name in emitted {
        assert!(
            described.get(name).is_some_and(|h| !h.is_empty()),
            "{name} is not described"
        );
    }
    for name in elsewhere {
        assert!(described.contains_key(*name), "{name} is not described");
    }
}

#[cfg(feature = "metrics")]
mod metrics_support {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    /// A recorder that keeps the help text of every metric described to it.
    #[derive(Default)]
    pub(super) struct Descriptions(Mutex<BTreeMap<String, String>>);

    impl Descriptions {
        fn keep(&self, name: KeyName, help: SharedString) {
            let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
            all.insert(name.as_str().to_owned(), help.into_owned());
        }

        pub(super) fn into_inner(self) -> BTreeMap<String, String> {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl Recorder for Descriptions {
        fn describe_counter(&self, name: KeyName, _: Option<Unit>, help: SharedString) {
            self.keep(name, help);
        }
        fn describe_gauge(&self, name: KeyName, _: Option<Unit>, help: SharedString) {
            self.keep(name, help);
        }
        fn describe_histogram(&self, name: KeyName, _: Option<Unit>, help: SharedString) {
            self.keep(name, help);
        }
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};

    use http::request::Parts;

    use super::*;
    use crate::credential::{Found, Location, bearer_token};
    use crate::{BoxAuthFuture, Scheme};

    /// Answers `authenticate_now` at once with a principal its future would refuse.
    struct Disagrees;

    impl Authenticator for Disagrees {
        type Credential = String;
        type Future = Ready<Result<Principal, AuthError>>;

        fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
            Ok(bearer_token(&parts.headers)?
                .map(|t| Found::new(t.to_owned(), Location::Authorization, Scheme::Jwt)))
        }

        fn authenticate(&self, _token: String) -> Self::Future {
            ready(Err(AuthError::invalid_token("unknown token")))
        }

        fn authenticate_now(&self, _token: String) -> Authentication<Self::Future> {
            Authentication::Ready(Ok(Principal::builder("mallory", Scheme::Jwt).build()))
        }
    }

    /// Agrees, through a boxed pending future.
    struct Agrees;

    impl Authenticator for Agrees {
        type Credential = String;
        type Future = BoxAuthFuture;

        fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
            Disagrees.extract(parts)
        }

        fn authenticate(&self, token: String) -> BoxAuthFuture {
            Box::pin(async move { Ok(Principal::builder(token, Scheme::Jwt).build()) })
        }
    }

    fn bearer(token: &str) -> Request<()> {
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    }

    #[tokio::test]
    #[should_panic(expected = "request 0: authenticate_now and authenticate decide differently")]
    async fn a_fast_path_that_decides_otherwise_fails() {
        assert_now_decides_as_future(&Disagrees, [bearer("t")]).await;
    }

    #[tokio::test]
    async fn agreeing_paths_pass() {
        assert_now_decides_as_future(&Agrees, [bearer("alice"), bearer("bob")]).await;
    }

    #[tokio::test]
    #[should_panic(expected = "request 0: no credential of this scheme")]
    async fn a_request_without_a_credential_is_a_mistake_in_the_test() {
        let request = Request::get("/").body(()).unwrap();
        assert_now_decides_as_future(&Agrees, [request]).await;
    }
}
