//! `cargo run -p tonic-grpc`: see the library docs.

use tonic_grpc::{
    CLIENT_ID, CLIENT_SECRET, check, start_authorization_server, start_grpc_server, tokens,
};

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

    // The same calls by hand: curl speaks gRPC over HTTP/2 without TLS, and an empty
    // HealthCheckRequest is five zero bytes (no compression, length 0).
    let call = format!(
        "printf '\\0\\0\\0\\0\\0' | curl -s -o /dev/null -D - --http2-prior-knowledge \
         -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
         http://{addr}/grpc.health.v1.Health/Check"
    );
    println!();
    println!("try it by hand (the status is in grpc-status, a trailer, or a header when refused):");
    println!(
        "  TOKEN=$(curl -s -u {CLIENT_ID}:{CLIENT_SECRET} -d grant_type=client_credentials -d scope=health:read {issuer}/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')"
    );
    println!("  {call} -H \"authorization: Bearer $TOKEN\"   # grpc-status: 0 (OK: SERVING)");
    println!("  {call}   # grpc-status: 16 (UNAUTHENTICATED)");
    println!(
        "  {call} -H \"authorization: Bearer not.a.token\"   # grpc-status: 16 (UNAUTHENTICATED)"
    );
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
