//! Remote key sources against real HTTP servers on 127.0.0.1 that count their requests: cold
//! start, single flight, unknown-kid budget, rotation, outages, redirects, timeouts,
//! Cache-Control, key hygiene, discovery, and withdrawn keys leaving the verified-token cache.
//!
//! Durations are configured short; no test asserts how long anything took.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{AUD, ISS, Outcome, b64, send};
use http::Request;
use serde_json::{Value, json};
use tower_auth_core::CacheConfig;
use tower_auth_core::client::HttpClient;
use tower_auth_jwt::remote::{Discovery, DiscoveryError, JwksUrl, discover};
use tower_auth_jwt::{Algorithm, JwtAuthenticator, KeySource, TrustedIssuer};

// ---------------------------------------------------------------------------------------------
// The upstream: JWKS and metadata, with switchable failure modes.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Status(u16),
    Hang,
    Redirect,
}

struct Upstream {
    jwks_hits: AtomicUsize,
    elsewhere_hits: AtomicUsize,
    metadata_hits: AtomicUsize,
    jwks: Mutex<Value>,
    mode: Mutex<Mode>,
    delay: Mutex<Duration>,
    cache_control: Mutex<Option<String>>,
    /// Served at `/.well-known/openid-configuration`.
    oidc: Mutex<Option<Value>>,
    /// Served at `/.well-known/oauth-authorization-server/tenant`.
    rfc8414: Mutex<Option<Value>>,
}

struct Server {
    base: String,
    up: Arc<Upstream>,
}

