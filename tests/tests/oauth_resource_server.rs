//! The resource server configured from the real OpenID provider's metadata: JWT access tokens
//! of every signing algorithm and opaque tokens, each to its own path by shape, with scopes
//! enforced the same way for both; client credentials configured from the same metadata.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};
use tower_auth_core::{AuthenticateLayer, Principal, RequireScopesLayer};
use tower_auth_oauth::client_credentials::ClientCredentials;
use tower_auth_oauth::resource_server::ResourceServer;
use tower_auth_tests::{CC_CLIENT, RS_CLIENT, client_credentials_token, loopback_client, op_url};

const JWT_RESOURCES: [&str; 3] = [
    "urn:tower-auth:rs256",
    "urn:tower-auth:es256",
    "urn:tower-auth:eddsa",
];
const OPAQUE: &str = "urn:tower-auth:opaque";

async fn resource_server(op: &str, audiences: &[&str]) -> ResourceServer {
    ResourceServer::builder(op)
        .audiences(audiences.iter().copied())
        .introspection_client(RS_CLIENT.0, RS_CLIENT.1)
        .insecure_allow_http(true)
        .discover()
        .await
        .unwrap()
}

async fn call(rs: &ResourceServer, scope: &str, token: &str) -> (StatusCode, Option<Principal>) {
    let svc = AuthenticateLayer::required(rs.clone()).layer(
        RequireScopesLayer::all_of([scope]).layer(service_fn(|req: Request<()>| async move {
            let mut res = Response::new(());
            res.extensions_mut()
                .insert(req.extensions().get::<Principal>().cloned());
            Ok::<_, Infallible>(res)
        })),
    );
    let req = Request::get("/items")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let p = res
        .extensions()
        .get::<Option<Principal>>()
        .cloned()
        .flatten();
    (res.status(), p)
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn jwt_and_opaque_tokens_each_take_their_path() {
    let op = op_url();
    let mut audiences = JWT_RESOURCES.to_vec();
    audiences.push(OPAQUE);
    let rs = resource_server(&op, &audiences).await;
    assert_eq!(rs.metadata().issuer(), op);

    for resource in JWT_RESOURCES {
        let token = client_credentials_token(&op, resource, "read:items").await;
        assert_eq!(token.split('.').count(), 3, "{resource} issues JWTs");
        let (status, p) = call(&rs, "read:items", &token).await;
        assert_eq!(status, StatusCode::OK, "{resource}");
        assert_eq!(p.unwrap().scheme().as_str(), "jwt", "{resource}");
        // The same scope rules as for opaque tokens.
        assert_eq!(
            call(&rs, "write:items", &token).await.0,
            StatusCode::FORBIDDEN,
            "{resource}"
        );
    }

    let opaque = client_credentials_token(&op, OPAQUE, "read:items").await;
    assert_ne!(opaque.split('.').count(), 3);
    let (status, p) = call(&rs, "read:items", &opaque).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p.unwrap().scheme().as_str(), "introspection");
    assert_eq!(
        call(&rs, "write:items", &opaque).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn tokens_for_another_audience_are_rejected() {
    let op = op_url();
    let rs = resource_server(&op, &["urn:tower-auth:es256"]).await;
    let token = client_credentials_token(&op, "urn:tower-auth:rs256", "read:items").await;
    assert_eq!(
        call(&rs, "read:items", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let opaque = client_credentials_token(&op, OPAQUE, "read:items").await;
    assert_eq!(
        call(&rs, "read:items", &opaque).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn a_token_typed_like_an_id_token_is_not_an_access_token() {
    let op = op_url();
    let token = client_credentials_token(&op, "urn:tower-auth:jwt-typed", "read:items").await;
    // Same issuer, same keys, our audience: only the `typ` differs.
    let strict = resource_server(&op, &["urn:tower-auth:jwt-typed"]).await;
    assert_eq!(
        call(&strict, "read:items", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let lenient = ResourceServer::builder(&op)
        .audiences(["urn:tower-auth:jwt-typed"])
        .insecure_skip_access_token_type()
        .insecure_allow_http(true)
        .discover()
        .await
        .unwrap();
    assert_eq!(call(&lenient, "read:items", &token).await.0, StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn client_credentials_from_the_metadata() {
    let op = op_url();
    let metadata = tower_auth_jwt::remote::discover(&loopback_client(), &op)
        .await
        .unwrap();
    let tokens = ClientCredentials::builder_from_metadata(&metadata)
        .unwrap()
        .client_id(CC_CLIENT.0)
        .client_secret(CC_CLIENT.1)
        .scopes(["read:items"])
        .resources(["urn:tower-auth:rs256"])
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let token = tokens.token().await.unwrap();
    let header = token.authorization().to_str().unwrap().to_owned();
    let rs = resource_server(&op, &["urn:tower-auth:rs256"]).await;
    let (status, p) = call(&rs, "read:items", header.strip_prefix("Bearer ").unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p.unwrap().subject(), CC_CLIENT.0);
}
