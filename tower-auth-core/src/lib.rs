//! The core of tower-auth: one [`Principal`] for every scheme, the [`Authenticator`] trait, the
//! [`AuthenticateLayer`] that runs it, composition, authorization layers and one response
//! contract.
//!
//! Schemes live in their own crates (`tower-auth-apikey`, `tower-auth-jwt`, `tower-auth-oauth`);
//! this crate knows none of them. Everything here is generic over request and response bodies
//! (`http::Request<B>`), so the same layers serve axum, tonic and bare hyper.
//!
//! # Quick start
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::credential::{bearer_token, Location};
//! use tower_auth_core::{from_fn, AuthError, AuthenticateLayer, Principal, RequireScopesLayer, Scheme};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A scheme: here a closure; in practice tower-auth-apikey or tower-auth-jwt.
//! let auth = from_fn(Location::Authorization, |parts| match bearer_token(&parts.headers)? {
//!     None => Ok(None),
//!     Some("alice-token") => Ok(Some(
//!         Principal::builder("alice", Scheme::Custom("demo")).scopes(["read:items"]).build(),
//!     )),
//!     Some(_) => Err(AuthError::invalid_token("unknown token")),
//! });
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .layer(RequireScopesLayer::all_of(["write:items"]))
//!     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
//!
//! let req = |token: Option<&str>| {
//!     let mut b = Request::get("/items");
//!     if let Some(t) = token { b = b.header("authorization", format!("Bearer {t}")); }
//!     b.body(()).unwrap()
//! };
//! // No credential: 401 with a bare challenge.
//! assert_eq!(svc.clone().oneshot(req(None)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! // Bad credential: 401 invalid_token.
//! assert_eq!(svc.clone().oneshot(req(Some("x"))).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! // Good credential without the scope: 403 insufficient_scope.
//! let res = svc.oneshot(req(Some("alice-token"))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("scope=\"write:items\""));
//! # }
//! ```
//!
//! # gRPC (tonic)
//!
//! The same layers serve tonic: give each one [`GrpcRejection`], so rejections are gRPC
//! statuses (`UNAUTHENTICATED`, `PERMISSION_DENIED`, ...) rather than HTTP ones, and add them
//! to the server with `Server::builder().layer(..)`, or around the routes.
//!
//! ```
//! use http::Request;
//! use tonic::body::Body;
//! use tonic::service::Routes;
//! use tonic::transport::Server;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_auth_core::credential::{bearer_token, Location};
//! use tower_auth_core::{
//!     from_fn, AuthError, AuthenticateLayer, GrpcRejection, Principal, RequireScopesLayer, Scheme,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = from_fn(Location::Authorization, |parts| match bearer_token(&parts.headers)? {
//!     None => Ok(None),
//!     Some("svc-token") => Ok(Some(
//!         Principal::builder("reporting", Scheme::Custom("demo")).scopes(["reports:read"]).build(),
//!     )),
//!     Some(_) => Err(AuthError::invalid_token("unknown token")),
//! });
//! let (_reporter, health) = tonic_health::server::health_reporter();
//!
//! // A server: `.serve(addr)` on this starts it.
//! let _server = Server::builder()
//!     .layer(AuthenticateLayer::required(auth.clone()).with_rejection(GrpcRejection::new()))
//!     .layer(RequireScopesLayer::all_of(["health:read"]).with_rejection(GrpcRejection::new()))
//!     .add_service(health.clone());
//!
//! // The same stack around the routes, called in process.
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth).with_rejection(GrpcRejection::new()))
//!     .layer(RequireScopesLayer::all_of(["health:read"]).with_rejection(GrpcRejection::new()))
//!     .service(Routes::new(health));
//! let call = |token: Option<&str>| {
//!     let mut req = Request::post("/grpc.health.v1.Health/Check")
//!         .header("content-type", "application/grpc");
//!     if let Some(t) = token {
//!         req = req.header("authorization", format!("Bearer {t}"));
//!     }
//!     svc.clone().oneshot(req.body(Body::empty()).unwrap())
//! };
//! // No credential: UNAUTHENTICATED (16), in an HTTP 200 as gRPC requires.
//! let res = call(None).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["grpc-status"], "16");
//! // A service without the `health:read` scope: PERMISSION_DENIED (7).
//! let res = call(Some("svc-token")).await.unwrap();
//! assert_eq!(res.headers()["grpc-status"], "7");
//! # }
//! ```
//!
//! # Response contract
//!
//! Every scheme and layer answers the same way (RFC 6750 section 3, RFC 7235):
//!
//! | case | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credential at all | 401 | `Bearer realm="api"` |
//! | credentials in two places, duplicate `Authorization` headers | 400 | `Bearer ..., error="invalid_request"` |
//! | bad, empty, expired, revoked, unknown credential | 401 | `Bearer ..., error="invalid_token"` |
//! | authenticated but missing scope | 403 | `Bearer ..., error="insufficient_scope", scope="..."` |
//! | authenticated but missing role / failed predicate | 403 | none |
//! | key store, JWKS or introspection unavailable or late | 503 + `Retry-After: 5` | none |
//! | bad DPoP proof (RFC 9449) | 401 | `DPoP error="invalid_dpop_proof", algs="..."` after `Bearer ...` |
//! | DPoP nonce required | 401 + `DPoP-Nonce` | `DPoP error="use_dpop_nonce", algs="..."` after `Bearer ...` |
//! | rate limit or quota exhausted | 429 + `Retry-After`, `RateLimit` headers | none |
//!
//! On every rejection the inner service is not called and no `Principal` is inserted; error
//! descriptions are fixed strings that never echo the request. Bodies are empty by default
//! ([`DefaultRejection`]); [`ProblemRejection`] sends RFC 9457 problem documents and
//! [`GrpcRejection`] maps the contract onto gRPC status codes. A closure
//! `Fn(&AuthError) -> Response<B>` is a responder too.
//!
//! # Composition
//!
//! - [`Authenticator::or`] composes schemes; see [`Or`] for the exact rules (the most specific
//!   scheme goes first, credentials in two places are a 400, a rejected credential is never
//!   retried with another scheme).
//! - [`AuthenticateLayer::optional`] lets requests with no credential through anonymously.
//! - [`RequireScopesLayer`], [`RequireRolesLayer`] and [`RequireLayer::predicate`] authorize the
//!   principal; put them after (inside) the authenticate layer, per route if you like
//!   (`Router::route_layer` in axum).
//!
//! # Design choices
//!
//! - `Authenticator::extract` is synchronous and sees only the request head; the credential it
//!   returns carries its [`Location`](credential::Location) so [`Or`] can tell "two schemes
//!   claim the same Bearer value" (the earlier wins) from "two credentials in two places" (400).
//! - The authenticate future is an associated type: synchronous schemes use
//!   [`std::future::Ready`] and the request path does not allocate. [`Authenticator::boxed`]
//!   trades one allocation for a nameable type.
//! - The layer clones the inner service and moves the instance that was driven to readiness into
//!   the response future, as tower's documentation prescribes.
//! - A non-`token68` Bearer value (including non-ASCII bytes) is treated as a bad credential
//!   (401 `invalid_token`) rather than a malformed request: it is the token that is wrong.
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tracing` | yes | debug/trace events on the `tower_auth` target; never credentials |
//! | `metrics` | no | `tower_auth_requests_total{scheme,outcome}`, `tower_auth_cache_requests_total{cache,outcome}` through the `metrics` facade |
//! | `axum` | no | extractors for `Principal` and `Option<Principal>` |
//! | `http-client` | no | [`client::HttpClient`]: deadline, size cap, no redirects, https only (hyper-rustls, aws-lc-rs) |
//!
//! # Security notes
//!
//! - Fail closed: when a dependency cannot answer, the request gets 503, never the inner service.
//! - `Debug` output of every type here omits credentials and scheme data.
//! - See RFC 6750 (Bearer tokens), RFC 7235 (HTTP authentication), RFC 9700 (OAuth 2.0 security
//!   best current practice).
//!
//! [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
//! [RFC 7235]: https://www.rfc-editor.org/rfc/rfc7235
//! [RFC 9700]: https://www.rfc-editor.org/rfc/rfc9700

#![cfg_attr(docsrs, feature(doc_cfg))]
// Where other crates' docs link to this one's when these docs are not built beside them (a
// fresh `cargo doc --no-deps`, where crates are documented in parallel).
#![doc(html_root_url = "https://docs.rs/tower-auth-core/0.1.0")]

pub mod authenticate;
mod authenticator;
pub mod cache;
#[cfg(feature = "http-client")]
pub mod client;
pub mod clock;
pub mod credential;
mod error;
#[cfg(feature = "axum")]
pub mod extract;
mod principal;
mod rejection;
pub mod require;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[doc(hidden)]
pub mod sql;
pub mod store;
mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use self::authenticate::{Authenticate, AuthenticateLayer};
pub use self::authenticator::{
    Authentication, Authenticator, BoxAuthFuture, BoxAuthenticator, Either, FromFn, MaybeFuture,
    Or, OrFuture, from_fn,
};
pub use self::cache::CacheConfig;
pub use self::error::{AuthError, AuthErrorKind, ConfigError};
pub use self::principal::{Principal, PrincipalBuilder, PrincipalKind, Roles, Scheme, Scopes};
pub use self::rejection::{
    DefaultRejection, GrpcRejection, OnRejection, ProblemRejection, RejectionBuilder,
};
pub use self::require::{RequireLayer, RequireRolesLayer, RequireScopesLayer};
#[cfg(feature = "metrics")]
pub use self::telemetry::describe_metrics;

#[cfg(test)]
mod html_root_url_tests {
    /// The `html_root_url` above names this crate's version, so links from other crates' docs
    /// land on the right page after a release.
    #[test]
    fn html_root_url_names_this_version() {
        let expected = concat!(
            "html_root_url = \"https://docs.rs/",
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION"),
            "\""
        );
        assert!(include_str!("lib.rs").contains(expected), "{expected}");
    }
}