impl Server {
    async fn start() -> Self {
        let up = Arc::new(Upstream {
            jwks_hits: AtomicUsize::new(0),
            elsewhere_hits: AtomicUsize::new(0),
            metadata_hits: AtomicUsize::new(0),
            jwks: Mutex::new(json!({ "keys": [] })),
            mode: Mutex::new(Mode::Ok),
            delay: Mutex::new(Duration::ZERO),
            cache_control: Mutex::new(None),
            oidc: Mutex::new(None),
            rfc8414: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/jwks", get(jwks))
            .route("/elsewhere", get(elsewhere))
            .route("/.well-known/openid-configuration", get(oidc))
            .route("/tenant/.well-known/openid-configuration", get(oidc))
            .route(
                "/.well-known/oauth-authorization-server/tenant",
                get(rfc8414),
            )
            .with_state(Arc::clone(&up));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, up }
    }

    fn url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    fn hits(&self) -> usize {
        self.up.jwks_hits.load(Ordering::SeqCst)
    }

    fn publish(&self, keys: &[&TestKey]) {
        self.publish_raw(keys.iter().map(|k| k.jwk()).collect());
    }

    fn publish_raw(&self, keys: Vec<Value>) {
        *self.up.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    fn mode(&self, mode: Mode) {
        *self.up.mode.lock().unwrap() = mode;
    }

    fn cache_control(&self, value: &str) {
        *self.up.cache_control.lock().unwrap() = Some(value.to_owned());
    }
}

async fn jwks(State(up): State<Arc<Upstream>>) -> Response {
    up.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let delay = *up.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mode = *up.mode.lock().unwrap();
    match mode {
        Mode::Ok => {}
        Mode::Status(code) => return StatusCode::from_u16(code).unwrap().into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Mode::Redirect => {
            return (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response();
        }
    }
    let body = up.jwks.lock().unwrap().to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = up.cache_control.lock().unwrap().clone() {
        headers.insert(header::CACHE_CONTROL, cc.parse().unwrap());
    }
    (headers, body).into_response()
}

async fn elsewhere(State(up): State<Arc<Upstream>>) -> Response {
    up.elsewhere_hits.fetch_add(1, Ordering::SeqCst);
    axum::Json(up.jwks.lock().unwrap().clone()).into_response()
}

async fn oidc(State(up): State<Arc<Upstream>>) -> Response {
    up.metadata_hits.fetch_add(1, Ordering::SeqCst);
    match up.oidc.lock().unwrap().clone() {
        Some(doc) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn rfc8414(State(up): State<Arc<Upstream>>) -> Response {
    up.metadata_hits.fetch_add(1, Ordering::SeqCst);
    match up.rfc8414.lock().unwrap().clone() {
        Some(doc) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys, tokens, sources.

struct TestKey {
    kid: String,
    pair: Ed25519KeyPair,
}

impl TestKey {
    fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: Ed25519KeyPair::generate().unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
            "x": b64(self.pair.public_key().as_ref()),
        })
    }

    fn token(&self, sub: &str) -> String {
        self.token_with_kid(sub, &self.kid)
    }

    fn token_with_kid(&self, sub: &str, kid: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": now, "exp": now + 300});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let key = jsonwebtoken::EncodingKey::from_ed_der(self.pair.to_pkcs8().unwrap().as_ref());
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

fn client(timeout: Duration) -> HttpClient {
    HttpClient::builder()
        .insecure_allow_http(true)
        .timeout(timeout)
        .build()
        .unwrap()
}

fn auth(source: impl KeySource, cache: bool) -> JwtAuthenticator {
    let mut b = JwtAuthenticator::builder().issuer(
        TrustedIssuer::new(ISS)
            .audience(AUD)
            .algorithms([Algorithm::EdDSA])
            .key_source(source),
    );
    if cache {
        b = b.verified_token_cache(CacheConfig::default());
    }
    b.build().unwrap()
}

async fn call(auth: &JwtAuthenticator, token: &str) -> Outcome {
    let req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    send(auth, req).await
}

async fn status(auth: &JwtAuthenticator, token: &str) -> u16 {
    call(auth, token).await.status.as_u16()
}

/// Polls `cond` every 20 ms, up to 10 s (a bound for slow machines, not an expectation).
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn building_sends_nothing_and_warm_up_loads() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(srv.hits(), 0, "no I/O before first use");
    assert!(keys.keys().is_none());
    keys.warm_up().await.unwrap();
    assert_eq!(srv.hits(), 1);
    assert_eq!(status(&auth, &a.token("alice")).await, 200);
    keys.warm_up().await.unwrap();
    assert_eq!(srv.hits(), 1, "already loaded");
}

#[test]
fn builders_check_urls_and_settings() {
    let err = |r: Result<JwksUrl, tower_auth_jwt::ConfigError>| r.unwrap_err().to_string();
    assert_eq!(
        err(JwksUrl::builder("http://idp.example.com/jwks").build()),
        "invalid `jwks_url` = http://idp.example.com/jwks: plain http needs insecure_allow_http"
    );
    assert!(
        err(JwksUrl::builder("/jwks").build()).contains("must be an absolute https URL"),
        "relative URL"
    );
    // A strict client given together with the insecure switch is a contradiction.
    let strict = HttpClient::builder().build().unwrap();
    assert!(
        err(JwksUrl::builder("http://127.0.0.1/jwks")
            .http_client(strict)
            .insecure_allow_http(true)
            .build())
        .contains("insecure_allow_http")
    );
    assert!(
        err(JwksUrl::builder("https://idp.example.com/jwks")
            .refresh_bounds(Duration::from_secs(10), Duration::from_secs(5))
            .build())
        .contains("the minimum must not exceed the maximum")
    );
    assert!(
        err(JwksUrl::builder("https://idp.example.com/jwks")
            .unknown_kid_cooldown(Duration::ZERO)
            .build())
        .contains("unknown_kid_cooldown")
    );
    assert!(
        JwksUrl::builder("https://idp.example.com/jwks")
            .build()
            .is_ok()
    );
    let e = Discovery::builder("https://idp.example.com/?q=1")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "issuer");
    assert!(
        Discovery::builder("http://idp.example.com")
            .build()
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_with_1000_concurrent_requests_fetches_once() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    // A slow endpoint, so the requests pile up behind the first fetch.
    *srv.up.delay.lock().unwrap() = Duration::from_millis(300);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = auth(keys, false);
    let token = a.token("alice");
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let auth = auth.clone();
            let token = token.clone();
            tokio::spawn(async move { status(&auth, &token).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(srv.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_fetches_at_most_once_per_cooldown() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    let stranger = TestKey::new("stranger");
    srv.publish(&[&a]);
    let cooldown = Duration::from_secs(3);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .unknown_kid_cooldown(cooldown)
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    assert_eq!(srv.hits(), 1);

    let flood = |n: usize, tag: &'static str| {
        let auth = auth.clone();
        let tokens: Vec<_> = (0..n)
            .map(|i| stranger.token_with_kid("mallory", &format!("{tag}-{i}")))
            .collect();
        async move {
            let tasks: Vec<_> = tokens
                .into_iter()
                .map(|t| {
                    let auth = auth.clone();
                    tokio::spawn(async move { status(&auth, &t).await })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), 401);
            }
        }
    };
    // Within the cooldown of the initial load: no refetch at all.
    flood(300, "early").await;
    assert_eq!(srv.hits(), 1);

    // After the cooldown: one refetch for the whole flood, then none until the next cooldown.
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    flood(300, "first").await;
    assert_eq!(srv.hits(), 2);
    flood(300, "second").await;
    assert_eq!(srv.hits(), 2);

    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    flood(300, "third").await;
    assert_eq!(srv.hits(), 3);
    // The known key kept working throughout.
    assert_eq!(status(&auth, &a.token("alice")).await, 200);
}

#[tokio::test]
async fn rotation_new_key_is_accepted_on_its_first_token_after_the_cooldown() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    let b = TestKey::new("b");
    srv.publish(&[&a]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .unknown_kid_cooldown(Duration::from_millis(200))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The issuer publishes b and signs with it at once.
    srv.publish(&[&a, &b]);
    assert_eq!(status(&auth, &b.token("alice")).await, 200);
    assert_eq!(srv.hits(), 2);
    assert_eq!(status(&auth, &a.token("alice")).await, 200);
    assert_eq!(srv.hits(), 2);
}

#[tokio::test]
async fn rotation_right_after_a_fetch_is_accepted_once_the_cooldown_passed() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    let b = TestKey::new("b");
    srv.publish(&[&a]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .unknown_kid_cooldown(Duration::from_secs(2))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    srv.publish(&[&a, &b]);
    // Keys fetched less than a cooldown ago: no refetch yet.
    assert_eq!(status(&auth, &b.token("alice")).await, 401);
    assert_eq!(srv.hits(), 1);
    let token = b.token("alice");
    eventually("b accepted", async || status(&auth, &token).await == 200).await;
    assert_eq!(srv.hits(), 2, "one refetch, not one per attempt");
}

#[tokio::test]
async fn endpoint_down_after_load_serves_stale_keys_up_to_the_bound_then_503() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .refresh_bounds(Duration::from_millis(200), Duration::from_millis(200))
        .max_staleness(Duration::from_secs(3))
        .retry_after_failure(Duration::from_millis(50))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    srv.mode(Mode::Status(500));
    let token = a.token("alice");
    // Past the refresh point the request starts a background refresh, which fails; the
    // request itself is served the keys it has.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(status(&auth, &token).await, 200);
    eventually("a failed refresh", async || srv.hits() >= 2).await;
    assert_eq!(status(&auth, &token).await, 200, "stale keys still served");
    // Then the bound: 503, the inner service is not called.
    eventually("503 past max staleness", async || {
        status(&auth, &token).await == 503
    })
    .await;
    let out = call(&auth, &token).await;
    assert_eq!(out.status.as_u16(), 503);
    assert!(out.principal.is_none());
    // The endpoint comes back: so do the keys.
    srv.mode(Mode::Ok);
    eventually("recovered", async || status(&auth, &token).await == 200).await;
}

#[tokio::test]
async fn endpoint_down_at_cold_start_is_503() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    srv.mode(Mode::Status(503));
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .retry_after_failure(Duration::from_secs(60))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    let token = a.token("alice");
    assert_eq!(status(&auth, &token).await, 503);
    assert_eq!(srv.hits(), 1);
    // While backing off: 503 at once, without sending more requests upstream.
    for _ in 0..20 {
        assert_eq!(status(&auth, &token).await, 503);
    }
    assert_eq!(srv.hits(), 1);
    assert!(keys.warm_up().await.is_err());

    // Nothing listening at all: 503 too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks", l.local_addr().unwrap())
    };
    let keys = JwksUrl::builder(closed)
        .insecure_allow_http(true)
        .build()
        .unwrap();
    assert_eq!(status(&auth_for(keys), &token).await, 503);
}

fn auth_for(source: impl KeySource) -> JwtAuthenticator {
    auth(source, false)
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    srv.mode(Mode::Redirect);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    assert_eq!(status(&auth, &a.token("alice")).await, 503);
    assert_eq!(srv.hits(), 1);
    assert_eq!(srv.up.elsewhere_hits.load(Ordering::SeqCst), 0);
    let err = keys.warm_up().await.err();
    // Still backing off after the failure: the error says why.
    assert!(err.is_some());
}

#[tokio::test]
async fn a_hanging_endpoint_hits_the_timeout() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    srv.mode(Mode::Hang);
    let keys = JwksUrl::builder(srv.url())
        .http_client(client(Duration::from_millis(200)))
        .build()
        .unwrap();
    let auth = auth(keys, false);
    let out = call(&auth, &a.token("alice")).await;
    assert_eq!(out.status.as_u16(), 503);
    assert_eq!(srv.hits(), 1);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    srv.cache_control("public, max-age=1");
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .refresh_bounds(Duration::from_millis(10), Duration::from_secs(3600))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    let token = a.token("alice");
    for _ in 0..10 {
        assert_eq!(status(&auth, &token).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(srv.hits(), 1, "fresh for max-age");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status(&auth, &token).await, 200);
    eventually("a refresh after max-age", async || srv.hits() >= 2).await;
}

#[tokio::test]
async fn cache_control_is_clamped_up_to_the_minimum() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    srv.cache_control("max-age=0");
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .refresh_bounds(Duration::from_secs(30), Duration::from_secs(3600))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    let token = a.token("alice");
    for _ in 0..20 {
        assert_eq!(status(&auth, &token).await, 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(srv.hits(), 1, "max-age=0 must not mean a fetch per request");
}

#[tokio::test]
async fn cache_control_is_clamped_down_to_the_maximum() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    srv.cache_control("max-age=86400");
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .refresh_bounds(Duration::from_millis(10), Duration::from_millis(300))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&auth, &a.token("alice")).await, 200);
    eventually("a refresh at the maximum", async || srv.hits() >= 2).await;
}

#[tokio::test]
async fn without_cache_control_the_default_interval_applies() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .refresh_bounds(Duration::from_millis(10), Duration::from_secs(3600))
        .default_refresh(Duration::from_millis(300))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&auth, &a.token("alice")).await, 200);
    eventually("a refresh at the default interval", async || {
        srv.hits() >= 2
    })
    .await;
}

