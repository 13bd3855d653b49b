//! The remote key cache shared by [`JwksUrl`](super::JwksUrl) and
//! [`Discovery`](super::Discovery): the last good key set behind a `RwLock<Arc<_>>` (read on
//! the request path, written once per fetch, never held across one), a tokio mutex that makes
//! fetches single-flight, refresh ahead of expiry in a spawned task, the unknown-`kid` budget and
//! bounded stale-if-error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use http::{HeaderMap, Uri};
use serde_json::Value;
use tower_auth_core::client::HttpClient;

use super::discovery::{Metadata, discover};
use crate::key::parse_published_jwks;
use crate::{KeyLookup, KeySet, KeySourceError, VerifyingKey, telemetry};

/// Unknown `kid`s remembered at most (each for one cooldown); beyond that the global refetch
/// budget alone applies, so memory stays bounded whatever tokens arrive.
pub(crate) const MAX_REMEMBERED_KIDS: usize = 1024;
/// Longer `kid`s are not remembered (the refetch budget still applies to them).
const MAX_REMEMBERED_KID_LEN: usize = 256;

/// Timing policy of a remote source (validated by the builders).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub(crate) default_refresh: Duration,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) retry_after_failure: Duration,
}

impl Policy {
    /// The refresh interval for a response with this `Cache-Control: max-age`.
    pub(crate) fn interval(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_refresh)
            .clamp(self.min_refresh, self.max_refresh)
    }
}

/// Where the JWKS comes from.
pub(crate) enum Endpoint {
    Jwks(Uri),
    Discovery {
        issuer: String,
        metadata: RwLock<Option<Arc<Metadata>>>,
    },
}

/// One immutable snapshot, replaced as a whole after every fetch attempt.
struct State {
    keys: Option<Arc<KeySet>>,
    /// The usable keys as published, to reuse the `Arc` of unchanged keys at the next refresh.
    published: Vec<(Value, Arc<VerifyingKey>)>,
    /// Completed fetch attempts, successful or not.
    attempts: u64,
    /// When to start a background refresh (75% of the interval).
    refresh_at: Instant,
    /// End of the refresh interval of the last good set.
    fresh_until: Instant,
    /// After this the set is no longer served (`fresh_until` + max staleness).
    stale_until: Instant,
    /// Start of the last failed attempt, while the last attempt failed.
    failed_at: Option<Instant>,
    error: Option<Arc<str>>,
}

impl State {
    fn cold(now: Instant) -> Self {
        Self {
            keys: None,
            published: Vec::new(),
            attempts: 0,
            refresh_at: now,
            fresh_until: now,
            stale_until: now,
            failed_at: None,
            error: None,
        }
    }

    fn error(&self, description: &'static str) -> KeySourceError {
        let e = KeySourceError::new(description);
        match &self.error {
            Some(msg) => e.with_source(msg.to_string()),
            None => e,
        }
    }

    /// What a caller that waited for a fetch gets.
    fn answer(&self, now: Instant) -> Result<Arc<KeySet>, KeySourceError> {
        match &self.keys {
            Some(keys) if now < self.stale_until => Ok(Arc::clone(keys)),
            Some(_) => Err(self.error("jwks too stale")),
            None => Err(self.error("jwks endpoint unavailable")),
        }
    }
}

struct Unknown {
    /// Start of the last fetch of any kind: an unknown `kid` refetches only when this is older
    /// than the cooldown.
    last_fetch: Option<Instant>,
    kids: HashMap<Box<str>, Instant>,
}

pub(crate) struct Remote {
    /// The JWKS URL or issuer, for logs and metric labels.
    pub(crate) label: Arc<str>,
    client: HttpClient,
    pub(crate) endpoint: Endpoint,
    policy: Policy,
    state: RwLock<Arc<State>>,
    flight: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    timer_started: AtomicBool,
    unknown: Mutex<Unknown>,
}

struct Fetched {
    published: Vec<(Value, Arc<VerifyingKey>)>,
    keys: KeySet,
    max_age: Option<Duration>,
}

