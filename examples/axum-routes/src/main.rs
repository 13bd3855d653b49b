//! `cargo run -p axum-routes`: serves the example on 127.0.0.1:3001 with an in-memory key store.

use std::net::SocketAddr;

use axum_routes::{app, jwt, mint};
use tower_auth_apikey::{ApiKeyAuthenticator, MemoryStore, NewKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a real deployment: the identity provider's key (or its JWKS URL) and a persistent store.
    let secret = b"demo secret of the example identity provider!";
    let keys = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()?;
    let key = keys
        .admin()
        .create(NewKey::new("reporting-cron").scopes(["reports:read", "orders:read"]))
        .await?;
    let key = key.key.expose_secret().to_owned();
    let user = mint(secret, "alice", "orders:read", &["user"]);
    let admin = mint(secret, "bob", "", &["admin"]);

    let addr = SocketAddr::from(([127, 0, 0, 1], 3001));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("axum-routes on http://{addr}");
    println!("KEY={key}");
    println!("USER_TOKEN={user}");
    println!("ADMIN_TOKEN={admin}");
    println!("curl -i -H \"X-API-Key: $KEY\" http://{addr}/reports            # 200 (API key)");
    println!(
        "curl -i -H \"Authorization: Bearer $USER_TOKEN\" http://{addr}/reports  # 401 (JWTs not accepted here)"
    );
    println!(
        "curl -i -H \"Authorization: Bearer $USER_TOKEN\" http://{addr}/profile  # 200 (role user)"
    );
    println!("curl -i -H \"Authorization: Bearer $USER_TOKEN\" http://{addr}/orders   # 200 (JWT)");
    println!("curl -i -H \"X-API-Key: $KEY\" http://{addr}/orders             # 200 (API key)");
    println!(
        "curl -i -H \"Authorization: Bearer $USER_TOKEN\" http://{addr}/admin    # 403 (not admin)"
    );
    println!("curl -i -H \"Authorization: Bearer $ADMIN_TOKEN\" http://{addr}/admin   # 200");
    axum::serve(listener, app(keys, jwt(secret)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
