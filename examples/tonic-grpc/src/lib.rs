//! tower-auth with tonic, both ends of a machine-to-machine gRPC call.
//!
//! - **Server**: the standard gRPC health service behind `AuthenticateLayer` with a JWT scheme
//!   and [`GrpcRejection`], so clients see `UNAUTHENTICATED` / `PERMISSION_DENIED` statuses; a
//!   `RequireScopesLayer` asks for scope `health:read`.
//! - **Client**: a tonic `Channel` wrapped in `ClientCredentialsLayer`, which gets an access
//!   token from the authorization server's token endpoint (client credentials, RFC 6749 section
//!   4.4), caches it, refreshes it ahead of expiry, and sends it as `authorization` metadata.
//! - **Authorization server**: a stand-in token endpoint, so the example runs on its own. It
//!   issues HS256 JWT access tokens (`typ: at+jwt`, RFC 9068) to one client. With a real
//!   provider, point `ClientCredentials` at its token endpoint and the server at its JWKS.
//!
//! `cargo run -p tonic-grpc` starts all three on loopback, makes one call without and one with
//! the layer, prints the outcomes, then prints `curl` lines to make the same calls by hand
//! (curl speaks gRPC over HTTP/2; the status is in the `grpc-status` trailer) and serves until
//! Ctrl-C.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Form;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_auth_core::{AuthenticateLayer, GrpcRejection, RequireScopesLayer};
use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};
use tower_auth_oauth::client_credentials::{ClientCredentials, ClientCredentialsLayer};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The demo client's id.
pub const CLIENT_ID: &str = "inventory-sync";
/// The demo client's secret.
pub const CLIENT_SECRET: &str = "inventory-sync-secret";
const AUDIENCE: &str = "grpc://health";

/// Starts the stand-in token endpoint; returns its URL (also the issuer).
pub async fn start_authorization_server(signing_secret: &'static [u8]) -> Result<String, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let iss = issuer.clone();
    let app = axum::Router::new().route(
        "/token",
        post(
            move |headers: axum::http::HeaderMap, Form(form): Form<Vec<(String, String)>>| {
                let iss = iss.clone();
                async move { token(&iss, signing_secret, &headers, &form) }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(issuer)
}

fn token(
    iss: &str,
    secret: &[u8],
    headers: &axum::http::HeaderMap,
    form: &[(String, String)],
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    use base64::Engine as _;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let expected = format!("Basic {credentials}");
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())
        || field("grant_type") != Some("client_credentials")
    {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({
        "iss": iss, "aud": AUDIENCE, "sub": CLIENT_ID, "client_id": CLIENT_ID,
        "iat": now, "exp": now + 300, "jti": format!("{now}-{}", now % 97),
        "scope": field("scope").unwrap_or_default(),
    });
    let header = jsonwebtoken::Header {
        typ: Some("at+jwt".into()),
        ..Default::default()
    };
    match jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    ) {
        Ok(t) => (
            axum::http::StatusCode::OK,
            axum::Json(
                serde_json::json!({"access_token": t, "token_type": "Bearer", "expires_in": 300}),
            ),
        ),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"error": "server_error"})),
        ),
    }
}

/// Starts the gRPC health service behind the JWT layer; returns its address.
pub async fn start_grpc_server(issuer: &str, signing_secret: &[u8]) -> Result<SocketAddr, Error> {
    let jwt = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(issuer)
                .audience(AUDIENCE)
                .hmac_secret(signing_secret)
                .require_access_token_type(),
        )
        .build()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        Server::builder()
            .layer(AuthenticateLayer::required(jwt).with_rejection(GrpcRejection::new()))
            .layer(RequireScopesLayer::all_of(["health:read"]).with_rejection(GrpcRejection::new()))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    Ok(addr)
}

/// Calls `Health/Check` at `addr`, through the client-credentials layer when `tokens` is given.
pub async fn check(
    addr: SocketAddr,
    tokens: Option<ClientCredentials>,
) -> Result<i32, tonic::Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = HealthCheckRequest::default();
    let response = match tokens {
        Some(tokens) => {
            let svc = ServiceBuilder::new()
                .layer(ClientCredentialsLayer::new(tokens))
                .service(channel);
            HealthClient::new(svc).check(request).await?
        }
        None => HealthClient::new(channel).check(request).await?,
    };
    Ok(response.into_inner().status)
}

/// The client's token source for the authorization server at `issuer`.
pub fn tokens(issuer: &str, scopes: &[&str]) -> Result<ClientCredentials, Error> {
    Ok(ClientCredentials::builder(format!("{issuer}/token"))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .scopes(scopes.iter().copied())
        // Loopback only: the stand-in authorization server speaks plain http.
        .insecure_allow_http(true)
        .build()?)
}
