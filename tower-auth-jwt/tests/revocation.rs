//! Revocation lists on the memory and SQLite stores: a revoked `jti` refused at once by the
//! revoking process (the verified-token cache included) and by another one after its poll;
//! subject cut-offs (before / after, missing `iat` and `jti`, other subjects and issuers);
//! log out everywhere (with the `issue` feature); expiry of entries on an injected clock; reload after a restart;
//! failing closed before the first load; no store query on the request path (a store that
//! counts its calls); background tasks ending with the list. The PostgreSQL side is in the
//! workspace's `tests/tests/jwt_revocation_postgres.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tower_auth_core::CacheConfig;
use tower_auth_core::clock::{Clock, ManualClock};
use tower_auth_jwt::revocation::{
    MemoryRevocationStore as MemoryStore, Revocation, RevocationBatch, RevocationEvent,
    RevocationFeed, RevocationFeedFuture, RevocationList, RevocationStore,
    SqliteRevocationStore as SqliteStore, StoreFuture, testing,
};
use tower_auth_jwt::{
    JwtAuthenticator, RevocationCheck, RevocationStatus, TokenIdentity, TrustedIssuer,
};

use common::*;

const HOUR: Duration = Duration::from_secs(3600);

fn revoked(list: &RevocationList, token: &TokenIdentity) -> bool {
    list.check(token) == RevocationStatus::Revoked
}

fn list(store: impl RevocationStore, clock: &ManualClock) -> RevocationList {
    RevocationList::builder(store)
        .clock(clock.clone())
        // No background poll during a test unless it asks for one.
        .poll_interval(HOUR)
        .purge_interval(HOUR)
        .build()
        .unwrap()
}

/// A SQLite store without its change feed: lists on it poll by sequence, when the test says.
async fn polled(path: &std::path::Path) -> SqliteStore {
    SqliteStore::builder(format!("sqlite://{}", path.display()))
        .without_change_feed()
        .connect()
        .await
        .unwrap()
}

async fn loaded(store: impl RevocationStore, clock: &ManualClock) -> RevocationList {
    let l = list(store, clock);
    l.load().await.unwrap();
    l
}

fn auth(list: &RevocationList, clock: &ManualClock, cache: bool) -> JwtAuthenticator {
    let mut b = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET),
        )
        .clock(clock.clone())
        .revocation(list.clone());
    if cache {
        b = b.verified_token_cache(CacheConfig::default());
    }
    b.build().unwrap()
}

fn hs() -> Signer {
    Signer::hmac(jsonwebtoken::Algorithm::HS256, HMAC_SECRET)
}

fn token(jti: &str, sub: &str, iat: u64) -> String {
    let c = with(with(claims(), "jti", json!(jti)), "sub", json!(sub));
    mint(&with(c, "iat", json!(iat)), &hs())
}

fn exp_of_default_claims() -> SystemTime {
    at(NOW + 300)
}

#[tokio::test]
async fn a_revoked_jti_is_refused_at_once_by_the_revoking_process() {
    let clock = clock();
    let list = loaded(MemoryStore::new(), &clock).await;
    for cache in [false, true] {
        let auth = auth(&list, &clock, cache);
        let stolen = token(&format!("stolen-{cache}"), "alice", NOW - 10);
        let other = token(&format!("other-{cache}"), "alice", NOW - 10);
        send_token(&auth, &stolen).await.assert_ok();
        list.revoke_token(
            ISS,
            &format!("stolen-{cache}"),
            Some(exp_of_default_claims()),
        )
        .await
        .unwrap();
        send_token(&auth, &stolen)
            .await
            .assert_invalid_token("token revoked");
        send_token(&auth, &other).await.assert_ok();
    }
    assert_eq!(list.revoked_tokens(), 2);
    // Same jti, another issuer: not the same token.
    let t = TokenIdentity::new(
        "https://elsewhere.example",
        Some("alice".into()),
        Some("stolen-true".into()),
        Some(at(NOW)),
        None,
    );
    assert!(!revoked(&list, &t));
}

#[tokio::test]
async fn revocation_reaches_tokens_served_from_the_verified_token_cache() {
    let clock = clock();
    let list = loaded(MemoryStore::new(), &clock).await;
    let auth = auth(&list, &clock, true);
    let t = token("cached-1", "alice", NOW - 10);
    send_token(&auth, &t).await.assert_ok();
    send_token(&auth, &t).await.assert_ok();
    assert_eq!(
        auth.cached_tokens(),
        1,
        "the token is served from the cache"
    );
    list.revoke_token(ISS, "cached-1", None).await.unwrap();
    send_token(&auth, &t)
        .await
        .assert_invalid_token("token revoked");
    // Still cached: it is the hook, not an eviction, that refused it.
    assert_eq!(auth.cached_tokens(), 1);

    // Subject cut-offs reach cached tokens too.
    let u = token("cached-2", "bob", NOW - 10);
    send_token(&auth, &u).await.assert_ok();
    list.cut_off_subject(ISS, "bob", at(NOW)).await.unwrap();
    send_token(&auth, &u)
        .await
        .assert_invalid_token("token revoked");
}

