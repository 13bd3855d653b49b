//! Revocation: the per-request [`RevocationCheck`] hook, and (feature `revocation`, on by
//! default) [`RevocationList`], a `jti` blocklist and subject cut-offs held in memory and kept
//! current from a [`RevocationStore`]: [`MemoryRevocationStore`], (feature `sqlite`)
//! [`SqliteRevocationStore`] or (feature `postgres`) [`PostgresRevocationStore`].
//!
//! Revocation is part of the verifier: nothing here needs the issuer (feature `issue`),
//! whose `JwtIssuer::logout_everywhere` and `JwtIssuer::revoke_access_token` write through a
//! list like any administrator would.
//!
//! Short-lived access tokens limit the damage of a stolen one to its lifetime; a revocation
//! list ends it at once, without a database on the request path. The list answers from
//! memory; background tasks keep it current from the store (PostgreSQL notifications, or
//! SQLite's change feed, polled every 100 ms).
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::AuthenticateLayer;
//! use tower_auth_jwt::revocation::{MemoryRevocationStore, RevocationList};
//! use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let secret = b"a secret of at least 32 bytes, shared with the issuer";
//! // Loaded in full before serving; kept current in the background.
//! let revocations = RevocationList::builder(MemoryRevocationStore::new()).build().unwrap();
//! revocations.load().await.unwrap();
//!
//! let auth = JwtAuthenticator::builder()
//!     .issuer(
//!         TrustedIssuer::new("https://app.example")
//!             .audience("app-api")
//!             .hmac_secret(secret),
//!     )
//!     .revocation(revocations.clone())
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .service(service_fn(|_: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(()))
//!     }));
//! let call = |token: &str| {
//!     let req = Request::get("/orders").header("authorization", format!("Bearer {token}"));
//!     svc.clone().oneshot(req.body(()).unwrap())
//! };
//!
//! // Tokens as the issuer would mint them (here with jsonwebtoken), issued a second ago.
//! let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
//! let mint = |sub: &str, jti: &str| {
//!     let claims = serde_json::json!({
//!         "iss": "https://app.example", "aud": "app-api", "sub": sub, "jti": jti,
//!         "iat": now - 1, "exp": now + 600,
//!     });
//!     let key = jsonwebtoken::EncodingKey::from_secret(secret);
//!     jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
//! };
//! let stolen = mint("alice", "jti-1");
//! let other = mint("bob", "jti-2");
//! assert_eq!(call(&stolen).await.unwrap().status(), StatusCode::OK);
//!
//! // One token, by `jti` (kept on the list until its `exp`).
//! let exp = UNIX_EPOCH + Duration::from_secs(now + 600);
//! revocations
//!     .revoke_token("https://app.example", "jti-1", Some(exp))
//!     .await
//!     .unwrap();
//! assert_eq!(call(&stolen).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(call(&other).await.unwrap().status(), StatusCode::OK);
//!
//! // Every token of bob issued until now ("log out everywhere").
//! revocations
//!     .cut_off_subject("https://app.example", "bob", SystemTime::now())
//!     .await
//!     .unwrap();
//! assert_eq!(call(&other).await.unwrap().status(), StatusCode::UNAUTHORIZED);
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
//! - Cut-offs are **whole seconds**, like `iat`: [`cut_off_subject`](RevocationList::cut_off_subject)
//!   rounds its time up to the next whole second before applying and storing it, so every
//!   process holds the same cut-off whatever its store's precision (SQL stores keep
//!   milliseconds), and a token issued in the cut-off's second, even just after it, is
//!   revoked (fail closed). The client refreshes, or logs in, a second later.
//! - A cut-off matches the `sub` claim only (not `client_id` or `azp`).
//! - Cut-offs compare the token's `iat` (the issuer's clock) with the cut-off (the clock of the
//!   process that made it): keep clocks synchronized.
//! - **Entries end**: a token living longer than
//!   [`max_token_lifetime`](RevocationListBuilder::max_token_lifetime) (`exp` - `iat`; at most
//!   366 days) outlives its subject's cut-off once the cut-off is purged; so does a token
//!   **without `exp`**, and one revoked by `jti` with an `exp` earlier than its real one (or,
//!   without one, living longer than the lifetime from the revocation). Set the lifetime to
//!   your issuers' longest, and require `exp` (the default of
//!   [`TrustedIssuer`](crate::TrustedIssuer)).
//! - Values (`iss`, `jti`, `sub`) longer than 1 KiB are refused.
//!
//! **Log out everywhere** with the built-in issuer (feature `issue`):
//! `JwtIssuer::logout_everywhere` revokes every refresh-token family (session) of the subject
//! in the issuer's store, then cuts the subject off at the current time through the list, so
//! neither its refresh tokens nor its access tokens work any more;
//! `JwtIssuer::revoke_access_token` revokes one access token by `jti`. Both need
//! `JwtIssuerBuilder::revocation_list`. Refresh families are not keyed by issuer: two issuers
//! sharing one refresh-token store revoke each other's sessions of a subject of the same
//! name.
//!
//! # On every request
//!
//! [`JwtAuthenticatorBuilder::revocation`](crate::JwtAuthenticatorBuilder::revocation) asks
//! the list after the signature and claims checks and on every hit of the verified-token
//! cache, so a revocation also ends tokens served from the cache. The answer is a
//! [`RevocationStatus`]: revoked is 401 `invalid_token`, unavailable is 503 with
//! `Retry-After` (the inner service is not called).
//!
//! The list answers from memory, without a lock: its entries are in two concurrent hash maps
//! ([`papaya`](https://docs.rs/papaya)), whose reads take no lock and write no shared
//! counter, so no cache line bounces between cores; a request does at most two hash-map
//! lookups that borrow the token's strings, no allocation and never a store query (tested
//! with a store that counts its calls). The check of a `jti` not on the list costs one hash
//! and the probe of one table group: with a million entries, about one cache miss.
//!
//! **Write cost**: a write (a revocation here, notified or polled entries, a reload, a purge)
//! changes the entries it concerns in place, one writer at a time, while requests keep
//! reading: revoking `n` tokens one by one costs `n` entry writes, not `n` copies of the
//! list. Each entry is visible to requests as soon as it is applied (revocations only add,
//! so a request sees a batch partly applied at worst, never a list with fewer revocations
//! than it had). A replaced or purged entry is freed once no request still reads it
//! (epoch-based reclamation), an entry at a time, so no request pays for freeing a large
//! list. Why papaya: reads dominate and must not wait for writers (`dashmap` takes a
//! read lock on a shard, a shared atomic, for every read); a persistent map behind an
//! atomic pointer (`imbl`) would walk several nodes per lookup (several cache misses at a
//! million entries); papaya grows its table incrementally, so no write stalls on copying
//! the whole table either. Memory: about 140 bytes allocated per revoked `jti` of 36 bytes (see
//! BENCHMARKS.md, "Scale"). The maps hash with foldhash, several times faster than SipHash on
//! 36-byte `jti`s; only administrators and the issuer choose keys, so hash flooding is out of
//! reach of token holders.
//!
//! Until its first [`load`](RevocationList::load) succeeds, a list answers **unavailable**
//! (503) for every token, so a process that could not read its revocations does not accept
//! tokens it may have been told to refuse. Call `load` at start-up and fail when it fails.
//!
//! # Keeping current
//!
//! [`RevocationList::load`] first connects the store's [notification
//! feed](RevocationStore::revocation_feed), if it has one (and fails if it cannot: a list
//! nobody keeps current is not served), then reads every unexpired entry, then starts the
//! background tasks (which stop when the last clone of the list is dropped; `load` again
//! restarts any that ended, after a panic or on a runtime that shut down):
//!
//! - with a feed ([`SqliteRevocationStore`]: its change feed, a connection of its own that
//!   reads the entries past the last one it saw whenever `PRAGMA data_version` shows a
//!   commit by another connection, checked every 100 ms, so entries written by other
//!   processes apply within about 100 ms; see [its docs](SqliteRevocationStore#change-feed).
//!   Or [`PostgresRevocationStore`]: `LISTEN`/`NOTIFY`, the
//!   notification sent in the transaction that writes the entry and carrying only its `seq`,
//!   the row then read from the table), each entry is applied as soon as the writer
//!   commits, typically within milliseconds on every instance. Since `LISTEN` is established
//!   before the full read, nothing committed in between is missed. The feed checks its
//!   connection with a heartbeat (30 s, from 1 s to 1 h); when the connection is lost or
//!   silent (buffered notifications are read before a heartbeat is declared missed; one
//!   that cannot be sent, the pool being exhausted, is retried and keeps the connection), it
//!   reconnects
//!   (backoff up to 5 s) and the list reloads everything, since notifications sent meanwhile
//!   are gone. Reloads run beside the feed, retried until they succeed, so notified entries
//!   keep applying while the store's full reads fail; requests for reloads made meanwhile
//!   collapse into one. A feed that ends is logged and replaced.
//!   [`poll`](RevocationList::poll) on such a store is a full reload: PostgreSQL takes
//!   sequence numbers at insert and commits out of order, so a cursor could skip an entry;
//! - otherwise ([`MemoryRevocationStore`], a [`SqliteRevocationStore`]
//!   [`without_change_feed`](SqliteRevocationStoreBuilder::without_change_feed)) the list
//!   polls for entries added after the last one it saw every
//!   [`poll_interval`](RevocationListBuilder::poll_interval) (5 s): the bound on how long a
//!   revocation made by another process takes here. The process that revokes applies it at
//!   once.
//! - every [`reload_interval`](RevocationListBuilder::reload_interval) (5 min), a full
//!   reload, the safety net under lost notifications;
//! - every [`purge_interval`](RevocationListBuilder::purge_interval) (60 s), entries whose
//!   tokens have all expired are dropped from memory, and deleted from the store once expired
//!   for another leeway (PostgreSQL also checks the database's clock, minus 10 min), so an
//!   instance whose clock runs ahead cannot delete the others' live revocations. Memory is
//!   bounded by the revocations of live tokens, as long as the expiries given are real:
//!   [`revoke_token`](RevocationList::revoke_token) with `Some(exp)` keeps the entry until
//!   that `exp` (plus the leeway), whatever the
//!   [`max_token_lifetime`](RevocationListBuilder::max_token_lifetime) (only `None` uses it).
//!
//! Full reads have their own deadline, [`full_read_timeout`](RevocationListBuilder::full_read_timeout)
//! (30 s), other store calls [`store_timeout`](RevocationListBuilder::store_timeout) (2 s).
//! Reloads merge: an entry is only ever removed by expiry, so a reload racing a revocation
//! cannot lose it. A row the store cannot read is logged and skipped. Background failures are
//! retried and logged (`warn` on the `tower_auth::jwt` target, with the store's error, never
//! a token).
//!
//! **Staleness**: [`RevocationList::staleness`] is the time since the last successful
//! synchronization (full read, poll, or feed heartbeat), measured on the monotonic timer as
//! well as the clock, so a clock stepped back does not hide it. A heartbeat does not count
//! while a reload the feed asked for (after a reconnection, or a notified row it could not
//! read) has not succeeded: a feed whose full reads keep failing gets stale. With
//! [`max_staleness`](RevocationListBuilder::max_staleness) set, a list past it answers
//! unavailable (503), like the JWKS cache past its maximum staleness: a store outage then
//! stops requests after that bound instead of letting revocations made elsewhere go unseen
//! indefinitely. It is off by default (an outage only delays revocations made elsewhere, and
//! is logged and visible in the staleness gauge); turn it on where a missed revocation is
//! worse than an outage.
//!
//! # Stores
//!
//! [`RevocationStore`] is an append-only log with a cursor that never goes back, implemented
//! by [`MemoryRevocationStore`], (feature `sqlite`) [`SqliteRevocationStore`] and (feature
//! `postgres`) [`PostgresRevocationStore`]. They fail with the crate's [`StoreError`], shared
//! with the issuer's stores. The SQL stores keep entries in `tower_auth_jwt_revocations`,
//! created by their own migrations (recorded in `tower_auth_jwt_revocation_migrations`, apart
//! from the issuer's `tower_auth_jwt_migrations`), so one database can hold the revocations,
//! the issuer's keys and sessions, and every other tower-auth crate's tables. On PostgreSQL, notifications go to the channel
//! `tower_auth_jwt_revocations.<schema>`, so deployments sharing a database with a schema
//! each stay apart; a notification is only a hint (anyone who can connect can send one), and
//! payloads that are not a sequence number are ignored and counted.
//!
//! # Metrics
//!
//! With the `metrics` feature, labelled `list` (the [name](RevocationListBuilder::name),
//! `default` unless set): `tower_auth_jwt_revocations_applied_total{list, kind=jti|subject}`
//! (entries that changed a list: revoked here, notified, polled or reloaded),
//! `tower_auth_jwt_revocation_lag_seconds{list}` (histogram: from the writing of an entry, by
//! the writer's clock, to its application here, for entries coming from the store: notified,
//! polled, or found by a reload after the first load),
//! `tower_auth_jwt_revoked_tokens{list}` and `tower_auth_jwt_revoked_subjects{list}` (gauges:
//! list sizes), `tower_auth_jwt_revocation_staleness_seconds{list}` (gauge: since the last
//! synchronization), `tower_auth_jwt_revocation_sync_failures_total{list,
//! operation=load|poll|reload|purge|listen}`. PostgreSQL feeds:
//! `tower_auth_jwt_revocation_feed_failures_total{reason=connect|lost|heartbeat|read}`,
//! `tower_auth_jwt_revocation_notifications_ignored_total`; SQL stores:
//! `tower_auth_jwt_revocation_rows_skipped_total`. Checks answered unavailable count as
//! `tower_auth_jwt_verifications_total{outcome=unavailable}`.

use std::fmt;
use std::time::SystemTime;

#[cfg(feature = "revocation")]
mod list;
#[cfg(feature = "revocation")]
mod memory;
#[cfg(all(feature = "revocation", feature = "postgres"))]
mod postgres;
#[cfg(all(feature = "revocation", any(feature = "sqlite", feature = "postgres")))]
mod sql;
#[cfg(all(feature = "revocation", feature = "sqlite"))]
mod sqlite;
#[cfg(feature = "revocation")]
mod store;
#[cfg(all(feature = "revocation", feature = "testing"))]
#[doc(hidden)]
#[allow(clippy::unwrap_used)]
pub mod testing;

#[cfg(feature = "revocation")]
pub use self::list::{
    DEFAULT_FULL_READ_TIMEOUT, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_POLL_INTERVAL,
    DEFAULT_PURGE_INTERVAL, DEFAULT_RELOAD_INTERVAL, DEFAULT_REVOCATION_LEEWAY,
    DEFAULT_REVOCATION_STORE_TIMEOUT, MAX_REVOCATION_VALUE_LEN, MAX_TOKEN_LIFETIME_LIMIT,
    RevocationList, RevocationListBuilder,
};
#[cfg(feature = "revocation")]
pub use self::memory::MemoryRevocationStore;
#[cfg(all(feature = "revocation", feature = "postgres"))]
pub use self::postgres::{
    DEFAULT_REVOCATION_HEARTBEAT, MAX_REVOCATION_HEARTBEAT, MIN_REVOCATION_HEARTBEAT,
    PostgresRevocationStore, PostgresRevocationStoreBuilder,
};
#[cfg(all(feature = "revocation", feature = "sqlite"))]
pub use self::sqlite::{SqliteRevocationStore, SqliteRevocationStoreBuilder};
#[cfg(feature = "revocation")]
pub use self::store::{
    Revocation, RevocationBatch, RevocationEvent, RevocationFeed, RevocationFeedFuture,
    RevocationKind, RevocationStore,
};
#[cfg(feature = "revocation")]
pub use crate::store::{StoreError, StoreErrorKind, StoreFuture};

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
    /// The check cannot answer (a [`RevocationList`] not loaded yet, or not synchronized for
    /// longer than its [`max_staleness`](RevocationListBuilder::max_staleness)): 503 with
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
