//! Issuing tokens for your own app: RFC 9068 JWT access tokens signed with keys that are
//! generated once and kept in a store, and the JWKS that publishes them.
//!
//! [`JwtIssuer`] mints access tokens (`typ: at+jwt`, `iss`, `aud`, `sub`, `client_id`, `iat`,
//! `exp`, a random `jti`, `scope`, custom claims) signed with EdDSA (Ed25519) by default, or
//! ES256, RS256, or HS256 for a single service that issues and verifies alone. Any verifier
//! checks them against [`JwtIssuer::jwks`] / [`JwtIssuer::jwks_response`] (served at
//! `/.well-known/jwks.json`, say), including this crate's [`JwtAuthenticator`] with a
//! [`remote::JwksUrl`](crate::remote::JwksUrl), a static [`Issuer::jwks`], or the issuer
//! itself as its [`KeySource`](crate::KeySource).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::{AuthenticateLayer, Principal};
//! use tower_auth_jwt::issue::{JwtIssuer, MemoryStore, TokenRequest};
//! use tower_auth_jwt::{Issuer, JwtAuthenticator};
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
//!         Issuer::new("https://app.example")
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
//! // Tampered: 401.
//! let tampered = format!("{}A", &token.as_str()[..token.as_str().len() - 1]);
//! assert_eq!(call(&tampered).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # Signing keys
//!
//! Keys are generated with aws-lc-rs (the operating system's CSPRNG) the first time the issuer
//! needs one, and written to a [`SigningKeyStore`] ([`MemoryStore`], or with the `sqlite`
//! feature [`SqliteStore`]), so a restart signs with the same key and every token issued
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
//! A verifier that cached the JWKS sees the new `kid` first in a token: this crate's
//! [`remote::JwksUrl`](crate::remote::JwksUrl) refetches on an unknown `kid`, at most once per
//! cooldown (30 s by default), so right after a rotation a token may be refused by such a
//! verifier until its cooldown has passed. Rotate at a quiet time, or keep the cooldown short.
//!
//! Stores for Postgres (several instances sharing keys) are not part of this version; a
//! [`SigningKeyStore`] of your own plugs in the same way.
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
//!
//! # References
//!
//! [RFC 9068] (JWT access tokens), [RFC 7517] (JWK), [RFC 8037] (EdDSA in JOSE), [RFC 8725]
//! (JWT best current practices).
//!
//! [`JwtAuthenticator`]: crate::JwtAuthenticator
//! [`Issuer::jwks`]: crate::Issuer::jwks
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
//! [RFC 7517]: https://www.rfc-editor.org/rfc/rfc7517
//! [RFC 8037]: https://www.rfc-editor.org/rfc/rfc8037
//! [RFC 8725]: https://www.rfc-editor.org/rfc/rfc8725

mod error;
mod issuer;
mod keys;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use self::error::{IssueError, IssueErrorKind};
pub use self::issuer::{
    AccessToken, DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_JWKS_MAX_AGE, DEFAULT_KEY_REFRESH,
    DEFAULT_RETIRED_KEY_GRACE, JwtIssuer, JwtIssuerBuilder, MAX_ACCESS_TOKEN_TTL,
    REGISTERED_CLAIMS, TokenRequest,
};
pub use self::keys::StoredSigningKey;
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteStore;
pub use self::store::{
    MemoryStore, RefreshFamily, RefreshTokenHash, RefreshTokenRecord, RefreshTokenStore,
    SigningKeyStore, StoreError, StoreErrorKind, StoreFuture,
};
