//! [`RevocationList`]: the `jti` blocklist and subject cut-offs in memory, kept current from a
//! [`RevocationStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, SystemTime};

use tower_auth_core::clock::{Clock, SystemClock};

use super::{
    Revocation, RevocationCheck, RevocationEvent, RevocationFeed, RevocationKind, RevocationStore,
    TokenIdentity,
};
use crate::issue::{StoreError, StoreErrorKind, StoreFuture};
use crate::{ConfigError, MAX_LEEWAY, telemetry};

/// Default interval at which a list polls a store without notifications (SQLite, memory) for
/// new entries: the longest a revocation made by another process takes to apply here.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default interval at which expired entries are dropped from memory and deleted from the
/// store.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Default longest lifetime of the tokens a list guards (24 h, the issuer's maximum access
/// token lifetime): a subject cut-off is kept this long (plus the leeway) after its time.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = crate::issue::MAX_ACCESS_TOKEN_TTL;
/// Default margin an entry is kept past the expiry of the tokens it revokes: the largest
/// leeway a [`JwtAuthenticator`](crate::JwtAuthenticator) accepts (10 min), so a revoked
/// token is never accepted again within any verifier's leeway.
pub const DEFAULT_REVOCATION_LEEWAY: Duration = MAX_LEEWAY;
/// Default deadline of each store call made by a list.
pub const DEFAULT_REVOCATION_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The revoked tokens and subject cut-offs of every issuer, in memory, answering
/// [`RevocationCheck::is_revoked`] without any I/O. See the [module docs](super).
///
/// Cheap to clone (one `Arc`); clones share the lists and the background tasks, which stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct RevocationList {
    inner: Arc<Inner>,
}

struct Inner {
    lists: RwLock<Lists>,
    /// Set by the first successful full load; until then every token is treated as revoked.
    loaded: AtomicBool,
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    purge_interval: Duration,
    max_token_lifetime: Duration,
    leeway: Duration,
    store_timeout: Duration,
    /// The store position of the newest entry seen; its lock serializes loads and polls.
    cursor: tokio::sync::Mutex<u64>,
    started: AtomicBool,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

#[derive(Clone, Copy)]
struct Cutoff {
    issued_before: SystemTime,
    keep_until: SystemTime,
}

/// The map type: foldhash (seeded per process) hashes a 36-byte `jti` in a few nanoseconds,
/// several times faster than std's SipHash, and only administrators and the issuer insert
/// keys, so flooding attacks on the table are out of reach of token holders.
type Map<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// value (`jti` or `sub`) -> the issuers it is revoked for (nearly always one), with what is
/// held for each. One hash per lookup, borrowing the token's strings: no allocation.
#[derive(Default)]
struct Lists {
    tokens: Map<Vec<(Arc<str>, SystemTime)>>,
    subjects: Map<Vec<(Arc<str>, Cutoff)>>,
    /// Each issuer's name once, shared by its entries.
    issuers: Vec<Arc<str>>,
    token_count: usize,
    subject_count: usize,
}

impl Lists {
    fn issuer(&mut self, name: &str) -> Arc<str> {
        if let Some(i) = self.issuers.iter().find(|i| ***i == *name) {
            return Arc::clone(i);
        }
        let i: Arc<str> = name.into();
        self.issuers.push(Arc::clone(&i));
        i
    }

    /// Applies `r` unless it has expired at `now`; whether anything changed.
    fn apply(&mut self, r: &Revocation, now: SystemTime) -> bool {
        if r.expires_at < now {
            return false;
        }
        let issuer = self.issuer(&r.issuer);
        match r.kind {
            RevocationKind::Token => {
                let held = self.tokens.entry(r.value.as_str().into()).or_default();
                match held.iter_mut().find(|(i, _)| *i == issuer) {
                    Some((_, until)) if *until >= r.expires_at => false,
                    Some((_, until)) => {
                        *until = r.expires_at;
                        true
                    }
                    None => {
                        held.push((issuer, r.expires_at));
                        self.token_count += 1;
                        true
                    }
                }
            }
            RevocationKind::Subject => {
                let held = self.subjects.entry(r.value.as_str().into()).or_default();
                match held.iter_mut().find(|(i, _)| *i == issuer) {
                    Some((_, c)) => {
                        let before = *c;
                        c.issued_before = c.issued_before.max(r.issued_before);
                        c.keep_until = c.keep_until.max(r.expires_at);
                        c.issued_before != before.issued_before || c.keep_until != before.keep_until
                    }
                    None => {
                        held.push((
                            issuer,
                            Cutoff {
                                issued_before: r.issued_before,
                                keep_until: r.expires_at,
                            },
                        ));
                        self.subject_count += 1;
                        true
                    }
                }
            }
        }
    }

