//! tower-auth-jwt's issuer on PostgreSQL (`issue::PostgresStore`): access tokens verified by
//! `JwtAuthenticator` through the issuer's JWKS over loopback HTTP, across a key rotation and a
//! restart; instances starting together on an empty database; the signing-key store contract;
//! refresh rotation, reuse detection, the concurrent-refresh race (strict and with a reuse
//! interval, across two connection pools), idle and absolute expiry, logout.
//!
//! Each test uses a database of its own, so the tests run in parallel. Run them with
//! `scripts/test -p tower-auth-tests --test jwt_issue_postgres`.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Barrier;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_auth_core::clock::ManualClock;
use tower_auth_core::{AuthenticateLayer, Principal};
use tower_auth_jwt::issue::{
    IssueErrorKind, JwtIssuer, JwtIssuerBuilder, MemoryStore, PostgresStore, RefreshFamily,
    RefreshTokenHash, RefreshTokenRecord, RefreshTokenStore, RefreshTokens, SigningKeyStore,
    StoreErrorKind, StoreFuture, StoredSigningKey, TokenRequest,
};
use tower_auth_jwt::remote::JwksUrl;
use tower_auth_jwt::{Algorithm, Issuer, JwtAuthenticator};
use tower_auth_tests::PgDatabase;

const ISS: &str = "https://app.example";
const AUD: &str = "app-api";

fn builder(store: impl SigningKeyStore) -> JwtIssuerBuilder {
    JwtIssuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .client_id("app-web")
}

async fn store(db: &PgDatabase) -> PostgresStore {
    PostgresStore::connect(&db.url).await.unwrap()
}

/// One request with `token` through `AuthenticateLayer::required(auth)`: the status and, on
/// success, the principal the inner service saw.
async fn call(auth: &JwtAuthenticator, token: &str) -> (StatusCode, Option<Principal>) {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = seen.clone();
    let status = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth.clone()))
        .service(service_fn(move |req: Request<()>| {
            let s = s.clone();
            async move {
                *s.lock().unwrap() = req.extensions().get::<Principal>().cloned();
                Ok::<_, Infallible>(Response::new(()))
            }
        }))
        .oneshot(
            Request::get("/orders")
                .header("authorization", format!("Bearer {token}"))
                .body(())
                .unwrap(),
        )
        .await
        .unwrap()
        .status();
    let p = seen.lock().unwrap().clone();
    (status, p)
}

