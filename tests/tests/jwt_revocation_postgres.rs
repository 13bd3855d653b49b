//! tower-auth-jwt's revocation lists on PostgreSQL: two instances (each its own
//! `PostgresRevocationStore`, pool and `LISTEN` connection, and an issuer on its own
//! `issue::PostgresStore`) on one database. A revoked `jti` is refused
//! at once by the instance that revoked it and, through `LISTEN`/`NOTIFY`, by the other one
//! (the observed delay is printed); a subject cut-off and "log out everywhere" (refresh
//! families included) reach the other instance; a restart reloads the lists; a lost listening
//! connection reconnects and reloads, and so does a frozen one (its heartbeat does not come
//! back); forged or garbage notifications revoke nothing and do not break the feed; another
//! schema's revocations stay there; a purge by an instance whose clock runs far ahead deletes
//! nothing live; the store contract of `revocation::testing` and the log-out-everywhere
//! scenario of `issue::testing`;
//! a heartbeat that cannot be sent (the pool exhausted) keeps the listener; a role without
//! privileges on the revocations' sequence still loads; a batch revocation reaches the other
//! instance.
//!
//! Each test uses a database of its own, so the tests run in parallel. Run them with
//! `scripts/test -p tower-auth-tests --test jwt_revocation_postgres`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_auth_core::clock::ManualClock;
use tower_auth_jwt::issue::testing::SharedStore;
use tower_auth_jwt::issue::{
    IssueErrorKind, JwtIssuer, PostgresStore, RefreshTokens, TokenRequest,
};
use tower_auth_jwt::revocation::{
    PostgresRevocationStore, Revocation, RevocationList, RevocationStore,
};
use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};
use tower_auth_tests::PgDatabase;

const ISS: &str = "https://app.example";
const AUD: &str = "app-api";
const LISTENER: &str = "tower-auth-jwt-revocations";
/// How long a revocation may take to reach the other instance before the test fails: far
/// above what LISTEN/NOTIFY takes (milliseconds), generous for a loaded machine.
const PROPAGATION_BOUND: Duration = Duration::from_secs(5);

/// One process: its own store (pool and listener), revocation list, issuer and verifier (with
/// the verified-token cache, so revocation must reach cached tokens too).
struct Instance {
    list: RevocationList,
    issuer: JwtIssuer,
    auth: JwtAuthenticator,
}

async fn instance(db: &PgDatabase) -> Instance {
    let revocations = PostgresRevocationStore::connect(&db.url).await.unwrap();
    let list = RevocationList::builder(revocations).build().unwrap();
    list.load().await.unwrap();
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let issuer = JwtIssuer::builder(store.clone())
        .issuer(ISS)
        .audience(AUD)
        .client_id("app-web")
        .refresh_tokens(RefreshTokens::new(store))
        .revocation_list(list.clone())
        .build()
        .unwrap();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::EdDSA])
                .key_source(issuer.clone()),
        )
        .verified_token_cache(tower_auth_core::CacheConfig::default())
        .revocation(list.clone())
        .build()
        .unwrap();
    Instance { list, issuer, auth }
}

impl Instance {
    async fn accepts(&self, token: &str) -> bool {
        self.auth.verify(token).await.is_ok()
    }
}

/// Waits until `db` has exactly `n` listening connections; their pids.
async fn listeners(db: &PgDatabase, n: usize) -> Vec<i32> {
    db.wait_for_backends(LISTENER, n).await
}

