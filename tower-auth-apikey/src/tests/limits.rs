//! Rate limits and credits, enforced by the scheme, with an injected clock.

use http::HeaderMap;
use tower_auth_core::{GrpcRejection, RequireScopesLayer};

use super::*;
use crate::NewKey;
use crate::limit::{RateLimit, RateLimitHeadersLayer};

/// The scheme with the headers layer over a counting handler.
fn limited_stack(
    auth: ApiKeyAuthenticator,
) -> (
    impl Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth))
        .layer(RateLimitHeadersLayer::new())
        .service(service_fn(move |_: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        }));
    (svc, calls)
}

async fn send<S>(svc: &S, key: &str) -> (StatusCode, HeaderMap)
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
{
    let res = svc.clone().oneshot(bearer(key)).await.unwrap();
    (res.status(), res.headers().clone())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap())
}

fn rate(s: &str, burst: u32) -> RateLimit {
    RateLimit::new(s.parse().unwrap(), Some(burst)).unwrap()
}

#[tokio::test]
async fn a_burst_then_refusal_then_recovery() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a").rate_limit(rate("10/1s", 3)))
        .await
        .unwrap()
        .key;
    let key = key.expose_secret();
    let (svc, calls) = limited_stack(auth);

    for left in [2, 1, 0] {
        let (s, h) = send(&svc, key).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(header(&h, "ratelimit-policy"), "\"rate\";q=10;w=1");
        assert_eq!(
            header(&h, "ratelimit"),
            format!("\"rate\";r={left};t=1"),
            "{left}"
        );
    }
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&h, "retry-after"), "1");
    assert_eq!(header(&h, "ratelimit-policy"), "\"rate\";q=10;w=1");
    assert_eq!(header(&h, "ratelimit"), "\"rate\";r=0;t=1");
    assert_eq!(header(&h, "www-authenticate"), "");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a 429 never reaches the service"
    );

    // One request's worth of time (100 ms) gives one request back; the full burst takes 300.
    clock.advance(Duration::from_millis(100));
    assert_eq!(send(&svc, key).await.0, StatusCode::OK);
    assert_eq!(send(&svc, key).await.0, StatusCode::TOO_MANY_REQUESTS);
    clock.advance(Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(send(&svc, key).await.0, StatusCode::OK);
    }
    assert_eq!(send(&svc, key).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn keys_without_limits_get_no_headers_and_limits_are_per_key() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let admin = auth.admin();
    let free = admin.create(NewKey::new("a")).await.unwrap().key;
    let one = admin
        .create(NewKey::new("b").rate_limit(rate("1/1m", 1)))
        .await
        .unwrap()
        .key;
    let other = admin
        .create(NewKey::new("b").rate_limit(rate("1/1m", 1)))
        .await
        .unwrap()
        .key;
    let (svc, _) = limited_stack(auth);
    for _ in 0..5 {
        let (s, h) = send(&svc, free.expose_secret()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(h.get("ratelimit").is_none() && h.get("ratelimit-policy").is_none());
    }
    assert_eq!(send(&svc, one.expose_secret()).await.0, StatusCode::OK);
    assert_eq!(
        send(&svc, one.expose_secret()).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&svc, other.expose_secret()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn credits_run_out_and_a_refused_request_costs_nothing() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let created = auth
        .admin()
        .create(NewKey::new("a").rate_limit(rate("1/1s", 1)).credits(2))
        .await
        .unwrap();
    let key = created.key.expose_secret();
    let (svc, calls) = limited_stack(auth.clone());

    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "ratelimit"), "\"rate\";r=0;t=1, \"credits\";r=1");
    // Over the rate: refused, and no credit spent.
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&h, "ratelimit"), "\"rate\";r=0;t=1, \"credits\";r=1");
    clock.advance(Duration::from_secs(1));
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "ratelimit"), "\"rate\";r=0;t=1, \"credits\";r=0");

    // Out of credits: 429 without Retry-After (no refill), and the rate is not charged.
    clock.advance(Duration::from_secs(1));
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(h.get("retry-after").is_none(), "{h:?}");
    assert!(
        header(&h, "ratelimit").ends_with("\"credits\";r=0"),
        "{h:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Three more credits; the two spent here and not yet written back still count.
    auth.admin()
        .update_limits(
            &created.record.id,
            crate::limit::LimitsUpdate::new().credits(3),
        )
        .await
        .unwrap();
    let (s, h) = send(&svc, key).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the rate was not charged for the refusal"
    );
    assert!(
        header(&h, "ratelimit").ends_with("\"credits\";r=0"),
        "{h:?}"
    );
}

#[tokio::test]
async fn credits_refill_each_period_from_creation() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a").refill("2/1h".parse().unwrap()))
        .await
        .unwrap()
        .key;
    let key = key.expose_secret();
    let (svc, _) = limited_stack(auth);
    clock.advance(Duration::from_secs(600));
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "ratelimit-policy"), "\"credits\";q=2;w=3600");
    assert_eq!(header(&h, "ratelimit"), "\"credits\";r=1;t=3000");
    assert_eq!(send(&svc, key).await.0, StatusCode::OK);
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&h, "retry-after"),
        "3000",
        "waiting for the refill helps"
    );
    clock.advance(Duration::from_secs(3000));
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "ratelimit"), "\"credits\";r=1;t=3600");
}

