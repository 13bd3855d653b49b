//! Enforcement: the limiter of each limited key, kept by key id apart from the key cache, and
//! the write-behind of spent credits.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tower_auth_core::clock::Clock;

use super::lease::{LeaseConfig, LeaseRequest};
use super::model::{Credits, KeyLimits, RateLimit};
use crate::{KeyRecord, KeyStore, StoreError, telemetry};

/// governor's view of our clock, so tests drive the limiter with an injected clock.
#[derive(Clone)]
struct ClockAdapter(Arc<dyn Clock>);

impl GovernorClock for ClockAdapter {
    type Instant = SystemTime;

    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, ClockAdapter, StateInformationMiddleware>;

/// How long refused requests wait before asking again for a lease that failed.
const LEASE_RETRY: Duration = Duration::from_millis(100);

/// Keys with credits spent and not written back kept at most; beyond that, spending of other
/// keys is counted in memory only until the next write (the limit itself is still enforced).
const MAX_PENDING: usize = 100_000;

/// The limiters of the keys that have limits, by key id. Entries outlive cache entries, so a
/// cache reload (TTL, invalidation) neither resets a rate nor loses credits not yet written
/// back.
pub(crate) struct Limiters {
    by_id: Mutex<HashMap<Arc<str>, Arc<KeyLimiter>, foldhash::fast::RandomState>>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn KeyStore>,
    interval: Duration,
    timeout: Duration,
    started: AtomicBool,
    /// Set when the store shares limits among instances: the leases taken from it.
    lease: Option<LeaseConfig>,
}

impl Limiters {
    pub(crate) fn new(
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        interval: Duration,
        timeout: Duration,
        lease: Option<LeaseConfig>,
    ) -> Self {
        let lease = lease.filter(|_| store.shares_limits());
        Self {
            lease,
            by_id: Mutex::new(HashMap::default()),
            clock,
            store,
            interval,
            timeout,
            started: AtomicBool::new(false),
        }
    }

    /// The limiter of `record`'s key, brought up to date with the record (called when a record
    /// is read from the store, never per request), or `None` for a key without limits.
    pub(crate) fn for_record(self: &Arc<Self>, record: &KeyRecord) -> Option<Arc<KeyLimiter>> {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if record.limits.is_unlimited() {
            by_id.remove(record.id.as_str());
            return None;
        }
        let now = self.clock.now();
        let limiter = by_id
            .entry(Arc::from(record.id.as_str()))
            .or_insert_with(|| {
                Arc::new(KeyLimiter {
                    id: Arc::from(record.id.as_str()),
                    owner: Arc::downgrade(self),
                    lease: self.lease,
                    leasing: AtomicBool::new(false),
                    state: Mutex::new(State::default()),
                })
            });
        limiter.sync(record, &self.clock, now);
        Some(Arc::clone(limiter))
    }

    /// Starts the write-behind task on the current runtime, once.
    fn start(self: &Arc<Self>) {
        if !self.started.load(Ordering::Relaxed) && !self.started.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(flush_loop(Arc::downgrade(self), self.interval));
                }
                Err(_) => self.started.store(false, Ordering::Release),
            }
        }
    }

    /// Writes the credits spent since the last write. On failure they stay counted for the
    /// next attempt.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let limiters: Vec<Arc<KeyLimiter>> = {
            let by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
            by_id.values().take(MAX_PENDING).cloned().collect()
        };
        if self.lease.is_some() {
            // Shared limits: spent credits go back with a lease, which also tops up the
            // rate tokens.
            let mut result = Ok(());
            for l in limiters {
                if l.lock().credits.as_ref().is_some_and(|c| c.unwritten > 0)
                    && let Err(e) = self.lease(&l).await
                {
                    result = Err(e);
                }
            }
            return result;
        }
        // (limiter, spent, refill period, time of the last spending)
        let mut taken = Vec::new();
        for l in limiters {
            let spent = {
                let state = l.lock();
                state
                    .credits
                    .as_ref()
                    .filter(|c| c.unwritten > 0)
                    .map(|c| (c.unwritten, c.period, c.last_spent_at))
            };
            if let Some((n, period, at)) = spent {
                taken.push((l, n, period, at));
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        let batch: Vec<(String, u64, SystemTime)> = taken
            .iter()
            .map(|(l, n, _, at)| (l.id.to_string(), *n, *at))
            .collect();
        telemetry::store_query("spend_credits");
        match tokio::time::timeout(self.timeout, self.store.spend_credits(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                telemetry::store_failure("spend_credits", "error", &e);
                return Err(e);
            }
            Err(_) => {
                let e = StoreError::timeout();
                telemetry::store_failure("spend_credits", "timeout", &e);
                return Err(e);
            }
        }
        // Written: what was spent since (in the same refill period) stays pending.
        for (l, n, period, _) in taken {
            if let Some(c) = &mut l.lock().credits
                && c.period == period
            {
                c.unwritten = c.unwritten.saturating_sub(n);
            }
        }
        Ok(())
    }
}