impl Remote {
    pub(crate) fn new(
        label: String,
        client: HttpClient,
        endpoint: Endpoint,
        policy: Policy,
    ) -> Self {
        Self {
            label: label.into(),
            client,
            endpoint,
            policy,
            state: RwLock::new(Arc::new(State::cold(Instant::now()))),
            flight: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            timer_started: AtomicBool::new(false),
            unknown: Mutex::new(Unknown {
                last_fetch: None,
                kids: HashMap::new(),
            }),
        }
    }

    fn current(&self) -> Arc<State> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current key set, if one was loaded (stale or not).
    pub(crate) fn keys(&self) -> Option<Arc<KeySet>> {
        self.current().keys.clone()
    }

    fn backing_off(&self, st: &State, now: Instant) -> bool {
        st.failed_at
            .is_some_and(|t| now < t + self.policy.retry_after_failure)
    }

    /// The request path. Loaded and fresh with a known `kid`: one read lock, one `Arc` clone,
    /// one `Instant::now()`, no allocation.
    pub(crate) fn lookup(self: &Arc<Self>, kid: Option<&str>) -> KeyLookup {
        let st = self.current();
        let now = Instant::now();
        let Some(keys) = &st.keys else {
            // Cold: nothing to serve. After a failure, answer 503 until the retry interval has
            // passed instead of sending every request to a failing endpoint.
            if self.backing_off(&st, now) {
                return KeyLookup::Unavailable(st.error("jwks endpoint unavailable"));
            }
            return KeyLookup::Pending(Box::pin(Arc::clone(self).load(st.attempts)));
        };
        // One comparison on the hot path in the common case (refresh_at comes first); the
        // staleness bound is checked on its own in case a slow fetch put it earlier.
        if now >= st.refresh_at || now >= st.stale_until {
            if now >= st.stale_until {
                telemetry::jwks_staleness(&self.label, now.duration_since(st.fresh_until));
                // Past the staleness bound (an endpoint down for too long, or a source idle for
                // longer than its interval): fetch now, or 503 while backing off.
                if self.backing_off(&st, now) {
                    return KeyLookup::Unavailable(st.error("jwks too stale"));
                }
                return KeyLookup::Pending(Box::pin(Arc::clone(self).load(st.attempts)));
            }
            if now > st.fresh_until {
                telemetry::jwks_staleness(&self.label, now.duration_since(st.fresh_until));
            }
            self.refresh_in_background(&st, now);
        }
        if let Some(kid) = kid
            && keys.get(kid).is_none()
        {
            return self.unknown_kid(kid, &st, keys, now);
        }
        KeyLookup::Ready(Arc::clone(keys))
    }

