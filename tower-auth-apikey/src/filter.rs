//! The filter of known keys: an in-memory Bloom filter of every key hash in the store, so that
//! a flood of well-formed unknown keys costs no store query.
//!
//! # Choice of filter
//!
//! A Bloom filter ([`fastbloom::AtomicBloomFilter`]) rebuilt from the store, not a cuckoo or
//! other deletable filter: keys are never deleted from a store (revoked and expired keys stay,
//! and the record decides), so the filter only ever grows between rebuilds, inserts take
//! `&self` (no lock on the request path), and a rebuild from
//! [`KeyStore::key_hashes`] both resizes it and repairs anything the change feed missed.
//! Static filters (xor, binary fuse) cannot take the keys created between rebuilds.
//!
//! It is sized for twice the keys found at each rebuild (at least [`MIN_CAPACITY`]) at a
//! false-positive rate of [`FALSE_POSITIVE_RATE`] (0.1 %, about 14.4 bits, 1.8 bytes per key
//! of capacity, so 1.8 to 3.6 bytes per stored key); more creations than that trigger an
//! early rebuild. At a million keys it takes about 3.6 MB.
//!
//! # Kept current
//!
//! Each creation reported by the store's [`InvalidationFeed`](crate::InvalidationFeed)
//! ([`Invalidation::Created`](crate::Invalidation::Created), and [`Invalidation::Key`](
//! crate::Invalidation::Key), which names an existing key) and each creation through
//! [`ApiKeyAuthenticator::admin`](crate::ApiKeyAuthenticator::admin) is inserted at once.
//! Creations seen while a rebuild reads the store are replayed into the new filter before it
//! replaces the old one. [`Invalidation::All`](crate::Invalidation::All) (the feed may have
//! missed changes) turns the filter off until the next rebuild, which starts at once, and a
//! rebuild also runs every [`key_filter_refresh`](
//! crate::ApiKeyAuthenticatorBuilder::key_filter_refresh) as a backstop.
//!
//! # Failing open
//!
//! Until the first rebuild succeeds, after a failed one, after `All`, and on a store that
//! cannot list its hashes, every well-formed key goes to the store as without the filter: the
//! filter may spare the store a query, never refuse a stored key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use fastbloom::AtomicBloomFilter;
use tokio::sync::Notify;

use crate::{KeyHash, KeyStore, StoreError, telemetry};

/// The false-positive rate the filter is sized for, at its capacity.
pub(crate) const FALSE_POSITIVE_RATE: f64 = 0.001;
/// The smallest capacity (keys) of a filter: 64 KiB of bits, whatever the store holds.
pub(crate) const MIN_CAPACITY: usize = 32_768;
/// The deadline of reading every hash from the store.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The first delay before retrying a failed rebuild; it doubles up to the refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// A loaded filter and how many keys it may hold before it is rebuilt.
struct Loaded {
    bloom: AtomicBloomFilter<foldhash::fast::RandomState>,
    capacity: usize,
    items: AtomicUsize,
}

impl Loaded {
    fn new(keys: usize) -> Self {
        let capacity = keys.saturating_mul(2).max(MIN_CAPACITY);
        Self {
            bloom: AtomicBloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
                .hasher(foldhash::fast::RandomState::default())
                .expected_items(capacity),
            capacity,
            items: AtomicUsize::new(0),
        }
    }

    /// Inserts `hash`; true when the filter now holds more than its capacity.
    fn insert(&self, hash: &KeyHash) -> bool {
        self.bloom.insert(hash);
        self.items.fetch_add(1, Ordering::Relaxed) >= self.capacity
    }
}

/// The filter of the key hashes in the store, shared by an authenticator's clones and its
/// administration API. See the [module docs](self).
pub(crate) struct KeyFilter {
    /// `None` until loaded, and while it may be missing keys: every key passes.
    current: ArcSwapOption<Loaded>,
    /// While a rebuild reads the store, the keys created meanwhile, replayed into the new
    /// filter. Also serialises insertions with the replacement of the filter.
    pending: Mutex<Option<Vec<KeyHash>>>,
    /// Bumped by [`KeyFilter::reset`]: a rebuild that started before is not installed.
    generation: AtomicU64,
    /// Wakes the rebuilding task early.
    wake: Notify,
    refresh: Duration,
}

