//! The introspection authenticator against the real OpenID provider (panva's oidc-provider,
//! started by `scripts/test`) over loopback.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};
use tower_auth_core::{
    AuthenticateLayer, CacheConfig, Principal, PrincipalKind, RequireScopesLayer,
};
use tower_auth_oauth::introspection::IntrospectionAuthenticator;
use tower_auth_tests::{OwnProvider, RS_CLIENT, client_credentials_token, op_url, revoke};

const OPAQUE: &str = "urn:tower-auth:opaque";

fn introspection(op: &str, ttl: Duration) -> IntrospectionAuthenticator {
    IntrospectionAuthenticator::builder(format!("{op}/token/introspection"))
        .client_id(RS_CLIENT.0)
        .client_secret(RS_CLIENT.1)
        .issuer(op)
        .audiences([OPAQUE, "urn:tower-auth:opaque-short"])
        .cache(CacheConfig::builder().ttl(ttl).build().unwrap())
        .insecure_allow_http(true)
        .build()
        .unwrap()
}

async fn call(
    auth: &IntrospectionAuthenticator,
    scope: &str,
    token: &str,
) -> (StatusCode, Option<Principal>) {
    let svc = AuthenticateLayer::required(auth.clone()).layer(
        RequireScopesLayer::all_of([scope]).layer(service_fn(|req: Request<()>| async move {
            let mut res = Response::new(());
            res.extensions_mut()
                .insert(req.extensions().get::<Principal>().cloned());
            Ok::<_, Infallible>(res)
        })),
    );
    let req = Request::get("/")
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
async fn opaque_token_is_accepted_through_introspection() {
    let op = op_url();
    let token = client_credentials_token(&op, OPAQUE, "read:items").await;
    let auth = introspection(&op, Duration::from_secs(30));
    let (status, p) = call(&auth, "read:items", &token).await;
    assert_eq!(status, StatusCode::OK);
    let p = p.unwrap();
    assert_eq!(p.subject(), "tower-auth-cc");
    assert_eq!(p.kind(), PrincipalKind::Service);
    assert_eq!(p.issuer(), Some(op.as_str()));
    assert!(p.expires_at().is_some());
    // The same token lacks `write:items`: 403 insufficient_scope, just as for a JWT.
    assert_eq!(
        call(&auth, "write:items", &token).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn an_active_token_for_another_audience_is_refused() {
    let op = op_url();
    let token = client_credentials_token(&op, OPAQUE, "read:items").await;
    // The provider answers active, with `aud` = the opaque resource: another API refuses it.
    let other = IntrospectionAuthenticator::builder(format!("{op}/token/introspection"))
        .client_id(RS_CLIENT.0)
        .client_secret(RS_CLIENT.1)
        .issuer(&op)
        .audiences(["urn:tower-auth:rs256"])
        .insecure_allow_http(true)
        .build()
        .unwrap();
    let svc = AuthenticateLayer::required(other).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // The API it was minted for accepts it.
    let auth = introspection(&op, Duration::from_secs(30));
    assert_eq!(call(&auth, "read:items", &token).await.0, StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn unknown_and_revoked_tokens_are_rejected() {
    let op = op_url();
    let auth = introspection(&op, Duration::from_secs(1));
    assert_eq!(
        call(&auth, "read:items", "not-a-token-the-provider-issued")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    let token = client_credentials_token(&op, OPAQUE, "read:items").await;
    assert_eq!(call(&auth, "read:items", &token).await.0, StatusCode::OK);
    revoke(&op, &token).await;
    // Within the cache TTL the earlier answer may still be served; once it passes, the revocation
    // is seen.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        call(&auth, "read:items", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn a_cached_result_is_not_served_past_the_token_exp() {
    let op = op_url();
    // A 30 s cache, a token that lives 5 s: the cache must give up at exp.
    let auth = introspection(&op, Duration::from_secs(30));
    let token = client_credentials_token(&op, "urn:tower-auth:opaque-short", "read:items").await;
    let (status, p) = call(&auth, "read:items", &token).await;
    assert_eq!(status, StatusCode::OK);
    let exp = p.unwrap().expires_at().unwrap();
    let left = exp
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(1100)).await;
    assert_eq!(
        call(&auth, "read:items", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn provider_down_is_503() {
    let mut own = OwnProvider::start().await;
    let token = client_credentials_token(&own.url, OPAQUE, "read:items").await;
    let auth = introspection(&own.url, Duration::from_secs(30));
    own.stop().await;
    let (status, p) = call(&auth, "read:items", &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(p.is_none());
}
