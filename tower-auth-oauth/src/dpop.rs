//! DPoP-bound opaque tokens (RFC 9449) checked by introspection (RFC 7662).
//!
//! An authorization server that binds an opaque token to a DPoP key says so in its
//! introspection answer, with `cnf.jkt` (RFC 9449 section 6.2). [`DpopIntrospection`] claims
//! `Authorization: DPoP <token>` with a `DPoP` proof when the token is not JWT-shaped (those are
//! the JWT DPoP authenticator's), checks the proof with tower-auth-jwt's
//! [`DpopAuthenticator`] (every check of RFC 9449 sections 4.3 and 7, its replay cache and
//! nonces), introspects the token with an [`IntrospectionAuthenticator`] (its cache, audiences
//! and limits), and requires the answer's `cnf.jkt` to be the thumbprint of the proof key:
//!
//! - a proof by another key is 401 `invalid_dpop_proof`;
//! - a token whose answer carries no `cnf.jkt` (an unbound token sent with the DPoP scheme) is
//!   401 `invalid_token`, on the `DPoP` challenge;
//! - a bound token sent as Bearer is refused by [`IntrospectionAuthenticator`] itself.
//!
//! Compose it before the JWT DPoP authenticator, which claims every `DPoP` token:
//! `api_keys.or(dpop_introspection).or(dpop).or(jwt).or(introspection)`.
//!
//! ```no_run
//! use tower_auth_core::{AuthenticateLayer, Authenticator, DefaultRejection};
//! use tower_auth_jwt::dpop::DpopAuthenticator;
//! use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};
//! use tower_auth_oauth::dpop::DpopIntrospection;
//! use tower_auth_oauth::introspection::IntrospectionAuthenticator;
//!
//! let introspection = IntrospectionAuthenticator::builder("https://auth.example.com/introspect")
//!     .client_id("my-api")
//!     .client_secret("s3cret")
//!     .audiences(["https://api.example.com"])
//!     .build()
//!     .unwrap();
//! let jwt = JwtAuthenticator::builder()
//!     .issuer(TrustedIssuer::new("https://auth.example.com").audience("https://api.example.com")
//!         .hmac_secret(b"a secret of at least 32 bytes, for the example"))
//!     .build()
//!     .unwrap();
//! let dpop = DpopAuthenticator::builder(jwt.clone())
//!     .external_url("https://api.example.com")
//!     .build()
//!     .unwrap();
//! let rejection = DefaultRejection::builder().dpop(dpop.algorithm_names()).build().unwrap();
//! let auth = DpopIntrospection::new(introspection.clone(), dpop.clone())
//!     .or(dpop)
//!     .or(jwt)
//!     .or(introspection);
//! let layer = AuthenticateLayer::required(auth).with_rejection(rejection);
//! # let _ = layer;
//! ```

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use http::request::Parts;
use tower_auth_core::credential::{Found, Location};
use tower_auth_core::{AuthError, Authenticator, BoxAuthFuture, Scheme};
use tower_auth_jwt::dpop::DpopAuthenticator;

use crate::introspection::IntrospectionAuthenticator;

/// Authenticates DPoP-bound opaque tokens by introspection. See the [module docs](self).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct DpopIntrospection {
    introspection: IntrospectionAuthenticator,
    dpop: DpopAuthenticator,
}

impl DpopIntrospection {
    /// Tokens introspected by `introspection`, proofs checked by `dpop` (its settings, replay
    /// cache and nonces; its JWT authenticator is not used).
    pub fn new(introspection: IntrospectionAuthenticator, dpop: DpopAuthenticator) -> Self {
        Self {
            introspection,
            dpop,
        }
    }
}

/// What [`DpopIntrospection`] found: the token and the thumbprint of its checked proof's key.
/// `Debug` does not show the token.
pub struct DpopIntrospectionCredential {
    token: String,
    thumbprint: String,
}

impl fmt::Debug for DpopIntrospectionCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopIntrospectionCredential")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// Whether the request's `Authorization` is `DPoP` with a token that is not a three-segment
/// compact JWS (or is several headers, which the proof check refuses).
fn opaque_dpop(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return false;
    };
    if values.next().is_some() {
        return true;
    }
    let bytes = value.as_bytes();
    let Some((scheme, token)) = bytes.split_at_checked(4) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"dpop") || token.first() != Some(&b' ') {
        return false;
    }
    token.iter().filter(|&&b| b == b'.').count() != 2
}

impl Authenticator for DpopIntrospection {
    type Credential = DpopIntrospectionCredential;
    type Future = BoxAuthFuture;

    fn extract(
        &self,
        parts: &Parts,
    ) -> Result<Option<Found<DpopIntrospectionCredential>>, AuthError> {
        // Decided on the token's shape before the proof is read: a JWT's proof stays unused
        // for the JWT DPoP authenticator.
        if !opaque_dpop(&parts.headers) {
            return Ok(None);
        }
        let Some(binding) = self.dpop.check_resource_request(parts)? else {
            return Ok(None);
        };
        let (token, thumbprint) = binding.into_parts();
        Ok(Some(Found::new(
            DpopIntrospectionCredential { token, thumbprint },
            Location::Authorization,
            Scheme::Introspection,
        )))
    }

    fn authenticate(&self, credential: DpopIntrospectionCredential) -> BoxAuthFuture {
        self.introspection
            .authenticate_bound(credential.token, credential.thumbprint)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use http::{Request, Response, StatusCode};
    use tower::{ServiceExt, service_fn};
    use tower_auth_core::{AuthenticateLayer, DefaultRejection, Principal};
    use tower_auth_jwt::dpop::DpopKey;
    use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};

    use super::*;

    const API: &str = "https://api.test";

