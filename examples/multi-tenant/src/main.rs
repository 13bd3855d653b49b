//! `cargo run -p multi-tenant`: serves the example on 127.0.0.1:3002.

use std::net::SocketAddr;

use multi_tenant::{app, authenticator, azure_token, keycloak_token};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keycloak_secret = b"demo secret of the keycloak realm!!";
    let azure_secret = b"demo secret of the azure ad tenant!!";
    let staff = keycloak_token(keycloak_secret, "carol", &["inventory-reader"]);
    let partner = azure_token(azure_secret, "0c1d-partner-app", &["inventory.read"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], 3002));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("multi-tenant on http://{addr}");
    println!("STAFF={staff}");
    println!("PARTNER={partner}");
    println!("curl -s -H \"Authorization: Bearer $STAFF\" http://{addr}/whoami");
    println!("curl -s -H \"Authorization: Bearer $PARTNER\" http://{addr}/whoami");
    println!("curl -i -H \"Authorization: Bearer $PARTNER\" http://{addr}/stock");
    axum::serve(listener, app(authenticator(keycloak_secret, azure_secret)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
