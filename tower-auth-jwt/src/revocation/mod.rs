//! Revocation: the per-request [`RevocationCheck`] hook, and [`RevocationList`], a `jti`
//! blocklist and subject cut-offs held in memory and kept current from a [`RevocationStore`].
//!
//! Short-lived access tokens limit the damage of a stolen one to its lifetime; a revocation
//! list ends it at once, without a database on the request path. The list answers from
//! memory; a background task keeps it current from the store (PostgreSQL notifications, or
//! polling SQLite every few seconds).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::AuthenticateLayer;
//! use tower_auth_jwt::issue::{JwtIssuer, MemoryStore, TokenRequest};
//! use tower_auth_jwt::revocation::RevocationList;
//! use tower_auth_jwt::{Algorithm, Issuer, JwtAuthenticator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! // Loaded in full before serving; kept current in the background.
//! let revocations = RevocationList::builder(store.clone()).build().unwrap();
//! revocations.load().await.unwrap();
//!
//! let issuer = JwtIssuer::builder(store.clone())
//!     .issuer("https://app.example")
//!     .audience("app-api")
//!     .client_id("app-web")
//!     .revocation_list(revocations.clone())
//!     .build()
//!     .unwrap();
//! let auth = JwtAuthenticator::builder()
//!     .issuer(
//!         Issuer::new("https://app.example")
//!             .audience("app-api")
//!             .key_source(issuer.clone())
//!             .algorithms([Algorithm::EdDSA]),
//!     )
//!     .revocation(revocations.clone())
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .service(service_fn(|_: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(()))
//!     }));
//! let call = |token: String| {
//!     let req = Request::get("/orders").header("authorization", format!("Bearer {token}"));
//!     svc.clone().oneshot(req.body(()).unwrap())
//! };
//!
//! let stolen = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
//! let other = issuer.issue(&TokenRequest::new("bob")).await.unwrap();
//! assert_eq!(call(stolen.as_str().into()).await.unwrap().status(), StatusCode::OK);
//!
//! // One token, by `jti` (kept on the list until its `exp`).
//! revocations
//!     .revoke_token("https://app.example", stolen.jti(), Some(stolen.expires_at()))
//!     .await
//!     .unwrap();
//! assert_eq!(call(stolen.into_string()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(call(other.as_str().into()).await.unwrap().status(), StatusCode::OK);
//!
//! // Every token of bob issued until now (and, with refresh tokens, all his sessions).
//! issuer.logout_everywhere("bob").await.unwrap();
//! assert_eq!(call(other.into_string()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # What is revoked
//!
//! | entry | revokes | kept until |
//! |---|---|---|
//! | token ([`RevocationList::revoke_token`]) | the token of that `iss` with that `jti` | its `exp` + [leeway](RevocationListBuilder::leeway) (10 min by default, the largest verifier leeway); without a known `exp`, now + the [longest token lifetime](RevocationListBuilder::max_token_lifetime) |
//! | subject cut-off ([`RevocationList::cut_off_subject`]) | every token of that `iss` and `sub` whose `iat` is before the cut-off | the cut-off + the longest token lifetime (24 h by default) + leeway |
//!
//! Entries are keyed by issuer: a `jti` is unique per issuer (RFC 7519 section 4.1.7), and a
//! subject of one issuer is not the same account as that subject at another.
//!
//! - A token **without `jti`** can only be revoked through its subject.
//! - A token **without `iat`** whose subject has a cut-off is revoked: nothing shows it was
//!   issued after the cut-off (fail closed).
//! - `iat` counts **whole seconds**: a token issued in the same second as a cut-off, just
//!   after it, is revoked too (fail closed). The client refreshes, or logs in, a second later.
//! - A cut-off matches the `sub` claim only (not `client_id` or `azp`).
//! - Cut-offs compare the token's `iat` (the issuer's clock) with the cut-off (the clock of the
//!   process that made it): keep clocks synchronized.
//! - A token living longer than [`max_token_lifetime`](RevocationListBuilder::max_token_lifetime)
//!   outlives its subject's cut-off; so does one revoked by `jti` with an `exp` earlier than
//!   its real one. Set the lifetime to your issuers' longest.
//!
//! **Log out everywhere**: [`JwtIssuer::logout_everywhere`](crate::issue::JwtIssuer::logout_everywhere)
//! revokes every refresh-token family (session) of the subject in the issuer's store, then
//! cuts the subject off at the current time, so neither its refresh tokens nor its access
//! tokens work any more; [`JwtIssuer::revoke_access_token`](crate::issue::JwtIssuer::revoke_access_token)
//! revokes one access token by `jti`. Both need
//! [`JwtIssuerBuilder::revocation_list`](crate::issue::JwtIssuerBuilder::revocation_list).
//!
//! # On every request
//!
//! [`JwtAuthenticatorBuilder::revocation`](crate::JwtAuthenticatorBuilder::revocation) asks
//! the list after the signature and claims checks and on every hit of the verified-token
//! cache, so a revocation also ends tokens served from the cache. The list answers from
//! memory: one uncontended read lock (a `std::sync::RwLock`: readers do not block each other,
//! and writers hold it only to insert one entry or to merge a reload) and at most two nested
//! hash-map lookups that borrow the token's strings, no allocation and never a store query
//! (tested with a store that counts its calls). With 10,000 revoked tokens this adds a few
//! tens of nanoseconds to a cached verification (benchmark
//! `jwt_verify/layer_cached_revocation_10k/RS256`).
//!
//! Until its first [`load`](RevocationList::load) succeeds, a list treats **every** token as
//! revoked, so a process that could not read its revocations does not accept tokens it may
//! have been told to refuse. Call `load` at start-up and fail when it fails.
//!
//! # Keeping current
//!
//! [`RevocationList::load`] reads every unexpired entry, then starts the background tasks
//! (which stop when the last clone of the list is dropped):
//!
//! - with a store that has a [notification feed](RevocationStore::revocation_feed)
//!   ([`PostgresStore`](crate::issue::PostgresStore): `LISTEN`/`NOTIFY`, the notification
//!   sent in the transaction that writes the entry), each entry is applied as soon as the
//!   writer commits, typically within milliseconds on every instance. When the listening
//!   connection is lost, the list reconnects (backoff up to 5 s) and reloads everything, since
//!   notifications sent meanwhile are gone; the listener connects after the first load and
//!   reloads once connected, so nothing written in between is missed;
//! - otherwise ([`SqliteStore`](crate::issue::SqliteStore), [`MemoryStore`](crate::issue::MemoryStore))
//!   the list polls for entries added after the last one it saw every
//!   [`poll_interval`](RevocationListBuilder::poll_interval) (5 s): the bound on how long a
//!   revocation made by another process takes here. The process that revokes applies it at
//!   once.
//! - every [`purge_interval`](RevocationListBuilder::purge_interval) (60 s), entries whose
//!   tokens have all expired are dropped from memory and deleted from the store, so memory is
//!   bounded by the revocations of live tokens.
//!
//! Reloads merge: an entry is only ever removed by expiry, so a reload racing a revocation
//! cannot lose it. Background failures are retried and logged (`warn` on the
//! `tower_auth::jwt` target, with the store's error, never a token).
//!
//! # Stores
//!
//! [`RevocationStore`] is an append-only log with a cursor, implemented by
//! [`MemoryStore`](crate::issue::MemoryStore), (feature `sqlite`)
//! [`SqliteStore`](crate::issue::SqliteStore) and (feature `postgres`)
//! [`PostgresStore`](crate::issue::PostgresStore), next to their issuer roles: one database
//! holds keys, sessions and revocations. The SQL stores keep entries in
//! `tower_auth_jwt_revocations`, created by this crate's migration 3 (in its own migrations
//! table, `tower_auth_jwt_migrations`).
//!
//! # Metrics
//!
//! With the `metrics` feature: `tower_auth_jwt_revocations_applied_total{kind=jti|subject}`
//! (entries that changed a list: revoked here, notified, polled or reloaded),
//! `tower_auth_jwt_revocation_lag_seconds` (histogram: from the writing of an entry, by the
//! writer's clock, to its application here, for entries coming from the store),
//! `tower_auth_jwt_revoked_tokens` and `tower_auth_jwt_revoked_subjects` (gauges: list sizes),
//! `tower_auth_jwt_revocation_sync_failures_total{operation=load|poll|reload|purge|listen}`.

use std::fmt;
use std::time::SystemTime;

#[cfg(feature = "tokio")]
mod list;
mod store;

#[cfg(feature = "tokio")]
pub use self::list::{
    DEFAULT_FULL_READ_TIMEOUT, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_POLL_INTERVAL,
    DEFAULT_PURGE_INTERVAL, DEFAULT_RELOAD_INTERVAL, DEFAULT_REVOCATION_LEEWAY,
    DEFAULT_REVOCATION_STORE_TIMEOUT, MAX_REVOCATION_VALUE_LEN, MAX_TOKEN_LIFETIME_LIMIT,
    RevocationList, RevocationListBuilder,
};
pub use self::store::{
    Revocation, RevocationBatch, RevocationEvent, RevocationFeed, RevocationFeedFuture,
    RevocationKind, RevocationStore,
};

/// What a revocation check sees of a verified token: enough to match a `jti` blocklist or a
/// "tokens of subject S issued before T" cut-off.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub(crate) issuer: String,
    pub(crate) subject: Option<String>,
    pub(crate) jti: Option<String>,
    pub(crate) issued_at: Option<SystemTime>,
    pub(crate) expires_at: Option<SystemTime>,
}