#[tokio::test]
async fn a_subject_cut_off_refuses_tokens_issued_before_it_and_accepts_later_ones() {
    let clock = clock();
    let list = loaded(MemoryStore::new(), &clock).await;
    let auth = auth(&list, &clock, false);
    list.cut_off_subject(ISS, "alice", at(NOW - 5))
        .await
        .unwrap();
    assert_eq!(list.revoked_subjects(), 1);

    // Issued before T: refused; at or after T: accepted.
    send_token(&auth, &token("a", "alice", NOW - 6))
        .await
        .assert_invalid_token("token revoked");
    send_token(&auth, &token("b", "alice", NOW - 5))
        .await
        .assert_ok();
    send_token(&auth, &token("c", "alice", NOW - 1))
        .await
        .assert_ok();
    // No `jti`: the subject still cuts it off.
    let no_jti = mint(&without(claims(), "jti"), &hs());
    send_token(&auth, &no_jti)
        .await
        .assert_invalid_token("token revoked");
    // No `iat` under a cut-off: nothing shows it came after, so it is refused (fail closed).
    let no_iat = mint(&without(claims(), "iat"), &hs());
    send_token(&auth, &no_iat)
        .await
        .assert_invalid_token("token revoked");
    // Other subjects, and tokens without `iat` of other subjects, are untouched.
    send_token(&auth, &token("d", "bob", NOW - 60))
        .await
        .assert_ok();
    let bob_no_iat = mint(&with(without(claims(), "iat"), "sub", json!("bob")), &hs());
    send_token(&auth, &bob_no_iat).await.assert_ok();
    // Same subject at another issuer: another account.
    let elsewhere = TokenIdentity::new(
        "https://elsewhere.example",
        Some("alice".into()),
        None,
        Some(at(NOW - 60)),
        None,
    );
    assert!(!revoked(&list, &elsewhere));

    // A later cut-off moves the time; an earlier one does not move it back.
    list.cut_off_subject(ISS, "alice", at(NOW)).await.unwrap();
    send_token(&auth, &token("c", "alice", NOW - 1))
        .await
        .assert_invalid_token("token revoked");
    list.cut_off_subject(ISS, "alice", at(NOW - 100))
        .await
        .unwrap();
    send_token(&auth, &token("c", "alice", NOW - 1))
        .await
        .assert_invalid_token("token revoked");
    assert_eq!(list.revoked_subjects(), 1);
}

#[tokio::test]
async fn every_token_gets_503_until_the_first_load() {
    let clock = clock();
    let store = MemoryStore::new();
    let list = list(store, &clock);
    assert!(!list.is_loaded());
    assert_eq!(list.staleness(), None);
    for cache in [false, true] {
        let auth = auth(&list, &clock, cache);
        send_token(&auth, &token("a", "alice", NOW - 10))
            .await
            .assert_unavailable();
    }
    list.load().await.unwrap();
    assert!(list.is_loaded());
    assert_eq!(list.staleness(), Some(Duration::ZERO));
    send_token(&auth(&list, &clock, false), &token("a", "alice", NOW - 10))
        .await
        .assert_ok();
}

#[tokio::test]
async fn entries_are_dropped_after_their_tokens_expire() {
    let clock = clock();
    let store = MemoryStore::new();
    let list = RevocationList::builder(store.clone())
        .clock(clock.clone())
        .poll_interval(HOUR)
        .purge_interval(HOUR)
        .max_token_lifetime(Duration::from_secs(600))
        .leeway(Duration::from_secs(60))
        .build()
        .unwrap();
    list.load().await.unwrap();
    let id = |jti: &str| {
        TokenIdentity::new(ISS, Some("x".into()), Some(jti.into()), Some(at(NOW)), None)
    };
    list.revoke_token(ISS, "short", Some(at(NOW + 100)))
        .await
        .unwrap();
    list.revoke_token(ISS, "long", Some(at(NOW + 1000)))
        .await
        .unwrap();
    list.cut_off_subject(ISS, "alice", at(NOW)).await.unwrap();
    assert_eq!((list.revoked_tokens(), list.revoked_subjects()), (2, 1));

    // Within the leeway after `exp` the entry stays (a verifier may still accept the token).
    clock.set(at(NOW + 160));
    assert_eq!(list.purge_expired().await.unwrap(), 0);
    assert!(revoked(&list, &id("short")));
    // Then it leaves memory; the store keeps it for another leeway (a margin for the clocks
    // of other processes sharing it).
    clock.set(at(NOW + 161));
    assert_eq!(list.purge_expired().await.unwrap(), 0);
    assert!(!revoked(&list, &id("short")));
    assert!(revoked(&list, &id("long")));
    assert_eq!((list.revoked_tokens(), list.revoked_subjects()), (1, 1));
    assert_eq!(store.revocations(at(0)).await.unwrap().entries.len(), 3);
    clock.set(at(NOW + 221));
    assert_eq!(list.purge_expired().await.unwrap(), 1);
    // The cut-off lives for the longest token lifetime + leeway after its time.
    clock.set(at(NOW + 661));
    list.purge_expired().await.unwrap();
    assert_eq!((list.revoked_tokens(), list.revoked_subjects()), (1, 0));
    clock.set(at(NOW + 1061));
    list.purge_expired().await.unwrap();
    assert_eq!((list.revoked_tokens(), list.revoked_subjects()), (0, 0));
    clock.set(at(NOW + 1121));
    list.purge_expired().await.unwrap();
    assert!(store.revocations(at(0)).await.unwrap().entries.is_empty());

    // An entry already expired is not applied, when loaded or revoked.
    list.revoke_token(ISS, "old", Some(at(NOW))).await.unwrap();
    assert_eq!(list.revoked_tokens(), 0);
}

#[tokio::test]
async fn a_restart_reloads_the_lists_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let clock = clock();
    {
        let list = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
        list.revoke_token(ISS, "gone", Some(exp_of_default_claims()))
            .await
            .unwrap();
        list.cut_off_subject(ISS, "bob", at(NOW)).await.unwrap();
    }
    let list = list(SqliteStore::open(&path).await.unwrap(), &clock);
    let auth = auth(&list, &clock, false);
    send_token(&auth, &token("fine", "alice", NOW - 10))
        .await
        .assert_unavailable();
    list.load().await.unwrap();
    assert_eq!((list.revoked_tokens(), list.revoked_subjects()), (1, 1));
    send_token(&auth, &token("gone", "alice", NOW - 10))
        .await
        .assert_invalid_token("token revoked");
    send_token(&auth, &token("x", "bob", NOW - 10))
        .await
        .assert_invalid_token("token revoked");
    send_token(&auth, &token("fine", "alice", NOW - 10))
        .await
        .assert_ok();
}

