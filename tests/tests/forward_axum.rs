//! The forward-auth endpoint mounted in an axum router, as the crate docs describe it: the
//! plain path for nginx and Traefik, a wildcard route for Envoy's HTTP mode.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_auth_core::credential::{Location, bearer_token};
use tower_auth_core::{AuthError, Principal, Scheme, from_fn};
use tower_auth_forward::{ForwardAuth, Rule};

fn app() -> Router {
    let auth = from_fn(Location::Authorization, |parts| {
        match bearer_token(&parts.headers)? {
            None => Ok(None),
            Some("good") => Ok(Some(Principal::builder("svc", Scheme::Jwt).build())),
            Some(_) => Err(AuthError::invalid_token("unknown token")),
        }
    });
    let endpoint = ForwardAuth::builder(auth)
        .rule(Rule::path_prefix("/api/"))
        .envoy_prefix("/forward-auth/envoy")
        .build()
        .unwrap();
    Router::new()
        .route_service("/forward-auth", endpoint.clone())
        .route_service("/forward-auth/envoy/{*path}", endpoint)
}

async fn status(req: Request<Body>) -> (StatusCode, Option<String>) {
    let res = app().oneshot(req).await.unwrap();
    let subject = res
        .headers()
        .get("x-auth-subject")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), subject)
}

#[tokio::test]
async fn envoy_http_mode_and_header_modes_behind_axum() {
    let envoy = |auth: Option<&str>| {
        let mut b = Request::post("/forward-auth/envoy/api/items?x=1");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::empty()).unwrap()
    };
    assert_eq!(
        status(envoy(Some("Bearer good"))).await,
        (StatusCode::OK, Some("svc".to_owned()))
    );
    assert_eq!(status(envoy(None)).await.0, StatusCode::UNAUTHORIZED);
    let traefik = Request::get("/forward-auth")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/api/items")
        .header("authorization", "Bearer good")
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(traefik).await.0, StatusCode::OK);
    // Outside the rules: default deny, through the Envoy route too.
    let other = Request::get("/forward-auth/envoy/admin")
        .header("authorization", "Bearer good")
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(other).await.0, StatusCode::FORBIDDEN);
}