    #[derive(Clone)]
    struct Op {
        jkt: String,
        calls: Arc<AtomicUsize>,
    }

    /// Introspection answers: `bound` carries the key's `cnf.jkt`, `unbound` none, `mtls` a
    /// certificate binding only.
    async fn endpoint(State(op): State<Op>, body: String) -> axum::Json<serde_json::Value> {
        op.calls.fetch_add(1, Ordering::SeqCst);
        let token = form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let mut answer = serde_json::json!({"active": true, "sub": "svc", "aud": API});
        match token.as_str() {
            "bound" => answer["cnf"] = serde_json::json!({"jkt": op.jkt}),
            "mtls" => {
                answer["cnf"] =
                    serde_json::json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})
            }
            _ => {}
        }
        axum::Json(answer)
    }

    struct Setup {
        key: DpopKey,
        calls: Arc<AtomicUsize>,
        auth: tower::util::BoxCloneSyncService<Request<()>, Response<()>, Infallible>,
    }

    async fn setup() -> Setup {
        let key = DpopKey::generate(Algorithm::ES256).unwrap();
        let op = Op {
            jkt: key.thumbprint().to_owned(),
            calls: Arc::default(),
        };
        let calls = Arc::clone(&op.calls);
        let app = axum::Router::new()
            .route("/introspect", axum::routing::post(endpoint))
            .with_state(op);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let introspection =
            IntrospectionAuthenticator::builder(format!("http://{addr}/introspect"))
                .client_id("rs")
                .client_secret("rs-secret")
                .audiences([API])
                .insecure_allow_http(true)
                .build()
                .unwrap();
        let jwt = JwtAuthenticator::builder()
            .issuer(
                TrustedIssuer::new("https://as.test")
                    .audience(API)
                    .hmac_secret(b"a secret of at least 32 bytes, for the tests"),
            )
            .build()
            .unwrap();
        let dpop = DpopAuthenticator::builder(jwt.clone())
            .external_url(API)
            .build()
            .unwrap();
        let rejection = DefaultRejection::builder()
            .dpop(dpop.algorithm_names())
            .build()
            .unwrap();
        let auth = DpopIntrospection::new(introspection.clone(), dpop.clone())
            .or(dpop)
            .or(jwt)
            .or(introspection);
        let svc = tower::ServiceBuilder::new()
            .layer(AuthenticateLayer::required(auth).with_rejection(rejection))
            .service(service_fn(|req: Request<()>| async move {
                let p = req.extensions().get::<Principal>().unwrap();
                assert_eq!(p.scheme(), Scheme::Introspection);
                Ok::<_, Infallible>(Response::new(()))
            }));
        Setup {
            key,
            calls,
            auth: tower::util::BoxCloneSyncService::new(svc),
        }
    }

    async fn call(s: &Setup, authorization: &str, proof: Option<String>) -> Response<()> {
        let mut req = Request::get(format!("{API}/items")).header("authorization", authorization);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        s.auth.clone().oneshot(req.body(()).unwrap()).await.unwrap()
    }

    fn proof(key: &DpopKey, token: &str) -> Option<String> {
        Some(
            key.proof("GET", &format!("{API}/items"), Some(token), None)
                .unwrap(),
        )
    }

    /// The `DPoP` challenge of a 401.
    fn dpop_challenge(res: &Response<()>) -> String {
        res.headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("DPoP "))
            .unwrap()
    }

    #[tokio::test]
    async fn a_bound_answer_requires_a_proof_by_its_key() {
        let s = setup().await;
        let res = call(&s, "DPoP bound", proof(&s.key, "bound")).await;
        assert_eq!(res.status(), StatusCode::OK);
        // Another key: the proof is fine, the binding is not.
        let other = DpopKey::generate(Algorithm::EdDSA).unwrap();
        let res = call(&s, "DPoP bound", proof(&other, "bound")).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(dpop_challenge(&res).contains("error=\"invalid_dpop_proof\""));
        // As Bearer: refused, whatever the cache holds.
        let res = call(&s, "Bearer bound", None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let bearer = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(bearer.contains("error=\"invalid_token\""), "{bearer}");
        // One introspection call: the answer is cached for both schemes.
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unbound_answer_is_refused_under_the_dpop_scheme() {
        let s = setup().await;
        for token in ["unbound", "mtls"] {
            let res = call(&s, &format!("DPoP {token}"), proof(&s.key, token)).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{token}");
            assert!(
                dpop_challenge(&res).contains("error=\"invalid_token\""),
                "{token}"
            );
        }
        // Unbound as Bearer is fine.
        let res = call(&s, "Bearer unbound", None).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_bad_proof_is_refused_before_any_introspection_call() {
        let s = setup().await;
        // `ath` of another token, no proof, a replay.
        let res = call(&s, "DPoP bound", proof(&s.key, "other")).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(dpop_challenge(&res).contains("error=\"invalid_dpop_proof\""));
        let res = call(&s, "DPoP bound", None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(s.calls.load(Ordering::SeqCst), 0);
        let p = proof(&s.key, "bound");
        assert_eq!(
            call(&s, "DPoP bound", p.clone()).await.status(),
            StatusCode::OK
        );
        let res = call(&s, "DPoP bound", p).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(dpop_challenge(&res).contains("error=\"invalid_dpop_proof\""));
    }

    #[tokio::test]
    async fn jwt_shaped_dpop_tokens_are_left_to_the_jwt_path() {
        let s = setup().await;
        // Refused by the JWT DPoP authenticator (not a valid JWT), never introspected.
        let res = call(&s, "DPoP a.b.c", proof(&s.key, "a.b.c")).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(dpop_challenge(&res).contains("error=\"invalid_token\""));
        assert_eq!(s.calls.load(Ordering::SeqCst), 0);
    }
}