#[tokio::test]
async fn another_process_on_sqlite_applies_a_revocation_at_its_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let clock = clock();
    let a = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    let b = loaded(polled(&path).await, &clock).await;
    let (auth_a, auth_b) = (auth(&a, &clock, true), auth(&b, &clock, true));
    let t = token("t-1", "alice", NOW - 10);
    send_token(&auth_b, &t).await.assert_ok();
    a.revoke_token(ISS, "t-1", Some(exp_of_default_claims()))
        .await
        .unwrap();
    send_token(&auth_a, &t)
        .await
        .assert_invalid_token("token revoked");
    // b has not polled yet (its interval is an hour)...
    send_token(&auth_b, &t).await.assert_ok();
    // ...and does at its next poll.
    assert_eq!(b.poll().await.unwrap(), 1);
    send_token(&auth_b, &t)
        .await
        .assert_invalid_token("token revoked");
    // Nothing new: nothing read again.
    assert_eq!(b.poll().await.unwrap(), 0);
    a.cut_off_subject(ISS, "carol", at(NOW)).await.unwrap();
    assert_eq!(b.poll().await.unwrap(), 1);
    assert_eq!(b.revoked_subjects(), 1);
}

#[tokio::test]
async fn the_background_poll_applies_another_process_revocations_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let interval = Duration::from_millis(200);
    let a = RevocationList::builder(SqliteStore::open(&path).await.unwrap())
        .build()
        .unwrap();
    a.load().await.unwrap();
    let b = RevocationList::builder(polled(&path).await)
        .poll_interval(interval)
        .build()
        .unwrap();
    b.load().await.unwrap();
    let id = TokenIdentity::new(ISS, None, Some("polled".into()), None, None);
    assert!(!revoked(&b, &id));
    let start = Instant::now();
    a.revoke_token(ISS, "polled", None).await.unwrap();
    // Generous bound: the poll runs every 200 ms; a loaded machine may delay it.
    while !revoked(&b, &id) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the background poll never applied the revocation"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "revocation seen by the polling process after {:?} (poll interval {interval:?})",
        start.elapsed()
    );
}

/// How long a revocation made by another process may take to apply through the SQLite change
/// feed (it polls every 100 ms).
const SEEN_WITHIN: Duration = Duration::from_secs(1);

/// Asks `auth` with `token` until it is refused as revoked, for at most [`SEEN_WITHIN`].
async fn refused_within_1s(auth: &JwtAuthenticator, token: &str) {
    let start = Instant::now();
    loop {
        let res = send_token(auth, token).await;
        if res.status == http::StatusCode::UNAUTHORIZED {
            res.assert_invalid_token("token revoked");
            return;
        }
        assert!(
            start.elapsed() < SEEN_WITHIN,
            "still accepted {SEEN_WITHIN:?} after another process revoked it"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn another_process_on_sqlite_is_seen_within_1s_through_the_change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let clock = clock();
    // The list's own poll is an hour away: only the feed can bring the change.
    let server = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    let cli = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    let auth = auth(&server, &clock, true);
    let t = token("t-1", "alice", NOW - 10);
    let bob = token("t-2", "bob", NOW - 10);
    send_token(&auth, &t).await.assert_ok();
    send_token(&auth, &bob).await.assert_ok();

    // One token, by jti.
    cli.revoke_token(ISS, "t-1", Some(exp_of_default_claims()))
        .await
        .unwrap();
    refused_within_1s(&auth, &t).await;
    // Every token of a subject (what logging out everywhere writes).
    cli.cut_off_subject(ISS, "bob", at(NOW)).await.unwrap();
    refused_within_1s(&auth, &bob).await;
    send_token(&auth, &token("t-3", "alice", NOW - 10))
        .await
        .assert_ok();
    assert!(server.staleness().unwrap() < Duration::from_secs(60));
}

#[tokio::test]
async fn the_change_feed_survives_vacuum_and_writes_to_other_tables_read_nothing() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let clock = clock();
    let store = CountingSqlite {
        inner: SqliteStore::open(&path).await.unwrap(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let server = loaded(store.clone(), &clock).await;
    let cli = loaded(polled(&path).await, &clock).await;
    let auth = auth(&server, &clock, true);
    let after_load = store.calls();

    // Other tables of the file change (the issuer's refresh tokens, API keys' last-used
    // times): commits the feed sees, with no revocation to read.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE other (x INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    for i in 0..5 {
        sqlx::query("INSERT INTO other VALUES (?)")
            .bind(i)
            .execute(&mut conn)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    sqlx::query("VACUUM").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    let t = token("after-vacuum", "alice", NOW - 10);
    send_token(&auth, &t).await.assert_ok();
    cli.revoke_token(ISS, "after-vacuum", Some(exp_of_default_claims()))
        .await
        .unwrap();
    refused_within_1s(&auth, &t).await;
    assert_eq!(
        store.calls(),
        after_load,
        "no reload and no poll of the store: the feed read the entry itself"
    );
    assert_eq!(server.revoked_tokens(), 1);
}

#[tokio::test]
async fn bad_sqlite_feed_settings_name_the_setting_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteStore::builder(format!("sqlite://{}", dir.path().join("a.db").display()))
        .poll_interval(Duration::from_millis(1))
        .connect()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`poll_interval` = 0.001s"), "{e}");
}

/// A SQLite store that counts the list's calls to it (its feed reads on its own connection).
#[derive(Clone)]
struct CountingSqlite {
    inner: SqliteStore,
    calls: Arc<AtomicUsize>,
}

impl CountingSqlite {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl RevocationStore for CountingSqlite {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.add_revocation(entry)
    }
    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.revocations(now)
    }
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.revocations_since(cursor)
    }
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_revocations_expired_before(before)
    }
    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        self.inner.revocation_feed()
    }
}

