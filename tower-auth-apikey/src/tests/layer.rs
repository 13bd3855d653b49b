//! The response contract, sources and the principal, through the layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_auth_core::credential::{Found, Location, bearer_token};
use tower_auth_core::{AuthenticateLayer, Authenticator, Principal, PrincipalKind, Scheme};

use super::*;
use crate::NewKey;

#[tokio::test]
async fn valid_key_as_bearer_or_header_gives_the_principal() {
    let store = TestStore::new();
    let clock = clock();
    let auth = builder(&store).clock(clock.clone()).build().unwrap();
    let created = auth
        .admin()
        .create(
            NewKey::new("billing")
                .name("export")
                .scopes(["read", "write"])
                .expires_in(Duration::from_secs(3600))
                .metadata(serde_json::json!({"team": "finance"})),
        )
        .await
        .unwrap();
    let key = created.key.expose_secret();

    let principal = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&principal);
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth.clone()))
        .service(service_fn(move |req: Request<()>| {
            *seen.lock().unwrap() = req.extensions().get::<Principal>().cloned();
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        }));
    for req in [
        bearer(key),
        with_header("authorization", &format!("bEaReR   {key}")),
        with_header("x-api-key", key),
    ] {
        *principal.lock().unwrap() = None;
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let p = principal
            .lock()
            .unwrap()
            .take()
            .expect("principal inserted");
        assert_eq!(p.subject(), "billing");
        assert_eq!(p.kind(), PrincipalKind::Application);
        assert_eq!(p.scheme(), Scheme::ApiKey);
        assert!(p.scopes().contains_all(["read", "write"]));
        assert_eq!(p.expires_at(), Some(t0() + Duration::from_secs(3600)));
        let record = p.extension::<KeyRecord>().expect("record attached");
        assert_eq!(record, &created.record);
        assert_eq!(record.metadata["team"], "finance");
    }
    assert_eq!(store.finds(), 1);
}

#[tokio::test]
async fn every_format_failure_is_401_without_a_store_query() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a"))
        .await
        .unwrap()
        .key
        .expose_secret()
        .to_owned();
    let live = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_live")
        .build()
        .unwrap()
        .admin()
        .create(NewKey::new("a"))
        .await
        .unwrap()
        .key
        .expose_secret()
        .to_owned();
    let (svc, calls) = stack(auth);
    let body = &key["sk_test_".len()..];
    let mut last = key.as_bytes().to_vec();
    *last.last_mut().unwrap() = if *last.last().unwrap() == b'A' {
        b'B'
    } else {
        b'A'
    };
    let bad_checksum = String::from_utf8(last).unwrap();
    let mut first = key.as_bytes().to_vec();
    first[8] = if first[8] == b'A' { b'B' } else { b'A' };
    let bad_random = String::from_utf8(first).unwrap();
    let cases = [
        ("bad checksum", bad_checksum.clone()),
        ("changed random part", bad_random),
        ("other environment", live.clone()),
        ("oversized", format!("{key}{}", "A".repeat(10_000))),
        ("one character too long", format!("{key}A")),
        ("too short", key[..key.len() - 1].to_owned()),
        (
            "non-base62",
            format!("sk_test_{}~{}", &body[..10], &body[11..]),
        ),
        ("prefix only", "sk_test_".to_owned()),
        ("prefix of a prefix", format!("sk_test_sk_test_{body}")),
    ];
    // As a Bearer token an unknown prefix is not ours (another scheme's token); in the dedicated
    // header it is a malformed key.
    let header_only = [
        ("unknown prefix", format!("sk_prod_{body}")),
        ("no prefix", body.to_owned()),
        ("garbage", "hunter2".to_owned()),
    ];
    let requests = cases
        .iter()
        .flat_map(|(what, v)| {
            [
                (*what, v, bearer(v)),
                (*what, v, with_header("x-api-key", v)),
            ]
        })
        .chain(
            header_only
                .iter()
                .map(|(what, v)| (*what, v, with_header("x-api-key", v))),
        );
    for (what, value, req) in requests {
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = www_authenticate(&res);
        assert!(
            challenge.starts_with("Bearer realm=\"api\"")
                && challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(!challenge.contains(value.as_str()), "{what}: echoed");
    }
    let res = svc.clone().oneshot(bearer(&live)).await.unwrap();
    assert!(www_authenticate(&res).contains("another environment"));
    assert_eq!(store.finds(), 0, "no format failure reached the store");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The check is not vacuous: the intact key does reach the store.
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::OK);
    assert_eq!(store.finds(), 1);
}

