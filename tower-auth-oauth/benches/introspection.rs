//! `introspection/cached`: a request with an opaque token whose introspection result is cached,
//! through `AuthenticateLayer`.
//!
//! Run: `cargo bench -p tower-auth-oauth --bench introspection`

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_auth_core::AuthenticateLayer;
use tower_auth_oauth::introspection::IntrospectionAuthenticator;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let endpoint = rt.block_on(async {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 3600;
        let app = axum::Router::new().route(
            "/introspect",
            post(move || async move {
                axum::Json(serde_json::json!({
                    "active": true, "sub": "alice", "client_id": "app", "scope": "read", "exp": exp,
                    "aud": "api",
                }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/introspect")
    });
    let auth = IntrospectionAuthenticator::builder(endpoint)
        .client_id("rs")
        .client_secret("secret")
        .audiences(["api"])
        .insecure_allow_http(true)
        .build()
        .expect("config");
    let svc = AuthenticateLayer::required(auth).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let request = || {
        Request::get("/")
            .header("authorization", "Bearer opaque-token-0123456789abcdef")
            .body(())
            .expect("request")
    };
    // Prime the cache.
    let res = rt
        .block_on(svc.clone().oneshot(request()))
        .expect("response");
    assert_eq!(res.status(), 200);

    let mut g = c.benchmark_group("introspection");
    g.bench_function("cached", |b| {
        b.to_async(&rt).iter_batched(
            || (svc.clone(), request()),
            |(mut svc, req)| async move {
                let res = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(req)
                    .await
                    .expect("response");
                assert_eq!(res.status(), 200);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