/// A store that counts every call made to it.
#[derive(Clone)]
struct Counting {
    inner: MemoryStore,
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl RevocationStore for Counting {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        self.count();
        self.inner.add_revocation(entry)
    }
    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        self.count();
        self.inner.revocations(now)
    }
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        self.count();
        self.inner.revocations_since(cursor)
    }
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        self.count();
        self.inner.delete_revocations_expired_before(before)
    }
    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        self.count();
        None
    }
}

#[tokio::test]
async fn the_request_path_makes_no_store_query() {
    let clock = clock();
    let store = Counting {
        inner: MemoryStore::new(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let list = loaded(store.clone(), &clock).await;
    for i in 0..1000 {
        list.revoke_token(ISS, &format!("revoked-{i}"), None)
            .await
            .unwrap();
    }
    list.cut_off_subject(ISS, "bob", at(NOW)).await.unwrap();
    let before = store.calls();
    assert!(before >= 1002, "the store is really counted: {before}");
    for cache in [false, true] {
        let auth = auth(&list, &clock, cache);
        for i in 0..200 {
            let ok = token(&format!("ok-{i}"), "alice", NOW - 10);
            send_token(&auth, &ok).await.assert_ok();
            send_token(&auth, &ok).await.assert_ok();
            send_token(&auth, &token(&format!("revoked-{i}"), "alice", NOW - 10))
                .await
                .assert_invalid_token("token revoked");
            send_token(&auth, &token(&format!("b-{i}"), "bob", NOW - 10))
                .await
                .assert_invalid_token("token revoked");
        }
    }
    assert_eq!(store.calls(), before, "no store call on the request path");
}

#[tokio::test]
async fn background_tasks_end_with_the_list() {
    let store = Counting {
        inner: MemoryStore::new(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let list = RevocationList::builder(store.clone())
        .poll_interval(Duration::from_millis(10))
        .purge_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    list.load().await.unwrap();
    let running = store.calls();
    // The tasks run: the store is polled and purged.
    while store.calls() < running + 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // They hold the store only through the list: once it is dropped and they are aborted,
    // the store's last other reference is ours.
    let clone = list.clone();
    drop(list);
    assert!(Arc::strong_count(&store.calls) > 1);
    drop(clone);
    let start = Instant::now();
    while Arc::strong_count(&store.calls) > 1 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "background tasks still hold the store"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = store.calls();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.calls(), after, "no call after the list is gone");
}

#[cfg(feature = "issue")]
#[tokio::test]
async fn log_out_everywhere_on_memory_and_sqlite() {
    use tower_auth_jwt::issue;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let stores: [(issue::testing::SharedStore, Arc<dyn RevocationStore>); 2] = [
        (
            Arc::new(issue::MemoryStore::new()),
            Arc::new(MemoryStore::new()),
        ),
        (
            Arc::new(issue::SqliteStore::open(&path).await.unwrap()),
            Arc::new(SqliteStore::open(&path).await.unwrap()),
        ),
    ];
    for (store, revocations) in stores {
        issue::testing::logout_everywhere(store, revocations).await;
    }
}

#[tokio::test]
async fn the_store_contract_holds_on_memory_and_sqlite() {
    testing::revocation_store_contract(&MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("app.db")).await.unwrap();
    testing::revocation_store_contract(&sqlite).await;
}

#[cfg(feature = "issue")]
#[tokio::test]
async fn issuer_revocation_needs_a_list_and_a_long_enough_lifetime() {
    use tower_auth_jwt::issue::{IssueErrorKind, JwtIssuer};
    let store = MemoryStore::new();
    let builder = || {
        JwtIssuer::builder(tower_auth_jwt::issue::MemoryStore::new())
            .issuer(ISS)
            .audience(AUD)
            .client_id("app")
    };
    let issuer = builder().build().unwrap();
    let e = issuer.logout_everywhere("alice").await.unwrap_err();
    assert_eq!(e.kind(), IssueErrorKind::InvalidRequest);
    let e = issuer.revoke_access_token("x", None).await.unwrap_err();
    assert_eq!(e.kind(), IssueErrorKind::InvalidRequest);

    let short = RevocationList::builder(store.clone())
        .max_token_lifetime(Duration::from_secs(60))
        .build()
        .unwrap();
    let e = builder().revocation_list(short).build().unwrap_err();
    assert_eq!(e.setting(), "revocation_list");

    // revoke_access_token: one token, by jti.
    let clock = clock();
    let list = loaded(store.clone(), &clock).await;
    let issuer = builder()
        .clock(clock.clone())
        .revocation_list(list.clone())
        .build()
        .unwrap();
    let t = issuer
        .issue(&tower_auth_jwt::issue::TokenRequest::new("alice"))
        .await
        .unwrap();
    let id = |jti: &str| {
        TokenIdentity::new(
            ISS,
            Some("alice".into()),
            Some(jti.into()),
            Some(at(NOW)),
            None,
        )
    };
    assert!(!revoked(&list, &id(t.jti())));
    issuer
        .revoke_access_token(t.jti(), Some(t.expires_at()))
        .await
        .unwrap();
    assert!(revoked(&list, &id(t.jti())));
    assert!(!revoked(&list, &id("another")));
}

#[test]
fn bad_settings_are_refused() {
    let b = || RevocationList::builder(MemoryStore::new());
    let e = b().poll_interval(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting(), "poll_interval");
    let e = b().purge_interval(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting(), "purge_interval");
    let e = b()
        .max_token_lifetime(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "max_token_lifetime");
    let e = b().leeway(Duration::from_secs(7200)).build().unwrap_err();
    assert_eq!(e.setting(), "leeway");
    let e = b().store_timeout(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting(), "store_timeout");
    // Bounded, so that lifetime + leeway cannot overflow.
    for lifetime in [Duration::from_secs(367 * 24 * 3600), Duration::MAX] {
        let e = b().max_token_lifetime(lifetime).build().unwrap_err();
        assert_eq!(e.setting(), "max_token_lifetime");
        assert!(e.to_string().contains("366 days"), "{e}");
    }
    b().max_token_lifetime(Duration::from_secs(366 * 24 * 3600))
        .build()
        .unwrap();
    let e = b().reload_interval(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting(), "reload_interval");
    let e = b().full_read_timeout(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting(), "full_read_timeout");
    let e = b().max_staleness(Duration::ZERO).build().unwrap_err();
    assert_eq!(e.setting(), "max_staleness");
    let e = b().name("").build().unwrap_err();
    assert_eq!(e.setting(), "name");
}

/// A store whose full reads fail once `down` is set, with a feed that asks for one reload
/// (as after a reconnection) and then stays quiet.
struct Flaky {
    inner: MemoryStore,
    down: Arc<std::sync::atomic::AtomicBool>,
    failures: Arc<AtomicUsize>,
}

struct OneReload(bool);

impl RevocationFeed for OneReload {
    fn next(&mut self) -> tower_auth_jwt::revocation::RevocationFeedFuture<'_> {
        if std::mem::replace(&mut self.0, true) {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async { Some(tower_auth_jwt::revocation::RevocationEvent::Reload) })
        }
    }
}

impl RevocationStore for Flaky {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        self.inner.add_revocation(entry)
    }
    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        if self.down.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Box::pin(async {
                Err(tower_auth_jwt::revocation::StoreError::new(
                    tower_auth_jwt::revocation::StoreErrorKind::Unavailable,
                    "down",
                ))
            });
        }
        self.inner.revocations(now)
    }
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        self.inner.revocations_since(cursor)
    }
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        self.inner.delete_revocations_expired_before(before)
    }
    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        Some(Box::new(OneReload(false)))
    }
}