/// Polls every millisecond until `instance` refuses `token`; the time it took, or `None`
/// after [`PROPAGATION_BOUND`].
async fn time_until_refused(instance: &Instance, token: &str) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < PROPAGATION_BOUND {
        if !instance.accepts(token).await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn a_revoked_jti_is_refused_at_once_here_and_promptly_by_another_instance() {
    let db = PgDatabase::create().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    listeners(&db, 2).await;

    let token = a.issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    let other = a.issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    for i in [&a, &b] {
        assert!(i.accepts(token.as_str()).await);
        assert!(i.accepts(other.as_str()).await);
    }

    let start = Instant::now();
    a.issuer
        .revoke_access_token(token.jti(), Some(token.expires_at()))
        .await
        .unwrap();
    let written = start.elapsed();
    assert!(
        !a.accepts(token.as_str()).await,
        "refused at once by the revoking instance"
    );
    let delay = time_until_refused(&b, token.as_str())
        .await
        .expect("the revocation reaches the other instance");
    println!(
        "jti revocation: written in {written:?}, refused by the other instance {delay:?} after \
         the write returned"
    );
    for i in [&a, &b] {
        assert!(i.accepts(other.as_str()).await, "another token still works");
        assert_eq!(i.list.revoked_tokens(), 1);
    }

    // And the other way round, through the list's admin call.
    let start = Instant::now();
    b.list
        .revoke_token(ISS, other.jti(), Some(other.expires_at()))
        .await
        .unwrap();
    assert!(!b.accepts(other.as_str()).await);
    let delay = time_until_refused(&a, other.as_str())
        .await
        .expect("the revocation reaches the first instance");
    println!(
        "jti revocation b -> a: refused by a {delay:?} after the write returned ({:?} in all)",
        start.elapsed()
    );
    drop((a, b));
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn log_out_everywhere_reaches_another_instance_and_ends_the_sessions() {
    let db = PgDatabase::create().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    listeners(&db, 2).await;

    let laptop = a.issuer.login(&TokenRequest::new("alice")).await.unwrap();
    let phone = b.issuer.login(&TokenRequest::new("alice")).await.unwrap();
    let bob = b.issuer.login(&TokenRequest::new("bob")).await.unwrap();
    for i in [&a, &b] {
        for pair in [&laptop, &phone, &bob] {
            assert!(i.accepts(pair.access_token().as_str()).await);
        }
    }

    assert_eq!(a.issuer.logout_everywhere("alice").await.unwrap(), 2);
    assert!(!a.accepts(laptop.access_token().as_str()).await);
    assert!(!a.accepts(phone.access_token().as_str()).await);
    let delay = time_until_refused(&b, phone.access_token().as_str())
        .await
        .expect("the cut-off reaches the other instance");
    println!("subject cut-off refused by the other instance after {delay:?}");
    assert!(!b.accepts(laptop.access_token().as_str()).await);
    // Bob is untouched.
    assert!(b.accepts(bob.access_token().as_str()).await);
    assert_eq!(b.list.revoked_subjects(), 1);

    // The refresh families ended in the shared database: neither instance refreshes them.
    for (i, pair) in [(&b, &laptop), (&a, &phone)] {
        let e = i
            .issuer
            .refresh(pair.refresh_token().expose_secret())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), IssueErrorKind::InvalidToken);
    }
    b.issuer
        .refresh(bob.refresh_token().expose_secret())
        .await
        .unwrap();

    // A new login after the cut-off's second works on both: issued by an issuer (same
    // database, same keys) whose clock is two seconds ahead, rather than sleeping.
    let later = ManualClock::new(SystemTime::now() + Duration::from_secs(2));
    let b_later = JwtIssuer::builder(PostgresStore::connect(&db.url).await.unwrap())
        .issuer(ISS)
        .audience(AUD)
        .client_id("app-web")
        .clock(later)
        .build()
        .unwrap();
    let again = b_later.issue(&TokenRequest::new("alice")).await.unwrap();
    for i in [&a, &b] {
        assert!(i.accepts(again.as_str()).await);
    }
    drop((a, b));
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn a_restart_reloads_the_lists() {
    let db = PgDatabase::create().await;
    let a = instance(&db).await;
    let revoked = a.issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    let bob = a.issuer.issue(&TokenRequest::new("bob")).await.unwrap();
    let fine = a.issuer.issue(&TokenRequest::new("carol")).await.unwrap();
    a.issuer
        .revoke_access_token(revoked.jti(), Some(revoked.expires_at()))
        .await
        .unwrap();
    a.issuer.logout_everywhere("bob").await.unwrap();
    drop(a);
    // The listener of the dropped list closes with it.
    listeners(&db, 0).await;

    let restarted = instance(&db).await;
    assert_eq!(restarted.list.revoked_tokens(), 1);
    assert_eq!(restarted.list.revoked_subjects(), 1);
    assert!(!restarted.accepts(revoked.as_str()).await);
    assert!(!restarted.accepts(bob.as_str()).await);
    assert!(restarted.accepts(fine.as_str()).await);
    drop(restarted);
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn a_lost_listener_reconnects_and_reloads() {
    let db = PgDatabase::create().await;
    let a = instance(&db).await;
    let b = instance(&db).await;
    let before = listeners(&db, 2).await;
    let token = a.issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    assert!(b.accepts(token.as_str()).await);

    // An entry written without a notification (by hand): b cannot know...
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    };
    let now = ms(std::time::SystemTime::now());
    sqlx::query(
        "INSERT INTO tower_auth_jwt_revocations \
         (kind, issuer, value, issued_before, expires_at, created_at) \
         VALUES ('jti', $1, $2, $3, $4, $3)",
    )
    .bind(ISS)
    .bind(token.jti())
    .bind(now)
    .bind(ms(token.expires_at()) + 600_000)
    .execute(&pool)
    .await
    .unwrap();
    assert!(b.accepts(token.as_str()).await);

    // ...until its listener reconnects, after which it reloads (it may have missed
    // notifications).
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = $2",
    )
    .bind(&db.name)
    .bind(LISTENER)
    .execute(db.server())
    .await
    .unwrap();
    let start = Instant::now();
    loop {
        let pids = db.backends(LISTENER).await;
        if pids.len() == 2 && pids.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the listeners did not reconnect: {pids:?} (killed {before:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delay = time_until_refused(&b, token.as_str())
        .await
        .expect("the list reloads after reconnecting");
    println!("reloaded {delay:?} after the listeners were back");

    // Notifications flow again.
    let next = a.issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    assert!(b.accepts(next.as_str()).await);
    a.issuer
        .revoke_access_token(next.jti(), None)
        .await
        .unwrap();
    let delay = time_until_refused(&b, next.as_str())
        .await
        .expect("a revocation after the reconnection still propagates");
    println!("revocation after the reconnection refused by b after {delay:?}");
    pool.close().await;
    drop((a, b));
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn the_store_contract_and_log_out_everywhere_scenario_hold() {
    let db = PgDatabase::create().await;
    let store = PostgresRevocationStore::connect(&db.url).await.unwrap();
    tower_auth_jwt::revocation::testing::revocation_store_contract(&store).await;
    store.close().await;
    db.drop_database().await;

    let db = PgDatabase::create().await;
    let shared: SharedStore = Arc::new(PostgresStore::connect(&db.url).await.unwrap());
    let revocations: Arc<dyn RevocationStore> =
        Arc::new(PostgresRevocationStore::connect(&db.url).await.unwrap());
    tower_auth_jwt::issue::testing::logout_everywhere(shared, revocations).await;
    db.drop_database().await;
}

/// A backend stopped with SIGSTOP (open, silent, no error: like a connection dropped without
/// a FIN), resumed on drop, so a failing test does not leave it frozen.
struct Frozen(i32);

impl Frozen {
    fn new(pid: i32) -> Self {
        let stop = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(
            stop.success(),
            "cannot freeze backend {pid}: the test needs PostgreSQL on this host, as started \
             by scripts/test"
        );
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

fn ms(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn forged_or_garbage_notifications_revoke_nothing_and_real_ones_still_arrive() {
    let db = PgDatabase::create().await;
    let a = instance(&db).await;
    listeners(&db, 1).await;
    let victim = a.issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    let real = a.issuer.issue(&TokenRequest::new("bob")).await.unwrap();
    assert!(a.accepts(victim.as_str()).await);

    // Anyone who can connect can NOTIFY: an entry in the payload (the old format), a
    // sequence number with no row, garbage, empty.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let forged = serde_json::json!({
        "k": "jti", "i": ISS, "v": victim.jti(), "b": 0, "e": 99_999_999_999_999_i64, "c": 0,
    })
    .to_string();
    let cut = serde_json::json!({
        "k": "subject", "i": ISS, "v": "alice", "b": 99_999_999_999_999_i64,
        "e": 99_999_999_999_999_i64, "c": 0,
    })
    .to_string();
    for payload in [forged.as_str(), cut.as_str(), "424242", "-1", "garbage", ""] {
        sqlx::query("SELECT pg_notify('tower_auth_jwt_revocations.public', $1)")
            .bind(payload)
            .execute(&pool)
            .await
            .unwrap();
    }
    // A real revocation by another process, notified after them: once it is applied, the
    // forged ones (delivered first) have been handled.
    let writer = PostgresRevocationStore::connect(&db.url).await.unwrap();
    let start = Instant::now();
    writer
        .add_revocation(&Revocation::token(
            ISS,
            real.jti(),
            real.expires_at() + Duration::from_secs(600),
            SystemTime::now(),
        ))
        .await
        .unwrap();
    let written = start.elapsed();
    let delay = time_until_refused(&a, real.as_str())
        .await
        .expect("a real revocation still arrives after forged and garbage notifications");
    println!("real revocation after forged ones: written in {written:?}, refused {delay:?} later");
    assert!(
        a.accepts(victim.as_str()).await,
        "a forged notification revoked a token"
    );
    assert_eq!((a.list.revoked_tokens(), a.list.revoked_subjects()), (1, 0));
    writer.close().await;
    pool.close().await;
    drop(a);
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn a_frozen_listener_misses_its_heartbeat_then_reconnects_and_reloads() {
    let db = PgDatabase::create().await;
    let store = PostgresRevocationStore::builder(&db.url)
        .revocation_heartbeat(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let list = RevocationList::builder(store.clone()).build().unwrap();
    list.load().await.unwrap();
    let frozen = listeners(&db, 1).await[0];
    let writer = PostgresStore::connect(&db.url).await.unwrap();
    let issuer = JwtIssuer::builder(writer.clone())
        .issuer(ISS)
        .audience(AUD)
        .client_id("app-web")
        .build()
        .unwrap();
    let token = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    let id = tower_auth_jwt::TokenIdentity::new(
        ISS,
        Some("alice".into()),
        Some(token.jti().into()),
        None,
        None,
    );
    use tower_auth_jwt::{RevocationCheck, RevocationStatus};
    assert_eq!(list.check(&id), RevocationStatus::Valid);

    // The listening backend stops answering (like a connection dropped without a FIN: open,
    // silent, no error), and an entry is written without a notification.
    let frozen_guard = Frozen::new(frozen);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO tower_auth_jwt_revocations \
         (kind, issuer, value, issued_before, expires_at, created_at) \
         VALUES ('jti', $1, $2, $3, $4, $3)",
    )
    .bind(ISS)
    .bind(token.jti())
    .bind(ms(SystemTime::now()))
    .bind(ms(token.expires_at()) + 600_000)
    .execute(&pool)
    .await
    .unwrap();

    // The heartbeat does not come back: a new connection, and a reload that finds the entry.
    let start = Instant::now();
    while list.check(&id) != RevocationStatus::Revoked {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the frozen listener was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "frozen listener replaced and list reloaded {:?} after the freeze (heartbeat 1 s)",
        start.elapsed()
    );
    let now = db.backends(LISTENER).await;
    assert!(
        now.iter().any(|p| *p != frozen),
        "no new listening connection: {now:?}"
    );
    assert!(list.staleness().unwrap() < Duration::from_secs(20));
    drop(frozen_guard);
    pool.close().await;
    writer.close().await;
    drop(list);
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn another_schemas_revocations_stay_there() {
    let db = PgDatabase::create().await;
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    for schema in ["deploy_a", "deploy_b"] {
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
    }
    let url = |schema: &str| {
        let sep = if db.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{schema}", db.url)
    };
    let a = PostgresRevocationStore::connect(&url("deploy_a"))
        .await
        .unwrap();
    let b = PostgresRevocationStore::connect(&url("deploy_b"))
        .await
        .unwrap();
    let list_b = RevocationList::builder(b.clone()).build().unwrap();
    list_b.load().await.unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    let id =
        |jti: &str| tower_auth_jwt::TokenIdentity::new(ISS, None, Some(jti.into()), None, None);
    use tower_auth_jwt::{RevocationCheck, RevocationStatus};
    // Deployment a revokes first (seq 1 in its own table), then b (seq 1 in b's table).
    a.add_revocation(&Revocation::token(ISS, "a-only", later, SystemTime::now()))
        .await
        .unwrap();
    b.add_revocation(&Revocation::token(ISS, "b-own", later, SystemTime::now()))
        .await
        .unwrap();
    let start = Instant::now();
    while list_b.check(&id("b-own")) != RevocationStatus::Revoked {
        assert!(
            start.elapsed() < PROPAGATION_BOUND,
            "b's own revocation never arrived"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(list_b.check(&id("a-only")), RevocationStatus::Valid);
    assert_eq!(list_b.revoked_tokens(), 1);
    a.close().await;
    b.close().await;
    admin.close().await;
    drop(list_b);
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn a_purge_by_an_instance_whose_clock_runs_ahead_deletes_nothing_live() {
    let db = PgDatabase::create().await;
    let store = PostgresRevocationStore::connect(&db.url).await.unwrap();
    let now = SystemTime::now();
    let clock = ManualClock::new(now);
    let list = RevocationList::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    list.load().await.unwrap();
    list.revoke_token(ISS, "live", Some(now + Duration::from_secs(900)))
        .await
        .unwrap();
    list.cut_off_subject(ISS, "alice", now).await.unwrap();
    // A row that expired 11 minutes ago by every clock: the purge may delete it.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO tower_auth_jwt_revocations \
         (kind, issuer, value, issued_before, expires_at, created_at) \
         VALUES ('jti', $1, 'dead', $2, $2, $2)",
    )
    .bind(ISS)
    .bind(ms(now) - 660_000)
    .execute(&pool)
    .await
    .unwrap();

    // Ten years ahead: by this clock everything expired long ago.
    clock.set(now + Duration::from_secs(10 * 365 * 24 * 3600));
    assert_eq!(list.purge_expired().await.unwrap(), 1, "only the dead row");
    let left = store.revocations(now).await.unwrap();
    assert_eq!(left.entries.len(), 2, "live revocations survive: {left:?}");
    // Another instance, on a correct clock, still refuses the revoked token.
    let other = RevocationList::builder(PostgresRevocationStore::connect(&db.url).await.unwrap())
        .build()
        .unwrap();
    other.load().await.unwrap();
    assert_eq!((other.revoked_tokens(), other.revoked_subjects()), (1, 1));
    pool.close().await;
    drop((list, other));
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn a_heartbeat_that_cannot_be_sent_keeps_the_listener_and_the_list_gets_stale() {
    let db = PgDatabase::create().await;
    // One pool connection, which a blocked write will hold.
    let store = PostgresRevocationStore::builder(&db.url)
        .max_connections(1)
        .revocation_heartbeat(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let list = RevocationList::builder(store.clone()).build().unwrap();
    list.load().await.unwrap();
    let listener = listeners(&db, 1).await;

    // Another session locks the table; a write through the store waits on the lock, holding
    // the pool's only connection: heartbeats cannot be sent.
    let locker = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE tower_auth_jwt_revocations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let writer = store.clone();
    let write = tokio::spawn(async move {
        writer
            .add_revocation(&Revocation::token(
                ISS,
                "blocked",
                SystemTime::now() + Duration::from_secs(3600),
                SystemTime::now(),
            ))
            .await
    });
    let start = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(&locker)
            .await
            .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the write never blocked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Several heartbeat intervals without a connection to send from.
    let blocked = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        db.backends(LISTENER).await,
        listener,
        "a heartbeat that could not be sent replaced a healthy listener"
    );
    // Nothing proved the list current meanwhile.
    assert!(list.staleness().unwrap() >= blocked.elapsed() - Duration::from_secs(2));

    // The pool is free again: the next heartbeat comes back on the same listener.
    lock.rollback().await.unwrap();
    write.await.unwrap().unwrap();
    let start = Instant::now();
    while list.staleness().unwrap() >= Duration::from_secs(3) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "heartbeats never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.backends(LISTENER).await, listener);
    locker.close().await;
    drop(list);
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (run scripts/test)"]
async fn a_role_without_privileges_on_the_sequence_still_loads() {
    let db = PgDatabase::create().await;
    // Migrated by the owner.
    let owner = PostgresRevocationStore::connect(&db.url).await.unwrap();
    owner
        .add_revocation(&Revocation::token(
            ISS,
            "old",
            SystemTime::now() + Duration::from_secs(3600),
            SystemTime::now(),
        ))
        .await
        .unwrap();
    // An application role that can read and write the tables, but has no privilege on the
    // identity sequence (inserting does not need one).
    let role = format!("app_{}", db.name);
    sqlx::query(&format!("CREATE ROLE \"{role}\" LOGIN"))
        .execute(db.server())
        .await
        .unwrap();
    let on_db = sqlx::PgPool::connect(&db.url).await.unwrap();
    for sql in [
        format!("GRANT CREATE, USAGE ON SCHEMA public TO \"{role}\""),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\""
        ),
    ] {
        sqlx::query(&sql)
            .execute(&on_db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    let url = format!("{scheme}://{role}@{host}");
    let app = PostgresRevocationStore::connect(&url).await.unwrap();
    // The privilege really is missing.
    let denied = sqlx::query(
        "SELECT pg_sequence_last_value(\
         pg_get_serial_sequence('tower_auth_jwt_revocations', 'seq'))",
    )
    .execute(&sqlx::PgPool::connect(&url).await.unwrap())
    .await;
    assert!(denied.is_err(), "the role can read the sequence");

    let list = RevocationList::builder(app.clone()).build().unwrap();
    list.load()
        .await
        .expect("loads without privileges on the sequence");
    assert_eq!(list.revoked_tokens(), 1);
    // Batches from this role reach a list of the owner's.
    let other = RevocationList::builder(owner.clone()).build().unwrap();
    other.load().await.unwrap();
    list.revoke_tokens(ISS, [("b1", None), ("b2", None)])
        .await
        .unwrap();
    let start = Instant::now();
    while other.revoked_tokens() < 3 {
        assert!(
            start.elapsed() < PROPAGATION_BOUND,
            "a batch did not reach the other list"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop((list, other));
    app.close().await;
    owner.close().await;
    on_db.close().await;
    db.drop_database().await;
    let server = sqlx::PgPool::connect(&tower_auth_tests::pg_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
        .execute(&server)
        .await
        .unwrap();
    server.close().await;
}
