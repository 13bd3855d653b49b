//! API key limits shared by several instances through PostgreSQL: two authenticators (two
//! instances, each with its own store and pool) leasing from one database stay within the
//! documented bound (the limit plus the lease batch size times the instances); an outage in
//! the middle of a lease fails closed (503 once the lease is spent), or keeps allowing with
//! `limits_fail_open_when_store_down`; both recover when the database returns.
//!
//! Run them with `scripts/test -p tower-auth-tests --test apikey_limits_postgres`.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_auth_apikey::limit::{LimitsUpdate, RateLimit};
use tower_auth_apikey::{ApiKeyAuthenticator, NewKey, PostgresStore};
use tower_auth_core::AuthenticateLayer;
use tower_auth_tests::{OwnPostgres, PgDatabase};

const BATCH: u64 = 5;

async fn status(auth: &ApiKeyAuthenticator, key: &str) -> StatusCode {
    ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth.clone()))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }))
        .oneshot(
            Request::get("/items")
                .header("x-api-key", key)
                .body(())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

/// An instance: its own store (pool and listener) on `url`.
async fn instance(url: &str, fail_open: bool) -> ApiKeyAuthenticator {
    // Connections refused fail fast: a lease fails within the store timeout.
    let store = PostgresStore::builder(url)
        .acquire_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    ApiKeyAuthenticator::builder(store)
        .limit_lease_batch(BATCH)
        .limits_fail_open_when_store_down(fail_open)
        // A key created by the other instance is then looked up at once, without waiting for
        // its NOTIFY.
        .key_filter(false)
        .store_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Sends requests with `key` to the instances in turn until ten in a row are refused with 429;
/// the number allowed. A 503 (a lease not back yet) is neither.
async fn allowed_until_refused(instances: &[&ApiKeyAuthenticator], key: &str) -> u64 {
    let (mut allowed, mut refused_in_a_row) = (0, 0);
    for i in 0..2_000 {
        match status(instances[i % instances.len()], key).await {
            StatusCode::OK => {
                allowed += 1;
                refused_in_a_row = 0;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                refused_in_a_row += 1;
                if refused_in_a_row == 10 {
                    return allowed;
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => refused_in_a_row = 0,
            other => panic!("unexpected {other}"),
        }
        // Lets the background leases land, as requests spread over time would.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never refused: {allowed} allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn two_instances_share_a_rate_limit_and_credits_within_the_bound() {
    let db = PgDatabase::create().await;
    let a = instance(&db.url, false).await;
    let b = instance(&db.url, false).await;

    // A burst of 20, then one every 3 minutes: no token comes back during the test.
    let rate = RateLimit::new("20/1h".parse().unwrap(), None).unwrap();
    let key = a
        .admin()
        .create(NewKey::new("rated").rate_limit(rate))
        .await
        .unwrap()
        .key;
    let allowed = allowed_until_refused(&[&a, &b], key.expose_secret()).await;
    println!("rate 20/1h, two instances, batch {BATCH}: {allowed} allowed");
    // Each instance alone would allow the whole burst: together, the burst plus at most one
    // batch each.
    assert!(
        (20..=20 + 2 * BATCH).contains(&allowed),
        "{allowed} allowed"
    );

    // A new rate limit starts with a full burst, shared as well.
    let id = a.admin().list().await.unwrap()[0].id.clone();
    let rate = RateLimit::new("10/1h".parse().unwrap(), None).unwrap();
    a.admin()
        .update_limits(&id, LimitsUpdate::new().rate(rate))
        .await
        .unwrap();
    let allowed = allowed_until_refused(&[&a, &b], key.expose_secret()).await;
    println!("rate changed to 10/1h: {allowed} allowed");
    assert!(
        (10..=10 + 2 * BATCH).contains(&allowed),
        "{allowed} allowed"
    );

    let created = a
        .admin()
        .create(NewKey::new("metered").credits(30))
        .await
        .unwrap();
    let allowed = allowed_until_refused(&[&a, &b], created.key.expose_secret()).await;
    println!("30 credits, two instances, batch {BATCH}: {allowed} allowed");
    assert!(
        (30..=30 + 2 * BATCH).contains(&allowed),
        "{allowed} allowed"
    );
    a.flush_credits().await.unwrap();
    b.flush_credits().await.unwrap();
    let stored = a
        .admin()
        .get(&created.record.id)
        .await
        .unwrap()
        .unwrap()
        .limits
        .credits
        .unwrap();
    assert_eq!(stored.remaining, 0, "every credit spent is written back");
    db.drop_database().await;
}

/// Requests until `want` comes back (within 10 s); the statuses seen before it.
async fn until(auth: &ApiKeyAuthenticator, key: &str, want: StatusCode) -> Vec<StatusCode> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let s = status(auth, key).await;
        if s == want {
            return seen;
        }
        seen.push(s);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {want} within 10 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn the_store_going_down_mid_lease_fails_closed_or_open_and_recovers() {
    let pg = OwnPostgres::start();
    let closed = instance(&pg.url, false).await;
    let open = instance(&pg.url, true).await;
    let rate = RateLimit::new("1000/1s".parse().unwrap(), None).unwrap();
    let key = closed
        .admin()
        .create(NewKey::new("rated").rate_limit(rate).credits(1_000_000))
        .await
        .unwrap()
        .key;
    let key = key.expose_secret();
    // Both hold a lease (and the record, cached for 30 s).
    assert_eq!(status(&closed, key).await, StatusCode::OK);
    assert_eq!(status(&open, key).await, StatusCode::OK);

    pg.stop();
    // Fail closed: what is left of the lease, then 503 and nothing else.
    let before = until(&closed, key, StatusCode::SERVICE_UNAVAILABLE).await;
    let allowed = before.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(allowed < BATCH as usize, "{before:?}");
    for _ in 0..20 {
        assert_eq!(
            status(&closed, key).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "never 2xx once the lease is spent while the store is down"
        );
    }
    // Fail open: once a lease has failed (within the store timeout; 503 if its lease is spent
    // before), allowed within the limit it knows.
    let start = Instant::now();
    let mut ok_in_a_row = 0;
    while ok_in_a_row < 4 * BATCH {
        if status(&open, key).await == StatusCode::OK {
            ok_in_a_row += 1;
        } else {
            ok_in_a_row = 0;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "fails open: not allowed again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    pg.restart();
    until(&closed, key, StatusCode::OK).await;
    for _ in 0..20 {
        assert_eq!(status(&closed, key).await, StatusCode::OK, "recovered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status(&open, key).await, StatusCode::OK);
}