#[tokio::test]
async fn a_reload_retried_against_a_down_store_does_not_keep_the_list_alive() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let list = RevocationList::builder(Flaky {
        inner: MemoryStore::new(),
        down: down.clone(),
        failures: failures.clone(),
    })
    .build()
    .unwrap();
    list.load().await.unwrap();
    // Down before the feed's reload runs: it fails, and is retried.
    down.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while failures.load(Ordering::SeqCst) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reload retried"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The list keeps what it had meanwhile.
    assert!(list.is_loaded());
    drop(list);
    while Arc::strong_count(&down) > 1 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the retrying task keeps the list (and its store) alive"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A store over a `MemoryStore` whose full reads can be made to fail, counting them, with
/// (optionally) a feed driven by the test: each feed the list asks for is a channel whose
/// sender the test gets from `senders`. Polling by cursor returns nothing, as if it had
/// skipped an entry committed out of order.
#[derive(Clone, Default)]
struct Driven {
    inner: MemoryStore,
    with_feed: bool,
    down: Arc<std::sync::atomic::AtomicBool>,
    connect_fails: Arc<std::sync::atomic::AtomicBool>,
    panic_feed: Arc<std::sync::atomic::AtomicBool>,
    full_reads: Arc<AtomicUsize>,
    failed_reads: Arc<AtomicUsize>,
    log: Arc<std::sync::Mutex<Vec<&'static str>>>,
    senders: Arc<std::sync::Mutex<Vec<FeedSender>>>,
}

type FeedSender = tokio::sync::mpsc::UnboundedSender<Option<RevocationEvent>>;

fn unavailable() -> tower_auth_jwt::revocation::StoreError {
    tower_auth_jwt::revocation::StoreError::new(
        tower_auth_jwt::revocation::StoreErrorKind::Unavailable,
        "down",
    )
}

impl Driven {
    fn with_feed() -> Self {
        Self {
            with_feed: true,
            ..Self::default()
        }
    }
    fn log(&self) -> Vec<&'static str> {
        self.log.lock().unwrap().clone()
    }
    fn feeds(&self) -> usize {
        self.senders.lock().unwrap().len()
    }
    /// Notifies the revocation of `jti` (of [`ISS`], expiring far ahead).
    fn send_token(&self, jti: &str) {
        self.send(Some(RevocationEvent::Added(Revocation::token(
            ISS,
            jti,
            far(),
            at(NOW),
        ))));
    }

    /// Sends `event` on the newest feed (`None` ends it).
    fn send(&self, event: Option<RevocationEvent>) {
        let senders = self.senders.lock().unwrap();
        senders.last().unwrap().send(event).unwrap();
    }
}

struct DrivenFeed {
    rx: tokio::sync::mpsc::UnboundedReceiver<Option<RevocationEvent>>,
    store: Driven,
}

impl RevocationFeed for DrivenFeed {
    fn connect(&mut self) -> StoreFuture<'_, ()> {
        self.store.log.lock().unwrap().push("connect");
        let fails = self.store.connect_fails.load(Ordering::SeqCst);
        Box::pin(async move { if fails { Err(unavailable()) } else { Ok(()) } })
    }
    fn next(&mut self) -> RevocationFeedFuture<'_> {
        Box::pin(async move {
            let event = self.rx.recv().await.flatten();
            // One panic, on the first event after the flag is set.
            assert!(
                !self.store.panic_feed.swap(false, Ordering::SeqCst),
                "feed panicked (on purpose)"
            );
            event
        })
    }
}

