//! `scale`: API keys at the sizes DESIGN.md's "Scale" names, on one instance.
//!
//! For SQLite (a temporary file) and, when it can, PostgreSQL:
//! - the time to bulk-load `TOWER_AUTH_SCALE_KEYS` keys (default 1,000,000) with
//!   `bulk_insert`, and to load the authenticator's filter of known keys from them;
//! - uncached lookup latency, p50 / p99 over 20,000 random distinct keys: the store's
//!   `find_by_hash` alone, and a whole cache miss through the authenticator (extract, hash,
//!   filter, cache, store).
//!
//! Then, on a `MemoryStore` of 100,000 keys, the hot set cached:
//! - memory per cached entry: the bytes the process still holds after filling the cache with
//!   all 100,000 (allocations minus frees on the filling thread, counted by
//!   `allocation-counter`), divided by 100,000;
//! - cache-hit latency (extract, hash, cache hit) for random keys of the hot set beside the
//!   same for one key asked again and again and for random keys among 1,000 of them; mean over
//!   1,000,000 requests, median of 5 runs. The memory figure leaves out the last-used times
//!   noted meanwhile (written and dropped before the count is read).
//!
//! Run: `cargo bench -p tower-auth-apikey --features testing --bench scale`
//! (`TOWER_AUTH_SCALE_PART=hot` for the hot set alone)
//! With Postgres: start a server with `scripts/test --services-only`, export the variables it
//! prints, and add `--features testing,postgres`; without `TOWER_AUTH_TEST_PG_URL` the
//! Postgres part says so and is skipped.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::Request;
use http::request::Parts;
use tower_auth_apikey::store::testing::numbered_key;
use tower_auth_apikey::{ApiKeyAuthenticator, KeyStore, MemoryStore, SqliteStore};
use tower_auth_core::{Authenticator, CacheConfig};

// Counts allocations of the thread that asks (for the memory per cached entry).
use allocation_counter as _;

const PREFIX: &str = "sk_live";
const SAMPLES: usize = 20_000;
const HOT: u64 = 100_000;
const HITS: usize = 1_000_000;

fn keys() -> u64 {
    std::env::var("TOWER_AUTH_SCALE_KEYS").map_or(1_000_000, |v| v.parse().unwrap())
}

/// A fixed pseudo-random sequence (splitmix64) of distinct-enough key numbers below `n`.
struct Picks(u64);

impl Picks {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }

    /// `count` distinct numbers below `n`.
    fn distinct(&mut self, count: usize, n: u64) -> Vec<u64> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(count);
        while out.len() < count.min(n as usize) {
            let k = self.next_below(n);
            if seen.insert(k) {
                out.push(k);
            }
        }
        out
    }
}

fn parts(key: &str) -> Parts {
    Request::get("/items")
        .header("x-api-key", key)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    format!("p50 {:>9.1?}  p99 {:>9.1?}", at(0.50), at(0.99))
}

/// Runs the store part: load, filter load, uncached lookups.
async fn store_part(name: &str, store: Arc<dyn KeyStore>, n: u64) {
    let mut picks = Picks(7);

    // The store alone.
    let mut times = Vec::with_capacity(SAMPLES);
    for k in picks.distinct(SAMPLES, n) {
        let (_, stored) = numbered_key(PREFIX, k);
        let start = Instant::now();
        let found = store.find_by_hash(&stored.hash).await.unwrap();
        times.push(start.elapsed());
        assert!(found.is_some());
    }
    println!(
        "{name}: find_by_hash, {n} keys:            {}",
        percentiles(times)
    );

    // A whole cache miss through the authenticator (filter on, loaded first).
    let start = Instant::now();
    let auth = ApiKeyAuthenticator::builder(Arc::clone(&store))
        .build()
        .unwrap();
    while !auth.key_filter_loaded() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "{name}: filter of known keys loaded in {:.2?} (from the build of the authenticator)",
        start.elapsed()
    );
    let mut times = Vec::with_capacity(SAMPLES);
    for k in picks.distinct(SAMPLES, n) {
        let (key, _) = numbered_key(PREFIX, k);
        let parts = parts(&key);
        let start = Instant::now();
        let found = auth.extract(&parts).unwrap().unwrap();
        let principal = auth.authenticate(found.credential).await;
        times.push(start.elapsed());
        assert!(principal.is_ok());
    }
    println!(
        "{name}: cache miss through the authenticator: {}",
        percentiles(times)
    );
}

fn sqlite(rt: &tokio::runtime::Runtime, n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("scale.db").display());
    rt.block_on(async {
        let store = SqliteStore::connect(&url).await.unwrap();
        let start = Instant::now();
        store
            .bulk_insert((0..n).map(|k| numbered_key(PREFIX, k).1))
            .await
            .unwrap();
        println!("sqlite: bulk_insert of {n} keys: {:.2?}", start.elapsed());
        store_part("sqlite", Arc::new(store), n).await;
    });
}

