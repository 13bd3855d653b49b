#![allow(clippy::unwrap_used)]

use std::time::UNIX_EPOCH;

use super::*;
use crate::revocation::MemoryRevocationStore;

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
    let lists = Lists::default();
    let l = &mut lists.write();
    assert!(l.apply(&Revocation::token(ISS, "j", t(100), t(0)), t(0)));
    // The same again changes nothing; a later expiry extends it; an earlier one does not
    // shorten it.
    assert!(!l.apply(&Revocation::token(ISS, "j", t(100), t(1)), t(1)));
    assert!(l.apply(&Revocation::token(ISS, "j", t(200), t(1)), t(1)));
    assert!(!l.apply(&Revocation::token(ISS, "j", t(50), t(1)), t(1)));
    assert_eq!(l.sizes(), (1, 0));
    assert_eq!(l.purge(t(150)), 0);
    assert!(lists.is_revoked(&id(Some("j"), None, None)));
    // The same jti of another issuer is another entry.
    assert!(l.apply(&Revocation::token("other", "j", t(100), t(1)), t(1)));
    assert_eq!(l.sizes(), (2, 0));

    let cut = |before, until| Revocation::subject(ISS, "alice", t(before), t(until), t(0));
    assert!(l.apply(&cut(10, 1000), t(0)));
    assert!(lists.is_revoked(&id(None, Some("alice"), Some(9))));
    assert!(!lists.is_revoked(&id(None, Some("alice"), Some(10))));
    // A later cut-off wins; an earlier one neither loosens it nor shortens its life.
    assert!(l.apply(&cut(20, 900), t(0)));
    assert!(!l.apply(&cut(5, 100), t(0)));
    assert!(lists.is_revoked(&id(None, Some("alice"), Some(19))));
    assert!(!lists.is_revoked(&id(None, Some("alice"), Some(20))));
    assert_eq!(l.sizes(), (2, 1));
    // Fail closed without `iat`; untouched without a subject or with another one.
    assert!(lists.is_revoked(&id(None, Some("alice"), None)));
    assert!(!lists.is_revoked(&id(None, None, None)));
    assert!(!lists.is_revoked(&id(Some("k"), Some("bob"), None)));

    // Expired entries are not applied, and are purged with their issuers.
    assert!(!l.apply(&Revocation::token(ISS, "late", t(10), t(0)), t(11)));
    assert_eq!(l.purge(t(201)), 2);
    assert_eq!(l.sizes(), (0, 1));
    assert_eq!(l.issuer_count(), 1);
    assert_eq!(l.purge(t(1001)), 1);
    assert!(l.issuer_count() == 0 && l.is_empty());
}

/// A list whose background tasks stay quiet for an hour: only the test writes to it.
fn quiet(store: MemoryRevocationStore) -> RevocationListBuilder {
    RevocationList::builder(store)
        .poll_interval(Duration::from_secs(3600))
        .purge_interval(Duration::from_secs(3600))
        .reload_interval(Duration::from_secs(3600))
}

#[tokio::test]
async fn writes_that_change_nothing_keep_the_list_and_a_refused_batch_applies_nothing() {
    let clock = tower_auth_core::clock::ManualClock::new(t(10));
    let store = MemoryRevocationStore::new();
    let list = quiet(store.clone()).clock(clock.clone()).build().unwrap();
    list.load().await.unwrap();
    list.revoke_token(ISS, "a", Some(t(500))).await.unwrap();
    assert_eq!(list.revoked_tokens(), 1);
    // The revoking process's own notification coming back, a reload or a poll with nothing
    // new, a purge with nothing expired: the list is unchanged.
    let echo = store.revocations(t(10)).await.unwrap().entries;
    list.apply(&echo, true);
    list.reload().await.unwrap();
    list.poll().await.unwrap();
    list.purge_expired().await.unwrap();
    assert_eq!(list.revoked_tokens(), 1);
    assert!(list.inner.lists.is_revoked(&id(Some("a"), None, None)));
    // A batch of 100: every token is revoked, here and in the store for other processes.
    let batch: Vec<_> = (0..100).map(|n| (format!("b{n}"), Some(t(500)))).collect();
    list.revoke_tokens(ISS, batch).await.unwrap();
    assert_eq!(list.revoked_tokens(), 101);
    assert!(list.inner.lists.is_revoked(&id(Some("b99"), None, None)));
    assert_eq!(store.revocations(t(10)).await.unwrap().entries.len(), 101);
    // One value too long refuses the whole batch, before anything is applied.
    let long = "x".repeat(MAX_REVOCATION_VALUE_LEN + 1);
    let err = list
        .revoke_tokens(ISS, [("ok".to_owned(), None), (long, None)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
    assert_eq!(list.revoked_tokens(), 101);
    assert!(!list.inner.lists.is_revoked(&id(Some("ok"), None, None)));
    // A purge with everything expired empties the list.
    clock.set(t(500) + DEFAULT_REVOCATION_LEEWAY + Duration::from_secs(1));
    list.purge_expired().await.unwrap();
    assert_eq!(list.revoked_tokens(), 0);
    assert!(!list.inner.lists.is_revoked(&id(Some("a"), None, None)));
}

/// A revocation changes its entry in place: applying 1,000 one at a time on top of 10,000
/// allocates about what the 1,000 entries take, where copying the list for each (its tables
/// alone are hundreds of KiB) would allocate hundreds of MiB.
#[test]
fn a_revocation_does_not_copy_the_list() {
    let list = quiet(MemoryRevocationStore::new()).build().unwrap();
    let exp = SystemTime::now() + Duration::from_secs(3600);
    let now = SystemTime::now();
    let held: Vec<_> = (0..10_000)
        .map(|n| Revocation::token(ISS, format!("held-{n:08}"), exp, now))
        .collect();
    list.apply(&held, false);
    let fresh: Vec<_> = (0..1_000)
        .map(|n| Revocation::token(ISS, format!("fresh-{n:08}"), exp, now))
        .collect();
    let info = allocation_counter::measure(|| {
        for entry in &fresh {
            list.apply(std::slice::from_ref(entry), false);
        }
    });
    assert_eq!(list.revoked_tokens(), 11_000);
    // Entries (key, value, map entry: under 200 bytes each) and at most one growth of the
    // table: well under 4 MiB.
    assert!(
        info.bytes_total < 4 << 20,
        "1,000 revocations allocated {} bytes",
        info.bytes_total
    );
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_report_sizes_applications_and_lag() {
    use std::collections::HashMap;
    use std::sync::Mutex;
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
    let build = |name: &str, store: MemoryRevocationStore| {
        RevocationList::builder(store)
            .name(name)
            .clock(clock.clone())
            .poll_interval(Duration::from_secs(3600))
            .reload_interval(Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let store_a = MemoryRevocationStore::new();
    // Written before the first load: old, not late.
    store_a
        .add_revocation(&Revocation::token(ISS, "old", t(900), t(1)))
        .await
        .unwrap();
    let a = build("a", store_a.clone());
    let b = build("b", MemoryRevocationStore::new());
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