    /// Drops the entries kept until before `now`; how many.
    fn purge(&mut self, now: SystemTime) -> usize {
        let before = self.token_count + self.subject_count;
        self.tokens.retain(|_, held| {
            held.retain(|(_, until)| *until >= now);
            !held.is_empty()
        });
        self.token_count = self.tokens.values().map(Vec::len).sum();
        self.subjects.retain(|_, held| {
            held.retain(|(_, c)| c.keep_until >= now);
            !held.is_empty()
        });
        self.subject_count = self.subjects.values().map(Vec::len).sum();
        self.issuers.retain(|i| Arc::strong_count(i) > 1);
        before - self.token_count - self.subject_count
    }

    fn is_revoked(&self, t: &TokenIdentity) -> bool {
        let issuer = t.issuer();
        if self.token_count > 0
            && let Some(jti) = t.jti()
            && self
                .tokens
                .get(jti)
                .is_some_and(|held| held.iter().any(|(i, _)| **i == *issuer))
        {
            return true;
        }
        if self.subject_count > 0
            && let Some(sub) = t.subject()
            && let Some((_, cutoff)) = self
                .subjects
                .get(sub)
                .and_then(|held| held.iter().find(|(i, _)| **i == *issuer))
        {
            // Without `iat` nothing says the token came after the cut-off: revoked (fail
            // closed). `iat` has whole seconds, so a token issued later in the cut-off's own
            // second is revoked too.
            return t.issued_at().is_none_or(|iat| iat < cutoff.issued_before);
        }
        false
    }
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lists = self.read();
        f.debug_struct("RevocationList")
            .field("loaded", &self.is_loaded())
            .field("revoked_tokens", &lists.token_count)
            .field("revoked_subjects", &lists.subject_count)
            .field("poll_interval", &self.inner.poll_interval)
            .finish_non_exhaustive()
    }
}

impl RevocationCheck for RevocationList {
    /// Whether the token's `jti` is blocklisted, or its subject is cut off at a time after its
    /// `iat` (or it has no `iat`). Before the first [`load`](RevocationList::load) every
    /// token is revoked. One read lock and two hash lookups; no I/O.
    fn is_revoked(&self, token: &TokenIdentity) -> bool {
        if !self.inner.loaded.load(Ordering::Acquire) {
            return true;
        }
        self.read().is_revoked(token)
    }
}

