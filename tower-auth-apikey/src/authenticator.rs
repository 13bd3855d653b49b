//! [`ApiKeyAuthenticator`]: finds the key in the request, checks its format, looks its hash up
//! through the cache and builds the [`Principal`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;
use http::request::Parts;
use tower_auth_core::cache::{AuthCache, CacheRead, Loaded, Missed};
use tower_auth_core::clock::{Clock, SystemClock};
use tower_auth_core::credential::{Found, Location, bearer_token, header_value, query_value};
use tower_auth_core::{
    AuthError, Authentication, Authenticator, BoxAuthFuture, CacheConfig, ConfigError, Principal,
    PrincipalKind, Scheme,
};

use crate::filter::KeyFilter;
use crate::key::{FormatError, KeyFormat, KeyHasher};
use crate::last_used::LastUsed;
use crate::limit::{KeyUsage, Limiters};
use crate::{
    ApiKeys, Invalidation, InvalidationFeed, KeyHash, KeyRecord, KeyStore, StoreError, telemetry,
};

/// The name of the cache (its `cache` metrics label in tower-auth-core).
const CACHE_NAME: &str = "api_key";
/// The name of the stale-if-error copy.
const STALE_CACHE_NAME: &str = "api_key_stale";
/// Fixed descriptions: they go to the client and to logs, and never contain input.
const UNKNOWN: &str = "unknown or revoked api key";
const EXPIRED: &str = "expired api key";
const UNAVAILABLE: &str = "api key store unavailable";

/// What the cache holds per key hash: the principal, ready to hand out, and what is checked on
/// every request.
pub(crate) struct Cached {
    principal: Principal,
    id: Arc<str>,
    expires_at: Option<SystemTime>,
    revoked: bool,
    /// Whole seconds of the last use noted for write-behind; limits noting to once a second.
    noted_secs: AtomicU64,
    /// The key's limiter, if it has limits: kept by key id in [`Limiters`], so it outlives
    /// this cache entry.
    usage: Option<KeyUsage>,
}

impl Cached {
    fn new(record: KeyRecord, limiters: &Arc<Limiters>) -> Self {
        let id: Arc<str> = record.id.as_str().into();
        let expires_at = record.expires_at;
        let revoked = record.is_revoked();
        let usage = limiters.for_record(&record).map(KeyUsage);
        let mut principal = Principal::builder(record.owner.clone(), Scheme::ApiKey)
            .kind(PrincipalKind::Application)
            .scope_set(record.scopes.clone())
            .maybe_expires_at(expires_at)
            .extension(record);
        if let Some(usage) = &usage {
            principal = principal.extension(usage.clone());
        }
        Self {
            principal: principal.build(),
            id,
            expires_at,
            revoked,
            noted_secs: AtomicU64::new(0),
            usage,
        }
    }
}

/// Keys are SHA-256 (or HMAC-SHA-256) digests of the presented keys, spread evenly whatever
/// the keys: a fast hasher (seeded per process) is enough for the table, SipHash would only add
/// time to every lookup.
type KeyCache = AuthCache<KeyHash, Arc<Cached>, foldhash::fast::RandomState>;

/// The lookup cache and, with stale-if-error, the last records read from the store.
#[derive(Clone)]
pub(crate) struct Caches {
    main: KeyCache,
    stale: Option<KeyCache>,
    /// The filter of known keys, on a store that lists its hashes and reports creations.
    filter: Option<Arc<KeyFilter>>,
}

impl Caches {
    /// Drops `hash` from both caches at once (a lookup under way re-reads the store).
    pub(crate) async fn invalidate(&self, hash: &KeyHash) {
        self.main.invalidate(hash).await;
        if let Some(stale) = &self.stale {
            stale.invalidate(hash).await;
        }
    }

    /// Drops the negative entry of `hash`, if that is what the cache holds (the stale copy
    /// holds no negative entries).
    pub(crate) async fn forget_unknown(&self, hash: &KeyHash) {
        if let Some(None) = self.main.get(hash).await {
            // A record loaded in between is dropped too: it is read again.
            self.main.invalidate(hash).await;
        }
    }