#[tokio::test]
async fn a_request_refused_by_a_scope_requirement_is_charged() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a").credits(1))
        .await
        .unwrap()
        .key;
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth))
        .layer(RequireScopesLayer::all_of(["admin"]))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    assert_eq!(
        status(&svc, bearer(key.expose_secret())).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&svc, bearer(key.expose_secret())).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_cache_reload_neither_resets_the_rate_nor_forgets_unwritten_credits() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let created = auth
        .admin()
        .create(NewKey::new("a").rate_limit(rate("1/1h", 1)).credits(3))
        .await
        .unwrap();
    let key = created.key.expose_secret();
    let (svc, _) = limited_stack(auth.clone());
    assert_eq!(send(&svc, key).await.0, StatusCode::OK);
    auth.invalidate_cache();
    assert_eq!(send(&svc, key).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert!(store.finds() >= 2, "the record was read again");

    // The store still says 3 (nothing written back yet); this process has spent 1.
    clock.advance(Duration::from_secs(3600));
    let (_, h) = send(&svc, key).await;
    assert!(
        header(&h, "ratelimit").ends_with("\"credits\";r=1"),
        "{h:?}"
    );
    auth.invalidate_cache();
    clock.advance(Duration::from_secs(3600));
    let (s, h) = send(&svc, key).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        header(&h, "ratelimit").ends_with("\"credits\";r=0"),
        "{h:?}"
    );

    // Written back in a batch: the store has what is left, and a reload agrees.
    auth.flush_credits().await.unwrap();
    let stored = store.get(&created.record.id).await.unwrap().unwrap();
    assert_eq!(stored.limits.credits.unwrap().remaining, 0);
    auth.invalidate_cache();
    clock.advance(Duration::from_secs(3600));
    assert_eq!(send(&svc, key).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn credits_not_written_stay_pending_while_the_store_fails() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let created = auth
        .admin()
        .create(NewKey::new("a").credits(5))
        .await
        .unwrap();
    let (svc, _) = limited_stack(auth.clone());
    for _ in 0..2 {
        assert_eq!(
            send(&svc, created.key.expose_secret()).await.0,
            StatusCode::OK
        );
    }
    store.fail();
    assert!(auth.flush_credits().await.is_err());
    store.recover();
    auth.flush_credits().await.unwrap();
    let stored = store.get(&created.record.id).await.unwrap().unwrap();
    assert_eq!(stored.limits.credits.unwrap().remaining, 3);
    // Nothing is written twice.
    auth.flush_credits().await.unwrap();
    let stored = store.get(&created.record.id).await.unwrap().unwrap();
    assert_eq!(stored.limits.credits.unwrap().remaining, 3);
}

#[tokio::test]
async fn an_update_applies_from_the_next_request() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let created = auth.admin().create(NewKey::new("a")).await.unwrap();
    let key = created.key.expose_secret();
    let (svc, _) = limited_stack(auth.clone());
    assert_eq!(send(&svc, key).await.0, StatusCode::OK);
    auth.admin()
        .update_limits(
            &created.record.id,
            crate::limit::LimitsUpdate::new().rate(rate("1/1m", 1)),
        )
        .await
        .unwrap();
    assert_eq!(send(&svc, key).await.0, StatusCode::OK);
    assert_eq!(send(&svc, key).await.0, StatusCode::TOO_MANY_REQUESTS);
    auth.admin()
        .update_limits(
            &created.record.id,
            crate::limit::LimitsUpdate::new().no_rate(),
        )
        .await
        .unwrap();
    assert_eq!(send(&svc, key).await.0, StatusCode::OK);
}

#[tokio::test]
async fn grpc_gets_resource_exhausted() {
    let clock = clock();
    let store = TestStore::new();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a").credits(0))
        .await
        .unwrap()
        .key;
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth).with_rejection(GrpcRejection::new()))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let res = svc.oneshot(bearer(key.expose_secret())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "8");
}

/// A store that shares limits: keys in memory, rate tokens leased from one shared pool (a
/// stand-in for the Postgres GCRA), and a switch that takes it down.
#[derive(Clone)]
struct LeasingStore {
    keys: Arc<MemoryStore>,
    tokens: Arc<Mutex<u64>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    leases: Arc<AtomicUsize>,
}

