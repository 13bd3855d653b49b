//! `revocation_scale`: a revocation list at a million entries (DESIGN.md, "Scale").
//!
//! Criterion:
//! - `revocation_scale/check_miss/{10k,1M}`: `RevocationList::check` of a token whose random
//!   `jti` is not on a list of 10,000 or 1,000,000 random `jti`s (each check a fresh `jti`,
//!   built outside the timing, so the table probe is a cold lookup as in a real request).
//!
//! Plain timers, printed (each a few rounds, every figure shown):
//! - `apply_100k_one_at_a_time`: 100,000 `revoke_token` calls, one at a time, onto the list of
//!   1M; the store's writes are no-ops here (store commits are measured by the loads below
//!   and by the store tests), so this is the in-memory list's cost.
//! - `memory_per_entry`: bytes allocated and kept by filling an empty list with 1M entries
//!   (counted by `allocation-counter`, the requested sizes without the allocator's own
//!   overhead), and the growth of the process's resident set (`/proc/self/statm`).
//! - `load_1m/sqlite`, `load_1m/postgres`: `RevocationList::load` of 1M entries, bulk-inserted
//!   with one SQL statement first (SQLite in a temporary file; PostgreSQL at
//!   `TOWER_AUTH_TEST_PG_URL`, e.g. from `scripts/test --services-only`: without it that
//!   figure is skipped, saying so).
//!
//! Run: `cargo bench -p tower-auth-jwt --features sqlite,postgres --bench revocation_scale --
//! --measurement-time 3 --warm-up-time 1`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion};
use sqlx::Connection;
use tower_auth_jwt::revocation::{
    PostgresRevocationStore, Revocation, RevocationBatch, RevocationCheck, RevocationList,
    RevocationStatus, RevocationStore, SqliteRevocationStore, StoreFuture, TokenIdentity,
};

const ISS: &str = "https://issuer.example.com";
const HOUR: Duration = Duration::from_secs(3600);

/// splitmix64: reproducible pseudo-random `jti`s without a dependency.
struct Jtis(u64);

impl Jtis {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A UUID-shaped `jti` (36 bytes).
    fn jti(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A store holding a fixed set of entries, whose writes do nothing: the list's own cost.
struct Fixed(Arc<Vec<Revocation>>);

impl RevocationStore for Fixed {
    fn add_revocation<'a>(&'a self, _: &'a Revocation) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn revocations(&self, _: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        let entries = self.0.to_vec();
        Box::pin(async move { Ok(RevocationBatch::new(entries, 1)) })
    }
    fn revocations_since(&self, _: u64) -> StoreFuture<'_, RevocationBatch> {
        Box::pin(async { Ok(RevocationBatch::new(Vec::new(), 1)) })
    }
    fn delete_revocations_expired_before(&self, _: SystemTime) -> StoreFuture<'_, u64> {
        Box::pin(async { Ok(0) })
    }
}

fn entries(n: usize, seed: u64) -> Vec<Revocation> {
    let now = SystemTime::now();
    let mut jtis = Jtis(seed);
    (0..n)
        .map(|_| Revocation::token(ISS, jtis.jti(), now + HOUR, now))
        .collect()
}

