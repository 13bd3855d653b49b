//! Refresh tokens on the memory and SQLite stores: rotation, reuse detection revoking the
//! family, the concurrent-refresh race (strict and with a reuse interval), idle and absolute
//! expiry on an injected clock, logout, secrecy.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tokio::sync::Barrier;
use tower_auth_core::clock::ManualClock;
use tower_auth_jwt::issue::{
    IssueErrorKind, JwtIssuer, MemoryStore, RefreshFamily, RefreshTokenHash, RefreshTokenRecord,
    RefreshTokenStore, RefreshTokens, SigningKeyStore, SqliteStore, StoreFuture, TokenRequest,
};

trait Both: RefreshTokenStore + SigningKeyStore {}
impl<T: RefreshTokenStore + SigningKeyStore> Both for T {}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Sqlite,
}

const KINDS: [Kind; 2] = [Kind::Memory, Kind::Sqlite];

struct Fixture {
    store: Arc<dyn Both>,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

async fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store: Arc<dyn Both> = match kind {
        Kind::Memory => Arc::new(MemoryStore::new()),
        Kind::Sqlite => Arc::new(SqliteStore::open(&path).await.unwrap()),
    };
    Fixture {
        store,
        _dir: dir,
        path,
    }
}

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
}

fn issuer(
    keys: impl SigningKeyStore,
    refresh: impl RefreshTokenStore,
    clock: &ManualClock,
    tune: impl FnOnce(RefreshTokens) -> RefreshTokens,
) -> JwtIssuer {
    JwtIssuer::builder(keys)
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
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
async fn every_refresh_rotates_and_keeps_the_session() {
    for kind in KINDS {
        let f = fixture(kind).await;
        let clock = clock();
        let issuer = issuer(f.store.clone(), f.store.clone(), &clock, |r| r);
        let first = issuer.login(&login_request()).await.unwrap();
        let sid = first.session_id().to_owned();
        let access = claims(first.access_token().as_str());
        assert_eq!(access["sid"], sid.as_str());
        assert_eq!(access["tenant"], "acme");
        // 256 bits of randomness.
        let raw = URL_SAFE_NO_PAD
            .decode(first.refresh_token().expose_secret())
            .unwrap();
        assert_eq!(raw.len(), 32);

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
        let access = claims(second.access_token().as_str());
        assert_eq!(access["sid"], sid.as_str());
        assert_eq!(access["sub"], "alice");
        assert_eq!(access["scope"], "orders:read");
        assert_eq!(access["tenant"], "acme");
        assert_eq!(access["client_id"], "app-web");
        assert_ne!(
            access["jti"],
            claims(first.access_token().as_str())["jti"],
            "{kind:?}"
        );
        let third = issuer
            .refresh(second.refresh_token().expose_secret())
            .await
            .unwrap();
        assert_eq!(third.session_id(), sid);

        // Unknown and malformed tokens.
        for bad in ["", "nope", &"x".repeat(600)] {
            assert_eq!(
                issuer.refresh(bad).await.unwrap_err().kind(),
                IssueErrorKind::InvalidToken,
                "{kind:?}"
            );
        }
    }
}

#[tokio::test]
async fn reusing_a_consumed_token_revokes_the_family() {
    for kind in KINDS {
        let f = fixture(kind).await;
        let clock = clock();
        let issuer = issuer(f.store.clone(), f.store.clone(), &clock, |r| r);
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
        assert_eq!(err.kind(), IssueErrorKind::TokenReused, "{kind:?}");
        assert_eq!(err.to_auth_error().status(), http::StatusCode::UNAUTHORIZED);
        // The newest token of the family is dead too.
        let err = issuer
            .refresh(second.refresh_token().expose_secret())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidToken, "{kind:?}");
        // Another login of the same user is not affected.
        issuer
            .refresh(other_session.refresh_token().expose_secret())
            .await
            .unwrap();
    }
}

/// Holds the first two `find` calls until both have arrived, so two refreshes with one token
/// both pass every check before either consumes it.
struct Racing {
    inner: Arc<dyn Both>,
    barrier: Barrier,
    finds: AtomicUsize,
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
    _fixture: Fixture,
}

