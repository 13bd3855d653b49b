//! Forward authentication for proxies: nginx `auth_request`, Traefik ForwardAuth and Envoy
//! `ext_authz`, answered with tower-auth's authenticators, caches, scope rules and response
//! contract.
//!
//! A proxy in front of services written in any language asks an endpoint whether to let each
//! request through. [`ForwardAuth`] is that endpoint: a tower `Service<http::Request<B>>` built
//! from any [`Authenticator`](tower_auth_core::Authenticator) (several schemes composed with
//! [`or`](tower_auth_core::Authenticator::or)) and a set of [`Rule`]s. It answers `200` with
//! identity headers and an empty body, or the response contract's refusal (status and
//! `WWW-Authenticate`) for the proxy to pass on. With the `envoy-grpc` feature the same
//! decisions are served as Envoy's gRPC `Authorization/Check` API ([`envoy`]).
//!
//! # Quick start
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::credential::{bearer_token, Location};
//! use tower_auth_core::{from_fn, AuthError, Principal, Scheme};
//! use tower_auth_forward::{ForwardAuth, Rule};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A scheme: here a closure; in practice tower-auth-apikey, tower-auth-jwt, or both with `or`.
//! let auth = from_fn(Location::Authorization, |parts| match bearer_token(&parts.headers)? {
//!     None => Ok(None),
//!     Some("reader-token") => Ok(Some(
//!         Principal::builder("alice", Scheme::Custom("demo")).scopes(["read:items"]).build(),
//!     )),
//!     Some(_) => Err(AuthError::invalid_token("unknown token")),
//! });
//!
//! let endpoint = ForwardAuth::builder(auth)
//!     .rule(Rule::path_prefix("/api/").methods(["GET", "HEAD"]).scopes(["read:items"]))
//!     .rule(Rule::path_prefix("/api/").methods(["POST"]).scopes(["write:items"]))
//!     .rule(Rule::path("/health").anonymous(true))
//!     .build()
//!     .unwrap();
//! let endpoint = ServiceBuilder::new().concurrency_limit(1024).service(endpoint);
//!
//! // A toy proxy, as nginx's `auth_request` does it: ask the endpoint, then call the upstream
//! // with the identity it answered, or pass the refusal on.
//! let upstream = service_fn(|req: Request<()>| async move {
//!     let who = req.headers()["x-auth-subject"].to_str().unwrap().to_owned();
//!     Ok::<_, Infallible>(Response::new(who))
//! });
//! let proxy = |method: &str, uri: &str, token: Option<&str>| {
//!     let mut ask = Request::get("/forward-auth")
//!         .header("x-original-method", method)
//!         .header("x-original-uri", uri);
//!     if let Some(t) = token {
//!         ask = ask.header("authorization", format!("Bearer {t}"));
//!     }
//!     let endpoint = endpoint.clone();
//!     async move {
//!         let answer = endpoint.oneshot(ask.body(()).unwrap()).await.unwrap();
//!         if answer.status() != StatusCode::OK {
//!             return (answer.status(), None);
//!         }
//!         let mut req = Request::new(());
//!         req.headers_mut().insert("x-auth-subject", answer.headers()["x-auth-subject"].clone());
//!         (StatusCode::OK, Some(upstream.oneshot(req).await.unwrap().into_body()))
//!     }
//! };
//!
//! assert_eq!(proxy("GET", "/api/items", Some("reader-token")).await, (StatusCode::OK, Some("alice".into())));
//! assert_eq!(proxy("GET", "/api/items", None).await.0, StatusCode::UNAUTHORIZED);
//! assert_eq!(proxy("GET", "/api/items", Some("forged")).await.0, StatusCode::UNAUTHORIZED);
//! assert_eq!(proxy("POST", "/api/items", Some("reader-token")).await.0, StatusCode::FORBIDDEN);
//! assert_eq!(proxy("GET", "/admin", Some("reader-token")).await.0, StatusCode::FORBIDDEN);
//! # }
//! ```
//!
//! Serve it like any tower service: with axum, `Router::new().route_service("/forward-auth",
//! endpoint)`. For Envoy's HTTP mode, route the prefix with a wildcard so the endpoint sees the
//! whole path (`.route_service("/forward-auth/envoy/{*path}", endpoint)`); `nest_service`
//! would strip the prefix it needs.
//!
//! # The original request
//!
//! The proxy says which request it asks about in one of three ways; a request that says it in
//! more than one way, names a header twice, or gives a path without a method is refused (400
//! `invalid_request`), because a client can send whichever headers its proxy does not set:
//!
//! | proxy | method | request target |
//! |---|---|---|
//! | Traefik ForwardAuth | `X-Forwarded-Method` | `X-Forwarded-Uri` (`X-Forwarded-Host` is ignored: rules match paths) |
//! | nginx `auth_request` | `X-Original-Method` | `X-Original-URI` |
//! | Envoy `ext_authz`, HTTP mode | the request's own | the request's own path after [`envoy_prefix`](ForwardAuthBuilder::envoy_prefix) |
//!
//! No forwarded path at all is 400 `invalid_request`. The credentials are the request's own
//! headers (`Authorization`, `X-API-Key`, `Cookie`): proxies pass the client's headers on. The
//! authenticator sees the original method and target in place of the subrequest's, so a scheme
//! that reads the query or binds a proof to the method sees what the client sent.
//!
//! # Rules
//!
//! - The path is percent-decoded, dot segments are removed (RFC 3986 section 5.2.4) and the
//!   query dropped before matching; paths are case-sensitive. An encoded `/` or `\`, a
//!   backslash, a NUL or other control character, an empty segment (`//`), a `;`, a broken
//!   percent escape or a path that is not UTF-8 is 400 `invalid_request`: servers read those
//!   differently, so no answer would be safe.
//! - A rule covers an exact path ([`Rule::path`]) or a prefix of whole segments
//!   ([`Rule::path_prefix`]: `/api/` and `/api` both cover `/api/x`, not `/apix`).
//! - Among the rules covering the path whose methods include the request's, the most specific
//!   wins: an exact path, else the longest prefix. A path some rule covers but none for this
//!   method is 403; a path no rule covers is 403 (default deny), with or without a credential.
//!   Two rules for the same path with overlapping methods are a configuration error.
//! - A credential of a scheme the rule does not accept ([`Rule::schemes`]) is 401
//!   `invalid_token`, without being checked. Missing scopes (all required) are 403
//!   `insufficient_scope` with `scope="..."`; missing roles (all required) a 403 without a
//!   challenge (roles are not scopes).
//! - An [anonymous](Rule::anonymous) rule lets requests without any credential through with no
//!   identity headers; a credential that is present is checked as in optional mode (valid:
//!   identity headers; bad: 401; store down: 503).
//! - CORS preflights (`OPTIONS`) carry no credentials: if the upstream answers them, give them
//!   an anonymous rule (`Rule::path_prefix("/api/").methods(["OPTIONS"]).anonymous(true)`).
//! - Rules are checked one after the other on each request, which suits the tens to hundreds
//!   of rules a proxy configuration holds.
//!
//! # Answers
//!
//! Allowed: `200`, an empty body, and identity headers (names configurable on the builder):
//!
//! | header | value |
//! |---|---|
//! | `X-Auth-Subject` | the principal's subject |
//! | `X-Auth-Scheme` | `api_key`, `jwt`, `introspection` or a custom scheme's name |
//! | `X-Auth-Scopes` | scopes, separated by single spaces; left out when empty |
//! | `X-Auth-Roles` | roles, separated by single spaces; left out when empty |
//! | `X-Auth-Tenant` | the tenant, when the principal has one |
//!
//! Values hold visible ASCII only: inside each item a space, `%` and anything outside visible
//! ASCII are percent-encoded (`ops tool` is `ops%20tool`, `é` is `%C3%A9`), so no claim can
//! inject a header or split an item. None of them is sent on an anonymous pass, and no part of
//! the credential ever is.
//!
//! Refused: the response contract of tower-auth-core, built by the configured responder
//! ([`DefaultRejection`](tower_auth_core::DefaultRejection) by default, empty body; or
//! [`ProblemRejection`](tower_auth_core::ProblemRejection)):
//!
//! | case | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credential (rule not anonymous) | 401 | `Bearer realm="api"` |
//! | bad credential, or a scheme the rule does not accept | 401 | `Bearer ..., error="invalid_token"` |
//! | malformed path or forwarding headers, credentials in two places | 400 | `Bearer ..., error="invalid_request"` |
//! | missing scope | 403 | `Bearer ..., error="insufficient_scope", scope="..."` |
//! | missing role, no rule, no rule for the method | 403 | none |
//! | key store, JWKS or introspection unavailable | 503 + `Retry-After` | none |
//!
//! # nginx
//!
//! `auth_request` lets 2xx through, passes 401 (with only the first `WWW-Authenticate`, which
//! is why the Bearer challenge comes first) and 403 on, and turns every other status into 500.
//! This server block (tested against Debian's nginx by the workspace's `tests/` crate) maps
//! 400, 429 and 503 back through named locations, carries the 403 challenge, and overwrites any
//! identity header the client sent:
//!
//! ```nginx
#![doc = include_str!("../proxy/nginx.conf")]
//! ```
//!
//! # Traefik (untested)
//!
//! Traefik is not available from the package registries this project tests with; this
//! configuration follows Traefik's documentation but has not been run. Traefik sets
//! `X-Forwarded-Method` and `X-Forwarded-Uri` itself (`trustForwardHeader: false`, the
//! default) and passes the client's headers to the endpoint:
//!
//! ```yaml
//! http:
//!   middlewares:
//!     tower-auth:
//!       forwardAuth:
//!         address: "http://127.0.0.1:3000/forward-auth"
//!         trustForwardHeader: false
//!         authResponseHeaders:
//!           - X-Auth-Subject
//!           - X-Auth-Scheme
//!           - X-Auth-Scopes
//!           - X-Auth-Roles
//!           - X-Auth-Tenant
//! ```
//!
//! `authResponseHeaders` copies the listed headers of the 200 answer onto the forwarded
//! request, replacing the client's; check that your Traefik version also removes a client's
//! header when the answer leaves it out (an anonymous pass, an empty list), or strip
//! `X-Auth-*` from client requests with a `headers` middleware placed before this one.
//!
//! # Envoy (untested)
//!
//! Envoy is not available from the package registries either; this follows Envoy's v3 API
//! documentation but has not been run against Envoy. The gRPC API (feature `envoy-grpc`,
//! [`envoy`]; its `Check` itself is tested with a tonic client):
//!
//! ```yaml
//! http_filters:
//!   - name: envoy.filters.http.ext_authz
//!     typed_config:
//!       "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
//!       transport_api_version: V3
//!       failure_mode_allow: false
//!       grpc_service:
//!         envoy_grpc:
//!           cluster_name: tower_auth
//!         timeout: 2s
//! ```
//!
//! Envoy's HTTP mode, with [`envoy_prefix`](ForwardAuthBuilder::envoy_prefix) set to
//! `/forward-auth/envoy`:
//!
//! ```yaml
//! http_filters:
//!   - name: envoy.filters.http.ext_authz
//!     typed_config:
//!       "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
//!       failure_mode_allow: false
//!       http_service:
//!         server_uri:
//!           uri: http://127.0.0.1:3000
//!           cluster: tower_auth
//!           timeout: 2s
//!         path_prefix: /forward-auth/envoy
//!         authorization_request:
//!           allowed_headers:
//!             patterns: [{ exact: authorization }, { exact: x-api-key }, { exact: cookie }]
//!         authorization_response:
//!           allowed_upstream_headers:
//!             patterns: [{ prefix: x-auth- }]
//!           allowed_client_headers:
//!             patterns: [{ exact: www-authenticate }, { exact: retry-after }]
//! ```
//!
//! In HTTP mode Envoy adds the listed headers of the 200 answer upstream; it does not remove a
//! client's `X-Auth-*` header that the answer leaves out, so strip them from client requests
//! (`request_headers_to_remove` on the route). The gRPC API removes them itself.
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tracing` | yes | debug (refusals) and trace (passes) events on the `tower_auth` target: outcome, fixed reason, scheme and subject; never a credential or a path |
//! | `metrics` | no | `tower_auth_forward_requests_total{api, outcome}` through the `metrics` facade |
//! | `envoy-grpc` | no | [`envoy`]: `envoy.service.auth.v3.Authorization/Check` with tonic 0.14 and the [`envoy-types`](https://crates.io/crates/envoy-types) crate's generated types |
//!
//! # Security notes
//!
//! - Fail closed: a dependency that cannot answer is 503, and nginx's configuration above
//!   keeps it a 503 (never a pass). Configure your proxy to deny when the endpoint is
//!   unreachable (nginx does; Envoy: `failure_mode_allow: false`).
//! - Default deny: a path no rule covers is 403, so a forgotten route is closed, not open.
//! - The endpoint must only be reachable by the proxy, and the upstream only through the
//!   proxy: a client that reaches the upstream directly can send any identity header.
//! - Identity headers are trustworthy only if the proxy removes what clients send under the
//!   same names (the nginx block above does; see the Traefik and Envoy notes).
//! - Rules see the path the way the upstream should: decoded and normalised, with every
//!   ambiguous form refused. An upstream that decodes differently again (double decoding) is
//!   not protected by this; `%25` stays `%` here, once.
//! - See RFC 6750 (Bearer tokens), RFC 7235 (HTTP authentication), RFC 3986 (URI syntax),
//!   RFC 9700 (OAuth 2.0 security best current practice).
//!
//! [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
//! [RFC 7235]: https://www.rfc-editor.org/rfc/rfc7235
//! [RFC 3986]: https://www.rfc-editor.org/rfc/rfc3986
//! [RFC 9700]: https://www.rfc-editor.org/rfc/rfc9700

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/tower-auth-forward/0.1.0")]

#[cfg(feature = "envoy-grpc")]
pub mod envoy;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod path;
mod rules;
mod service;
mod telemetry;

pub use self::rules::Rule;
pub use self::service::{ForwardAuth, ForwardAuthBuilder, ForwardBody, ResponseFuture};
#[cfg(feature = "metrics")]
pub use self::telemetry::describe_metrics;

#[cfg(test)]
mod tests;

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
