//! `cargo run -p multi-tenant`: serves the example on 127.0.0.1:3002.

use std::net::SocketAddr;

use multi_tenant::{AZURE_TENANT, app, authenticator, azure_token, keycloak_token};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keycloak_secret = b"demo secret of the keycloak realm!!";
    let azure_secret = b"demo secret of the azure ad tenant!!";
    let staff = keycloak_token(keycloak_secret, "carol", &["inventory-reader"]);
    let partner = azure_token(azure_secret, "0c1d-partner-app", &["inventory.read"]);
    let visitor = keycloak_token(keycloak_secret, "dave", &["visitor"]);
    // A Keycloak-shaped token signed with the Azure tenant's key: refused.
    let forged = keycloak_token(azure_secret, "mallory", &["inventory-reader"]);
    let addr = SocketAddr::from(([127, 0, 0, 1], 3002));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("multi-tenant on http://{addr}");
    println!("STAFF={staff}");
    println!("PARTNER={partner}");
    println!("VISITOR={visitor}");
    println!("FORGED={forged}");
    println!(
        "curl -i -H \"Authorization: Bearer $STAFF\" http://{addr}/whoami     # 200: carol, Keycloak, roles [inventory-reader]"
    );
    println!(
        "curl -i -H \"Authorization: Bearer $PARTNER\" http://{addr}/whoami   # 200: the partner app, Azure AD, tenant {AZURE_TENANT}"
    );
    println!(
        "curl -i -H \"Authorization: Bearer $PARTNER\" http://{addr}/stock    # 200: role inventory.read"
    );
    println!(
        "curl -i -H \"Authorization: Bearer $STAFF\" http://{addr}/stock      # 200: role inventory-reader"
    );
    println!(
        "curl -i -H \"Authorization: Bearer $VISITOR\" http://{addr}/stock    # 403: no inventory role"
    );
    println!(
        "curl -i -H \"Authorization: Bearer $FORGED\" http://{addr}/whoami    # 401 invalid_token: signed with the other issuer's key"
    );
    println!("curl -i http://{addr}/whoami                                     # 401: no token");
    axum::serve(listener, app(authenticator(keycloak_secret, azure_secret)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