async fn race(kind: Kind, reuse_interval: Duration) -> Race {
    let f = fixture(kind).await;
    let clock = clock();
    let racing = Arc::new(Racing {
        inner: f.store.clone(),
        barrier: Barrier::new(2),
        finds: AtomicUsize::new(2), // disarmed for the login
    });
    let issuer = issuer(f.store.clone(), racing.clone(), &clock, |r| {
        r.reuse_interval(reuse_interval)
    });
    let pair = issuer.login(&login_request()).await.unwrap();
    let old = pair.refresh_token().expose_secret().to_owned();
    racing.finds.store(0, Ordering::SeqCst);
    let refresh = || {
        let (issuer, token) = (issuer.clone(), old.clone());
        tokio::spawn(async move { issuer.refresh(&token).await })
    };
    let (a, b) = tokio::join!(refresh(), refresh());
    let results = [a.unwrap(), b.unwrap()];
    // Both passed `find` before either consumed: the store's atomic consume decided.
    assert!(racing.finds.load(Ordering::SeqCst) >= 2);
    let winners: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|p| p.refresh_token().expose_secret().to_owned())
        .collect();
    assert_eq!(winners.len(), 1, "{kind:?}: exactly one refresh wins");
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    Race {
        issuer,
        clock,
        winner: winners[0].clone(),
        loser: loser.kind(),
        old,
        _fixture: f,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_in_strict_mode_has_one_winner_and_ends_the_family() {
    for kind in KINDS {
        let r = race(kind, Duration::ZERO).await;
        assert_eq!(r.loser, IssueErrorKind::TokenReused, "{kind:?}");
        let err = r.issuer.refresh(&r.winner).await.unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidToken, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_within_the_reuse_interval_keeps_the_family() {
    for kind in KINDS {
        let r = race(kind, Duration::from_secs(5)).await;
        assert_eq!(r.loser, IssueErrorKind::InvalidToken, "{kind:?}");
        // Within the interval, again: a plain 401, the family lives.
        r.clock.advance(Duration::from_secs(4));
        let err = r.issuer.refresh(&r.old).await.unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidToken, "{kind:?}");
        let next = r.issuer.refresh(&r.winner).await.unwrap();
        // Past the interval, the old token is reuse: the family ends.
        r.clock.advance(Duration::from_secs(2));
        let err = r.issuer.refresh(&r.old).await.unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::TokenReused, "{kind:?}");
        let err = r
            .issuer
            .refresh(next.refresh_token().expose_secret())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidToken, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_consume_is_atomic_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let record = |token: &str| {
        RefreshTokenRecord::new(
            RefreshTokenHash::of(token),
            "fam".into(),
            t0,
            t0 + Duration::from_secs(60),
            None,
        )
    };
    let family = RefreshFamily::new(
        "fam".into(),
        "alice".into(),
        "app-web".into(),
        String::new(),
        serde_json::json!({}),
        t0,
        t0 + Duration::from_secs(3600),
        None,
    );
    for round in 0..20 {
        let first = format!("first-{round}");
        let mut fam = family.clone();
        fam.id = format!("fam-{round}");
        let mut rec = record(&first);
        rec.family_id = fam.id.clone();
        a.create_family(&fam, &rec).await.unwrap();
        let (mut na, mut nb) = (record(&format!("a-{round}")), record(&format!("b-{round}")));
        na.family_id = fam.id.clone();
        nb.family_id = fam.id.clone();
        let hash = RefreshTokenHash::of(&first);
        let (ra, rb) = tokio::join!(a.consume(&hash, t0, &na), b.consume(&hash, t0, &nb));
        let wins = [ra.unwrap(), rb.unwrap()];
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}");
        // Only the winner's next token exists.
        let a_exists = a.find(&na.hash).await.unwrap().is_some();
        let b_exists = a.find(&nb.hash).await.unwrap().is_some();
        assert_eq!([a_exists, b_exists], wins);
    }
    // A revoked family's token cannot be consumed.
    let mut rec = record("late");
    rec.family_id = "fam-0".into();
    let hash = RefreshTokenHash::of("a-0");
    let winner_or_not = a.find(&hash).await.unwrap();
    a.revoke_family("fam-0", t0).await.unwrap();
    if winner_or_not.is_some() {
        assert!(!a.consume(&hash, t0, &rec).await.unwrap());
    }
}

#[tokio::test]
async fn idle_timeout_and_family_lifetime() {
    for kind in KINDS {
        let f = fixture(kind).await;
        let clock = clock();
        let issuer = issuer(f.store.clone(), f.store.clone(), &clock, |r| {
            r.family_lifetime(Duration::from_secs(3600))
                .idle_timeout(Duration::from_secs(600))
        });
        // Idle: unused for longer than the idle timeout.
        let idle = issuer.login(&login_request()).await.unwrap();
        assert_eq!(
            idle.refresh_token().expires_at(),
            tower_auth_core::clock::Clock::now(&clock) + Duration::from_secs(600)
        );
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
        assert_eq!(err.kind(), IssueErrorKind::InvalidToken, "{kind:?}");

        // Absolute: active all along, but the family ends after an hour.
        let mut pair = issuer.login(&login_request()).await.unwrap();
        for _ in 0..6 {
            clock.advance(Duration::from_secs(590));
            pair = issuer
                .refresh(pair.refresh_token().expose_secret())
                .await
                .unwrap();
        }
        // 3540 s in; the token's own expiry is capped by the family's end.
        clock.advance(Duration::from_secs(60));
        let err = issuer
            .refresh(pair.refresh_token().expose_secret())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidToken, "{kind:?}");
    }
}

