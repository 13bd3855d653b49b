//! Cache settings shared by the schemes, and the cache they build on.
//!
//! Every scheme that looks something up (an API key in its store, a token at an introspection
//! endpoint) puts an [`AuthCache`] in front of it, configured by a [`CacheConfig`]:
//!
//! - positive entries live for `ttl`, or less when the value says so (a token that expires
//!   sooner);
//! - negative entries ("no such key") live for `negative_ttl` (0 turns them off);
//! - at most `max_capacity` entries are held; the least useful are evicted (moka's TinyLFU);
//! - concurrent misses for one key run **one** load, and every caller waits for it;
//! - failed loads are never cached, so a store outage does not outlive the store;
//! - [`AuthCache::invalidate`] removes an entry at once, and a load that was already running
//!   when it was called does not put the old value back.
//!
//! moka has no refresh-ahead or stale-if-error; the JWKS cache builds those itself.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::ConfigError;

/// TTL, negative TTL and capacity of a scheme's cache, validated when built.
///
/// ```
/// use std::time::Duration;
/// use tower_auth_core::CacheConfig;
///
/// let c = CacheConfig::builder().ttl(Duration::from_secs(60)).max_capacity(10_000).build().unwrap();
/// assert_eq!(c.negative_ttl(), Duration::from_secs(10));
///
/// let err = CacheConfig::builder().ttl(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.to_string(), "invalid `ttl` = 0s: must be greater than zero");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    ttl: Duration,
    negative_ttl: Duration,
    max_capacity: u64,
}

impl CacheConfig {
    /// The longest TTL accepted: one day. A credential cached longer than that would outlive any
    /// reasonable revocation expectation.
    pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

    /// Starts from the defaults: TTL 30 s, negative TTL 10 s, capacity 100,000 entries.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder {
            config: Self::default(),
        }
    }

    /// How long a positive entry is kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long a negative entry is kept; zero means negative results are not cached.
    pub fn negative_ttl(&self) -> Duration {
        self.negative_ttl
    }

    /// The maximum number of entries.
    pub fn max_capacity(&self) -> u64 {
        self.max_capacity
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(10),
            max_capacity: 100_000,
        }
    }
}

/// Builds a [`CacheConfig`].
#[must_use]
#[derive(Debug, Clone)]
pub struct CacheConfigBuilder {
    config: CacheConfig,
}

impl CacheConfigBuilder {
    /// How long a positive entry is kept (default 30 s; more than zero, at most one day).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// How long a negative entry is kept (default 10 s; zero disables negative caching; at most
    /// one day).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = ttl;
        self
    }

    /// The maximum number of entries (default 100,000; at least 1).
    pub fn max_capacity(mut self, entries: u64) -> Self {
        self.config.max_capacity = entries;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<CacheConfig, ConfigError> {
        let c = self.config;
        let show = |d: Duration| format!("{}s", d.as_secs_f64());
        if c.ttl.is_zero() {
            return Err(ConfigError::new(
                "ttl",
                show(c.ttl),
                "must be greater than zero",
            ));
        }
        if c.ttl > CacheConfig::MAX_TTL {
            return Err(ConfigError::new(
                "ttl",
                show(c.ttl),
                "must be at most 86400s (1 day)",
            ));
        }
        if c.negative_ttl > CacheConfig::MAX_TTL {
            return Err(ConfigError::new(
                "negative_ttl",
                show(c.negative_ttl),
                "must be at most 86400s (1 day)",
            ));
        }
        if c.max_capacity == 0 {
            return Err(ConfigError::new("max_capacity", 0, "must be at least 1"));
        }
        Ok(c)
    }
}

/// What a cache load found.
#[derive(Debug, Clone)]
pub enum Loaded<V> {
    /// A value, cached for the configured TTL, or for `max_ttl` when that is shorter (for
    /// example the time left until the credential expires).
    Found {
        /// The value.
        value: V,
        /// An upper bound on how long to cache it.
        max_ttl: Option<Duration>,
    },
    /// Nothing there; cached for the negative TTL.
    NotFound,
}

