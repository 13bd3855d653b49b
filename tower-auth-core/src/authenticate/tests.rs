use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderName, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::credential::{Found, Location, bearer_token, header_value};
use crate::{AuthError, Authenticator, GrpcRejection, Principal, Scheme};

/// The Bearer token, as the test schemes find it.
fn bearer_string(parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
    Ok(bearer_token(&parts.headers)?
        .map(|t| Found::new(t.to_owned(), Location::Authorization, Scheme::Jwt)))
}

/// Bearer `good` -> alice; `down` -> unavailable; `slow` -> accepted on the second poll;
/// anything else -> invalid_token. Counts authenticate calls.
#[derive(Clone, Default)]
struct TestAuth {
    calls: Arc<AtomicUsize>,
}

impl Authenticator for TestAuth {
    type Credential = String;
    type Future = crate::BoxAuthFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
        bearer_string(parts)
    }

    fn authenticate(&self, token: String) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match token.as_str() {
                "good" => Ok(Principal::builder("alice", Scheme::Jwt).build()),
                "down" => Err(AuthError::unavailable("store unavailable")),
                "slow" => {
                    tokio::task::yield_now().await;
                    Ok(Principal::builder("slow", Scheme::Jwt).build())
                }
                _ => Err(AuthError::invalid_token("unknown token")),
            }
        })
    }
}

/// A header-based scheme, to put a credential in a second place.
#[derive(Clone)]
struct KeyAuth;

impl Authenticator for KeyAuth {
    type Credential = ();
    type Future = Ready<Result<Principal, AuthError>>;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<()>>, AuthError> {
        let name = HeaderName::from_static("x-api-key");
        Ok(header_value(&parts.headers, &name)?
            .map(|_| Found::new((), Location::Header(name.clone()), Scheme::ApiKey)))
    }

    fn authenticate(&self, (): ()) -> Self::Future {
        ready(Ok(Principal::builder("app", Scheme::ApiKey).build()))
    }
}

/// The inner service: counts calls and echoes the principal's subject (or `anonymous`).
fn inner(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |req: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let who = req
            .extensions()
            .get::<Principal>()
            .map_or("anonymous".to_owned(), |p| p.subject().to_owned());
        ready(Ok(Response::new(who)))
    })
}

fn req(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("/");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

async fn run<A>(layer: AuthenticateLayer<A>, r: Request<()>) -> (Response<String>, usize)
where
    A: Authenticator + Clone,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(inner(Arc::clone(&calls)));
    let res = svc.oneshot(r).await.unwrap();
    (res, calls.load(Ordering::SeqCst))
}

