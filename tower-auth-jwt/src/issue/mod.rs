//! Issuing tokens for your own app (feature `issue`): RFC 9068 JWT access tokens signed with
//! keys that are generated once and kept in a store, the JWKS that publishes them, and
//! rotating refresh tokens. Nothing of the verifier depends on this module: a build without
//! `issue` compiles none of it.
//!
//! [`JwtIssuer`] mints access tokens (`typ: at+jwt`, `iss`, `aud`, `sub`, `client_id`, `iat`,
//! `exp`, a random `jti`, `scope`, custom claims) signed with EdDSA (Ed25519) by default, or
//! ES256, RS256, or HS256 for a single service that issues and verifies alone. Any verifier
//! checks them against [`JwtIssuer::jwks`] / [`JwtIssuer::jwks_response`] (served at
//! `/.well-known/jwks.json`, say), including this crate's [`JwtAuthenticator`] with a
//! [`remote::JwksUrl`](crate::remote::JwksUrl), a static [`TrustedIssuer::jwks`], or the issuer
//! itself as its [`KeySource`](crate::KeySource).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::{AuthenticateLayer, Principal};
//! use tower_auth_jwt::issue::{JwtIssuer, MemoryStore, TokenRequest};
//! use tower_auth_jwt::{TrustedIssuer, JwtAuthenticator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The issuer: keys are generated on first use and kept in the store.
//! let issuer = JwtIssuer::builder(MemoryStore::new())
//!     .issuer("https://app.example")
//!     .audience("app-api")
//!     .client_id("app-web")
//!     .build()
//!     .unwrap();
//! let token = issuer
//!     .issue(&TokenRequest::new("alice").scopes(["orders:read"]).claim("plan", "pro"))
//!     .await
//!     .unwrap();
//!
//! // A verifier, here with the issuer's JWKS as a static document.
//! let jwks = issuer.jwks().await.unwrap().to_string();
//! let auth = JwtAuthenticator::builder()
//!     .issuer(
//!         TrustedIssuer::new("https://app.example")
//!             .audience("app-api")
//!             .jwks(jwks)
//!             .require_access_token_type(),
//!     )
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let principal = req.extensions().get::<Principal>().unwrap();
//!         assert_eq!(principal.subject(), "alice");
//!         assert!(principal.scopes().contains("orders:read"));
//!         Ok::<_, Infallible>(Response::new(()))
//!     }));
//!
//! let call = |token: &str| {
//!     let req = Request::get("/orders").header("authorization", format!("Bearer {token}"));
//!     svc.clone().oneshot(req.body(()).unwrap())
//! };
//! assert_eq!(call(token.as_str()).await.unwrap().status(), StatusCode::OK);
//! // A changed signature: 401.
//! let mut tampered = token.as_str().to_owned();
//! let i = tampered.rfind('.').unwrap() + 1;
//! let other = if tampered[i..].starts_with('A') { "B" } else { "A" };
//! tampered.replace_range(i..i + 1, other);
//! assert_eq!(call(&tampered).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # Signing keys
//!
//! Keys are generated with aws-lc-rs (the operating system's CSPRNG) the first time the issuer
//! needs one, and written to a [`SigningKeyStore`] ([`MemoryStore`], with the `sqlite`
//! feature [`SqliteStore`], with the `postgres` feature [`PostgresStore`]), so a restart signs with the same key and every token issued
//! before it still verifies. Each key has a random `kid`, sent in the token header and the
//! JWKS. At most one key is active;
//! [`rotate_signing_key`](JwtIssuer::rotate_signing_key) makes a new one active and retires
//! the old one, which stays published until every token it signed has expired (the
//! access-token lifetime plus [`retired_key_grace`](JwtIssuerBuilder::retired_key_grace)) and
//! is then deleted. Replacing the active key is a compare-and-swap in the store, so processes
//! sharing a database generate one first key and rotate once. Each process re-reads the keys
//! every [`key_refresh`](JwtIssuerBuilder::key_refresh) (60 s), so it picks up a rotation made
//! elsewhere.
//!
//! After [`rotate_signing_key`](JwtIssuer::rotate_signing_key), a verifier that cached the
//! JWKS sees the new `kid` first in a token: this crate's
//! [`remote::JwksUrl`](crate::remote::JwksUrl) refetches on an unknown `kid`, at most once per
//! cooldown (30 s by default), so right after such a rotation a token may be refused by such a
//! verifier until its cooldown has passed. For planned rotations use
//! [`rotate_signing_key_after`](JwtIssuer::rotate_signing_key_after)`(jwks_max_age)`: the new
//! key is published at once and signs only after the delay, so every verifier has it before
//! it meets it (tested). For a key that leaked,
//! [`withdraw_signing_key`](JwtIssuer::withdraw_signing_key) rotates if needed and deletes
//! it at once: its tokens stop verifying here immediately, and at verifiers caching the JWKS
//! at their next refresh.
//!
//! Several instances share their keys through [`PostgresStore`] (feature `postgres`); a
//! [`SigningKeyStore`] of your own plugs in the same way.
//!
//! # Refresh tokens
//!
//! With [`JwtIssuerBuilder::refresh_tokens`], the issuer also runs sessions: after your app
//! checked the user's password or SSO, [`JwtIssuer::login`] starts a *family* (one login; its
//! id is the `sid` claim of every access token it gets) and returns a [`TokenPair`].
//! [`JwtIssuer::refresh`] exchanges the refresh token for a new pair and consumes it;
//! [`JwtIssuer::logout`] revokes the family.
//!
//! ```
//! use tower_auth_jwt::issue::{IssueErrorKind, JwtIssuer, MemoryStore, RefreshTokens, TokenRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let issuer = JwtIssuer::builder(store.clone())
//!     .issuer("https://app.example")
//!     .audience("app-api")
//!     .client_id("app-web")
//!     .refresh_tokens(RefreshTokens::new(store))
//!     .build()
//!     .unwrap();
//!
//! // The app checked alice's password.
//! let first = issuer.login(&TokenRequest::new("alice")).await.unwrap();
//! let second = issuer.refresh(first.refresh_token().expose_secret()).await.unwrap();
//! assert_eq!(second.session_id(), first.session_id());
//!
//! // The first token was consumed: presenting it again is reuse, and ends the session.
//! let err = issuer.refresh(first.refresh_token().expose_secret()).await.unwrap_err();
//! assert_eq!(err.kind(), IssueErrorKind::TokenReused);
//! assert!(issuer.refresh(second.refresh_token().expose_secret()).await.is_err());
//! # }
//! ```
//!
//! | event | outcome |
//! |---|---|
//! | refresh with a live token | a new access token and a new refresh token; the old one is consumed |
//! | a consumed token again (strict, the default) | [`IssueErrorKind::TokenReused`]: the whole family is revoked, its newest token included |
//! | two concurrent refreshes with one token (strict) | exactly one wins; the other is reuse, so the family ends |
//! | the same, with a [`reuse_interval`](RefreshTokens::reuse_interval) of a few seconds | exactly one wins; the other gets [`IssueErrorKind::InvalidToken`] (401) and the family lives |
//! | token unused for the [idle timeout](RefreshTokens::idle_timeout) (7 days) | refused |
//! | family older than its [lifetime](RefreshTokens::family_lifetime) (30 days) | refused, however active |
//! | logout, [`revoke_session`](JwtIssuer::revoke_session) | family revoked; its access tokens live until their `exp` (15 min) |
//! | [`logout_everywhere`](JwtIssuer::logout_everywhere) (with a [revocation list](JwtIssuerBuilder::revocation_list)) | every family of the subject revoked, and every access token issued to it until now refused at once (a subject cut-off) |
//!
//! Every refusal maps to a 401 `invalid_token` through
//! [`IssueError::to_auth_error`]; a store outage to a 503.
//!
//! # Endpoints
//!
//! [`SessionEndpoints`] turns the issuer into the three endpoints of a browser login, as
//! functions from request [`Parts`](http::request::Parts) to `http::Response`, so they mount
//! in axum, hyper or any tower stack: `login` (after your own credential check: both cookies
//! set), `refresh` (the refresh cookie rotated, or 401 with both cookies cleared) and `logout`
//! (family revoked, cookies cleared). They accept only `POST` and refuse cross-site requests
//! before touching a token. Serve the JWKS next to them with [`JwtIssuer::jwks_response`].
//!
//! # Cookies and CSRF
//!
//! For a browser app, keep both tokens out of JavaScript's reach: [`access_cookie`] and
//! [`refresh_cookie`] build `Set-Cookie` values with `HttpOnly; Secure; SameSite=Strict`, the
//! access cookie on `Path=/` under the `__Host-` prefix ([`ACCESS_COOKIE`]), the refresh cookie
//! only on the path of the refresh and logout endpoints ([`DEFAULT_REFRESH_PATH`], `/auth`) so
//! it travels with nothing else. [`clear_access_cookie`] and [`clear_refresh_cookie`] delete
//! them at logout. The values are marked sensitive, so `http` tracing layers do not print
//! them. The API reads the access cookie with
//! [`JwtAuthenticatorBuilder::cookie`](crate::JwtAuthenticatorBuilder::cookie)`(ACCESS_COOKIE)`.
//!
//! Cookies are sent by the browser on its own, so a cookie-authenticated API must stop
//! cross-site request forgery:
//!
//! - `SameSite=Strict` keeps the cookies off requests started by another site in current
//!   browsers; it is the first line, not the only one (older browsers, and sibling
//!   subdomains count as same-site).
//! - Check the origin of state-changing requests: [`is_cross_site`](crate::is_cross_site)
//!   (the check [`SessionEndpoints`] run, part of the verifier) on each cookie-authenticated
//!   write, tower-http's `csrf` middleware (0.7, `Sec-Fetch-Site` and `Origin` against the
//!   `Host` or trusted origins) for every route, or
//! - require a custom request header on them (`X-Requested-With`, or a header carrying a
//!   per-session value): a cross-site form cannot set one, and a cross-site `fetch` that does
//!   is stopped by CORS preflight, as long as your CORS policy does not allow that origin.
//! - Keep `GET` free of side effects; the refresh and logout endpoints are `POST`.
//!
//! # Stores
//!
//! The traits, [`SigningKeyStore`] and [`RefreshTokenStore`], return boxed futures
//! ([`StoreFuture`]) so they are object safe, and name no database type. [`MemoryStore`],
//! (feature `sqlite`) [`SqliteStore`] and (feature `postgres`) [`PostgresStore`] implement
//! both; one instance can serve both roles. Revocations are the verifier's, with stores of
//! their own ([`revocation`](crate::revocation)): the issuer writes them through its
//! [revocation list](JwtIssuerBuilder::revocation_list). The SQL stores keep their tables
//! (`tower_auth_jwt_signing_keys`, `tower_auth_jwt_refresh_families`,
//! `tower_auth_jwt_refresh_tokens`) and their migrations table (`tower_auth_jwt_migrations`)
//! apart from other crates' and from the revocation stores', so one database serves the whole
//! app; both store times as Unix
//! milliseconds. Use [`SqliteStore`] for one instance, [`PostgresStore`] for several sharing
//! their keys and sessions (tested in the workspace's `tests/tests/jwt_issue_postgres.rs`:
//! instances starting together create one key, and of two instances refreshing with one
//! token exactly one wins).
//!
//! Every store call has a deadline ([`store_timeout`](JwtIssuerBuilder::store_timeout), 2 s,
//! on the tokio timer): a stuck database turns into
//! [`IssueErrorKind::Unavailable`], a 503, rather than requests that hang.
//!
//! # Events and metrics
//!
//! With the `tracing` feature, events on the `tower_auth::jwt::issue` target: a key generated
//! (info), a token issued (trace), a refresh rotated or refused and a session revoked (debug),
//! and a consumed refresh token presented again (warn, with the session id: a stolen token, or
//! a client that lost a response). They carry `kid`s and session ids, never a token or a key
//! (tested in `tests/issue_logs.rs`). With `metrics`: `tower_auth_jwt_tokens_issued_total`,
//! `tower_auth_jwt_refreshes_total{outcome=rotated|invalid|invalid_dpop_proof|reused|unavailable}` and
//! `tower_auth_jwt_signing_key_rotations_total`.
//!
//! # Security notes
//!
//! - **EdDSA by default**: Ed25519 signatures are deterministic (no per-signature nonce to
//!   get wrong, unlike ECDSA), keys are small and fast to generate, verification is fast, and
//!   there are no parameter choices (curve, padding, hash) for an attacker to play with. ES256
//!   and RS256 are there for verifiers that lack EdDSA.
//! - **HS256** needs the secret on the verifying side: use it only when the issuer and the
//!   verifier are one service. Nothing is published (`{"keys":[]}`); verify through the issuer
//!   as a [`KeySource`](crate::KeySource).
//! - **Private keys** are stored as PKCS #8 DER (the HMAC secret raw) in the store: whoever
//!   reads the database can mint tokens. `Debug` never shows them (tested), the JWKS never has
//!   a private member (tested), and the SQLite file must be readable by the service only.
//! - **Registered claims** (`iss`, `aud`, `exp`, ...) cannot be overridden by custom claims.
//! - **Refresh tokens are opaque** (256 bits from the CSPRNG, base64url) and stored only as
//!   their SHA-256: a leaked database yields no usable token. A plain hash (not a slow
//!   password hash) is right for 256 random bits: there is nothing to guess. Tokens never
//!   appear in `Debug` output or the database file (tested).
//! - **Rotation with reuse detection** (RFC 9700 section 4.14.2): a refresh token works once.
//!   If an attacker and the user both hold it, whoever comes second presents a consumed token;
//!   the issuer cannot tell which is which, so it revokes the whole family and both must log
//!   in again. Consumption is one atomic store operation (a conditional `UPDATE` whose
//!   affected-row count decides), so two concurrent refreshes cannot both win (tested
//!   across two SQLite connections and two Postgres connection pools).
//! - **Reuse interval**: off by default. A few seconds tolerate two tabs refreshing at once;
//!   within it a replayed token is refused without ending the session, so keep it short.
//! - **Idle timeout and absolute lifetime** bound a stolen token even when it is never
//!   replayed.
//!
//! # References
//!
//! [RFC 9068] (JWT access tokens), [RFC 7517] (JWK), [RFC 8037] (EdDSA in JOSE), [RFC 8725]
//! (JWT best current practices), [RFC 9700] (OAuth 2.0 security best current practice).
//!
//! [`JwtAuthenticator`]: crate::JwtAuthenticator
//! [`TrustedIssuer::jwks`]: crate::TrustedIssuer::jwks
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
//! [RFC 7517]: https://www.rfc-editor.org/rfc/rfc7517
//! [RFC 8037]: https://www.rfc-editor.org/rfc/rfc8037
//! [RFC 8725]: https://www.rfc-editor.org/rfc/rfc8725
//! [RFC 9700]: https://www.rfc-editor.org/rfc/rfc9700

