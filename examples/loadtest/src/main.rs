//! The server of the loopback load benchmark (`scripts/loadtest`).
//!
//! Serves, on `127.0.0.1:<port>` (first argument, default 3900), one route per scheme, each
//! answering a tiny body, so the difference to `/baseline` is what authentication costs:
//!
//! | route | scheme |
//! |---|---|
//! | `/baseline` | none |
//! | `/apikey` | API key (in-memory store; cached after the first request); with the `apikey_limited` key, the same route through a rate limit and credits that are never reached |
//! | `/jwt` | JWT RS256, verified on every request |
//! | `/jwt-cached` | JWT RS256 with the verified-token cache |
//! | `/introspection` | opaque token, RFC 7662 introspection against an in-process endpoint (cached) |
//! | `/signature-rs256` | none; the handler checks the same token's RS256 signature, and nothing else |
//!
//! `/signature-rs256` is the control for `/jwt`: both serve at a rate bound by the RSA check,
//! so the kernel's per-request cost (which grows as the request rate falls) is about the same on
//! both sides, and the difference of their CPU per request is what the layer adds beyond the
//! signature check (decoding, claims checks, the principal).
//!
//! It prints `ready`, then one `NAME=VALUE` line per credential (`apikey`, `apikey_limited`, `jwt`,
//! `opaque`) for the
//! load generator, and runs on a single-threaded runtime so it can be pinned to one core.
//! The RSA key is the test key of tower-auth-jwt's test data: never use it for anything else.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use tower_auth_apikey::limit::{Rate, RateLimit};
use tower_auth_apikey::{ApiKeyAuthenticator, MemoryStore, NewKey};
use tower_auth_core::{AuthenticateLayer, CacheConfig};
use tower_auth_jwt::{JwtAuthenticator, TrustedIssuer};
use tower_auth_oauth::introspection::IntrospectionAuthenticator;

const RSA_PRIVATE: &[u8] = include_bytes!("../../../tower-auth-jwt/tests/data/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../../tower-auth-jwt/tests/data/rsa_public.pem");
const ISSUER: &str = "https://issuer.loadtest";

type Error = Box<dyn std::error::Error>;

fn jwt(cached: bool) -> Result<JwtAuthenticator, Error> {
    let mut b = JwtAuthenticator::builder().issuer(
        TrustedIssuer::new(ISSUER)
            .audience("loadtest")
            .pem(RSA_PUBLIC)
            .algorithms([tower_auth_jwt::Algorithm::RS256]),
    );
    if cached {
        b = b.verified_token_cache(CacheConfig::default());
    }
    Ok(b.build()?)
}

fn mint() -> Result<String, Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": "loadtest", "sub": "load", "iat": now, "exp": now + 3600,
        "scope": "read:items",
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE)?;
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

/// The RS256 signature check alone, with the key parsed once (tower-auth-jwt's
/// `VerifyingKey::verify_signature`, the primitive the layer uses): the control for `/jwt`.
fn signature_rs256() -> Result<axum::routing::MethodRouter, Error> {
    let key = tower_auth_jwt::VerifyingKey::from_pem(RSA_PUBLIC)?;
    // The request itself, not a `HeaderMap` extractor (which would clone every header): the
    // control does no more than the layer's route.
    Ok(get(move |request: Request| async move {
        let verified = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| t.rsplit_once('.'))
            .is_some_and(|(input, signature)| {
                key.verify_signature(
                    tower_auth_jwt::Algorithm::RS256,
                    input.as_bytes(),
                    signature,
                )
            });
        if verified {
            (StatusCode::OK, "ok")
        } else {
            (StatusCode::UNAUTHORIZED, "unauthorized")
        }
    }))
}

/// An introspection endpoint that declares every token active for an hour.
async fn introspection_endpoint() -> Result<String, Error> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let app = Router::new().route(
        "/introspect",
        post(move || async move {
            axum::Json(serde_json::json!({
                "active": true, "sub": "load", "client_id": "load", "scope": "read:items", "exp": exp,
                "aud": "loadtest",
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/introspect"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let port: u16 = std::env::args().nth(1).map_or(Ok(3900), |p| p.parse())?;

    let keys = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .last_used_interval(Duration::from_secs(60))
        .build()?;
    let key = keys
        .admin()
        .create(NewKey::new("load").scopes(["read:items"]))
        .await?;
    // A million requests a second with as large a burst, and a trillion credits: checked on
    // every request, never reached.
    let never_reached = Rate::new(1_000_000, Duration::from_secs(1)).ok_or("bad rate")?;
    let limited = keys
        .admin()
        .create(
            NewKey::new("load-limited")
                .scopes(["read:items"])
                .rate_limit(RateLimit::new(never_reached, None)?)
                .credits(1_000_000_000_000),
        )
        .await?;
    let introspection = IntrospectionAuthenticator::builder(introspection_endpoint().await?)
        .client_id("loadtest")
        .client_secret("loadtest-secret")
        .audiences(["loadtest"])
        .insecure_allow_http(true)
        .build()?;

    let ok = || get(|| async { "ok" });
    let app = Router::new()
        .route("/baseline", ok())
        .route(
            "/apikey",
            ok().route_layer(AuthenticateLayer::required(keys)),
        )
        .route(
            "/jwt",
            ok().route_layer(AuthenticateLayer::required(jwt(false)?)),
        )
        .route(
            "/jwt-cached",
            ok().route_layer(AuthenticateLayer::required(jwt(true)?)),
        )
        .route(
            "/introspection",
            ok().route_layer(AuthenticateLayer::required(introspection)),
        )
        .route("/signature-rs256", signature_rs256()?);

    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("ready");
    println!("apikey={}", key.key.expose_secret());
    println!("apikey_limited={}", limited.key.expose_secret());
    println!("jwt={}", mint()?);
    println!("opaque=opaque-load-token-0123456789abcdefghij");
    axum::serve(listener, app).await?;
    Ok(())
}
