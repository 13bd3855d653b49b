//! tracing events and metrics counters of the JWT scheme, compiled away when their features are
//! off. Events go to the `tower_auth::jwt` target and never contain a token.
//!
//! Counters:
//! - `tower_auth_jwt_verifications_total{outcome}`: `valid`, `invalid`, `unavailable`, for every
//!   token checked (cache hits included);
//! - `tower_auth_jwt_cache_requests_total{outcome}`: `hit`, `miss` of the verified-token cache.
//!
//! Revocation lists, labelled `list` (the list's name, `default` unless set):
//! - `tower_auth_jwt_revocations_applied_total{list, kind}`: `jti`, `subject`: entries that
//!   changed a list (revoked here, notified, polled or reloaded);
//! - `tower_auth_jwt_revocation_lag_seconds{list}` (histogram): from an entry's writing (its
//!   `created_at`, the writer's clock) to its application here, for entries from the store
//!   (notified, polled, or added by a reload after the first load);
//! - `tower_auth_jwt_revoked_tokens{list}`, `tower_auth_jwt_revoked_subjects{list}` (gauges):
//!   list sizes;
//! - `tower_auth_jwt_revocation_staleness_seconds{list}` (gauge): since the last successful
//!   synchronization with the store;
//! - `tower_auth_jwt_revocation_sync_failures_total{list, operation}`: `load`, `poll`,
//!   `reload`, `purge`, `listen`.
//!
//! Revocation feeds (PostgreSQL):
//! - `tower_auth_jwt_revocation_feed_failures_total{reason}`: `connect`, `lost`,
//!   `heartbeat`, `read`;
//! - `tower_auth_jwt_revocation_notifications_ignored_total`: notifications that are not a
//!   sequence number (forged or foreign), ignored.
//!
//! SQL stores: `tower_auth_jwt_revocation_rows_skipped_total`: revocation rows that could not
//! be read (logged at `warn` with their `seq`), skipped.
//!
//! Remote key sources (feature `remote`), labelled `source` = the JWKS URL or the issuer:
//! - `tower_auth_jwks_fetches_total`: JWKS requests sent;
//! - `tower_auth_jwks_fetch_failures_total`: failed attempts (transport, status, body,
//!   discovery);
//! - `tower_auth_jwks_unknown_kid_refetches_total`: refetches forced by an unknown `kid`;
//! - `tower_auth_jwks_keys_skipped_total`: published keys skipped as unusable;
//! - `tower_auth_jwks_keys_loaded` (gauge): usable keys in the current set;
//! - `tower_auth_jwks_staleness_seconds` (gauge): how far past its refresh interval the served
//!   set is (0 after a successful fetch).

#![allow(unused_variables)]

#[cfg(feature = "revocation")]
use std::sync::Arc;
#[cfg(feature = "revocation")]
use std::time::Duration;

use tower_auth_core::AuthError;

#[cfg(feature = "tracing")]
const TARGET: &str = "tower_auth::jwt";

pub(crate) fn verified(cached: bool) {
    #[cfg(feature = "tracing")]
    tracing::trace!(target: TARGET, cached, "token verified");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_verifications_total", "outcome" => "valid").increment(1);
}

pub(crate) fn rejected(error: &AuthError) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: TARGET,
        outcome = error.kind().as_str(),
        reason = error.description(),
        "token rejected"
    );
    // One literal per arm, so each key is a `static`: nothing is allocated per token.
    #[cfg(feature = "metrics")]
    match error.kind() {
        tower_auth_core::AuthErrorKind::Unavailable => {
            metrics::counter!("tower_auth_jwt_verifications_total", "outcome" => "unavailable")
        }
        _ => metrics::counter!("tower_auth_jwt_verifications_total", "outcome" => "invalid"),
    }
    .increment(1);
}