/// A list whose background tasks stay quiet during the bench.
fn list(store: impl RevocationStore) -> RevocationList {
    RevocationList::builder(store)
        .poll_interval(HOUR)
        .purge_interval(HOUR)
        .reload_interval(HOUR)
        .full_read_timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn loaded(rt: &tokio::runtime::Runtime, n: usize) -> RevocationList {
    let l = list(Fixed(Arc::new(entries(n, 1))));
    rt.block_on(l.load()).unwrap();
    assert_eq!(l.revoked_tokens(), n);
    l
}

fn check_miss(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("revocation_scale/check_miss");
    for (label, n) in [("10k", 10_000), ("1M", 1_000_000)] {
        let list = loaded(rt, n);
        // Another seed: none of these is on the list.
        let mut jtis = Jtis(2);
        let now = SystemTime::now();
        g.bench_function(label, |b| {
            b.iter_batched_ref(
                || TokenIdentity::new(ISS, None, Some(jtis.jti()), Some(now), None),
                |t| {
                    let status = list.check(black_box(t));
                    debug_assert_eq!(status, RevocationStatus::Valid);
                    status
                },
                // Small batches: the token of each check is in cache, as it is in a request
                // that has just parsed it; only the table is cold.
                BatchSize::NumIterations(256),
            );
        });
    }
    g.finish();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn apply_one_at_a_time(rt: &tokio::runtime::Runtime) {
    let list = loaded(rt, 1_000_000);
    for round in 0..3 {
        let mut jtis = Jtis(100 + round);
        let fresh: Vec<String> = (0..100_000).map(|_| jtis.jti()).collect();
        let exp = Some(SystemTime::now() + HOUR);
        let started = Instant::now();
        rt.block_on(async {
            for jti in &fresh {
                list.revoke_token(ISS, jti, exp).await.unwrap();
            }
        });
        let took = started.elapsed();
        println!(
            "revocation_scale/apply_100k_one_at_a_time round {round}: {:.3} s ({:.0} ns each), list now {}",
            took.as_secs_f64(),
            took.as_nanos() as f64 / 1e5,
            list.revoked_tokens()
        );
    }
}

fn memory_per_entry(rt: &tokio::runtime::Runtime) {
    let n = 1_000_000;
    let store = Fixed(Arc::new(entries(n, 3)));
    let l = list(store);
    let rss_before = rss_bytes();
    let info = allocation_counter::measure(|| rt.block_on(l.load()).unwrap());
    let rss_after = rss_bytes();
    println!(
        "revocation_scale/memory_per_entry: {} entries ({ISS:?}, 36-byte jtis): {:.0} bytes allocated and kept per entry ({} bytes); resident set grew {:.0} bytes per entry ({} -> {} bytes; includes the store batch freed but kept by the allocator)",
        l.revoked_tokens(),
        info.bytes_current as f64 / n as f64,
        info.bytes_current,
        (rss_after.saturating_sub(rss_before)) as f64 / n as f64,
        rss_before,
        rss_after
    );
}

fn now_millis() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn time_load(rt: &tokio::runtime::Runtime, label: &str, store: impl RevocationStore) {
    let l = list(store);
    let started = Instant::now();
    rt.block_on(l.load()).unwrap();
    let took = started.elapsed();
    assert_eq!(l.revoked_tokens(), 1_000_000);
    println!(
        "revocation_scale/load_1m/{label}: {:.3} s",
        took.as_secs_f64()
    );
}

fn load_sqlite(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revocations.db");
    let store = rt.block_on(SqliteRevocationStore::open(&path)).unwrap();
    let (now, exp) = (now_millis(), now_millis() + 3_600_000);
    rt.block_on(async {
        let url = format!("sqlite://{}", path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
             INSERT INTO tower_auth_jwt_revocations \
             (kind, issuer, value, issued_before, expires_at, created_at) \
             SELECT 'jti', ?, lower(hex(randomblob(18))), ?, ?, ? FROM n",
        )
        .bind(ISS)
        .bind(now)
        .bind(exp)
        .bind(now)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });
    for _ in 0..2 {
        time_load(rt, "sqlite", store.clone());
    }
}

fn load_postgres(rt: &tokio::runtime::Runtime) {
    let Ok(url) = std::env::var("TOWER_AUTH_TEST_PG_URL") else {
        println!(
            "revocation_scale/load_1m/postgres: SKIPPED: TOWER_AUTH_TEST_PG_URL is not set \
             (start a server with `scripts/test --services-only` and export the URL it prints)"
        );
        return;
    };
    let (now, exp) = (now_millis(), now_millis() + 3_600_000);
    let store = rt.block_on(async {
        // A schema of its own, dropped first, so reruns start from an empty table.
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("DROP SCHEMA IF EXISTS revocation_scale CASCADE")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("CREATE SCHEMA revocation_scale")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options=-c%20search_path%3Drevocation_scale");
        let store = PostgresRevocationStore::connect(&scoped).await.unwrap();
        let mut conn = sqlx::PgConnection::connect(&scoped).await.unwrap();
        sqlx::query(
            "INSERT INTO tower_auth_jwt_revocations \
             (kind, issuer, value, issued_before, expires_at, created_at) \
             SELECT 'jti', $1, md5(i::text) || '-jti', $2, $3, $2 \
             FROM generate_series(1, 1000000) AS i",
        )
        .bind(ISS)
        .bind(now)
        .bind(exp)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        store
    });
    for _ in 0..2 {
        time_load(rt, "postgres", store.clone());
    }
}

fn main() {
    let rt = rt();
    let mut c = Criterion::default().configure_from_args();
    check_miss(&mut c, &rt);
    c.final_summary();
    apply_one_at_a_time(&rt);
    memory_per_entry(&rt);
    load_sqlite(&rt);
    load_postgres(&rt);
}