    fn refresh_in_background(self: &Arc<Self>, st: &State, now: Instant) {
        if self.backing_off(st, now) || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to refresh on: the set is served until its staleness bound, then the
            // request path fetches itself.
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        let seen = st.attempts;
        runtime.spawn(async move {
            let _ = Arc::clone(&this).load(seen).await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    fn unknown_kid(
        self: &Arc<Self>,
        kid: &str,
        st: &State,
        keys: &Arc<KeySet>,
        now: Instant,
    ) -> KeyLookup {
        let cooldown = self.policy.unknown_kid_cooldown;
        {
            let mut unknown = self.unknown.lock().unwrap_or_else(PoisonError::into_inner);
            if unknown.kids.get(kid).is_some_and(|&t| now < t + cooldown) {
                return KeyLookup::Ready(Arc::clone(keys));
            }
            if unknown.last_fetch.is_some_and(|t| now < t + cooldown) {
                // The set is younger than the cooldown: the kid is unknown, and remembered.
                remember(&mut unknown, kid, now, cooldown);
                return KeyLookup::Ready(Arc::clone(keys));
            }
            // This caller spends the budget: nobody else refetches for a cooldown.
            unknown.last_fetch = Some(now);
        }
        if self.backing_off(st, now) {
            return KeyLookup::Ready(Arc::clone(keys));
        }
        telemetry::jwks_unknown_kid_refetch(&self.label);
        let this = Arc::clone(self);
        let kid: Box<str> = kid.into();
        let seen = st.attempts;
        KeyLookup::Pending(Box::pin(async move {
            let keys = Arc::clone(&this).load(seen).await?;
            if keys.get(&kid).is_none() {
                let mut unknown = this.unknown.lock().unwrap_or_else(PoisonError::into_inner);
                remember(
                    &mut unknown,
                    &kid,
                    Instant::now(),
                    this.policy.unknown_kid_cooldown,
                );
            }
            Ok(keys)
        }))
    }

    /// Single-flight load: waits for the fetch in progress, if any; when an attempt completed
    /// since the caller looked (`seen`), answers with its outcome, else fetches.
    pub(crate) async fn load(self: Arc<Self>, seen: u64) -> Result<Arc<KeySet>, KeySourceError> {
        let _flight = self.flight.lock().await;
        let st = self.current();
        if st.attempts != seen {
            return st.answer(Instant::now());
        }
        let started = Instant::now();
        self.unknown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_fetch = Some(started);
        let outcome = self.fetch(&st.published).await;
        let next = match outcome {
            Ok(fetched) => {
                let interval = self.policy.interval(fetched.max_age);
                let fresh_until = started + interval;
                telemetry::jwks_loaded(&self.label, fetched.keys.len(), interval);
                State {
                    keys: Some(Arc::new(fetched.keys)),
                    published: fetched.published,
                    attempts: st.attempts + 1,
                    // From the end of the fetch, so a slow endpoint cannot make refreshes
                    // follow each other back to back.
                    refresh_at: Instant::now() + interval.mul_f64(0.75),
                    fresh_until,
                    stale_until: fresh_until + self.policy.max_staleness,
                    failed_at: None,
                    error: None,
                }
            }
            Err(message) => {
                telemetry::jwks_fetch_failed(&self.label, &message, st.keys.is_some());
                if let Endpoint::Discovery { metadata, .. } = &self.endpoint {
                    // The JWKS may have moved: discover again at the next attempt.
                    *metadata.write().unwrap_or_else(PoisonError::into_inner) = None;
                }
                State {
                    keys: st.keys.clone(),
                    published: st.published.clone(),
                    attempts: st.attempts + 1,
                    refresh_at: st.refresh_at,
                    fresh_until: st.fresh_until,
                    stale_until: st.stale_until,
                    failed_at: Some(started),
                    error: Some(message.into()),
                }
            }
        };
        let next = Arc::new(next);
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
        self.start_timer();
        next.answer(Instant::now())
    }

    /// After the first fetch, a task refreshes the keys at 75% of each interval (and retries
    /// after failures), so keys stay current even when every request is a verified-token cache
    /// hit. It holds only a weak reference and ends with the source (or its runtime); the
    /// request path still starts a refresh itself when it finds the set due.
    fn start_timer(self: &Arc<Self>) {
        if self.timer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.timer_started.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(refresh_timer(Arc::downgrade(self)));
    }

    /// When the next background attempt is due for this state.
    fn due(&self, st: &State) -> Instant {
        match st.failed_at {
            Some(t) => t + self.policy.retry_after_failure,
            None => st.refresh_at,
        }
    }

    async fn fetch(&self, previous: &[(Value, Arc<VerifyingKey>)]) -> Result<Fetched, String> {
        let url = match &self.endpoint {
            Endpoint::Jwks(url) => url.clone(),
            Endpoint::Discovery { issuer, metadata } => {
                let cached = metadata
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let meta = match cached {
                    Some(m) => m,
                    None => {
                        let m = Arc::new(
                            discover(&self.client, issuer)
                                .await
                                .map_err(|e| format!("discovery: {e}"))?,
                        );
                        *metadata.write().unwrap_or_else(PoisonError::into_inner) =
                            Some(Arc::clone(&m));
                        m
                    }
                };
                let jwks_uri = meta
                    .jwks_uri()
                    .ok_or_else(|| "discovery: the metadata has no jwks_uri".to_owned())?;
                self.client
                    .check_url(jwks_uri)
                    .map_err(|e| format!("discovery: jwks_uri: {e}"))?
            }
        };
        telemetry::jwks_fetch(&self.label);
        let res = self
            .client
            .get_json(&url)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !res.status.is_success() {
            return Err(format!("GET {url}: status {}", res.status));
        }
        let (parsed, skipped) =
            parse_published_jwks(&res.body).map_err(|e| format!("GET {url}: {e}"))?;
        for e in &skipped {
            telemetry::jwks_key_skipped(&self.label, e);
        }
        if parsed.is_empty() {
            return Err(format!("GET {url}: no usable key in the set"));
        }
        let published: Vec<_> = parsed
            .into_iter()
            .map(|(raw, key)| {
                // Same JWK as before: the same `Arc`, so its cached tokens stay cached.
                let shared = previous
                    .iter()
                    .find(|(old, _)| *old == raw)
                    .map_or_else(|| Arc::new(key), |(_, k)| Arc::clone(k));
                (raw, shared)
            })
            .collect();
        let keys = KeySet::from_shared(published.iter().map(|(_, k)| Arc::clone(k)))
            .map_err(|e| format!("GET {url}: {e}"))?;
        Ok(Fetched {
            published,
            keys,
            max_age: max_age(&res.headers),
        })
    }
}

async fn refresh_timer(remote: Weak<Remote>) {
    loop {
        let due = {
            let Some(this) = remote.upgrade() else { return };
            this.due(&this.current())
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let Some(this) = remote.upgrade() else { return };
        let st = this.current();
        if Instant::now() >= this.due(&st) {
            // Single flight: if a request started this refresh already, this waits for it and
            // does not fetch again.
            let _ = Arc::clone(&this).load(st.attempts).await;
        }
    }
}

fn remember(unknown: &mut Unknown, kid: &str, now: Instant, cooldown: Duration) {
    if kid.len() > MAX_REMEMBERED_KID_LEN {
        return;
    }
    if unknown.kids.len() >= MAX_REMEMBERED_KIDS {
        unknown.kids.retain(|_, t| now < *t + cooldown);
        if unknown.kids.len() >= MAX_REMEMBERED_KIDS {
            return;
        }
    }
    unknown.kids.insert(kid.into(), now);
}

/// `Cache-Control: max-age` of a response (RFC 9111 section 5.2.2.1); `no-store` and
/// `no-cache` count as zero (the configured minimum then applies). `None` when absent or
/// unreadable.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive
                .split_once('=')
                .map_or((directive, None), |(n, a)| (n.trim(), Some(a.trim())));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(arg) = arg
                && let Ok(secs) = arg.trim_matches('"').parse::<u64>()
            {
                found = Some(found.map_or(secs, |f: u64| f.min(secs)));
            }
        }
    }
    found.map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::CACHE_CONTROL, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cache_control_max_age() {
        let secs = |v: &[&str]| max_age(&headers(v)).map(|d| d.as_secs());
        assert_eq!(secs(&[]), None);
        assert_eq!(secs(&["public, max-age=300"]), Some(300));
        assert_eq!(secs(&["Max-Age = 60 , must-revalidate"]), Some(60));
        assert_eq!(secs(&["max-age=\"120\""]), Some(120));
        assert_eq!(secs(&["max-age=600", "max-age=60"]), Some(60));
        assert_eq!(secs(&["max-age=600, no-cache"]), Some(0));
        assert_eq!(secs(&["no-store"]), Some(0));
        assert_eq!(secs(&["max-age=soon"]), None);
        assert_eq!(secs(&["s-maxage=100"]), None);
    }

    #[test]
    fn interval_is_clamped() {
        let p = Policy {
            default_refresh: Duration::from_secs(600),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            max_staleness: Duration::from_secs(3600),
            retry_after_failure: Duration::from_secs(5),
        };
        assert_eq!(p.interval(None), Duration::from_secs(600));
        assert_eq!(p.interval(Some(Duration::ZERO)), Duration::from_secs(60));
        assert_eq!(
            p.interval(Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            p.interval(Some(Duration::from_secs(86_400))),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn remembered_kids_are_bounded() {
        let mut u = Unknown {
            last_fetch: None,
            kids: HashMap::new(),
        };
        let now = Instant::now();
        let cooldown = Duration::from_secs(30);
        for i in 0..(3 * MAX_REMEMBERED_KIDS) {
            remember(&mut u, &format!("kid-{i}"), now, cooldown);
        }
        assert_eq!(u.kids.len(), MAX_REMEMBERED_KIDS);
        remember(
            &mut u,
            &"k".repeat(MAX_REMEMBERED_KID_LEN + 1),
            now,
            cooldown,
        );
        assert_eq!(u.kids.len(), MAX_REMEMBERED_KIDS);
        // Expired entries make room again.
        remember(&mut u, "fresh", now + cooldown * 2, cooldown);
        assert_eq!(u.kids.len(), 1);
    }
}
