//! API keys on PostgreSQL, the store shared by many instances: the store conformance suite (and
//! SQLite's, for comparison), migrations racing at start-up, revocations and rotations reaching
//! another instance through LISTEN/NOTIFY, the listener reconnecting after its connection is
//! killed, and an outage (the test's own cluster stopped and started again).
//!
//! Each test uses a database of its own (or, for the outage, a cluster of its own), so the
//! tests run in parallel. Run them with `scripts/test -p tower-auth-tests --test postgres`.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_auth_apikey::{ApiKeyAuthenticator, ApiKeys, NewKey, PostgresStore, SqliteStore};
use tower_auth_core::{AuthenticateLayer, CacheConfig};
use tower_auth_tests::{OwnPostgres, PgDatabase};

const LISTENER: &str = "tower-auth-apikey-listener";
/// How long a change may take to reach another instance before the test fails: far below the
/// 30 s cache TTL, far above what LISTEN/NOTIFY takes.
const PROPAGATION_BOUND: Duration = Duration::from_secs(5);

/// One request with `key` through `AuthenticateLayer::required(auth)`: the status, and whether
/// the inner service ran.
async fn call(auth: &ApiKeyAuthenticator, key: &str) -> Response<()> {
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
}

async fn status(auth: &ApiKeyAuthenticator, key: &str) -> StatusCode {
    call(auth, key).await.status()
}