impl TokenIdentity {
    /// A token identity, for tests of your own [`RevocationCheck`].
    pub fn new(
        issuer: impl Into<String>,
        subject: Option<String>,
        jti: Option<String>,
        issued_at: Option<SystemTime>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            subject,
            jti,
            issued_at,
            expires_at,
        }
    }

    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `sub`, when present.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// `jti`, when present.
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// `iat`, when present.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// `exp`, when present.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

impl fmt::Debug for TokenIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The answer of a [`RevocationCheck`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationStatus {
    /// Not revoked: the request goes on.
    Valid,
    /// Revoked: 401 `invalid_token` ("token revoked").
    Revoked,
    /// The check cannot answer (a [`RevocationList`](crate::revocation::RevocationList) not
    /// loaded yet, or not synchronized for longer than its
    /// [`max_staleness`](crate::revocation::RevocationListBuilder::max_staleness)): 503 with
    /// `Retry-After`, like any unavailable dependency; the inner service is not called.
    Unavailable,
}

/// Decides whether a verified token has been revoked.
///
/// Called on every request, after the signature and claims checks and on every hit of the
/// verified-token cache, so a revocation takes effect at once even for cached tokens. It is
/// synchronous and must answer from memory (a `jti` blocklist, subject cut-offs kept current in
/// the background); never query a store here. [`RevocationStatus::Revoked`] gets 401
/// `invalid_token`, [`RevocationStatus::Unavailable`] 503.
///
/// Closures returning `bool` (`true`: revoked) implement it:
///
/// ```
/// use tower_auth_jwt::{RevocationCheck, RevocationStatus, TokenIdentity};
///
/// let blocklist = |t: &TokenIdentity| t.jti() == Some("stolen-1");
/// let t = TokenIdentity::new("iss", Some("alice".into()), Some("stolen-1".into()), None, None);
/// assert_eq!(blocklist.check(&t), RevocationStatus::Revoked);
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// Whether the token is valid, revoked, or cannot be checked now.
    fn check(&self, token: &TokenIdentity) -> RevocationStatus;
}

impl<F> RevocationCheck for F
where
    F: Fn(&TokenIdentity) -> bool + Send + Sync + 'static,
{
    fn check(&self, token: &TokenIdentity) -> RevocationStatus {
        if self(token) {
            RevocationStatus::Revoked
        } else {
            RevocationStatus::Valid
        }
    }
}
