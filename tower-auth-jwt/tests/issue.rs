//! The issuer: access tokens verified by this crate's authenticator (JWKS over loopback HTTP,
//! static JWKS, the issuer as key source), rotation, restarts on SQLite, secrecy.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::{ServiceExt, service_fn};
use tower_auth_core::clock::ManualClock;
use tower_auth_core::{AuthenticateLayer, Principal};
use tower_auth_jwt::issue::{
    IssueErrorKind, JwtIssuer, JwtIssuerBuilder, MemoryStore, SigningKeyStore, SqliteStore,
    TokenRequest,
};
use tower_auth_jwt::remote::JwksUrl;
use tower_auth_jwt::{Algorithm, Claims, JwtAuthenticator, TrustedIssuer};

const ISS: &str = "https://app.example";
const AUD: &str = "app-api";

fn builder(store: impl SigningKeyStore) -> JwtIssuerBuilder {
    JwtIssuer::builder(store)
        .issuer(ISS)
        .audience(AUD)
        .client_id("app-web")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Sends a request with `token` through an `AuthenticateLayer` built on `auth`; the status
/// and, on success, the principal.
async fn call(auth: &JwtAuthenticator, token: &str) -> (StatusCode, Option<Principal>) {
    let seen = Arc::new(RwLock::new(None));
    let s = seen.clone();
    let svc =
        AuthenticateLayer::required(auth.clone()).layer(service_fn(move |req: Request<()>| {
            let s = s.clone();
            async move {
                *s.write().unwrap() = req.extensions().get::<Principal>().cloned();
                Ok::<_, Infallible>(Response::new(()))
            }
        }));
    let req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let status = svc.oneshot(req).await.unwrap().status();
    let p = seen.read().unwrap().clone();
    (status, p)
}

use tower::Layer as _;

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
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

fn remote_auth(url: &str) -> JwtAuthenticator {
    let keys = JwksUrl::builder(url)
        .insecure_allow_http(true)
        // A rotation shows a new kid; let the verifier refetch for it at once.
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
async fn tokens_verify_over_http_jwks_across_rotation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");

    let first = builder(SqliteStore::open(&path).await.unwrap())
        .build()
        .unwrap();
    let url = serve_jwks(first.clone()).await;
    let auth = remote_auth(&url);

    let request = TokenRequest::new("alice")
        .scopes(["orders:read", "orders:write"])
        .claim("plan", "pro");
    let old = first.issue(&request).await.unwrap();
    let (status, principal) = call(&auth, old.as_str()).await;
    assert_eq!(status, StatusCode::OK);
    let p = principal.unwrap();
    assert_eq!(p.subject(), "alice");
    assert!(p.scopes().contains_all(["orders:read", "orders:write"]));
    let claims = p.extension::<Claims>().unwrap();
    assert_eq!(claims.get("plan"), Some(&json!("pro")));
    assert_eq!(claims.get("client_id"), Some(&json!("app-web")));

    // The JWKS response: cacheable, JSON, public keys only.
    let res = first.jwks_response().await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    assert_eq!(res.headers()["content-type"], "application/json");

    // Rotation: the new key signs, the old one is still published.
    let new_kid = first.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old.kid());
    let new = first.issue(&request).await.unwrap();
    assert_eq!(new.kid(), new_kid);
    assert_eq!(call(&auth, new.as_str()).await.0, StatusCode::OK);
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    let jwks = first.jwks().await.unwrap();
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, [new_kid.clone(), old.kid().to_owned()]);

    // Restart: a new issuer on the same file signs with the same key, and a fresh verifier
    // reading the new process's JWKS accepts the tokens of the old process.
    drop(first);
    let second = builder(SqliteStore::open(&path).await.unwrap())
        .build()
        .unwrap();
    assert_eq!(second.active_kid().await.unwrap(), new_kid);
    let auth = remote_auth(&serve_jwks(second.clone()).await);
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    assert_eq!(call(&auth, new.as_str()).await.0, StatusCode::OK);
    let third = second.issue(&request).await.unwrap();
    assert_eq!(third.kid(), new_kid);
    assert_eq!(call(&auth, third.as_str()).await.0, StatusCode::OK);

    // A token signed by another issuer's key, same iss and kid shape: 401.
    let stranger = builder(MemoryStore::new()).build().unwrap();
    let forged = stranger.issue(&request).await.unwrap();
    assert_eq!(
        call(&auth, forged.as_str()).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn access_token_shape_follows_rfc_9068() {
    let clock = ManualClock::new(at(1_767_225_600));
    let issuer = builder(MemoryStore::new())
        .clock(clock.clone())
        .build()
        .unwrap();
    let a = issuer
        .issue(&TokenRequest::new("alice").scopes(["read"]))
        .await
        .unwrap();
    let b = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    let header = segment(a.as_str(), 0);
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": a.kid()})
    );
    let claims = segment(a.as_str(), 1);
    assert_eq!(claims["iss"], ISS);
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "app-web");
    assert_eq!(claims["iat"], 1_767_225_600u64);
    assert_eq!(claims["exp"], 1_767_225_600u64 + 900);
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["jti"], a.jti());
    assert!(claims.get("sid").is_none());
    assert_eq!(a.expires_in(), Duration::from_secs(900));
    assert_eq!(a.expires_at(), at(1_767_225_600 + 900));
    // 128-bit random jti, different per token; no scope claim without scopes.
    assert_eq!(URL_SAFE_NO_PAD.decode(a.jti()).unwrap().len(), 16);
    assert_ne!(a.jti(), b.jti());
    assert!(segment(b.as_str(), 1).get("scope").is_none());

    // Per-request client_id; registered claims cannot be overridden.
    let c = issuer
        .issue(&TokenRequest::new("alice").client_id("mobile"))
        .await
        .unwrap();
    assert_eq!(segment(c.as_str(), 1)["client_id"], "mobile");
    for name in [
        "iss",
        "aud",
        "exp",
        "sub",
        "sid",
        "scope",
        "client_id",
        "jti",
    ] {
        let err = issuer
            .issue(&TokenRequest::new("alice").claim(name, "x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidRequest, "{name}");
    }

    // Several audiences: an array.
    let multi = builder(MemoryStore::new())
        .audience("other-api")
        .build()
        .unwrap();
    let t = multi.issue(&TokenRequest::new("bob")).await.unwrap();
    assert_eq!(segment(t.as_str(), 1)["aud"], json!([AUD, "other-api"]));
}

#[tokio::test]
async fn every_algorithm_verifies_through_a_static_jwks() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let issuer = builder(MemoryStore::new()).algorithm(alg).build().unwrap();
        let token = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
        assert_eq!(segment(token.as_str(), 0)["alg"], alg.as_str());
        let jwks = issuer.jwks().await.unwrap();
        for key in jwks["keys"].as_array().unwrap() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(key.get(private).is_none(), "{alg}: {private} published");
            }
        }
        let auth = JwtAuthenticator::builder()
            .issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .jwks(jwks.to_string())
                    .require_access_token_type(),
            )
            .build()
            .unwrap();
        assert_eq!(call(&auth, token.as_str()).await.0, StatusCode::OK, "{alg}");
        // Another key of the same algorithm does not verify.
        let other = builder(MemoryStore::new()).algorithm(alg).build().unwrap();
        let forged = other.issue(&TokenRequest::new("alice")).await.unwrap();
        assert_eq!(
            call(&auth, forged.as_str()).await.0,
            StatusCode::UNAUTHORIZED,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn hs256_publishes_nothing_and_verifies_through_the_issuer_as_key_source() {
    let issuer = builder(MemoryStore::new())
        .algorithm(Algorithm::HS256)
        .build()
        .unwrap();
    assert_eq!(issuer.jwks().await.unwrap(), json!({"keys": []}));
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::HS256])
                .key_source(issuer.clone()),
        )
        .build()
        .unwrap();
    let old = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    issuer.rotate_signing_key().await.unwrap();
    let new = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    assert_ne!(old.kid(), new.kid());
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    assert_eq!(call(&auth, new.as_str()).await.0, StatusCode::OK);
    // Another HS256 issuer's token (its own secret): 401.
    let other = builder(MemoryStore::new())
        .algorithm(Algorithm::HS256)
        .build()
        .unwrap();
    let forged = other.issue(&TokenRequest::new("alice")).await.unwrap();
    assert_eq!(
        call(&auth, forged.as_str()).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn retired_keys_stay_published_until_their_tokens_expired_then_go() {
    let clock = ManualClock::new(at(1_767_225_600));
    let store = MemoryStore::new();
    let issuer = builder(store.clone()).clock(clock.clone()).build().unwrap();
    let auth = JwtAuthenticator::builder()
        .clock(clock.clone())
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::EdDSA])
                .key_source(issuer.clone()),
        )
        .build()
        .unwrap();
    let old = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    issuer.rotate_signing_key().await.unwrap();
    let count = |v: Value| v["keys"].as_array().unwrap().len();
    assert_eq!(count(issuer.jwks().await.unwrap()), 2);

    // Just before the last old token expires (plus the 60 s grace): still published.
    clock.advance(Duration::from_secs(900 + 59));
    assert_eq!(count(issuer.jwks().await.unwrap()), 2);
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    // Past it: gone from the JWKS and the store.
    clock.advance(Duration::from_secs(2));
    assert_eq!(count(issuer.jwks().await.unwrap()), 1);
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn changing_the_algorithm_rotates_at_start() {
    let store = MemoryStore::new();
    let ed = builder(store.clone()).build().unwrap();
    let old = ed.issue(&TokenRequest::new("alice")).await.unwrap();
    let es = builder(store.clone())
        .algorithm(Algorithm::ES256)
        .build()
        .unwrap();
    let new = es.issue(&TokenRequest::new("alice")).await.unwrap();
    assert_eq!(segment(new.as_str(), 0)["alg"], "ES256");
    let jwks = es.jwks().await.unwrap();
    let auth = JwtAuthenticator::builder()
        .issuer(TrustedIssuer::new(ISS).audience(AUD).jwks(jwks.to_string()))
        .build()
        .unwrap();
    assert_eq!(call(&auth, old.as_str()).await.0, StatusCode::OK);
    assert_eq!(call(&auth, new.as_str()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn processes_starting_together_generate_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (a, b) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
    let (a, b) = (
        builder(a.unwrap()).build().unwrap(),
        builder(b.unwrap()).build().unwrap(),
    );
    let (ka, kb) = tokio::join!(a.active_kid(), b.active_kid());
    assert_eq!(ka.unwrap(), kb.unwrap());
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);

    // Two rotations racing from the same state: one new key, not two.
    let before = a.active_kid().await.unwrap();
    let (ra, rb) = tokio::join!(a.rotate_signing_key(), b.rotate_signing_key());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_ne!(ra, before);
    let keys = store.signing_keys().await.unwrap();
    assert!(keys.len() == 2 || keys.len() == 3, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.retired_at().is_none()).count(), 1);
    let _ = rb;
}