impl KeyFilter {
    pub(crate) fn new(refresh: Duration) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            pending: Mutex::new(None),
            generation: AtomicU64::new(0),
            wake: Notify::new(),
            refresh,
        }
    }

    /// Whether the store may hold `hash`: false only when a loaded filter rules it out.
    pub(crate) fn may_contain(&self, hash: &KeyHash) -> bool {
        match &*self.current.load() {
            Some(loaded) => loaded.bloom.contains(hash),
            None => true,
        }
    }

    /// Whether a filter is loaded (keys it rules out are refused without a store query).
    pub(crate) fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Notes a key the store now holds (created here or reported by the store's feed).
    pub(crate) fn insert(&self, hash: &KeyHash) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pending) = pending.as_mut() {
            pending.push(*hash);
        }
        if let Some(loaded) = &*self.current.load()
            && loaded.insert(hash)
        {
            self.wake.notify_one();
        }
    }

    /// Forgets the filter (changes may have been missed): every key passes until the next
    /// rebuild, which is started now.
    pub(crate) fn reset(&self) {
        let _pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.current.store(None);
        self.wake.notify_one();
    }

    /// Reads every hash from `store` and replaces the filter. `Ok(false)` when the store cannot
    /// list its hashes (the filter then stays off).
    pub(crate) async fn rebuild(&self, store: &dyn KeyStore) -> Result<bool, StoreError> {
        let generation = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            *pending = Some(Vec::new());
            self.generation.load(Ordering::Relaxed)
        };
        let read = match tokio::time::timeout(LOAD_TIMEOUT, store.key_hashes()).await {
            Ok(read) => read,
            Err(_) => Err(StoreError::timeout()),
        };
        let hashes = match read {
            Ok(Some(hashes)) => hashes,
            Ok(None) | Err(_) => {
                *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = None;
                return read.map(|_| false);
            }
        };
        let loaded = Loaded::new(hashes.len());
        for hash in &hashes {
            loaded.insert(hash);
        }
        drop(hashes);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for hash in pending.take().unwrap_or_default() {
            loaded.insert(&hash);
        }
        if self.generation.load(Ordering::Relaxed) == generation {
            telemetry::filter_loaded(loaded.items.load(Ordering::Relaxed));
            self.current.store(Some(Arc::new(loaded)));
        }
        Ok(true)
    }

    /// Keeps the filter current for as long as it runs: rebuilds it now, then every
    /// `refresh`, after a reset or once it is over capacity, and retries failures with a
    /// backoff. Ends if the store cannot list its hashes.
    pub(crate) async fn maintain(self: Arc<Self>, store: Arc<dyn KeyStore>) {
        let mut retry = FIRST_RETRY;
        loop {
            let delay = match self.rebuild(&*store).await {
                Ok(true) => {
                    retry = FIRST_RETRY;
                    self.refresh
                }
                Ok(false) => return,
                Err(e) => {
                    telemetry::store_failure("key_hashes", "error", &e);
                    let delay = retry.min(self.refresh);
                    retry = retry.saturating_mul(2);
                    delay
                }
            };
            let _ = tokio::time::timeout(delay, self.wake.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn hash(n: u32) -> KeyHash {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        KeyHash::from_bytes(bytes)
    }

    #[test]
    fn unloaded_filter_lets_every_key_through() {
        let filter = KeyFilter::new(Duration::from_secs(60));
        assert!(!filter.is_loaded());
        assert!(filter.may_contain(&hash(1)));
        filter.insert(&hash(2));
        assert!(filter.may_contain(&hash(3)));
    }

    #[test]
    fn loaded_filter_rules_out_unknown_keys_at_about_its_rate() {
        let loaded = Loaded::new(10_000);
        for n in 0..10_000 {
            loaded.insert(&hash(n));
        }
        assert!((0..10_000).all(|n| loaded.bloom.contains(&hash(n))));
        let passed = (1_000_000..1_100_000)
            .filter(|n| loaded.bloom.contains(&hash(*n)))
            .count();
        // 0.1 % at capacity; this filter holds a third of it.
        assert!(passed < 200, "{passed} of 100000 unknown keys passed");
    }

    #[test]
    fn over_capacity_wakes_the_rebuild() {
        let loaded = Loaded::new(0);
        let over = (0..=MIN_CAPACITY as u32).map(|n| loaded.insert(&hash(n)));
        assert_eq!(over.filter(|&o| o).count(), 1);
    }

    #[tokio::test]
    async fn a_store_that_cannot_list_hashes_leaves_the_filter_off() {
        let filter = Arc::new(KeyFilter::new(Duration::from_secs(60)));
        assert!(!filter.rebuild(&MemoryStore::new()).await.unwrap());
        // `maintain` ends instead of polling such a store forever.
        Arc::clone(&filter)
            .maintain(Arc::new(MemoryStore::new()))
            .await;
        assert!(!filter.is_loaded());
        assert!(filter.may_contain(&hash(1)));
    }

    /// A store whose `key_hashes` answers `hashes`, doing `during` to `filter` meanwhile (as
    /// the feed would while the store is read); everything else is a `MemoryStore`'s.
    struct HashesStore {
        hashes: Vec<KeyHash>,
        during: Option<(Arc<KeyFilter>, During)>,
        rest: MemoryStore,
    }

    enum During {
        Reset,
        Create(KeyHash),
    }

    impl HashesStore {
        fn new(hashes: Vec<KeyHash>, during: Option<(Arc<KeyFilter>, During)>) -> Self {
            Self {
                hashes,
                during,
                rest: MemoryStore::new(),
            }
        }
    }

    impl KeyStore for HashesStore {
        fn key_hashes(&self) -> StoreFuture<'_, Option<Vec<KeyHash>>> {
            match &self.during {
                Some((filter, During::Reset)) => filter.reset(),
                Some((filter, During::Create(hash))) => filter.insert(hash),
                None => {}
            }
            Box::pin(std::future::ready(Ok(Some(self.hashes.clone()))))
        }
        fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
            self.rest.find_by_hash(hash)
        }
        fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
            self.rest.get(id)
        }
        fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
            self.rest.list()
        }
        fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()> {
            self.rest.insert(key)
        }
        fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
            self.rest.revoke(id, at)
        }
        fn rotate<'a>(
            &'a self,
            old_id: &'a str,
            old_expires_at: SystemTime,
            new: &'a StoredKey,
        ) -> StoreFuture<'a, Option<StoredKey>> {
            self.rest.rotate(old_id, old_expires_at, new)
        }
        fn record_last_used<'a>(
            &'a self,
            batch: &'a [(String, SystemTime)],
        ) -> StoreFuture<'a, ()> {
            self.rest.record_last_used(batch)
        }
    }

    #[tokio::test]
    async fn reset_turns_the_filter_off_and_a_stale_rebuild_is_not_installed() {
        let filter = Arc::new(KeyFilter::new(Duration::from_secs(60)));
        assert!(
            filter
                .rebuild(&HashesStore::new(vec![hash(1)], None))
                .await
                .unwrap()
        );
        assert!(filter.is_loaded());
        assert!(filter.may_contain(&hash(1)));
        assert!(!filter.may_contain(&hash(2)));
        filter.reset();
        assert!(!filter.is_loaded());
        assert!(filter.may_contain(&hash(2)));

        // A reset while a rebuild reads the store: what it read is not installed.
        let store = HashesStore::new(vec![hash(1)], Some((Arc::clone(&filter), During::Reset)));
        assert!(filter.rebuild(&store).await.unwrap());
        assert!(!filter.is_loaded());
        assert!(filter.may_contain(&hash(2)));
    }

    #[tokio::test]
    async fn keys_created_during_a_rebuild_are_kept() {
        let filter = Arc::new(KeyFilter::new(Duration::from_secs(60)));
        let store = HashesStore::new(
            vec![hash(1)],
            Some((Arc::clone(&filter), During::Create(hash(7)))),
        );
        assert!(filter.rebuild(&store).await.unwrap());
        assert!(filter.may_contain(&hash(1)));
        assert!(filter.may_contain(&hash(7)));
        assert!(!filter.may_contain(&hash(8)));
        // Inserted after the rebuild, into the installed filter.
        filter.insert(&hash(9));
        assert!(filter.may_contain(&hash(9)));
    }

    use crate::store::StoreFuture;
    use crate::{KeyRecord, StoredKey};
    use std::time::SystemTime;
}
