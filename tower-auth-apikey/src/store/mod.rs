//! Where key records live: the [`KeyStore`] trait, [`MemoryStore`] and (feature `sqlite`)
//! [`SqliteStore`].
//!
//! A store keeps [`StoredKey`]s: a [`KeyRecord`] and the [`KeyHash`] of its key, never the key.
//! The authenticator only calls [`KeyStore::find_by_hash`] (through its cache, with a
//! deadline) and, behind the request path, [`KeyStore::record_last_used`]; the rest serves
//! [`ApiKeys`](crate::ApiKeys).
//!
//! A store behind an `Arc` is a store too, so one instance can serve an authenticator and a
//! standalone administration API:
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_apikey::{ApiKeyAuthenticator, ApiKeys, MemoryStore, NewKey};
//! use tower_auth_core::AuthenticateLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Arc::new(MemoryStore::new());
//! let admin = ApiKeys::builder(Arc::clone(&store)).build().unwrap();
//! let auth = ApiKeyAuthenticator::builder(store).build().unwrap();
//! let key = admin.create(NewKey::new("cron")).await.unwrap().key;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
//! let req = Request::get("/").header("x-api-key", key.expose_secret()).body(()).unwrap();
//! assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//! let req = Request::get("/").header("x-api-key", "sk_live_nope").body(()).unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # Shape
//!
//! The trait returns boxed futures ([`StoreFuture`]) rather than using `async fn`, so that it is
//! object safe: the authenticator holds an `Arc<dyn KeyStore>`, stays one concrete type whatever
//! the backend, and the CLI takes any store. The box costs one allocation per store call, which
//! only happens on a cache miss. Each method is one small, atomic operation, so a backend
//! (SQLite here, Postgres next) is a few queries; no database type appears in the trait, and
//! errors are [`StoreError`].
//!
//! # Invalidation across processes
//!
//! A store that several processes share can push changes to every process's cache through
//! [`KeyStore::invalidations`], an optional hook (default `None`, so [`MemoryStore`] and
//! stores of your own need nothing). It returns an [`InvalidationFeed`]: a pull-based
//! feed with boxed futures, like the rest of the trait, so it stays object safe and names no
//! runtime or database type. Each authenticator asks for its own feed and polls it in a
//! background task; dropping the authenticator aborts the task and drops the feed, which
//! closes whatever connection it held. A feed yields [`Invalidation::Key`] for one changed
//! key, [`Invalidation::Created`] for a new one (dropping only an "unknown key" entry), and
//! [`Invalidation::All`] when it may have missed changes (after reconnecting, or falling
//! behind), on which the authenticator clears its whole cache; the cache TTL stays the upper
//! bound for anything a feed cannot see.
//!
//! [`PostgresStore`] (feature `postgres`) implements it with `LISTEN`/`NOTIFY`: revoke,
//! rotate and update_limits publish the key's hash on the channel `tower_auth_api_keys` in the transaction that
//! makes the change, and each feed holds one `LISTEN` connection. [`SqliteStore`] (feature
//! `sqlite`) implements it with a change-log table written in the transaction of each change
//! (created, revoked, rotated, limits updated) and read by each feed over a connection of its own every 100 ms,
//! when `PRAGMA data_version` shows a commit by another connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::limit::{Lease, LeaseRequest, LimitsUpdate};
use crate::{KeyHash, KeyRecord, StoredKey};

#[cfg(any(test, feature = "testing"))]
mod bulk;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use self::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteStore, SqliteStoreBuilder};

pub use tower_auth_core::store::{StoreError, StoreErrorKind, StoreFuture};

/// The future returned by [`InvalidationFeed::next`].
pub type InvalidationFuture<'a> = Pin<Box<dyn Future<Output = Option<Invalidation>> + Send + 'a>>;

