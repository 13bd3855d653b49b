//! `cargo run -p tonic-grpc`: see the library docs.

use tonic_grpc::{check, start_authorization_server, start_grpc_server, tokens};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let secret: &'static [u8] = b"demo signing secret of the stand-in authorization server";
    let issuer = start_authorization_server(secret).await?;
    let addr = start_grpc_server(&issuer, secret).await?;
    println!("authorization server: {issuer}/token");
    println!("gRPC health service:  http://{addr} (JWT required, scope health:read)");

    match check(addr, None).await {
        Ok(status) => println!("without a token: serving status {status}"),
        Err(e) => println!("without a token: {:?} ({})", e.code(), e.message()),
    }
    match check(addr, Some(tokens(&issuer, &["health:read"])?)).await {
        Ok(status) => println!("with client credentials: serving status {status} (1 = SERVING)"),
        Err(e) => println!("with client credentials: {:?} ({})", e.code(), e.message()),
    }
    match check(addr, Some(tokens(&issuer, &[])?)).await {
        Ok(status) => println!("without the scope: serving status {status}"),
        Err(e) => println!("without the scope: {:?} ({})", e.code(), e.message()),
    }
    Ok(())
}