#[tokio::test]
async fn logout_revokes_the_family() {
    for kind in KINDS {
        let f = fixture(kind).await;
        let clock = clock();
        let issuer = issuer(f.store.clone(), f.store.clone(), &clock, |r| r);
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
        assert_eq!(err.kind(), IssueErrorKind::InvalidToken, "{kind:?}");
        assert!(!issuer.logout("unknown").await.unwrap());
        assert!(!issuer.logout("").await.unwrap());

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

        // Ended sessions are purged after `keep`.
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
            2,
            "{kind:?}"
        );
        let purged = RefreshTokenHash::of(second.refresh_token().expose_secret());
        assert!(f.store.find(&purged).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn refresh_tokens_are_stored_hashed_and_never_in_debug() {
    let f = fixture(Kind::Sqlite).await;
    let clock = clock();
    let issuer = issuer(f.store.clone(), f.store.clone(), &clock, |r| r);
    let pair = issuer.login(&login_request()).await.unwrap();
    let next = issuer
        .refresh(pair.refresh_token().expose_secret())
        .await
        .unwrap();
    for p in [&pair, &next] {
        let token = p.refresh_token().expose_secret();
        let debug = format!("{p:?} {:?} {issuer:?}", p.refresh_token());
        assert!(!debug.contains(token), "{debug}");
        assert!(!debug.contains(p.access_token().as_str()), "{debug}");
        let hash = RefreshTokenHash::of(token);
        let (record, _) = f.store.find(&hash).await.unwrap().unwrap();
        assert!(!format!("{record:?}").contains(token));
    }
    // The database file holds neither token, in any spelling.
    drop(issuer);
    let bytes = std::fs::read(&f.path).unwrap();
    for p in [&pair, &next] {
        let token = p.refresh_token().expose_secret();
        let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
        assert!(!bytes.windows(raw.len()).any(|w| w == raw));
    }
}

#[test]
fn refresh_configuration_is_validated() {
    let err = |tune: fn(RefreshTokens) -> RefreshTokens| {
        JwtIssuer::builder(MemoryStore::new())
            .issuer("https://app.example")
            .audience("app-api")
            .client_id("app-web")
            .refresh_tokens(tune(RefreshTokens::new(MemoryStore::new())))
            .build()
            .unwrap_err()
            .setting()
    };
    assert_eq!(
        err(|r| r.family_lifetime(Duration::ZERO)),
        "family_lifetime"
    );
    assert_eq!(
        err(|r| r
            .family_lifetime(Duration::from_secs(60))
            .idle_timeout(Duration::from_secs(120))),
        "idle_timeout"
    );
    assert_eq!(
        err(|r| r.reuse_interval(Duration::from_secs(61))),
        "reuse_interval"
    );
}

#[tokio::test]
async fn without_refresh_tokens_login_is_refused() {
    let issuer = JwtIssuer::builder(MemoryStore::new())
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
        .build()
        .unwrap();
    let err = issuer.login(&login_request()).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidRequest);
}