/// A change another process made to the store, pushed to the caches of every process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// The record of the key with this hash changed (revoked, rotated, its expiry moved): drop
    /// its cache entry.
    Key(KeyHash),
    /// A key with this hash was created: forget that it was unknown (a negative cache entry),
    /// and keep a record read since.
    Created(KeyHash),
    /// Changes may have been missed (the feed reconnected, or fell behind): drop every cache
    /// entry.
    All,
}

/// A feed of [`Invalidation`]s from a store shared by several processes, returned by
/// [`KeyStore::invalidations`].
///
/// The authenticator that asked for it polls [`next`](Self::next) in a background task and
/// drops the feed when it is dropped itself, so a feed may own a connection. A feed deals with
/// its own failures: after reconnecting it yields [`Invalidation::All`], since it may have
/// missed changes meanwhile. `None` ends it (the cache TTL is then the only bound again).
pub trait InvalidationFeed: Send + 'static {
    /// The next invalidation, waiting as long as it takes. Need not be cancel safe: it is
    /// polled to completion or dropped with the feed.
    fn next(&mut self) -> InvalidationFuture<'_>;
}

/// Persistence for API key records. See the [module docs](self).
///
/// Implementations must be safe to call concurrently. Timestamps are [`SystemTime`]s; a store
/// may round them to the millisecond.
pub trait KeyStore: Send + Sync + 'static {
    /// The record whose key hashes to `hash`, revoked or expired ones included (the
    /// authenticator decides), or `None`.
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>>;

    /// The record with id `id`, or `None`.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>>;

    /// Every record, oldest first.
    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>>;

    /// Adds a key. An id or hash that already exists is a [`StoreErrorKind::Conflict`].
    fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()>;

    /// Marks the key `id` revoked at `at` (keeping an earlier revocation time) and returns it,
    /// with its hash so caches can drop it; `None` if there is no such key.
    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>>;

    /// Atomically sets the expiry of the unrevoked key `old_id` to `old_expires_at` and inserts
    /// `new`. Returns the old key as updated, or `None` (and inserts nothing) when `old_id` does
    /// not exist or is revoked.
    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        old_expires_at: SystemTime,
        new: &'a StoredKey,
    ) -> StoreFuture<'a, Option<StoredKey>>;

    /// Writes a batch of last-used times (`(key id, time)`), keeping the later of the stored
    /// and the given time. Unknown ids are ignored.
    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()>;

    /// Applies `update` to the limits of the key `id` at `at` (see [`LimitsUpdate::apply`]) and
    /// returns the key as updated, with its hash so caches can drop it; `None` if there is no
    /// such key. Atomic with [`spend_credits`](Self::spend_credits), and published on the
    /// store's change feed like a revocation.
    ///
    /// The default refuses ([`StoreErrorKind::Unsupported`]): a store of your own written
    /// before limits existed keeps compiling.
    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        update: &'a LimitsUpdate,
        at: SystemTime,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        let _ = (id, update, at);
        Box::pin(std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this key store cannot change limits",
        ))))
    }

    /// Writes a batch of spent credits, each `(key id, credits spent, time of the last one)`:
    /// the key's remaining credits at that time (after any refill, see
    /// [`Credits::remaining_at`](crate::limit::Credits::remaining_at)) less those spent,
    /// never below zero. Keys without credits and unknown ids are ignored. Not a change for
    /// the change feed (like last-used times): the authenticator that spent them already
    /// counts them.
    ///
    /// The default does nothing (a store that cannot keep credits only keeps them in memory).
    fn spend_credits<'a>(&'a self, batch: &'a [(String, u64, SystemTime)]) -> StoreFuture<'a, ()> {
        let _ = batch;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether the authenticators on this store share the limits of its keys through
    /// [`lease_limits`](Self::lease_limits) (default false: each authenticator enforces them
    /// in memory, for a store one process uses). `PostgresStore` does.
    fn shares_limits(&self) -> bool {
        false
    }

    /// Leases limits of the key `id` for one authenticator among several, in one atomic step:
    /// takes up to `request.rate_tokens` tokens of the key's rate limit (fewer when the
    /// limit's burst allows fewer at `now`) and writes back `request.credits_spent` credits
    /// like [`spend_credits`](Self::spend_credits), returning the tokens granted and the
    /// credits left. `None` if there is no such key. Called only when
    /// [`shares_limits`](Self::shares_limits) is true.
    ///
    /// The default refuses ([`StoreErrorKind::Unsupported`]).
    fn lease_limits<'a>(
        &'a self,
        id: &'a str,
        request: &'a LeaseRequest,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Lease>> {
        let _ = (id, request, now);
        Box::pin(std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unsupported,
            "this key store cannot lease limits",
        ))))
    }

    /// A new feed of the changes made to this store by any process, for a store that several
    /// processes share; `None` (the default) for a store that only this process writes to,
    /// where [`ApiKeys`](crate::ApiKeys) from
    /// [`ApiKeyAuthenticator::admin`](crate::ApiKeyAuthenticator::admin) invalidates the cache
    /// directly.
    ///
    /// Every [`ApiKeyAuthenticator`](crate::ApiKeyAuthenticator) built on the store calls this
    /// once and keeps the feed for its lifetime. `PostgresStore` returns a `LISTEN` connection
    /// of its own, `SqliteStore` a poller of its change log over a connection of its own; see
    /// the [module docs](self#invalidation-across-processes).
    fn invalidations(&self) -> Option<Box<dyn InvalidationFeed>> {
        None
    }

    /// Every stored key's hash (revoked and expired keys included), for the authenticator's
    /// [filter of known keys](crate::ApiKeyAuthenticatorBuilder::key_filter), which answers
    /// unknown keys without a store query. `Ok(None)` (the default): the store does not list
    /// them, and the authenticator looks every well-formed key up.
    ///
    /// Return `Some` only from a store whose [`invalidations`](Self::invalidations) feed
    /// reports every key created by any process (as [`Invalidation::Created`] or
    /// [`Invalidation::Key`]): a key created elsewhere is refused until the feed reports it.
    /// `SqliteStore` and `PostgresStore` do; [`MemoryStore`] does not (another
    /// [`ApiKeys`](crate::ApiKeys) sharing it could add keys unseen).
    fn key_hashes(&self) -> StoreFuture<'_, Option<Vec<KeyHash>>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