    /// Drops every entry of both caches, and the filter of known keys until it is rebuilt.
    pub(crate) fn invalidate_all(&self) {
        if let Some(filter) = &self.filter {
            filter.reset();
        }
        self.main.invalidate_all();
        if let Some(stale) = &self.stale {
            stale.invalidate_all();
        }
    }

    /// Notes that the store holds `hash` (a key created, or one the store reports changed), so
    /// the filter of known keys lets it through.
    pub(crate) fn known(&self, hash: &KeyHash) {
        if let Some(filter) = &self.filter {
            filter.insert(hash);
        }
    }
}

/// The background task applying the store's [`InvalidationFeed`] (if it has one) to the
/// caches. It is spawned at build time, or on the first lookup when built outside a tokio
/// runtime, and aborted when the authenticator is dropped, which drops the feed and closes its
/// connection.
///
/// With the filter of known keys on, a second task keeps it current (see
/// [`KeyFilter::maintain`]); it starts and stops with the first.
struct Listener {
    /// The feed, until the task takes it.
    feed: Mutex<Option<Box<dyn InvalidationFeed>>>,
    /// Whether a feed waits for a runtime to run on (the fast check on the miss path).
    waiting: AtomicBool,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// The store the filter is read from, with the filter on.
    store: Option<Arc<dyn KeyStore>>,
    filter_task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Listener {
    fn new(feed: Option<Box<dyn InvalidationFeed>>, store: Option<Arc<dyn KeyStore>>) -> Self {
        Self {
            waiting: AtomicBool::new(feed.is_some()),
            feed: Mutex::new(feed),
            task: Mutex::new(None),
            store,
            filter_task: Mutex::new(None),
        }
    }

    /// Spawns the task on the current runtime, if a feed is waiting and there is a runtime.
    fn start(&self, caches: &Caches) {
        if !self.waiting.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(feed) = self.feed.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        self.waiting.store(false, Ordering::Release);
        let task = handle.spawn(apply_invalidations(feed, caches.clone()));
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        if let (Some(filter), Some(store)) = (&caches.filter, &self.store) {
            let task = handle.spawn(Arc::clone(filter).maintain(Arc::clone(store)));
            *self.filter_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in [&mut self.task, &mut self.filter_task] {
            if let Some(task) = task.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                task.abort();
            }
        }
    }
}

async fn apply_invalidations(mut feed: Box<dyn InvalidationFeed>, caches: Caches) {
    while let Some(invalidation) = feed.next().await {
        match invalidation {
            Invalidation::Key(hash) => {
                telemetry::invalidation("key");
                // Only stored keys change; Postgres also reports creations this way.
                caches.known(&hash);
                caches.invalidate(&hash).await;
            }
            Invalidation::Created(hash) => {
                telemetry::invalidation("created");
                caches.known(&hash);
                caches.forget_unknown(&hash).await;
            }
            Invalidation::All => {
                telemetry::invalidation("all");
                caches.invalidate_all();
            }
        }
    }
}

/// Authenticates requests carrying an API key. Build it with [`ApiKeyAuthenticator::builder`]
/// and run it with [`AuthenticateLayer`](tower_auth_core::AuthenticateLayer); see the
/// [crate docs](crate) for the behaviour and an example.
///
/// Cheap to clone: clones share the cache, the store and the last-used buffer.
#[derive(Clone)]
pub struct ApiKeyAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn KeyStore>,
    format: KeyFormat,
    hasher: KeyHasher,
    caches: Caches,
    clock: Arc<dyn Clock>,
    store_timeout: Duration,
    bearer: bool,
    header: Option<HeaderName>,
    query: Option<Arc<str>>,
    last_used: Arc<LastUsed>,
    limiters: Arc<Limiters>,
    listener: Listener,
}