mod cookie;
mod endpoints;
mod error;
mod issuer;
mod keys;
#[cfg(feature = "postgres")]
mod postgres;
mod refresh;
#[cfg(feature = "revocation")]
mod revoke;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod telemetry;
#[cfg(feature = "testing")]
#[doc(hidden)]
#[allow(clippy::unwrap_used)]
pub mod testing;

pub use self::cookie::{
    ACCESS_COOKIE, DEFAULT_REFRESH_PATH, InvalidCookie, REFRESH_COOKIE, access_cookie,
    clear_access_cookie, clear_refresh_cookie, refresh_cookie,
};
pub use self::endpoints::SessionEndpoints;
pub use self::error::{IssueError, IssueErrorKind};
pub use self::issuer::{
    AccessToken, DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_JWKS_MAX_AGE, DEFAULT_KEY_REFRESH,
    DEFAULT_RETIRED_KEY_GRACE, DEFAULT_STORE_TIMEOUT, JwtIssuer, JwtIssuerBuilder,
    MAX_ACCESS_TOKEN_TTL, REGISTERED_CLAIMS, TokenRequest, UNKNOWN_KID_COOLDOWN,
};
pub use self::keys::StoredSigningKey;
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresStore, PostgresStoreBuilder};
pub use self::refresh::{
    DEFAULT_FAMILY_LIFETIME, DEFAULT_IDLE_TIMEOUT, MAX_REUSE_INTERVAL, RefreshToken, RefreshTokens,
    TokenPair,
};
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteStore;
pub use self::store::{
    MemoryStore, RefreshFamily, RefreshTokenHash, RefreshTokenRecord, RefreshTokenStore,
    SigningKeyStore,
};
pub use crate::store::{StoreError, StoreErrorKind, StoreFuture};