#[tokio::test]
async fn secrets_never_appear_in_debug() {
    let store = MemoryStore::new();
    let issuer = builder(store.clone())
        .algorithm(Algorithm::HS256)
        .build()
        .unwrap();
    let token = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    let key = store.signing_keys().await.unwrap().remove(0);
    let secret = key.secret_material().to_vec();
    let debug = format!(
        "{issuer:?} {key:?} {store:?} {token:?} {:?}",
        builder(MemoryStore::new())
    );
    for needle in [
        format!("{secret:?}"),
        URL_SAFE_NO_PAD.encode(&secret),
        base64::engine::general_purpose::STANDARD.encode(&secret),
        token.as_str().to_owned(),
        token.as_str().split('.').nth(2).unwrap().to_owned(),
    ] {
        assert!(!debug.contains(&needle), "{debug}");
    }
    assert!(debug.contains("<redacted>"));
}

#[tokio::test]
async fn sqlite_migrations_coexist_with_other_crates_and_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    {
        // Another crate's migrations table and the application's own, already there.
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut c,
            "CREATE TABLE tower_auth_apikey_migrations (version INTEGER PRIMARY KEY, description TEXT, checksum BLOB, applied_at INTEGER);
             INSERT INTO tower_auth_apikey_migrations VALUES (1, 'apikey', x'00', 0);
             CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT);
             INSERT INTO _sqlx_migrations VALUES (1, 'app');",
        )
        .await
        .unwrap();
    }
    for _ in 0..2 {
        let s = SqliteStore::connect(&url).await.unwrap();
        s.close().await;
        // The revocation store, on the same database, keeps its migrations apart.
        let r = tower_auth_jwt::revocation::SqliteRevocationStore::connect(&url)
            .await
            .unwrap();
        r.close().await;
    }
    use sqlx::Connection as _;
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
    let n: i64 = sqlx::query_scalar(&count("tower_auth_jwt_migrations"))
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 2, "each migration applied once");
    for (table, rows) in [
        ("tower_auth_jwt_revocation_migrations", 1),
        ("tower_auth_apikey_migrations", 1),
        ("_sqlx_migrations", 1),
        ("tower_auth_jwt_signing_keys", 0),
        ("tower_auth_jwt_refresh_families", 0),
        ("tower_auth_jwt_refresh_tokens", 0),
        ("tower_auth_jwt_revocations", 0),
    ] {
        let n: i64 = sqlx::query_scalar(&count(table))
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n, rows, "{table}");
    }
    // A changed migration is refused rather than silently re-run.
    sqlx::query("UPDATE tower_auth_jwt_migrations SET checksum = x'00'")
        .execute(&mut c)
        .await
        .unwrap();
    let err = SqliteStore::connect(&url).await.unwrap_err();
    assert!(err.to_string().contains("differs"), "{err}");
}

