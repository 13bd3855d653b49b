//! `jwt_verify`: the cost of verifying a token through our layer, against jsonwebtoken alone.
//!
//! - `raw/<alg>`: `jsonwebtoken::decode` of the token with the same key, validating `exp`, `nbf`,
//!   `iss` and `aud`, into a `serde_json::Map` (the layer also hands every claim to handlers):
//!   the floor.
//! - `signature/<alg>`: the signature check alone (`VerifyingKey::verify_signature` over the
//!   first two segments): the cryptographic floor, without decoding or checking any claim.
//! - `layer/<alg>`: one request through `AuthenticateLayer::required(JwtAuthenticator)` and a
//!   `service_fn`: header parsing, every check, the principal, the inner call.
//! - `layer_cached/RS256`: the same with the verified-token cache, after the first request.
//! - `layer_cached_revocation_10k/RS256`: `layer_cached/RS256` with a `RevocationList` holding
//!   10,000 revoked `jti`s and 1,000 subject cut-offs of the same issuer, one of them for the
//!   token's subject (before its `iat`): both lookups run on every request, and miss.
//! - `revocation_check_10k`: that list's `RevocationCheck::check` alone, for the same
//!   token: the cost revocation adds to every request; `revocation_check_10k/2_threads`: the
//!   same from two threads at once (time per check).
//! - `layer_jwks_url/EdDSA`: `layer/EdDSA` with the key from a loaded `remote::JwksUrl` (served
//!   once by a loopback server) instead of a static key: the cost of the remote source's hot
//!   path.
//!
//! Run: `cargo bench -p tower-auth-jwt --bench jwt_verify`

#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use jsonwebtoken::{Algorithm as J, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};
use tower::{Layer, Service, service_fn};
use tower_auth_core::{AuthenticateLayer, CacheConfig};
use tower_auth_jwt::{JwtAuthenticator, RevocationCheck, TrustedIssuer, VerifyingKey};

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "orders-api";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-secret";

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

struct Case {
    name: &'static str,
    alg: J,
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: TrustedIssuer,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "HS256",
            alg: J::HS256,
            encoding: EncodingKey::from_secret(SECRET),
            decoding: DecodingKey::from_secret(SECRET),
            issuer: TrustedIssuer::new(ISS).audience(AUD).hmac_secret(SECRET),
        },
        Case {
            name: "RS256",
            alg: J::RS256,
            encoding: EncodingKey::from_rsa_pem(&data("rsa_private.pem")).unwrap(),
            decoding: DecodingKey::from_rsa_pem(&data("rsa_public.pem")).unwrap(),
            issuer: TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("rsa_public.pem")),
        },
        Case {
            name: "ES256",
            alg: J::ES256,
            encoding: EncodingKey::from_ec_pem(&data("ec256_private.pem")).unwrap(),
            decoding: DecodingKey::from_ec_pem(&data("ec256_public.pem")).unwrap(),
            issuer: TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("ec256_public.pem")),
        },
        Case {
            name: "EdDSA",
            alg: J::EdDSA,
            encoding: EncodingKey::from_ed_pem(&data("ed25519_private.pem")).unwrap(),
            decoding: DecodingKey::from_ed_pem(&data("ed25519_public.pem")).unwrap(),
            issuer: TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("ed25519_public.pem")),
        },
    ]
}

fn token(case: &Case) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": ISS,
        "sub": "f3c1e2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f",
        "aud": AUD,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "0b6a6c1e-6f0c-4d5c-9f7e-1c2d3e4f5a6b",
        "scope": "openid profile orders:read orders:write",
        "roles": ["order-admin"],
        "azp": "web-app",
    });
    jsonwebtoken::encode(&Header::new(case.alg), &claims, &case.encoding).unwrap()
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
        .header("accept", "*/*")
        .body(())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let inner = service_fn(|req: Request<()>| {
        black_box(&req);
        ready(Ok::<_, Infallible>(Response::new(())))
    });
    let mut g = c.benchmark_group("jwt_verify");
    g.warm_up_time(Duration::from_secs(1));

    let mut rs256 = None;
    for case in cases() {
        let token = token(&case);
        let mut validation = Validation::new(case.alg);
        validation.set_audience(&[AUD]);
        validation.set_issuer(&[ISS]);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        assert!(
            jsonwebtoken::decode::<Map<String, Value>>(&token, &case.decoding, &validation).is_ok()
        );
        g.bench_function(format!("raw/{}", case.name), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&token),
                    &case.decoding,
                    &validation,
                )
                .unwrap()
            })
        });

        let key = match case.name {
            "HS256" => VerifyingKey::hmac_secret(SECRET).unwrap(),
            "RS256" => VerifyingKey::from_pem(data("rsa_public.pem")).unwrap(),
            "ES256" => VerifyingKey::from_pem(data("ec256_public.pem")).unwrap(),
            _ => VerifyingKey::from_pem(data("ed25519_public.pem")).unwrap(),
        };
        let alg = case.name.parse().unwrap();
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        assert!(key.verify_signature(alg, signing_input.as_bytes(), signature));
        g.bench_function(format!("signature/{}", case.name), |b| {
            b.iter(|| {
                assert!(key.verify_signature(
                    alg,
                    black_box(signing_input.as_bytes()),
                    black_box(signature)
                ))
            })
        });

        let auth = JwtAuthenticator::builder()
            .issuer(case.issuer)
            .build()
            .unwrap();
        let mut svc = AuthenticateLayer::required(auth).layer(inner);
        assert_eq!(one(&mut svc, request(&token)).status(), StatusCode::OK);
        g.bench_function(format!("layer/{}", case.name), |b| {
            b.iter_batched(
                || request(&token),
                |req| one(&mut svc, req),
                BatchSize::SmallInput,
            )
        });
        if case.name == "RS256" {
            rs256 = Some(token);
        }
    }

    let token = rs256.unwrap();
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("rsa_public.pem")),
        )
        .verified_token_cache(
            CacheConfig::builder()
                .ttl(Duration::from_secs(3600))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut svc = AuthenticateLayer::required(auth.clone()).layer(inner);
    assert_eq!(one(&mut svc, request(&token)).status(), StatusCode::OK);
    assert_eq!(auth.cached_tokens(), 1);
    g.bench_function("layer_cached/RS256", |b| {
        b.iter_batched(
            || request(&token),
            |req| one(&mut svc, req),
            BatchSize::SmallInput,
        )
    });

    revocation_10k(&mut g, inner, &token);
    jwks_url(&mut g, inner);
    g.finish();
}