/// Polls every 2 ms until `auth` answers `want` for `key`; the time it took, or `None` after
/// [`PROPAGATION_BOUND`].
async fn time_until(auth: &ApiKeyAuthenticator, key: &str, want: StatusCode) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < PROPAGATION_BOUND {
        if status(auth, key).await == want {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// Waits until `db` has exactly `n` listening connections; their pids.
async fn listeners(db: &PgDatabase, n: usize) -> Vec<i32> {
    db.wait_for_backends(LISTENER, n).await
}

/// An instance: its own store (its own pool and listener) on `url`, default cache (30 s TTL).
async fn instance(url: &str) -> ApiKeyAuthenticator {
    let store = PostgresStore::connect(url).await.unwrap();
    ApiKeyAuthenticator::builder(store).build().unwrap()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn store_conformance_on_postgres() {
    let db = PgDatabase::create().await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    tower_auth_apikey::store::testing::conformance(&store).await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn store_conformance_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("keys.db")).await.unwrap();
    tower_auth_apikey::store::testing::conformance(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn instances_starting_together_migrate_once() {
    let db = PgDatabase::create().await;
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    for s in starts {
        let store = s.await.unwrap().unwrap();
        store.close().await;
    }
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tower_auth_apikey_migrations")
        .fetch_one(&sqlx::PgPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    // Each of the crate's migrations, once.
    assert_eq!(applied, 3);
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn changed_or_newer_migrations_are_refused() {
    let db = PgDatabase::create().await;
    PostgresStore::connect(&db.url).await.unwrap().close().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE tower_auth_apikey_migrations SET checksum = '\\x00' WHERE version = 1")
        .execute(&pool)
        .await
        .unwrap();
    let e = PostgresStore::connect(&db.url).await.unwrap_err();
    assert!(e.to_string().contains("differs"), "{e}");
    sqlx::raw_sql(
        "DELETE FROM tower_auth_apikey_migrations;
         INSERT INTO tower_auth_apikey_migrations VALUES (999, 'future', '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let e = PostgresStore::connect(&db.url).await.unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
    pool.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn a_revocation_reaches_another_instance_at_once() {
    let db = PgDatabase::create().await;
    let a = instance(&db.url).await;
    let b = instance(&db.url).await;
    listeners(&db, 2).await;

    let created = a.admin().create(NewKey::new("cron")).await.unwrap();
    let key = created.key.expose_secret();
    assert_eq!(status(&a, key).await, StatusCode::OK);
    // b admits a key created elsewhere once notified (its filter of known keys).
    time_until(&b, key, StatusCode::OK)
        .await
        .expect("the creation reaches the other instance");
    // Cached on b now (30 s TTL): without a notification b would accept it for 30 s.
    assert_eq!(b.cached_entries().await, 1);

    a.admin().revoke(&created.record.id).await.unwrap();
    assert_eq!(status(&a, key).await, StatusCode::UNAUTHORIZED);
    let delay = time_until(&b, key, StatusCode::UNAUTHORIZED)
        .await
        .expect("the revocation reaches the other instance");
    println!("revocation through instance a seen by instance b after {delay:?}");

    // A standalone admin (the CLI, another process without an authenticator) notifies too.
    let cli = ApiKeys::builder(PostgresStore::connect(&db.url).await.unwrap())
        .build()
        .unwrap();
    let other = cli.create(NewKey::new("batch")).await.unwrap();
    let other_key = other.key.expose_secret();
    for auth in [&a, &b] {
        time_until(auth, other_key, StatusCode::OK)
            .await
            .expect("a creation through a standalone admin reaches every instance");
    }
    cli.revoke(&other.record.id).await.unwrap();
    for (name, auth) in [("a", &a), ("b", &b)] {
        let delay = time_until(auth, other_key, StatusCode::UNAUTHORIZED)
            .await
            .expect("a revocation through a standalone admin reaches every instance");
        println!("revocation through a standalone admin seen by instance {name} after {delay:?}");
    }
    drop((a, b));
    db.drop_database().await;
}

/// Waits (at most [`PROPAGATION_BOUND`]) until `auth`'s filter of known keys is loaded.
async fn filter_loaded(auth: &ApiKeyAuthenticator) {
    let start = Instant::now();
    while !auth.key_filter_loaded() {
        assert!(
            start.elapsed() < PROPAGATION_BOUND,
            "the filter of known keys did not load"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn a_key_created_elsewhere_passes_the_filter_once_notified() {
    let db = PgDatabase::create().await;
    let a = instance(&db.url).await;
    let b = instance(&db.url).await;
    listeners(&db, 2).await;
    filter_loaded(&b).await;

    // Unknown to b's filter until the creation's NOTIFY arrives.
    let created = a.admin().create(NewKey::new("cron")).await.unwrap();
    let delay = time_until(&b, created.key.expose_secret(), StatusCode::OK)
        .await
        .expect("the creation reaches the other instance");
    println!("creation through instance a admitted by instance b after {delay:?}");
    // Inserted by the notification, not by a reload of the whole filter.
    assert!(b.key_filter_loaded());

    // So is the key a rotation creates, and one a standalone admin creates.
    let rotated = a
        .admin()
        .rotate(&created.record.id, Duration::from_secs(60))
        .await
        .unwrap();
    time_until(&b, rotated.key.expose_secret(), StatusCode::OK)
        .await
        .expect("the rotated key reaches the other instance");
    let cli = ApiKeys::builder(PostgresStore::connect(&db.url).await.unwrap())
        .build()
        .unwrap();
    let other = cli.create(NewKey::new("batch")).await.unwrap();
    for auth in [&a, &b] {
        time_until(auth, other.key.expose_secret(), StatusCode::OK)
            .await
            .expect("a creation through a standalone admin reaches every instance");
    }
    drop((a, b));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn a_rotation_moves_the_old_expiry_on_every_instance() {
    let db = PgDatabase::create().await;
    let a = instance(&db.url).await;
    let b = instance(&db.url).await;
    listeners(&db, 2).await;
    let created = a.admin().create(NewKey::new("cron")).await.unwrap();
    let old = created.key.expose_secret();
    time_until(&b, old, StatusCode::OK)
        .await
        .expect("the creation reaches the other instance");

    // No grace: the old key expires now. b has it cached with no expiry at all.
    let new = a
        .admin()
        .rotate(&created.record.id, Duration::ZERO)
        .await
        .unwrap();
    let delay = time_until(&b, old, StatusCode::UNAUTHORIZED)
        .await
        .expect("the rotation reaches the other instance");
    println!("rotation through instance a seen by instance b after {delay:?}");
    assert_eq!(status(&b, new.key.expose_secret()).await, StatusCode::OK);
    drop((a, b));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn the_listener_reconnects_after_its_connection_is_killed() {
    let db = PgDatabase::create().await;
    let a = instance(&db.url).await;
    let b = instance(&db.url).await;
    let before = listeners(&db, 2).await;

    let k1 = a.admin().create(NewKey::new("one")).await.unwrap();
    let k2 = a.admin().create(NewKey::new("two")).await.unwrap();
    for k in [&k1, &k2] {
        time_until(&b, k.key.expose_secret(), StatusCode::OK)
            .await
            .expect("the creation reaches the other instance");
    }
    // A change that sends no notification (made in SQL by hand): b cannot know...
    sqlx::query("UPDATE tower_auth_api_keys SET revoked_at = 1 WHERE id = $1")
        .bind(&k1.record.id)
        .execute(&sqlx::PgPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(status(&b, k1.key.expose_secret()).await, StatusCode::OK);

    // ...until its listener reconnects, after which it clears its cache (it may have missed
    // notifications).
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = $2",
    )
    .bind(&db.name)
    .bind(LISTENER)
    .fetch_all(db.server())
    .await
    .unwrap();
    assert_eq!(killed, [true, true]);
    let start = Instant::now();
    let after = loop {
        let pids = db.backends(LISTENER).await;
        if pids.len() == 2 && pids.iter().all(|p| !before.contains(p)) {
            break pids;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the listeners did not reconnect: {pids:?} (killed {before:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "listeners {before:?} killed, reconnected as {after:?} after {:?}",
        start.elapsed()
    );
    let delay = time_until(&b, k1.key.expose_secret(), StatusCode::UNAUTHORIZED)
        .await
        .expect("the cache is cleared after reconnecting");
    println!("cache cleared {delay:?} after the listeners were back");

    // And notifications flow again.
    assert_eq!(
        status(&b, k2.key.expose_secret()).await,
        StatusCode::OK,
        "reloaded after the clear"
    );
    a.admin().revoke(&k2.record.id).await.unwrap();
    let delay = time_until(&b, k2.key.expose_secret(), StatusCode::UNAUTHORIZED)
        .await
        .expect("a revocation after the reconnection still propagates");
    println!("revocation after the reconnection seen by instance b after {delay:?}");
    drop((a, b));
    db.drop_database().await;
}

/// A TCP proxy on 127.0.0.1 in front of the Postgres server of `url`, whose connections can be
/// made to go silent: bytes in both directions are dropped while the sockets stay open, as when
/// a NAT or load balancer forgets a connection. Connections made afterwards work.
struct SilentProxy {
    addr: SocketAddr,
    /// Connections accepted before the latest [`silence`](Self::silence) drop everything.
    epoch: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentProxy {
    async fn start(url: &str) -> Self {
        let upstream = {
            let rest = url.split_once('@').unwrap().1;
            rest.split('/').next().unwrap().to_owned()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let epoch = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let epoch = Arc::clone(&epoch);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let born = epoch.load(Ordering::SeqCst);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, Arc::clone(&epoch), born));
                    tokio::spawn(pump(sr, cw, Arc::clone(&epoch), born));
                }
            }
        });
        Self { addr, epoch, task }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url(&self, url: &str) -> String {
        let (head, rest) = url.split_once('@').unwrap();
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        format!("{head}@{}/{path}", self.addr)
    }

    /// Every connection open now goes silent.
    fn silence(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    epoch: Arc<AtomicU64>,
    born: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if epoch.load(Ordering::SeqCst) != born {
            continue; // silent: dropped, and the socket stays open
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn a_silently_dropped_listener_is_found_by_its_heartbeat() {
    let db = PgDatabase::create().await;
    let proxy = SilentProxy::start(&db.url).await;
    let a = instance(&db.url).await;
    // Instance b reaches the server through the proxy, and checks a quiet listener every
    // 200 ms.
    let b_store = PostgresStore::builder(proxy.url(&db.url))
        .listener_heartbeat(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let b = ApiKeyAuthenticator::builder(b_store).build().unwrap();
    let k = a.admin().create(NewKey::new("one")).await.unwrap();
    time_until(&b, k.key.expose_secret(), StatusCode::OK)
        .await
        .expect("the creation reaches the other instance");
    listeners(&db, 2).await;

    // b's connections go silent: the revocation's notification never reaches b, whose cached
    // entry (TTL 30 s) would answer 200 until the heartbeat finds the dead connection, the
    // listener reconnects and b clears its cache. (A lookup on one of b's silent pool
    // connections meanwhile is a 503 at the store deadline.)
    proxy.silence();
    a.admin().revoke(&k.record.id).await.unwrap();
    let start = Instant::now();
    let seen = loop {
        match status(&b, k.key.expose_secret()).await {
            StatusCode::UNAUTHORIZED => break start.elapsed(),
            s => assert!(
                s == StatusCode::OK || s == StatusCode::SERVICE_UNAVAILABLE,
                "{s}"
            ),
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the silent listener was never replaced: b still accepts the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("revocation seen by b {seen:?} after its listener went silent");
    drop((a, b));
    drop(proxy);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn dropping_the_authenticator_closes_its_listening_connection() {
    let db = PgDatabase::create().await;
    let a = instance(&db.url).await;
    let clone = a.clone();
    listeners(&db, 1).await;
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    listeners(&db, 1).await;
    drop(clone);
    listeners(&db, 0).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn an_outage_is_503_within_the_deadline_and_recovers_by_itself() {
    let pg = OwnPostgres::start();
    let store = PostgresStore::connect(&pg.url).await.unwrap();
    let deadline = Duration::from_secs(2);
    // A short TTL so that requests during the outage reach the store instead of the cache.
    let auth = ApiKeyAuthenticator::builder(store)
        .cache(
            CacheConfig::builder()
                .ttl(Duration::from_millis(50))
                .negative_ttl(Duration::from_millis(50))
                .build()
                .unwrap(),
        )
        .store_timeout(deadline)
        .build()
        .unwrap();
    // Another instance, default TTL: its listener lives through the outage.
    let watcher = instance(&pg.url).await;
    let created = auth.admin().create(NewKey::new("cron")).await.unwrap();
    let key = created.key.expose_secret();
    assert_eq!(status(&auth, key).await, StatusCode::OK);
    assert_eq!(status(&watcher, key).await, StatusCode::OK);

    pg.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let start = Instant::now();
        let res = call(&auth, key).await;
        let took = start.elapsed();
        slowest = slowest.max(took);
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "never 2xx while the store is down"
        );
        assert!(res.headers().contains_key("retry-after"));
        // The deadline, plus slack for a loaded machine: the request must not hang on the pool.
        assert!(
            took < deadline + Duration::from_secs(2),
            "503 within the deadline, took {took:?}"
        );
    }
    println!("postgres down: 503 in at most {slowest:?} (deadline {deadline:?})");

    pg.restart();
    let start = Instant::now();
    let back = loop {
        let s = status(&auth, key).await;
        if s == StatusCode::OK {
            break start.elapsed();
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the service did not recover after postgres came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("postgres back: 200 again after {back:?}");

    // The listener of the other instance is back too (it may be in its backoff, up to 5 s):
    // a revocation reaches it.
    let server = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let start = Instant::now();
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(LISTENER)
                .fetch_one(&server)
                .await
                .unwrap();
        if n == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the listeners did not reconnect after the outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("listeners back {:?} after postgres", start.elapsed() + back);
    assert_eq!(status(&watcher, key).await, StatusCode::OK);
    auth.admin().revoke(&created.record.id).await.unwrap();
    let delay = time_until(&watcher, key, StatusCode::UNAUTHORIZED)
        .await
        .expect("revocations propagate again after the outage");
    println!("revocation after the outage seen by the other instance after {delay:?}");
    server.close().await;
}