impl fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("ApiKeyAuthenticator")
            .field("prefix", &i.format.prefix())
            .field(
                "other_prefixes",
                &i.format.other_prefixes().collect::<Vec<_>>(),
            )
            .field("hasher", &i.hasher)
            .field("bearer", &i.bearer)
            .field("header", &i.header)
            .field("query", &i.query)
            .field("cache", &i.caches.main)
            .field(
                "stale_if_error",
                &i.caches.stale.as_ref().map(|s| s.config().ttl()),
            )
            .field("store_timeout", &i.store_timeout)
            .field("key_filter", &i.caches.filter.is_some())
            .field(
                "listens",
                &(i.listener.waiting.load(Ordering::Relaxed)
                    || i.listener
                        .task
                        .lock()
                        .is_ok_and(|t| t.as_ref().is_some_and(|t| !t.is_finished()))),
            )
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuthenticator {
    /// Starts a builder over `store`. Pass an `Arc` of the store to share it with an
    /// [`ApiKeys`] built separately.
    pub fn builder(store: impl KeyStore) -> ApiKeyAuthenticatorBuilder {
        ApiKeyAuthenticatorBuilder {
            store: Arc::new(store),
            prefix: KeyFormat::DEFAULT_PREFIX.to_owned(),
            other_prefixes: None,
            pepper: None,
            bearer: true,
            header: Some("x-api-key".to_owned()),
            query: None,
            cache: CacheConfig::default(),
            stale_if_error: None,
            store_timeout: ApiKeyAuthenticatorBuilder::DEFAULT_STORE_TIMEOUT,
            clock: Arc::new(SystemClock),
            last_used_interval: ApiKeyAuthenticatorBuilder::DEFAULT_LAST_USED_INTERVAL,
            key_filter: true,
            key_filter_refresh: ApiKeyAuthenticatorBuilder::DEFAULT_KEY_FILTER_REFRESH,
            limit_lease_batch: ApiKeyAuthenticatorBuilder::DEFAULT_LIMIT_LEASE_BATCH,
            limits_fail_open_when_store_down: false,
        }
    }

    /// The administration API over the same store, key format and pepper. Its `revoke` and
    /// `rotate` drop the key from this authenticator's cache at once (and, on a store with
    /// [invalidations](crate::KeyStore::invalidations) such as Postgres, from every other
    /// authenticator's as soon as the store's notification arrives).
    pub fn admin(&self) -> ApiKeys {
        let i = &self.inner;
        ApiKeys::from_parts(
            Arc::clone(&i.store),
            i.format.clone(),
            i.hasher.clone(),
            Arc::clone(&i.clock),
            Some(i.caches.clone()),
        )
    }

    /// Writes pending last-used times now (the background task does it every
    /// [`last_used_interval`](ApiKeyAuthenticatorBuilder::last_used_interval)). Call it on
    /// shutdown to lose none.
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        self.inner.last_used.flush().await
    }

    /// Writes the credits spent and not yet written now (the background task does it every
    /// [`last_used_interval`](ApiKeyAuthenticatorBuilder::last_used_interval)). Call it on
    /// shutdown to lose none.
    pub async fn flush_credits(&self) -> Result<(), StoreError> {
        self.inner.limiters.flush().await
    }

    /// The number of cached entries (positive and negative), after applying pending evictions.
    pub async fn cached_entries(&self) -> u64 {
        self.inner.caches.main.run_pending_tasks().await;
        self.inner.caches.main.entry_count()
    }

    /// Whether the main cache holds an unexpired entry for `key`.
    #[cfg(test)]
    pub(crate) async fn is_cached(&self, key: &str) -> bool {
        let hash = self.inner.hasher.hash(key);
        self.inner.caches.main.get(&hash).await.is_some()
    }

    /// Whether the filter of known keys is loaded, so that keys it rules out are refused
    /// without a store query (see [`key_filter`](ApiKeyAuthenticatorBuilder::key_filter)).
    /// False while it loads, after a failed load and when it is off.
    pub fn key_filter_loaded(&self) -> bool {
        self.inner
            .caches
            .filter
            .as_ref()
            .is_some_and(|f| f.is_loaded())
    }

    /// Drops every cached entry, for example after bulk changes made by another process. Entries
    /// loaded before the call are never served after it, and a lookup in flight re-reads the
    /// store. The filter of known keys is rebuilt too (every key goes to the store meanwhile).
    pub fn invalidate_cache(&self) {
        self.inner.caches.invalidate_all();
    }
}

/// The credential [`ApiKeyAuthenticator`] extracts: the hash of a well-formed key, or why the
/// presented key was rejected without a lookup. `Debug` shows neither the key nor its hash.
pub struct ApiKeyCredential(Credential);