pub(crate) fn cache(hit: bool) {
    #[cfg(feature = "metrics")]
    if hit {
        metrics::counter!("tower_auth_jwt_cache_requests_total", "outcome" => "hit")
    } else {
        metrics::counter!("tower_auth_jwt_cache_requests_total", "outcome" => "miss")
    }
    .increment(1);
}

/// A revocation entry changed a list (`lag`: since it was written, when it came from the
/// store rather than from this list).
#[cfg(feature = "revocation")]
pub(crate) fn revocation_applied(
    list: &Arc<str>,
    kind: crate::revocation::RevocationKind,
    lag: Option<Duration>,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(
            "tower_auth_jwt_revocations_applied_total",
            "list" => Arc::clone(list),
            "kind" => kind.as_str()
        )
        .increment(1);
        if let Some(lag) = lag {
            metrics::histogram!("tower_auth_jwt_revocation_lag_seconds", "list" => Arc::clone(list))
                .record(lag.as_secs_f64());
        }
    }
}

/// The sizes of a list after a change or a purge.
#[cfg(feature = "revocation")]
pub(crate) fn revocation_sizes(list: &Arc<str>, tokens: usize, subjects: usize) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("tower_auth_jwt_revoked_tokens", "list" => Arc::clone(list))
            .set(tokens as f64);
        metrics::gauge!("tower_auth_jwt_revoked_subjects", "list" => Arc::clone(list))
            .set(subjects as f64);
    }
}

/// How long ago a list last synchronized with its store.
#[cfg(feature = "revocation")]
pub(crate) fn revocation_staleness(list: &Arc<str>, staleness: Duration) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("tower_auth_jwt_revocation_staleness_seconds", "list" => Arc::clone(list))
        .set(staleness.as_secs_f64());
}

/// A step of a revocation list failed (`operation`: `load`, `poll`, `reload`, `purge`,
/// `listen`); background steps are retried. The error is a store error: fixed message and
/// the database's.
#[cfg(feature = "revocation")]
pub(crate) fn revocation_sync_failed(
    list: &Arc<str>,
    operation: &'static str,
    error: &crate::store::StoreError,
) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: TARGET,
        list = &**list,
        operation,
        error = %error,
        "revocation list sync failed"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_auth_jwt_revocation_sync_failures_total",
        "list" => Arc::clone(list),
        "operation" => operation
    )
    .increment(1);
}

/// The `LISTEN` connection of a revocation feed failed, was lost or missed its heartbeat
/// (`connect`, `lost`, `heartbeat`: it reconnects and the list reloads), could not send a
/// heartbeat (`heartbeat_send`: the connection is kept, the next one retried) or read
/// notified rows (`read`: the list reloads); the SQLite change feed's poll failed (`poll`:
/// retried) or it fell behind the log (`behind`: the list reloads).
#[cfg(all(feature = "revocation", any(feature = "sqlite", feature = "postgres")))]
pub(crate) fn revocation_feed_failed(reason: &'static str, error: &crate::store::StoreError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, reason, error = %error, "revocation feed failed");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_revocation_feed_failures_total", "reason" => reason)
        .increment(1);
}

/// A revocation feed missed (or could not send) `misses` heartbeats in a row: nothing proves
/// the list current, and revocations made elsewhere may be going unseen.
#[cfg(all(feature = "revocation", feature = "postgres"))]
pub(crate) fn revocation_heartbeats_missed(misses: u32) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: TARGET,
        misses,
        "revocation feed heartbeats missed in a row: revocations made elsewhere may be unseen"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = misses;
}

/// Notified revocation rows were not found, twice (forged, purged, or not visible yet);
/// `reload`: whether a reload was asked for (at most every 30 s).
#[cfg(all(feature = "revocation", feature = "postgres"))]
pub(crate) fn revocation_notified_rows_missing(reload: bool) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, reload, "notified revocation rows not found");
    #[cfg(not(feature = "tracing"))]
    let _ = reload;
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_revocation_notified_rows_missing_total").increment(1);
}