impl Limiters {
    /// Whether keys' limits are leased from the store (shared among instances).
    pub(crate) fn shared(&self) -> bool {
        self.lease.is_some()
    }

    /// Takes a lease for `l` from the store, unless one is being taken: tops its rate tokens
    /// up to the batch size and writes back the credits it spent. A failure marks the store
    /// down for `l` until a lease succeeds.
    pub(crate) async fn lease(&self, l: &KeyLimiter) -> Result<(), StoreError> {
        let Some(config) = self.lease else {
            return Ok(());
        };
        if l.leasing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Cleared however this ends, a lookup dropped mid-lease included.
        let _leasing = Leasing(&l.leasing);
        let now = self.clock.now();
        let (request, period) = {
            let state = l.lock();
            let wanted = state.rate.as_ref().map_or(0, |_| {
                u64::try_from(i64::try_from(config.batch).unwrap_or(i64::MAX) - state.lease.tokens)
                    .unwrap_or_default()
            });
            let (spent, at, period) = state
                .credits
                .as_ref()
                .map_or((0, now, 0), |c| (c.unwritten, c.last_spent_at, c.period));
            let request = LeaseRequest {
                rate_tokens: wanted,
                credits_spent: spent,
                credits_spent_at: at,
            };
            (request, period)
        };
        telemetry::store_query("lease_limits");
        let result = match tokio::time::timeout(
            config.timeout,
            self.store.lease_limits(&l.id, &request, now),
        )
        .await
        {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(e)) => {
                telemetry::store_failure("lease_limits", "error", &e);
                Err(e)
            }
            Err(_) => {
                let e = StoreError::timeout();
                telemetry::store_failure("lease_limits", "timeout", &e);
                Err(e)
            }
        };
        let mut state = l.lock();
        let state = &mut *state;
        match result {
            Ok(lease) => {
                state.lease.down = false;
                state.lease.leased = true;
                state.lease.retry_at = None;
                if let Some(lease) = lease {
                    let granted = i64::try_from(lease.rate_tokens).unwrap_or(i64::MAX);
                    state.lease.tokens = state.lease.tokens.saturating_add(granted);
                    if let Some((limit, _)) = &state.rate
                        && state.lease.tokens <= 0
                    {
                        // None to give: the next one comes after an emission interval.
                        state.lease.retry_at = now.checked_add(limit.emission_interval());
                    }
                    if let Some(c) = &mut state.credits
                        && c.period == period
                    {
                        c.unwritten = c.unwritten.saturating_sub(request.credits_spent);
                        if let Some(left) = lease.credits_remaining {
                            c.remaining = left.saturating_sub(c.unwritten);
                        }
                    }
                    state.lease.allowance = config.batch;
                }
                Ok(())
            }
            Err(e) => {
                state.lease.down = true;
                state.lease.retry_at = now.checked_add(LEASE_RETRY);
                Err(e)
            }
        }
    }
}

/// Clears a key's "lease being taken" flag when dropped.
struct Leasing<'a>(&'a AtomicBool);

impl Drop for Leasing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl fmt::Debug for Limiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.by_id.lock().map_or(0, |m| m.len());
        f.debug_struct("Limiters")
            .field("keys", &keys)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

