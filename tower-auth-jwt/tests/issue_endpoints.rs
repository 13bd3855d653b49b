//! Login, refresh and logout endpoints wired into an axum app, driven like a browser would:
//! cookies set, sent back, rotated, cleared; methods and cross-site requests refused.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{any, get};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt;
use tower_auth_core::AuthenticateLayer;
use tower_auth_jwt::issue::{
    ACCESS_COOKIE, JwtIssuer, MemoryStore, REFRESH_COOKIE, RefreshTokens, SessionEndpoints,
    TokenRequest,
};
use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};

fn app() -> Router {
    let store = MemoryStore::new();
    let issuer = JwtIssuer::builder(store.clone())
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
        .refresh_tokens(RefreshTokens::new(store))
        .build()
        .unwrap();
    let auth = JwtAuthenticator::builder()
        .cookie(ACCESS_COOKIE)
        .issuer(
            TrustedIssuer::new("https://app.example")
                .audience("app-api")
                .algorithms([Algorithm::EdDSA])
                .require_access_token_type()
                .key_source(issuer.clone()),
        )
        .build()
        .unwrap();
    let endpoints = SessionEndpoints::new(issuer);
    let (login, refresh, logout) = (endpoints.clone(), endpoints.clone(), endpoints);
    let api = Router::new()
        .route("/api/orders", get(|| async { "orders" }))
        .layer(AuthenticateLayer::required(auth));
    Router::new()
        .route(
            "/auth/login",
            any(move |parts: Parts| async move {
                // The app's own credential check.
                if parts
                    .headers
                    .get("x-password")
                    .is_none_or(|p| p != "correct")
                {
                    let mut res = Response::new(String::new());
                    *res.status_mut() = StatusCode::UNAUTHORIZED;
                    return res;
                }
                login
                    .login(&parts, &TokenRequest::new("alice").scopes(["orders:read"]))
                    .await
            }),
        )
        .route(
            "/auth/refresh",
            any(move |parts: Parts| async move { refresh.refresh(&parts).await }),
        )
        .route(
            "/auth/logout",
            any(move |parts: Parts| async move { logout.logout(&parts).await }),
        )
        .merge(api)
}

struct Reply {
    status: StatusCode,
    set_cookies: Vec<String>,
    headers: http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let set_cookies = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Reply {
        status,
        set_cookies,
        headers,
        body,
    }
}

