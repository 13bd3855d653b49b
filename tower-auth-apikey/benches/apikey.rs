//! `apikey`: the cost of API key authentication through `AuthenticateLayer`.
//!
//! - `verify_cached`: a valid key whose record is cached (the steady state).
//! - `verify_cached_header`: the same, with the key in `X-API-Key` (as the load test sends it).
//! - `verify_cached_peppered`: `verify_cached` with keys hashed by HMAC-SHA256 under a pepper.
//! - `verify_cached_limited`: `verify_cached` for a key with a rate limit and credits that are
//!   never reached: the difference is the cost of the limit check.
//! - `verify_cached_limited_headers`: the same with `RateLimitHeadersLayer`, which formats the
//!   `RateLimit-Policy` and `RateLimit` values of every allowed response.
//! - `reject_checksum`: a key with a bad checksum, rejected before any lookup.
//! - `verify_uncached_sqlite`: a cache miss answered by a SQLite file, for reference.
//! - `verify_uncached_postgres`: a cache miss answered by PostgreSQL over loopback, for
//!   reference (feature `postgres`, and `TOWER_AUTH_TEST_PG_URL` pointing at a server where the
//!   bench may create a database of its own; skipped with a message otherwise).
//!
//! Run: `cargo bench -p tower-auth-apikey --bench apikey -- --warm-up-time 1 --measurement-time 3`
//! With Postgres: start a server with `scripts/test --services-only`, export the variables it
//! prints, and add `--features postgres`.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_auth_apikey::limit::{RateLimit, RateLimitHeadersLayer};
use tower_auth_apikey::{ApiKeyAuthenticator, MemoryStore, NewKey, SqliteStore};
use tower_auth_core::credential::{Location, bearer_token};
use tower_auth_core::{AuthError, AuthenticateLayer, Authenticator, CacheConfig, from_fn};

const SQLITE_KEYS: usize = 1_000;

/// Drives one request through `svc`; when every future is ready at once (a cache hit, a
/// rejection) no executor is involved. A pending future is finished on the runtime.
fn one<S>(rt: &tokio::runtime::Runtime, svc: &mut S, req: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res.unwrap(),
        Poll::Pending => rt.block_on(fut).unwrap(),
    }
}

fn request(key: &str) -> Request<()> {
    Request::get("/items")
        .header("authorization", format!("Bearer {key}"))
        .header("accept", "*/*")
        .body(())
        .unwrap()
}

fn header_request(key: &str) -> Request<()> {
    Request::get("/items")
        .header("x-api-key", key)
        .header("accept", "*/*")
        .body(())
        .unwrap()
}

