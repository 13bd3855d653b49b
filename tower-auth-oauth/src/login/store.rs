//! Where pending logins wait for their callback.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::policy::EvictionPolicy;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tower_auth_core::ConfigError;
use tower_auth_core::clock::{Clock, SystemClock};

use super::LoginError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future of a [`PendingLoginStore`] call.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;

/// A login that was started and waits for the authorization server's redirect back: the
/// secrets the callback is checked against, and the [`Login`](super::Login) that started it
/// (issuer, client id, redirect URI), so that no other `Login` sharing the store completes it.
/// `Debug` shows none of the secrets.
///
/// It is serde-serializable for stores that keep it outside the process (Redis, SQL); it holds
/// the PKCE verifier, so keep such stores private.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) expires_at: SystemTime,
}

impl PendingLogin {
    /// When it expires: a callback after this time is refused.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The issuer of the [`Login`](super::Login) that started it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client id of the [`Login`](super::Login) that started it.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Keeps pending logins between [`Login::start`](super::Login::start) and
/// [`Login::callback`](super::Login::callback).
///
/// The key is derived from both the login cookie's random id and the login's `state` (a
/// SHA-256 of the two, base64url): only a callback carrying both finds the login, so a forged
/// callback (the victim's cookie, a `state` of the attacker's) consumes nothing, and the
/// store never sees the cookie or the `state` themselves.
///
/// `take` must be atomic: of two concurrent `take`s of one key, at most one gets the login.
/// This is what makes a callback work once. A store shared by several instances (Redis
/// `GETDEL`, SQL `DELETE ... RETURNING`) lets a callback reach any instance; [`MemoryStore`]
/// serves one.
pub trait PendingLoginStore: Send + Sync + 'static {
    /// Keeps `login` under `key` until it is taken or expires.
    fn put(&self, key: String, login: PendingLogin) -> StoreFuture<'_, ()>;

    /// Removes and returns the login under `key`, if there is one. An expired login may be
    /// returned (the caller checks `expires_at`) or not.
    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<PendingLogin>>;
}

impl<S: PendingLoginStore + ?Sized> PendingLoginStore for Arc<S> {
    fn put(&self, key: String, login: PendingLogin) -> StoreFuture<'_, ()> {
        (**self).put(key, login)
    }

    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<PendingLogin>> {
        (**self).take(key)
    }
}

/// The default maximum number of pending logins a [`MemoryStore`] holds.
pub const DEFAULT_MAX_PENDING: u64 = 10_000;

/// Pending logins in this process's memory: a moka cache, bounded in entries. Each login is
/// dropped when it expires (at its [`expires_at`](PendingLogin::expires_at), measured on the
/// store's clock when it is put) or when it is taken; when the store is full, the least
/// recently started login is dropped (its callback then fails as unknown). Cheap to clone;
/// clones share the logins.
///
/// **`max_pending` is a trade-off**: it bounds the memory (a pending login is a few hundred
/// bytes), but `/login` needs no credential, so a client that starts logins in a loop pushes
/// real users' pending logins out once it has started `max_pending` of them within the pending
/// TTL. Rate-limit `/login` per client address (tower's `RateLimit`, a proxy) and size
/// `max_pending` above the logins your users start within the TTL at peak.
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
    max: u64,
    clock: Arc<dyn Clock>,
    cache: moka::sync::Cache<String, PendingLogin>,
}

/// Each login lives until its own `expires_at`, as the store's clock says at insertion.
struct UntilExpiry(Arc<dyn Clock>);

impl moka::Expiry<String, PendingLogin> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &PendingLogin,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(
            value
                .expires_at
                .duration_since(self.0.now())
                .unwrap_or(Duration::ZERO),
        )
    }
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

    pub(crate) fn with(max: u64, clock: Arc<dyn Clock>) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max)
            // Admission by frequency (moka's default) would refuse new logins when full: every
            // key is new. Least recently used is oldest first here.
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(UntilExpiry(Arc::clone(&clock)))
            .build();
        Self {
            inner: Arc::new(MemoryInner { max, clock, cache }),
        }
    }

    /// The number of logins held, after pending evictions and expirations are applied.
    pub fn len(&self) -> usize {
        self.inner.cache.run_pending_tasks();
        usize::try_from(self.inner.cache.entry_count()).unwrap_or(usize::MAX)
    }

    /// Whether the store holds no login.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys the store's structures hold, all of them counted (the cache is the only
    /// one): what bounds its memory.
    #[cfg(test)]
    fn footprint(&self) -> usize {
        self.len()
    }
}