enum Credential {
    Hash(KeyHash),
    Bad(FormatError),
}

impl fmt::Debug for ApiKeyCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Credential::Hash(_) => f.write_str("ApiKeyCredential(well-formed)"),
            Credential::Bad(e) => write!(f, "ApiKeyCredential({})", e.as_str()),
        }
    }
}

impl Authenticator for ApiKeyAuthenticator {
    type Credential = ApiKeyCredential;
    type Future = ApiKeyFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<ApiKeyCredential>>, AuthError> {
        let i = &*self.inner;
        let mut found: Option<(&str, Location)> = None;
        if i.bearer
            && let Some(token) = bearer_token(&parts.headers)?
            && i.format.claims(token)
        {
            found = Some((token, Location::Authorization));
        }
        if let Some(name) = &i.header
            && let Some(value) = header_value(&parts.headers, name)?
        {
            if found.is_some() {
                return Err(AuthError::invalid_request("api key in more than one place"));
            }
            found = Some((value, Location::Header(name.clone())));
        }
        if let Some(param) = &i.query
            && let Some(value) = query_value(&parts.uri, param)?
        {
            if found.is_some() {
                return Err(AuthError::invalid_request("api key in more than one place"));
            }
            found = Some((value, Location::Query(Arc::clone(param))));
        }
        Ok(found.map(|(key, location)| {
            let credential = match i.format.check(key) {
                Ok(()) => Credential::Hash(i.hasher.hash(key)),
                Err(e) => Credential::Bad(e),
            };
            Found::new(ApiKeyCredential(credential), location, Scheme::ApiKey)
        }))
    }

    fn authenticate(&self, credential: ApiKeyCredential) -> ApiKeyFuture {
        match self.authenticate_now(credential) {
            Authentication::Ready(result) => ApiKeyFuture {
                state: State::Done(Some(result)),
            },
            Authentication::Pending(fut) => fut,
        }
    }

    /// A malformed key and a cached key are answered at once, without a future to allocate; a
    /// cache miss goes on to the store.
    fn authenticate_now(&self, credential: ApiKeyCredential) -> Authentication<ApiKeyFuture> {
        match credential.0 {
            Credential::Bad(e) => {
                telemetry::outcome(e.as_str(), None);
                Authentication::Ready(Err(AuthError::invalid_token(e.description())))
            }
            Credential::Hash(hash) => match self.inner.caches.main.get_now(&hash) {
                CacheRead::Hit(cached) => Authentication::Ready(answer(&self.inner, cached)),
                // Ruled out by the filter of known keys: no store query, no cache entry.
                CacheRead::Miss(_)
                    if self
                        .inner
                        .caches
                        .filter
                        .as_ref()
                        .is_some_and(|f| !f.may_contain(&hash)) =>
                {
                    Authentication::Ready(answer(&self.inner, None))
                }
                CacheRead::Miss(missed) => Authentication::Pending(ApiKeyFuture {
                    state: State::Lookup(Box::pin(lookup(Arc::clone(&self.inner), hash, missed))),
                }),
            },
        }
    }
}

/// The future of [`ApiKeyAuthenticator::authenticate`]: immediately ready for a key rejected by
/// its format, one boxed lookup otherwise.
pub struct ApiKeyFuture {
    state: State,
}

enum State {
    Done(Option<Result<Principal, AuthError>>),
    Lookup(BoxAuthFuture),
}

impl fmt::Debug for ApiKeyFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Done(_) => "done",
            State::Lookup(_) => "lookup",
        };
        f.debug_struct("ApiKeyFuture")
            .field("state", &state)
            .finish()
    }
}