#[test]
fn configuration_is_validated() {
    let err = |b: JwtIssuerBuilder| b.build().unwrap_err().setting();
    let base = || builder(MemoryStore::new());
    assert_eq!(
        err(JwtIssuer::builder(MemoryStore::new())
            .audience(AUD)
            .client_id("c")),
        "issuer"
    );
    assert_eq!(
        err(JwtIssuer::builder(MemoryStore::new())
            .issuer(ISS)
            .client_id("c")),
        "audience"
    );
    assert_eq!(
        err(JwtIssuer::builder(MemoryStore::new())
            .issuer(ISS)
            .audience(AUD)),
        "client_id"
    );
    assert_eq!(err(base().algorithm(Algorithm::PS256)), "algorithm");
    assert_eq!(
        err(base().access_token_ttl(Duration::ZERO)),
        "access_token_ttl"
    );
    assert_eq!(
        err(base().access_token_ttl(Duration::from_secs(25 * 3600))),
        "access_token_ttl"
    );
    assert_eq!(err(base().key_refresh(Duration::ZERO)), "key_refresh");
    assert!(base().build().is_ok());
}

#[tokio::test]
async fn the_access_cookie_authenticates_and_the_refresh_cookie_stays_on_its_path() {
    use tower_auth_jwt::issue::{ACCESS_COOKIE, access_cookie, refresh_cookie};
    let issuer = builder(MemoryStore::new()).build().unwrap();
    let token = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
    let set = access_cookie(token.as_str(), token.expires_in()).unwrap();
    // What the browser sends back: the name=value pair.
    let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(pair.starts_with("__Host-access_token="));
    let auth = JwtAuthenticator::builder()
        .cookie(ACCESS_COOKIE)
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .jwks(issuer.jwks().await.unwrap().to_string()),
        )
        .build()
        .unwrap();
    let svc = AuthenticateLayer::required(auth).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let req = Request::get("/").header("cookie", &pair).body(()).unwrap();
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    let req = Request::get("/")
        .header("cookie", "__Host-access_token=forged.token.value")
        .body(())
        .unwrap();
    assert_eq!(
        svc.oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = refresh_cookie("abc", "/auth", Duration::from_secs(60)).unwrap();
    assert!(r.to_str().unwrap().contains("; Path=/auth;"));
}

