//! `core`: the cost `AuthenticateLayer` adds to a request, with an always-accepting synchronous
//! authenticator, against the bare inner service.
//!
//! - `bare` / `layer`: a request whose extensions are empty, so inserting the `Principal` makes
//!   `http::Extensions` allocate its map (and the response drop free it).
//! - `bare_warm` / `layer_warm`: a request that already carries one extension, as every request
//!   routed by axum does (`MatchedPath`); the difference is what the layer itself costs.
//! - `layer_warm_now`: as `layer_warm`, with an authenticator that answers in
//!   `Authenticator::authenticate_now` (as the API key scheme does on a cache hit).
//! - `reject_invalid_token`: the whole 401 path (error, challenge header, empty response).
//! - `bearer_token`, `bearer_token_700b`: parsing `Authorization: Bearer` alone, with a short
//!   token and a JWT-sized one.
//! - `principal_build`: building, reading and dropping a `Principal` with scopes, roles and an
//!   extension, as a token scheme does per request.
//!
//! Run: `cargo bench -p tower-auth-core --bench core`

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use http::request::Parts;
use http::{Request, Response};
use tower::{Layer, Service, service_fn};
use tower_auth_core::credential::{Found, Location, bearer_token};
use tower_auth_core::{
    AuthError, AuthenticateLayer, Authentication, Authenticator, Principal, Scheme,
};

/// What both benchmark schemes find: any Bearer token.
fn any_bearer(parts: &Parts) -> Result<Option<Found<()>>, AuthError> {
    Ok(bearer_token(&parts.headers)?
        .map(|_| Found::new((), Location::Authorization, Scheme::Custom("bench"))))
}

/// Accepts any Bearer token, returning a prebuilt principal; with `now`, it answers in
/// `authenticate_now`, as a scheme with a cache hit does.
#[derive(Clone)]
struct AcceptAll {
    principal: Principal,
    now: bool,
}

impl Authenticator for AcceptAll {
    type Credential = ();
    type Future = Ready<Result<Principal, AuthError>>;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<()>>, AuthError> {
        any_bearer(parts)
    }

    fn authenticate(&self, (): ()) -> Self::Future {
        ready(Ok(self.principal.clone()))
    }

    fn authenticate_now(&self, (): ()) -> Authentication<Self::Future> {
        if self.now {
            Authentication::Ready(Ok(self.principal.clone()))
        } else {
            Authentication::Pending(self.authenticate(()))
        }
    }
}

/// Drives one request through `svc` to completion; every future here is ready at once.
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

fn request() -> Request<()> {
    Request::get("/items")
        .header(
            "authorization",
            "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
        )
        .header("accept", "*/*")
        .body(())
        .expect("valid request")
}

/// A request whose extension map already exists, like one routed by axum.
fn warm_request() -> Request<()> {
    #[derive(Clone)]
    struct Routed;
    let mut req = request();
    req.extensions_mut().insert(Routed);
    req
}

fn bench(c: &mut Criterion) {
    let inner = service_fn(|req: Request<()>| {
        black_box(&req);
        ready(Ok::<_, Infallible>(Response::new(())))
    });
    let principal = Principal::builder("bench", Scheme::Custom("bench"))
        .scopes(["read"])
        .build();

    let mut g = c.benchmark_group("core");
    let mut bare = inner;
    g.bench_function("bare", |b| {
        b.iter_batched(
            request,
            |req| one(&mut bare, req),
            criterion::BatchSize::SmallInput,
        )
    });
    let mut layered = AuthenticateLayer::required(AcceptAll {
        principal: principal.clone(),
        now: false,
    })
    .layer(inner);
    let mut layered_now = AuthenticateLayer::required(AcceptAll {
        principal,
        now: true,
    })
    .layer(inner);
    g.bench_function("layer", |b| {
        b.iter_batched(
            request,
            |req| one(&mut layered, req),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("bare_warm", |b| {
        b.iter_batched(
            warm_request,
            |req| one(&mut bare, req),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("layer_warm", |b| {
        b.iter_batched(
            warm_request,
            |req| one(&mut layered, req),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("layer_warm_now", |b| {
        b.iter_batched(
            warm_request,
            |req| one(&mut layered_now, req),
            criterion::BatchSize::SmallInput,
        )
    });
    // The rejection path: a scheme that refuses every token (401 invalid_token).
    let refuse = tower_auth_core::from_fn(Location::Authorization, |parts| {
        bearer_token(&parts.headers)?;
        Err(AuthError::invalid_token("unknown token"))
    });
    let mut rejecting = AuthenticateLayer::required(refuse).layer(inner);
    g.bench_function("reject_invalid_token", |b| {
        b.iter_batched(
            request,
            |req| one(&mut rejecting, req),
            criterion::BatchSize::SmallInput,
        )
    });
    let headers = request().into_parts().0.headers;
    g.bench_function("bearer_token", |b| {
        b.iter(|| bearer_token(black_box(&headers)).is_ok())
    });
    // A JWT-sized (700-byte) token.
    let mut jwt = http::HeaderMap::new();
    let token = format!(
        "Bearer {}.{}.{}",
        "e".repeat(100),
        "p".repeat(250),
        "s".repeat(342)
    );
    jwt.insert("authorization", token.parse().expect("header value"));
    g.bench_function("bearer_token_700b", |b| {
        b.iter(|| bearer_token(black_box(&jwt)).is_ok())
    });
    // Building and dropping a principal as a token scheme does on every request: scopes from
    // a space-separated claim, roles, and the claims as an extension.
    struct Claims {
        _raw: String,
    }
    g.bench_function("principal_build", |b| {
        b.iter(|| {
            let p = Principal::builder(black_box("user-1234"), Scheme::Jwt)
                .issuer(black_box("https://issuer.example"))
                .scope_set(tower_auth_core::Scopes::from_space_separated(black_box(
                    "read:items write:items profile",
                )))
                .roles(black_box(["admin", "ops"]))
                .extension(Claims {
                    _raw: black_box("{}").to_owned(),
                })
                .build();
            black_box(p.extension::<Claims>().is_some());
            black_box(p.scopes().contains("write:items"));
            drop(p);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