impl Future for ApiKeyFuture {
    type Output = Result<Principal, AuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Done(result) => Poll::Ready(result.take().unwrap_or_else(|| {
                Err(AuthError::invalid_token(
                    "api key future polled after completion",
                ))
            })),
            State::Lookup(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// The lookup of a key the cache did not hold when [`ApiKeyAuthenticator::authenticate`] asked.
async fn lookup(inner: Arc<Inner>, hash: KeyHash, missed: Missed) -> Result<Principal, AuthError> {
    let result = inner
        .caches
        .main
        .load_missed(hash, missed, || {
            // Boxed: allocated on loads only, and it keeps this future small.
            Box::pin(load(&inner, hash))
        })
        .await;
    match result {
        Ok(cached) => answer(&inner, cached),
        Err(e) => match Box::pin(stale(&inner, &hash)).await {
            Some(cached) => accept(&inner, &cached),
            None => {
                telemetry::outcome("unavailable", None);
                Err(AuthError::unavailable(UNAVAILABLE).with_source(StoreError::clone(&e)))
            }
        },
    }
}

/// The answer for what the cache holds for a key: the record, or `None` for a key the store
/// does not know.
fn answer(inner: &Inner, cached: Option<Arc<Cached>>) -> Result<Principal, AuthError> {
    match cached {
        Some(cached) => accept(inner, &cached),
        None => {
            telemetry::outcome("unknown", None);
            Err(AuthError::invalid_token(UNKNOWN))
        }
    }
}

/// Checks a known key's record (revocation, expiry), notes its use and hands out its principal.
fn accept(inner: &Inner, cached: &Cached) -> Result<Principal, AuthError> {
    if cached.revoked {
        telemetry::outcome("revoked", Some(&cached.id));
        return Err(AuthError::invalid_token(UNKNOWN));
    }
    // Expiry is checked on every request against the clock, cached or not.
    let now = inner.clock.now();
    if cached.expires_at.is_some_and(|e| e <= now) {
        telemetry::outcome("expired", Some(&cached.id));
        return Err(AuthError::invalid_token(EXPIRED));
    }
    if let Some(usage) = &cached.usage {
        crate::limit::check(usage, now, &cached.id)?;
    }
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if cached.noted_secs.load(Ordering::Relaxed) < secs
        && cached.noted_secs.swap(secs, Ordering::Relaxed) < secs
    {
        inner.last_used.note(&cached.id, now);
    }
    telemetry::outcome("authenticated", Some(&cached.id));
    Ok(cached.principal.clone())
}

/// With stale-if-error on, the last record read from the store for `hash`, if it is recent
/// enough.
async fn stale(inner: &Inner, hash: &KeyHash) -> Option<Arc<Cached>> {
    let cached = inner.caches.stale.as_ref()?.get(hash).await??;
    telemetry::stale_served(&cached.id);
    Some(cached)
}

/// Replaces the stale-if-error copy of `hash`; its TTL (the staleness bound) starts now.
async fn keep_stale_copy(stale: &KeyCache, hash: KeyHash, value: Arc<Cached>) {
    stale.invalidate(&hash).await;
    let _ = stale
        .get_or_load(hash, || {
            std::future::ready(Ok::<_, std::convert::Infallible>(Loaded::Found {
                value: Arc::clone(&value),
                max_ttl: None,
            }))
        })
        .await;
}

async fn load(inner: &Inner, hash: KeyHash) -> Result<Loaded<Arc<Cached>>, StoreError> {
    // Built outside a runtime: listen from the first lookup on (nothing was cached before).
    inner.listener.start(&inner.caches);
    telemetry::store_query("find_by_hash");
    match tokio::time::timeout(inner.store_timeout, inner.store.find_by_hash(&hash)).await {
        Ok(Ok(Some(record))) => {
            let value = Arc::new(Cached::new(record, &inner.limiters));
            if let Some(usage) = &value.usage
                && inner.limiters.shared()
                && !usage.0.leased()
            {
                // The first request of a key waits for its first lease (a failure leaves the
                // store marked down for the key: 503 unless the limits fail open).
                let _ = inner.limiters.lease(&usage.0).await;
            }
            if let Some(stale) = &inner.caches.stale {
                Box::pin(keep_stale_copy(stale, hash, Arc::clone(&value))).await;
            }
            Ok(Loaded::Found {
                value,
                max_ttl: None,
            })
        }
        Ok(Ok(None)) => Ok(Loaded::NotFound),
        Ok(Err(e)) => {
            telemetry::store_failure("find_by_hash", "error", &e);
            Err(e)
        }
        Err(_) => {
            let e = StoreError::timeout();
            telemetry::store_failure("find_by_hash", "timeout", &e);
            Err(e)
        }
    }
}

/// Builds an [`ApiKeyAuthenticator`]. Created by [`ApiKeyAuthenticator::builder`].
#[must_use]
pub struct ApiKeyAuthenticatorBuilder {
    store: Arc<dyn KeyStore>,
    prefix: String,
    other_prefixes: Option<Vec<String>>,
    pepper: Option<Vec<u8>>,
    bearer: bool,
    header: Option<String>,
    query: Option<String>,
    cache: CacheConfig,
    stale_if_error: Option<Duration>,
    store_timeout: Duration,
    clock: Arc<dyn Clock>,
    last_used_interval: Duration,
    key_filter: bool,
    key_filter_refresh: Duration,
    limit_lease_batch: u64,
    limits_fail_open_when_store_down: bool,
}

impl fmt::Debug for ApiKeyAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticatorBuilder")
            .field("prefix", &self.prefix)
            .field("other_prefixes", &self.other_prefixes)
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .field("bearer", &self.bearer)
            .field("header", &self.header)
            .field("query", &self.query)
            .field("cache", &self.cache)
            .field("stale_if_error", &self.stale_if_error)
            .field("store_timeout", &self.store_timeout)
            .field("last_used_interval", &self.last_used_interval)
            .field("key_filter", &self.key_filter)
            .field("key_filter_refresh", &self.key_filter_refresh)
            .field("limit_lease_batch", &self.limit_lease_batch)
            .field(
                "limits_fail_open_when_store_down",
                &self.limits_fail_open_when_store_down,
            )
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuthenticatorBuilder {
    /// Default deadline of a store lookup.
    pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default interval of the last-used write-behind.
    pub const DEFAULT_LAST_USED_INTERVAL: Duration = Duration::from_secs(10);
    /// Default [`key_filter_refresh`](Self::key_filter_refresh).
    pub const DEFAULT_KEY_FILTER_REFRESH: Duration = Duration::from_secs(300);
    /// Default [`limit_lease_batch`](Self::limit_lease_batch).
    pub const DEFAULT_LIMIT_LEASE_BATCH: u64 = 20;

    /// The prefix of this deployment's keys, naming its environment (default `sk_live`). Keys
    /// are created with it and only keys with it are accepted. 1 to 32 ASCII letters, digits
    /// or inner underscores.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The prefixes of the other environments (default: whichever of `sk_live` and `sk_test` is
    /// not [`prefix`](Self::prefix)). Bearer values with these prefixes are claimed by this
    /// authenticator and rejected (401), so a test key sent to production is never forwarded to
    /// another scheme, such as an introspection endpoint.
    pub fn other_prefixes<I, T>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.other_prefixes = Some(prefixes.into_iter().map(Into::into).collect());
        self
    }

    /// Hash keys with HMAC-SHA256 under this server-side secret (at least 16 bytes) instead of
    /// plain SHA-256, so a stolen copy of the store cannot even be checked against candidate
    /// keys without the pepper. Every process (and [`ApiKeys`]) must use the same pepper;
    /// changing it invalidates every key.
    pub fn pepper(mut self, pepper: impl Into<Vec<u8>>) -> Self {
        self.pepper = Some(pepper.into());
        self
    }

    /// Whether to read `Authorization: Bearer <key>` (default true). Only values starting with
    /// a known prefix are claimed; other Bearer tokens are left to other schemes.
    pub fn bearer(mut self, enabled: bool) -> Self {
        self.bearer = enabled;
        self
    }

    /// The request header carrying a key (default `X-API-Key`). Every value of this header is
    /// this scheme's, whatever its shape.
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.header = Some(name.into());
        self
    }