/// A signing-key store that never answers.
struct Stuck;

impl SigningKeyStore for Stuck {
    fn signing_keys(
        &self,
    ) -> tower_auth_jwt::issue::StoreFuture<'_, Vec<tower_auth_jwt::issue::StoredSigningKey>> {
        Box::pin(std::future::pending())
    }
    fn replace_active<'a>(
        &'a self,
        _: Option<&'a str>,
        _: SystemTime,
        _: &'a tower_auth_jwt::issue::StoredSigningKey,
    ) -> tower_auth_jwt::issue::StoreFuture<'a, bool> {
        Box::pin(std::future::pending())
    }
    fn delete_retired_before(&self, _: SystemTime) -> tower_auth_jwt::issue::StoreFuture<'_, u64> {
        Box::pin(std::future::pending())
    }
    fn delete_retired_key<'a>(
        &'a self,
        _: &'a str,
    ) -> tower_auth_jwt::issue::StoreFuture<'a, bool> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_store_is_a_503_after_the_deadline() {
    let issuer = builder(Stuck)
        .store_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = issuer.issue(&TokenRequest::new("alice")).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::Unavailable);
    assert_eq!(
        err.to_auth_error().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let res = issuer.jwks_response().await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    assert!(res.body().is_empty());
    let setting = builder(MemoryStore::new())
        .store_timeout(Duration::ZERO)
        .build()
        .unwrap_err()
        .setting();
    assert_eq!(setting, "store_timeout");
}

