//! DPoP with the built-in issuer (RFC 9449 section 5): a login with a proof binds the access
//! token (`cnf.jkt`, `token_type` `DPoP`) and the session's refresh tokens to the proof key; a
//! refresh of a bound session without that key's proof is refused without consuming the
//! token or revoking the session; an unbound session stays unbound; cookies and DPoP do not
//! mix.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use serde_json::Value;
use tower::{Layer as _, ServiceExt, service_fn};
use tower_auth_core::{AuthErrorKind, AuthenticateLayer, Authenticator};
use tower_auth_jwt::dpop::{DpopAuthenticator, DpopKey};
use tower_auth_jwt::issue::{
    IssueErrorKind, JwtIssuer, MemoryStore, RefreshTokens, SessionEndpoints, TokenRequest,
};
use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};

const BASE: &str = "https://app.example";

struct Setup {
    issuer: JwtIssuer,
    jwt: JwtAuthenticator,
    dpop: DpopAuthenticator,
}

fn setup() -> Setup {
    let store = MemoryStore::new();
    let issuer = JwtIssuer::builder(store.clone())
        .issuer(BASE)
        .audience("app-api")
        .client_id("app-web")
        .refresh_tokens(RefreshTokens::new(store))
        .build()
        .unwrap();
    let jwt = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(BASE)
                .audience("app-api")
                .algorithms([issuer.algorithm()])
                .key_source(issuer.clone()),
        )
        .build()
        .unwrap();
    let dpop = DpopAuthenticator::builder(jwt.clone())
        .external_url(BASE)
        .build()
        .unwrap();
    Setup { issuer, jwt, dpop }
}

/// The head of a `POST` to `path`, with a proof when given.
fn post(path: &str, proof: Option<String>) -> Parts {
    let mut b = Request::post(path);
    if let Some(p) = proof {
        b = b.header("dpop", p);
    }
    b.body(()).unwrap().into_parts().0
}

fn token_proof(key: &DpopKey, path: &str) -> Option<String> {
    Some(
        key.proof("POST", &format!("{BASE}{path}"), None, None)
            .unwrap(),
    )
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A `GET /orders` through `DPoP or Bearer`, with the token under `scheme`.
async fn call(s: &Setup, scheme: &str, token: &str, proof: Option<String>) -> StatusCode {
    let svc = AuthenticateLayer::required(s.dpop.clone().or(s.jwt.clone())).layer(service_fn(
        |_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) },
    ));
    let mut b = Request::get("/orders").header("authorization", format!("{scheme} {token}"));
    if let Some(p) = proof {
        b = b.header("dpop", p);
    }
    svc.oneshot(b.body(()).unwrap()).await.unwrap().status()
}