impl RevocationList {
    /// Starts a configuration around `store`.
    pub fn builder(store: impl RevocationStore) -> RevocationListBuilder {
        RevocationListBuilder {
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            poll_interval: DEFAULT_POLL_INTERVAL,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            leeway: DEFAULT_REVOCATION_LEEWAY,
            store_timeout: DEFAULT_REVOCATION_STORE_TIMEOUT,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Lists> {
        // Every change is made whole under the lock, so a poisoned lock is recovered.
        self.inner.lists.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Lists> {
        self.inner.lists.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads every entry from the store (the first call marks the list loaded: until then
    /// every token is treated as revoked), then, inside a tokio runtime, starts the background
    /// tasks once: the notification listener (PostgreSQL) or the poll every
    /// [`poll_interval`](RevocationListBuilder::poll_interval), and the purge every
    /// [`purge_interval`](RevocationListBuilder::purge_interval). Call it at start-up, before
    /// serving, inside a tokio runtime (store calls run under a deadline on its timer).
    pub async fn load(&self) -> Result<(), StoreError> {
        self.reload_inner().await?;
        self.inner.loaded.store(true, Ordering::Release);
        self.start();
        Ok(())
    }

    /// Whether a [`load`](Self::load) has succeeded.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// Revokes one token of `issuer` by its `jti`: applied here at once, then written to the
    /// store (from which other processes apply it). The entry is kept until `expires_at`
    /// (the token's `exp`) plus the [leeway](RevocationListBuilder::leeway); give the real
    /// `exp`, or `None` to keep it for the [longest token
    /// lifetime](RevocationListBuilder::max_token_lifetime) from now.
    ///
    /// An error means the store did not take it: it is applied in this process only, so
    /// retry.
    pub async fn revoke_token(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let i = &self.inner;
        let now = i.clock.now();
        let until = expires_at.unwrap_or_else(|| saturating_add(now, i.max_token_lifetime));
        let entry = Revocation::token(issuer, jti, saturating_add(until, i.leeway), now);
        self.add(entry).await
    }

    /// Cuts off a subject: every token of `subject` from `issuer` whose `iat` is before
    /// `issued_before` is revoked (applied here at once, then written to the store). Kept
    /// until `issued_before` plus the [longest token
    /// lifetime](RevocationListBuilder::max_token_lifetime) and the
    /// [leeway](RevocationListBuilder::leeway), when every such token has expired.
    ///
    /// An error means the store did not take it: it is applied in this process only, so
    /// retry.
    pub async fn cut_off_subject(
        &self,
        issuer: &str,
        subject: &str,
        issued_before: SystemTime,
    ) -> Result<(), StoreError> {
        let i = &self.inner;
        let keep = saturating_add(issued_before, i.max_token_lifetime + i.leeway);
        let entry = Revocation::subject(issuer, subject, issued_before, keep, i.clock.now());
        self.add(entry).await
    }

    async fn add(&self, entry: Revocation) -> Result<(), StoreError> {
        // Here first: the revocation holds in this process even if the store fails.
        self.apply(&entry, None);
        let store = Arc::clone(&self.inner.store);
        self.call(store.add_revocation(&entry)).await
    }

    fn apply(&self, entry: &Revocation, lag: Option<Duration>) {
        let now = self.inner.clock.now();
        let mut lists = self.write();
        if lists.apply(entry, now) {
            telemetry::revocation_applied(entry.kind, lag);
            telemetry::revocation_sizes(lists.token_count, lists.subject_count);
        }
    }

    /// Applies an entry from the store, measuring its lag.
    fn apply_from_store(&self, entry: &Revocation) {
        let lag = self
            .inner
            .clock
            .now()
            .duration_since(entry.created_at)
            .unwrap_or_default();
        self.apply(entry, Some(lag));
    }

    /// Applies the entries added to the store since the last load or poll; how many it read.
    /// The background poll calls this every
    /// [`poll_interval`](RevocationListBuilder::poll_interval); call it yourself for an
    /// immediate update.
    pub async fn poll(&self) -> Result<usize, StoreError> {
        let mut cursor = self.inner.cursor.lock().await;
        let store = Arc::clone(&self.inner.store);
        let batch = self.call(store.revocations_since(*cursor)).await?;
        for entry in &batch.entries {
            self.apply_from_store(entry);
        }
        *cursor = (*cursor).max(batch.cursor);
        Ok(batch.entries.len())
    }

    /// Reads every entry from the store again and adds what is missing here (nothing is
    /// removed but expired entries). Done after the notification listener reconnects.
    pub async fn reload(&self) -> Result<(), StoreError> {
        self.reload_inner().await
    }

    async fn reload_inner(&self) -> Result<(), StoreError> {
        let mut cursor = self.inner.cursor.lock().await;
        let store = Arc::clone(&self.inner.store);
        let now = self.inner.clock.now();
        let batch = self.call(store.revocations(now)).await?;
        {
            let mut lists = self.write();
            let mut changed = false;
            for entry in &batch.entries {
                if lists.apply(entry, now) {
                    telemetry::revocation_applied(entry.kind, None);
                    changed = true;
                }
            }
            if changed {
                telemetry::revocation_sizes(lists.token_count, lists.subject_count);
            }
        }
        *cursor = (*cursor).max(batch.cursor);
        Ok(())
    }

    /// Drops the entries whose tokens have all expired, from memory and from the store;
    /// returns how many were deleted from the store. The background purge calls this every
    /// [`purge_interval`](RevocationListBuilder::purge_interval).
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        {
            let mut lists = self.write();
            lists.purge(now);
            telemetry::revocation_sizes(lists.token_count, lists.subject_count);
        }
        let store = Arc::clone(&self.inner.store);
        self.call(store.delete_revocations_expired_before(now))
            .await
    }

    /// The number of revoked tokens (`jti`s) held.
    pub fn revoked_tokens(&self) -> usize {
        self.read().token_count
    }

    /// The number of subject cut-offs held.
    pub fn revoked_subjects(&self) -> usize {
        self.read().subject_count
    }

    /// The [longest token lifetime](RevocationListBuilder::max_token_lifetime) this list was
    /// configured with.
    pub fn max_token_lifetime(&self) -> Duration {
        self.inner.max_token_lifetime
    }

    async fn call<T>(&self, call: StoreFuture<'_, T>) -> Result<T, StoreError> {
        tokio::time::timeout(self.inner.store_timeout, call)
            .await
            .map_err(|_| {
                StoreError::new(
                    StoreErrorKind::Unavailable,
                    "revocation store deadline exceeded",
                )
            })?
    }

    /// Spawns the background tasks, once, when there is a runtime.
    fn start(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let sync = match self.inner.store.revocation_feed() {
            Some(feed) => handle.spawn(listen(weak.clone(), feed)),
            None => handle.spawn(poll_loop(weak.clone(), self.inner.poll_interval)),
        };
        let purge = handle.spawn(purge_loop(weak, self.inner.purge_interval));
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.push(sync.abort_handle());
        tasks.push(purge.abort_handle());
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<RevocationList> {
    weak.upgrade().map(|inner| RevocationList { inner })
}

/// Applies the feed's events; after a reconnection, reloads (retrying until it succeeds).
async fn listen(weak: Weak<Inner>, mut feed: Box<dyn RevocationFeed>) {
    while let Some(event) = feed.next().await {
        let Some(list) = upgrade(&weak) else { return };
        match event {
            RevocationEvent::Added(entry) => list.apply_from_store(&entry),
            RevocationEvent::Reload => {
                drop(list);
                // Retried until it succeeds; the list is held only during an attempt, so
                // dropping it ends this task even while the store is down.
                let mut delay = Duration::from_millis(100);
                loop {
                    let Some(list) = upgrade(&weak) else { return };
                    match list.reload().await {
                        Ok(()) => break,
                        Err(e) => telemetry::revocation_sync_failed("reload", &e),
                    }
                    drop(list);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

async fn poll_loop(weak: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(list) = upgrade(&weak) else { return };
        if let Err(e) = list.poll().await {
            telemetry::revocation_sync_failed("poll", &e);
        }
    }
}

async fn purge_loop(weak: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(list) = upgrade(&weak) else { return };
        if let Err(e) = list.purge_expired().await {
            telemetry::revocation_sync_failed("purge", &e);
        }
    }
}

fn saturating_add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2))
}

/// Settings of a [`RevocationList`]. Created by [`RevocationList::builder`].
#[must_use]
pub struct RevocationListBuilder {
    store: Arc<dyn RevocationStore>,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    purge_interval: Duration,
    max_token_lifetime: Duration,
    leeway: Duration,
    store_timeout: Duration,
}

impl fmt::Debug for RevocationListBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationListBuilder")
            .field("poll_interval", &self.poll_interval)
            .field("purge_interval", &self.purge_interval)
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("leeway", &self.leeway)
            .field("store_timeout", &self.store_timeout)
            .finish_non_exhaustive()
    }
}

impl RevocationListBuilder {
    /// How often a store without notifications (SQLite, memory) is polled for entries added
    /// by other processes (default 5 s, at least 10 ms): the bound on how long such a
    /// revocation takes to apply here. Stores with notifications (PostgreSQL) are not polled.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How often expired entries are dropped from memory and deleted from the store (default
    /// 60 s, at least 10 ms).
    pub fn purge_interval(mut self, interval: Duration) -> Self {
        self.purge_interval = interval;
        self
    }

    /// The longest lifetime (`exp` - `iat`) of the tokens guarded (default 24 h, at least
    /// 1 s): how long a subject cut-off is kept after its time, and a revoked `jti` without a
    /// known expiry. A token that lives longer than this outlives its subject's cut-off.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// How long an entry is kept past the expiry of the tokens it revokes (default 10 min, at
    /// most 1 h). Keep it at least the verifiers' leeway, which accepts tokens that long past
    /// their `exp`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The deadline of each store call (default 2 s).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The clock for expiry and cut-off times (default: the system clock). Background
    /// intervals run on the tokio timer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings. The list is empty and treats every token as revoked until
    /// [`RevocationList::load`] succeeds.
    pub fn build(self) -> Result<RevocationList, ConfigError> {
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        let min = Duration::from_millis(10);
        if self.poll_interval < min {
            return Err(ConfigError::new(
                "poll_interval",
                secs(self.poll_interval),
                "must be at least 10 ms",
            ));
        }
        if self.purge_interval < min {
            return Err(ConfigError::new(
                "purge_interval",
                secs(self.purge_interval),
                "must be at least 10 ms",
            ));
        }
        if self.max_token_lifetime < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "max_token_lifetime",
                secs(self.max_token_lifetime),
                "must be at least 1 s",
            ));
        }
        if self.leeway > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "leeway",
                secs(self.leeway),
                "must be at most 1 h",
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::new(
                "store_timeout",
                secs(self.store_timeout),
                "must be greater than zero",
            ));
        }
        Ok(RevocationList {
            inner: Arc::new(Inner {
                lists: RwLock::new(Lists::default()),
                loaded: AtomicBool::new(false),
                store: self.store,
                clock: self.clock,
                poll_interval: self.poll_interval,
                purge_interval: self.purge_interval,
                max_token_lifetime: self.max_token_lifetime,
                leeway: self.leeway,
                store_timeout: self.store_timeout,
                cursor: tokio::sync::Mutex::new(0),
                started: AtomicBool::new(false),
                tasks: Mutex::new(Vec::new()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::UNIX_EPOCH;

    use super::*;

    const ISS: &str = "https://app.example";

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
    }

    fn id(jti: Option<&str>, sub: Option<&str>, iat: Option<u64>) -> TokenIdentity {
        TokenIdentity::new(
            ISS,
            sub.map(Into::into),
            jti.map(Into::into),
            iat.map(t),
            None,
        )
    }

    #[test]
    fn entries_merge_toward_more_revocation() {
        let mut l = Lists::default();
        assert!(l.apply(&Revocation::token(ISS, "j", t(100), t(0)), t(0)));
        // The same again changes nothing; a later expiry extends it; an earlier one does not
        // shorten it.
        assert!(!l.apply(&Revocation::token(ISS, "j", t(100), t(1)), t(1)));
        assert!(l.apply(&Revocation::token(ISS, "j", t(200), t(1)), t(1)));
        assert!(!l.apply(&Revocation::token(ISS, "j", t(50), t(1)), t(1)));
        assert_eq!(l.token_count, 1);
        assert_eq!(l.purge(t(150)), 0);
        assert!(l.is_revoked(&id(Some("j"), None, None)));
        // The same jti of another issuer is another entry.
        assert!(l.apply(&Revocation::token("other", "j", t(100), t(1)), t(1)));
        assert_eq!(l.token_count, 2);

        let cut = |before, until| Revocation::subject(ISS, "alice", t(before), t(until), t(0));
        assert!(l.apply(&cut(10, 1000), t(0)));
        assert!(l.is_revoked(&id(None, Some("alice"), Some(9))));
        assert!(!l.is_revoked(&id(None, Some("alice"), Some(10))));
        // A later cut-off wins; an earlier one neither loosens it nor shortens its life.
        assert!(l.apply(&cut(20, 900), t(0)));
        assert!(!l.apply(&cut(5, 100), t(0)));
        assert!(l.is_revoked(&id(None, Some("alice"), Some(19))));
        assert!(!l.is_revoked(&id(None, Some("alice"), Some(20))));
        assert_eq!(l.subject_count, 1);
        // Fail closed without `iat`; untouched without a subject or with another one.
        assert!(l.is_revoked(&id(None, Some("alice"), None)));
        assert!(!l.is_revoked(&id(None, None, None)));
        assert!(!l.is_revoked(&id(Some("k"), Some("bob"), None)));

        // Expired entries are not applied, and are purged with their issuers.
        assert!(!l.apply(&Revocation::token(ISS, "late", t(10), t(0)), t(11)));
        assert_eq!(l.purge(t(201)), 2);
        assert_eq!((l.token_count, l.subject_count), (0, 1));
        assert_eq!(l.issuers.len(), 1);
        assert_eq!(l.purge(t(1001)), 1);
        assert!(l.issuers.is_empty() && l.tokens.is_empty() && l.subjects.is_empty());
    }

    #[cfg(feature = "metrics")]
    #[tokio::test]
    async fn metrics_report_sizes_applications_and_lag() {
        use std::sync::atomic::AtomicU64;

        use metrics::{
            Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
            Recorder, SharedString, Unit,
        };

        #[derive(Default)]
        struct Cell(AtomicU64, Mutex<Vec<f64>>);
        impl CounterFn for Cell {
            fn increment(&self, v: u64) {
                self.0.fetch_add(v, Ordering::SeqCst);
            }
            fn absolute(&self, v: u64) {
                self.0.store(v, Ordering::SeqCst);
            }
        }
        impl GaugeFn for Cell {
            fn increment(&self, _: f64) {}
            fn decrement(&self, _: f64) {}
            fn set(&self, v: f64) {
                self.0.store(v as u64, Ordering::SeqCst);
            }
        }
        impl HistogramFn for Cell {
            fn record(&self, v: f64) {
                self.1.lock().unwrap().push(v);
            }
        }
        #[derive(Default)]
        struct Rec(Mutex<HashMap<String, Arc<Cell>>>);
        impl Rec {
            fn cell(&self, key: &Key) -> Arc<Cell> {
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let name = format!("{}{{{}}}", key.name(), labels.join(","));
                Arc::clone(self.0.lock().unwrap().entry(name).or_default())
            }
            fn value(&self, name: &str) -> u64 {
                self.0
                    .lock()
                    .unwrap()
                    .get(name)
                    .map_or(0, |c| c.0.load(Ordering::SeqCst))
            }
            fn samples(&self, name: &str) -> Vec<f64> {
                self.0
                    .lock()
                    .unwrap()
                    .get(name)
                    .map_or_else(Vec::new, |c| c.1.lock().unwrap().clone())
            }
        }
        impl Recorder for Rec {
            fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
                Counter::from_arc(self.cell(key))
            }
            fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
                Gauge::from_arc(self.cell(key))
            }
            fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
                Histogram::from_arc(self.cell(key))
            }
        }

        let clock = tower_auth_core::clock::ManualClock::new(t(10));
        let list = RevocationList::builder(crate::issue::MemoryStore::new())
            .clock(clock.clone())
            .build()
            .unwrap();
        let rec = Rec::default();
        metrics::with_local_recorder(&rec, || {
            // Revoked here: no lag.
            list.apply(&Revocation::token(ISS, "a", t(100), t(10)), None);
            list.apply(&Revocation::token(ISS, "a", t(100), t(10)), None);
            // From the store, written 3 s ago by another process.
            list.apply_from_store(&Revocation::subject(ISS, "s", t(7), t(900), t(7)));
        });
        assert_eq!(
            rec.value("tower_auth_jwt_revocations_applied_total{kind=jti}"),
            1
        );
        assert_eq!(
            rec.value("tower_auth_jwt_revocations_applied_total{kind=subject}"),
            1
        );
        assert_eq!(rec.value("tower_auth_jwt_revoked_tokens{}"), 1);
        assert_eq!(rec.value("tower_auth_jwt_revoked_subjects{}"), 1);
        assert_eq!(
            rec.samples("tower_auth_jwt_revocation_lag_seconds{}"),
            [3.0]
        );
    }
}