#[tokio::test]
async fn unusable_published_keys_are_skipped_without_breaking_the_rest() {
    let srv = Server::start().await;
    let good = TestKey::new("good");
    let enc = TestKey::new("enc");
    let wrong_alg = TestKey::new("wrong-alg");
    let dup1 = TestKey::new("dup");
    let dup2 = TestKey::new("dup");
    let with = |k: &TestKey, member: &str, v: Value| {
        let mut j = k.jwk();
        j[member] = v;
        j
    };
    srv.publish_raw(vec![
        with(&enc, "use", json!("enc")),
        json!({"kty": "XYZ", "kid": "odd", "x": "AAAA"}),
        with(&wrong_alg, "alg", json!("ES256")),
        json!({"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "AAAA"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "off-curve",
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5aA"}),
        json!({"kty": "oct", "kid": "secret", "k": b64([7u8; 32])}),
        good.jwk(),
        dup1.jwk(),
        dup2.jwk(),
    ]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    keys.warm_up().await.unwrap();
    let loaded: Vec<_> = keys
        .keys()
        .unwrap()
        .iter()
        .map(|k| k.kid().unwrap().to_owned())
        .collect();
    assert_eq!(loaded, ["good"]);
    assert_eq!(status(&auth, &good.token("alice")).await, 200);
    for k in [&enc, &wrong_alg, &dup1, &dup2] {
        assert_eq!(status(&auth, &k.token("mallory")).await, 401, "{}", k.kid);
    }

    // A set without a single usable key is a failed fetch, not an empty key set.
    let srv = Server::start().await;
    srv.publish_raw(vec![with(&enc, "use", json!("enc"))]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .build()
        .unwrap();
    assert!(keys.warm_up().await.is_err());
    assert!(keys.keys().is_none());
}

#[tokio::test]
async fn a_key_removed_upstream_stops_verifying_and_leaves_the_token_cache() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    let b = TestKey::new("b");
    srv.publish(&[&a, &b]);
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .refresh_bounds(Duration::from_secs(1), Duration::from_secs(1))
        .build()
        .unwrap();
    let auth = auth(keys.clone(), true);
    let (ta, tb) = (a.token("alice"), b.token("bob"));
    assert_eq!(status(&auth, &ta).await, 200);
    assert_eq!(status(&auth, &tb).await, 200);
    assert_eq!(auth.cached_tokens(), 2);
    let b_before = Arc::clone(keys.keys().unwrap().get("b").unwrap());

    // Upstream withdraws a. Served from the cache, both still pass until the next refresh.
    srv.publish(&[&b]);
    assert_eq!(status(&auth, &ta).await, 200);
    assert_eq!(status(&auth, &tb).await, 200);
    // The refresh task fetches at 75% of the interval, whether or not tokens come in.
    eventually("refresh without a", async || {
        keys.keys().unwrap().get("a").is_none()
    })
    .await;
    // a's token was cached, but its key is gone: verified again, and rejected.
    call(&auth, &ta)
        .await
        .assert_invalid_token("no key for this token");
    assert_eq!(auth.cached_tokens(), 1);
    // b did not change: the same key object, so its cached token stays cached.
    assert!(Arc::ptr_eq(
        &b_before,
        keys.keys().unwrap().get("b").unwrap()
    ));
    assert_eq!(status(&auth, &tb).await, 200);
}

// ---------------------------------------------------------------------------------------------
// Discovery.

#[tokio::test]
async fn discovery_finds_the_keys_through_openid_configuration() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    let issuer = srv.base.clone();
    *srv.up.oidc.lock().unwrap() = Some(json!({
        "issuer": issuer, "jwks_uri": srv.url(), "token_endpoint": format!("{issuer}/token"),
    }));
    let meta = discover(&client(Duration::from_secs(5)), &issuer)
        .await
        .unwrap();
    assert_eq!(meta.jwks_uri(), Some(srv.url().as_str()));
    assert_eq!(
        meta.token_endpoint(),
        Some(format!("{issuer}/token").as_str())
    );

    let keys = Discovery::builder(&issuer)
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::EdDSA])
                .key_source(keys.clone()),
        )
        .build()
        .unwrap();
    assert_eq!(status(&auth, &a.token("alice")).await, 200);
    assert_eq!(keys.metadata().unwrap().issuer(), issuer);
    assert_eq!(srv.hits(), 1);
}

