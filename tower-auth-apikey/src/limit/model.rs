//! The limits a key record carries: [`Rate`], [`RateLimit`], [`Credits`], [`KeyLimits`], and
//! the [`LimitsUpdate`] that changes them.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

/// The longest period of a rate or a refill: 366 days.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 86_400);

/// `count` per `period`, written `100/1s` (the period in humantime: `1s`, `15m`, `30d`).
///
/// The count is at least 1; the period is a whole number of milliseconds from 1 ms to 366
/// days.
///
/// ```
/// use std::time::Duration;
/// use tower_auth_apikey::limit::Rate;
///
/// let rate: Rate = "100/1s".parse().unwrap();
/// assert_eq!((rate.count(), rate.period()), (100, Duration::from_secs(1)));
/// assert_eq!(rate.to_string(), "100/1s");
/// assert!("0/1s".parse::<Rate>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    period: Duration,
}

/// Why a limit value was refused; the message says what is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidLimit(&'static str);

impl fmt::Display for InvalidLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InvalidLimit {}

impl Rate {
    /// `count` per `period`; `None` when the count is zero, the period is not a whole number
    /// of milliseconds from 1 ms to 366 days, or the count exceeds one per microsecond.
    pub fn new(count: u32, period: Duration) -> Option<Self> {
        let whole_ms = period.subsec_nanos().is_multiple_of(1_000_000);
        (count > 0
            && whole_ms
            && period >= Duration::from_millis(1)
            && period <= MAX_PERIOD
            && period.as_micros() >= u128::from(count))
        .then_some(Self { count, period })
    }

    /// How many per period.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The period in milliseconds (how stores keep it).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn period_ms(&self) -> i64 {
        i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX)
    }

    /// From stored columns; `None` when they make no valid rate.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn from_parts(count: i64, period_ms: i64) -> Option<Self> {
        let count = u32::try_from(count).ok()?;
        let period = Duration::from_millis(u64::try_from(period_ms).ok()?);
        Self::new(count, period)
    }
}

impl FromStr for Rate {
    type Err = InvalidLimit;

    fn from_str(s: &str) -> Result<Self, InvalidLimit> {
        const EXPECTED: InvalidLimit =
            InvalidLimit("expected COUNT/PERIOD, such as 100/1s or 10000/30d");
        let (count, period) = s.split_once('/').ok_or(EXPECTED)?;
        let count: u32 = count.trim().parse().map_err(|_| EXPECTED)?;
        let period = humantime::parse_duration(period.trim()).map_err(|_| EXPECTED)?;
        Self::new(count, period).ok_or(InvalidLimit(
            "the count must be from 1 to one per microsecond, the period whole milliseconds from \
             1ms to 366days",
        ))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            humantime::format_duration(self.period)
        )
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A rate limit: on average [`rate`](Self::rate), with up to [`burst`](Self::burst) requests at
/// once (GCRA: after a burst, one request every `period / count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct RateLimit {
    rate: Rate,
    burst: u32,
}

impl RateLimit {
    /// `rate`, with a burst of `burst` (at least 1), or of the rate's count when `None`.
    pub fn new(rate: Rate, burst: Option<u32>) -> Result<Self, InvalidLimit> {
        let burst = burst.unwrap_or(rate.count);
        if burst == 0 {
            return Err(InvalidLimit("the burst must be at least 1"));
        }
        Ok(Self { rate, burst })
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// How many requests may come at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one request costs: `period / count`.
    pub fn emission_interval(&self) -> Duration {
        self.rate.period / self.rate.count
    }
}

/// Usage credits: each accepted request spends one; at zero, requests are refused (429) until
/// an administrator adds some or the [`refill`](Self::refill) period turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Credits {
    /// What was left at [`updated_at`](Self::updated_at), as the store last saw it (spending is
    /// written back in batches, so it lags; see [`remaining_at`](Self::remaining_at)).
    pub remaining: u64,
    /// `N/PERIOD`: the remaining credits are reset to `N` at each period, counted from the
    /// key's creation.
    pub refill: Option<Rate>,
    /// When `remaining` was last written.
    #[serde(serialize_with = "crate::record::rfc3339")]
    pub updated_at: SystemTime,
}