/// Serves `issuer.jwks_response()` at `/jwks` on a loopback port; returns the URL.
async fn serve_jwks(issuer: JwtIssuer) -> String {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let issuer = issuer.clone();
            async move { issuer.jwks_response().await }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A verifier fetching the JWKS at `url`, refetching at once for an unknown `kid`.
fn verifier(url: &str) -> JwtAuthenticator {
    let keys = JwksUrl::builder(url)
        .insecure_allow_http(true)
        .unknown_kid_cooldown(Duration::from_millis(1))
        .build()
        .unwrap();
    JwtAuthenticator::builder()
        .issuer(
            Issuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::EdDSA])
                .require_access_token_type()
                .key_source(keys),
        )
        .build()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn tokens_verify_across_rotation_and_restart() {
    let db = PgDatabase::create().await;
    let first = builder(store(&db).await).build().unwrap();
    let auth = verifier(&serve_jwks(first.clone()).await);
    let request = TokenRequest::new("alice").scopes(["orders:read"]);

    let old = first.issue(&request).await.unwrap();
    let (status, principal) = call(&auth, old.as_str()).await;
    assert_eq!(status, StatusCode::OK);
    let p = principal.unwrap();
    assert_eq!(p.subject(), "alice");
    assert!(p.scopes().contains("orders:read"));

    // Rotation: the new key signs; tokens of both keys verify.
    let new_kid = first.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old.kid());
    let new = first.issue(&request).await.unwrap();
    assert_eq!(new.kid(), new_kid);
    assert_eq!(call(&auth, new.as_str()).await.0, StatusCode::OK);
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    let stored = store(&db).await.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored
            .iter()
            .filter(|k| k.retired_at().is_none())
            .map(StoredSigningKey::kid)
            .collect::<Vec<_>>(),
        [new_kid.as_str()]
    );

    // Restart: a new process (new pool, new issuer) on the same database signs with the same
    // key, and a fresh verifier of its JWKS accepts the earlier tokens.
    drop(first);
    let second = builder(store(&db).await).build().unwrap();
    assert_eq!(second.active_kid().await.unwrap(), new_kid);
    let auth = verifier(&serve_jwks(second.clone()).await);
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    assert_eq!(call(&auth, new.as_str()).await.0, StatusCode::OK);
    let third = second.issue(&request).await.unwrap();
    assert_eq!(third.kid(), new_kid);
    assert_eq!(call(&auth, third.as_str()).await.0, StatusCode::OK);

    // A token of a key that is not in this database: 401.
    let stranger = builder(MemoryStore::new()).build().unwrap();
    let forged = stranger.issue(&request).await.unwrap();
    assert_eq!(
        call(&auth, forged.as_str()).await.0,
        StatusCode::UNAUTHORIZED
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn instances_starting_together_create_one_key_and_rotate_once() {
    let db = PgDatabase::create().await;
    // Migrations race too.
    let (a, b) = tokio::join!(
        PostgresStore::connect(&db.url),
        PostgresStore::connect(&db.url)
    );
    let (a, b) = (
        builder(a.unwrap()).build().unwrap(),
        builder(b.unwrap()).build().unwrap(),
    );
    let (ka, kb) = tokio::join!(
        tokio::spawn({
            let a = a.clone();
            async move { a.active_kid().await }
        }),
        tokio::spawn({
            let b = b.clone();
            async move { b.active_kid().await }
        })
    );
    let (ka, kb) = (ka.unwrap().unwrap(), kb.unwrap().unwrap());
    assert_eq!(ka, kb);
    let check = store(&db).await;
    let keys = check.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].kid(), ka);

    // Two rotations racing from the same state: one new active key.
    let (ra, rb) = tokio::join!(a.rotate_signing_key(), b.rotate_signing_key());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_ne!(ra, ka);
    assert_ne!(rb, ka);
    let keys = check.signing_keys().await.unwrap();
    let active: Vec<_> = keys.iter().filter(|k| k.retired_at().is_none()).collect();
    assert_eq!(active.len(), 1, "{keys:?}");
    assert!(keys.len() == 2 || keys.len() == 3, "{keys:?}");
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn the_signing_key_store_keeps_the_contract() {
    let db = PgDatabase::create().await;
    let store = store(&db).await;
    let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_767_225_600 + s);
    let key = |kid: &str, s: u64| {
        StoredSigningKey::from_parts(kid, Algorithm::EdDSA, vec![kid.len() as u8; 48], t(s), None)
    };
    assert!(store.signing_keys().await.unwrap().is_empty());
    // First key: only when there is no active key.
    assert!(
        store
            .replace_active(None, t(0), &key("a", 0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_active(None, t(1), &key("b", 1))
            .await
            .unwrap()
    );
    // Compare-and-swap on the active kid.
    assert!(
        !store
            .replace_active(Some("zz"), t(1), &key("b", 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_active(Some("a"), t(10), &key("b", 10))
            .await
            .unwrap()
    );
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].kid(), keys[0].retired_at()), ("a", Some(t(10))));
    assert_eq!((keys[1].kid(), keys[1].retired_at()), ("b", None));
    assert_eq!(keys[1].secret_material(), &[1u8; 48][..]);
    assert_eq!(keys[1].algorithm(), Algorithm::EdDSA);
    // A kid that exists already is a conflict, and nothing changes.
    let e = store
        .replace_active(Some("b"), t(20), &key("a", 20))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Conflict);
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys[1].retired_at(), None);
    // One retired key by kid; never the current one.
    assert!(!store.delete_retired_key("b").await.unwrap());
    assert!(!store.delete_retired_key("zz").await.unwrap());
    assert!(
        store
            .replace_active(Some("b"), t(12), &key("c", 12))
            .await
            .unwrap()
    );
    assert!(store.delete_retired_key("b").await.unwrap());
    assert!(
        store
            .replace_active(Some("c"), t(13), &key("b", 13))
            .await
            .unwrap()
    );
    assert!(store.delete_retired_key("c").await.unwrap());
    // Deleting retired keys only.
    assert_eq!(store.delete_retired_before(t(10)).await.unwrap(), 0);
    assert_eq!(store.delete_retired_before(t(11)).await.unwrap(), 1);
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid(), "b");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn replace_active_is_a_compare_and_swap_across_pools() {
    let db = PgDatabase::create().await;
    let (a, b) = (store(&db).await, store(&db).await);
    let t = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let key =
        |kid: String| StoredSigningKey::from_parts(kid, Algorithm::EdDSA, vec![7; 48], t, None);
    let mut current: Option<String> = None;
    for round in 0..20 {
        let (ka, kb) = (key(format!("a-{round}")), key(format!("b-{round}")));
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let (a, ka, expected) = (a.clone(), ka.clone(), current.clone());
                async move { a.replace_active(expected.as_deref(), t, &ka).await }
            }),
            tokio::spawn({
                let (b, kb, expected) = (b.clone(), kb.clone(), current.clone());
                async move { b.replace_active(expected.as_deref(), t, &kb).await }
            })
        );
        let wins = [ra.unwrap().unwrap(), rb.unwrap().unwrap()];
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}");
        let winner = if wins[0] { ka.kid() } else { kb.kid() };
        let keys = a.signing_keys().await.unwrap();
        let active: Vec<_> = keys
            .iter()
            .filter(|k| k.retired_at().is_none())
            .map(StoredSigningKey::kid)
            .collect();
        assert_eq!(active, [winner], "round {round}");
        assert_eq!(
            keys.len(),
            round + 1,
            "round {round}: only the winner's key exists"
        );
        current = Some(winner.to_owned());
    }
    db.drop_database().await;
}