    /// Reads no dedicated header, only the other sources.
    pub fn no_header(mut self) -> Self {
        self.header = None;
        self
    }

    /// Also reads the key from the query parameter `name` (off by default). URLs end up in
    /// access logs, proxies and browser history: enable it only for clients that cannot send
    /// headers.
    pub fn insecure_query_parameter(mut self, name: impl Into<String>) -> Self {
        self.query = Some(name.into());
        self
    }

    /// Cache settings (default: TTL 30 s, negative TTL 10 s, 100,000 entries). The TTL bounds
    /// how long a revocation made by another process takes to be seen here when the store's
    /// change feed misses it (SQLite and Postgres push changes within about 100 ms).
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// Stale-if-error (off by default): when a lookup fails or misses its deadline, answer from
    /// the last record read from the store for this key, if it was read at most
    /// `max_staleness` ago (more than zero, at most one day), instead of a 503.
    ///
    /// This trades fail-closed for availability: during an outage, a key revoked *by another
    /// process* keeps working until `max_staleness` has passed since it was last read.
    /// Revocations through this authenticator's [`admin`](ApiKeyAuthenticator::admin) drop the
    /// stale copy at once, expiry is still checked on every request, and keys never read
    /// before the outage still get a 503. Unknown keys are never served from it.
    pub fn stale_if_error(mut self, max_staleness: Duration) -> Self {
        self.stale_if_error = Some(max_staleness);
        self
    }

