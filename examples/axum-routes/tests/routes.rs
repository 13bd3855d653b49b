//! Every line the example prints, checked over loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;

use axum_routes::{app, jwt, mint};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_auth_apikey::{ApiKeyAuthenticator, MemoryStore, NewKey};

async fn status(addr: SocketAddr, path: &str, header: (&str, &str)) -> u16 {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header(header.0, header.1)
        .body(Empty::new())
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_scheme_per_route() {
    let secret = b"test secret of the example identity provider";
    let keys = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()
        .unwrap();
    let key = keys
        .admin()
        .create(NewKey::new("cron").scopes(["reports:read", "orders:read"]))
        .await
        .unwrap();
    let key = key.key.expose_secret().to_owned();
    let user = format!("Bearer {}", mint(secret, "alice", "orders:read", &["user"]));
    let admin = format!("Bearer {}", mint(secret, "bob", "", &["admin"]));
    let bearer_key = format!("Bearer {key}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(keys, jwt(secret));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let api_key = ("x-api-key", key.as_str());
    assert_eq!(status(addr, "/reports", api_key).await, 200);
    assert_eq!(
        status(addr, "/reports", ("authorization", &user)).await,
        401
    );
    assert_eq!(
        status(addr, "/profile", ("authorization", &user)).await,
        200
    );
    assert_eq!(status(addr, "/profile", api_key).await, 401);
    assert_eq!(status(addr, "/orders", ("authorization", &user)).await, 200);
    assert_eq!(status(addr, "/orders", api_key).await, 200);
    assert_eq!(
        status(addr, "/orders", ("authorization", &bearer_key)).await,
        200
    );
    assert_eq!(
        status(addr, "/orders", ("authorization", &admin)).await,
        403
    );
    assert_eq!(status(addr, "/admin", ("authorization", &user)).await, 403);
    assert_eq!(status(addr, "/admin", ("authorization", &admin)).await, 200);
    assert_eq!(status(addr, "/healthz", ("accept", "*/*")).await, 200);
}
