//! tracing events (target `tower_auth::apikey`) and `tower_auth_apikey_*` counters, compiled away
//! when their features are off. Nothing here ever receives key material: only outcomes, public
//! key ids and store errors.

#![allow(unused_variables)]

#[cfg(feature = "tracing")]
pub(crate) const TARGET: &str = "tower_auth::apikey";

/// `metrics::counter!($name, "outcome" => ...)` with one arm, and so one `static` key, per known
/// outcome: counting them allocates nothing. Any other outcome (none is passed today) is still
/// counted under its own name, with a key built for the call.
#[cfg(feature = "metrics")]
macro_rules! outcome_counter {
    ($name:literal, $outcome:expr, [$($known:literal),+ $(,)?]) => {
        match $outcome {
            $($known => metrics::counter!($name, "outcome" => $known),)+
            other => metrics::counter!($name, "outcome" => other),
        }
    };
}

/// One authentication attempt and how it ended: `authenticated`, `malformed`, `bad_checksum`,
/// `other_environment`, `unknown`, `revoked`, `expired` or `unavailable`.
pub(crate) fn outcome(outcome: &'static str, key_id: Option<&str>) {
    #[cfg(feature = "tracing")]
    {
        if outcome == "authenticated" {
            tracing::trace!(target: TARGET, outcome, key_id, "api key accepted");
        } else {
            tracing::debug!(target: TARGET, outcome, key_id, "api key rejected");
        }
    }
    #[cfg(feature = "metrics")]
    outcome_counter!(
        "tower_auth_apikey_requests_total",
        outcome,
        [
            "authenticated",
            "malformed",
            "bad_checksum",
            "other_environment",
            "unknown",
            "revoked",
            "expired",
            "unavailable",
        ]
    )
    .increment(1);
}

/// A request refused by a key's limits (`reason` = `rate` or `credits`).
pub(crate) fn limited(reason: &'static str, key_id: &str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, reason, key_id, "api key over its limits");
    #[cfg(feature = "metrics")]
    match reason {
        "rate" => metrics::counter!("tower_auth_apikey_limited_total", "reason" => "rate"),
        _ => metrics::counter!("tower_auth_apikey_limited_total", "reason" => "credits"),
    }
    .increment(1);
}

/// A store call (`find_by_hash`, `record_last_used`) is about to be made.
pub(crate) fn store_query(op: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_store_queries_total", "op" => op).increment(1);
}

/// A store call failed (`reason` = `error` or `timeout`).
pub(crate) fn store_failure(op: &'static str, reason: &'static str, error: &crate::StoreError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, op, reason, error = %error, "api key store call failed");
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_auth_apikey_store_failures_total",
        "op" => op,
        "reason" => reason
    )
    .increment(1);
}

/// A lookup failed and was answered from the stale-if-error copy.
pub(crate) fn stale_served(key_id: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, key_id, "api key store unavailable: serving a stale record");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_stale_served_total").increment(1);
}

/// A cache invalidation pushed by the store (`key` or `all`).
pub(crate) fn invalidation(kind: &'static str) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, kind, "api key cache invalidated by the store");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_invalidations_total", "kind" => kind).increment(1);
}

/// The filter of known keys was (re)built with `keys` hashes.
pub(crate) fn filter_loaded(keys: usize) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, keys, "api key filter loaded");
    #[cfg(not(feature = "tracing"))]
    let _ = keys;
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_filter_loads_total").increment(1);
}

/// The store's invalidation feed is (again) listening.
#[cfg(feature = "postgres")]
pub(crate) fn listener_connected() {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, "api key invalidation listener connected");
}

/// The store's invalidation feed lost its connection or failed to connect; it retries.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn listener_failed(error: &crate::StoreError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, error = %error, "api key invalidation listener failed, reconnecting");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_listener_failures_total").increment(1);
}

