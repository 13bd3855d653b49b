//! [`RevocationList`]: the `jti` blocklist and subject cut-offs in memory, kept current from a
//! [`RevocationStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tower_auth_core::clock::{Clock, SystemClock};

use super::{
    Revocation, RevocationCheck, RevocationEvent, RevocationFeed, RevocationKind, RevocationStatus,
    RevocationStore, TokenIdentity,
};
use crate::store::{StoreError, StoreErrorKind, StoreFuture};
use crate::{ConfigError, MAX_LEEWAY, telemetry};

/// Default interval at which a list polls a store without notifications (SQLite, memory) for
/// new entries: the longest a revocation made by another process takes to apply here.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default interval at which expired entries are dropped from memory and deleted from the
/// store.
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Default interval of the full reload that backs up notifications and polling (5 min).
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(300);
/// Default longest lifetime of the tokens a list guards (24 h, the longest access-token
/// lifetime the built-in issuer accepts): a subject cut-off is kept this long (plus the
/// leeway) after its time.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The largest [`max_token_lifetime`](RevocationListBuilder::max_token_lifetime) accepted
/// (366 days).
pub const MAX_TOKEN_LIFETIME_LIMIT: Duration = Duration::from_secs(366 * 24 * 3600);
/// Default margin an entry is kept past the expiry of the tokens it revokes: the largest
/// leeway a [`JwtAuthenticator`](crate::JwtAuthenticator) accepts (10 min), so a revoked
/// token is never accepted again within any verifier's leeway.
pub const DEFAULT_REVOCATION_LEEWAY: Duration = MAX_LEEWAY;
/// Default deadline of each store call made by a list, but full reads.
pub const DEFAULT_REVOCATION_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default deadline of a full read of the store (and of connecting its feed): 30 s, since a
/// large table takes longer to read than one row to write.
pub const DEFAULT_FULL_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `iss`, `jti` or `sub` a list accepts to revoke (1 KiB).
pub const MAX_REVOCATION_VALUE_LEN: usize = 1024;

/// The revoked tokens and subject cut-offs of every issuer, in memory, answering
/// [`RevocationCheck::check`] without any I/O. See the [module docs](super).
///
/// Cheap to clone (one `Arc`); clones share the lists and the background tasks, which stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct RevocationList {
    inner: Arc<Inner>,
}

struct Inner {
    /// The `list` label of this list's metrics.
    name: Arc<str>,
    /// The current lists, immutable: requests load the pointer, writers swap in a new copy.
    snapshot: ArcSwap<Lists>,
    /// Serializes writers (each copies the current snapshot, changes it and swaps it in),
    /// and holds the snapshot replaced by the last write, so that it is freed by the next
    /// writer rather than by whichever request drops it last (freeing a large snapshot
    /// takes time a request should not spend).
    writer: Mutex<Option<Arc<Lists>>>,
    /// Set by the first successful full load; until then every check is "unavailable".
    loaded: AtomicBool,
    /// Unix milliseconds (by the list's clock) of the start of the last successful sync: a
    /// full read, a poll, or a heartbeat of the feed. 0: never. For reporting, and for
    /// staleness while the clock has not gone back past it.
    last_synced: AtomicU64,
    /// The same instant on the monotonic timer: nanoseconds since `epoch`, plus one (0:
    /// never). A wall clock stepped forward then back cannot hide staleness from it.
    synced_mono: AtomicU64,
    /// The origin of `synced_mono`.
    epoch: tokio::time::Instant,
    /// Full reloads requested (by the feed after a reconnect or a failed read), counted.
    reload_requested: AtomicU64,
    /// The number of requests the last successful reload covered (those made before it
    /// started). While lower than `reload_requested`, a heartbeat is not a sync.
    reload_covered: AtomicU64,
    /// Copies of the lists made by writers, for tests of the write cost.
    copies: AtomicU64,
    store: Arc<dyn RevocationStore>,
    /// Whether the store has a notification feed (then polling by cursor is not used).
    has_feed: bool,
    /// The feed before the background task takes it; its lock serializes loads.
    feed: tokio::sync::Mutex<FeedSlot>,
    /// Asks the reload task for a full reload; repeated requests collapse into one.
    reload_wanted: Arc<Notify>,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    purge_interval: Duration,
    reload_interval: Duration,
    max_token_lifetime: Duration,
    leeway: Duration,
    store_timeout: Duration,
    full_read_timeout: Duration,
    max_staleness: Option<Duration>,
    /// The store position of the newest entry seen; its lock serializes reads.
    cursor: tokio::sync::Mutex<u64>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

struct FeedSlot {
    feed: Option<Box<dyn RevocationFeed>>,
    connected: bool,
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
type Map<V> = HashMap<Arc<str>, Arc<[(Arc<str>, V)]>, foldhash::fast::RandomState>;

/// value (`jti` or `sub`) -> the issuers it is revoked for (nearly always one), with what is
/// held for each. One hash per lookup, borrowing the token's strings: no allocation. Keys,
/// values and issuers are reference counted, so copying the lists for a change allocates the
/// tables only.
#[derive(Clone, Default)]
struct Lists {
    tokens: Map<SystemTime>,
    subjects: Map<Cutoff>,
    /// Each issuer's name once, shared by its entries.
    issuers: Vec<Arc<str>>,
    token_count: usize,
    subject_count: usize,
}

/// What [`upsert`] did.
#[derive(PartialEq, Eq)]
enum Change {
    None,
    Updated,
    Added,
}

/// Merges `fresh` into `map[key]` for `issuer` (`merge` returns the merged value when it
/// differs from the held one).
fn upsert<V: Copy>(
    map: &mut Map<V>,
    key: &str,
    issuer: Arc<str>,
    fresh: V,
    merge: impl Fn(V, V) -> Option<V>,
) -> Change {
    let Some(held) = map.get_mut(key) else {
        map.insert(key.into(), vec![(issuer, fresh)].into());
        return Change::Added;
    };
    match held.iter().position(|(i, _)| *i == issuer) {
        Some(pos) => match merge(held[pos].1, fresh) {
            None => Change::None,
            Some(v) => {
                let mut next = held.to_vec();
                next[pos].1 = v;
                *held = next.into();
                Change::Updated
            }
        },
        None => {
            let mut next = held.to_vec();
            next.push((issuer, fresh));
            *held = next.into();
            Change::Added
        }
    }
}

/// What `map` holds for the value and issuer of `r`.
fn held_for<V: Copy>(map: &Map<V>, r: &Revocation) -> Option<V> {
    map.get(r.value.as_str())?
        .iter()
        .find(|(i, _)| **i == *r.issuer)
        .map(|(_, v)| *v)
}

/// Drops the values `keep` refuses; the number left.
fn retain<V: Copy>(map: &mut Map<V>, keep: impl Fn(&V) -> bool) -> usize {
    let mut left = 0;
    map.retain(|_, held| {
        if !held.iter().all(|(_, v)| keep(v)) {
            let next: Vec<_> = held.iter().filter(|(_, v)| keep(v)).cloned().collect();
            if next.is_empty() {
                return false;
            }
            *held = next.into();
        }
        left += held.len();
        true
    });
    left
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
        let change = match r.kind {
            RevocationKind::Token => {
                let change = upsert(
                    &mut self.tokens,
                    &r.value,
                    issuer,
                    r.expires_at,
                    |held, new| (new > held).then_some(new),
                );
                if change == Change::Added {
                    self.token_count += 1;
                }
                change
            }
            RevocationKind::Subject => {
                let fresh = Cutoff {
                    issued_before: r.issued_before,
                    keep_until: r.expires_at,
                };
                let change = upsert(&mut self.subjects, &r.value, issuer, fresh, |c, new| {
                    let merged = Cutoff {
                        issued_before: c.issued_before.max(new.issued_before),
                        keep_until: c.keep_until.max(new.keep_until),
                    };
                    (merged.issued_before != c.issued_before || merged.keep_until != c.keep_until)
                        .then_some(merged)
                });
                if change == Change::Added {
                    self.subject_count += 1;
                }
                change
            }
        };
        change != Change::None
    }

