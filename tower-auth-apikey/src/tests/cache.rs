//! Store queries per request, expiry, revocation, rotation, last-used write-behind and the
//! cache bound.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use tower::ServiceExt;
use tower_auth_core::{Authenticator, CacheConfig};

use super::*;
use crate::NewKey;

#[tokio::test]
async fn steady_state_is_one_store_query_for_many_requests() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let (svc, calls) = stack(auth);
    for i in 0..50 {
        let req = if i % 2 == 0 {
            bearer(key.expose_secret())
        } else {
            with_header("x-api-key", key.expose_secret())
        };
        assert_eq!(status(&svc, req).await, StatusCode::OK);
    }
    assert_eq!(store.finds(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_first_requests_make_one_query() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let (svc, _) = stack(auth);
    // Hold the first lookup until every request has started, so they really overlap.
    let (started, release) = store.pause_next_lookup();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let svc = svc.clone();
        let req = bearer(key.expose_secret());
        tasks.push(tokio::spawn(async move {
            svc.oneshot(req).await.unwrap().status()
        }));
    }
    started.await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.send(()).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(store.finds(), 1);
}

#[tokio::test]
async fn an_unknown_well_formed_key_twice_costs_one_query() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    // Well formed, same prefix, never stored.
    let stranger = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()
        .unwrap()
        .admin()
        .create(NewKey::new("x"))
        .await
        .unwrap()
        .key;
    let (svc, _) = stack(auth);
    for _ in 0..2 {
        let res = svc
            .clone()
            .oneshot(bearer(stranger.expose_secret()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(www_authenticate(&res).contains("error=\"invalid_token\""));
    }
    assert_eq!(store.finds(), 1);
}

#[tokio::test]
async fn an_expired_key_is_rejected_even_while_cached() {
    let store = TestStore::new();
    let clock = clock();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a").expires_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .key;
    let (svc, _) = stack(auth.clone());
    assert_eq!(
        status(&svc, bearer(key.expose_secret())).await,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        status(&svc, bearer(key.expose_secret())).await,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    let res = svc
        .clone()
        .oneshot(bearer(key.expose_secret()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&res).contains("expired api key"));
    assert_eq!(store.finds(), 1, "decided from the cache entry");
    assert_eq!(auth.cached_entries().await, 1);
}

#[tokio::test]
async fn a_revoked_key_is_rejected_right_after_revoke() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let created = auth.admin().create(NewKey::new("a")).await.unwrap();
    let key = created.key.expose_secret();
    let (svc, calls) = stack(auth.clone());
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);
    let revoked = auth.admin().revoke(&created.record.id).await.unwrap();
    assert!(revoked.is_revoked());
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        store.finds(),
        2,
        "one reload after the revocation, then cached"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_standalone_admin_revocation_is_seen_within_the_ttl() {
    let store = TestStore::new();
    let auth = builder(&store)
        .cache(
            CacheConfig::builder()
                .ttl(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    // Another process's admin: no access to this cache.
    let other = crate::ApiKeys::builder(store.clone())
        .prefix("sk_test")
        .build()
        .unwrap();
    let created = other.create(NewKey::new("a")).await.unwrap();
    let key = created.key.expose_secret();
    let (svc, _) = stack(auth);
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);
    other.revoke(&created.record.id).await.unwrap();
    // Still cached here...
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);
    // ...until the TTL passes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&svc, bearer(key)).await == StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "revocation never seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_in_flight_during_revoke_does_not_cache_the_old_record() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let created = auth.admin().create(NewKey::new("a")).await.unwrap();
    let key = created.key.expose_secret().to_owned();
    let (svc, calls) = stack(auth.clone());

    // The lookup reads the record while the key is still valid, then stalls.
    let (started, release) = store.pause_next_lookup();
    let in_flight = tokio::spawn({
        let svc = svc.clone();
        let req = bearer(&key);
        async move { svc.oneshot(req).await.unwrap().status() }
    });
    started.await.unwrap();
    // Revoke while the old record is in flight, then let the lookup finish.
    auth.admin().revoke(&created.record.id).await.unwrap();
    release.send(()).unwrap();
    assert_eq!(
        in_flight.await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "the stalled lookup re-read the store"
    );
    // And nothing stale was cached.
    for _ in 0..3 {
        assert_eq!(status(&svc, bearer(&key)).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(store.finds(), 2, "the original lookup and its re-read");
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_grace_period() {
    let store = TestStore::new();
    let clock = clock();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let admin = auth.admin();
    let old = admin
        .create(
            NewKey::new("a")
                .name("deploy")
                .scopes(["read"])
                .expires_in(Duration::from_secs(90 * 86_400))
                .metadata(serde_json::json!({"k": 1})),
        )
        .await
        .unwrap();
    let (svc, _) = stack(auth.clone());
    assert_eq!(
        status(&svc, bearer(old.key.expose_secret())).await,
        StatusCode::OK
    );

    clock.advance(Duration::from_secs(10));
    let new = admin
        .rotate(&old.record.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_ne!(new.record.id, old.record.id);
    assert_ne!(new.key, old.key);
    assert_eq!(new.record.owner, "a");
    assert_eq!(new.record.name.as_deref(), Some("deploy"));
    assert_eq!(new.record.scopes, old.record.scopes);
    assert_eq!(new.record.metadata, old.record.metadata);
    assert_eq!(new.record.created_at, t0() + Duration::from_secs(10));
    assert_eq!(
        new.record.expires_at,
        Some(t0() + Duration::from_secs(10 + 90 * 86_400)),
        "same lifetime, from now"
    );
    let old_now = admin.get(&old.record.id).await.unwrap().unwrap();
    assert_eq!(
        old_now.expires_at,
        Some(t0() + Duration::from_secs(10 + 3600))
    );

    // During the grace period both work.
    clock.advance(Duration::from_secs(3599));
    assert_eq!(
        status(&svc, bearer(old.key.expose_secret())).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, bearer(new.key.expose_secret())).await,
        StatusCode::OK
    );
    // After it, only the new one.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        status(&svc, bearer(old.key.expose_secret())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&svc, bearer(new.key.expose_secret())).await,
        StatusCode::OK
    );

    // Rotating a revoked or unknown key is refused.
    admin.revoke(&new.record.id).await.unwrap();
    assert!(matches!(
        admin.rotate(&new.record.id, Duration::from_secs(1)).await,
        Err(crate::AdminError::Revoked(_))
    ));
    assert!(matches!(
        admin.rotate("key_nope", Duration::from_secs(1)).await,
        Err(crate::AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn grace_never_extends_an_earlier_expiry() {
    let store = TestStore::new();
    let clock = clock();
    let admin = builder(&store)
        .clock(clock.clone())
        .build()
        .unwrap()
        .admin();
    let old = admin
        .create(NewKey::new("a").expires_in(Duration::from_secs(60)))
        .await
        .unwrap();
    admin
        .rotate(&old.record.id, Duration::from_secs(86_400))
        .await
        .unwrap();
    let old_now = admin.get(&old.record.id).await.unwrap().unwrap();
    assert_eq!(old_now.expires_at, old.record.expires_at);
}

#[tokio::test]
async fn last_used_is_written_behind_not_on_the_request_path() {
    let store = TestStore::new();
    let clock = clock();
    let auth = builder(&store)
        .clock(clock.clone())
        .last_used_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let created = auth.admin().create(NewKey::new("a")).await.unwrap();
    let (svc, _) = stack(auth.clone());
    assert_eq!(
        status(&svc, bearer(created.key.expose_secret())).await,
        StatusCode::OK
    );
    let get = || async {
        store
            .get(&created.record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert_eq!(get().await, None, "the request did not write");
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        status(&svc, bearer(created.key.expose_secret())).await,
        StatusCode::OK
    );
    auth.flush_last_used().await.unwrap();
    assert_eq!(get().await, Some(t0() + Duration::from_secs(5)));
}

#[tokio::test]
async fn last_used_is_flushed_by_the_background_task() {
    let store = TestStore::new();
    let auth = builder(&store)
        .last_used_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let admin = auth.admin();
    let a = admin.create(NewKey::new("a")).await.unwrap();
    let b = admin.create(NewKey::new("b")).await.unwrap();
    let (svc, _) = stack(auth);
    for k in [&a, &b] {
        assert_eq!(
            status(&svc, bearer(k.key.expose_secret())).await,
            StatusCode::OK
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a_used = store.get(&a.record.id).await.unwrap().unwrap().last_used_at;
        let b_used = store.get(&b.record.id).await.unwrap().unwrap().last_used_at;
        if a_used.is_some() && b_used.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "last used never written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_failed_last_used_flush_is_retried() {
    struct FailingWrites(TestStore, Arc<AtomicUsize>);
    impl KeyStore for FailingWrites {
        fn find_by_hash<'a>(&'a self, h: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
            self.0.find_by_hash(h)
        }
        fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
            self.0.get(id)
        }
        fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
            self.0.list()
        }
        fn insert<'a>(&'a self, k: &'a StoredKey) -> StoreFuture<'a, ()> {
            self.0.insert(k)
        }
        fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
            self.0.revoke(id, at)
        }
        fn rotate<'a>(
            &'a self,
            id: &'a str,
            at: SystemTime,
            new: &'a StoredKey,
        ) -> StoreFuture<'a, Option<StoredKey>> {
            self.0.rotate(id, at, new)
        }
        fn record_last_used<'a>(&'a self, b: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
            if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
                return Box::pin(async { Err(StoreError::unavailable("disk full")) });
            }
            self.0.record_last_used(b)
        }
    }
    let store = TestStore::new();
    let writes = Arc::new(AtomicUsize::new(0));
    let auth = ApiKeyAuthenticator::builder(FailingWrites(store.clone(), Arc::clone(&writes)))
        .prefix("sk_test")
        .last_used_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let created = auth.admin().create(NewKey::new("a")).await.unwrap();
    let (svc, _) = stack(auth.clone());
    assert_eq!(
        status(&svc, bearer(created.key.expose_secret())).await,
        StatusCode::OK
    );
    assert!(auth.flush_last_used().await.is_err());
    auth.flush_last_used().await.unwrap();
    assert_eq!(writes.load(Ordering::SeqCst), 2);
    let r = store.get(&created.record.id).await.unwrap().unwrap();
    assert!(r.last_used_at.is_some(), "kept for the retry");
}

/// A well-formed `sk_test` key from a cheap generator (the OS generator is not what is tested
/// here), with a valid checksum.
fn well_formed(n: &mut u64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut key = String::with_capacity(44);
    key.push_str("sk_test_");
    for _ in 0..crate::key::RANDOM_LEN {
        // xorshift64
        *n ^= *n << 13;
        *n ^= *n >> 7;
        *n ^= *n << 17;
        key.push(char::from(ALPHABET[(*n % 62) as usize]));
    }
    let sum = crate::key::checksum(key.as_bytes());
    key.extend(sum.iter().map(|&b| char::from(b)));
    key
}

/// Looks up `n` random well-formed keys, each unknown, through `extract` and `authenticate`.
async fn unknown_keys(auth: ApiKeyAuthenticator, mut seed: u64, n: usize) {
    let mut headers = http::HeaderMap::new();
    let (mut parts, ()) = Request::get("/").body(()).unwrap().into_parts();
    for _ in 0..n {
        let key = well_formed(&mut seed);
        headers.insert("x-api-key", key.parse().unwrap());
        std::mem::swap(&mut parts.headers, &mut headers);
        let found = auth.extract(&parts).unwrap().unwrap();
        std::mem::swap(&mut parts.headers, &mut headers);
        let err = auth.authenticate(found.credential).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_unknown_keys_stay_within_the_cache_capacity() {
    const ROUNDS: usize = 10;
    const PER_TASK: usize = 50_000;
    const CAPACITY: u64 = 1_000;
    let store = TestStore::new();
    let auth = builder(&store)
        .cache(
            CacheConfig::builder()
                .max_capacity(CAPACITY)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    for round in 0..ROUNDS {
        // Two tasks at once (the runtime has two workers), then a check of the bound.
        let seed = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(round as u64 + 1);
        let a = tokio::spawn(unknown_keys(auth.clone(), seed, PER_TASK));
        let b = tokio::spawn(unknown_keys(auth.clone(), seed ^ 0xDEAD_BEEF, PER_TASK));
        a.await.unwrap();
        b.await.unwrap();
        let entries = auth.cached_entries().await;
        assert!(
            entries <= CAPACITY,
            "{entries} entries after {} keys",
            (round + 1) * 2 * PER_TASK
        );
    }
    assert_eq!(
        store.finds(),
        ROUNDS * 2 * PER_TASK,
        "every key was well formed, unknown and looked up: 1,000,000 keys"
    );
}

/// Waits (bounded) until the main cache entry of `key` has expired.
async fn until_expired(auth: &ApiKeyAuthenticator, key: &crate::CreatedKey) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while auth.is_cached(key.key.expose_secret()).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entries never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stale_if_error_serves_recent_records_for_a_bounded_time_only() {
    let store = TestStore::new();
    let short = CacheConfig::builder()
        .ttl(Duration::from_millis(50))
        .build()
        .unwrap();
    let auth = builder(&store)
        .cache(short)
        .stale_if_error(Duration::from_secs(1))
        .build()
        .unwrap();
    // The same store and settings without the option.
    let strict = builder(&store).cache(short).build().unwrap();
    let admin = auth.admin();
    let a = admin.create(NewKey::new("a")).await.unwrap();
    let b = admin.create(NewKey::new("b")).await.unwrap();
    let never_read = admin.create(NewKey::new("c")).await.unwrap();
    let (svc, calls) = stack(auth.clone());
    let (strict_svc, _) = stack(strict.clone());
    for k in [&a, &b] {
        assert_eq!(
            status(&svc, bearer(k.key.expose_secret())).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        status(&strict_svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
    // Revoked through this authenticator: its stale copy goes too.
    admin.revoke(&b.record.id).await.unwrap();
    until_expired(&auth, &a).await;
    until_expired(&strict, &a).await;

    store.fail();
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK,
        "stale"
    );
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    assert_eq!(
        status(&strict_svc, bearer(a.key.expose_secret())).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "off by default"
    );
    assert_eq!(
        status(&svc, bearer(b.key.expose_secret())).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "a revoked key is not served from an old copy"
    );
    assert_eq!(
        status(&svc, bearer(never_read.key.expose_secret())).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing to serve"
    );
    // Past the staleness bound: 503 again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&svc, bearer(a.key.expose_secret())).await == StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "stale forever");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    store.recover();
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn stale_records_are_still_checked_for_expiry() {
    let store = TestStore::new();
    let clock = clock();
    let auth = builder(&store)
        .clock(clock.clone())
        .cache(
            CacheConfig::builder()
                .ttl(Duration::from_millis(50))
                .build()
                .unwrap(),
        )
        .stale_if_error(Duration::from_secs(3600))
        .build()
        .unwrap();
    let a = auth
        .admin()
        .create(NewKey::new("a").expires_in(Duration::from_secs(60)))
        .await
        .unwrap();
    let (svc, _) = stack(auth.clone());
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
    until_expired(&auth, &a).await;
    store.fail();
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::UNAUTHORIZED
    );
}