/// A revocation row that cannot be read was skipped (`seq` when readable).
#[cfg(all(feature = "revocation", any(feature = "sqlite", feature = "postgres")))]
pub(crate) fn revocation_row_skipped(seq: Option<u64>, error: &crate::store::StoreError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, seq, error = %error, "unreadable revocation row skipped");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_revocation_rows_skipped_total").increment(1);
}

/// A notification on the revocation channel that is not ours to read (not a sequence
/// number): ignored. Its payload is not logged (anyone who can connect can send one).
#[cfg(all(feature = "revocation", feature = "postgres"))]
pub(crate) fn revocation_notification_ignored() {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, "unreadable revocation notification ignored");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_jwt_revocation_notifications_ignored_total").increment(1);
}

#[cfg(feature = "remote")]
pub(crate) use self::remote::*;

#[cfg(feature = "remote")]
mod remote {
    #![allow(unused_variables)]

    use std::sync::Arc;
    use std::time::Duration;

    #[cfg(feature = "tracing")]
    use super::TARGET;

    pub(crate) fn jwks_fetch(source: &Arc<str>) {
        #[cfg(feature = "tracing")]
        tracing::debug!(target: TARGET, source = &**source, "fetching jwks");
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_auth_jwks_fetches_total", "source" => Arc::clone(source))
            .increment(1);
    }

