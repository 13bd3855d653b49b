//! Refresh tokens on the memory and SQLite stores: rotation, reuse detection revoking the
//! family, the concurrent-refresh race (strict and with a reuse interval), idle and absolute
//! expiry on an injected clock, logout (the scenarios of `issue::testing`, which the
//! workspace's integration tests also run on PostgreSQL), secrecy, configuration.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tower_auth_jwt::issue::testing::{self, SharedStore, clock, issuer, login_request};
use tower_auth_jwt::issue::{
    IssueErrorKind, JwtIssuer, MemoryStore, RefreshTokenHash, RefreshTokenStore, RefreshTokens,
    SqliteStore,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Sqlite,
}

const KINDS: [Kind; 2] = [Kind::Memory, Kind::Sqlite];

struct Fixture {
    store: SharedStore,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

async fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store: SharedStore = match kind {
        Kind::Memory => Arc::new(MemoryStore::new()),
        Kind::Sqlite => Arc::new(SqliteStore::open(&path).await.unwrap()),
    };
    Fixture {
        store,
        _dir: dir,
        path,
    }
}

/// The store twice for the race scenarios: memory shared by clones, SQLite through two
/// connection pools on one file.
async fn pair(kind: Kind) -> (Fixture, [SharedStore; 2]) {
    let f = fixture(kind).await;
    let second: SharedStore = match kind {
        Kind::Memory => f.store.clone(),
        Kind::Sqlite => Arc::new(SqliteStore::open(&f.path).await.unwrap()),
    };
    let stores = [f.store.clone(), second];
    (f, stores)
}

#[tokio::test]
async fn every_refresh_rotates_and_keeps_the_session() {
    for kind in KINDS {
        println!("{kind:?}");
        testing::refresh_rotates_and_keeps_the_session(fixture(kind).await.store).await;
    }
}

#[tokio::test]
async fn reusing_a_consumed_token_revokes_the_family() {
    for kind in KINDS {
        println!("{kind:?}");
        testing::reuse_revokes_the_family(fixture(kind).await.store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_in_strict_mode_has_one_winner_and_ends_the_family() {
    for kind in KINDS {
        println!("{kind:?}");
        let (_f, stores) = pair(kind).await;
        testing::concurrent_refresh_strict(stores).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_within_the_reuse_interval_keeps_the_family() {
    for kind in KINDS {
        println!("{kind:?}");
        let (_f, stores) = pair(kind).await;
        testing::concurrent_refresh_with_reuse_interval(stores).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_is_atomic_across_connections() {
    for kind in KINDS {
        println!("{kind:?}");
        let (_f, [a, b]) = pair(kind).await;
        testing::consume_is_atomic(a, b).await;
    }
}

#[tokio::test]
async fn idle_timeout_and_family_lifetime() {
    for kind in KINDS {
        println!("{kind:?}");
        testing::idle_timeout_and_family_lifetime(fixture(kind).await.store).await;
    }
}

#[tokio::test]
async fn logout_revokes_the_family() {
    for kind in KINDS {
        println!("{kind:?}");
        testing::logout_revokes_the_family(fixture(kind).await.store).await;
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
