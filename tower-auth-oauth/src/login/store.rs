//! Where pending logins wait for their callback.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tower_auth_core::ConfigError;
use tower_auth_core::clock::{Clock, SystemClock};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future of a [`PendingLoginStore`] call.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;

/// A login that was started and waits for the authorization server's redirect back: the
/// secrets the callback is checked against. `Debug` shows none of them.
///
/// It is serde-serializable for stores that keep it outside the process (Redis, SQL); it holds
/// the PKCE verifier, so keep such stores private.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) expires_at: SystemTime,
}

impl PendingLogin {
    /// When it expires: a callback after this time is refused.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Keeps pending logins between [`Login::start`](super::Login::start) and
/// [`Login::callback`](super::Login::callback), keyed by the random id in the login cookie.
///
/// `take` must be atomic: of two concurrent `take`s of one id, at most one gets the login. This
/// is what makes a callback work once. A store shared by several instances (Redis `GETDEL`, SQL
/// `DELETE ... RETURNING`) lets a callback reach any instance; [`MemoryStore`] serves one.
pub trait PendingLoginStore: Send + Sync + 'static {
    /// Keeps `login` under `id` until it is taken or expires.
    fn put(&self, id: String, login: PendingLogin) -> StoreFuture<'_, ()>;

    /// Removes and returns the login under `id`, if there is one. An expired login may be
    /// returned (the caller checks `expires_at`) or not.
    fn take<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<PendingLogin>>;
}

impl<S: PendingLoginStore + ?Sized> PendingLoginStore for Arc<S> {
    fn put(&self, id: String, login: PendingLogin) -> StoreFuture<'_, ()> {
        (**self).put(id, login)
    }

    fn take<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<PendingLogin>> {
        (**self).take(id)
    }
}

/// The default maximum number of pending logins a [`MemoryStore`] holds.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// Pending logins in this process's memory, bounded: when full, the oldest pending login is
/// dropped (its callback then fails as unknown). Expired logins are dropped as new ones come in.
/// Cheap to clone; clones share the logins.
///
/// ```
/// use tower_auth_oauth::login::MemoryStore;
///
/// let store = MemoryStore::builder().max_pending(1_000).build().unwrap();
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    max: usize,
    clock: Arc<dyn Clock>,
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    logins: HashMap<String, PendingLogin>,
    /// Ids in insertion order, which is expiry order (one TTL for all); may hold ids already
    /// taken, skipped when popped.
    order: VecDeque<String>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_pending", &self.inner.max)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MAX_PENDING`] logins, on the system clock.
    pub fn new() -> Self {
        Self::with(DEFAULT_MAX_PENDING, Arc::new(SystemClock))
    }

    /// Starts a builder.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max: DEFAULT_MAX_PENDING,
            clock: Arc::new(SystemClock),
        }
    }

    fn with(max: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                max,
                clock,
                state: Mutex::new(MemoryState::default()),
            }),
        }
    }

    /// The number of logins held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().logins.len()
    }

    /// Whether the store holds no login.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn put_now(&self, id: String, login: PendingLogin) {
        let now = self.inner.clock.now();
        let mut s = self.lock();
        // Drop expired logins from the front, then the oldest while full.
        while let Some(front) = s.order.front() {
            let expired = s.logins.get(front).is_none_or(|l| l.expires_at <= now);
            let full = s.logins.len() >= self.inner.max;
            if !(expired || full) {
                break;
            }
            if let Some(old) = s.order.pop_front() {
                s.logins.remove(&old);
            }
        }
        if s.logins.insert(id.clone(), login).is_none() {
            s.order.push_back(id);
        }
    }

    fn take_now(&self, id: &str) -> Option<PendingLogin> {
        self.lock().logins.remove(id)
    }
}

impl PendingLoginStore for MemoryStore {
    fn put(&self, id: String, login: PendingLogin) -> StoreFuture<'_, ()> {
        self.put_now(id, login);
        Box::pin(std::future::ready(Ok(())))
    }

    fn take<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<PendingLogin>> {
        let found = self.take_now(id);
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// Builds a [`MemoryStore`].
#[must_use]
pub struct MemoryStoreBuilder {
    max: usize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MemoryStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreBuilder")
            .field("max_pending", &self.max)
            .finish_non_exhaustive()
    }
}

impl MemoryStoreBuilder {
    /// The most pending logins held at once (default [`DEFAULT_MAX_PENDING`]).
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// The clock that decides which logins have expired (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<MemoryStore, ConfigError> {
        if self.max == 0 {
            return Err(ConfigError::new("max_pending", 0, "must be at least 1"));
        }
        Ok(MemoryStore::with(self.max, self.clock))
    }
}

/// The default lifetime of a pending login: how long a user has to log in at the provider.
pub const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::UNIX_EPOCH;

    use tower_auth_core::clock::ManualClock;

    use super::*;

    fn pending(expires_at: SystemTime) -> PendingLogin {
        PendingLogin {
            state: "state-secret".into(),
            nonce: "nonce-secret".into(),
            verifier: "verifier-secret".into(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn take_works_once() {
        let store = MemoryStore::new();
        store
            .put(
                "id".into(),
                pending(SystemTime::now() + DEFAULT_PENDING_TTL),
            )
            .await
            .unwrap();
        assert!(store.take("id").await.unwrap().is_some());
        assert!(store.take("id").await.unwrap().is_none());
        assert!(store.take("other").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn concurrent_takes_get_one_login() {
        let store = MemoryStore::new();
        store
            .put(
                "id".into(),
                pending(SystemTime::now() + DEFAULT_PENDING_TTL),
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.take("id").await.unwrap().is_some()
            }));
        }
        let mut got = 0;
        for t in tasks {
            got += usize::from(t.await.unwrap());
        }
        assert_eq!(got, 1);
    }

    #[tokio::test]
    async fn expired_logins_are_dropped_when_new_ones_come() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000));
        let store = MemoryStore::builder().clock(clock.clone()).build().unwrap();
        let ttl = Duration::from_secs(60);
        store
            .put("a".into(), pending(clock.now() + ttl))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(30));
        store
            .put("b".into(), pending(clock.now() + ttl))
            .await
            .unwrap();
        assert_eq!(store.len(), 2);
        clock.advance(Duration::from_secs(31));
        store
            .put("c".into(), pending(clock.now() + ttl))
            .await
            .unwrap();
        assert_eq!(store.len(), 2, "a expired and was dropped");
        assert!(store.take("a").await.unwrap().is_none());
        assert!(store.take("b").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn bounded_oldest_goes_first() {
        let store = MemoryStore::builder().max_pending(2).build().unwrap();
        let later = SystemTime::now() + DEFAULT_PENDING_TTL;
        for id in ["a", "b", "c"] {
            store.put(id.into(), pending(later)).await.unwrap();
        }
        assert_eq!(store.len(), 2);
        assert!(store.take("a").await.unwrap().is_none());
        assert!(store.take("b").await.unwrap().is_some());
        assert!(store.take("c").await.unwrap().is_some());
        assert!(MemoryStore::builder().max_pending(0).build().is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let p = pending(UNIX_EPOCH);
        let d = format!("{p:?}");
        assert!(!d.contains("secret"), "{d}");
    }
}