impl<S: KeyStore + ?Sized> KeyStore for Arc<S> {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        (**self).find_by_hash(hash)
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        (**self).get(id)
    }
    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        (**self).list()
    }
    fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()> {
        (**self).insert(key)
    }
    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
        (**self).revoke(id, at)
    }
    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        old_expires_at: SystemTime,
        new: &'a StoredKey,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        (**self).rotate(old_id, old_expires_at, new)
    }
    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
        (**self).record_last_used(batch)
    }
    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        update: &'a LimitsUpdate,
        at: SystemTime,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        (**self).update_limits(id, update, at)
    }
    fn spend_credits<'a>(&'a self, batch: &'a [(String, u64, SystemTime)]) -> StoreFuture<'a, ()> {
        (**self).spend_credits(batch)
    }
    fn shares_limits(&self) -> bool {
        (**self).shares_limits()
    }
    fn lease_limits<'a>(
        &'a self,
        id: &'a str,
        request: &'a LeaseRequest,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Lease>> {
        (**self).lease_limits(id, request, now)
    }
    fn invalidations(&self) -> Option<Box<dyn InvalidationFeed>> {
        (**self).invalidations()
    }
    fn key_hashes(&self) -> StoreFuture<'_, Option<Vec<KeyHash>>> {
        (**self).key_hashes()
    }
}

#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
pub mod testing {
    //! The conformance suite of [`KeyStore`] (feature `testing`): the checks
    //! every store of this crate passes, public so that the integration tests run them against
    //! real databases and so that your own store can be held to the same contract.
    //!
    //! ```
    //! # #[tokio::main(flavor = "current_thread")]
    //! # async fn main() {
    //! use tower_auth_apikey::MemoryStore;
    //!
    //! tower_auth_apikey::store::testing::conformance(&MemoryStore::new()).await;
    //! # }
    //! ```

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use tower_auth_core::Scopes;

