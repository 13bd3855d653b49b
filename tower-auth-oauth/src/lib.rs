//! OAuth 2.0 for tower services.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::client::HttpClient;
//! use tower_auth_core::{AuthenticateLayer, RequireScopesLayer};
//! use tower_auth_oauth::introspection::IntrospectionAuthenticator;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The authorization server's introspection endpoint (RFC 7662), here a closure: without
//! // `http_client`, the default HTTPS client calls the URL.
//! let endpoint = service_fn(|req: Request<Full<Bytes>>| async move {
//!     let form = req.into_body().collect().await?.to_bytes();
//!     let token = form_urlencoded::parse(&form).find(|(k, _)| k == "token").map(|(_, v)| v);
//!     let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 300;
//!     let answer = match token.as_deref() {
//!         Some("alice-token") => serde_json::json!({
//!             "active": true, "sub": "alice", "scope": "read:items",
//!             "aud": "https://api.example.com", "exp": exp,
//!         }),
//!         _ => serde_json::json!({"active": false}),
//!     };
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer.to_string()))))
//! });
//!
//! let introspection =
//!     IntrospectionAuthenticator::builder("https://auth.example.com/token/introspection")
//!         .client_id("my-api")
//!         .client_secret("s3cret")
//!         .audiences(["https://api.example.com"])
//!         .http_client(HttpClient::builder().service(endpoint).build().unwrap())
//!         .build()
//!         .unwrap();
//!
//! let app = |scope: &'static str| {
//!     ServiceBuilder::new()
//!         .layer(AuthenticateLayer::required(introspection.clone()))
//!         .layer(RequireScopesLayer::all_of([scope]))
//!         .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }))
//! };
//! let request = |token: &str| {
//!     Request::get("/items").header("authorization", format!("Bearer {token}")).body(()).unwrap()
//! };
//! let status = |res: Response<()>| res.status();
//!
//! let ok = app("read:items").oneshot(request("alice-token")).await.unwrap();
//! assert_eq!(status(ok), StatusCode::OK);
//! let inactive = app("read:items").oneshot(request("revoked-token")).await.unwrap();
//! assert_eq!(status(inactive), StatusCode::UNAUTHORIZED);
//! let no_scope = app("write:items").oneshot(request("alice-token")).await.unwrap();
//! assert_eq!(status(no_scope), StatusCode::FORBIDDEN);
//! # }
//! ```
//!
//! The crate's parts:
//!
//! - [`client_credentials`]: the client side for machine-to-machine calls: a layer for outbound
//!   HTTP and gRPC clients that obtains, caches and refreshes client-credentials tokens.
//! - [`introspection`]: the resource-server side for **opaque** access tokens, checked at the
//!   authorization server's RFC 7662 introspection endpoint, with a result cache bounded by each
//!   token's `exp`.
//!
//! - `login` (feature `login`): log users in at an external authorization server with the
//!   authorization code flow, PKCE (S256), `state` and `nonce`, and a validated ID token: the
//!   web backend (or SPA backend-for-frontend) side of "third-party access on behalf of a user".
//! - [`resource_server`]: both token kinds of one authorization server, configured from its
//!   metadata: JWT access tokens verified locally (RFC 9068), opaque ones introspected.
//!
//! JWT access tokens (RFC 9068) are verified locally by `tower-auth-jwt`; compose the two with
//! [`Authenticator::or`](tower_auth_core::Authenticator::or), JWT first, so each token goes to
//! the scheme its shape belongs to (three-segment compact JWS to JWT, anything else to
//! introspection). With API keys in front, the order is API key, JWT, introspection.
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tracing` | yes | debug events on the `tower_auth::oauth` target; never tokens or secrets |
//! | `login` | no | the `login` module: authorization code + PKCE login helper |
//! | `metrics` | no | `tower_auth_login_starts_total`, `tower_auth_login_callbacks_total{outcome}` (with `login`), `tower_auth_introspection_requests_total{outcome}`, `tower_auth_introspection_calls_total`, and the core cache counters with `cache="introspection"` |
//!
//! # Security notes
//!
//! - The resource server's client secret is never printed (`Debug` redacts it) and the HTTP
//!   Basic header carrying it is marked sensitive.
//! - Introspection results are cached by token hash; the raw token is not kept in memory after
//!   the request.
//! - Plain-http endpoints need `insecure_allow_http`; redirects are not followed; every call has
//!   a deadline and a response size cap ([`tower_auth_core::client::HttpClient`]).
//! - See RFC 7662 (introspection), RFC 6750 (Bearer tokens), RFC 9068 (JWT access tokens), RFC
//!   9700 (OAuth 2.0 security best current practice).

#![cfg_attr(docsrs, feature(doc_cfg))]
// Where other crates' docs link to this one's when these docs are not built beside them (a
// fresh `cargo doc --no-deps`, where crates are documented in parallel).
#![doc(html_root_url = "https://docs.rs/tower-auth-oauth/0.1.0")]

pub mod client;
pub mod client_credentials;
pub mod dpop;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod introspection;
#[cfg(feature = "login")]
pub mod login;
pub mod resource_server;
#[cfg(feature = "metrics")]
mod telemetry;
mod token_request;

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