impl Credits {
    /// The index of the refill period holding `t`, counted from `created_at` (0 without a
    /// refill, or before creation).
    pub(crate) fn period_index(&self, created_at: SystemTime, t: SystemTime) -> u64 {
        match self.refill {
            None => 0,
            Some(refill) => {
                let since = t.duration_since(created_at).unwrap_or_default();
                let period = refill.period.as_millis().max(1);
                u64::try_from(since.as_millis() / period).unwrap_or(u64::MAX)
            }
        }
    }

    /// The credits left at `now` for a key created at `created_at`: `remaining`, or the refill
    /// count when a refill period began since `updated_at`.
    pub fn remaining_at(&self, created_at: SystemTime, now: SystemTime) -> u64 {
        match self.refill {
            Some(refill)
                if self.period_index(created_at, now)
                    > self.period_index(created_at, self.updated_at) =>
            {
                u64::from(refill.count)
            }
            _ => self.remaining,
        }
    }

    /// Records `spent` credits spent up to `at`: the remaining count at `at`, less `spent`,
    /// never below zero.
    pub(crate) fn spend(&mut self, created_at: SystemTime, spent: u64, at: SystemTime) {
        self.remaining = self.remaining_at(created_at, at).saturating_sub(spent);
        self.updated_at = self.updated_at.max(at);
    }

    /// When the refill period holding `now` ends, if there is a refill.
    pub(crate) fn next_refill(
        &self,
        created_at: SystemTime,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let refill = self.refill?;
        let next = self.period_index(created_at, now).checked_add(1)?;
        let offset = refill.period.checked_mul(u32::try_from(next).ok()?)?;
        created_at.checked_add(offset)
    }
}

/// The limits of a key: an optional [`RateLimit`] and optional [`Credits`]. No limits by
/// default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyLimits {
    /// The rate limit, if any.
    pub rate: Option<RateLimit>,
    /// The usage credits, if any.
    pub credits: Option<Credits>,
}

impl KeyLimits {
    /// Whether the key has neither a rate limit nor credits.
    pub fn is_unlimited(&self) -> bool {
        self.rate.is_none() && self.credits.is_none()
    }
}

/// A change to a key's limits, for [`ApiKeys::update_limits`](crate::ApiKeys::update_limits)
/// and [`KeyStore::update_limits`](crate::KeyStore::update_limits). What is not mentioned is
/// kept.
///
/// ```
/// use tower_auth_apikey::limit::{LimitsUpdate, RateLimit};
///
/// let update = LimitsUpdate::new()
///     .rate(RateLimit::new("100/1s".parse().unwrap(), Some(200)).unwrap())
///     .credits(10_000)
///     .no_refill();
/// # let _ = update;
/// ```
#[must_use]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    rate: Option<Option<RateLimit>>,
    credits: Option<Option<u64>>,
    refill: Option<Option<Rate>>,
}

impl LimitsUpdate {
    /// Changes nothing (yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the rate limit.
    pub fn rate(mut self, limit: RateLimit) -> Self {
        self.rate = Some(Some(limit));
        self
    }

    /// Removes the rate limit.
    pub fn no_rate(mut self) -> Self {
        self.rate = Some(None);
        self
    }

    /// Sets the remaining credits to `remaining` (from now on: spending before this is
    /// forgotten).
    pub fn credits(mut self, remaining: u64) -> Self {
        self.credits = Some(Some(remaining));
        self
    }

    /// Removes the credits (and their refill): the key is no longer limited by them.
    pub fn no_credits(mut self) -> Self {
        self.credits = Some(None);
        self
    }

    /// Sets the refill: the remaining credits are reset to its count at each of its periods,
    /// counted from the key's creation. A key without credits gets the refill's count.
    pub fn refill(mut self, refill: Rate) -> Self {
        self.refill = Some(Some(refill));
        self
    }

