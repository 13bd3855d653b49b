//! OAuth 2.0 for tower services.
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

pub mod client_credentials;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod introspection;
#[cfg(feature = "login")]
pub mod login;
pub mod resource_server;
mod token_request;

/// The HTTP client a builder was given, or the default one, allowing plain http only when told.
fn http_client(
    given: Option<tower_auth_core::client::HttpClient>,
    allow_http: bool,
) -> Result<tower_auth_core::client::HttpClient, tower_auth_core::ConfigError> {
    match given {
        Some(c) => Ok(c),
        None => tower_auth_core::client::HttpClient::builder()
            .insecure_allow_http(allow_http)
            .build(),
    }
}
