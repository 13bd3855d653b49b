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
use std::time::{Duration, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_auth_core::{AuthenticateLayer, Principal};
use tower_auth_jwt::issue::testing::{self, SharedStore};
use tower_auth_jwt::issue::{
    JwtIssuer, JwtIssuerBuilder, MemoryStore, PostgresStore, SigningKeyStore, StoredSigningKey,
    TokenRequest,
};
use tower_auth_jwt::remote::JwksUrl;
use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};
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
            TrustedIssuer::new(ISS)
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
    testing::signing_key_store_contract(&store(&db).await).await;
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

// ---- refresh tokens: the scenarios of `issue::testing`, on a database of their own each

async fn shared(db: &PgDatabase) -> SharedStore {
    Arc::new(store(db).await)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn every_refresh_rotates_and_keeps_the_session() {
    let db = PgDatabase::create().await;
    testing::refresh_rotates_and_keeps_the_session(shared(&db).await).await;
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn reusing_a_consumed_token_revokes_the_family() {
    let db = PgDatabase::create().await;
    testing::reuse_revokes_the_family(shared(&db).await).await;
    db.drop_database().await;
}

/// Two instances (each its own connection pool) refresh with one token at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn concurrent_refresh_in_strict_mode_has_one_winner_and_ends_the_family() {
    let db = PgDatabase::create().await;
    testing::concurrent_refresh_strict([shared(&db).await, shared(&db).await]).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn concurrent_refresh_within_the_reuse_interval_keeps_the_family() {
    let db = PgDatabase::create().await;
    testing::concurrent_refresh_with_reuse_interval([shared(&db).await, shared(&db).await]).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn consume_is_atomic_across_pools() {
    let db = PgDatabase::create().await;
    testing::consume_is_atomic(shared(&db).await, shared(&db).await).await;
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn idle_timeout_and_family_lifetime() {
    let db = PgDatabase::create().await;
    testing::idle_timeout_and_family_lifetime(shared(&db).await).await;
    db.drop_database().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn logout_revokes_the_family_and_ended_sessions_are_purged() {
    let db = PgDatabase::create().await;
    testing::logout_revokes_the_family(shared(&db).await).await;
    db.drop_database().await;
}