async fn flush_loop(this: Weak<Limiters>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        // Only a weak reference between ticks: the task ends with the authenticator.
        let Some(this) = this.upgrade() else { return };
        // Failures are logged and counted by `flush`, and retried on the next tick.
        let _ = this.flush().await;
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Rate,
    Credits,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Credits => "credits",
        }
    }
}

/// Where a key stands against its limits, after a decision: what the `RateLimit-Policy` and
/// `RateLimit` headers say. See [`KeyUsage::status`](super::KeyUsage::status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitStatus {
    /// The rate limit and where the key stands against it.
    pub rate: Option<RateStatus>,
    /// The credits and where the key stands.
    pub credits: Option<CreditsStatus>,
}

/// Where a key stands against its rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateStatus {
    /// The limit.
    pub limit: RateLimit,
    /// How many requests could be made now (up to the burst).
    pub remaining: u32,
    /// Seconds until the full burst is available again (rounded up).
    pub reset_secs: u64,
}

/// Where a key stands against its credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditsStatus {
    /// The credits as the key's record has them (for the refill).
    pub credits: Credits,
    /// Credits left.
    pub remaining: u64,
    /// Seconds until the next refill (rounded up), if there is one.
    pub reset_secs: Option<u64>,
}

/// The decision on one request.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Allowed, and charged to every limit (the status after it is the limiter's last).
    Allowed,
    /// Refused, and charged to none.
    Refused(Refusal),
    /// Limits shared through the store, and this instance's lease of them is spent while the
    /// store is down (or before a new lease came): refused (503), charged to none.
    Unavailable,
}

/// A refusal: why, when waiting helps, and the status to report.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) reason: Reason,
    pub(crate) retry_after_secs: Option<u64>,
    pub(crate) status: LimitStatus,
}

/// The limiter of one key.
pub(crate) struct KeyLimiter {
    id: Arc<str>,
    /// Keeps the registry (and its write-behind task) findable from the request path.
    owner: Weak<Limiters>,
    /// Set when the store shares limits among instances.
    lease: Option<LeaseConfig>,
    /// A lease is being taken.
    leasing: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    created_at: Option<SystemTime>,
    rate: Option<(RateLimit, Gcra)>,
    credits: Option<CreditState>,
    /// The status after the last decision, for the headers of allowed responses.
    last: LimitStatus,
    /// What this instance holds of the key's shared limits (unused on a store that does not
    /// share them).
    lease: LeaseState,
}

#[derive(Default)]
struct LeaseState {
    /// Rate tokens leased and not yet spent; -1 when one was spent ahead of a lease.
    tokens: i64,
    /// Credits this instance may still spend before its next lease writes them back.
    allowance: u64,
    /// The last lease failed.
    down: bool,
    /// A lease has succeeded.
    leased: bool,
    /// Refused requests ask for no lease before this time: the last lease failed, or had no
    /// token to give.
    retry_at: Option<SystemTime>,
}

struct CreditState {
    /// The record's credits (for the refill).
    config: Credits,
    /// Left now, as this process counts them.
    remaining: u64,
    /// The refill period `remaining` counts for.
    period: u64,
    /// Spent here and not yet written to the store.
    unwritten: u64,
    last_spent_at: SystemTime,
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl KeyLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a few plain assignments: a panic cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the limits of a record just read from the store. A rate limit that did not change
    /// keeps its state; credits are the store's, less those spent here and not yet written.
    fn sync(&self, record: &KeyRecord, clock: &Arc<dyn Clock>, now: SystemTime) {
        let mut state = self.lock();
        let KeyLimits { rate, credits } = record.limits;
        state.created_at = Some(record.created_at);
        state.rate = match (state.rate.take(), rate) {
            (Some((old, gcra)), Some(new)) if old == new => Some((old, gcra)),
            (_, Some(new)) => {
                // The store starts a changed rate afresh too: ask it again at once.
                state.lease.retry_at = None;
                let quota =
                    Quota::with_period(new.emission_interval()).map(|q| q.allow_burst(burst(new)));
                quota.map(|q| {
                    (
                        new,
                        RateLimiter::direct_with_clock(q, ClockAdapter(Arc::clone(clock)))
                            .with_middleware::<StateInformationMiddleware>(),
                    )
                })
            }
            (_, None) => None,
        };
        state.credits = credits.map(|config| {
            let period = config.period_index(record.created_at, now);
            let stored = config.remaining_at(record.created_at, now);
            let (unwritten, last_spent_at) = match &state.credits {
                Some(c) if c.period == period => (c.unwritten, c.last_spent_at),
                _ => (0, now),
            };
            CreditState {
                config,
                remaining: stored.saturating_sub(unwritten),
                period,
                unwritten,
                last_spent_at,
            }
        });
        state.last = LimitStatus::default();
    }