// ---- refresh tokens

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
}

fn issuer(
    keys: impl SigningKeyStore,
    refresh: impl RefreshTokenStore,
    clock: &ManualClock,
    tune: impl FnOnce(RefreshTokens) -> RefreshTokens,
) -> JwtIssuer {
    builder(keys)
        .clock(clock.clone())
        .refresh_tokens(tune(RefreshTokens::new(refresh)))
        .build()
        .unwrap()
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn login_request() -> TokenRequest {
    TokenRequest::new("alice")
        .scopes(["orders:read"])
        .claim("tenant", "acme")
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn every_refresh_rotates_and_keeps_the_session() {
    let db = PgDatabase::create().await;
    let s = store(&db).await;
    let clock = clock();
    let issuer = issuer(s.clone(), s.clone(), &clock, |r| r);
    let first = issuer.login(&login_request()).await.unwrap();
    let sid = first.session_id().to_owned();
    assert_eq!(claims(first.access_token().as_str())["sid"], sid.as_str());

    clock.advance(Duration::from_secs(60));
    let second = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap();
    assert_ne!(
        second.refresh_token().expose_secret(),
        first.refresh_token().expose_secret()
    );
    assert_eq!(second.session_id(), sid);
    // The family's claims come back from the database (JSONB) unchanged.
    let access = claims(second.access_token().as_str());
    assert_eq!(access["sid"], sid.as_str());
    assert_eq!(access["sub"], "alice");
    assert_eq!(access["scope"], "orders:read");
    assert_eq!(access["tenant"], "acme");
    assert_eq!(access["client_id"], "app-web");
    // The first token is consumed in the database, at the refresh time; the second is live.
    let (old, family) = s
        .find(&RefreshTokenHash::of(first.refresh_token().expose_secret()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        old.consumed_at,
        Some(tower_auth_core::clock::Clock::now(&clock))
    );
    assert_eq!(family.id, sid);
    assert_eq!(family.revoked_at, None);
    let third = issuer
        .refresh(second.refresh_token().expose_secret())
        .await
        .unwrap();
    assert_eq!(third.session_id(), sid);
    assert_eq!(
        issuer.refresh("nope").await.unwrap_err().kind(),
        IssueErrorKind::InvalidToken
    );
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn reusing_a_consumed_token_revokes_the_family() {
    let db = PgDatabase::create().await;
    let s = store(&db).await;
    let clock = clock();
    let issuer = issuer(s.clone(), s.clone(), &clock, |r| r);
    let first = issuer.login(&login_request()).await.unwrap();
    let other_session = issuer.login(&login_request()).await.unwrap();
    let second = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    // The stolen first token comes back.
    let err = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::TokenReused);
    assert_eq!(err.to_auth_error().status(), StatusCode::UNAUTHORIZED);
    // The newest token of the family is dead too.
    let err = issuer
        .refresh(second.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    // Another login of the same user is not affected.
    issuer
        .refresh(other_session.refresh_token().expose_secret())
        .await
        .unwrap();
    db.drop_database().await;
}

/// Holds the first two `find` calls (shared by every clone's `finds` and `barrier`) until both
/// have arrived, so two refreshes with one token both pass every check before either consumes
/// it.
#[derive(Clone)]
struct Racing {
    inner: PostgresStore,
    barrier: Arc<Barrier>,
    finds: Arc<AtomicUsize>,
}

impl RefreshTokenStore for Racing {
    fn create_family<'a>(
        &'a self,
        family: &'a RefreshFamily,
        token: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, ()> {
        self.inner.create_family(family, token)
    }
    fn find<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
    ) -> StoreFuture<'a, Option<(RefreshTokenRecord, RefreshFamily)>> {
        Box::pin(async move {
            let found = self.inner.find(hash).await;
            if self.finds.fetch_add(1, Ordering::SeqCst) < 2 {
                self.barrier.wait().await;
            }
            found
        })
    }
    fn consume<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
        at: SystemTime,
        next: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, bool> {
        self.inner.consume(hash, at, next)
    }
    fn revoke_family<'a>(&'a self, family_id: &'a str, at: SystemTime) -> StoreFuture<'a, bool> {
        self.inner.revoke_family(family_id, at)
    }
    fn delete_families_ended_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        self.inner.delete_families_ended_before(before)
    }
}

struct Race {
    issuer: JwtIssuer,
    clock: ManualClock,
    winner: String,
    loser: IssueErrorKind,
    old: String,
    db: PgDatabase,
}

/// Two instances (each its own connection pool) refresh with the same token at once, both
/// past `find` before either consumes.
async fn race(reuse_interval: Duration) -> Race {
    let db = PgDatabase::create().await;
    let clock = clock();
    let barrier = Arc::new(Barrier::new(2));
    let finds = Arc::new(AtomicUsize::new(2)); // disarmed for the login
    let mut instances = Vec::new();
    for _ in 0..2 {
        let s = store(&db).await;
        let racing = Racing {
            inner: s.clone(),
            barrier: barrier.clone(),
            finds: finds.clone(),
        };
        instances.push(issuer(s, racing, &clock, |r| {
            r.reuse_interval(reuse_interval)
        }));
    }
    let pair = instances[0].login(&login_request()).await.unwrap();
    let old = pair.refresh_token().expose_secret().to_owned();
    finds.store(0, Ordering::SeqCst);
    let refresh = |issuer: &JwtIssuer| {
        let (issuer, token) = (issuer.clone(), old.clone());
        tokio::spawn(async move { issuer.refresh(&token).await })
    };
    let (a, b) = tokio::join!(refresh(&instances[0]), refresh(&instances[1]));
    let results = [a.unwrap(), b.unwrap()];
    // Both passed `find` before either consumed: the store's atomic consume decided.
    assert!(finds.load(Ordering::SeqCst) >= 2);
    let winners: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|p| p.refresh_token().expose_secret().to_owned())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one refresh wins: {results:?}");
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    Race {
        issuer: instances.swap_remove(0),
        clock,
        winner: winners[0].clone(),
        loser: loser.kind(),
        old,
        db,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn concurrent_refresh_in_strict_mode_has_one_winner_and_ends_the_family() {
    let r = race(Duration::ZERO).await;
    assert_eq!(r.loser, IssueErrorKind::TokenReused);
    let err = r.issuer.refresh(&r.winner).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    r.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn concurrent_refresh_within_the_reuse_interval_keeps_the_family() {
    let r = race(Duration::from_secs(5)).await;
    assert_eq!(r.loser, IssueErrorKind::InvalidToken);
    // Within the interval, again: a plain 401, the family lives.
    r.clock.advance(Duration::from_secs(4));
    let err = r.issuer.refresh(&r.old).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    let next = r.issuer.refresh(&r.winner).await.unwrap();
    // Past the interval, the old token is reuse: the family ends.
    r.clock.advance(Duration::from_secs(2));
    let err = r.issuer.refresh(&r.old).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::TokenReused);
    let err = r
        .issuer
        .refresh(next.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    r.db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn consume_is_atomic_across_pools() {
    let db = PgDatabase::create().await;
    let (a, b) = (store(&db).await, store(&db).await);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let record = |token: &str, family: &str| {
        RefreshTokenRecord::new(
            RefreshTokenHash::of(token),
            family.into(),
            t0,
            t0 + Duration::from_secs(60),
            None,
        )
    };
    for round in 0..20 {
        let fam = format!("fam-{round}");
        let family = RefreshFamily::new(
            fam.clone(),
            "alice".into(),
            "app-web".into(),
            String::new(),
            serde_json::json!({"tenant": "acme"}),
            t0,
            t0 + Duration::from_secs(3600),
            None,
        );
        let first = format!("first-{round}");
        a.create_family(&family, &record(&first, &fam))
            .await
            .unwrap();
        let (na, nb) = (
            record(&format!("a-{round}"), &fam),
            record(&format!("b-{round}"), &fam),
        );
        let hash = RefreshTokenHash::of(&first);
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let (a, na) = (a.clone(), na.clone());
                async move { a.consume(&hash, t0, &na).await }
            }),
            tokio::spawn({
                let (b, nb) = (b.clone(), nb.clone());
                async move { b.consume(&hash, t0, &nb).await }
            })
        );
        let wins = [ra.unwrap().unwrap(), rb.unwrap().unwrap()];
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}");
        // Only the winner's next token exists.
        let a_exists = a.find(&na.hash).await.unwrap().is_some();
        let b_exists = a.find(&nb.hash).await.unwrap().is_some();
        assert_eq!([a_exists, b_exists], wins, "round {round}");
    }
    // A revoked family's live token cannot be consumed, and nothing is inserted.
    let mut live = None;
    for token in ["a-0", "b-0"] {
        let hash = RefreshTokenHash::of(token);
        if let Some((r, _)) = a.find(&hash).await.unwrap() {
            assert_eq!(r.consumed_at, None);
            live = Some(hash);
        }
    }
    let live = live.unwrap();
    assert!(a.revoke_family("fam-0", t0).await.unwrap());
    let late = record("late", "fam-0");
    assert!(!a.consume(&live, t0, &late).await.unwrap());
    assert!(a.find(&late.hash).await.unwrap().is_none());
    // A duplicate token hash is a conflict.
    let family = RefreshFamily::new(
        "fam-x".into(),
        "alice".into(),
        "app-web".into(),
        String::new(),
        serde_json::json!({}),
        t0,
        t0 + Duration::from_secs(3600),
        None,
    );
    let err = a
        .create_family(&family, &record("first-1", "fam-x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn idle_timeout_and_family_lifetime() {
    let db = PgDatabase::create().await;
    let s = store(&db).await;
    let clock = clock();
    let issuer = issuer(s.clone(), s.clone(), &clock, |r| {
        r.family_lifetime(Duration::from_secs(3600))
            .idle_timeout(Duration::from_secs(600))
    });
    // Idle: unused for longer than the idle timeout.
    let idle = issuer.login(&login_request()).await.unwrap();
    clock.advance(Duration::from_secs(599));
    let fresh = issuer
        .refresh(idle.refresh_token().expose_secret())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(600));
    let err = issuer
        .refresh(fresh.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);

    // Absolute: active all along, but the family ends after an hour.
    let mut pair = issuer.login(&login_request()).await.unwrap();
    for _ in 0..6 {
        clock.advance(Duration::from_secs(590));
        pair = issuer
            .refresh(pair.refresh_token().expose_secret())
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(60));
    let err = issuer
        .refresh(pair.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn logout_revokes_the_family_and_ended_sessions_are_purged() {
    let db = PgDatabase::create().await;
    let s = store(&db).await;
    let clock = clock();
    let issuer = issuer(s.clone(), s.clone(), &clock, |r| r);
    let first = issuer.login(&login_request()).await.unwrap();
    let second = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap();
    assert!(
        issuer
            .logout(second.refresh_token().expose_secret())
            .await
            .unwrap()
    );
    let err = issuer
        .refresh(second.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    assert!(!issuer.logout("unknown").await.unwrap());

    // By session id.
    let other = issuer.login(&login_request()).await.unwrap();
    assert!(issuer.revoke_session(other.session_id()).await.unwrap());
    assert!(
        issuer
            .refresh(other.refresh_token().expose_secret())
            .await
            .is_err()
    );
    assert!(!issuer.revoke_session("nope").await.unwrap());
    let alive = issuer.login(&login_request()).await.unwrap();

    // Ended sessions are purged after `keep`, with their tokens; live ones stay.
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        issuer
            .purge_ended_sessions(Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        issuer
            .purge_ended_sessions(Duration::from_secs(60))
            .await
            .unwrap(),
        2
    );
    for gone in [&first, &second] {
        let hash = RefreshTokenHash::of(gone.refresh_token().expose_secret());
        assert!(s.find(&hash).await.unwrap().is_none());
    }
    issuer
        .refresh(alive.refresh_token().expose_secret())
        .await
        .unwrap();
    db.drop_database().await;
}