    /// Removes the refill; the remaining credits are kept.
    pub fn no_refill(mut self) -> Self {
        self.refill = Some(None);
        self
    }

    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.rate.is_none() && self.credits.is_none() && self.refill.is_none()
    }

    /// `limits` with this update applied at `at`, for a key created at `created_at`.
    pub fn apply(&self, limits: &KeyLimits, created_at: SystemTime, at: SystemTime) -> KeyLimits {
        let mut out = *limits;
        if let Some(rate) = self.rate {
            out.rate = rate;
        }
        // Spending up to `at` is settled first, so a refill change does not resurrect a
        // period already turned.
        let current = out.credits.map(|c| Credits {
            remaining: c.remaining_at(created_at, at),
            updated_at: at,
            ..c
        });
        out.credits = match (self.credits, self.refill) {
            (Some(None), _) => None,
            (Some(Some(n)), refill) => Some(Credits {
                remaining: n,
                refill: refill.unwrap_or(current.and_then(|c| c.refill)),
                updated_at: at,
            }),
            (None, Some(Some(refill))) => Some(Credits {
                remaining: current.map_or(u64::from(refill.count), |c| c.remaining),
                refill: Some(refill),
                updated_at: at,
            }),
            (None, Some(None)) => current.map(|c| Credits { refill: None, ..c }),
            (None, None) => out.credits,
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn rates_parse_and_print() {
        let r: Rate = "10000/30d".parse().unwrap();
        assert_eq!(r.count(), 10_000);
        assert_eq!(r.period(), Duration::from_secs(30 * 86_400));
        assert_eq!(r.to_string(), "10000/30days");
        assert_eq!("10000/30days".parse::<Rate>().unwrap(), r);
        for bad in [
            "", "100", "100/", "/1s", "x/1s", "0/1s", "-1/1s", "1/0s", "1/1ns", "1/400d",
            "2000/1ms",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn burst_defaults_to_the_count() {
        let rate: Rate = "100/1s".parse().unwrap();
        assert_eq!(RateLimit::new(rate, None).unwrap().burst(), 100);
        assert_eq!(RateLimit::new(rate, Some(200)).unwrap().burst(), 200);
        assert!(RateLimit::new(rate, Some(0)).is_err());
        assert_eq!(
            RateLimit::new(rate, None).unwrap().emission_interval(),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn refill_resets_credits_each_period_from_creation() {
        let created = UNIX_EPOCH + Duration::from_secs(1_000);
        let c = Credits {
            remaining: 3,
            refill: Some("10/1h".parse().unwrap()),
            updated_at: created + Duration::from_secs(3_599),
        };
        assert_eq!(
            c.remaining_at(created, created + Duration::from_secs(3_599)),
            3
        );
        assert_eq!(
            c.remaining_at(created, created + Duration::from_secs(3_600)),
            10
        );
        assert_eq!(
            c.next_refill(created, created + Duration::from_secs(10)),
            Some(created + Duration::from_secs(3_600))
        );
        let no_refill = Credits { refill: None, ..c };
        assert_eq!(
            no_refill.remaining_at(created, created + Duration::from_secs(9_999)),
            3
        );
        assert_eq!(no_refill.next_refill(created, created), None);
    }

    #[test]
    fn updates_keep_what_they_do_not_mention() {
        let created = UNIX_EPOCH;
        let at = UNIX_EPOCH + Duration::from_secs(10);
        let rate = RateLimit::new("5/1s".parse().unwrap(), None).unwrap();
        let refill: Rate = "100/1d".parse().unwrap();
        let limits =
            LimitsUpdate::new()
                .rate(rate)
                .refill(refill)
                .apply(&KeyLimits::default(), created, at);
        assert_eq!(limits.rate, Some(rate));
        assert_eq!(limits.credits.unwrap().remaining, 100);
        let limits = LimitsUpdate::new().credits(7).apply(&limits, created, at);
        assert_eq!(limits.credits.unwrap().remaining, 7);
        assert_eq!(limits.credits.unwrap().refill, Some(refill));
        let limits = LimitsUpdate::new().no_refill().apply(&limits, created, at);
        assert_eq!(limits.credits.unwrap().remaining, 7);
        assert_eq!(limits.credits.unwrap().refill, None);
        assert_eq!(limits.rate, Some(rate));
        let limits = LimitsUpdate::new()
            .no_rate()
            .no_credits()
            .apply(&limits, created, at);
        assert!(limits.is_unlimited());
        assert!(LimitsUpdate::new().is_empty());
    }
}