impl RevocationStore for Driven {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        self.inner.add_revocation(entry)
    }
    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        self.log.lock().unwrap().push("read");
        if self.down.load(Ordering::SeqCst) {
            self.failed_reads.fetch_add(1, Ordering::SeqCst);
            return Box::pin(async { Err(unavailable()) });
        }
        self.full_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.revocations(now)
    }
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(unavailable()) });
        }
        Box::pin(async move { Ok(RevocationBatch::new(Vec::new(), cursor + 1)) })
    }
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        self.inner.delete_revocations_expired_before(before)
    }
    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        if !self.with_feed {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.senders.lock().unwrap().push(tx);
        Some(Box::new(DrivenFeed {
            rx,
            store: self.clone(),
        }))
    }
}

/// Waits (yielding to the background tasks) until `done`, failing after a generous bound.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn jti(jti: &str) -> TokenIdentity {
    TokenIdentity::new(ISS, Some("x".into()), Some(jti.into()), Some(at(NOW)), None)
}

fn far() -> SystemTime {
    at(NOW + 3600)
}

#[tokio::test]
async fn load_connects_the_feed_before_the_full_read_and_fails_without_it() {
    let clock = clock();
    let store = Driven::with_feed();
    store.connect_fails.store(true, Ordering::SeqCst);
    let list = list(store.clone(), &clock);
    // No LISTEN, no load: fail closed rather than serve a list nobody keeps current.
    list.load().await.unwrap_err();
    assert!(!list.is_loaded());
    assert_eq!(store.log(), ["connect"]);
    assert_eq!(list.check(&jti("a")), RevocationStatus::Unavailable);

    store.connect_fails.store(false, Ordering::SeqCst);
    list.load().await.unwrap();
    // Connected first, read second: what is committed during the read is notified.
    assert_eq!(store.log(), ["connect", "connect", "read"]);
    assert_eq!(list.check(&jti("a")), RevocationStatus::Valid);
}

#[tokio::test]
async fn entries_keep_flowing_while_a_reload_is_retried() {
    let clock = clock();
    let store = Driven::with_feed();
    let list = list(store.clone(), &clock);
    list.load().await.unwrap();
    store.down.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        store.send(Some(RevocationEvent::Reload));
    }
    until("the reload is retried", || {
        store.failed_reads.load(Ordering::SeqCst) >= 2
    })
    .await;
    // The store's full reads keep failing; notified entries still apply meanwhile.
    store.send_token("during-1");
    store.send(Some(RevocationEvent::Batch(vec![
        Revocation::token(ISS, "during-2", far(), at(NOW)),
        Revocation::subject(ISS, "bob", at(NOW), far(), at(NOW)),
    ])));
    until("entries applied during the retries", || {
        revoked(&list, &jti("during-1")) && revoked(&list, &jti("during-2"))
    })
    .await;
    assert_eq!(list.revoked_subjects(), 1);
    store.down.store(false, Ordering::SeqCst);
    until("the reload succeeds", || {
        store.full_reads.load(Ordering::SeqCst) >= 2
    })
    .await;
}

#[tokio::test]
async fn a_quiet_feed_trips_max_staleness_and_requests_get_503_until_it_syncs() {
    let clock = clock();
    let store = Driven::with_feed();
    let list = RevocationList::builder(store.clone())
        .clock(clock.clone())
        .purge_interval(HOUR)
        .reload_interval(HOUR)
        .max_staleness(Duration::from_secs(60))
        .build()
        .unwrap();
    list.load().await.unwrap();
    let (plain, cached) = (auth(&list, &clock, false), auth(&list, &clock, true));
    let t = token("fresh", "alice", NOW - 10);
    send_token(&cached, &t).await.assert_ok();
    list.revoke_token(ISS, "stolen", None).await.unwrap();

    // The feed says nothing (a connection dropped silently): the list gets stale.
    clock.advance(Duration::from_secs(60));
    assert_eq!(list.staleness(), Some(Duration::from_secs(60)));
    send_token(&plain, &t).await.assert_ok();
    clock.advance(Duration::from_secs(1));
    assert_eq!(list.check(&jti("fresh")), RevocationStatus::Unavailable);
    send_token(&plain, &t).await.assert_unavailable();
    // The verified-token cache does not bypass it.
    send_token(&cached, &t).await.assert_unavailable();
    // A revoked token is still refused as revoked.
    assert!(revoked(&list, &jti("stolen")));

    // A heartbeat of the feed is a synchronization.
    store.send(Some(RevocationEvent::Alive));
    until("the heartbeat is counted", || {
        list.staleness() == Some(Duration::ZERO)
    })
    .await;
    send_token(&cached, &t).await.assert_ok();

    // So is a full reload.
    clock.advance(Duration::from_secs(61));
    send_token(&plain, &t).await.assert_unavailable();
    list.reload().await.unwrap();
    send_token(&plain, &t).await.assert_ok();
}

#[tokio::test]
async fn failing_polls_trip_max_staleness() {
    let clock = clock();
    let store = Driven::default();
    let list = RevocationList::builder(store.clone())
        .clock(clock.clone())
        .poll_interval(HOUR)
        .purge_interval(HOUR)
        .reload_interval(HOUR)
        .max_staleness(Duration::from_secs(60))
        .build()
        .unwrap();
    list.load().await.unwrap();
    let auth = auth(&list, &clock, true);
    let t = token("fresh", "alice", NOW - 10);
    clock.advance(Duration::from_secs(30));
    list.poll().await.unwrap();
    store.down.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(60));
    list.poll().await.unwrap_err();
    send_token(&auth, &t).await.assert_ok();
    clock.advance(Duration::from_secs(1));
    list.poll().await.unwrap_err();
    assert_eq!(list.staleness(), Some(Duration::from_secs(61)));
    send_token(&auth, &t).await.assert_unavailable();
    store.down.store(false, Ordering::SeqCst);
    list.poll().await.unwrap();
    send_token(&auth, &t).await.assert_ok();
}

