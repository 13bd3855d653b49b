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