#[tokio::test]
async fn a_login_with_a_proof_binds_the_session_to_its_key() {
    let s = setup();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let jkt = s
        .dpop
        .check_token_request(&post("/auth/login", token_proof(&key, "/auth/login")))
        .unwrap()
        .unwrap();
    assert_eq!(jkt, key.thumbprint());
    let pair = s
        .issuer
        .login(&TokenRequest::new("alice").dpop_jkt(&jkt))
        .await
        .unwrap();
    let access = pair.access_token();
    assert_eq!(access.token_type(), "DPoP");
    assert_eq!(claims(access.as_str())["cnf"]["jkt"], jkt);

    // The resource: with a proof, yes; as Bearer, no.
    let at = access.as_str();
    let proof = key
        .proof("GET", &format!("{BASE}/orders"), Some(at), None)
        .unwrap();
    assert_eq!(call(&s, "DPoP", at, Some(proof)).await, StatusCode::OK);
    assert_eq!(call(&s, "Bearer", at, None).await, StatusCode::UNAUTHORIZED);
    let thief = DpopKey::generate(Algorithm::ES256).unwrap();
    let proof = thief
        .proof("GET", &format!("{BASE}/orders"), Some(at), None)
        .unwrap();
    assert_eq!(
        call(&s, "DPoP", at, Some(proof)).await,
        StatusCode::UNAUTHORIZED
    );

    // Refresh without a proof, or with another key's: refused, nothing consumed or revoked.
    let rt = pair.refresh_token().expose_secret().to_owned();
    for proof_jkt in [None, Some(thief.thumbprint())] {
        let e = s.issuer.refresh_dpop(&rt, proof_jkt).await.unwrap_err();
        assert_eq!(e.kind(), IssueErrorKind::InvalidDpopProof);
        assert_eq!(e.to_auth_error().kind(), AuthErrorKind::InvalidDpopProof);
    }
    let e = s.issuer.refresh(&rt).await.unwrap_err();
    assert_eq!(e.kind(), IssueErrorKind::InvalidDpopProof);
    // With the key: the same refresh token still works, and the new tokens are bound.
    let next = s
        .issuer
        .refresh_dpop(&rt, Some(key.thumbprint()))
        .await
        .unwrap();
    assert_eq!(next.session_id(), pair.session_id());
    assert_eq!(next.access_token().token_type(), "DPoP");
    assert_eq!(claims(next.access_token().as_str())["cnf"]["jkt"], jkt);
    // The next refresh still needs the key.
    let rt2 = next.refresh_token().expose_secret();
    assert_eq!(
        s.issuer.refresh_dpop(rt2, None).await.unwrap_err().kind(),
        IssueErrorKind::InvalidDpopProof
    );
    assert!(
        s.issuer
            .refresh_dpop(rt2, Some(key.thumbprint()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_session_that_started_unbound_stays_unbound() {
    let s = setup();
    let key = DpopKey::generate(Algorithm::EdDSA).unwrap();
    let pair = s.issuer.login(&TokenRequest::new("bob")).await.unwrap();
    assert_eq!(pair.access_token().token_type(), "Bearer");
    let next = s
        .issuer
        .refresh_dpop(pair.refresh_token().expose_secret(), Some(key.thumbprint()))
        .await
        .unwrap();
    assert_eq!(next.access_token().token_type(), "Bearer");
    assert!(claims(next.access_token().as_str()).get("cnf").is_none());
    assert_eq!(
        call(&s, "Bearer", next.access_token().as_str(), None).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_request_proofs_are_checked_like_resource_proofs() {
    let s = setup();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    // No proof: no binding.
    assert_eq!(
        s.dpop
            .check_token_request(&post("/auth/login", None))
            .unwrap(),
        None
    );
    // A replayed proof, a proof for another route.
    let proof = token_proof(&key, "/auth/login");
    s.dpop
        .check_token_request(&post("/auth/login", proof.clone()))
        .unwrap();
    let e = s
        .dpop
        .check_token_request(&post("/auth/login", proof))
        .unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::InvalidDpopProof);
    let e = s
        .dpop
        .check_token_request(&post("/auth/refresh", token_proof(&key, "/auth/login")))
        .unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::InvalidDpopProof);
    // Two proofs.
    let mut parts = post("/auth/login", token_proof(&key, "/auth/login"));
    parts.headers.append(
        "dpop",
        token_proof(&key, "/auth/login").unwrap().parse().unwrap(),
    );
    let e = s.dpop.check_token_request(&parts).unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::InvalidRequest);
}

#[tokio::test]
async fn cnf_is_the_issuers_to_set() {
    let s = setup();
    let e = s
        .issuer
        .login(&TokenRequest::new("alice").claim("cnf", serde_json::json!({"jkt": "x"})))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), IssueErrorKind::InvalidRequest);
}

#[tokio::test]
async fn session_cookies_and_dpop_do_not_mix() {
    let s = setup();
    let key = DpopKey::generate(Algorithm::ES256).unwrap();
    let endpoints = SessionEndpoints::new(s.issuer.clone());
    let res = endpoints
        .login(
            &post("/auth/login", token_proof(&key, "/auth/login")),
            &TokenRequest::new("alice"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("set-cookie").is_none());
    let res = endpoints
        .refresh(&post("/auth/refresh", token_proof(&key, "/auth/refresh")))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Without a proof, cookie login works as before.
    let res = endpoints
        .login(&post("/auth/login", None), &TokenRequest::new("alice"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