#[tokio::test]
async fn a_feed_that_ends_is_replaced_and_the_list_reloads() {
    let clock = clock();
    let store = Driven::with_feed();
    let list = list(store.clone(), &clock);
    list.load().await.unwrap();
    assert_eq!(
        (store.feeds(), store.full_reads.load(Ordering::SeqCst)),
        (1, 1)
    );
    store.send(None);
    until("a new feed is connected and the list reloads", || {
        store.feeds() == 2 && store.full_reads.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(store.log()[..3], ["connect", "read", "connect"]);
    store.send_token("after");
    until("the new feed's entries apply", || {
        revoked(&list, &jti("after"))
    })
    .await;
}

#[tokio::test]
async fn load_restarts_background_tasks_that_ended() {
    let clock = clock();
    let store = Driven::with_feed();
    let list = list(store.clone(), &clock);
    list.load().await.unwrap();
    // The feed task panics.
    store.panic_feed.store(true, Ordering::SeqCst);
    store.send(Some(RevocationEvent::Alive));
    let start = Instant::now();
    // Loading again restarts what ended: a new feed, connected.
    while store.feeds() < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "not restarted");
        list.load().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    until("the new feed's reload", || {
        store.log().iter().filter(|s| **s == "connect").count() == 2
    })
    .await;
    store.send_token("after");
    until("the restarted feed's entries apply", || {
        revoked(&list, &jti("after"))
    })
    .await;
}

#[tokio::test]
async fn poll_on_a_store_with_a_feed_reads_everything() {
    let clock = clock();
    let store = Driven::with_feed();
    let list = list(store.clone(), &clock);
    list.load().await.unwrap();
    // Written by another process; polling by cursor would skip it (see `Driven`).
    store
        .inner
        .add_revocation(&Revocation::token(ISS, "skipped", far(), at(NOW)))
        .await
        .unwrap();
    assert!(!revoked(&list, &jti("skipped")));
    assert_eq!(list.poll().await.unwrap(), 1);
    assert!(revoked(&list, &jti("skipped")));
}

#[tokio::test]
async fn cut_offs_are_whole_seconds_here_and_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let clock = clock();
    let a = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    // Half a microsecond after NOW: the store keeps milliseconds, this process nanoseconds.
    a.cut_off_subject(ISS, "alice", at(NOW) + Duration::from_nanos(500))
        .await
        .unwrap();
    let stored = SqliteStore::open(&path)
        .await
        .unwrap()
        .revocations(at(0))
        .await
        .unwrap();
    assert_eq!(stored.entries[0].issued_before, at(NOW + 1));
    let b = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    // Both revoke a token issued in the cut-off's second, and accept the next second's.
    for list in [&a, &b] {
        let auth = auth(list, &clock, false);
        send_token(&auth, &token("same-second", "alice", NOW))
            .await
            .assert_invalid_token("token revoked");
        send_token(&auth, &token("next-second", "alice", NOW + 1))
            .await
            .assert_ok();
    }
    // A cut-off on a whole second stays there.
    a.cut_off_subject(ISS, "bob", at(NOW + 5)).await.unwrap();
    let auth = auth(&a, &clock, false);
    send_token(&auth, &token("b", "bob", NOW + 4))
        .await
        .assert_invalid_token("token revoked");
    send_token(&auth, &token("b2", "bob", NOW + 5))
        .await
        .assert_ok();
}

#[tokio::test]
async fn an_unreadable_row_is_skipped_not_blocking() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let clock = clock();
    let a = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    let b = loaded(polled(&path).await, &clock).await;
    // Another process reading through the change feed.
    let fed = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    a.revoke_token(ISS, "before", Some(far())).await.unwrap();
    // A row of a kind this version does not know, written by hand (or by a newer version).
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO tower_auth_jwt_revocations \
         (kind, issuer, value, issued_before, expires_at, created_at) \
         VALUES ('zzz', ?, 'x', 0, ?, 0)",
    )
    .bind(ISS)
    .bind(
        i64::try_from(
            far()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    a.revoke_token(ISS, "after", Some(far())).await.unwrap();

    // Polled: both good rows apply, the bad one is skipped (and its position passed).
    assert_eq!(b.poll().await.unwrap(), 2);
    assert!(revoked(&b, &jti("before")) && revoked(&b, &jti("after")));
    assert_eq!(b.poll().await.unwrap(), 0);
    // Through the feed: the same.
    let start = Instant::now();
    while !(revoked(&fed, &jti("before")) && revoked(&fed, &jti("after"))) {
        assert!(
            start.elapsed() < SEEN_WITHIN,
            "the feed stopped at the bad row"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(fed.revoked_tokens(), 2);
    // Loaded in full by a new process: the same.
    let c = loaded(SqliteStore::open(&path).await.unwrap(), &clock).await;
    assert_eq!(c.revoked_tokens(), 2);
}

#[tokio::test]
async fn values_longer_than_1_kib_are_refused() {
    use tower_auth_jwt::revocation::StoreErrorKind;
    let clock = clock();
    let store = MemoryStore::new();
    let list = loaded(store.clone(), &clock).await;
    let long = "x".repeat(1025);
    let max = "x".repeat(1024);
    let e = list.revoke_token(ISS, &long, None).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::InvalidInput);
    let e = list.revoke_token(&long, "j", None).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::InvalidInput);
    let e = list.cut_off_subject(ISS, &long, at(NOW)).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::InvalidInput);
    assert_eq!((list.revoked_tokens(), list.revoked_subjects()), (0, 0));
    assert!(store.revocations(at(0)).await.unwrap().entries.is_empty());
    list.revoke_token(ISS, &max, None).await.unwrap();
    list.cut_off_subject(ISS, &max, at(NOW)).await.unwrap();
    assert_eq!((list.revoked_tokens(), list.revoked_subjects()), (1, 1));

    #[cfg(feature = "issue")]
    {
        use tower_auth_jwt::issue::{IssueErrorKind, JwtIssuer};
        let issuer = JwtIssuer::builder(tower_auth_jwt::issue::MemoryStore::new())
            .issuer(ISS)
            .audience(AUD)
            .client_id("app")
            .clock(clock.clone())
            .revocation_list(list.clone())
            .build()
            .unwrap();
        let e = issuer.revoke_access_token(&long, None).await.unwrap_err();
        assert_eq!(e.kind(), IssueErrorKind::InvalidRequest);
        let e = issuer.logout_everywhere(&long).await.unwrap_err();
        assert_eq!(e.kind(), IssueErrorKind::InvalidRequest);
    }
}

