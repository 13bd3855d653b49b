//! The `tower_auth_apikey_*` counters (feature `metrics`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use ::metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use http::StatusCode;

use super::*;
use crate::NewKey;

#[derive(Default)]
struct Counts(Mutex<HashMap<String, Arc<Value>>>);

#[derive(Default)]
struct Value(AtomicU64);

impl ::metrics::CounterFn for Value {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::SeqCst);
    }
}

impl Counts {
    /// `name{label=value,...}` with labels in emission order.
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
        let value = Arc::clone(self.0.lock().unwrap().entry(name).or_default());
        Counter::from_arc(value)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn counters_move() {
    let counts = Counts::default();
    ::metrics::with_local_recorder(&counts, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = TestStore::new();
                let auth = builder(&store).build().unwrap();
                let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
                let (svc, _) = stack(auth.clone());
                for _ in 0..3 {
                    assert_eq!(
                        status(&svc, bearer(key.expose_secret())).await,
                        StatusCode::OK
                    );
                }
                assert_eq!(
                    status(&svc, with_header("x-api-key", "nope")).await,
                    StatusCode::UNAUTHORIZED
                );
                store.fail();
                let other = auth.admin().create(NewKey::new("b")).await.unwrap().key;
                assert_eq!(
                    status(&svc, bearer(other.expose_secret())).await,
                    StatusCode::SERVICE_UNAVAILABLE
                );
            });
    });
    let c = |k: &str| counts.get(k);
    assert_eq!(
        c("tower_auth_apikey_requests_total{outcome=authenticated}"),
        3
    );
    assert_eq!(c("tower_auth_apikey_requests_total{outcome=malformed}"), 1);
    assert_eq!(
        c("tower_auth_apikey_requests_total{outcome=unavailable}"),
        1
    );
    // The key cache is counted once, by tower-auth-core's cache, under its name.
    assert_eq!(
        c("tower_auth_cache_requests_total{cache=api_key,outcome=miss}"),
        2
    );
    assert_eq!(
        c("tower_auth_cache_requests_total{cache=api_key,outcome=hit}"),
        2
    );
    let names: Vec<String> = counts.0.lock().unwrap().keys().cloned().collect();
    assert!(
        names
            .iter()
            .all(|k| !k.starts_with("tower_auth_apikey_cache")),
        "{names:?}"
    );
    assert_eq!(
        c("tower_auth_apikey_store_queries_total{op=find_by_hash}"),
        2
    );
    assert_eq!(
        c("tower_auth_apikey_store_failures_total{op=find_by_hash,reason=error}"),
        1
    );
    // Core's counters are on too.
    assert_eq!(
        c("tower_auth_requests_total{scheme=api_key,outcome=authenticated}"),
        3
    );
}

/// Another process revokes a key and the change log is pruned past this reader before it
/// polls (as when it could not poll for longer than the retention): the reader cannot tell
/// which keys changed, so it clears its cache, and says so.
#[cfg(feature = "sqlite")]
#[test]
fn a_feed_behind_the_pruned_change_log_clears_the_cache_and_counts_it() {
    let counts = Counts::default();
    ::metrics::with_local_recorder(&counts, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("keys.db").display());
                let store =
                    TestStore::wrap_listening(crate::SqliteStore::connect(&url).await.unwrap());
                let auth = builder(&store).build().unwrap();
                let other =
                    crate::ApiKeys::builder(crate::SqliteStore::connect(&url).await.unwrap())
                        .prefix("sk_test")
                        .build()
                        .unwrap();
                let created = other.create(NewKey::new("a")).await.unwrap();
                let key = created.key.expose_secret();
                let (svc, _) = stack(auth.clone());
                assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);

                let db = sqlx::SqlitePool::connect(&url).await.unwrap();
                let mut tx = db.begin().await.unwrap();
                sqlx::query("UPDATE tower_auth_api_keys SET revoked_at = 1 WHERE id = ?")
                    .bind(&created.record.id)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(
                    "INSERT INTO tower_auth_api_key_changes (kind, key_id, key_hash, created_at) \
                     VALUES ('revoked', ?, ?, 0)",
                )
                .bind(&created.record.id)
                .bind(
                    &crate::key::KeyHasher::new(None)
                        .unwrap()
                        .hash(key)
                        .as_bytes()[..],
                )
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query("DELETE FROM tower_auth_api_key_changes")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();

                let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                while status(&svc, bearer(key)).await != StatusCode::UNAUTHORIZED {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "still accepted after 1 s"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
    });
    assert_eq!(counts.get("tower_auth_apikey_feed_behind_total{}"), 1);
    assert_eq!(
        counts.get("tower_auth_apikey_invalidations_total{kind=all}"),
        1
    );
}

#[test]
fn refusals_by_limits_are_counted_by_reason_without_the_key() {
    let counts = Counts::default();
    ::metrics::with_local_recorder(&counts, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = TestStore::new();
                let auth = builder(&store).clock(clock()).build().unwrap();
                let rate = crate::limit::RateLimit::new("1/1h".parse().unwrap(), None).unwrap();
                let admin = auth.admin();
                let limited = admin
                    .create(NewKey::new("a").rate_limit(rate))
                    .await
                    .unwrap()
                    .key;
                let spent = admin.create(NewKey::new("b").credits(0)).await.unwrap().key;
                let (svc, _) = stack(auth.clone());
                assert_eq!(
                    status(&svc, bearer(limited.expose_secret())).await,
                    StatusCode::OK
                );
                for _ in 0..2 {
                    assert_eq!(
                        status(&svc, bearer(limited.expose_secret())).await,
                        StatusCode::TOO_MANY_REQUESTS
                    );
                }
                assert_eq!(
                    status(&svc, bearer(spent.expose_secret())).await,
                    StatusCode::TOO_MANY_REQUESTS
                );
            });
    });
    assert_eq!(
        counts.get("tower_auth_apikey_limited_total{reason=rate}"),
        2
    );
    assert_eq!(
        counts.get("tower_auth_apikey_limited_total{reason=credits}"),
        1
    );
    let names: Vec<String> = counts.0.lock().unwrap().keys().cloned().collect();
    assert!(names.iter().all(|k| !k.contains("=key_")), "{names:?}");
}