/// The browser's cookie jar (paths ignored: the server ignores cookies it does not read).
#[derive(Default, Clone)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn absorb(&mut self, reply: &Reply) {
        for c in &reply.set_cookies {
            let (pair, _) = c.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if c.contains("Max-Age=0;") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

fn post(uri: &str, jar: &Jar) -> http::request::Builder {
    let b = Request::post(uri).header("host", "app.example");
    if jar.0.is_empty() {
        b
    } else {
        b.header("cookie", jar.header())
    }
}

async fn login(app: &Router) -> Jar {
    let mut jar = Jar::default();
    let reply = send(
        app,
        post("/auth/login", &jar)
            .header("x-password", "correct")
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    jar.absorb(&reply);
    jar
}

async fn orders(app: &Router, jar: &Jar) -> StatusCode {
    let req = Request::get("/api/orders")
        .header("cookie", jar.header())
        .body(Body::empty())
        .unwrap();
    send(app, req).await.status
}

#[tokio::test]
async fn login_refresh_and_reuse_like_a_browser() {
    let app = app();
    // Wrong password: the app's own 401, no cookie.
    let reply = send(
        &app,
        post("/auth/login", &Jar::default())
            .header("x-password", "wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.set_cookies.is_empty());

    let mut jar = Jar::default();
    let reply = send(
        &app,
        post("/auth/login", &jar)
            .header("x-password", "correct")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, r#"{"token_type":"Bearer","expires_in":900}"#);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.set_cookies.len(), 2);
    assert!(reply.set_cookies[0].starts_with("__Host-access_token="));
    assert!(
        reply.set_cookies[0].ends_with("; Max-Age=900; Path=/; HttpOnly; Secure; SameSite=Strict")
    );
    assert!(reply.set_cookies[1].starts_with("__Secure-refresh_token="));
    assert!(
        reply.set_cookies[1]
            .ends_with("; Max-Age=604800; Path=/auth; HttpOnly; Secure; SameSite=Strict")
    );
    jar.absorb(&reply);
    assert_eq!(orders(&app, &jar).await, StatusCode::OK);
    assert_eq!(
        orders(&app, &Jar::default()).await,
        StatusCode::UNAUTHORIZED
    );

    // Refresh: both cookies replaced.
    let before = jar.clone();
    let reply = send(
        &app,
        post("/auth/refresh", &jar).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    jar.absorb(&reply);
    assert_ne!(jar.get(REFRESH_COOKIE), before.get(REFRESH_COOKIE));
    assert_ne!(jar.get(ACCESS_COOKIE), before.get(ACCESS_COOKIE));
    assert_eq!(orders(&app, &jar).await, StatusCode::OK);

    // The old refresh cookie again (a copy a thief kept): 401, cookies cleared...
    let reply = send(
        &app,
        post("/auth/refresh", &before).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(reply.set_cookies.len(), 2);
    assert!(reply.set_cookies.iter().all(|c| c.contains("Max-Age=0;")));
    // ...and the session is over for the newest cookie too.
    let reply = send(
        &app,
        post("/auth/refresh", &jar).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_revokes_and_clears() {
    let app = app();
    let jar = login(&app).await;
    let reply = send(
        &app,
        post("/auth/logout", &jar).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.set_cookies,
        [
            "__Host-access_token=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict",
            "__Secure-refresh_token=; Max-Age=0; Path=/auth; HttpOnly; Secure; SameSite=Strict",
        ]
    );
    let reply = send(
        &app,
        post("/auth/refresh", &jar).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Logging out without a cookie still clears.
    let reply = send(
        &app,
        post("/auth/logout", &Jar::default())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.set_cookies.len(), 2);
}

#[tokio::test]
async fn wrong_methods_and_cross_site_requests_are_refused_before_the_token_is_used() {
    let app = app();
    let jar = login(&app).await;
    for path in ["/auth/login", "/auth/refresh", "/auth/logout"] {
        let req = Request::get(path)
            .header("cookie", jar.header())
            .header("x-password", "correct")
            .body(Body::empty())
            .unwrap();
        let reply = send(&app, req).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(reply.headers["allow"], "POST");
    }
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
        ("origin", "null"),
    ] {
        for path in ["/auth/refresh", "/auth/logout"] {
            let req = post(path, &jar)
                .header(name, value)
                .body(Body::empty())
                .unwrap();
            let reply = send(&app, req).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{path} {name}: {value}"
            );
            assert!(reply.set_cookies.is_empty());
        }
    }
    // Nothing was consumed or revoked: a same-origin refresh works.
    let req = post("/auth/refresh", &jar)
        .header("origin", "https://app.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn missing_and_duplicate_refresh_cookies() {
    let app = app();
    let reply = send(
        &app,
        post("/auth/refresh", &Jar::default())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.set_cookies.is_empty());
    let jar = login(&app).await;
    let token = jar.get(REFRESH_COOKIE).unwrap();
    let req = Request::post("/auth/refresh")
        .header(
            "cookie",
            format!("{REFRESH_COOKIE}={token}; {REFRESH_COOKIE}=other"),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::BAD_REQUEST);
}

#[test]
fn the_refresh_cookie_path_is_checked() {
    let store = MemoryStore::new();
    let issuer = JwtIssuer::builder(store.clone())
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
        .refresh_tokens(RefreshTokens::new(store))
        .build()
        .unwrap();
    let e = SessionEndpoints::new(issuer.clone());
    assert!(e.clone().refresh_cookie_path("/session").is_ok());
    for bad in ["session", "/a; Domain=evil.example", ""] {
        assert_eq!(
            e.clone().refresh_cookie_path(bad).unwrap_err().setting(),
            "refresh_cookie_path"
        );
    }
    let _ = Duration::ZERO;
}

/// A refresh-token store that is down.
struct Down;

impl tower_auth_jwt::issue::RefreshTokenStore for Down {
    fn create_family<'a>(
        &'a self,
        _: &'a tower_auth_jwt::issue::RefreshFamily,
        _: &'a tower_auth_jwt::issue::RefreshTokenRecord,
    ) -> tower_auth_jwt::issue::StoreFuture<'a, ()> {
        Box::pin(async { Err(down()) })
    }
    fn find<'a>(
        &'a self,
        _: &'a tower_auth_jwt::issue::RefreshTokenHash,
    ) -> tower_auth_jwt::issue::StoreFuture<
        'a,
        Option<(
            tower_auth_jwt::issue::RefreshTokenRecord,
            tower_auth_jwt::issue::RefreshFamily,
        )>,
    > {
        Box::pin(async { Err(down()) })
    }
    fn consume<'a>(
        &'a self,
        _: &'a tower_auth_jwt::issue::RefreshTokenHash,
        _: std::time::SystemTime,
        _: &'a tower_auth_jwt::issue::RefreshTokenRecord,
    ) -> tower_auth_jwt::issue::StoreFuture<'a, bool> {
        Box::pin(async { Err(down()) })
    }
    fn revoke_family<'a>(
        &'a self,
        _: &'a str,
        _: std::time::SystemTime,
    ) -> tower_auth_jwt::issue::StoreFuture<'a, bool> {
        Box::pin(async { Err(down()) })
    }
    fn delete_families_ended_before(
        &self,
        _: std::time::SystemTime,
    ) -> tower_auth_jwt::issue::StoreFuture<'_, u64> {
        Box::pin(async { Err(down()) })
    }
    fn revoke_subject<'a>(
        &'a self,
        _: &'a str,
        _: std::time::SystemTime,
    ) -> tower_auth_jwt::issue::StoreFuture<'a, u64> {
        Box::pin(async { Err(down()) })
    }
}

fn down() -> tower_auth_jwt::issue::StoreError {
    tower_auth_jwt::issue::StoreError::new(
        tower_auth_jwt::issue::StoreErrorKind::Unavailable,
        "down",
    )
}

#[tokio::test]
async fn a_store_outage_is_a_503_and_keeps_the_cookies() {
    let issuer = JwtIssuer::builder(MemoryStore::new())
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
        .refresh_tokens(RefreshTokens::new(Down))
        .build()
        .unwrap();
    let e = SessionEndpoints::new(issuer);
    let (parts, ()) = Request::post("/auth/login").body(()).unwrap().into_parts();
    let res = e.login(&parts, &TokenRequest::new("alice")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    assert!(res.headers().get("set-cookie").is_none());
    let (parts, ()) = Request::post("/auth/refresh")
        .header("cookie", format!("{REFRESH_COOKIE}=abc"))
        .body(())
        .unwrap()
        .into_parts();
    let res = e.refresh(&parts).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The session may be fine: its cookies are not cleared on an outage.
    assert!(res.headers().get("set-cookie").is_none());
}