    /// The deadline of a store lookup (default 2 s, at most 60 s). A lookup that fails or
    /// misses it answers 503 and is not cached.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The clock used for expiry checks and last-used times (default the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The batch size of limits shared among instances through the store (default 20, from 1 to
    /// 100,000), on a store that shares them ([`KeyStore::shares_limits`]: `PostgresStore`):
    /// the most rate tokens of a key this instance leases at once, and the most credits it
    /// spends between two leases. A key may overshoot its limits by up to this batch size
    /// times the number of instances; see the [`limit`](crate::limit) module docs.
    pub fn limit_lease_batch(mut self, batch: u64) -> Self {
        self.limit_lease_batch = batch;
        self
    }

    /// On a store that shares limits among instances, keep allowing requests while the store
    /// is down (default false), within the limits this instance last knew (its own rate
    /// limiter and credit count), instead of refusing with 503 once its lease is spent. The
    /// instances then enforce a rate limit each, not together, until the store is back.
    pub fn limits_fail_open_when_store_down(mut self, enabled: bool) -> Self {
        self.limits_fail_open_when_store_down = enabled;
        self
    }

    /// How often last-used times and spent credits are written to the store (default 10 s, at
    /// least 10 ms).
    pub fn last_used_interval(mut self, interval: Duration) -> Self {
        self.last_used_interval = interval;
        self
    }

    /// Whether to keep an in-memory filter of the stored keys (default true), so that a
    /// well-formed key the store does not hold is refused (401) without a store query or a
    /// cache entry: a flood of distinct unknown keys then costs neither the store nor the
    /// cache of real keys.
    ///
    /// Only on a store that lists its key hashes and reports every creation through its
    /// change feed ([`KeyStore::key_hashes`]): `SqliteStore` and `PostgresStore`, not
    /// `MemoryStore`. The filter is a Bloom filter (crate `fastbloom`) of every stored key's
    /// hash, sized at each load for twice the keys found (at least 32,768) at a 0.1 %
    /// false-positive rate: 1.8 bytes per key of that capacity, so 1.8 to 3.6 bytes per stored
    /// key (about 3.6 MB at a million keys); the 0.1 % of unknown keys it lets through are
    /// looked up as before. Keys never leave a store (revoked ones stay), so the filter only
    /// grows between loads; it is loaded from the store when the authenticator starts, again
    /// every [`key_filter_refresh`](Self::key_filter_refresh), once it holds more keys than
    /// it was sized for, and whenever the change feed may have missed changes.
    ///
    /// A key created by another process is admitted once the store's feed reports it: within
    /// about 100 ms on SQLite (its change-log poll) and Postgres (`NOTIFY` on create). A key
    /// created through this authenticator's [`admin`](ApiKeyAuthenticator::admin) is
    /// admitted at once. The filter fails open: until it is loaded, after a failed load, and
    /// while it reloads after the feed may have missed changes, every well-formed key is
    /// looked up in the store as with the filter off.
    pub fn key_filter(mut self, enabled: bool) -> Self {
        self.key_filter = enabled;
        self
    }

