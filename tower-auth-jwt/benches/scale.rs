//! `scale`: what a thousand trusted issuers cost, against one.
//!
//! - `issuers/layer/<n>`: one request through `AuthenticateLayer::required(JwtAuthenticator)`
//!   with `n` trusted issuers (HS256, a secret each), the token from one in the middle: the
//!   token's `iss` picks its issuer in a hash map, so 1,000 should cost what 1 costs.
//! - `issuers/layer_cached/<n>`: the same with the verified-token cache.
//! - `issuers/build_static/<n>`, `issuers/build_jwks_url/<n>`: building the authenticator with
//!   `n` issuers with static keys, or with a JWKS URL each (no I/O at build: keys load on first
//!   use).
//!
//! Run: `cargo bench -p tower-auth-jwt --bench scale`

#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tower::{Layer, Service, service_fn};
use tower_auth_core::{AuthenticateLayer, CacheConfig};
use tower_auth_jwt::remote::JwksUrl;
use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};

const AUD: &str = "orders-api";

fn issuer_url(i: usize) -> String {
    format!("https://issuer-{i:04}.example.com")
}

fn secret(i: usize) -> Vec<u8> {
    format!("bench-secret-of-issuer-{i:04}-0123456789abcdef").into_bytes()
}

fn token(i: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": issuer_url(i), "sub": "f3c1e2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f", "aud": AUD,
        "iat": now, "exp": now + 3600, "scope": "orders:read orders:write",
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(&secret(i)),
    )
    .unwrap()
}

fn authenticator(n: usize, cache: bool) -> JwtAuthenticator {
    let mut b = JwtAuthenticator::builder();
    for i in 0..n {
        b = b.issuer(
            TrustedIssuer::new(issuer_url(i))
                .audience(AUD)
                .hmac_secret(secret(i)),
        );
    }
    if cache {
        b = b.verified_token_cache(CacheConfig::default());
    }
    b.build().unwrap()
}

/// Drives one request through `svc`; every future here is ready at once.
fn one<S>(svc: &mut S, req: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => unreachable!("every future in this bench is ready"),
    }
}

fn request(token: &str) -> Request<()> {
    Request::get("/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let inner = service_fn(|req: Request<()>| {
        black_box(&req);
        ready(Ok::<_, Infallible>(Response::new(())))
    });
    let mut g = c.benchmark_group("issuers");
    g.warm_up_time(Duration::from_secs(1));
    for n in [1usize, 1000] {
        let token = token(n / 2);
        for cache in [false, true] {
            let mut svc = AuthenticateLayer::required(authenticator(n, cache)).layer(inner);
            assert_eq!(one(&mut svc, request(&token)).status(), StatusCode::OK);
            let name = if cache { "layer_cached" } else { "layer" };
            g.bench_function(format!("{name}/{n}"), |b| {
                b.iter_batched(
                    || request(&token),
                    |req| one(&mut svc, req),
                    BatchSize::SmallInput,
                )
            });
        }
        g.bench_function(format!("build_static/{n}"), |b| {
            b.iter(|| authenticator(black_box(n), false))
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // JwksUrl spawns its refresh task on the runtime it is built in.
        let _guard = rt.enter();
        g.bench_function(format!("build_jwks_url/{n}"), |b| {
            b.iter(|| {
                let mut builder = JwtAuthenticator::builder();
                for i in 0..n {
                    let keys = JwksUrl::builder(format!("{}/jwks.json", issuer_url(i)))
                        .build()
                        .unwrap();
                    builder = builder.issuer(
                        TrustedIssuer::new(issuer_url(i))
                            .audience(AUD)
                            .key_source(keys)
                            .algorithms([Algorithm::RS256, Algorithm::ES256]),
                    );
                }
                builder.build().unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