    /// Decides a request at `now`: allowed (charged to both limits) or refused (charged to
    /// neither). No allocation.
    pub(crate) fn check(self: &Arc<Self>, now: SystemTime) -> Decision {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut renew = false;
        let created_at = state.created_at.unwrap_or(now);
        // Credits first, without spending: a refusal by the rate must not cost one.
        let mut credits_status = None;
        if let Some(c) = &mut state.credits {
            let period = c.config.period_index(created_at, now);
            if period > c.period {
                // A refill: spending of the past period no longer matters.
                c.period = period;
                c.remaining = c
                    .config
                    .refill
                    .map_or(c.remaining, |r| u64::from(r.count()));
                c.unwritten = 0;
            }
            let reset_secs = c
                .config
                .next_refill(created_at, now)
                .map(|at| ceil_secs(at.duration_since(now).unwrap_or_default()));
            credits_status = Some(CreditsStatus {
                credits: c.config,
                remaining: c.remaining,
                reset_secs,
            });
            if c.remaining == 0 {
                let status = LimitStatus {
                    rate: state.last.rate,
                    credits: credits_status,
                };
                state.last = status;
                return Decision::Refused(Refusal {
                    reason: Reason::Credits,
                    retry_after_secs: reset_secs,
                    status,
                });
            }
        }
        if let Some(config) = self.lease {
            let rate_spent = state.rate.is_some() && state.lease.tokens <= 0;
            let credits_spent = state.credits.is_some() && state.lease.allowance == 0;
            if rate_spent || credits_spent {
                // Refused requests ask for a lease, but not again before it may help.
                renew = state.lease.retry_at.is_none_or(|at| now >= at);
                let open = state.lease.down && config.fail_open;
                if !open && (state.lease.down || credits_spent || !state.lease.leased) {
                    drop(guard);
                    if renew {
                        self.renew();
                    }
                    return Decision::Unavailable;
                }
                if !open
                    && state.lease.tokens < 0
                    && let Some((limit, _)) = &state.rate
                {
                    // One token already spent ahead of a lease: the store had none to give.
                    let refusal = rate_refusal(*limit, limit.emission_interval(), credits_status);
                    state.last = refusal.status;
                    drop(guard);
                    if renew {
                        self.renew();
                    }
                    return Decision::Refused(refusal);
                }
            }
        }
        let mut rate_status = None;
        if let Some((limit, gcra)) = &state.rate {
            let interval = limit.emission_interval();
            match gcra.check() {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    rate_status = Some(RateStatus {
                        limit: *limit,
                        remaining,
                        reset_secs: ceil_secs(interval * limit.burst().saturating_sub(remaining)),
                    });
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(now);
                    let refusal = rate_refusal(*limit, wait, credits_status);
                    state.last = refusal.status;
                    return Decision::Refused(refusal);
                }
            }
        }
        if let Some(c) = &mut state.credits {
            c.remaining -= 1;
            c.unwritten += 1;
            c.last_spent_at = now;
            if let Some(s) = &mut credits_status {
                s.remaining = c.remaining;
            }
            if let Some(owner) = self.owner.upgrade() {
                owner.start();
            }
        }
        if let Some(config) = self.lease {
            let half = i64::try_from(config.batch / 2).unwrap_or(i64::MAX);
            if state.rate.is_some() {
                state.lease.tokens = (state.lease.tokens - 1).max(-1);
                renew |= state.lease.tokens < half;
            }
            if state.credits.is_some() {
                state.lease.allowance = state.lease.allowance.saturating_sub(1);
                renew |= state.lease.allowance < config.batch - config.batch / 2;
            }
        }
        let status = LimitStatus {
            rate: rate_status,
            credits: credits_status,
        };
        state.last = status;
        drop(guard);
        if renew {
            self.renew();
        }
        Decision::Allowed
    }

    /// Whether a lease of shared limits has succeeded.
    pub(crate) fn leased(&self) -> bool {
        self.lock().lease.leased
    }

    /// Takes a new lease in the background, unless one is being taken.
    fn renew(self: &Arc<Self>) {
        if self.leasing.load(Ordering::Acquire) {
            return;
        }
        let (Some(owner), Ok(handle)) =
            (self.owner.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let this = Arc::clone(self);
        handle.spawn(async move {
            // Failures are counted by `lease` and mark the store down for this key.
            let _ = owner.lease(&this).await;
        });
    }

    /// The status after the last decision.
    pub(crate) fn status(&self) -> LimitStatus {
        self.lock().last
    }
}