#[tokio::test]
async fn response_contract_rows() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let key = key.expose_secret();
    let (svc, calls) = stack(auth);

    // No credential: bare challenge.
    let res = svc
        .clone()
        .oneshot(Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&res), "Bearer realm=\"api\"");

    // A Bearer token that is not ours (a JWT) is "not mine"; with no other scheme to claim it,
    // the layer answers that it recognises no such token (never "no credential").
    let res = svc
        .clone()
        .oneshot(bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"))
        .await
        .unwrap();
    assert_eq!(
        www_authenticate(&res),
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"unrecognized bearer token\""
    );

    // Two places at once, even the same key: 400.
    let mut req = bearer(key);
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(www_authenticate(&res).contains("error=\"invalid_request\""));

    // Duplicate headers: 400.
    let mut req = with_header("x-api-key", key);
    req.headers_mut().append("x-api-key", key.parse().unwrap());
    assert_eq!(status(&svc, req).await, StatusCode::BAD_REQUEST);
    let mut req = bearer(key);
    req.headers_mut()
        .append("authorization", format!("Bearer {key}").parse().unwrap());
    assert_eq!(status(&svc, req).await, StatusCode::BAD_REQUEST);

    // Query parameters are ignored unless enabled.
    let req = Request::get(format!("/items?api_key={key}"))
        .body(())
        .unwrap();
    assert_eq!(status(&svc, req).await, StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        status(&svc, with_header("x-api-key", key)).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn query_parameter_and_custom_header_when_configured() {
    let store = TestStore::new();
    let auth = builder(&store)
        .header("X-Service-Key")
        .insecure_query_parameter("api_key")
        .bearer(false)
        .build()
        .unwrap();
    let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let key = key.expose_secret();
    let (svc, _) = stack(auth);
    let q = |k: &str| {
        Request::get(format!("/items?x=1&api_key={k}"))
            .body(())
            .unwrap()
    };
    assert_eq!(status(&svc, q(key)).await, StatusCode::OK);
    assert_eq!(
        status(&svc, with_header("x-service-key", key)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&svc, with_header("x-api-key", key)).await,
        StatusCode::UNAUTHORIZED
    );
    // Bearer is off: not ours, so no scheme recognises it.
    let res = svc.clone().oneshot(bearer(key)).await.unwrap();
    assert_eq!(
        www_authenticate(&res),
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"unrecognized bearer token\""
    );
    // Query and header at once: 400.
    let mut req = q(key);
    req.headers_mut()
        .insert("x-service-key", key.parse().unwrap());
    assert_eq!(status(&svc, req).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn extract_reports_where_the_key_was_found() {
    let store = TestStore::new();
    let auth = builder(&store)
        .insecure_query_parameter("k")
        .build()
        .unwrap();
    let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let key = key.expose_secret();
    let loc = |req: Request<()>| {
        let (parts, ()) = req.into_parts();
        auth.extract(&parts)
            .unwrap()
            .map(|f| (f.location, f.scheme))
    };
    assert_eq!(
        loc(bearer(key)),
        Some((Location::Authorization, Scheme::ApiKey))
    );
    assert_eq!(
        loc(with_header("x-api-key", key)),
        Some((
            Location::Header(http::HeaderName::from_static("x-api-key")),
            Scheme::ApiKey
        ))
    );
    assert_eq!(
        loc(Request::get(format!("/?k={key}")).body(()).unwrap()),
        Some((Location::Query("k".into()), Scheme::ApiKey))
    );
    assert_eq!(loc(bearer("some.jwt.value")), None);
    assert_eq!(
        loc(with_header("authorization", "Basic dXNlcjpwYXNz")),
        None
    );
}

/// A scheme after the API key one that accepts any Bearer token, counting what it is asked
/// to authenticate.
#[derive(Clone)]
struct CatchAll(Arc<AtomicUsize>);

impl Authenticator for CatchAll {
    type Credential = ();
    type Future = std::future::Ready<Result<Principal, tower_auth_core::AuthError>>;

    fn extract(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<Found<()>>, tower_auth_core::AuthError> {
        Ok(bearer_token(&parts.headers)?
            .map(|_| Found::new((), Location::Authorization, Scheme::Custom("other"))))
    }

    fn authenticate(&self, (): ()) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(
            Principal::builder("other", Scheme::Custom("other")).build()
        ))
    }
}

#[tokio::test]
async fn composed_with_or_keys_of_any_environment_are_never_forwarded() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let test_key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let live_key = ApiKeyAuthenticator::builder(MemoryStore::new())
        .build()
        .unwrap()
        .admin()
        .create(NewKey::new("a"))
        .await
        .unwrap()
        .key;
    let seen = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(
            auth.or(CatchAll(Arc::clone(&seen))),
        ))
        .service(service_fn(|req: Request<()>| async move {
            let p = req.extensions().get::<Principal>().unwrap().clone();
            Ok::<_, Infallible>(Response::new(p.scheme().to_string()))
        }));
    let res = svc
        .clone()
        .oneshot(bearer(test_key.expose_secret()))
        .await
        .unwrap();
    assert_eq!(res.body(), "api_key");
    // Another environment's key: claimed by the API key scheme and rejected there.
    let res = svc
        .clone()
        .oneshot(bearer(live_key.expose_secret()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The last character changed (to one it is not: a key ending in `0` stays different).
    let secret = test_key.expose_secret();
    let last = if secret.ends_with('0') { '1' } else { '0' };
    let corrupted = format!("{}{last}", &secret[..secret.len() - 1]);
    let res = svc.clone().oneshot(bearer(&corrupted)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(seen.load(Ordering::SeqCst), 0, "never forwarded");
    // Other tokens go on to the next scheme.
    let res = svc.clone().oneshot(bearer("opaque-token")).await.unwrap();
    assert_eq!(res.body(), "other");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    // An X-API-Key header and somebody else's Bearer token: two places, 400.
    let mut req = bearer("opaque-token");
    req.headers_mut()
        .insert("x-api-key", test_key.expose_secret().parse().unwrap());
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn optional_mode_passes_anonymous_requests_but_not_bad_keys() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::optional(auth))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let anonymous = svc
        .clone()
        .oneshot(Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    let bad = svc
        .clone()
        .oneshot(with_header("x-api-key", "nope"))
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_scope_is_403() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let key = auth
        .admin()
        .create(NewKey::new("a").scopes(["read"]))
        .await
        .unwrap()
        .key;
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth))
        .layer(tower_auth_core::RequireScopesLayer::all_of(["write"]))
        .service(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let res = svc
        .oneshot(with_header("x-api-key", key.expose_secret()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(www_authenticate(&res).contains("scope=\"write\""));
}

#[tokio::test]
async fn store_errors_are_503_never_2xx_and_recover() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let key = key.expose_secret();
    let (svc, calls) = stack(auth);
    store.fail();
    for _ in 0..3 {
        let res = svc.clone().oneshot(bearer(key)).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "5");
        assert!(res.headers().get("www-authenticate").is_none());
    }
    assert_eq!(store.finds(), 3, "failures are not cached");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    store.recover();
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_hanging_store_is_503_after_the_deadline_and_recovers() {
    let store = TestStore::new();
    let auth = builder(&store)
        .store_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let key = auth.admin().create(NewKey::new("a")).await.unwrap().key;
    let key = key.expose_secret();
    let (svc, calls) = stack(auth);
    store.hang();
    // Bounded by the deadline, not by this test's patience.
    let res = tokio::time::timeout(Duration::from_secs(10), svc.clone().oneshot(bearer(key)))
        .await
        .expect("the deadline answers")
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    store.recover();
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);
}

#[tokio::test]
async fn configuration_errors_name_the_setting() {
    let b = || ApiKeyAuthenticator::builder(MemoryStore::new());
    let setting =
        |r: Result<ApiKeyAuthenticator, tower_auth_core::ConfigError>| r.unwrap_err().setting();
    assert_eq!(setting(b().prefix("sk-live").build()), "prefix");
    assert_eq!(
        setting(b().other_prefixes(["a b"]).build()),
        "other_prefixes"
    );
    assert_eq!(setting(b().pepper(&b"short"[..]).build()), "pepper");
    assert_eq!(setting(b().header("Authorization").build()), "header");
    assert_eq!(setting(b().header("bad header").build()), "header");
    assert_eq!(
        setting(b().insecure_query_parameter("").build()),
        "insecure_query_parameter"
    );
    assert_eq!(setting(b().bearer(false).no_header().build()), "bearer");
    assert_eq!(
        setting(b().store_timeout(Duration::ZERO).build()),
        "store_timeout"
    );
    assert_eq!(
        setting(b().last_used_interval(Duration::from_millis(1)).build()),
        "last_used_interval"
    );
    assert_eq!(
        setting(b().stale_if_error(Duration::ZERO).build()),
        "stale_if_error"
    );
    assert_eq!(
        setting(b().stale_if_error(Duration::from_secs(2 * 86_400)).build()),
        "stale_if_error"
    );
    let e = b().prefix("sk-live").build().unwrap_err();
    assert!(e.to_string().contains("\"sk-live\""), "{e}");
    assert!(b().pepper(vec![1u8; 32]).build().is_ok());
}

#[tokio::test]
async fn pepper_must_match() {
    let store = TestStore::new();
    let peppered = builder(&store).pepper(vec![42u8; 32]).build().unwrap();
    let key = peppered.admin().create(NewKey::new("a")).await.unwrap().key;
    let (svc, _) = stack(peppered);
    assert_eq!(
        status(&svc, bearer(key.expose_secret())).await,
        StatusCode::OK
    );
    let plain = builder(&store).build().unwrap();
    let (svc, _) = stack(plain);
    assert_eq!(
        status(&svc, bearer(key.expose_secret())).await,
        StatusCode::UNAUTHORIZED
    );
}