fn revocation_10k<S>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    inner: S,
    token: &str,
) where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone,
{
    use tower_auth_jwt::revocation::MemoryRevocationStore as MemoryStore;
    use tower_auth_jwt::revocation::RevocationList;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let list = rt.block_on(async {
        let list = RevocationList::builder(MemoryStore::new()).build().unwrap();
        list.load().await.unwrap();
        for i in 0..10_000 {
            list.revoke_token(ISS, &format!("revoked-{i:05}-6f0c-4d5c-9f7e"), None)
                .await
                .unwrap();
        }
        let before = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..1_000 {
            list.cut_off_subject(ISS, &format!("subject-{i:04}"), before)
                .await
                .unwrap();
        }
        list.cut_off_subject(ISS, "f3c1e2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f", before)
            .await
            .unwrap();
        list
    });
    assert_eq!(list.revoked_tokens(), 10_000);
    assert_eq!(list.revoked_subjects(), 1_001);
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .pem(data("rsa_public.pem")),
        )
        .verified_token_cache(
            CacheConfig::builder()
                .ttl(Duration::from_secs(3600))
                .build()
                .unwrap(),
        )
        .revocation(list.clone())
        .build()
        .unwrap();
    let mut svc = AuthenticateLayer::required(auth.clone()).layer(inner);
    assert_eq!(one(&mut svc, request(token)).status(), StatusCode::OK);
    assert_eq!(auth.cached_tokens(), 1);
    g.bench_function("layer_cached_revocation_10k/RS256", |b| {
        b.iter_batched(
            || request(token),
            |req| one(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
    // The check alone, as the layer asks it: a token neither revoked nor cut off.
    let identity = tower_auth_jwt::TokenIdentity::new(
        ISS,
        Some("f3c1e2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f".into()),
        Some("0b6a6c1e-6f0c-4d5c-9f7e-1c2d3e4f5a6b".into()),
        Some(SystemTime::now()),
        Some(SystemTime::now() + Duration::from_secs(3600)),
    );
    assert_eq!(
        list.check(&identity),
        tower_auth_jwt::RevocationStatus::Valid
    );
    g.bench_function("revocation_check_10k", |b| {
        b.iter(|| list.check(black_box(&identity)))
    });
    // The same from two threads at once (time per check, both threads together): readers
    // of one list on several cores.
    g.bench_function("revocation_check_10k/2_threads", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            black_box(list.check(black_box(&identity)));
                        }
                    });
                }
            });
            start.elapsed() / 2
        })
    });
    drop(list);
    drop(rt);
}

fn jwks_url<S>(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, inner: S)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone,
{
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use base64::Engine as _;
    use tower_auth_jwt::Algorithm;
    use tower_auth_jwt::remote::JwksUrl;

    let pair = Ed25519KeyPair::generate().unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]}).to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let keys = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { ([("content-type", "application/json")], jwks) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let keys = JwksUrl::builder(url)
            .insecure_allow_http(true)
            .build()
            .unwrap();
        keys.warm_up().await.unwrap();
        keys
    });
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::EdDSA])
                .key_source(keys),
        )
        .build()
        .unwrap();
    let mut header = Header::new(J::EdDSA);
    header.kid = Some("k1".into());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": ISS, "sub": "s", "aud": AUD, "exp": now + 3600});
    let encoding = EncodingKey::from_ed_der(pair.to_pkcs8().unwrap().as_ref());
    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
    let mut svc = AuthenticateLayer::required(auth).layer(inner);
    assert_eq!(one(&mut svc, request(&token)).status(), StatusCode::OK);
    g.bench_function("layer_jwks_url/EdDSA", |b| {
        b.iter_batched(
            || request(&token),
            |req| one(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
    drop(rt);
}

criterion_group!(benches, bench);
criterion_main!(benches);