    /// How often the [filter of known keys](Self::key_filter) is reloaded from the store
    /// (default 5 min, from 1 s to 1 day): the bound on how long a key created by another
    /// process whose notification was lost (a change made in SQL by hand, without `NOTIFY`)
    /// stays refused. Each load reads every key hash from the store.
    pub fn key_filter_refresh(mut self, interval: Duration) -> Self {
        self.key_filter_refresh = interval;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<ApiKeyAuthenticator, ConfigError> {
        let format = KeyFormat::new(&self.prefix, self.other_prefixes.as_deref())?;
        let hasher = KeyHasher::new(self.pepper.as_deref())?;
        let header = match self.header {
            None => None,
            Some(h) => {
                let name = HeaderName::try_from(h.as_str()).map_err(|_| {
                    ConfigError::new("header", format_args!("{h:?}"), "not a header name")
                })?;
                if name == http::header::AUTHORIZATION {
                    return Err(ConfigError::new(
                        "header",
                        format_args!("{h:?}"),
                        "use `bearer` for the Authorization header",
                    ));
                }
                Some(name)
            }
        };
        let query = match self.query {
            None => None,
            Some(q)
                if q.is_empty()
                    || !q
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'&' && b != b'=') =>
            {
                return Err(ConfigError::new(
                    "insecure_query_parameter",
                    format_args!("{q:?}"),
                    "must be a non-empty parameter name",
                ));
            }
            Some(q) => Some(Arc::from(q)),
        };
        if !self.bearer && header.is_none() && query.is_none() {
            return Err(ConfigError::new(
                "bearer",
                false,
                "no source left: enable bearer, a header or a query parameter",
            ));
        }
        if self.store_timeout.is_zero() || self.store_timeout > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "store_timeout",
                humantime::format_duration(self.store_timeout),
                "must be more than zero and at most 1m",
            ));
        }
        if self.last_used_interval < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "last_used_interval",
                humantime::format_duration(self.last_used_interval),
                "must be at least 10ms",
            ));
        }
        let stale = match self.stale_if_error {
            None => None,
            Some(max) => {
                let config = CacheConfig::builder()
                    .ttl(max)
                    .negative_ttl(Duration::ZERO)
                    .max_capacity(self.cache.max_capacity())
                    .build()
                    .map_err(|_| {
                        ConfigError::new(
                            "stale_if_error",
                            humantime::format_duration(max),
                            "must be more than zero and at most 1day",
                        )
                    })?;
                Some(AuthCache::with_hasher(
                    STALE_CACHE_NAME,
                    config,
                    foldhash::fast::RandomState::default(),
                ))
            }
        };
        let last_used = Arc::new(LastUsed::new(
            Arc::clone(&self.store),
            self.last_used_interval,
            self.store_timeout.max(Duration::from_secs(5)),
        ));
        if self.key_filter_refresh < Duration::from_secs(1)
            || self.key_filter_refresh > Duration::from_secs(86_400)
        {
            return Err(ConfigError::new(
                "key_filter_refresh",
                humantime::format_duration(self.key_filter_refresh),
                "must be from 1s to 1day",
            ));
        }
        let feed = self.store.invalidations();
        // Only a store with a feed tells of keys created elsewhere.
        let filter = (self.key_filter && feed.is_some())
            .then(|| Arc::new(KeyFilter::new(self.key_filter_refresh)));
        if !(1..=100_000).contains(&self.limit_lease_batch) {
            return Err(ConfigError::new(
                "limit_lease_batch",
                self.limit_lease_batch.to_string(),
                "must be from 1 to 100000",
            ));
        }
        let limiters = Arc::new(Limiters::new(
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            self.last_used_interval,
            self.store_timeout.max(Duration::from_secs(5)),
            Some(crate::limit::LeaseConfig {
                batch: self.limit_lease_batch,
                fail_open: self.limits_fail_open_when_store_down,
                timeout: self.store_timeout,
            }),
        ));
        let caches = Caches {
            main: AuthCache::with_hasher(
                CACHE_NAME,
                self.cache,
                foldhash::fast::RandomState::default(),
            ),
            stale,
            filter,
        };
        let filter_store = caches.filter.is_some().then(|| Arc::clone(&self.store));
        let listener = Listener::new(feed, filter_store);
        listener.start(&caches);
        Ok(ApiKeyAuthenticator {
            inner: Arc::new(Inner {
                store: self.store,
                format,
                hasher,
                caches,
                clock: self.clock,
                store_timeout: self.store_timeout,
                bearer: self.bearer,
                header,
                query,
                last_used,
                limiters,
                listener,
            }),
        })
    }
}