impl PendingLoginStore for MemoryStore {
    fn put(&self, key: String, login: PendingLogin) -> StoreFuture<'_, ()> {
        // A login expired already (a clock far ahead of the caller's) is not kept at all.
        if login.expires_at > self.inner.clock.now() {
            self.inner.cache.insert(key, login);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<PendingLogin>> {
        let found = self.inner.cache.remove(key);
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// Builds a [`MemoryStore`].
#[must_use]
pub struct MemoryStoreBuilder {
    max: u64,
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
    /// The most pending logins held at once (default [`DEFAULT_MAX_PENDING`]). See the
    /// trade-off in [`MemoryStore`]'s docs.
    pub fn max_pending(mut self, max: u64) -> Self {
        self.max = max;
        self
    }

    /// The clock that decides how long each login is kept (default: the system clock). A
    /// [`Login`](super::Login) builds its default store on its own clock.
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

/// The store key of a pending login: a hash of the login cookie's id and the login's `state`,
/// so that only a callback with both finds it, and the store sees neither.
pub(super) fn store_key(id: &str, state: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tower-auth-login\0");
    h.update(id.as_bytes());
    h.update(b"\0");
    h.update(state.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The store call `fut`, failing with [`LoginError::Store`] when it fails or takes longer than
/// `deadline`.
pub(super) async fn with_deadline<T>(
    deadline: Duration,
    fut: StoreFuture<'_, T>,
) -> Result<T, LoginError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r.map_err(LoginError::Store),
        Err(elapsed) => Err(LoginError::Store(Box::new(elapsed))),
    }
}

/// The default deadline of each pending-login store call.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::UNIX_EPOCH;

    use tower_auth_core::clock::ManualClock;

    use super::*;

    fn pending(expires_at: SystemTime) -> PendingLogin {
        PendingLogin {
            issuer: "https://idp.test".into(),
            client_id: "web-app".into(),
            redirect_uri: "https://app.test/callback".into(),
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
    async fn expired_logins_are_not_kept() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000));
        let store = MemoryStore::builder().clock(clock.clone()).build().unwrap();
        // Put after its expiry (as the store's clock says): dropped at once.
        store
            .put("old".into(), pending(clock.now() - Duration::from_secs(1)))
            .await
            .unwrap();
        store
            .put("live".into(), pending(clock.now() + DEFAULT_PENDING_TTL))
            .await
            .unwrap();
        assert_eq!(store.len(), 1);
        assert!(store.take("old").await.unwrap().is_none());
        assert!(store.take("live").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn bounded_under_a_flood() {
        let store = MemoryStore::builder().max_pending(100).build().unwrap();
        let later = SystemTime::now() + DEFAULT_PENDING_TTL;
        // Logins started and completed: nothing of them is kept.
        for i in 0..5_000 {
            let key = format!("done-{i}");
            store.put(key.clone(), pending(later)).await.unwrap();
            assert!(store.take(&key).await.unwrap().is_some());
        }
        assert_eq!(store.len(), 0);
        assert_eq!(store.footprint(), 0, "no trace of completed logins");
        // Logins started and never completed: at most max_pending kept.
        for i in 0..5_000 {
            store
                .put(format!("flood-{i}"), pending(later))
                .await
                .unwrap();
        }
        assert!(store.len() <= 100, "{}", store.len());
        assert!(store.footprint() <= 100, "{}", store.footprint());
        // The latest login is there: a new login is never refused for an old one.
        store.put("latest".into(), pending(later)).await.unwrap();
        store.len();
        assert!(store.take("latest").await.unwrap().is_some());
        assert!(MemoryStore::builder().max_pending(0).build().is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let p = pending(UNIX_EPOCH);
        let d = format!("{p:?}");
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("web-app"), "{d}");
    }
}