/// What [`AuthCache::get_now`] found.
#[derive(Debug)]
pub enum CacheRead<V> {
    /// A current entry, counted as a hit: `Some` a value, `None` a cached negative result.
    Hit(Option<V>),
    /// No current entry for the key (or reading it would have had to wait): finish with
    /// [`AuthCache::load_missed`].
    Miss(Missed),
}

/// A miss seen by [`AuthCache::get_now`], for [`AuthCache::load_missed`] to go on from without
/// reading the cache a second time.
#[derive(Debug)]
pub struct Missed {
    state: MissedState,
}

#[derive(Debug, Clone, Copy)]
enum MissedState {
    /// No entry.
    Absent,
    /// An entry from before an `invalidate_all`.
    Outdated,
    /// The read would have waited (cache maintenance under way): not read at all.
    NotRead,
}

#[derive(Clone)]
struct Entry<V> {
    value: Option<V>,
    ttl: Duration,
    /// The `cleared` generation when the load started; older than the current one means an
    /// `invalidate_all` came after it.
    generation: u64,
}

struct EntryExpiry;

const STRIPES: usize = 64;

impl<K: Hash, V, S> CacheInner<K, V, S> {
    fn stripe(&self, key: &K) -> &AtomicU64 {
        // A fixed-key hasher is enough: stripes only spread unrelated keys apart.
        let hash =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(key);
        &self.epochs[(hash % STRIPES as u64) as usize]
    }
}

impl<K, V> Expiry<K, Entry<V>> for EntryExpiry {
    fn expire_after_create(&self, _: &K, entry: &Entry<V>, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// A bounded cache with per-entry TTLs, coalesced loads and race-free invalidation. See the
/// [module docs](self).
///
/// Cheap to clone: clones share the entries.
///
/// `S` hashes the keys for moka's table: SipHash by default, a keyed PRF, so that a table of
/// attacker-chosen keys cannot be made to collide. A cache whose keys are digests already can
/// take a faster hasher seeded per process through [`with_hasher`](Self::with_hasher): every
/// built-in scheme keys by the SHA-256 of the credential, so the table's inputs are spread
/// evenly whatever credentials are sent, and aiming several at one bucket takes the seed.
pub struct AuthCache<K, V, S = RandomState> {
    inner: Arc<CacheInner<K, V, S>>,
}

struct CacheInner<K, V, S> {
    cache: moka::future::Cache<K, Entry<V>, S>,
    config: CacheConfig,
    /// Invalidation counters, striped by key hash: a load that sees its key's stripe move re-reads
    /// its source. Striping keeps a stream of invalidations of some keys from disturbing loads of
    /// the others.
    epochs: Box<[AtomicU64; STRIPES]>,
    /// Bumped by `invalidate_all`: entries loaded before it are ignored. (moka's own
    /// `invalidate_all` is lazy and timestamp-based, so an entry inserted in the same instant
    /// could otherwise survive it.)
    cleared: AtomicU64,
    name: &'static str,
    /// The keys of `tower_auth_cache_requests_total{cache, outcome}` for this cache, built once:
    /// counting a lookup then allocates nothing.
    #[cfg(feature = "metrics")]
    keys: CounterKeys,
}

/// The `hit` and `miss` keys of one cache's counter.
#[cfg(feature = "metrics")]
struct CounterKeys {
    hit: metrics::Key,
    miss: metrics::Key,
}

#[cfg(feature = "metrics")]
impl CounterKeys {
    const NAME: &'static str = "tower_auth_cache_requests_total";

    fn new(cache: &'static str) -> Self {
        let key = |outcome| {
            metrics::Key::from_parts(
                Self::NAME,
                vec![
                    metrics::Label::from_static_parts("cache", cache),
                    metrics::Label::from_static_parts("outcome", outcome),
                ],
            )
        };
        Self {
            hit: key("hit"),
            miss: key("miss"),
        }
    }
}

/// What `metrics::counter!` would give this module's counters.
#[cfg(feature = "metrics")]
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl<K, V, S> Clone for AuthCache<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V, S> fmt::Debug for AuthCache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCache")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("entries", &self.inner.cache.entry_count())
            .finish()
    }
}