impl LeasingStore {
    fn new(tokens: u64) -> Self {
        Self {
            keys: Arc::new(MemoryStore::new()),
            tokens: Arc::new(Mutex::new(tokens)),
            down: Arc::default(),
            leases: Arc::default(),
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl KeyStore for LeasingStore {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        self.keys.find_by_hash(hash)
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        self.keys.get(id)
    }
    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        self.keys.list()
    }
    fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()> {
        self.keys.insert(key)
    }
    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
        self.keys.revoke(id, at)
    }
    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        old_expires_at: SystemTime,
        new: &'a StoredKey,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        self.keys.rotate(old_id, old_expires_at, new)
    }
    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
        self.keys.record_last_used(batch)
    }
    fn shares_limits(&self) -> bool {
        true
    }
    fn lease_limits<'a>(
        &'a self,
        _id: &'a str,
        request: &'a crate::limit::LeaseRequest,
        _now: SystemTime,
    ) -> StoreFuture<'a, Option<crate::limit::Lease>> {
        self.leases.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable(std::io::Error::other(
                    "connection refused",
                )));
            }
            let mut pool = self.tokens.lock().unwrap();
            let granted = request.rate_tokens.min(*pool);
            *pool -= granted;
            Ok(Some(crate::limit::Lease {
                rate_tokens: granted,
                credits_remaining: None,
            }))
        })
    }
}

/// Lets the background leases run.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

#[tokio::test]
async fn instances_leasing_from_one_store_stay_within_its_tokens_plus_a_batch_each() {
    let store = LeasingStore::new(10);
    let build = || {
        ApiKeyAuthenticator::builder(store.clone())
            .prefix("sk_test")
            .clock(clock())
            .limit_lease_batch(4)
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    // Each instance alone would allow the burst of 100.
    let key = a
        .admin()
        .create(NewKey::new("a").rate_limit(rate("100/1h", 100)))
        .await
        .unwrap()
        .key;
    let (svc_a, _) = limited_stack(a);
    let (svc_b, _) = limited_stack(b);
    let mut allowed = 0;
    for i in 0..100 {
        let svc = if i % 2 == 0 { &svc_a } else { &svc_b };
        let (s, _) = send(svc, key.expose_secret()).await;
        assert_ne!(s, StatusCode::SERVICE_UNAVAILABLE);
        allowed += u32::from(s == StatusCode::OK);
        settle().await;
    }
    // The store's 10 tokens, and at most one spent ahead of a lease by each instance.
    assert!((10..=12).contains(&allowed), "{allowed} allowed");
    assert_eq!(*store.tokens.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_lease_spent_while_the_store_is_down_is_503_unless_limits_fail_open() {
    for fail_open in [false, true] {
        let store = LeasingStore::new(1_000);
        let clock = clock();
        let auth = ApiKeyAuthenticator::builder(store.clone())
            .prefix("sk_test")
            .clock(clock.clone())
            .limit_lease_batch(4)
            .limits_fail_open_when_store_down(fail_open)
            .build()
            .unwrap();
        let key = auth
            .admin()
            .create(NewKey::new("a").rate_limit(rate("1000/1s", 1000)))
            .await
            .unwrap()
            .key;
        let key = key.expose_secret();
        let (svc, calls) = limited_stack(auth);
        assert_eq!(send(&svc, key).await.0, StatusCode::OK);
        settle().await;

        store.set_down(true);
        let mut seen = Vec::new();
        for _ in 0..10 {
            seen.push(send(&svc, key).await.0);
            settle().await;
        }
        let ok = seen.iter().filter(|s| **s == StatusCode::OK).count();
        if fail_open {
            assert_eq!(ok, 10, "fails open: {seen:?}");
        } else {
            // What is left of the lease (at most a batch), then 503 only.
            assert!(ok <= 4, "{seen:?}");
            assert_eq!(seen[9], StatusCode::SERVICE_UNAVAILABLE, "{seen:?}");
            assert_eq!(calls.load(Ordering::SeqCst), 1 + ok);
        }

        store.set_down(false);
        // A refused request asks for a lease (not sooner than 100 ms after a failed one); the
        // next one has it.
        clock.advance(Duration::from_millis(100));
        let _ = send(&svc, key).await;
        settle().await;
        for _ in 0..10 {
            assert_eq!(send(&svc, key).await.0, StatusCode::OK, "recovered");
            settle().await;
        }
    }
}

#[tokio::test]
async fn a_key_hammered_over_its_limit_asks_for_a_lease_once_per_token() {
    let store = LeasingStore::new(4);
    let clock = clock();
    let auth = ApiKeyAuthenticator::builder(store.clone())
        .prefix("sk_test")
        .clock(clock.clone())
        .limit_lease_batch(4)
        .build()
        .unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a").rate_limit(rate("1/1s", 10)))
        .await
        .unwrap()
        .key;
    let (svc, _) = limited_stack(auth);
    for _ in 0..50 {
        send(&svc, key.expose_secret()).await;
        settle().await;
    }
    let leases = store.leases.load(Ordering::SeqCst);
    // The first, one per allowed request below half a batch, one that finds none left.
    assert!(leases <= 6, "{leases} leases");
    // The next token is due a second later: one more lease, not one per request.
    clock.advance(Duration::from_secs(1));
    for _ in 0..50 {
        send(&svc, key.expose_secret()).await;
        settle().await;
    }
    assert_eq!(store.leases.load(Ordering::SeqCst), leases + 1);
}