    pub(crate) fn jwks_fetch_failed(source: &Arc<str>, error: &str, serving_stale: bool) {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: TARGET,
            source = &**source,
            error,
            serving_stale,
            "jwks fetch failed"
        );
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_auth_jwks_fetch_failures_total", "source" => Arc::clone(source))
            .increment(1);
    }

    pub(crate) fn jwks_loaded(source: &Arc<str>, keys: usize, refresh: Duration) {
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: TARGET,
            source = &**source,
            keys,
            refresh_secs = refresh.as_secs_f64(),
            "jwks loaded"
        );
        #[cfg(feature = "metrics")]
        {
            metrics::gauge!("tower_auth_jwks_keys_loaded", "source" => Arc::clone(source))
                .set(keys as f64);
            metrics::gauge!("tower_auth_jwks_staleness_seconds", "source" => Arc::clone(source))
                .set(0.0);
        }
    }

    pub(crate) fn jwks_key_skipped(source: &Arc<str>, error: &crate::KeyError) {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: TARGET,
            source = &**source,
            kid = error.kid(),
            reason = error.reason(),
            "published key skipped"
        );
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_auth_jwks_keys_skipped_total", "source" => Arc::clone(source))
            .increment(1);
    }

    pub(crate) fn jwks_unknown_kid_refetch(source: &Arc<str>) {
        #[cfg(feature = "tracing")]
        tracing::debug!(target: TARGET, source = &**source, "unknown kid: refetching jwks");
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "tower_auth_jwks_unknown_kid_refetches_total",
            "source" => Arc::clone(source)
        )
        .increment(1);
    }

    pub(crate) fn jwks_staleness(source: &Arc<str>, past: Duration) {
        #[cfg(feature = "metrics")]
        metrics::gauge!("tower_auth_jwks_staleness_seconds", "source" => Arc::clone(source))
            .set(past.as_secs_f64());
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use tower_auth_core::CacheConfig;

    use crate::{JwtAuthenticator, TrustedIssuer};

    #[derive(Default)]
    struct Counts(Mutex<HashMap<String, Arc<Value>>>);

    #[derive(Default)]
    struct Value(AtomicU64);

    impl metrics::CounterFn for Value {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::SeqCst);
        }
        fn absolute(&self, value: u64) {
            self.0.fetch_max(value, Ordering::SeqCst);
        }
    }

    impl Counts {
        fn get(&self, key: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(key)
                .map_or(0, |v| v.0.load(Ordering::SeqCst))
        }
    }

    impl Recorder for Counts {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(Arc::clone(self.0.lock().unwrap().entry(name).or_default()))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn now_ready<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("static keys answer at once"),
        }
    }

    fn token(secret: &[u8], exp: u64) -> String {
        let claims = serde_json::json!({"iss": "i", "aud": "a", "sub": "s", "exp": exp});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn counters_move() {
        let secret = [9u8; 32];
        let auth = JwtAuthenticator::builder()
            .issuer(TrustedIssuer::new("i").audience("a").hmac_secret(secret))
            .verified_token_cache(CacheConfig::default())
            .build()
            .unwrap();
        let far = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let good = token(&secret, far);
        let expired = token(&secret, 1_000);
        let counts = Counts::default();
        metrics::with_local_recorder(&counts, || {
            now_ready(auth.verify(&good)).unwrap(); // miss, valid
            now_ready(auth.verify(&good)).unwrap(); // hit, valid
            now_ready(auth.verify(&expired)).unwrap_err(); // miss, invalid
            now_ready(auth.verify("x")).unwrap_err(); // no signature segment: not looked up
        });
        // A revocation check that cannot answer: unavailable, fresh or cached.
        struct Unanswerable;
        impl crate::RevocationCheck for Unanswerable {
            fn check(&self, _: &crate::TokenIdentity) -> crate::RevocationStatus {
                crate::RevocationStatus::Unavailable
            }
        }
        let stale = JwtAuthenticator::builder()
            .issuer(TrustedIssuer::new("i").audience("a").hmac_secret(secret))
            .verified_token_cache(CacheConfig::default())
            .revocation(Unanswerable)
            .build()
            .unwrap();
        metrics::with_local_recorder(&counts, || {
            for _ in 0..2 {
                let e = now_ready(stale.verify(&good)).unwrap_err();
                assert_eq!(e.kind(), tower_auth_core::AuthErrorKind::Unavailable);
            }
        });
        let v = |k: &str| counts.get(k);
        assert_eq!(
            v("tower_auth_jwt_verifications_total{outcome=unavailable}"),
            2
        );
        assert_eq!(v("tower_auth_jwt_verifications_total{outcome=valid}"), 2);
        assert_eq!(v("tower_auth_jwt_verifications_total{outcome=invalid}"), 2);
        assert_eq!(v("tower_auth_jwt_cache_requests_total{outcome=hit}"), 1);
        // Two misses of the first authenticator, two of the second (never cached).
        assert_eq!(v("tower_auth_jwt_cache_requests_total{outcome=miss}"), 4);
    }

    /// Runs `f` with the no-op metrics recorder and no tracing subscriber on this thread: another
    /// test of this binary may install a global subscriber, whose events would allocate.
    fn quietly(f: impl FnOnce()) {
        let f = || metrics::with_local_recorder(&metrics::NoopRecorder, f);
        #[cfg(feature = "tracing")]
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), f);
        #[cfg(not(feature = "tracing"))]
        f();
    }

    /// The counters of the verification path build no key per call.
    #[test]
    fn counting_a_token_allocates_nothing() {
        let invalid = tower_auth_core::AuthError::invalid_token("bad");
        let unavailable = tower_auth_core::AuthError::unavailable("down");
        let count_all = || {
            super::verified(false);
            super::verified(true);
            super::rejected(&invalid);
            super::rejected(&unavailable);
            super::cache(true);
            super::cache(false);
        };
        quietly(|| {
            // First calls may set up thread-locals and tracing call sites.
            count_all();
            let info = allocation_counter::measure(count_all);
            assert_eq!(info.count_total, 0, "{info:?}");
            // A key built at run time allocates: the measurement is live.
            let outcome = std::hint::black_box("hit");
            let info = allocation_counter::measure(|| {
                metrics::counter!("tower_auth_jwt_cache_requests_total", "outcome" => outcome)
                    .increment(1);
            });
            assert!(info.count_total > 0, "{info:?}");
        });
    }
}
