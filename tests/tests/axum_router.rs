//! The core layers in front of a real axum `Router` served over loopback: per-route
//! authentication with `route_layer`, scope and role requirements, the `Principal` extractors,
//! and the response contract as a client sees it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use tokio::net::TcpListener;
use tower_auth_core::credential::{Location, bearer_token};
use tower_auth_core::{
    AuthError, AuthenticateLayer, Authenticator, Principal, RequireRolesLayer, RequireScopesLayer,
    Scheme, from_fn,
};

fn auth() -> impl Authenticator<Future: Send> + Clone + Send + Sync + 'static {
    from_fn(Location::Authorization, |parts| {
        let Some(token) = bearer_token(&parts.headers)? else {
            return Ok(None);
        };
        let b = |sub: &str| Principal::builder(sub, Scheme::Custom("test"));
        match token {
            "reader" => Ok(Some(b("reader").scopes(["read:items"]).build())),
            "writer" => Ok(Some(
                b("writer")
                    .scopes(["read:items", "write:items"])
                    .roles(["admin"])
                    .build(),
            )),
            _ => Err(AuthError::invalid_token("unknown token")),
        }
    })
}

async fn me(p: Principal) -> String {
    p.subject().to_owned()
}

async fn hello(p: Option<Principal>) -> String {
    p.map_or_else(|| "anonymous".to_owned(), |p| p.subject().to_owned())
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn app() -> Router {
    let items = Router::new()
        .route(
            "/items",
            get(|| async { "items" }).post(|| async { "created" }),
        )
        .route_layer(RequireScopesLayer::all_of(["read:items"]));
    let admin = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(RequireRolesLayer::any_of(["admin"]));
    Router::new()
        .route("/me", get(me))
        .merge(items)
        .merge(admin)
        .route_layer(AuthenticateLayer::required(auth()))
        .route(
            "/hello",
            get(hello).route_layer(AuthenticateLayer::optional(auth())),
        )
        .route(
            "/optional-me",
            get(me).route_layer(AuthenticateLayer::optional(auth())),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/unwired", get(me))
}

/// A minimal HTTP/1.1 client over loopback, so the test sees exactly what a client would.
async fn get_with(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn per_route_authentication_and_authorization_over_loopback() {
    let addr = serve(app()).await;

    // No credential needed.
    assert_eq!(get_with(addr, "/healthz", None).await.0, StatusCode::OK);

    // Authenticated routes.
    let (status, challenge, _) = get_with(addr, "/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"api\""));
    let (status, challenge, body) = get_with(addr, "/me", Some("bogus")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("error=\"invalid_token\""));
    assert_eq!(body, "");
    let (status, _, body) = get_with(addr, "/me", Some("reader")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "reader"));

    // Scope requirement.
    assert_eq!(
        get_with(addr, "/items", Some("reader")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get_with(addr, "/items", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Role requirement: 403 without a scope challenge.
    let (status, challenge, _) = get_with(addr, "/admin", Some("reader")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(challenge, None);
    assert_eq!(
        get_with(addr, "/admin", Some("writer")).await.0,
        StatusCode::OK
    );

    // Optional authentication.
    let (status, _, body) = get_with(addr, "/hello", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
    let (_, _, body) = get_with(addr, "/hello", Some("writer")).await;
    assert_eq!(body, "writer");
    assert_eq!(
        get_with(addr, "/hello", Some("bogus")).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A handler that needs a Principal behind an optional layer: anonymous is 401, not 500.
    let (status, challenge, _) = get_with(addr, "/optional-me", None).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer realm=\"api\""))
    );
    let (status, _, body) = get_with(addr, "/optional-me", Some("reader")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "reader"));

    // Extracting a Principal on a route without the layer is a wiring bug: 500 naming it.
    let (status, _, body) = get_with(addr, "/unwired", Some("reader")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("AuthenticateLayer"), "{body}");
}

#[tokio::test]
async fn insufficient_scope_names_the_scope() {
    let app = Router::new()
        .route("/write", get(|| async { "w" }))
        .route_layer(RequireScopesLayer::all_of(["write:items"]))
        .route_layer(AuthenticateLayer::required(auth()));
    let addr = serve(app).await;
    let (status, challenge, _) = get_with(addr, "/write", Some("reader")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"write:items\""), "{challenge}");
    assert_eq!(
        get_with(addr, "/write", Some("writer")).await.0,
        StatusCode::OK
    );
}