    pub use super::bulk::numbered_key;

    /// A record with id `id` whose hash is 32 times `byte`.
    pub fn stored(id: &str, byte: u8) -> StoredKey {
        StoredKey {
            record: KeyRecord {
                id: id.into(),
                owner: "alice".into(),
                name: Some("ci".into()),
                scopes: Scopes::new(["read", "write"]),
                created_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                expires_at: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
                revoked_at: None,
                last_used_at: None,
                metadata: serde_json::json!({"team": "platform", "n": 1}),
                limits: crate::limit::KeyLimits::default(),
            },
            hash: KeyHash::from_bytes([byte; 32]),
        }
    }

    /// Runs the suite against `store`, which must be empty; panics on the first failed check.
    ///
    /// Covers round trips by hash and by id, conflicts on duplicate ids and hashes, listing
    /// order, last-used times (the later one wins, unknown ids ignored), revocation (the first
    /// time kept, the hash returned) and rotation (atomic, refused for revoked and unknown
    /// keys).
    pub async fn conformance(store: &dyn KeyStore) {
        let a = stored("key_a", 1);
        let mut b = stored("key_b", 2);
        b.record.owner = "bob".into();
        b.record.name = None;
        b.record.expires_at = None;
        b.record.created_at += Duration::from_secs(1);
        b.record.metadata = serde_json::json!({});
        store.insert(&a).await.unwrap();
        store.insert(&b).await.unwrap();

        // Round trip, by hash and by id.
        assert_eq!(
            store.find_by_hash(&a.hash).await.unwrap().as_ref(),
            Some(&a.record)
        );
        assert_eq!(store.get("key_b").await.unwrap().as_ref(), Some(&b.record));
        assert_eq!(
            store
                .find_by_hash(&KeyHash::from_bytes([9; 32]))
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.get("key_zz").await.unwrap(), None);

        // Duplicates conflict.
        let mut dup_id = stored("key_a", 3);
        dup_id.hash = KeyHash::from_bytes([3; 32]);
        assert_eq!(
            store.insert(&dup_id).await.unwrap_err().kind(),
            StoreErrorKind::Conflict
        );
        let dup_hash = stored("key_c", 1);
        assert_eq!(
            store.insert(&dup_hash).await.unwrap_err().kind(),
            StoreErrorKind::Conflict
        );

        // Listing, oldest first.
        let ids: Vec<_> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["key_a", "key_b"]);

        // last used keeps the later time.
        let t1 = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let t0 = t1 - Duration::from_secs(10);
        store
            .record_last_used(&[("key_a".into(), t1), ("key_unknown".into(), t1)])
            .await
            .unwrap();
        store
            .record_last_used(&[("key_a".into(), t0)])
            .await
            .unwrap();
        assert_eq!(
            store.get("key_a").await.unwrap().unwrap().last_used_at,
            Some(t1)
        );

        // Revoke keeps the first time, and returns the hash.
        let r1 = UNIX_EPOCH + Duration::from_secs(1_760_000_000);
        let revoked = store.revoke("key_b", r1).await.unwrap().unwrap();
        assert_eq!(revoked.hash, b.hash);
        assert_eq!(revoked.record.revoked_at, Some(r1));
        let again = store
            .revoke("key_b", r1 + Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.record.revoked_at, Some(r1));
        assert_eq!(store.revoke("key_zz", r1).await.unwrap(), None);
        assert!(
            store
                .find_by_hash(&b.hash)
                .await
                .unwrap()
                .unwrap()
                .is_revoked()
        );

