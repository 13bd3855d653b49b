//! [`RevocationList`]: the `jti` blocklist and subject cut-offs in memory, kept current from a
//! [`RevocationStore`].
//!
//! The entries are in `entries` (two concurrent maps, see the [module docs](super)); the
//! background tasks that keep them current are in `tasks`; the settings in `builder`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tower_auth_core::clock::Clock;

use self::entries::Lists;
use super::{
    Revocation, RevocationCheck, RevocationFeed, RevocationStatus, RevocationStore, TokenIdentity,
};
use crate::store::{StoreError, StoreErrorKind, StoreFuture};
use crate::{MAX_LEEWAY, telemetry};

mod builder;
mod entries;
mod tasks;
#[cfg(test)]
mod tests;

pub use self::builder::RevocationListBuilder;

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
    /// The entries: requests read them without a lock, one writer at a time changes them
    /// in place.
    lists: Lists,
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

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("name", &self.inner.name)
            .field("loaded", &self.is_loaded())
            .field("revoked_tokens", &self.revoked_tokens())
            .field("revoked_subjects", &self.revoked_subjects())
            .field("staleness", &self.staleness())
            .finish_non_exhaustive()
    }
}

impl RevocationCheck for RevocationList {
    /// [`Revoked`](RevocationStatus::Revoked) when the token's `jti` is blocklisted, or its
    /// subject is cut off at a time after its `iat` (or it has no `iat`).
    /// [`Unavailable`](RevocationStatus::Unavailable) before the first
    /// [`load`](RevocationList::load), and when the list has not synchronized for longer
    /// than its [`max_staleness`](RevocationListBuilder::max_staleness). At most two hash
    /// lookups (and a clock read with `max_staleness`); no lock, no I/O.
    fn check(&self, token: &TokenIdentity) -> RevocationStatus {
        let i = &self.inner;
        if !i.loaded.load(Ordering::Acquire) {
            return RevocationStatus::Unavailable;
        }
        if i.lists.is_revoked(token) {
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
    /// [`revoke_token`](Self::revoke_token)): applied here, then written to the store in one
    /// call ([`RevocationStore::add_revocations`]: one transaction on SQLite and
    /// PostgreSQL), under the [`full_read_timeout`](RevocationListBuilder::full_read_timeout).
    /// Revoking `n` tokens one by one costs `n` store transactions; use this for mass
    /// revocations.
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

    /// Applies entries in place, each visible to requests as soon as it is applied; with
    /// `lag`, records each changing entry's lag from its writing.
    fn apply(&self, entries: &[Revocation], lag: bool) {
        if entries.is_empty() {
            return;
        }
        let now = self.inner.clock.now();
        let mut writer = self.inner.lists.write();
        let changed: Vec<&Revocation> = entries.iter().filter(|e| writer.apply(e, now)).collect();
        let sizes = writer.sizes();
        drop(writer);
        // Metrics outside the writer lock.
        if changed.is_empty() {
            return;
        }
        for entry in changed {
            let lag = lag.then(|| now.duration_since(entry.created_at).unwrap_or_default());
            telemetry::revocation_applied(&self.inner.name, entry.kind, lag);
        }
        telemetry::revocation_sizes(&self.inner.name, sizes.0, sizes.1);
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
        let (purged, (tokens, subjects)) = {
            let mut writer = i.lists.write();
            (writer.purge(now), writer.sizes())
        };
        if purged > 0 {
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
        self.inner.lists.token_count()
    }

    /// The number of subject cut-offs held.
    pub fn revoked_subjects(&self) -> usize {
        self.inner.lists.subject_count()
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
            tasks.push(
                handle
                    .spawn(tasks::feed_loop(weak.clone(), feed))
                    .abort_handle(),
            );
            tasks.push(
                handle
                    .spawn(tasks::reload_loop(weak.clone(), wanted, i.reload_interval))
                    .abort_handle(),
            );
        } else {
            tasks.push(
                handle
                    .spawn(tasks::poll_loop(
                        weak.clone(),
                        i.poll_interval,
                        i.reload_interval,
                    ))
                    .abort_handle(),
            );
        }
        tasks.push(
            handle
                .spawn(tasks::purge_loop(weak.clone(), i.purge_interval))
                .abort_handle(),
        );
        #[cfg(feature = "metrics")]
        tasks.push(handle.spawn(tasks::staleness_loop(weak)).abort_handle());
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

fn saturating_add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2))
}
