//! tower-auth-jwt's revocation lists on PostgreSQL: two instances (each its own
//! `PostgresStore`, pool and `LISTEN` connection) on one database. A revoked `jti` is refused
//! at once by the instance that revoked it and, through `LISTEN`/`NOTIFY`, by the other one
//! (the observed delay is printed); a subject cut-off and "log out everywhere" (refresh
//! families included) reach the other instance; a restart reloads the lists; a lost listening
//! connection reconnects and reloads; the store contract and the log-out-everywhere scenario
//! of `issue::testing`.
//!
//! Each test uses a database of its own, so the tests run in parallel. Run them with
//! `scripts/test -p tower-auth-tests --test jwt_revocation_postgres`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_auth_jwt::issue::testing::{self, SharedStore};
use tower_auth_jwt::issue::{
    IssueErrorKind, JwtIssuer, PostgresStore, RefreshTokens, TokenRequest,
};
use tower_auth_jwt::revocation::RevocationList;
use tower_auth_jwt::{Algorithm, Issuer, JwtAuthenticator};
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
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let list = RevocationList::builder(store.clone()).build().unwrap();
    list.load().await.unwrap();
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
            Issuer::new(ISS)
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

/// Waits until `db` has exactly `n` listening connections (each list's listener connects in
/// the background after its first load); their pids.
async fn listeners(db: &PgDatabase, n: usize) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let pids = db.backends(LISTENER).await;
        if pids.len() == n {
            return pids;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "expected {n} listening connections, found {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

    // A new login after the cut-off's second works on both.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = b.issuer.login(&TokenRequest::new("alice")).await.unwrap();
    for i in [&a, &b] {
        assert!(i.accepts(again.access_token().as_str()).await);
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
    let store = PostgresStore::connect(&db.url).await.unwrap();
    testing::revocation_store_contract(&store).await;
    store.close().await;
    db.drop_database().await;

    let db = PgDatabase::create().await;
    let shared: SharedStore = Arc::new(PostgresStore::connect(&db.url).await.unwrap());
    testing::logout_everywhere(shared).await;
    db.drop_database().await;
}