#[cfg(feature = "postgres")]
fn postgres(rt: &tokio::runtime::Runtime, n: u64) {
    use tower_auth_apikey::PostgresStore;

    let Ok(url) = std::env::var("TOWER_AUTH_TEST_PG_URL") else {
        println!(
            "postgres: skipped, TOWER_AUTH_TEST_PG_URL is not set (start a server with \
             `scripts/test --services-only`, export the variables it prints, and run \
             `cargo bench -p tower-auth-apikey --features testing,postgres --bench scale`)"
        );
        return;
    };
    // A database of its own on that server, dropped afterwards.
    let name = format!("bench_scale_{}", std::process::id());
    rt.block_on(async {
        let server = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&server)
            .await
            .unwrap();
        let store = PostgresStore::connect(&with_database(&url, &name))
            .await
            .unwrap();
        let start = Instant::now();
        store
            .bulk_insert((0..n).map(|k| numbered_key(PREFIX, k).1))
            .await
            .unwrap();
        println!("postgres: bulk_insert of {n} keys: {:.2?}", start.elapsed());
        store_part("postgres", Arc::new(store.clone()), n).await;
        store.close().await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&server)
            .await
            .unwrap();
    });
}

#[cfg(feature = "postgres")]
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

#[cfg(not(feature = "postgres"))]
fn postgres(_: &tokio::runtime::Runtime, _: u64) {
    println!(
        "postgres: skipped, built without the `postgres` feature (run `cargo bench -p \
         tower-auth-apikey --features testing,postgres --bench scale` with TOWER_AUTH_TEST_PG_URL \
         set, e.g. by `scripts/test --services-only`)"
    );
}

/// Answers one request whose lookup is a cache hit, without an executor.
fn hit(auth: &ApiKeyAuthenticator, parts: &Parts) {
    let found = auth.extract(parts).unwrap().unwrap();
    let fut = pin!(auth.authenticate(found.credential));
    match fut.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(principal) => {
            black_box(principal.unwrap());
        }
        Poll::Pending => panic!("not a cache hit"),
    }
}

/// Mean time of a hit over `HITS` requests cycling through `order`; median of 5 runs.
fn hit_latency(auth: &ApiKeyAuthenticator, requests: &[Parts], order: &[usize]) -> Duration {
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..HITS {
                hit(auth, &requests[order[i % order.len()]]);
            }
            start.elapsed() / HITS as u32
        })
        .collect();
    runs.sort();
    runs[2]
}

fn hot_set() {
    // On this thread, so that the allocation counter sees every byte the cache keeps.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let keys: Vec<String> = rt.block_on(async {
        let mut keys = Vec::new();
        for k in 0..HOT {
            let (key, stored) = numbered_key(PREFIX, k);
            store.insert(&stored).await.unwrap();
            keys.push(key);
        }
        keys
    });
    let requests: Vec<Parts> = keys.iter().map(|k| parts(k)).collect();
    // Room for the whole hot set (the default capacity is 100,000, which admission may trim).
    let auth = ApiKeyAuthenticator::builder(Arc::clone(&store))
        .cache(
            CacheConfig::builder()
                .max_capacity(2 * HOT)
                .ttl(Duration::from_secs(3600))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let info = allocation_counter::measure(|| {
        rt.block_on(async {
            for parts in &requests {
                let found = auth.extract(parts).unwrap().unwrap();
                auth.authenticate(found.credential).await.unwrap();
            }
            assert_eq!(auth.cached_entries().await, HOT);
            // The last-used times noted meanwhile are written and dropped: not the cache's.
            auth.flush_last_used().await.unwrap();
        });
    });
    println!(
        "hot set: {HOT} keys cached: {} bytes held ({:.0} bytes per cached entry), {} allocations \
         held ({:.1} per entry)",
        info.bytes_current,
        info.bytes_current as f64 / HOT as f64,
        info.count_current,
        info.count_current as f64 / HOT as f64,
    );

    let mut picks = Picks(11);
    let random: Vec<usize> = (0..HITS).map(|_| picks.next_below(HOT) as usize).collect();
    let few: Vec<usize> = (0..HITS)
        .map(|_| picks.next_below(1_000) as usize)
        .collect();
    let one = hit_latency(&auth, &requests, &[0]);
    let thousand = hit_latency(&auth, &requests, &few);
    let spread = hit_latency(&auth, &requests, &random);
    println!(
        "hot set: cache hit (mean per request, median of 5 runs of {HITS}): one key again and \
         again {one:.1?}; random keys of 1,000 of them {thousand:.1?}; random keys of all \
         {HOT} {spread:.1?}"
    );
}

fn main() {
    // `TOWER_AUTH_SCALE_PART=hot` runs the hot set alone.
    if std::env::var("TOWER_AUTH_SCALE_PART").is_ok_and(|p| p == "hot") {
        hot_set();
        return;
    }
    let n = keys();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    sqlite(&rt, n);
    postgres(&rt, n);
    drop(rt);
    hot_set();
}