#[tokio::test]
async fn signing_key_stores_keep_the_contract() {
    use tower_auth_jwt::issue::testing::signing_key_store_contract;
    signing_key_store_contract(&MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    signing_key_store_contract(&SqliteStore::open(dir.path().join("k.db")).await.unwrap()).await;
}

#[tokio::test]
async fn the_issuer_as_key_source_follows_a_rotation_made_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let clock = ManualClock::new(at(1_767_225_600));
    let open = || async {
        builder(SqliteStore::open(&path).await.unwrap())
            .algorithm(Algorithm::HS256)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let (here, there) = (open().await, open().await);
    let auth = JwtAuthenticator::builder()
        .clock(clock.clone())
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::HS256])
                .key_source(here.clone()),
        )
        .build()
        .unwrap();
    let before = there.issue(&TokenRequest::new("alice")).await.unwrap();
    assert_eq!(call(&auth, before.as_str()).await.0, StatusCode::OK);
    // The other process rotates; its new tokens verify here at once, without waiting for
    // the key refresh interval.
    there.rotate_signing_key().await.unwrap();
    let after = there.issue(&TokenRequest::new("alice")).await.unwrap();
    assert_eq!(call(&auth, after.as_str()).await.0, StatusCode::OK);
    assert_eq!(here.active_kid().await.unwrap(), after.kid());

    // Unknown kids re-read the store at most once per cooldown: a rotation right after is
    // seen only when the cooldown has passed.
    there.rotate_signing_key().await.unwrap();
    let third = there.issue(&TokenRequest::new("alice")).await.unwrap();
    assert_eq!(
        call(&auth, third.as_str()).await.0,
        StatusCode::UNAUTHORIZED
    );
    clock.advance(Duration::from_secs(5));
    assert_eq!(call(&auth, third.as_str()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_scheduled_rotation_publishes_the_next_key_before_it_signs() {
    for sqlite in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SigningKeyStore> = if sqlite {
            Arc::new(SqliteStore::open(dir.path().join("k.db")).await.unwrap())
        } else {
            Arc::new(MemoryStore::new())
        };
        let clock = ManualClock::new(at(1_767_225_600));
        let issuer = builder(store.clone()).clock(clock.clone()).build().unwrap();
        let old = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
        let next = issuer
            .rotate_signing_key_after(Duration::from_secs(300))
            .await
            .unwrap();
        assert_ne!(next, old.kid());

        // A verifier that fetches the JWKS now, and never again.
        let jwks = issuer.jwks().await.unwrap();
        let kids: Vec<_> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [next.clone(), old.kid().to_owned()]);
        let auth = JwtAuthenticator::builder()
            .clock(clock.clone())
            .issuer(TrustedIssuer::new(ISS).audience(AUD).jwks(jwks.to_string()))
            .build()
            .unwrap();

        // Until the switch, the old key signs.
        clock.advance(Duration::from_secs(299));
        let before = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
        assert_eq!(before.kid(), old.kid());
        assert_eq!(issuer.active_kid().await.unwrap(), old.kid());
        // Then the new one, which the verifier already has.
        clock.advance(Duration::from_secs(1));
        let after = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
        assert_eq!(after.kid(), next);
        assert_eq!(call(&auth, before.as_str()).await.0, StatusCode::OK);
        assert_eq!(call(&auth, after.as_str()).await.0, StatusCode::OK);

        // The old key stays published until its last token expired, from the switch on.
        clock.advance(Duration::from_secs(900 + 60));
        assert_eq!(
            issuer.jwks().await.unwrap()["keys"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            issuer.jwks().await.unwrap()["keys"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // A restart in the middle of a scheduled rotation keeps the schedule.
        let pending = issuer
            .rotate_signing_key_after(Duration::from_secs(60))
            .await
            .unwrap();
        let restarted = builder(store.clone()).clock(clock.clone()).build().unwrap();
        assert_eq!(restarted.active_kid().await.unwrap(), next);
        clock.advance(Duration::from_secs(60));
        assert_eq!(restarted.active_kid().await.unwrap(), pending);
        // An immediate rotation overrides a scheduled one.
        let scheduled = restarted
            .rotate_signing_key_after(Duration::from_secs(600))
            .await
            .unwrap();
        let now_kid = restarted.rotate_signing_key().await.unwrap();
        assert_ne!(now_kid, scheduled);
        assert_eq!(restarted.active_kid().await.unwrap(), now_kid);
    }
}

#[tokio::test]
async fn a_withdrawn_key_stops_verifying_at_once() {
    for sqlite in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SigningKeyStore> = if sqlite {
            Arc::new(SqliteStore::open(dir.path().join("k.db")).await.unwrap())
        } else {
            Arc::new(MemoryStore::new())
        };
        let issuer = builder(store.clone()).build().unwrap();
        let auth = JwtAuthenticator::builder()
            .issuer(
                TrustedIssuer::new(ISS)
                    .audience(AUD)
                    .algorithms([Algorithm::EdDSA])
                    .key_source(issuer.clone()),
            )
            .build()
            .unwrap();
        let leaked = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
        assert_eq!(call(&auth, leaked.as_str()).await.0, StatusCode::OK);
        // The current key leaked: rotated away and gone at once.
        assert!(issuer.withdraw_signing_key(leaked.kid()).await.unwrap());
        assert_eq!(
            call(&auth, leaked.as_str()).await.0,
            StatusCode::UNAUTHORIZED
        );
        let jwks = issuer.jwks().await.unwrap();
        assert!(!jwks.to_string().contains(leaked.kid()));
        let fresh = issuer.issue(&TokenRequest::new("alice")).await.unwrap();
        assert_ne!(fresh.kid(), leaked.kid());
        assert_eq!(call(&auth, fresh.as_str()).await.0, StatusCode::OK);
        assert_eq!(store.signing_keys().await.unwrap().len(), 1);
        assert!(!issuer.withdraw_signing_key("no-such-kid").await.unwrap());
    }
}