    /// Whether [`apply`](Self::apply) would change anything, read-only.
    fn would_change(&self, r: &Revocation, now: SystemTime) -> bool {
        if r.expires_at < now {
            return false;
        }
        match r.kind {
            RevocationKind::Token => {
                held_for(&self.tokens, r).is_none_or(|until| r.expires_at > until)
            }
            RevocationKind::Subject => held_for(&self.subjects, r)
                .is_none_or(|c| r.issued_before > c.issued_before || r.expires_at > c.keep_until),
        }
    }

    /// Whether any entry is kept until before `now` (read-only: what [`purge`](Self::purge)
    /// would drop).
    fn has_expired(&self, now: SystemTime) -> bool {
        (self.token_count > 0
            && self
                .tokens
                .values()
                .any(|held| held.iter().any(|(_, until)| *until < now)))
            || (self.subject_count > 0
                && self
                    .subjects
                    .values()
                    .any(|held| held.iter().any(|(_, c)| c.keep_until < now)))
    }

    /// Drops the entries kept until before `now`; how many.
    fn purge(&mut self, now: SystemTime) -> usize {
        let before = self.token_count + self.subject_count;
        self.token_count = retain(&mut self.tokens, |until| *until >= now);
        self.subject_count = retain(&mut self.subjects, |c| c.keep_until >= now);
        self.forget_unused_issuers();
        before - self.token_count - self.subject_count
    }

    /// Drops the issuers no entry refers to (counted by pointer, since older snapshots may
    /// hold references too).
    /// One pass over the entries, whatever the number of issuers.
    fn forget_unused_issuers(&mut self) {
        let mut used = std::collections::HashSet::<*const u8>::new();
        let held = self
            .tokens
            .values()
            .flat_map(|h| h.iter().map(|(i, _)| i))
            .chain(
                self.subjects
                    .values()
                    .flat_map(|h| h.iter().map(|(i, _)| i)),
            );
        for issuer in held {
            if used.insert(Arc::as_ptr(issuer).cast::<u8>()) && used.len() == self.issuers.len() {
                return;
            }
        }
        self.issuers
            .retain(|i| used.contains(&Arc::as_ptr(i).cast::<u8>()));
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
            // closed). Cut-offs are whole seconds, like `iat`.
            return t.issued_at().is_none_or(|iat| iat < cutoff.issued_before);
        }
        false
    }
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lists = self.inner.snapshot.load();
        f.debug_struct("RevocationList")
            .field("name", &self.inner.name)
            .field("loaded", &self.is_loaded())
            .field("revoked_tokens", &lists.token_count)
            .field("revoked_subjects", &lists.subject_count)
            .field("staleness", &self.staleness())
            .finish_non_exhaustive()
    }
}

impl RevocationCheck for RevocationList {
    /// [`Revoked`](RevocationStatus::Revoked) when the token's `jti` is blocklisted, or its
    /// subject is cut off at a time after its `iat` (or it has no `iat`).
    /// [`Unavailable`](RevocationStatus::Unavailable) before the first
    /// [`load`](RevocationList::load), and when the list has not synchronized for longer
    /// than its [`max_staleness`](RevocationListBuilder::max_staleness). One atomic pointer
    /// load and at most two hash lookups (and a clock read with `max_staleness`); no lock,
    /// no I/O.
    fn check(&self, token: &TokenIdentity) -> RevocationStatus {
        let i = &self.inner;
        if !i.loaded.load(Ordering::Acquire) {
            return RevocationStatus::Unavailable;
        }
        if i.snapshot.load().is_revoked(token) {
            return RevocationStatus::Revoked;
        }
        if let Some(max) = i.max_staleness
            && self.staleness_at(i.clock.now()) > max
        {
            return RevocationStatus::Unavailable;
        }
        RevocationStatus::Valid
    }
}

fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `t` rounded up to a whole second (unchanged when it is one).
fn ceil_second(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn check_len(value: &str) -> Result<(), StoreError> {
    if value.len() > MAX_REVOCATION_VALUE_LEN {
        return Err(StoreError::new(
            StoreErrorKind::InvalidInput,
            "revocation value longer than 1 KiB",
        ));
    }
    Ok(())
}

impl RevocationList {
    /// Starts a configuration around `store`.
    pub fn builder(store: impl RevocationStore) -> RevocationListBuilder {
        RevocationListBuilder {
            store: Arc::new(store),
            name: "default".into(),
            clock: Arc::new(SystemClock),
            poll_interval: DEFAULT_POLL_INTERVAL,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            leeway: DEFAULT_REVOCATION_LEEWAY,
            store_timeout: DEFAULT_REVOCATION_STORE_TIMEOUT,
            full_read_timeout: DEFAULT_FULL_READ_TIMEOUT,
            max_staleness: None,
        }
    }

    fn writer(&self) -> MutexGuard<'_, Option<Arc<Lists>>> {
        // The guarded data is the snapshot, replaced whole: a poisoned lock is recovered.
        self.inner.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When `needed` says the current lists would change, copies them, applies `f` and
    /// swaps the copy in when `f` says it changed them; the new sizes when it did. The copy
    /// is the cost of a write (the size of the lists), so writes that change nothing (a
    /// process's own notification coming back, a reload or a purge with nothing new) are
    /// checked on the current snapshot first and copy nothing. Requests keep reading the
    /// previous snapshot meanwhile.
    fn update<T>(
        &self,
        needed: impl FnOnce(&Lists) -> Option<T>,
        f: impl FnOnce(&mut Lists, T) -> bool,
    ) -> Option<(usize, usize)> {
        let mut retired = self.writer();
        let current = self.inner.snapshot.load();
        let plan = needed(&current)?;
        let mut next = Lists::clone(&current);
        drop(current);
        self.inner.copies.fetch_add(1, Ordering::Relaxed);
        if !f(&mut next, plan) {
            return None;
        }
        let sizes = (next.token_count, next.subject_count);
        let previous = self.inner.snapshot.swap(Arc::new(next));
        // The one before is freed here (when no request still reads it).
        drop(retired.replace(previous));
        Some(sizes)
    }

    /// Loads the list: with a store that has a notification feed, connects the feed first
    /// (PostgreSQL: `LISTEN`), so nothing committed during the read is missed, and fails
    /// when it cannot; then reads every entry from the store (the first success marks the
    /// list loaded: until then every check answers "unavailable", 503); then, inside a tokio
    /// runtime, starts the background tasks (or restarts those that ended: a panic, or a
    /// runtime shut down): the notification listener and the reload task, or the poll every
    /// [`poll_interval`](RevocationListBuilder::poll_interval); the full reload every
    /// [`reload_interval`](RevocationListBuilder::reload_interval); the purge every
    /// [`purge_interval`](RevocationListBuilder::purge_interval). Call it at start-up,
    /// before serving, inside a tokio runtime (store calls run under a deadline on its
    /// timer), and fail the start-up when it fails.
    pub async fn load(&self) -> Result<(), StoreError> {
        let result = self.load_inner().await;
        if let Err(e) = &result {
            telemetry::revocation_sync_failed(&self.inner.name, "load", e);
        }
        result
    }

    async fn load_inner(&self) -> Result<(), StoreError> {
        let i = &self.inner;
        let mut slot = i.feed.lock().await;
        if !slot.connected
            && let Some(feed) = slot.feed.as_mut()
        {
            call(i.full_read_timeout, feed.connect()).await?;
            slot.connected = true;
        }
        self.reload_inner().await?;
        i.loaded.store(true, Ordering::Release);
        self.start(slot.feed.take());
        Ok(())
    }

    /// Whether a [`load`](Self::load) has succeeded.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// When the list last synchronized with its store (the start of the last successful
    /// full read or poll, or the last heartbeat of its feed), by its clock; `None` before
    /// the first load.
    pub fn last_synced(&self) -> Option<SystemTime> {
        match self.inner.last_synced.load(Ordering::Acquire) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// How long ago the list last synchronized with its store ([`last_synced`](Self::last_synced));
    /// `None` before the first load. Past [`max_staleness`](RevocationListBuilder::max_staleness)
    /// the list answers "unavailable".
    ///
    /// The larger of the time elapsed by the list's clock and, in whole seconds, by the
    /// monotonic timer (tokio's `Instant`): a wall clock stepped back (even after a sync
    /// made while it was ahead) cannot hide staleness, and a clock stepped forward makes
    /// the list look staler until its next sync (failing closed).
    pub fn staleness(&self) -> Option<Duration> {
        self.last_synced()?;
        Some(self.staleness_at(self.inner.clock.now()))
    }

    fn staleness_at(&self, now: SystemTime) -> Duration {
        let i = &self.inner;
        let synced = i.last_synced.load(Ordering::Acquire);
        let by_clock = Duration::from_millis(to_millis(now).saturating_sub(synced));
        let mono = match i.synced_mono.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            n => {
                let elapsed = self.mono_nanos(tokio::time::Instant::now());
                Duration::from_secs(Duration::from_nanos(elapsed.saturating_sub(n - 1)).as_secs())
            }
        };
        by_clock.max(mono)
    }

    /// `at` on the monotonic timer, as nanoseconds since the list was built.
    fn mono_nanos(&self, at: tokio::time::Instant) -> u64 {
        let d = at.saturating_duration_since(self.inner.epoch);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Records a sync that started at `at` by the list's clock and `mono` by the timer.
    fn mark_synced(&self, at: SystemTime, mono: tokio::time::Instant) {
        let i = &self.inner;
        // Stored as is, not the maximum: a clock that went back must not leave the last
        // sync in the future. The monotonic instant only moves forward.
        i.last_synced.store(to_millis(at).max(1), Ordering::Release);
        i.synced_mono
            .fetch_max(self.mono_nanos(mono).saturating_add(1), Ordering::AcqRel);
        telemetry::revocation_staleness(&i.name, self.staleness_at(i.clock.now()));
    }

    /// Asks the reload task for a full reload; until one that starts after this request
    /// succeeds, heartbeats of the feed do not count as syncs.
    fn request_reload(&self) {
        self.inner.reload_requested.fetch_add(1, Ordering::AcqRel);
        self.inner.reload_wanted.notify_one();
    }

    /// Whether a requested reload has not yet succeeded.
    fn reload_pending(&self) -> bool {
        let i = &self.inner;
        i.reload_covered.load(Ordering::Acquire) < i.reload_requested.load(Ordering::Acquire)
    }

    /// A heartbeat of the feed: every entry committed before it has been reported, so the
    /// list is in sync, unless a reload it asked for is still pending (entries missed while
    /// disconnected are only in the store).
    fn feed_alive(&self) {
        if !self.reload_pending() {
            self.mark_synced(self.inner.clock.now(), tokio::time::Instant::now());
        }
    }

    /// Publishes the staleness gauge (done by a background task every few seconds).
    #[cfg(feature = "metrics")]
    fn report_staleness(&self) {
        if self.last_synced().is_some() {
            let staleness = self.staleness_at(self.inner.clock.now());
            telemetry::revocation_staleness(&self.inner.name, staleness);
        }
    }

    /// Revokes one token of `issuer` by its `jti`: applied here at once, then written to the
    /// store (from which other processes apply it). The entry is kept until `expires_at`
    /// (the token's `exp`) plus the [leeway](RevocationListBuilder::leeway); give the real
    /// `exp`, or `None` to keep it for the [longest token
    /// lifetime](RevocationListBuilder::max_token_lifetime) from now. A token whose real
    /// `exp` is later than the one given (or, with `None`, than now + the longest lifetime)
    /// is accepted again once the entry is purged: revoke by subject a token without `exp`.
    ///
    /// `issuer` and `jti` longer than [1 KiB](MAX_REVOCATION_VALUE_LEN) are refused
    /// ([`StoreErrorKind::InvalidInput`]). On any other error the revocation holds in this
    /// process, and the store may or may not have taken it (a deadline exceeded while the
    /// write commits still lets it land): retry, which is harmless, since entries merge.
    ///
    /// An explicit `expires_at` is not capped by the
    /// [longest token lifetime](RevocationListBuilder::max_token_lifetime): the entry is
    /// kept (in memory and in the store) until then. To revoke many tokens, use
    /// [`revoke_tokens`](Self::revoke_tokens).
    pub async fn revoke_token(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        check_len(issuer)?;
        check_len(jti)?;
        let i = &self.inner;
        let now = i.clock.now();
        let until = expires_at.unwrap_or_else(|| saturating_add(now, i.max_token_lifetime));
        let entry = Revocation::token(issuer, jti, saturating_add(until, i.leeway), now);
        self.add(entry).await
    }

    /// Revokes many tokens of `issuer` at once (`(jti, exp)` pairs, as in
    /// [`revoke_token`](Self::revoke_token)): applied here in one copy of the lists, then
    /// written to the store in one call ([`RevocationStore::add_revocations`]: one
    /// transaction on SQLite and PostgreSQL), under the
    /// [`full_read_timeout`](RevocationListBuilder::full_read_timeout). Revoking `n` tokens
    /// one by one copies the lists `n` times; use this for mass revocations.
    ///
    /// Every value is checked before anything is applied: one longer than
    /// [1 KiB](MAX_REVOCATION_VALUE_LEN) refuses the whole batch
    /// ([`StoreErrorKind::InvalidInput`]). On any other error the batch is applied in this
    /// process, and the store may or may not have taken it (a deadline exceeded while the
    /// write commits): retrying is harmless, since entries merge.
    pub async fn revoke_tokens<I, J>(&self, issuer: &str, tokens: I) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = (J, Option<SystemTime>)>,
        J: AsRef<str>,
    {
        check_len(issuer)?;
        let i = &self.inner;
        let now = i.clock.now();
        let entries = tokens
            .into_iter()
            .map(|(jti, expires_at)| {
                let jti = jti.as_ref();
                check_len(jti)?;
                let until = expires_at.unwrap_or_else(|| saturating_add(now, i.max_token_lifetime));
                Ok(Revocation::token(
                    issuer,
                    jti,
                    saturating_add(until, i.leeway),
                    now,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if entries.is_empty() {
            return Ok(());
        }
        self.apply(&entries, false);
        let store = Arc::clone(&i.store);
        call(i.full_read_timeout, store.add_revocations(&entries)).await
    }

    /// Cuts off a subject: every token of `subject` from `issuer` whose `iat` is before
    /// `issued_before` is revoked (applied here at once, then written to the store).
    /// `issued_before` is first rounded up to a whole second, like `iat`, so every process
    /// holds the same cut-off whatever its store's precision, and every token issued in the
    /// cut-off's second is revoked (fail closed). Kept until the cut-off plus the [longest
    /// token lifetime](RevocationListBuilder::max_token_lifetime) and the
    /// [leeway](RevocationListBuilder::leeway), when every such token has expired; a token
    /// living longer than that, or without `exp`, is accepted again afterwards.
    ///
    /// `issuer` and `subject` longer than [1 KiB](MAX_REVOCATION_VALUE_LEN) are refused
    /// ([`StoreErrorKind::InvalidInput`]). On any other error the cut-off holds in this
    /// process, and the store may or may not have taken it (a deadline exceeded while the
    /// write commits still lets it land): retry, which is harmless, since entries merge.
    pub async fn cut_off_subject(
        &self,
        issuer: &str,
        subject: &str,
        issued_before: SystemTime,
    ) -> Result<(), StoreError> {
        check_len(issuer)?;
        check_len(subject)?;
        let i = &self.inner;
        let issued_before = ceil_second(issued_before);
        let keep = saturating_add(issued_before, i.max_token_lifetime + i.leeway);
        let entry = Revocation::subject(issuer, subject, issued_before, keep, i.clock.now());
        self.add(entry).await
    }

    async fn add(&self, entry: Revocation) -> Result<(), StoreError> {
        // Here first: the revocation holds in this process even if the store fails.
        self.apply(std::slice::from_ref(&entry), false);
        let store = Arc::clone(&self.inner.store);
        call(self.inner.store_timeout, store.add_revocation(&entry)).await
    }

    /// Applies entries in one copy of the lists; with `lag`, records each changing entry's
    /// lag from its writing.
    fn apply(&self, entries: &[Revocation], lag: bool) {
        if entries.is_empty() {
            return;
        }
        let now = self.inner.clock.now();
        let mut changed = Vec::new();
        let sizes = self.update(
            |lists| {
                let fresh: Vec<&Revocation> = entries
                    .iter()
                    .filter(|e| lists.would_change(e, now))
                    .collect();
                (!fresh.is_empty()).then_some(fresh)
            },
            |lists, fresh| {
                for entry in fresh {
                    if lists.apply(entry, now) {
                        changed.push(entry);
                    }
                }
                !changed.is_empty()
            },
        );
        // Metrics after the swap, outside the writer lock.
        for entry in changed {
            let lag = lag.then(|| now.duration_since(entry.created_at).unwrap_or_default());
            telemetry::revocation_applied(&self.inner.name, entry.kind, lag);
        }
        if let Some((tokens, subjects)) = sizes {
            telemetry::revocation_sizes(&self.inner.name, tokens, subjects);
        }
    }

    /// Applies the entries added to the store since the last load or poll; how many it read.
    /// The background poll calls this every
    /// [`poll_interval`](RevocationListBuilder::poll_interval); call it yourself for an
    /// immediate update.
    ///
    /// With a store that has a notification feed (PostgreSQL) this is a full reload: its
    /// sequence numbers are taken at insert and transactions commit out of order, so a
    /// cursor could move past an entry that commits later, and skip it for good.
    pub async fn poll(&self) -> Result<usize, StoreError> {
        if self.inner.has_feed {
            return self.reload_inner().await;
        }
        let mut cursor = self.inner.cursor.lock().await;
        let started = self.inner.clock.now();
        let mono = tokio::time::Instant::now();
        let store = Arc::clone(&self.inner.store);
        let batch = call(self.inner.store_timeout, store.revocations_since(*cursor)).await?;
        self.apply(&batch.entries, true);
        *cursor = (*cursor).max(batch.cursor);
        self.mark_synced(started, mono);
        Ok(batch.entries.len())
    }

    /// Reads every entry from the store again (under the
    /// [`full_read_timeout`](RevocationListBuilder::full_read_timeout)) and adds what is
    /// missing here (nothing is removed but expired entries). Done after the notification
    /// listener reconnects, and every [`reload_interval`](RevocationListBuilder::reload_interval).
    pub async fn reload(&self) -> Result<(), StoreError> {
        self.reload_inner().await.map(drop)
    }

    /// A full read; how many entries it read.
    async fn reload_inner(&self) -> Result<usize, StoreError> {
        let mut cursor = self.inner.cursor.lock().await;
        // The reload requests this read answers: those made before it starts.
        let covers = self.inner.reload_requested.load(Ordering::Acquire);
        let started = self.inner.clock.now();
        let mono = tokio::time::Instant::now();
        let store = Arc::clone(&self.inner.store);
        let batch = call(self.inner.full_read_timeout, store.revocations(started)).await?;
        // After the first load, an entry a reload adds was missed by the feed or the poll:
        // its lag is worth recording. The first load's entries are just old.
        self.apply(&batch.entries, self.is_loaded());
        *cursor = (*cursor).max(batch.cursor);
        self.inner
            .reload_covered
            .fetch_max(covers, Ordering::AcqRel);
        self.mark_synced(started, mono);
        Ok(batch.entries.len())
    }

    /// Drops the entries whose tokens have all expired from memory, and deletes from the
    /// store those that expired more than the [leeway](RevocationListBuilder::leeway) ago (a
    /// margin for other processes' clocks); returns how many were deleted from the store.
    /// The background purge calls this every
    /// [`purge_interval`](RevocationListBuilder::purge_interval).
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let i = &self.inner;
        let now = i.clock.now();
        // The copy is purged off the request path, then swapped in.
        if let Some((tokens, subjects)) = self.update(
            |l| l.has_expired(now).then_some(()),
            |l, ()| l.purge(now) > 0,
        ) {
            telemetry::revocation_sizes(&i.name, tokens, subjects);
        }
        let before = now.checked_sub(i.leeway).unwrap_or(UNIX_EPOCH);
        let store = Arc::clone(&i.store);
        call(
            i.store_timeout,
            store.delete_revocations_expired_before(before),
        )
        .await
    }

    /// The number of revoked tokens (`jti`s) held.
    pub fn revoked_tokens(&self) -> usize {
        self.inner.snapshot.load().token_count
    }

    /// The number of subject cut-offs held.
    pub fn revoked_subjects(&self) -> usize {
        self.inner.snapshot.load().subject_count
    }

    /// The [longest token lifetime](RevocationListBuilder::max_token_lifetime) this list was
    /// configured with.
    pub fn max_token_lifetime(&self) -> Duration {
        self.inner.max_token_lifetime
    }

    /// Spawns the background tasks when there is a runtime and they are not running (never
    /// started, or ended: a panic, or the runtime they ran on shut down).
    fn start(&self, feed: Option<Box<dyn RevocationFeed>>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let i = &self.inner;
        let mut tasks = i.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if !tasks.is_empty() && tasks.iter().all(|t| !t.is_finished()) {
            return;
        }
        for task in tasks.drain(..) {
            task.abort();
        }
        let weak = Arc::downgrade(&self.inner);
        if i.has_feed {
            let wanted = Arc::clone(&i.reload_wanted);
            tasks.push(handle.spawn(feed_loop(weak.clone(), feed)).abort_handle());
            tasks.push(
                handle
                    .spawn(reload_loop(weak.clone(), wanted, i.reload_interval))
                    .abort_handle(),
            );
        } else {
            tasks.push(
                handle
                    .spawn(poll_loop(weak.clone(), i.poll_interval, i.reload_interval))
                    .abort_handle(),
            );
        }
        tasks.push(
            handle
                .spawn(purge_loop(weak.clone(), i.purge_interval))
                .abort_handle(),
        );
        #[cfg(feature = "metrics")]
        tasks.push(handle.spawn(staleness_loop(weak)).abort_handle());
    }
}

async fn call<T>(deadline: Duration, call: StoreFuture<'_, T>) -> Result<T, StoreError> {
    tokio::time::timeout(deadline, call).await.map_err(|_| {
        StoreError::new(
            StoreErrorKind::Unavailable,
            "revocation store deadline exceeded",
        )
    })?
}

fn upgrade(weak: &Weak<Inner>) -> Option<RevocationList> {
    weak.upgrade().map(|inner| RevocationList { inner })
}

/// The pause before retry `attempt` (0-based) of a background step: 100 ms doubling up to
/// 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(5))
}

/// Applies the feed's events (entries at once, reloads handed to [`reload_loop`] so entries
/// keep flowing meanwhile, heartbeats as synchronization). When the feed ends, or was lost
/// with an earlier task, asks the store for a new one, connects it and asks for a reload.
/// The list is held only while an event is applied, so dropping it ends this task.
async fn feed_loop(weak: Weak<Inner>, mut feed: Option<Box<dyn RevocationFeed>>) {
    let mut attempt = 0;
    loop {
        let mut current = match feed.take() {
            Some(f) => f,
            None => {
                let Some(list) = upgrade(&weak) else { return };
                let Some(mut f) = list.inner.store.revocation_feed() else {
                    return;
                };
                let deadline = list.inner.full_read_timeout;
                let name = Arc::clone(&list.inner.name);
                drop(list);
                let connected = call(deadline, f.connect()).await;
                match connected {
                    Ok(()) => {
                        attempt = 0;
                        // Whatever was written while no feed listened is only in the store.
                        if let Some(list) = upgrade(&weak) {
                            list.request_reload();
                        }
                        f
                    }
                    Err(e) => {
                        telemetry::revocation_sync_failed(&name, "listen", &e);
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt = attempt.saturating_add(1);
                        continue;
                    }
                }
            }
        };
        while let Some(event) = current.next().await {
            let Some(list) = upgrade(&weak) else { return };
            match event {
                RevocationEvent::Added(entry) => list.apply(std::slice::from_ref(&entry), true),
                RevocationEvent::Batch(entries) => list.apply(&entries, true),
                RevocationEvent::Reload => list.request_reload(),
                RevocationEvent::Alive => list.feed_alive(),
            }
        }
        let Some(list) = upgrade(&weak) else { return };
        telemetry::revocation_sync_failed(
            &list.inner.name,
            "listen",
            &StoreError::new(StoreErrorKind::Unavailable, "revocation feed ended"),
        );
        drop(list);
        tokio::time::sleep(backoff(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Full reloads, when the feed asks for one (repeated requests collapse into one) and every
/// `interval`, each retried until it succeeds. The list is held only during an attempt, so
/// dropping it ends this task even while the store is down.
async fn reload_loop(weak: Weak<Inner>, wanted: Arc<Notify>, interval: Duration) {
    loop {
        tokio::select! {
            () = wanted.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        let mut attempt = 0;
        loop {
            let Some(list) = upgrade(&weak) else { return };
            match list.reload_inner().await {
                Ok(_) => break,
                Err(e) => telemetry::revocation_sync_failed(&list.inner.name, "reload", &e),
            }
            drop(list);
            tokio::time::sleep(backoff(attempt)).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

/// Polls every `interval`; every `reload_interval` a full reload instead.
async fn poll_loop(weak: Weak<Inner>, interval: Duration, reload_interval: Duration) {
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let Some(list) = upgrade(&weak) else { return };
        if last_full.elapsed() >= reload_interval {
            match list.reload_inner().await {
                Ok(_) => {
                    last_full = tokio::time::Instant::now();
                    continue;
                }
                // Entries added since the last poll still arrive meanwhile.
                Err(e) => telemetry::revocation_sync_failed(&list.inner.name, "reload", &e),
            }
        }
        if let Err(e) = list.poll().await {
            telemetry::revocation_sync_failed(&list.inner.name, "poll", &e);
        }
    }
}

async fn purge_loop(weak: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(list) = upgrade(&weak) else { return };
        if let Err(e) = list.purge_expired().await {
            telemetry::revocation_sync_failed(&list.inner.name, "purge", &e);
        }
    }
}

/// Keeps the staleness gauge moving while nothing synchronizes.
#[cfg(feature = "metrics")]
async fn staleness_loop(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let Some(list) = upgrade(&weak) else { return };
        list.report_staleness();
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
    name: String,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    purge_interval: Duration,
    reload_interval: Duration,
    max_token_lifetime: Duration,
    leeway: Duration,
    store_timeout: Duration,
    full_read_timeout: Duration,
    max_staleness: Option<Duration>,
}

impl fmt::Debug for RevocationListBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationListBuilder")
            .field("name", &self.name)
            .field("poll_interval", &self.poll_interval)
            .field("purge_interval", &self.purge_interval)
            .field("reload_interval", &self.reload_interval)
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("leeway", &self.leeway)
            .field("store_timeout", &self.store_timeout)
            .field("full_read_timeout", &self.full_read_timeout)
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

impl RevocationListBuilder {
    /// The `list` label of this list's metrics (default `default`), to tell several lists
    /// apart.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

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

    /// How often the list reads every entry again, whatever its notifications or polls
    /// said (default 5 min, at least 10 ms): the safety net under a feed that lost
    /// notifications without noticing, or a poll that skipped an entry.
    pub fn reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// The longest lifetime (`exp` - `iat`) of the tokens guarded (default 24 h, from 1 s to
    /// [366 days](MAX_TOKEN_LIFETIME_LIMIT)): how long a subject cut-off is kept after its
    /// time, and a revoked `jti` without a known expiry. A token that lives longer than this
    /// outlives its subject's cut-off.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// How long an entry is kept past the expiry of the tokens it revokes (default 10 min, at
    /// most 1 h). Keep it at least the verifiers' leeway, which accepts tokens that long past
    /// their `exp`. The store keeps entries that long again before deleting them, a margin
    /// for the clocks of other processes.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The deadline of each store call but full reads (default 2 s).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The deadline of a full read of the store, and of connecting its notification feed
    /// (default 30 s): a large table takes longer to read than a row to write.
    pub fn full_read_timeout(mut self, timeout: Duration) -> Self {
        self.full_read_timeout = timeout;
        self
    }

    /// After how long without synchronizing with its store (no successful poll, full read
    /// or feed heartbeat) the list answers "unavailable" (503) instead of serving entries
    /// that may be missing revocations made elsewhere (default: never). Like the JWKS
    /// cache's maximum staleness, it trades availability during a store outage for a bound
    /// on how long a revocation can go unseen. Set it well above the
    /// [`poll_interval`](Self::poll_interval) or the feed's heartbeat interval (PostgreSQL:
    /// 30 s) plus a few retries, e.g. 2 min; at least 1 s. The
    /// [`reload_interval`](Self::reload_interval) (5 min) does not matter here unless the
    /// list has neither feed nor poll: heartbeats and polls are syncs too.
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = Some(max);
        self
    }

    /// The clock for expiry, cut-off and staleness times (default: the system clock).
    /// Background intervals run on the tokio timer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings. The list is empty and every check answers "unavailable"
    /// until [`RevocationList::load`] succeeds.
    pub fn build(self) -> Result<RevocationList, ConfigError> {
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        let min = Duration::from_millis(10);
        for (setting, value) in [
            ("poll_interval", self.poll_interval),
            ("purge_interval", self.purge_interval),
            ("reload_interval", self.reload_interval),
        ] {
            if value < min {
                return Err(ConfigError::new(
                    setting,
                    secs(value),
                    "must be at least 10 ms",
                ));
            }
        }
        if self.max_token_lifetime < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "max_token_lifetime",
                secs(self.max_token_lifetime),
                "must be at least 1 s",
            ));
        }
        if self.max_token_lifetime > MAX_TOKEN_LIFETIME_LIMIT {
            return Err(ConfigError::new(
                "max_token_lifetime",
                secs(self.max_token_lifetime),
                "must be at most 366 days",
            ));
        }
        if self.leeway > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "leeway",
                secs(self.leeway),
                "must be at most 1 h",
            ));
        }
        for (setting, value) in [
            ("store_timeout", self.store_timeout),
            ("full_read_timeout", self.full_read_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(
                    setting,
                    secs(value),
                    "must be greater than zero",
                ));
            }
        }
        if let Some(max) = self.max_staleness
            && max < Duration::from_secs(1)
        {
            return Err(ConfigError::new(
                "max_staleness",
                secs(max),
                "must be at least 1 s",
            ));
        }
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "\"\"", "must not be empty"));
        }
        let feed = self.store.revocation_feed();
        Ok(RevocationList {
            inner: Arc::new(Inner {
                name: self.name.into(),
                snapshot: ArcSwap::from_pointee(Lists::default()),
                writer: Mutex::new(None),
                loaded: AtomicBool::new(false),
                last_synced: AtomicU64::new(0),
                synced_mono: AtomicU64::new(0),
                epoch: tokio::time::Instant::now(),
                reload_requested: AtomicU64::new(0),
                reload_covered: AtomicU64::new(0),
                copies: AtomicU64::new(0),
                has_feed: feed.is_some(),
                feed: tokio::sync::Mutex::new(FeedSlot {
                    feed,
                    connected: false,
                }),
                reload_wanted: Arc::new(Notify::new()),
                store: self.store,
                clock: self.clock,
                poll_interval: self.poll_interval,
                purge_interval: self.purge_interval,
                reload_interval: self.reload_interval,
                max_token_lifetime: self.max_token_lifetime,
                leeway: self.leeway,
                store_timeout: self.store_timeout,
                full_read_timeout: self.full_read_timeout,
                max_staleness: self.max_staleness,
                cursor: tokio::sync::Mutex::new(0),
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

    /// A list whose background tasks stay quiet for an hour: only the test writes to it.
    fn quiet(store: crate::revocation::MemoryRevocationStore) -> RevocationListBuilder {
        RevocationList::builder(store)
            .poll_interval(Duration::from_secs(3600))
            .purge_interval(Duration::from_secs(3600))
            .reload_interval(Duration::from_secs(3600))
    }

    fn copies(list: &RevocationList) -> u64 {
        list.inner.copies.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn writes_that_change_nothing_copy_nothing_and_a_batch_copies_once() {
        let clock = tower_auth_core::clock::ManualClock::new(t(10));
        let store = crate::revocation::MemoryRevocationStore::new();
        let list = quiet(store.clone()).clock(clock.clone()).build().unwrap();
        list.load().await.unwrap();
        let base = copies(&list);
        list.revoke_token(ISS, "a", Some(t(500))).await.unwrap();
        assert_eq!(copies(&list), base + 1);
        // The revoking process's own notification coming back: no copy.
        let echo = store.revocations(t(10)).await.unwrap().entries;
        list.apply(&echo, true);
        assert_eq!(copies(&list), base + 1);
        // A reload or a poll with nothing new: no copy.
        list.reload().await.unwrap();
        list.poll().await.unwrap();
        assert_eq!(copies(&list), base + 1);
        // A purge with nothing expired: no copy.
        list.purge_expired().await.unwrap();
        assert_eq!(copies(&list), base + 1);
        // A batch of 100: one copy, and every token is revoked.
        let batch: Vec<_> = (0..100).map(|n| (format!("b{n}"), Some(t(500)))).collect();
        list.revoke_tokens(ISS, batch).await.unwrap();
        assert_eq!(copies(&list), base + 2);
        assert_eq!(list.revoked_tokens(), 101);
        assert!(
            list.inner
                .snapshot
                .load()
                .is_revoked(&id(Some("b99"), None, None))
        );
        // In the store too, for other processes.
        assert_eq!(store.revocations(t(10)).await.unwrap().entries.len(), 101);
        // One value too long refuses the whole batch, before anything is applied.
        let long = "x".repeat(MAX_REVOCATION_VALUE_LEN + 1);
        let err = list
            .revoke_tokens(ISS, [("ok".to_owned(), None), (long, None)])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
        assert_eq!(copies(&list), base + 2);
        // A purge with something expired: one copy.
        clock.set(t(500) + DEFAULT_REVOCATION_LEEWAY + Duration::from_secs(1));
        list.purge_expired().await.unwrap();
        assert_eq!(copies(&list), base + 3);
        assert_eq!(list.revoked_tokens(), 0);
    }

    #[tokio::test]
    async fn a_replaced_snapshot_is_freed_by_the_next_writer_not_by_a_request() {
        let list = quiet(crate::revocation::MemoryRevocationStore::new())
            .build()
            .unwrap();
        list.load().await.unwrap();
        // A request holding the snapshot while a write replaces it.
        let held = list.inner.snapshot.load_full();
        let first = Arc::downgrade(&held);
        list.revoke_token(ISS, "a", None).await.unwrap();
        // The request finishes: the writer still holds the old snapshot, so the request
        // frees nothing.
        drop(held);
        assert!(first.upgrade().is_some());
        // The next write frees it.
        list.revoke_token(ISS, "b", None).await.unwrap();
        assert!(first.upgrade().is_none());
    }

    #[test]
    fn would_change_agrees_with_apply() {
        let mut l = Lists::default();
        let cut = |before, until| Revocation::subject(ISS, "s", t(before), t(until), t(0));
        let cases = [
            Revocation::token(ISS, "j", t(100), t(0)),
            Revocation::token(ISS, "j", t(100), t(0)),
            Revocation::token(ISS, "j", t(50), t(0)),
            Revocation::token(ISS, "j", t(200), t(0)),
            Revocation::token("other", "j", t(200), t(0)),
            Revocation::token(ISS, "gone", t(1), t(0)),
            cut(10, 100),
            cut(10, 100),
            cut(5, 200),
            cut(20, 50),
            cut(5, 50),
        ];
        for r in &cases {
            let predicted = l.would_change(r, t(2));
            assert_eq!(predicted, l.apply(r, t(2)), "{r:?}");
        }
        assert!(!l.has_expired(t(50)));
        assert!(l.has_expired(t(201)));
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

        /// A store whose full reads fail.
        struct Down;
        impl RevocationStore for Down {
            fn add_revocation<'a>(&'a self, _: &'a Revocation) -> StoreFuture<'a, ()> {
                Box::pin(async { Err(StoreError::new(StoreErrorKind::Unavailable, "down")) })
            }
            fn revocations(&self, _: SystemTime) -> StoreFuture<'_, super::super::RevocationBatch> {
                Box::pin(async { Err(StoreError::new(StoreErrorKind::Unavailable, "down")) })
            }
            fn revocations_since(&self, _: u64) -> StoreFuture<'_, super::super::RevocationBatch> {
                Box::pin(async { Err(StoreError::new(StoreErrorKind::Unavailable, "down")) })
            }
            fn delete_revocations_expired_before(&self, _: SystemTime) -> StoreFuture<'_, u64> {
                Box::pin(async { Err(StoreError::new(StoreErrorKind::Unavailable, "down")) })
            }
        }

        let rec = Rec::default();
        let _recorder = metrics::set_default_local_recorder(&rec);
        let clock = tower_auth_core::clock::ManualClock::new(t(10));
        let build = |name: &str, store: crate::revocation::MemoryRevocationStore| {
            RevocationList::builder(store)
                .name(name)
                .clock(clock.clone())
                .poll_interval(Duration::from_secs(3600))
                .reload_interval(Duration::from_secs(3600))
                .build()
                .unwrap()
        };
        let store_a = crate::revocation::MemoryRevocationStore::new();
        // Written before the first load: old, not late.
        store_a
            .add_revocation(&Revocation::token(ISS, "old", t(900), t(1)))
            .await
            .unwrap();
        let a = build("a", store_a.clone());
        let b = build("b", crate::revocation::MemoryRevocationStore::new());
        a.load().await.unwrap();
        b.load().await.unwrap();
        // Revoked here: no lag.
        a.apply(&[Revocation::token(ISS, "a", t(100), t(10))], false);
        a.apply(&[Revocation::token(ISS, "a", t(100), t(10))], false);
        // From the store, written 3 s ago by another process.
        a.apply(&[Revocation::subject(ISS, "s", t(7), t(900), t(7))], true);
        // Missed by the feed or the poll, found by a reload 4 s after its writing.
        store_a
            .add_revocation(&Revocation::token(ISS, "late", t(900), t(6)))
            .await
            .unwrap();
        a.reload().await.unwrap();
        for i in 0..3 {
            b.revoke_token(ISS, &format!("b{i}"), None).await.unwrap();
        }
        assert_eq!(
            rec.value("tower_auth_jwt_revocations_applied_total{list=a,kind=jti}"),
            3
        );
        assert_eq!(
            rec.value("tower_auth_jwt_revocations_applied_total{list=a,kind=subject}"),
            1
        );
        // Each list has its own gauges.
        assert_eq!(rec.value("tower_auth_jwt_revoked_tokens{list=a}"), 3);
        assert_eq!(rec.value("tower_auth_jwt_revoked_subjects{list=a}"), 1);
        assert_eq!(rec.value("tower_auth_jwt_revoked_tokens{list=b}"), 3);
        assert_eq!(
            rec.samples("tower_auth_jwt_revocation_lag_seconds{list=a}"),
            [3.0, 4.0]
        );

        // Staleness: 0 after a sync, then growing until the next one.
        assert_eq!(
            rec.value("tower_auth_jwt_revocation_staleness_seconds{list=a}"),
            0
        );
        clock.advance(Duration::from_secs(7));
        a.report_staleness();
        assert_eq!(
            rec.value("tower_auth_jwt_revocation_staleness_seconds{list=a}"),
            7
        );
        assert_eq!(a.staleness(), Some(Duration::from_secs(7)));
        a.poll().await.unwrap();
        assert_eq!(
            rec.value("tower_auth_jwt_revocation_staleness_seconds{list=a}"),
            0
        );

        // A failed load is counted.
        let down = RevocationList::builder(Down).name("c").build().unwrap();
        down.load().await.unwrap_err();
        assert_eq!(
            rec.value("tower_auth_jwt_revocation_sync_failures_total{list=c,operation=load}"),
            1
        );
    }
}