#[tokio::test]
async fn discovery_falls_back_to_rfc8414() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    let issuer = format!("{}/tenant", srv.base);
    *srv.up.rfc8414.lock().unwrap() = Some(json!({"issuer": issuer, "jwks_uri": srv.url()}));
    let keys = Discovery::builder(&issuer)
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    assert_eq!(status(&auth, &a.token("alice")).await, 200);
    // The OpenID location answered 404 first.
    assert_eq!(srv.up.metadata_hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn discovery_with_a_mismatched_issuer_is_rejected() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    let issuer = srv.base.clone();
    *srv.up.oidc.lock().unwrap() = Some(json!({
        "issuer": "https://attacker.example", "jwks_uri": srv.url(),
    }));
    let err = discover(&client(Duration::from_secs(5)), &issuer)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::IssuerMismatch { found, .. } if found == "https://attacker.example"),
        "{err}"
    );
    // A trailing slash is a different issuer too.
    *srv.up.oidc.lock().unwrap() =
        Some(json!({"issuer": format!("{issuer}/"), "jwks_uri": srv.url()}));
    let keys = Discovery::builder(&issuer)
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = auth(keys.clone(), false);
    assert_eq!(status(&auth, &a.token("alice")).await, 503);
    assert_eq!(
        srv.hits(),
        0,
        "the keys of a mismatched issuer are never fetched"
    );
    assert!(keys.metadata().is_none());
}