/// Describes the metrics this crate emits, and tower-auth-core's, to the installed recorder,
/// with their help texts (Prometheus `# HELP` lines).
///
/// Call it once after installing the recorder: a recorder installed later does not see the
/// descriptions. Key cache lookups are counted by tower-auth-core's
/// `tower_auth_cache_requests_total{cache="api_key"}` (and `cache="api_key_stale"` for the
/// stale-if-error copy).
///
/// | metric | labels | what |
/// |---|---|---|
/// | `tower_auth_apikey_requests_total` | `outcome` | authentication attempts by outcome |
/// | `tower_auth_apikey_store_queries_total` | `op` | calls to the key store |
/// | `tower_auth_apikey_store_failures_total` | `op`, `reason` | failed or timed-out store calls |
/// | `tower_auth_apikey_stale_served_total` | | lookups answered from the stale-if-error copy |
/// | `tower_auth_apikey_invalidations_total` | `kind` | cache invalidations pushed by the store |
/// | `tower_auth_apikey_listener_failures_total` | | losses of the store's invalidation feed |
/// | `tower_auth_apikey_filter_loads_total` | | rebuilds of the filter of known keys |
/// | `tower_auth_apikey_limited_total` | `reason` | requests refused by a key's limits (`rate`, `credits`) |
#[cfg(feature = "metrics")]
pub fn describe_metrics() {
    tower_auth_core::describe_metrics();
    metrics::describe_counter!(
        "tower_auth_apikey_requests_total",
        "API key authentication attempts, by outcome: authenticated, malformed, bad_checksum, \
         other_environment, unknown, revoked, expired or unavailable"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_store_queries_total",
        "Calls to the API key store, by operation"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_store_failures_total",
        "API key store calls that failed, by operation and reason (error or timeout)"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_stale_served_total",
        "API key lookups answered from the stale-if-error copy while the store was unavailable"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_invalidations_total",
        "API key cache invalidations pushed by the store, by kind (key, created or all)"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_listener_failures_total",
        "Connection losses or failures of the key store's invalidation feed"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_filter_loads_total",
        "Rebuilds of the in-memory filter of known API key hashes from the store"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_limited_total",
        "Requests refused (429) by an API key's limits, by reason: rate or credits"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_feed_behind_total",
        "Times the SQLite change feed fell behind the pruned change log and cleared the key cache"
    );
    metrics::describe_counter!(
        "tower_auth_apikey_feed_unreadable_total",
        "Unreadable SQLite change-log entries, each clearing the key cache"
    );
}

/// The SQLite change feed fell behind the pruned range of the change log (or found it
/// reset): the cache is cleared.
#[cfg(feature = "sqlite")]
pub(crate) fn feed_behind() {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: TARGET,
        "api key change log pruned past this reader's position: clearing the cache"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_feed_behind_total").increment(1);
}

/// The SQLite change feed read entries it could not decode: the cache is cleared.
#[cfg(feature = "sqlite")]
pub(crate) fn feed_unreadable(error: &crate::StoreError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, error = %error, "unreadable api key change log entry: clearing the cache");
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_apikey_feed_unreadable_total").increment(1);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use crate::key::FormatError;

    /// Every outcome the authenticator reports (the call sites in `authenticator.rs`).
    const OUTCOMES: [&str; 8] = [
        "authenticated",
        "malformed",
        "bad_checksum",
        "other_environment",
        "unknown",
        "revoked",
        "expired",
        "unavailable",
    ];

    /// The counters `f` moved, as `name{label=value,...}` => count.
    fn counters(f: impl FnOnce()) -> BTreeMap<String, u64> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = value else {
                    panic!("{} is not a counter", key.name())
                };
                (format!("{}{{{}}}", key.name(), labels.join(",")), n)
            })
            .collect()
    }

    #[test]
    fn the_outcome_is_the_label() {
        for outcome in OUTCOMES {
            assert_eq!(
                counters(|| super::outcome(outcome, Some("key_1"))),
                BTreeMap::from([(
                    format!("tower_auth_apikey_requests_total{{outcome={outcome}}}"),
                    1
                )])
            );
        }
        // An outcome without an arm of its own is still counted under its own name.
        assert_eq!(
            counters(|| super::outcome("not_listed", None)),
            BTreeMap::from([(
                "tower_auth_apikey_requests_total{outcome=not_listed}".to_owned(),
                1
            )])
        );
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

    /// Each known outcome has a `static` key: counting it allocates nothing.
    #[test]
    fn counting_a_request_allocates_nothing() {
        let format_errors = [
            FormatError::Malformed,
            FormatError::OtherEnvironment,
            FormatError::Checksum,
        ];
        let outcomes = OUTCOMES
            .into_iter()
            .chain(format_errors.map(FormatError::as_str));
        quietly(|| {
            for outcome in outcomes {
                // The first call may set up thread-locals and tracing call sites.
                super::outcome(outcome, None);
                let info = allocation_counter::measure(|| super::outcome(outcome, Some("key_1")));
                assert_eq!(info.count_total, 0, "{outcome}: {info:?}");
            }
            // An outcome without an arm builds its key per call: the measurement is live.
            let info = allocation_counter::measure(|| super::outcome("not_listed", None));
            assert!(info.count_total > 0, "{info:?}");
        });
    }

    /// `describe_metrics` gives a help text to every metric the crate's code emits.
    #[test]
    fn every_emitted_metric_is_described() {
        let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
        tower_auth_core::testing::assert_metrics_described(
            crate::describe_metrics,
            &tower_auth_core::testing::metric_names_in(src),
            &["tower_auth_apikey_requests_total"],
            &[
                "tower_auth_requests_total",
                "tower_auth_cache_requests_total",
            ],
        );
    }
}