        // Rotation: old expiry moved, new key inserted, atomically; refused for revoked keys.
        let grace_end = UNIX_EPOCH + Duration::from_secs(1_770_000_000);
        let new = stored("key_n", 4);
        let old = store
            .rotate("key_a", grace_end, &new)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.hash, a.hash);
        assert_eq!(old.record.expires_at, Some(grace_end));
        assert_eq!(
            store.find_by_hash(&new.hash).await.unwrap().as_ref(),
            Some(&new.record)
        );
        let refused = stored("key_m", 5);
        assert_eq!(
            store.rotate("key_b", grace_end, &refused).await.unwrap(),
            None
        );
        assert_eq!(
            store.rotate("key_zz", grace_end, &refused).await.unwrap(),
            None
        );
        assert_eq!(store.get("key_m").await.unwrap(), None);

        limits(store).await;
    }

    /// The credits of a stored key that has them.
    async fn credits(store: &dyn KeyStore, id: &str) -> crate::limit::Credits {
        let record = store.get(id).await.unwrap().unwrap();
        record.limits.credits.unwrap()
    }

    /// Limits: stored on insert, changed by `update_limits`, spent by `spend_credits`.
    async fn limits(store: &dyn KeyStore) {
        use crate::limit::{Credits, KeyLimits, LimitsUpdate, RateLimit};

        let mut l = stored("key_l", 6);
        let created = l.record.created_at;
        let rate = RateLimit::new("100/1s".parse().unwrap(), Some(200)).unwrap();
        l.record.limits = KeyLimits {
            rate: Some(rate),
            credits: Some(Credits {
                remaining: 10,
                refill: Some("10/1h".parse().unwrap()),
                updated_at: created,
            }),
        };
        store.insert(&l).await.unwrap();
        assert_eq!(store.get("key_l").await.unwrap().as_ref(), Some(&l.record));

        // Spending: subtracted, never below zero; a refill period turned first resets.
        let t = created + Duration::from_secs(60);
        store
            .spend_credits(&[("key_l".into(), 3, t), ("key_unknown".into(), 1, t)])
            .await
            .unwrap();
        let c = credits(store, "key_l").await;
        assert_eq!((c.remaining, c.updated_at), (7, t));
        store
            .spend_credits(&[("key_l".into(), 30, t)])
            .await
            .unwrap();
        let c = credits(store, "key_l").await;
        assert_eq!(c.remaining, 0);
        let next_hour = created + Duration::from_secs(3_660);
        store
            .spend_credits(&[("key_l".into(), 4, next_hour)])
            .await
            .unwrap();
        let c = credits(store, "key_l").await;
        assert_eq!((c.remaining, c.updated_at), (6, next_hour));
        // Keys without credits are left alone.
        store
            .spend_credits(&[("key_n".into(), 4, t)])
            .await
            .unwrap();
        assert_eq!(
            store.get("key_n").await.unwrap().unwrap().limits.credits,
            None
        );

        // Updates: what is not mentioned is kept; the hash comes back for caches.
        let at = next_hour + Duration::from_secs(1);
        let updated = store
            .update_limits("key_l", &LimitsUpdate::new().credits(50), at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.hash, l.hash);
        let c = updated.record.limits.credits.unwrap();
        assert_eq!((c.remaining, c.updated_at), (50, at));
        assert_eq!(updated.record.limits.rate, Some(rate));
        assert_eq!(
            store.get("key_l").await.unwrap().as_ref(),
            Some(&updated.record)
        );
        let updated = store
            .update_limits("key_l", &LimitsUpdate::new().no_rate().no_credits(), at)
            .await
            .unwrap()
            .unwrap();
        assert!(updated.record.limits.is_unlimited());
        assert!(
            store
                .get("key_l")
                .await
                .unwrap()
                .unwrap()
                .limits
                .is_unlimited()
        );
        assert_eq!(
            store
                .update_limits("key_zz", &LimitsUpdate::new().no_rate(), at)
                .await
                .unwrap(),
            None
        );
    }
}

/// The stores' constructors can be spawned and boxed as `Send` futures.
#[cfg(test)]
#[allow(dead_code)]
fn _constructors_are_send() {
    fn is_send<T: Send>(_: T) {}
    #[cfg(feature = "sqlite")]
    is_send(SqliteStore::connect(""));
    #[cfg(feature = "postgres")]
    is_send(PostgresStore::connect(""));
}
