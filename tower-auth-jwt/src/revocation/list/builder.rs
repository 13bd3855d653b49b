//! [`RevocationListBuilder`]: the settings of a [`RevocationList`], checked at build.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tower_auth_core::clock::{Clock, SystemClock};

use super::{
    DEFAULT_FULL_READ_TIMEOUT, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_POLL_INTERVAL,
    DEFAULT_PURGE_INTERVAL, DEFAULT_RELOAD_INTERVAL, DEFAULT_REVOCATION_LEEWAY,
    DEFAULT_REVOCATION_STORE_TIMEOUT, FeedSlot, Inner, Lists, MAX_TOKEN_LIFETIME_LIMIT,
    RevocationList,
};
use crate::ConfigError;
use crate::revocation::RevocationStore;

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
                lists: Lists::default(),
                loaded: AtomicBool::new(false),
                last_synced: AtomicU64::new(0),
                synced_mono: AtomicU64::new(0),
                epoch: tokio::time::Instant::now(),
                reload_requested: AtomicU64::new(0),
                reload_covered: AtomicU64::new(0),
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