fn inner() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|req: Request<()>| {
        black_box(&req);
        ready(Ok::<_, Infallible>(Response::new(())))
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();

    let auth = ApiKeyAuthenticator::builder(MemoryStore::new())
        .build()
        .unwrap();
    let key = rt
        .block_on(auth.admin().create(NewKey::new("bench").scopes(["read"])))
        .unwrap()
        .key
        .expose_secret()
        .to_owned();
    let mut svc = AuthenticateLayer::required(auth.clone()).layer(inner());
    // Warm the cache.
    assert_eq!(one(&rt, &mut svc, request(&key)).status(), StatusCode::OK);
    assert_eq!(
        one(&rt, &mut svc, header_request(&key)).status(),
        StatusCode::OK
    );

    let peppered = ApiKeyAuthenticator::builder(MemoryStore::new())
        .pepper(*b"bench-pepper-0123456789abcdef")
        .build()
        .unwrap();
    let peppered_key = rt
        .block_on(
            peppered
                .admin()
                .create(NewKey::new("bench").scopes(["read"])),
        )
        .unwrap()
        .key
        .expose_secret()
        .to_owned();
    let mut peppered_svc = AuthenticateLayer::required(peppered).layer(inner());
    assert_eq!(
        one(&rt, &mut peppered_svc, request(&peppered_key)).status(),
        StatusCode::OK
    );

    // A limit never reached: one request a microsecond, a burst of four billion, credits for
    // ages (spending is counted in memory and written back in the background).
    let unreached = RateLimit::new("1000000/1s".parse().unwrap(), Some(4_000_000_000)).unwrap();
    let limited_key = rt
        .block_on(
            auth.admin().create(
                NewKey::new("bench")
                    .scopes(["read"])
                    .rate_limit(unreached)
                    .credits(1 << 50),
            ),
        )
        .unwrap()
        .key
        .expose_secret()
        .to_owned();
    let mut headers_svc = AuthenticateLayer::required(auth.clone())
        .layer(RateLimitHeadersLayer::new().layer(inner()));
    let res = one(&rt, &mut headers_svc, request(&limited_key));
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("ratelimit"));
    assert_eq!(
        one(&rt, &mut svc, request(&limited_key)).status(),
        StatusCode::OK
    );

    let mut bad = key.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert_eq!(
        one(&rt, &mut svc, request(&bad)).status(),
        StatusCode::UNAUTHORIZED
    );

    let dir = tempfile::tempdir().unwrap();
    let sqlite = rt
        .block_on(SqliteStore::open(dir.path().join("bench.db")))
        .unwrap();
    let (sqlite_auth, sqlite_keys) = uncached(&rt, Counting(sqlite, &FINDS));
    let mut next = 0;
    let sqlite_svc = AuthenticateLayer::required(sqlite_auth.clone()).layer(inner());

    let mut g = c.benchmark_group("apikey");
    g.bench_function("verify_cached", |b| {
        b.iter_batched(
            || request(&key),
            |req| one(&rt, &mut svc, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_cached_limited", |b| {
        b.iter_batched(
            || request(&limited_key),
            |req| one(&rt, &mut svc, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_cached_limited_headers", |b| {
        b.iter_batched(
            || request(&limited_key),
            |req| one(&rt, &mut headers_svc, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_cached_header", |b| {
        b.iter_batched(
            || header_request(&key),
            |req| one(&rt, &mut svc, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verify_cached_peppered", |b| {
        b.iter_batched(
            || request(&peppered_key),
            |req| one(&rt, &mut peppered_svc, req),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("reject_checksum", |b| {
        b.iter_batched(
            || request(&bad),
            |req| one(&rt, &mut svc, req),
            BatchSize::SmallInput,
        )
    });
    // For comparison: the layer's own cost of a 401, with a scheme that rejects every Bearer
    // token without looking at it.
    let mut baseline = AuthenticateLayer::required(from_fn(Location::Authorization, |parts| {
        bearer_token(&parts.headers)?;
        Err(AuthError::invalid_token("malformed api key"))
    }))
    .layer(inner());
    g.bench_function("reject_layer_baseline", |b| {
        b.iter_batched(
            || request(&bad),
            |req| one(&rt, &mut baseline, req),
            BatchSize::SmallInput,
        )
    });
    // The scheme's own share of a rejection: extract and authenticate, without the layer's
    // request and response handling.
    let (bad_parts, ()) = request(&bad).into_parts();
    g.bench_function("reject_checksum_authenticator", |b| {
        b.iter(|| {
            let found = auth.extract(black_box(&bad_parts)).unwrap().unwrap();
            let mut fut = pin!(auth.authenticate(found.credential));
            let mut cx = Context::from_waker(Waker::noop());
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(r) => r.unwrap_err(),
                Poll::Pending => unreachable!("rejections are immediate"),
            }
        })
    });
    g.bench_function("verify_uncached_sqlite", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % SQLITE_KEYS;
                request(&sqlite_keys[next])
            },
            |req| {
                REQS.fetch_add(1, Ordering::Relaxed);
                let res = rt.block_on(sqlite_svc.clone().oneshot(req)).unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res
            },
            BatchSize::SmallInput,
        )
    });
    postgres::bench(&rt, &mut g);
    g.finish();
    eprintln!(
        "verify_uncached_sqlite: {} store queries for {} requests",
        FINDS.load(Ordering::Relaxed),
        REQS.load(Ordering::Relaxed)
    );
}

/// An authenticator over `store` with a cache far smaller than its key set, and the keys: cycled
/// through, (nearly) every request misses.
fn uncached<S: tower_auth_apikey::KeyStore>(
    rt: &tokio::runtime::Runtime,
    store: S,
) -> (ApiKeyAuthenticator, Vec<String>) {
    let auth = ApiKeyAuthenticator::builder(store)
        .cache(CacheConfig::builder().max_capacity(8).build().unwrap())
        .build()
        .unwrap();
    let keys = (0..SQLITE_KEYS)
        .map(|_| {
            rt.block_on(auth.admin().create(NewKey::new("bench")))
                .unwrap()
                .key
                .expose_secret()
                .to_owned()
        })
        .collect();
    (auth, keys)
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use tower_auth_apikey::PostgresStore;

    static FINDS: AtomicUsize = AtomicUsize::new(0);
    static REQS: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn bench(
        rt: &tokio::runtime::Runtime,
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    ) {
        let Ok(url) = std::env::var("TOWER_AUTH_TEST_PG_URL") else {
            eprintln!(
                "verify_uncached_postgres: skipped, TOWER_AUTH_TEST_PG_URL is not set \
                 (start a server with `scripts/test --services-only` and export the variables it \
                 prints, then run `cargo bench -p tower-auth-apikey --features postgres --bench apikey`)"
            );
            return;
        };
        // A database of its own on that server, dropped afterwards.
        let name = format!("bench_apikey_{}", std::process::id());
        let server = rt.block_on(sqlx::PgPool::connect(&url)).unwrap();
        rt.block_on(sqlx::query(&format!("CREATE DATABASE {name}")).execute(&server))
            .unwrap();
        let db_url = with_database(&url, &name);
        let store = rt.block_on(PostgresStore::connect(&db_url)).unwrap();
        let (auth, keys) = uncached(rt, Counting(store, &FINDS));
        let svc = AuthenticateLayer::required(auth.clone()).layer(inner());
        let mut next = 0;
        g.bench_function("verify_uncached_postgres", |b| {
            b.iter_batched(
                || {
                    next = (next + 1) % keys.len();
                    request(&keys[next])
                },
                |req| {
                    REQS.fetch_add(1, Ordering::Relaxed);
                    let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    res
                },
                BatchSize::SmallInput,
            )
        });
        eprintln!(
            "verify_uncached_postgres: {} store queries for {} requests",
            FINDS.load(Ordering::Relaxed),
            REQS.load(Ordering::Relaxed)
        );
        drop((svc, auth));
        rt.block_on(sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&server))
            .unwrap();
    }

    fn with_database(url: &str, db: &str) -> String {
        let (base, query) = url
            .split_once('?')
            .map_or((url, None), |(b, q)| (b, Some(q)));
        let slash = base
            .rfind('/')
            .filter(|i| *i > base.find("://").unwrap() + 2);
        let base = slash.map_or(base, |i| &base[..i]);
        match query {
            Some(q) => format!("{base}/{db}?{q}"),
            None => format!("{base}/{db}"),
        }
    }
}

#[cfg(not(feature = "postgres"))]
mod postgres {
    pub(super) fn bench(
        _: &tokio::runtime::Runtime,
        _: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    ) {
        eprintln!(
            "verify_uncached_postgres: skipped, built without the `postgres` feature (run \
             `cargo bench -p tower-auth-apikey --features postgres --bench apikey` with \
             TOWER_AUTH_TEST_PG_URL set, e.g. by `scripts/test --services-only`)"
        );
    }
}

static FINDS: AtomicUsize = AtomicUsize::new(0);
static REQS: AtomicUsize = AtomicUsize::new(0);

/// Counts lookups, to show that every uncached request reached the store.
struct Counting<S>(S, &'static AtomicUsize);

impl<S: tower_auth_apikey::KeyStore> tower_auth_apikey::KeyStore for Counting<S> {
    fn find_by_hash<'a>(
        &'a self,
        hash: &'a tower_auth_apikey::KeyHash,
    ) -> tower_auth_apikey::StoreFuture<'a, Option<tower_auth_apikey::KeyRecord>> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.find_by_hash(hash)
    }
    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> tower_auth_apikey::StoreFuture<'a, Option<tower_auth_apikey::KeyRecord>> {
        self.0.get(id)
    }
    fn list(&self) -> tower_auth_apikey::StoreFuture<'_, Vec<tower_auth_apikey::KeyRecord>> {
        self.0.list()
    }
    fn insert<'a>(
        &'a self,
        key: &'a tower_auth_apikey::StoredKey,
    ) -> tower_auth_apikey::StoreFuture<'a, ()> {
        self.0.insert(key)
    }
    fn revoke<'a>(
        &'a self,
        id: &'a str,
        at: std::time::SystemTime,
    ) -> tower_auth_apikey::StoreFuture<'a, Option<tower_auth_apikey::StoredKey>> {
        self.0.revoke(id, at)
    }
    fn rotate<'a>(
        &'a self,
        id: &'a str,
        at: std::time::SystemTime,
        new: &'a tower_auth_apikey::StoredKey,
    ) -> tower_auth_apikey::StoreFuture<'a, Option<tower_auth_apikey::StoredKey>> {
        self.0.rotate(id, at, new)
    }
    fn record_last_used<'a>(
        &'a self,
        batch: &'a [(String, std::time::SystemTime)],
    ) -> tower_auth_apikey::StoreFuture<'a, ()> {
        self.0.record_last_used(batch)
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