#[tokio::test]
async fn heartbeats_do_not_count_as_syncs_while_a_requested_reload_keeps_failing() {
    let clock = clock();
    let store = Driven::with_feed();
    let list = RevocationList::builder(store.clone())
        .clock(clock.clone())
        .purge_interval(HOUR)
        .reload_interval(HOUR)
        .max_staleness(Duration::from_secs(60))
        .build()
        .unwrap();
    list.load().await.unwrap();
    let auth = auth(&list, &clock, true);
    let t = token("fresh", "alice", NOW - 10);
    send_token(&auth, &t).await.assert_ok();

    // The feed reconnected (entries may have been missed) and every full read fails.
    store.down.store(true, Ordering::SeqCst);
    store.send(Some(RevocationEvent::Reload));
    until("the requested reload fails", || {
        store.failed_reads.load(Ordering::SeqCst) >= 1
    })
    .await;
    // Heartbeats keep coming: they prove the new connection, not the entries it missed.
    for (n, step) in [30, 31].into_iter().enumerate() {
        clock.advance(Duration::from_secs(step));
        store.send(Some(RevocationEvent::Alive));
        // An entry after the heartbeat: once applied, the heartbeat was handled.
        let marker = format!("marker{n}");
        store.send(Some(RevocationEvent::Added(Revocation::token(
            ISS,
            marker.clone(),
            far(),
            clock.now(),
        ))));
        until("the feed's events are handled", || {
            revoked(&list, &jti(&marker))
        })
        .await;
    }
    assert_eq!(list.staleness(), Some(Duration::from_secs(61)));
    send_token(&auth, &t).await.assert_unavailable();

    // The store is back: the retried reload succeeds, and heartbeats count again.
    store.down.store(false, Ordering::SeqCst);
    until("the reload succeeds", || {
        list.staleness() == Some(Duration::ZERO)
    })
    .await;
    send_token(&auth, &t).await.assert_ok();
    clock.advance(Duration::from_secs(50));
    store.send(Some(RevocationEvent::Alive));
    until("the heartbeat is counted", || {
        list.staleness() == Some(Duration::ZERO)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_clock_stepped_back_after_a_sync_does_not_hide_staleness() {
    let clock = clock();
    let list = RevocationList::builder(MemoryStore::new())
        .clock(clock.clone())
        .poll_interval(HOUR)
        .purge_interval(HOUR)
        .reload_interval(HOUR)
        .max_staleness(Duration::from_secs(60))
        .build()
        .unwrap();
    // The clock is an hour ahead when the list syncs, then is set right.
    clock.advance(HOUR);
    list.load().await.unwrap();
    clock.set(at(NOW));
    assert_eq!(list.staleness(), Some(Duration::ZERO));
    // 61 s pass without a sync: the wall clock says the last sync is still an hour ahead,
    // the monotonic timer says 61 s.
    tokio::time::advance(Duration::from_secs(61)).await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(list.staleness(), Some(Duration::from_secs(61)));
    assert_eq!(list.check(&jti("fresh")), RevocationStatus::Unavailable);
    // A sync by the corrected clock counts from then.
    list.reload().await.unwrap();
    assert_eq!(list.staleness(), Some(Duration::ZERO));
    assert_eq!(list.check(&jti("fresh")), RevocationStatus::Valid);
}

/// A store without a feed whose full reads fail while `down`; polls still work.
struct FullReadsFail {
    inner: MemoryStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl RevocationStore for FullReadsFail {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        self.inner.add_revocation(entry)
    }
    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(unavailable()) });
        }
        self.inner.revocations(now)
    }
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        self.inner.revocations_since(cursor)
    }
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        self.inner.delete_revocations_expired_before(before)
    }
}

#[tokio::test]
async fn a_failing_full_reload_does_not_stop_the_polls() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = MemoryStore::new();
    let list = RevocationList::builder(FullReadsFail {
        inner: other.clone(),
        down: down.clone(),
    })
    // Every background round is due for a full reload, which fails.
    .poll_interval(Duration::from_millis(20))
    .reload_interval(Duration::from_millis(10))
    .purge_interval(HOUR)
    .build()
    .unwrap();
    list.load().await.unwrap();
    down.store(true, Ordering::SeqCst);
    // Another process revokes: the poll after the failed reload finds it.
    other
        .add_revocation(&Revocation::token(
            ISS,
            "elsewhere",
            SystemTime::now() + HOUR,
            SystemTime::now(),
        ))
        .await
        .unwrap();
    until("the poll applies the revocation", || {
        list.revoked_tokens() == 1
    })
    .await;
}
