//! OAuth 2.0 client credentials for outbound calls (RFC 6749 section 4.4): a layer for HTTP and
//! gRPC clients that gets a token, caches it, refreshes it ahead of expiry and puts it on every
//! request.
//!
//! This is the machine-to-machine row of the decision guide: a cron job or a microservice calling
//! another API with a short-lived token instead of a long-lived key.
//!
//! - [`ClientCredentials`] is the token source (usable on its own). It uses the `oauth2` crate
//!   for the token request, authenticating with `client_secret_basic` (default) or
//!   `client_secret_post`, with scopes and RFC 8707 `resource` indicators.
//! - [`ClientCredentialsLayer`] wraps any tower HTTP client (`Service<http::Request<B>>`): hyper's,
//!   reqwest-tower adapters, a tonic `Channel`. It sets `Authorization: Bearer ...` (marked
//!   sensitive) on each request.
//! - Tokens go only to https destinations (plain http needs `insecure_allow_http`) and, when
//!   [`allowed_origins`](ClientCredentialsLayer::allowed_origins) is set, only to those origins:
//!   a client that follows a link or calls a URL from elsewhere does not hand the token over.
//!   Requests whose URI is a path only (tonic's, through a `Channel` bound to one endpoint) go
//!   where the client was built to go and are not checked.
//! - If the token cannot be obtained, the call fails with [`TokenError`] (boxed into the layer's
//!   error): a request is **never** sent on without a token.
//! - A `401` from the called API triggers at most one token refresh and retry, and only for
//!   requests whose body is empty (`GET`, `DELETE`, ...), which can be replayed exactly; other
//!   requests get the `401` back. The retry reuses a token another request already refreshed.
//! - DPoP (RFC 9449), with [`ClientCredentialsBuilder::dpop`] and a key from
//!   [`DpopKey::generate`](tower_auth_jwt::dpop::DpopKey::generate): each token request carries a
//!   proof (sent once more with the authorization server's `DPoP-Nonce` when it answers
//!   `use_dpop_nonce`), and a token the server binds (`token_type` `DPoP`) goes out as
//!   `Authorization: DPoP` with a fresh proof per request (`htm`, `htu`, `ath`, and the last nonce
//!   that origin sent). A resource's `use_dpop_nonce` challenge is answered by sending the
//!   request again with a proof carrying the nonce, when its body is empty and so can be sent
//!   again exactly; otherwise the `401` goes back to the caller, and the next request carries the
//!   nonce. DPoP needs absolute request URIs (the proof names the URL): a path-only one fails
//!   with [`DpopError::RelativeUri`].
//!
//! The service's error type is `Box<dyn Error + Send + Sync>` (as for tower's own `Timeout`):
//! it is the inner client's error, a [`TokenError`], a [`DestinationError`] or a [`DpopError`]; downcast to tell them apart. The
//! response future is boxed: the path includes network I/O, and one allocation keeps the types
//! nameable for tonic's generated clients.
//!
//! ```no_run
//! use tower::ServiceBuilder;
//! use tower_auth_oauth::client_credentials::{ClientCredentials, ClientCredentialsLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let tokens = ClientCredentials::builder("https://auth.example.com/oauth/token")
//!     .client_id("billing-cron")
//!     .client_secret(std::env::var("CLIENT_SECRET")?)
//!     .scopes(["invoices:write"])
//!     .resources(["https://api.example.com"])
//!     .build()?;
//!
//! // Any tower HTTP client; here hyper-util's.
//! let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//!     .build_http::<http_body_util::Full<bytes::Bytes>>();
//! let client = ServiceBuilder::new()
//!     .layer(ClientCredentialsLayer::new(tokens).allowed_origins(["https://api.example.com"]))
//!     .service(http);
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

mod dpop;
mod service;
mod token;

pub use self::dpop::DpopError;
pub use self::service::{ClientCredentialsLayer, ClientCredentialsService, DestinationError};
pub use self::token::{AccessToken, ClientCredentials, ClientCredentialsBuilder, TokenError};

#[cfg(test)]
mod tests;