/// A refusal by the rate limit, when the next request may come after `wait`.
fn rate_refusal(limit: RateLimit, wait: Duration, credits: Option<CreditsStatus>) -> Refusal {
    Refusal {
        reason: Reason::Rate,
        retry_after_secs: Some(ceil_secs(wait).max(1)),
        status: LimitStatus {
            rate: Some(RateStatus {
                limit,
                remaining: 0,
                reset_secs: ceil_secs(limit.emission_interval() * limit.burst()),
            }),
            credits,
        },
    }
}

fn burst(limit: RateLimit) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(limit.burst()).unwrap_or(std::num::NonZeroU32::MIN)
}

impl fmt::Debug for KeyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLimiter")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::limit::model::Rate;
    use std::time::UNIX_EPOCH;
    use tower_auth_core::clock::ManualClock;

    fn record(limits: KeyLimits) -> KeyRecord {
        let mut r = crate::store::testing::stored("key_l", 1).record;
        r.limits = limits;
        r
    }

    #[tokio::test]
    async fn deciding_allocates_nothing() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = ManualClock::new(t0);
        let limiters = Arc::new(Limiters::new(
            Arc::new(MemoryStore::new()),
            Arc::new(clock.clone()),
            Duration::from_secs(10),
            Duration::from_secs(5),
            None,
        ));
        let limiter = limiters
            .for_record(&record(KeyLimits {
                rate: Some(RateLimit::new("1000/1s".parse().unwrap(), Some(2)).unwrap()),
                credits: Some(Credits {
                    remaining: 1_000,
                    refill: Some("1000/1d".parse::<Rate>().unwrap()),
                    updated_at: t0,
                }),
            }))
            .unwrap();
        // The first spending starts the write-behind task.
        assert!(matches!(limiter.check(t0), Decision::Allowed));
        let info = allocation_counter::measure(|| {
            assert!(matches!(limiter.check(t0), Decision::Allowed));
        });
        assert_eq!(info.count_total, 0, "allowed: {info:?}");
        let info = allocation_counter::measure(|| {
            assert!(matches!(limiter.check(t0), Decision::Refused(_)));
        });
        assert_eq!(info.count_total, 0, "refused: {info:?}");
        let info = allocation_counter::measure(|| {
            limiter.status();
        });
        assert_eq!(info.count_total, 0, "status: {info:?}");
    }

    #[test]
    fn keys_without_limits_have_no_limiter_and_removing_limits_drops_it() {
        let limiters = Arc::new(Limiters::new(
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(UNIX_EPOCH)),
            Duration::from_secs(10),
            Duration::from_secs(5),
            None,
        ));
        assert!(limiters.for_record(&record(KeyLimits::default())).is_none());
        let limited = KeyLimits {
            rate: Some(RateLimit::new("1/1s".parse().unwrap(), None).unwrap()),
            credits: None,
        };
        assert!(limiters.for_record(&record(limited)).is_some());
        assert_eq!(limiters.by_id.lock().unwrap().len(), 1);
        assert!(limiters.for_record(&record(KeyLimits::default())).is_none());
        assert_eq!(limiters.by_id.lock().unwrap().len(), 0);
    }
}
