//! JWT bearer authentication for tower: strict validation of signed JWTs (RFC 7519, RFC 7515)
//! from one or several issuers, mapped onto the core [`Principal`], with an opt-in
//! verified-token cache, and revocation lists (a `jti` blocklist and subject cut-offs held in
//! memory, kept current from SQLite or PostgreSQL).
//!
//! [`JwtAuthenticator`] is a [`tower_auth_core::Authenticator`]: put it in an
//! [`AuthenticateLayer`] and every request carrying a valid token reaches your service with a
//! [`Principal`] in its extensions; every other request gets the tower-auth response contract
//! (401 / 400 / 403 / 503, RFC 6750 challenges).
//!
//! # JOSE on jsonwebtoken
//!
//! Every signature check, and every signature the issuer makes, goes through jsonwebtoken 11's
//! public API (`DecodingKey` / `EncodingKey` built with its constructors) and its aws-lc-rs
//! backend. This crate is the policy on top: the header and claims rules, key selection,
//! caching, revocation. JWKs are parsed strictly here (unknown `kty`, private members, a `use`
//! or `alg` that disagrees, non-canonical base64url are refused) and validated with aws-lc-rs
//! when loaded, before they are handed to jsonwebtoken. No jsonwebtoken type appears in this
//! crate's API.
//!
//! The backend's factories are called directly
//! (`jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER`): this crate neither installs nor reads
//! jsonwebtoken's process-wide `CryptoProvider`. An application that also uses jsonwebtoken,
//! with the `aws_lc_rs` backend or the `rust_crypto` one, keeps its own choice and installs its
//! provider as usual (`tests/backends.rs` and `tests/other_backend.rs`, the latter run with
//! `--features jsonwebtoken/rust_crypto`). Algorithms jsonwebtoken does not implement (ES512,
//! Ed448) are refused in configuration and skipped in a published key set.
//!
//! # Quick start
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::{AuthenticateLayer, Principal, RequireScopesLayer};
//! use tower_auth_jwt::{Claims, TrustedIssuer, JwtAuthenticator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let secret = b"a secret of at least 32 bytes, shared with the issuer";
//! let auth = JwtAuthenticator::builder()
//!     .issuer(
//!         TrustedIssuer::new("https://auth.example.com")
//!             .audience("orders-api")
//!             .hmac_secret(secret),
//!     )
//!     .build()
//!     .unwrap();
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .layer(RequireScopesLayer::all_of(["orders:write"]))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let principal = req.extensions().get::<Principal>().unwrap();
//!         assert_eq!(principal.subject(), "alice");
//!         // Every verified claim is there for the handler.
//!         let claims = principal.extension::<Claims>().unwrap();
//!         assert_eq!(claims.get("plan").and_then(|v| v.as_str()), Some("pro"));
//!         Ok::<_, Infallible>(Response::new(()))
//!     }));
//!
//! // Tokens as the issuer would mint them (here with jsonwebtoken).
//! let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
//! let mint = |scope: &str| {
//!     let claims = serde_json::json!({
//!         "iss": "https://auth.example.com", "aud": "orders-api", "sub": "alice",
//!         "iat": now, "exp": now + 600, "scope": scope, "plan": "pro",
//!     });
//!     let key = jsonwebtoken::EncodingKey::from_secret(secret);
//!     jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
//! };
//! let call = |token: Option<String>| {
//!     let mut req = Request::post("/orders");
//!     if let Some(t) = token {
//!         req = req.header("authorization", format!("Bearer {t}"));
//!     }
//!     svc.clone().oneshot(req.body(()).unwrap())
//! };
//!
//! // A valid token with the scope: 200.
//! let res = call(Some(mint("orders:read orders:write"))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! // Valid, but without the scope: 403 insufficient_scope.
//! let res = call(Some(mint("orders:read"))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! // No token: 401 with a bare challenge.
//! let res = call(None).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! // A tampered token: 401 invalid_token.
//! let token = mint("orders:write");
//! let last = if token.ends_with('x') { 'y' } else { 'x' };
//! let tampered = format!("{}{last}", &token[..token.len() - 1]);
//! let res = call(Some(tampered)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
//! # }
//! ```
//!
//! # Issuers and keys
//!
//! Each [`TrustedIssuer`] is matched by the token's `iss`, exactly. The `iss` is read from the payload
//! (decoded once) before any signature work, and used for nothing but picking the issuer's
//! configuration until the signature is verified; a token of an unknown issuer is rejected
//! without touching any key.
//!
//! Keys are local ([`TrustedIssuer::hmac_secret`], [`TrustedIssuer::pem`], [`TrustedIssuer::jwk`], [`TrustedIssuer::jwks`],
//! [`TrustedIssuer::key`]) or come from a [`KeySource`] ([`TrustedIssuer::key_source`]). With the `remote`
//! feature (on by default) the crate brings two: [`remote::JwksUrl`] (a JWKS URL) and
//! [`remote::Discovery`] (an issuer URL: OpenID Connect Discovery, falling back to RFC 8414
//! metadata; the metadata's `issuer` must equal the configured one). Building them does no I/O;
//! keys load on the first token or with `warm_up().await`, then stay in memory: requests are
//! answered [`KeyLookup::Ready`] synchronously (no allocation, no wait) while a background task
//! refreshes the set ahead of its expiry. Unknown `kid`s, rotation, outages (bounded
//! stale-if-error, then 503) and unusable published keys are handled as the
//! [`remote`] module docs describe. [`remote::discover`] and [`remote::Metadata`] are public
//! for other crates that need an issuer's endpoints.
//!
//! A source of your own implements the trait: answer [`KeyLookup::Ready`] with the current
//! [`KeySet`], [`KeyLookup::Pending`] with a future when a fetch is needed, or
//! [`KeyLookup::Unavailable`], which is a 503. [`KeySet::from_jwks_skipping_invalid`] parses a
//! published JWKS the way such a source should (unusable keys are skipped, not fatal).
//!
//! Key selection: a token `kid` picks the key with that `kid`; when no key has it, keys
//! configured without a `kid` are tried (a PEM key has none); a token without `kid` tries every
//! key. In every case only keys that [fit](VerifyingKey::fits) the token's algorithm are used.
//!
//! # Validation
//!
//! | check | rule |
//! |---|---|
//! | size | at most 8 KiB by default ([`JwtAuthenticatorBuilder::max_token_size`]), checked before anything is decoded |
//! | shape | compact JWS, three segments, strict base64url (no padding, canonical trailing bits, URL alphabet); header and claims are JSON objects, each top-level member name once (a repeated name, or an array, is refused: two parsers could read it two ways) |
//! | `alg` | exact JWA name, in the issuer's allow-list, and fitting the key: its type (`kty`, `crv`), its JWK `alg`, and for HMAC a secret at least as long as the hash. Never `none` |
//! | `crit` | any `crit` header is rejected: we implement no JWS extension (RFC 7515 section 4.1.11) |
//! | `jwk`, `jku`, `x5u`, `x5c` | ignored: keys come from configuration only, nothing is fetched from a token |
//! | `typ` | never another kind of JWT (`dpop+jwt`, `logout+jwt`, `secevent+jwt`: any `*+jwt` but `at+jwt`, RFC 8725 section 3.11); with [`TrustedIssuer::require_access_token_type`]: `at+jwt` only (RFC 9068). Compared case-insensitively, with or without `application/`, without media-type parameters |
//! | `cnf` | refused: a sender-constrained token (DPoP, mTLS) is never accepted as a plain Bearer token, from the verified-token cache either; [`dpop::DpopAuthenticator`] accepts a `cnf.jkt` token with a proof by that key |
//! | signature | over the exact bytes received |
//! | `exp` | required (opt out: [`TrustedIssuer::insecure_allow_missing_exp`]), a NumericDate, `now <= exp + leeway`, and at most 7 days ahead ([`TrustedIssuer::max_lifetime`]; opt out: [`TrustedIssuer::insecure_allow_unbounded_lifetime`]) |
//! | `nbf` | when present, a NumericDate, `nbf <= now + leeway` |
//! | `iat` | when present, a NumericDate not after `now + leeway`; required with [`TrustedIssuer::max_token_age`], then `now <= iat + max_age + leeway` |
//! | `iss` | a string equal to a configured issuer |
//! | `aud` | required; a string or an array of strings containing any configured audience (opt out: [`TrustedIssuer::insecure_skip_audience`]) |
//! | `sub`, `jti` | strings when present; a subject is required (`sub`, else `client_id`, else `azp`, or [`TrustedIssuer::subject_claim`]) |
//! | revocation | the [`RevocationCheck`] hook, on every request, cached tokens included: a [`revocation::RevocationList`] (`jti` blocklist, subject cut-offs), or your own |
//!
//! Leeway defaults to 60 s ([`TrustedIssuer::leeway`]). Time comes from the injected
//! [`Clock`](tower_auth_core::clock::Clock) ([`JwtAuthenticatorBuilder::clock`]): this crate
//! makes every time decision itself (jsonwebtoken's own time checks are not used), so tests can
//! move time without sleeping. Every failure is a 401 `invalid_token` with a fixed description
//! (`token expired`, `wrong audience`, ...) that never echoes the token.
//!
//! # Claims to principal
//!
//! - subject: `sub` (see above); issuer: `iss`; expiry: `exp`;
//! - scopes: `scope` (space separated), else `scp` (a string or an array);
//! - roles and tenant: claim paths of a [`ClaimsMapping`], with presets for Keycloak
//!   (`realm_access.roles`), Auth0 (`permissions`) and Azure AD (`roles`, `tid`);
//! - kind: [`PrincipalKind::User`](tower_auth_core::PrincipalKind::User) unless a
//!   [`ServiceRule`] says the token is a client acting for itself
//!   ([`ServiceRule::ClientCredentials`]: no `sub`, `sub` equal to `client_id` / `azp`, or Azure
//!   AD's `idtyp: app`). The default is "always a user" because no single claim says so for
//!   every provider; choose the rule that matches yours;
//! - every claim: the [`Claims`] extension, with a typed view through [`Claims::deserialize`].
//!
//! # Cost of a verification
//!
//! Beyond the signature check, a request pays for splitting and decoding the token, reading its
//! header and claims and building the principal. The code does each plainly, with the crates
//! made for it: `memchr` finds the dots, `base64` decodes (strictly: canonical, no padding),
//! `serde_json` reads the header and the claims into maps (each top-level member name once), and
//! jsonwebtoken checks the signature. jsonwebtoken's backend parses a public key for every check,
//! as `jsonwebtoken::decode` does: the layer costs what `jsonwebtoken::decode` of the same token
//! with the same checks costs, within a few percent. Speed comes from the architecture instead:
//! the [verified-token cache](#verified-token-cache) answers a token it has seen without any of
//! this, keys are held in memory and refreshed in the background, and revocation lists are asked
//! in memory.
//!
//! `cargo bench -p tower-auth-jwt --bench jwt_verify` measures the layer against the signature
//! check alone and against `jsonwebtoken::decode`; BENCHMARKS.md at the repository root has the
//! figures.
//!
//! # Verified-token cache
//!
//! Off by default; [`JwtAuthenticatorBuilder::verified_token_cache`] turns it on. A token that
//! passed every check is remembered until its `exp` + leeway (or its maximum age), capped by the
//! cache TTL. Entries are keyed by the SHA-256 of the token's signature segment and hold the
//! signing input (`header.payload`, which the principal carries decoded anyway); a hit needs
//! the same hash and the same signing input byte for byte, which under SHA-256's collision
//! resistance means the same token. Hashing the signature rather than the whole token halves
//! the hashing on the hot path for RSA and nearly removes it for HMAC, ECDSA and EdDSA; the
//! signature itself is never stored, so a token cannot be rebuilt from the cache. The hash is
//! about a quarter of the cost of a hit for an RS256 token; a keyed hash such as SipHash would
//! cost less, but gives no second-preimage guarantee to whoever learns its key (from a memory
//! dump, say), who could then make a hit for a signature nobody issued. SHA-256 needs no
//! secret for that. A hit skips parsing and the signature, but expiry is checked against the
//! clock and the revocation hook is asked on every request. Rejected tokens are not cached. An
//! entry is served only while the key that verified it is still held by its issuer's key set,
//! so a key withdrawn by a refreshing [`KeySource`] takes its cached tokens with it.
//! [`JwtAuthenticator::clear_cache`] drops everything.
//!
//! # Token sources
//!
//! `Authorization: Bearer` (RFC 6750 section 2.1): the scheme claims values shaped like a
//! compact JWS (three dot-separated segments), so it composes with API keys and opaque tokens
//! through [`Authenticator::or`](tower_auth_core::Authenticator::or). A named cookie, when
//! configured ([`JwtAuthenticatorBuilder::cookie`]); a request with both is malformed (400).
//!
//! # DPoP
//!
//! [`dpop::DpopAuthenticator`] wraps a [`JwtAuthenticator`] for `Authorization: DPoP` requests
//! with a `DPoP` proof ([RFC 9449]): every check of its sections 4.3 and 7, a bounded replay
//! cache, optional stateless server nonces ([`dpop::DpopNonces`]). Compose it with the Bearer
//! authenticator with `or`, or use it alone on routes that require DPoP; [`dpop::DpopKey`] is
//! the client side (keys generated with aws-lc-rs, proofs signed through jsonwebtoken).
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tracing` | yes | debug/trace events on the `tower_auth::jwt` target (outcome and fixed reason, never a token); enables core's `tracing` |
//! | `remote` | yes | [`remote::JwksUrl`], [`remote::Discovery`], [`remote::discover`]: keys and metadata over tower-auth-core's `HttpClient` (hyper-util, hyper-rustls on aws-lc-rs, Mozilla roots); pulls in tokio |
//! | `metrics` | no | `describe_metrics()` gives each metric its help text; `tower_auth_jwt_verifications_total{outcome=valid\|invalid\|unavailable}`, `tower_auth_jwt_cache_requests_total{outcome=hit\|miss}`; revocation lists (label `list`): `tower_auth_jwt_revocations_applied_total{kind}`, histogram `tower_auth_jwt_revocation_lag_seconds`, gauges `tower_auth_jwt_revoked_tokens`, `tower_auth_jwt_revoked_subjects` and `tower_auth_jwt_revocation_staleness_seconds`, `tower_auth_jwt_revocation_sync_failures_total{operation}`, and for PostgreSQL feeds `tower_auth_jwt_revocation_feed_failures_total{reason}`, `tower_auth_jwt_revocation_notifications_ignored_total` (see [`revocation`]); with `remote`, per source: `tower_auth_jwks_fetches_total`, `tower_auth_jwks_fetch_failures_total`, `tower_auth_jwks_unknown_kid_refetches_total`, `tower_auth_jwks_keys_skipped_total`, gauges `tower_auth_jwks_keys_loaded` and `tower_auth_jwks_staleness_seconds` (label `source`); enables core's `metrics` |
//! | `revocation` | yes | [`revocation::RevocationList`] (its background tasks run on tokio) and [`revocation::MemoryRevocationStore`]; with `sqlite` / `postgres`, the SQL revocation stores |
//! | `sqlite` | no | the SQLite stores of what is enabled (sqlx, SQLite compiled in): with `revocation`, [`revocation::SqliteRevocationStore`]; with `issue`, `issue::SqliteStore` (the issuer's signing keys and refresh tokens) |
//! | `postgres` | no | the PostgreSQL stores of what is enabled (sqlx), for several instances: with `revocation`, [`revocation::PostgresRevocationStore`] (revocations pushed by `LISTEN`/`NOTIFY`); with `issue`, `issue::PostgresStore` (signing keys and sessions shared) |
//! | `issue` | no | the `issue` module: `JwtIssuer` (access tokens, the JWKS that publishes their keys), rotating refresh tokens, signing-key stores, session endpoints, cookies; a deadline on every call of its stores (tokio timer) |
//! | `testing` | no | (hidden) the scenarios every store is held to: `revocation::testing` with `revocation`, `issue::testing` with `issue` |
//!
//! A default build is the verifier alone: without `issue`, no issuing code is compiled, and no
//! verifier module depends on it. Issuing tokens for your own app (access tokens, the JWKS
//! that publishes their keys, rotating refresh tokens, cookies and login endpoints) lives in
//! the `issue` module. [`is_cross_site`], the check the issuer's session endpoints run, is the
//! verifier's, for any cookie-authenticated route.
//!
//! # Revocation
//!
//! [`revocation::RevocationList`] (feature `revocation`, on by default) ends tokens before
//! their `exp`: one token by `jti`, or every token of a subject issued before a time ("log out
//! everywhere"; with the `issue` feature, `JwtIssuer::logout_everywhere` also revokes the
//! subject's refresh-token families). The list is held in memory and asked on
//! every request, cached tokens included, with no store query and no lock (about 20 ns with
//! 10,000 entries); background tasks keep it current from its store: at once through
//! PostgreSQL `LISTEN`/`NOTIFY`, or by polling SQLite every 5 s, with a full reload every
//! 5 min. See the [`revocation`] module.
//!
//! # Security notes
//!
//! Each attack below has a test in `tests/attacks.rs` that fails if the defence is removed.
//!
//! - **`alg: none`** in any spelling: algorithm names are matched exactly and `none` is not one
//!   of ours; an empty signature is refused first.
//! - **Algorithm confusion** (an HMAC made with the RSA public key's PEM, DER or JWK bytes): the
//!   issuer's allow-list refuses the algorithm, and independently the key's type refuses to
//!   verify an HMAC with an RSA key; a configured allow-list naming an algorithm no key can
//!   verify is a build error.
//! - **Keys from the token** (`jwk`, `jku`, `x5u`, `x5c`): never read, never fetched.
//! - **Psychic signatures** (ECDSA r = s = 0, CVE-2022-21449) and malformed signatures:
//!   rejected by aws-lc-rs; signatures must have the exact fixed length.
//! - **Tampering** with header, payload or signature: the signature covers the received bytes.
//! - **Non-canonical base64** (padding, non-zero trailing bits, `+` / `/`): refused, so one
//!   token has one spelling (and one cache key).
//! - **Oversized tokens**: refused before any decoding.
//! - **Expired, not yet valid, too old, wrong or missing `aud` / `iss`, mistyped claims**
//!   (string `exp`, numeric `aud`, array `iss`): refused, with leeway only where it applies.
//! - **Token type confusion** (an ID token used as an access token): `typ` check on request.
//! - **Unknown critical extensions**: any `crit` is refused.
//! - **Weak keys**: HMAC secrets under 32 bytes, RSA under 2048 bits and private keys given as
//!   public keys are build errors.
//! - jsonwebtoken's process-wide crypto provider is never installed nor read: a dependency
//!   that enables its other backend cannot make verification panic or change which code checks
//!   signatures.
//! - `Debug` output never shows secrets or tokens; error descriptions are fixed strings.
//!
//! Remote keys (feature `remote`; tests in `tests/remote.rs` against loopback servers):
//!
//! - **https only**: plain-http key and metadata URLs are build errors unless
//!   `insecure_allow_http` is set (its name says what it is). Keys fetched in the clear can be
//!   replaced, and with them every token.
//! - **No redirects**: a 3xx from a key or metadata endpoint is a failed fetch, never followed.
//! - **Bounded fetches**: a deadline per exchange (5 s) and a response size cap (1 MiB), so a
//!   hanging or hostile endpoint cannot hold requests or memory.
//! - **Metadata issuer**: discovery refuses metadata whose `issuer` differs from the configured
//!   issuer by one byte (a trailing slash included); the keys it names are never fetched.
//! - **Unknown-`kid` floods**: a token with an unknown `kid` refetches at most once per
//!   cooldown (30 s), single-flight, so attackers cannot turn tokens into requests to the
//!   identity provider; remembered kids are bounded in number and length.
//! - **Hostile or broken key sets**: unusable keys are skipped one by one; a `kid` published
//!   twice is not guessed at (both are skipped); symmetric keys in a public set are ignored.
//! - **Bounded staleness**: the last good keys are served through an outage for at most the
//!   maximum staleness (1 h by default), then 503. Unbounded stale-if-error would let anyone who
//!   can keep the endpoint unreachable keep a withdrawn (perhaps compromised) key trusted.
//! - **Withdrawn keys**: gone at the next refresh, with every verified-token cache entry they
//!   verified.
//!
//! Revocation (tests in `tests/revocation.rs`, and on PostgreSQL in the workspace's
//! `tests/tests/jwt_revocation_postgres.rs`):
//!
//! - **Revoked tokens stay revoked when cached**: the list is asked on every verified-token
//!   cache hit.
//! - **Fail closed**: before its first load a list answers 503 for every token; a token without `iat`
//!   under a subject cut-off is refused; entries are kept past `exp` for the largest verifier
//!   leeway, so a revoked token is not accepted again inside the leeway.
//! - **No store on the request path**: once a list is loaded, an outage of the revocation
//!   store cannot slow requests, and fails them only past the list's optional
//!   `max_staleness` (503); otherwise it delays revocations made elsewhere, and is logged and
//!   visible in `tower_auth_jwt_revocation_staleness_seconds`. Before its first load a list
//!   answers 503, so a process that cannot read its revocations at start-up serves nothing.
//! - **Notifications are hints**: a PostgreSQL notification names a row to read; forged or
//!   garbage notifications add nothing. A silent `LISTEN` connection is caught by its
//!   heartbeat and replaced, followed by a full reload (tests in the workspace's
//!   `tests/tests/jwt_revocation_postgres.rs`).
//!
//! Still yours to decide: short token lifetimes and which tokens to revoke
//! (RFC 8725 section 3.10 and RFC 9700), HTTPS everywhere, `HttpOnly` / `Secure` /
//! `SameSite` for the cookie, and one audience per API.
//!
//! # References
//!
//! [RFC 7519] (JWT), [RFC 7515] (JWS), [RFC 7517] (JWK), [RFC 7518] (JWA), [RFC 8725] (JWT
//! best current practices), [RFC 9068] (JWT access tokens), [RFC 6750] (Bearer tokens),
//! [RFC 7235] (HTTP authentication), [RFC 9449] (DPoP), [RFC 7638] (JWK thumbprint), [RFC 9700] (OAuth 2.0 security best current practice),
//! [RFC 8414] (authorization server metadata), [OpenID Connect Discovery 1.0], [RFC 9111]
//! (HTTP caching, `Cache-Control`).
//!
//! [`Principal`]: tower_auth_core::Principal
//! [`AuthenticateLayer`]: tower_auth_core::AuthenticateLayer
//! [RFC 7519]: https://www.rfc-editor.org/rfc/rfc7519
//! [RFC 7515]: https://www.rfc-editor.org/rfc/rfc7515
//! [RFC 7518]: https://www.rfc-editor.org/rfc/rfc7518
//! [RFC 8725]: https://www.rfc-editor.org/rfc/rfc8725
//! [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
//! [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
//! [RFC 7235]: https://www.rfc-editor.org/rfc/rfc7235
//! [RFC 9700]: https://www.rfc-editor.org/rfc/rfc9700
//! [RFC 9449]: https://www.rfc-editor.org/rfc/rfc9449
//! [RFC 7638]: https://www.rfc-editor.org/rfc/rfc7638
//! [RFC 7517]: https://www.rfc-editor.org/rfc/rfc7517
//! [RFC 8414]: https://www.rfc-editor.org/rfc/rfc8414
//! [RFC 9111]: https://www.rfc-editor.org/rfc/rfc9111
//! [OpenID Connect Discovery 1.0]: https://openid.net/specs/openid-connect-discovery-1_0.html

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(html_root_url = "https://docs.rs/tower-auth-jwt/0.1.0")]

mod algorithm;
mod authenticator;
mod builder;
mod cache;
mod claims;
mod cross_site;
#[cfg(feature = "metrics")]
mod describe;
pub mod dpop;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "issue")]
pub mod issue;
mod json;
mod key;
#[cfg(feature = "remote")]
pub mod remote;
pub mod revocation;
mod source;
#[cfg(all(
    any(feature = "sqlite", feature = "postgres"),
    any(feature = "revocation", feature = "issue")
))]
mod sql;
#[cfg(any(feature = "revocation", feature = "issue"))]
mod store;
mod telemetry;

pub use self::algorithm::{Algorithm, UnknownAlgorithm};
pub use self::authenticator::{JwtAuthenticator, JwtCredential, JwtFuture};
pub use self::builder::{
    DEFAULT_LEEWAY, DEFAULT_MAX_LIFETIME, DEFAULT_MAX_TOKEN_SIZE, JwtAuthenticatorBuilder,
    MAX_LEEWAY, TrustedIssuer,
};
pub use self::claims::{ClaimPath, Claims, ClaimsError, ClaimsMapping, ServiceRule};
pub use self::cross_site::is_cross_site;
#[cfg(feature = "metrics")]
pub use self::describe::describe_metrics;
pub use self::error::ConfigError;
#[cfg(feature = "issue")]
pub use self::issue::{JwtIssuer, JwtIssuerBuilder};
pub use self::key::{KeyError, KeySet, KeyType, MIN_HMAC_SECRET_LEN, MIN_RSA_BITS, VerifyingKey};
pub use self::revocation::{RevocationCheck, RevocationStatus, TokenIdentity};
pub use self::source::{KeyLookup, KeySetFuture, KeySource, KeySourceError, StaticKeys};
#[cfg(any(feature = "revocation", feature = "issue"))]
pub use self::store::{StoreError, StoreErrorKind, StoreFuture};

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