fn www(res: &Response<String>) -> Option<&str> {
    res.headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn valid_credential_reaches_inner_with_principal() {
    let (res, calls) = run(
        AuthenticateLayer::required(TestAuth::default()),
        req(&[("authorization", "Bearer good")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "alice");
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn pending_authentication_completes() {
    let (res, calls) = run(
        AuthenticateLayer::required(TestAuth::default()),
        req(&[("authorization", "Bearer slow")]),
    )
    .await;
    assert_eq!(res.body(), "slow");
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn no_credential_is_401_with_bare_challenge() {
    let (res, calls) = run(AuthenticateLayer::required(TestAuth::default()), req(&[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www(&res), Some("Bearer realm=\"api\""));
    assert_eq!(res.body(), "");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn bad_credential_is_401_invalid_token_without_echo() {
    let (res, calls) = run(
        AuthenticateLayer::required(TestAuth::default()),
        req(&[("authorization", "Bearer s3cr3t-guess")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = www(&res).unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(!challenge.contains("s3cr3t"));
    assert_eq!(res.body(), "");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn empty_bearer_is_401_invalid_token() {
    for v in ["Bearer", "Bearer    "] {
        let (res, calls) = run(
            AuthenticateLayer::required(TestAuth::default()),
            req(&[("authorization", v)]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(www(&res).unwrap().contains("invalid_token"));
        assert_eq!(calls, 0);
    }
}

#[tokio::test]
async fn duplicate_authorization_is_400_invalid_request() {
    let (res, calls) = run(
        AuthenticateLayer::required(TestAuth::default()),
        req(&[
            ("authorization", "Bearer good"),
            ("authorization", "Bearer good"),
        ]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(www(&res).unwrap().contains("error=\"invalid_request\""));
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn credentials_in_two_places_is_400() {
    let (res, calls) = run(
        AuthenticateLayer::required(KeyAuth.or(TestAuth::default())),
        req(&[("x-api-key", "k"), ("authorization", "Bearer good")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn or_routes_each_credential_to_its_scheme() {
    let layer = || AuthenticateLayer::required(KeyAuth.or(TestAuth::default()));
    let (res, _) = run(layer(), req(&[("x-api-key", "k")])).await;
    assert_eq!(res.body(), "app");
    let (res, _) = run(layer(), req(&[("authorization", "Bearer good")])).await;
    assert_eq!(res.body(), "alice");
    let (res, calls) = run(layer(), req(&[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn unavailable_dependency_is_503_fail_closed() {
    let (res, calls) = run(
        AuthenticateLayer::required(TestAuth::default()),
        req(&[("authorization", "Bearer down")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[RETRY_AFTER], "5");
    assert_eq!(www(&res), None);
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn optional_lets_anonymous_through_but_not_bad_credentials() {
    let (res, calls) = run(AuthenticateLayer::optional(TestAuth::default()), req(&[])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "anonymous");
    assert_eq!(calls, 1);

    let (res, calls) = run(
        AuthenticateLayer::optional(TestAuth::default()),
        req(&[("authorization", "Bearer nope")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls, 0);

    let (res, calls) = run(
        AuthenticateLayer::optional(TestAuth::default()),
        req(&[("authorization", "Bearer down")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls, 0);

    let (res, _) = run(
        AuthenticateLayer::optional(TestAuth::default()),
        req(&[("authorization", "Bearer good")]),
    )
    .await;
    assert_eq!(res.body(), "alice");
}

#[tokio::test]
async fn a_bearer_token_no_scheme_claims_is_a_bad_credential() {
    // KeyAuth reads only X-API-Key: the Bearer token is nobody's, but it is still a credential.
    for layer in [
        AuthenticateLayer::required(KeyAuth),
        AuthenticateLayer::optional(KeyAuth),
    ] {
        let (res, calls) = run(layer, req(&[("authorization", "Bearer opaque123")])).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(www(&res).unwrap().contains("error=\"invalid_token\""));
        assert_eq!(calls, 0);
    }
    // Another auth-scheme is not a Bearer credential: optional mode lets it through anonymously.
    let (res, calls) = run(
        AuthenticateLayer::optional(KeyAuth),
        req(&[("authorization", "Basic dXNlcjpwYXNz")]),
    )
    .await;
    assert_eq!((res.status(), calls), (StatusCode::OK, 1));
}

#[tokio::test]
async fn grpc_rejection_answers_with_grpc_status() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = AuthenticateLayer::required(TestAuth::default())
        .with_rejection(GrpcRejection::new())
        .layer(inner(Arc::clone(&calls)));
    let res = svc.oneshot(req(&[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// An inner service that is only ready after `ready_after` polls, and panics if `call` reaches
/// an instance that was not driven to readiness.
struct Readiness {
    polls: usize,
    ready_after: usize,
    ready: bool,
}

impl Clone for Readiness {
    fn clone(&self) -> Self {
        // A clone has not been polled: it is not ready.
        Self {
            polls: 0,
            ready_after: self.ready_after,
            ready: false,
        }
    }
}

impl Service<Request<()>> for Readiness {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.polls += 1;
        if self.polls > self.ready_after {
            self.ready = true;
            Poll::Ready(Ok(()))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        assert!(self.ready, "call on an instance that was not polled ready");
        self.ready = false;
        ready(Ok(Response::new("ok".into())))
    }
}

#[test]
fn poll_ready_forwards_backpressure() {
    let mut svc = AuthenticateLayer::required(TestAuth::default()).layer(Readiness {
        polls: 0,
        ready_after: 2,
        ready: false,
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
    assert!(svc.poll_ready(&mut cx).is_pending());
    assert!(svc.poll_ready(&mut cx).is_ready());
}

#[tokio::test]
async fn call_uses_the_instance_that_was_polled_ready() {
    let svc = AuthenticateLayer::required(TestAuth::default()).layer(Readiness {
        polls: 0,
        ready_after: 1,
        ready: false,
    });
    // The authenticate future is pending at first ("slow"), so the inner call happens later,
    // from the future: it must use the ready instance, not the fresh clone.
    let res = svc
        .oneshot(req(&[("authorization", "Bearer slow")]))
        .await
        .unwrap();
    assert_eq!(res.body(), "ok");
}

/// Answers `now-good` (alice) and `now-bad` (invalid_token) in `authenticate_now`; every other
/// token, and anything reaching `authenticate`, goes through a future that answers `future`,
/// so a test can tell which path the layer took.
#[derive(Clone, Default)]
struct NowAuth {
    futures: Arc<AtomicUsize>,
}

impl Authenticator for NowAuth {
    type Credential = String;
    type Future = crate::BoxAuthFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
        bearer_string(parts)
    }

    fn authenticate(&self, token: String) -> Self::Future {
        self.futures.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::task::yield_now().await;
            match token.as_str() {
                "down" => Err(AuthError::unavailable("store unavailable")),
                _ => Ok(Principal::builder("future", Scheme::Jwt).build()),
            }
        })
    }

    fn authenticate_now(&self, token: String) -> crate::Authentication<Self::Future> {
        match token.as_str() {
            "now-good" => {
                crate::Authentication::Ready(Ok(Principal::builder("alice", Scheme::Jwt).build()))
            }
            "now-bad" => crate::Authentication::Ready(Err(AuthError::invalid_token("unknown"))),
            _ => crate::Authentication::Pending(self.authenticate(token)),
        }
    }
}

#[tokio::test]
async fn a_decision_made_at_once_is_applied_without_a_future() {
    let auth = NowAuth::default();
    let (res, calls) = run(
        AuthenticateLayer::required(auth.clone()),
        req(&[("authorization", "Bearer now-good")]),
    )
    .await;
    assert_eq!(
        (res.status(), res.body().as_str(), calls),
        (StatusCode::OK, "alice", 1)
    );

    let (res, calls) = run(
        AuthenticateLayer::optional(auth.clone()),
        req(&[("authorization", "Bearer now-bad")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&res),
        Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"unknown\"")
    );
    assert_eq!(calls, 0);
    assert_eq!(auth.futures.load(Ordering::SeqCst), 0);

    // Undecided: the future decides, and the inner service is called from it.
    let (res, calls) = run(
        AuthenticateLayer::required(auth.clone()),
        req(&[("authorization", "Bearer later")]),
    )
    .await;
    assert_eq!((res.body().as_str(), calls), ("future", 1));
    let (res, calls) = run(
        AuthenticateLayer::required(auth.clone()),
        req(&[("authorization", "Bearer down")]),
    )
    .await;
    assert_eq!((res.status(), calls), (StatusCode::SERVICE_UNAVAILABLE, 0));
    assert_eq!(auth.futures.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn combinators_pass_decisions_made_at_once_through() {
    let auth = NowAuth::default();
    let layers = [
        AuthenticateLayer::required(KeyAuth.or(auth.clone()).boxed()),
        AuthenticateLayer::required(KeyAuth.or(Some(auth.clone())).boxed()),
        AuthenticateLayer::required(KeyAuth.or(Arc::new(auth.clone())).boxed()),
    ];
    for layer in layers {
        let (res, _) = run(layer.clone(), req(&[("authorization", "Bearer now-good")])).await;
        assert_eq!(res.body(), "alice");
        let (res, calls) = run(layer.clone(), req(&[("authorization", "Bearer now-bad")])).await;
        assert_eq!((res.status(), calls), (StatusCode::UNAUTHORIZED, 0));
        let (res, _) = run(layer.clone(), req(&[("authorization", "Bearer later")])).await;
        assert_eq!(res.body(), "future");
        // The other side of `Or` still works, through its future.
        let (res, _) = run(layer, req(&[("x-api-key", "k")])).await;
        assert_eq!(res.body(), "app");
    }
    assert_eq!(auth.futures.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_decision_made_at_once_calls_the_instance_that_was_polled_ready() {
    let svc = AuthenticateLayer::required(NowAuth::default()).layer(Readiness {
        polls: 0,
        ready_after: 1,
        ready: false,
    });
    let res = svc
        .oneshot(req(&[("authorization", "Bearer now-good")]))
        .await
        .unwrap();
    assert_eq!(res.body(), "ok");
}