#[tokio::test]
async fn discovery_requires_an_allowed_jwks_uri() {
    let srv = Server::start().await;
    let a = TestKey::new("a");
    srv.publish(&[&a]);
    let issuer = srv.base.clone();
    // A jwks_uri the client's URL rules refuse is not fetched.
    *srv.up.oidc.lock().unwrap() = Some(json!({"issuer": issuer, "jwks_uri": "ftp://x/jwks"}));
    let keys = Discovery::builder(&issuer)
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let auth = auth(keys, false);
    assert_eq!(status(&auth, &a.token("alice")).await, 503);
    assert_eq!(srv.hits(), 0);
}

/// The refresh task lives on the runtime of the first fetch. When that runtime is gone, the
/// request path starts refreshes itself.
#[test]
fn requests_refresh_the_keys_when_the_refresh_task_is_gone() {
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let second = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (srv, a) = second.block_on(async {
        let srv = Server::start().await;
        let a = TestKey::new("a");
        srv.publish(&[&a]);
        (srv, a)
    });
    let keys = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .refresh_bounds(Duration::from_millis(200), Duration::from_millis(200))
        .build()
        .unwrap();
    first.block_on(keys.warm_up()).unwrap();
    drop(first);
    assert_eq!(srv.hits(), 1);
    let auth = auth(keys, false);
    second.block_on(async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(srv.hits(), 1, "no task refreshes on the dropped runtime");
        assert_eq!(status(&auth, &a.token("alice")).await, 200);
        eventually("a refresh started by a request", async || srv.hits() >= 2).await;
    });
}

