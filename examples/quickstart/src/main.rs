//! The tower-auth quickstart server.
//!
//! `cargo run -p quickstart` serves on 127.0.0.1:3000:
//!
//! - `GET /healthz`: no credential needed;
//! - `GET /me`: the authenticated principal as JSON;
//! - `GET /items`: needs scope `read:items`;
//! - `GET /admin`: needs scope `admin` (the demo credential lacks it: 403).
//!
//! This first version authenticates a single demo bearer token printed at start; the API key,
//! JWT and OAuth schemes replace it as their crates land.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use tower_auth_core::credential::{Location, bearer_token};
use tower_auth_core::{
    AuthError, AuthenticateLayer, Principal, PrincipalKind, RequireScopesLayer, Scheme, from_fn,
};

const DEMO_TOKEN: &str = "quickstart-demo-token";

fn app() -> Router {
    let auth = from_fn(Location::Authorization, |parts| {
        match bearer_token(&parts.headers)? {
            None => Ok(None),
            Some(DEMO_TOKEN) => Ok(Some(
                Principal::builder("demo", Scheme::Custom("demo"))
                    .kind(PrincipalKind::User)
                    .scopes(["read:items", "write:items"])
                    .roles(["user"])
                    .build(),
            )),
            Some(_) => Err(AuthError::invalid_token("unknown token")),
        }
    });
    let items = Router::new()
        .route(
            "/items",
            get(|| async { Json(serde_json::json!(["apple", "pear"])) }),
        )
        .route_layer(RequireScopesLayer::all_of(["read:items"]));
    let admin = Router::new()
        .route("/admin", get(|| async { "welcome, admin" }))
        .route_layer(RequireScopesLayer::all_of(["admin"]));
    Router::new()
        .route("/me", get(|p: Principal| async move { Json(p) }))
        .merge(items)
        .merge(admin)
        .route_layer(AuthenticateLayer::required(auth))
        .route("/healthz", get(|| async { "ok" }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = ([127, 0, 0, 1], 3000).into();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("quickstart listening on http://{addr}");
    println!("try:");
    println!("  curl -i http://{addr}/healthz");
    println!("  curl -i -H 'Authorization: Bearer {DEMO_TOKEN}' http://{addr}/me");
    println!("  curl -i -H 'Authorization: Bearer {DEMO_TOKEN}' http://{addr}/items");
    println!("  curl -i -H 'Authorization: Bearer {DEMO_TOKEN}' http://{addr}/admin   # 403");
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