impl<K, V> AuthCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache named `name` (the `cache` label of its metrics, such as `api_key`), hashing its
    /// keys with SipHash.
    pub fn new(name: &'static str, config: CacheConfig) -> Self {
        Self::with_hasher(name, config, RandomState::new())
    }
}

impl<K, V, S> AuthCache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    /// A cache named `name` whose table hashes keys with `hasher`. A hasher that is not
    /// DoS-resistant belongs only in front of keys that are spread evenly already (digests of
    /// credentials, for example), and seeded per process: with chosen keys or a known seed,
    /// keys can be made to collide.
    ///
    /// ```
    /// use tower_auth_core::CacheConfig;
    /// use tower_auth_core::cache::{AuthCache, CacheRead};
    ///
    /// let cache: AuthCache<[u8; 32], u32, _> = AuthCache::with_hasher(
    ///     "digests",
    ///     CacheConfig::default(),
    ///     std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
    /// );
    /// assert!(matches!(cache.get_now(&[0; 32]), CacheRead::Miss(_)));
    /// ```
    pub fn with_hasher(name: &'static str, config: CacheConfig, hasher: S) -> Self {
        let cache = moka::future::Cache::builder()
            .name(name)
            .max_capacity(config.max_capacity)
            .expire_after(EntryExpiry)
            .build_with_hasher(hasher);
        Self {
            inner: Arc::new(CacheInner {
                cache,
                config,
                epochs: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
                cleared: AtomicU64::new(0),
                name,
                #[cfg(feature = "metrics")]
                keys: CounterKeys::new(name),
            }),
        }
    }

    /// The settings this cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The cached value for `key`, or the result of `load`, which runs at most once for all
    /// concurrent callers asking for the same key. `Ok(None)` is a (possibly cached) negative
    /// result. Errors are shared by the waiting callers and not cached.
    pub async fn get_or_load<F, Fut, E>(&self, key: K, load: F) -> Result<Option<V>, Arc<E>>
    where
        K: Clone,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Loaded<V>, E>>,
        E: Send + Sync + 'static,
    {
        let outdated = match self.inner.cache.get(&key).await {
            Some(entry) if self.is_current(&entry) => {
                self.record(true);
                return Ok(entry.value);
            }
            Some(_) => true,
            None => false,
        };
        // Boxed: moka's loading future is large, and keeping it out of this one keeps the hit
        // path's future small for callers that box or move it on every request.
        Box::pin(self.load(key, outdated, load)).await
    }

    /// The cached value for `key` when it can be read without waiting, so that a hit needs no
    /// future: [`get_or_load`](Self::get_or_load) in two steps. A hit is counted as
    /// `get_or_load` counts it; on a [`CacheRead::Miss`], call
    /// [`load_missed`](Self::load_missed) with the same key.
    ///
    /// ```
    /// use tower_auth_core::CacheConfig;
    /// use tower_auth_core::cache::{AuthCache, CacheRead, Loaded};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache: AuthCache<&str, u32> = AuthCache::new("example", CacheConfig::default());
    /// let CacheRead::Miss(missed) = cache.get_now(&"k") else { panic!("empty cache") };
    /// let loaded = cache
    ///     .load_missed("k", missed, || async {
    ///         Ok::<_, std::convert::Infallible>(Loaded::Found { value: 7, max_ttl: None })
    ///     })
    ///     .await;
    /// assert_eq!(loaded.unwrap(), Some(7));
    /// assert!(matches!(cache.get_now(&"k"), CacheRead::Hit(Some(7))));
    /// # });
    /// ```
    pub fn get_now(&self, key: &K) -> CacheRead<V> {
        // moka's read is a future only because it may run pending maintenance; it is ready at
        // once unless that maintenance has to wait for a lock, in which case nothing was read
        // and the caller goes the asynchronous way.
        let read = pin!(self.inner.cache.get(key));
        let state = match read.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Some(entry)) if self.is_current(&entry) => {
                self.record(true);
                return CacheRead::Hit(entry.value);
            }
            Poll::Ready(Some(_)) => MissedState::Outdated,
            Poll::Ready(None) => MissedState::Absent,
            Poll::Pending => MissedState::NotRead,
        };
        CacheRead::Miss(Missed { state })
    }

    /// Finishes a lookup that [`get_now`](Self::get_now) missed, exactly as
    /// [`get_or_load`](Self::get_or_load) would have after its own read: `load` runs at most
    /// once for all concurrent callers, an entry loaded meanwhile by another caller is a hit.
    /// `key` must be the key `get_now` was asked for.
    pub async fn load_missed<F, Fut, E>(
        &self,
        key: K,
        missed: Missed,
        load: F,
    ) -> Result<Option<V>, Arc<E>>
    where
        K: Clone,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Loaded<V>, E>>,
        E: Send + Sync + 'static,
    {
        match missed.state {
            MissedState::NotRead => self.get_or_load(key, load).await,
            MissedState::Absent => Box::pin(self.load(key, false, load)).await,
            MissedState::Outdated => Box::pin(self.load(key, true, load)).await,
        }
    }

    /// The miss path of [`get_or_load`](Self::get_or_load); `outdated` when the key holds an
    /// entry from before an invalidation, which is dropped first.
    async fn load<F, Fut, E>(
        &self,
        key: K,
        outdated: bool,
        mut load: F,
    ) -> Result<Option<V>, Arc<E>>
    where
        K: Clone,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Loaded<V>, E>>,
        E: Send + Sync + 'static,
    {
        let inner = &self.inner;
        if outdated {
            inner.cache.invalidate(&key).await;
        }
        let epoch = inner.stripe(&key);
        let mut loaded_at_epoch = None;
        let mut round = 0;
        let entry = loop {
            round += 1;
            let found = inner
                .cache
                .try_get_with_by_ref(&key, async {
                    // Re-read the source if an invalidation happened while we were loading, so
                    // a slow lookup that started before a revocation cannot cache the old
                    // record.
                    let mut attempts = 0;
                    loop {
                        // Epoch first: an `invalidate_all` between the two reads then changes
                        // the epoch under the load, which reads again, rather than leaving an
                        // entry of the old generation.
                        let before = epoch.load(Ordering::Acquire);
                        let generation = inner.cleared.load(Ordering::Acquire);
                        let loaded = load().await?;
                        attempts += 1;
                        let stable = epoch.load(Ordering::Acquire) == before;
                        if stable || attempts == 3 {
                            loaded_at_epoch = Some(before);
                            let mut entry = self.entry(loaded, generation);
                            if !stable {
                                // Still racing with invalidations: answer, but do not keep it.
                                entry.ttl = Duration::ZERO;
                            }
                            return Ok(entry);
                        }
                    }
                })
                .await;
            let entry = match found {
                Ok(entry) => entry,
                Err(e) => {
                    // A lookup that could not be answered is a miss too.
                    self.record(false);
                    return Err(e);
                }
            };
            // An entry found rather than loaded may predate an `invalidate_all` (the caller's
            // read said the key was absent or outdated, but the cache changed since): drop it
            // and load once more.
            if loaded_at_epoch.is_none() && !self.is_current(&entry) && round == 1 {
                inner.cache.invalidate(&key).await;
                continue;
            }
            break entry;
        };
        match loaded_at_epoch {
            Some(seen) => {
                self.record(false);
                // An invalidation between our last check and moka's insert: drop what we put.
                if epoch.load(Ordering::Acquire) != seen {
                    inner.cache.invalidate(&key).await;
                }
            }
            None => self.record(true),
        }
        Ok(entry.value)
    }

    fn entry(&self, loaded: Loaded<V>, generation: u64) -> Entry<V> {
        match loaded {
            Loaded::Found { value, max_ttl } => Entry {
                value: Some(value),
                ttl: max_ttl.map_or(self.inner.config.ttl, |m| m.min(self.inner.config.ttl)),
                generation,
            },
            Loaded::NotFound => Entry {
                value: None,
                ttl: self.inner.config.negative_ttl,
                generation,
            },
        }
    }

    fn is_current(&self, entry: &Entry<V>) -> bool {
        entry.generation == self.inner.cleared.load(Ordering::Acquire)
    }

    /// The cached value for `key` without loading: `Some(Some(v))` positive, `Some(None)`
    /// negative, `None` not cached.
    pub async fn get(&self, key: &K) -> Option<Option<V>> {
        self.inner
            .cache
            .get(key)
            .await
            .filter(|e| self.is_current(e))
            .map(|e| e.value)
    }

    /// Removes `key` at once. A load of `key` already under way re-reads its source instead of
    /// caching what it read before.
    pub async fn invalidate(&self, key: &K) {
        self.inner.stripe(key).fetch_add(1, Ordering::AcqRel);
        self.inner.cache.invalidate(key).await;
    }

    /// Removes every entry.
    pub fn invalidate_all(&self) {
        self.inner.cleared.fetch_add(1, Ordering::AcqRel);
        for epoch in self.inner.epochs.iter() {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        self.inner.cache.invalidate_all();
    }

    /// The approximate number of entries (exact after [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// Applies pending evictions and expirations now (moka does this lazily).
    pub async fn run_pending_tasks(&self) {
        self.inner.cache.run_pending_tasks().await;
    }

    /// Counts a lookup: `tower_auth_cache_requests_total{cache, outcome}`, `outcome` = `hit` or
    /// `miss`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn record(&self, hit: bool) {
        #[cfg(feature = "metrics")]
        {
            let keys = &self.inner.keys;
            let key = if hit { &keys.hit } else { &keys.miss };
            // Registered on every call, not held: a recorder installed after this cache was built
            // still receives its counts.
            metrics::with_recorder(|r| r.register_counter(key, &METADATA)).increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn cache() -> AuthCache<String, u32> {
        AuthCache::new("test", CacheConfig::default())
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(
            CacheConfig::builder()
                .max_capacity(0)
                .build()
                .unwrap_err()
                .setting(),
            "max_capacity"
        );
        assert_eq!(
            CacheConfig::builder()
                .ttl(Duration::from_secs(2 * 86_400))
                .build()
                .unwrap_err()
                .to_string(),
            "invalid `ttl` = 172800s: must be at most 86400s (1 day)"
        );
        assert!(
            CacheConfig::builder()
                .negative_ttl(Duration::ZERO)
                .build()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn concurrent_misses_coalesce_into_one_load() {
        let c = cache();
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let c = c.clone();
            let loads = Arc::clone(&loads);
            tasks.push(tokio::spawn(async move {
                c.get_or_load("k".to_owned(), || {
                    let loads = Arc::clone(&loads);
                    async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(Loaded::Found {
                            value: 7,
                            max_ttl: None,
                        })
                    }
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Some(7));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn negative_results_are_cached_and_errors_are_not() {
        let c = cache();
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Loaded::NotFound)
        };
        assert_eq!(c.get_or_load("k".into(), load).await.unwrap(), None);
        assert_eq!(c.get_or_load("k".into(), load).await.unwrap(), None);
        assert_eq!(loads.load(Ordering::SeqCst), 1);

        let fails = AtomicUsize::new(0);
        let failing = || async {
            fails.fetch_add(1, Ordering::SeqCst);
            Err::<Loaded<u32>, _>("down")
        };
        assert!(c.get_or_load("e".into(), failing).await.is_err());
        assert!(c.get_or_load("e".into(), failing).await.is_err());
        assert_eq!(fails.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn zero_negative_ttl_caches_nothing_negative() {
        let c: AuthCache<String, u32> = AuthCache::new(
            "test",
            CacheConfig::builder()
                .negative_ttl(Duration::ZERO)
                .build()
                .unwrap(),
        );
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Loaded::NotFound)
        };
        c.get_or_load("k".into(), load).await.unwrap();
        c.get_or_load("k".into(), load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn max_ttl_bounds_an_entry() {
        let c = cache();
        let found = |ttl| {
            move || async move {
                Ok::<_, ()>(Loaded::Found {
                    value: 1,
                    max_ttl: Some(ttl),
                })
            }
        };
        c.get_or_load("short".into(), found(Duration::from_millis(30)))
            .await
            .unwrap();
        assert_eq!(c.get(&"short".into()).await, Some(Some(1)));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(c.get(&"short".into()).await, None);
    }

    #[tokio::test]
    async fn invalidate_all_drops_everything_loaded_before_it() {
        let c = cache();
        let loads = AtomicUsize::new(0);
        let load = || async {
            let n = loads.fetch_add(1, Ordering::SeqCst) as u32;
            Ok::<_, ()>(Loaded::Found {
                value: n,
                max_ttl: None,
            })
        };
        // Load and clear in a tight loop: every lookup after a clear must reload, even within
        // the same clock tick.
        for round in 0..1000u32 {
            assert_eq!(c.get_or_load("k".into(), load).await.unwrap(), Some(round));
            assert_eq!(c.get(&"k".into()).await, Some(Some(round)));
            c.invalidate_all();
            assert_eq!(c.get(&"k".into()).await, None);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1000);
    }

    #[tokio::test]
    async fn invalidating_other_keys_does_not_disturb_a_load() {
        let c = cache();
        let other = (0..10_000)
            .map(|i| format!("other-{i}"))
            .find(|k| !std::ptr::eq(c.inner.stripe(k), c.inner.stripe(&"k".to_owned())))
            .unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let mut go_rx = Some(go_rx);
        let loader = {
            let c = c.clone();
            let loads = Arc::clone(&loads);
            tokio::spawn(async move {
                c.get_or_load("k".to_owned(), move || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    let go = go_rx.take();
                    async move {
                        if let Some(g) = go {
                            let _ = g.await;
                        }
                        Ok::<_, ()>(Loaded::Found {
                            value: 1,
                            max_ttl: None,
                        })
                    }
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.invalidate(&other).await;
        go_tx.send(()).unwrap();
        assert_eq!(loader.await.unwrap().unwrap(), Some(1));
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "an unrelated invalidation forced a re-read"
        );
        assert_eq!(c.get(&"k".to_owned()).await, Some(Some(1)));
    }

    #[tokio::test]
    async fn invalidation_during_a_load_is_not_undone() {
        let c = cache();
        let version = Arc::new(AtomicUsize::new(1));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let mut started_tx = Some(started_tx);
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let mut go_rx = Some(go_rx);

        let loader = {
            let c = c.clone();
            let version = Arc::clone(&version);
            tokio::spawn(async move {
                c.get_or_load("k".to_owned(), move || {
                    // The first load reads the old version, then stalls until revoked.
                    let seen = version.load(Ordering::SeqCst) as u32;
                    let started = started_tx.take();
                    let go = go_rx.take();
                    async move {
                        if let (Some(s), Some(g)) = (started, go) {
                            let _ = s.send(());
                            let _ = g.await;
                        }
                        Ok::<_, ()>(Loaded::Found {
                            value: seen,
                            max_ttl: None,
                        })
                    }
                })
                .await
            })
        };
        started_rx.await.unwrap();
        // "Revoke": the source changes, then the cache is invalidated, while the load is stalled.
        version.store(2, Ordering::SeqCst);
        c.invalidate(&"k".to_owned()).await;
        go_tx.send(()).unwrap();
        assert_eq!(loader.await.unwrap().unwrap(), Some(2));
        assert_eq!(c.get(&"k".to_owned()).await, Some(Some(2)));
    }

    #[tokio::test]
    async fn invalidate_all_during_loads_is_not_undone() {
        // Several keys stall in their first load, reading the old version; `invalidate_all`
        // then comes between the read and the insert. Every caller must get the new version
        // (the load re-reads), and nothing old may stay cached.
        let c = cache();
        let version = Arc::new(AtomicUsize::new(1));
        let (go_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut started = Vec::new();
        let mut loaders = Vec::new();
        for i in 0..8 {
            let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
            started.push(started_rx);
            let mut started_tx = Some(started_tx);
            let mut go_rx = Some(go_tx.subscribe());
            let c = c.clone();
            let version = Arc::clone(&version);
            loaders.push(tokio::spawn(async move {
                c.get_or_load(format!("k{i}"), move || {
                    let seen = version.load(Ordering::SeqCst) as u32;
                    let started = started_tx.take();
                    let go = go_rx.take();
                    async move {
                        if let (Some(s), Some(mut g)) = (started, go) {
                            let _ = s.send(());
                            let _ = g.recv().await;
                        }
                        Ok::<_, ()>(Loaded::Found {
                            value: seen,
                            max_ttl: None,
                        })
                    }
                })
                .await
            }));
        }
        for s in started {
            s.await.unwrap();
        }
        version.store(2, Ordering::SeqCst);
        c.invalidate_all();
        go_tx.send(()).unwrap();
        for (i, loader) in loaders.into_iter().enumerate() {
            assert_eq!(
                loader.await.unwrap().unwrap(),
                Some(2),
                "k{i} answered the old version"
            );
            assert_eq!(c.get(&format!("k{i}")).await, Some(Some(2)));
        }
    }

    /// An entry of a generation before the last `invalidate_all`, found by `load_missed` where
    /// the caller's read saw none, is dropped and loaded again, never served.
    #[tokio::test]
    async fn load_missed_never_serves_an_entry_from_before_invalidate_all() {
        let c = cache();
        let key = "k".to_owned();
        let CacheRead::Miss(missed) = c.get_now(&key) else {
            panic!("empty cache")
        };
        c.invalidate_all();
        // What a load that read the generation before that `invalidate_all` would have left.
        let old = Entry {
            value: Some(1),
            ttl: Duration::from_secs(60),
            generation: c.inner.cleared.load(Ordering::Acquire) - 1,
        };
        c.inner.cache.insert(key.clone(), old).await;
        let loaded = c
            .load_missed(key.clone(), missed, || async {
                Ok::<_, ()>(Loaded::Found {
                    value: 2,
                    max_ttl: None,
                })
            })
            .await;
        assert_eq!(loaded.unwrap(), Some(2));
        assert!(matches!(c.get_now(&key), CacheRead::Hit(Some(2))));
    }

    /// `get_now`, then `load_missed` on a miss, as a scheme's request path does.
    async fn two_step<F, Fut>(c: &AuthCache<String, u32>, key: &str, load: F) -> Option<u32>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Loaded<u32>, ()>>,
    {
        match c.get_now(&key.to_owned()) {
            CacheRead::Hit(v) => v,
            CacheRead::Miss(missed) => c.load_missed(key.to_owned(), missed, load).await.unwrap(),
        }
    }

    #[tokio::test]
    async fn get_now_answers_hits_and_load_missed_finishes_misses() {
        let c = cache();
        let loads = AtomicUsize::new(0);
        let load = |found: bool| {
            let loads = &loads;
            move || async move {
                let n = loads.fetch_add(1, Ordering::SeqCst) as u32;
                Ok::<_, ()>(if found {
                    Loaded::Found {
                        value: n,
                        max_ttl: None,
                    }
                } else {
                    Loaded::NotFound
                })
            }
        };
        assert!(matches!(c.get_now(&"k".into()), CacheRead::Miss(_)));
        assert_eq!(two_step(&c, "k", load(true)).await, Some(0));
        assert!(matches!(c.get_now(&"k".into()), CacheRead::Hit(Some(0))));
        assert_eq!(two_step(&c, "k", load(true)).await, Some(0));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Negative results are hits too.
        assert_eq!(two_step(&c, "absent", load(false)).await, None);
        assert!(matches!(c.get_now(&"absent".into()), CacheRead::Hit(None)));
        assert_eq!(two_step(&c, "absent", load(false)).await, None);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        // After a clear, an entry loaded before it is a miss (moka may still hold it) and is
        // reloaded, every round.
        for round in 0..100u32 {
            c.invalidate_all();
            assert!(matches!(c.get_now(&"k".into()), CacheRead::Miss(_)));
            assert_eq!(two_step(&c, "k", load(true)).await, Some(2 + round));
            assert!(matches!(c.get_now(&"k".into()), CacheRead::Hit(Some(v)) if v == 2 + round));
        }
        // A single key's invalidation as well.
        c.invalidate(&"k".into()).await;
        assert!(matches!(c.get_now(&"k".into()), CacheRead::Miss(_)));
        assert_eq!(two_step(&c, "k", load(true)).await, Some(102));
    }

    #[tokio::test]
    async fn load_missed_coalesces_with_other_lookups() {
        let c = cache();
        let loads = Arc::new(AtomicUsize::new(0));
        let CacheRead::Miss(first) = c.get_now(&"k".into()) else {
            panic!("empty cache")
        };
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let c = c.clone();
            let loads = Arc::clone(&loads);
            tasks.push(tokio::spawn(async move {
                two_step(&c, "k", || {
                    let loads = Arc::clone(&loads);
                    async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(Loaded::Found {
                            value: 7,
                            max_ttl: None,
                        })
                    }
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(7));
        }
        // A miss seen before the load finished: the entry is there now, and is not reloaded.
        let late = c
            .load_missed("k".into(), first, || async { Err::<Loaded<u32>, ()>(()) })
            .await;
        assert_eq!(late.unwrap(), Some(7));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}

#[cfg(all(test, feature = "metrics"))]
mod metrics_tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::telemetry::tests::counters;

    fn found() -> impl FnMut() -> std::future::Ready<Result<Loaded<u32>, ()>> {
        || {
            std::future::ready(Ok(Loaded::Found {
                value: 1,
                max_ttl: None,
            }))
        }
    }

    fn lookups(c: &AuthCache<String, u32>, keys: &[&str]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for k in keys {
                c.get_or_load((*k).to_owned(), found()).await.unwrap();
            }
        });
    }

    /// A lookup whose load fails is counted as a miss (and the failure is not cached, so the
    /// next lookup misses again).
    #[test]
    fn failed_loads_are_counted_as_misses() {
        let c: AuthCache<String, u32> = AuthCache::new("api_key", CacheConfig::default());
        let counts = counters(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async {
                    for _ in 0..2 {
                        let failed = c
                            .get_or_load("a".to_owned(), || async { Err::<Loaded<u32>, _>("down") })
                            .await;
                        assert!(failed.is_err());
                    }
                });
        });
        assert_eq!(
            counts,
            BTreeMap::from([(
                "tower_auth_cache_requests_total{cache=api_key,outcome=miss}".to_owned(),
                2
            )])
        );
    }

    /// The counter is labelled with the cache's name and `hit` / `miss`, and reaches whichever
    /// recorder is current at each lookup, including one installed after the cache was built.
    #[test]
    fn hits_and_misses_are_counted_under_the_cache_name() {
        let c: AuthCache<String, u32> = AuthCache::new("api_key", CacheConfig::default());
        let hit = "tower_auth_cache_requests_total{cache=api_key,outcome=hit}".to_owned();
        let miss = "tower_auth_cache_requests_total{cache=api_key,outcome=miss}".to_owned();
        assert_eq!(
            counters(|| lookups(&c, &["a", "a", "b", "a"])),
            BTreeMap::from([(hit.clone(), 2), (miss.clone(), 2)])
        );
        // A second recorder sees only its own lookups: no handle of the first one was kept.
        assert_eq!(
            counters(|| {
                lookups(&c, &["b"]);
                assert!(matches!(
                    c.get_now(&"a".to_owned()),
                    CacheRead::Hit(Some(1))
                ));
                lookups(&c, &["c"]);
            }),
            BTreeMap::from([(hit, 2), (miss, 1)])
        );
        let other: AuthCache<String, u32> = AuthCache::new("introspection", CacheConfig::default());
        assert_eq!(
            counters(|| lookups(&other, &["a"])),
            BTreeMap::from([(
                "tower_auth_cache_requests_total{cache=introspection,outcome=miss}".to_owned(),
                1
            )])
        );
    }

    #[test]
    fn counting_a_lookup_allocates_nothing() {
        let c: AuthCache<String, u32> = AuthCache::new("api_key", CacheConfig::default());
        metrics::with_local_recorder(&metrics::NoopRecorder, || {
            c.record(true);
            let info = allocation_counter::measure(|| {
                c.record(true);
                c.record(false);
            });
            assert_eq!(info.count_total, 0, "{info:?}");
            // What the key built on each call would cost (and proof the measurement is live).
            let name = std::hint::black_box(c.inner.name);
            let info = allocation_counter::measure(|| {
                metrics::counter!(
                    "tower_auth_cache_requests_total",
                    "cache" => name,
                    "outcome" => "hit"
                )
                .increment(1);
            });
            assert!(info.count_total > 0, "{info:?}");
        });
    }
}
