//! `dpop`: the cost of a DPoP request (RFC 9449) through our layer.
//!
//! - `proof_and_token/<alg>`: one request through `AuthenticateLayer::required(DpopAuthenticator)`
//!   with a fresh proof (signed outside the timed part): header parsing, every proof check
//!   (proof signature by the `jwk` key, `htm`, `htu`, `iat`, `ath`, thumbprint), the token's
//!   verification (HS256, no cache) and the replay-cache insert.
//! - `proof_token_cached/<alg>`: the same with the token in the verified-token cache: what is
//!   left is the proof.
//!
//! Run: `cargo bench -p tower-auth-jwt --bench dpop`

#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::{Layer, Service, service_fn};
use tower_auth_core::clock::{Clock, ManualClock};
use tower_auth_core::{AuthenticateLayer, CacheConfig};
use tower_auth_jwt::dpop::{DpopAuthenticator, DpopKey};
use tower_auth_jwt::{Algorithm, JwtAuthenticator, TrustedIssuer};

const ISS: &str = "https://issuer.example.com";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-secret";
const URL: &str = "https://api.example.com/orders";
const NOW: u64 = 1_767_225_600;

fn token(jkt: &str) -> String {
    let claims = json!({"iss": ISS, "aud": "api", "sub": "alice", "exp": NOW + 600,
        "cnf": {"jkt": jkt}});
    let input = format!(
        "{}.{}",
        B64.encode(r#"{"alg":"HS256"}"#),
        B64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    format!(
        "{input}.{}",
        B64.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()))
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dpop");
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        for cached in [false, true] {
            let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(NOW));
            let mut b = JwtAuthenticator::builder()
                .issuer(TrustedIssuer::new(ISS).audience("api").hmac_secret(SECRET))
                .clock(clock.clone());
            if cached {
                b = b.verified_token_cache(CacheConfig::builder().build().unwrap());
            }
            let dpop = DpopAuthenticator::builder(b.build().unwrap())
                .external_url("https://api.example.com")
                .replay_cache_capacity(50_000_000)
                .build()
                .unwrap();
            let mut svc =
                AuthenticateLayer::required(dpop).layer(service_fn(|_: Request<()>| async {
                    Ok::<_, Infallible>(Response::new(()))
                }));
            let key = DpopKey::generate(alg).unwrap();
            let token = token(key.thumbprint());
            let authorization = format!("DPoP {token}");
            let request = || {
                let proof = key
                    .proof_at("GET", URL, Some(&token), None, clock.now())
                    .unwrap();
                Request::get("/orders")
                    .header("authorization", &authorization)
                    .header("dpop", proof)
                    .body(())
                    .unwrap()
            };
            let name = if cached {
                "proof_token_cached"
            } else {
                "proof_and_token"
            };
            let mut cx = Context::from_waker(Waker::noop());
            group.bench_function(format!("{name}/{}", alg.as_str()), |b| {
                b.iter_batched(
                    request,
                    |req| {
                        assert!(svc.poll_ready(&mut cx).is_ready());
                        let mut fut = pin!(svc.call(req));
                        match fut.as_mut().poll(&mut cx) {
                            Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::OK),
                            _ => panic!("not ready"),
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
