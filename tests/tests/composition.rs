//! Schemes composed with `or` in front of one service, against real parts: API keys in SQLite
//! and opaque tokens introspected at the real OpenID provider. Each credential reaches its own
//! scheme, by shape and place; a wrong-environment API key is rejected by the API key scheme and
//! never forwarded to the authorization server.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt, service_fn};
use tower_auth_apikey::{ApiKeyAuthenticator, NewKey, SqliteStore};
use tower_auth_core::client::HttpClient;
use tower_auth_core::{AuthenticateLayer, Authenticator, Principal};
use tower_auth_oauth::introspection::IntrospectionAuthenticator;
use tower_auth_tests::{RS_CLIENT, client_credentials_token, op_url};

async fn call<A>(auth: &A, headers: &[(&str, &str)]) -> (StatusCode, Option<Principal>)
where
    A: Authenticator + Clone,
    A::Future: Send,
{
    let svc = AuthenticateLayer::required(auth.clone()).layer(service_fn(
        |req: Request<()>| async move {
            let mut res = Response::new(());
            res.extensions_mut()
                .insert(req.extensions().get::<Principal>().cloned());
            Ok::<_, Infallible>(res)
        },
    ));
    let mut req = Request::get("/items");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = svc.oneshot(req.body(()).unwrap()).await.unwrap();
    let p = res
        .extensions()
        .get::<Option<Principal>>()
        .cloned()
        .flatten();
    (res.status(), p)
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn api_key_first_then_introspection() {
    let op = op_url();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("keys.db").display());
    let keys = ApiKeyAuthenticator::builder(SqliteStore::connect(&db).await.unwrap())
        .prefix("sk_test")
        .other_prefixes(["sk_live"])
        .build()
        .unwrap();
    let created = keys
        .admin()
        .create(NewKey::new("billing").scopes(["read:items"]))
        .await
        .unwrap();
    let key = created.key.expose_secret().to_owned();

    // Count what reaches the introspection endpoint.
    let introspections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&introspections);
    let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let counting = service_fn(move |req: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        http.request(req)
    });
    let introspection = IntrospectionAuthenticator::builder(format!("{op}/token/introspection"))
        .client_id(RS_CLIENT.0)
        .client_secret(RS_CLIENT.1)
        .audiences(["urn:tower-auth:opaque"])
        .http_client(
            HttpClient::builder()
                .insecure_allow_http(true)
                .service(counting)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let auth = keys.clone().or(introspection);

    // An API key, as a Bearer token or in X-API-Key: the API key scheme.
    let bearer_key = format!("Bearer {key}");
    let (status, p) = call(&auth, &[("authorization", &bearer_key)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p.unwrap().scheme().as_str(), "api_key");
    let (status, p) = call(&auth, &[("x-api-key", &key)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p.unwrap().subject(), "billing");

    // A key of another environment: rejected by the API key scheme, never introspected.
    let live = key.replacen("sk_test", "sk_live", 1);
    let (status, _) = call(&auth, &[("authorization", &format!("Bearer {live}"))]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(introspections.load(Ordering::SeqCst), 0);

    // An opaque token: introspection.
    let token = client_credentials_token(&op, "urn:tower-auth:opaque", "read:items").await;
    let bearer_token = format!("Bearer {token}");
    let (status, p) = call(&auth, &[("authorization", &bearer_token)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p.unwrap().scheme().as_str(), "introspection");
    assert_eq!(introspections.load(Ordering::SeqCst), 1);

    // An API key and a token in two places at once: 400, nothing checked.
    let (status, _) = call(
        &auth,
        &[("x-api-key", &key), ("authorization", &bearer_token)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(introspections.load(Ordering::SeqCst), 1);
}