#[cfg(feature = "metrics")]
mod metrics_counters {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    #[derive(Default)]
    struct Values(Mutex<HashMap<String, Arc<AtomicU64>>>);

    struct Cell(Arc<AtomicU64>);

    impl metrics::CounterFn for Cell {
        fn increment(&self, v: u64) {
            self.0.fetch_add(v, Ordering::SeqCst);
        }
        fn absolute(&self, v: u64) {
            self.0.store(v, Ordering::SeqCst);
        }
    }

    impl metrics::GaugeFn for Cell {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, v: f64) {
            self.0.store(v as u64, Ordering::SeqCst);
        }
    }

    impl Values {
        fn cell(&self, key: &Key) -> Arc<AtomicU64> {
            Arc::clone(
                self.0
                    .lock()
                    .unwrap()
                    .entry(key.name().to_owned())
                    .or_default(),
            )
        }
        fn get(&self, name: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |v| v.load(Ordering::SeqCst))
        }
    }

    impl Recorder for Values {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Cell(self.cell(key))))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Cell(self.cell(key))))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn jwks_metrics() {
        // The server runs on its own runtime; the source on a current-thread runtime inside
        // the local recorder's scope, so every event it records lands here.
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (srv, a) = server_rt.block_on(async {
            let srv = Server::start().await;
            let a = TestKey::new("a");
            srv.publish_raw(vec![a.jwk(), json!({"kty": "XYZ", "kid": "odd"})]);
            (srv, a)
        });
        let values = Values::default();
        metrics::with_local_recorder(&values, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let keys = JwksUrl::builder(srv.url())
                    .insecure_allow_http(true)
                    .unknown_kid_cooldown(Duration::from_millis(100))
                    .retry_after_failure(Duration::from_millis(10))
                    .build()
                    .unwrap();
                let auth = auth(keys.clone(), false);
                keys.warm_up().await.unwrap();
                tokio::time::sleep(Duration::from_millis(150)).await;
                assert_eq!(status(&auth, &a.token_with_kid("m", "nope")).await, 401);
                srv.mode(Mode::Status(500));
                tokio::time::sleep(Duration::from_millis(150)).await;
                assert_eq!(status(&auth, &a.token_with_kid("m", "nope2")).await, 401);
            });
        });
        assert_eq!(values.get("tower_auth_jwks_fetches_total"), 3);
        assert_eq!(values.get("tower_auth_jwks_fetch_failures_total"), 1);
        assert_eq!(values.get("tower_auth_jwks_unknown_kid_refetches_total"), 2);
        assert_eq!(values.get("tower_auth_jwks_keys_loaded"), 1);
        assert_eq!(values.get("tower_auth_jwks_keys_skipped_total"), 2);
        drop(server_rt);
    }
}

#[tokio::test]
async fn an_oversized_key_set_is_a_failed_fetch() {
    let srv = Server::start().await;
    let keys: Vec<_> = (0..40).map(|i| TestKey::new(&format!("k{i}"))).collect();
    srv.publish(&keys.iter().collect::<Vec<_>>());
    let small = HttpClient::builder()
        .insecure_allow_http(true)
        .max_response_bytes(1024)
        .build()
        .unwrap();
    let source = JwksUrl::builder(srv.url())
        .http_client(small)
        .build()
        .unwrap();
    let auth = auth(source.clone(), false);
    assert_eq!(status(&auth, &keys[0].token("alice")).await, 503);
    assert!(source.keys().is_none());
    // The same set within the default cap loads.
    let source = JwksUrl::builder(srv.url())
        .insecure_allow_http(true)
        .build()
        .unwrap();
    assert_eq!(
        status(&auth_for(source), &keys[0].token("alice")).await,
        200
    );
}
