//! Remote JWT keys against the real OpenID provider (panva's oidc-provider, started by
//! `scripts/test`): OpenID Connect discovery from its issuer URL, and RFC 9068 JWT access
//! tokens (RS256, ES256, EdDSA) from client credentials accepted through `AuthenticateLayer`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};
use tower_auth_core::{AuthenticateLayer, Principal, RequireScopesLayer};
use tower_auth_jwt::remote::{Discovery, discover};
use tower_auth_jwt::{Algorithm, JwtAuthenticator, ServiceRule, TrustedIssuer};
use tower_auth_tests::{CC_CLIENT, client_credentials_token, loopback_client, op_url};

const RESOURCES: [(&str, &str); 3] = [
    ("urn:tower-auth:rs256", "rs256"),
    ("urn:tower-auth:es256", "es256"),
    ("urn:tower-auth:eddsa", "eddsa"),
];

fn authenticator(op: &str, audience: &str, keys: Discovery) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(op)
                .audience(audience)
                .algorithms([Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA])
                .require_access_token_type()
                .service_rule(ServiceRule::ClientCredentials)
                .key_source(keys),
        )
        .build()
        .unwrap()
}

async fn call(
    auth: &JwtAuthenticator,
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
    let req = Request::get("/items")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let mut res = svc.oneshot(req).await.unwrap();
    let principal = res.extensions_mut().remove::<Option<Principal>>().flatten();
    (res.status(), principal)
}

fn discovery(op: &str) -> Discovery {
    Discovery::builder(op)
        .insecure_allow_http(true)
        .build()
        .unwrap()
}

fn header_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn discovery_of_the_provider() {
    let op = op_url();
    let meta = discover(&loopback_client(), &op).await.unwrap();
    assert_eq!(meta.issuer(), op);
    assert_eq!(meta.jwks_uri(), Some(format!("{op}/jwks").as_str()));
    assert_eq!(meta.token_endpoint(), Some(format!("{op}/token").as_str()));
    assert_eq!(
        meta.introspection_endpoint(),
        Some(format!("{op}/token/introspection").as_str())
    );
    assert!(meta.authorization_endpoint().is_some());

    // The key source finds the provider's three signing keys, skipping nothing it needs.
    let keys = discovery(&op);
    keys.warm_up().await.unwrap();
    let set = keys.keys().unwrap();
    for (_, kid) in RESOURCES {
        assert!(set.get(kid).is_some(), "key {kid} loaded");
    }
    assert_eq!(keys.metadata().unwrap().issuer(), op);

    // The same issuer spelled differently is another issuer: discovery refuses it.
    let err = discover(&loopback_client(), &format!("{op}/")).await;
    assert!(err.is_err(), "a trailing slash names another issuer");
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn jwt_access_tokens_of_each_algorithm_are_accepted() {
    let op = op_url();
    for (resource, kid) in RESOURCES {
        // A cold source per resource: the first request loads the keys.
        let auth = authenticator(&op, resource, discovery(&op));
        let token = client_credentials_token(&op, resource, "read:items").await;
        let header = header_of(&token);
        assert_eq!(header["typ"], "at+jwt", "{resource}");
        assert_eq!(header["kid"], kid, "{resource}");

        let (status, principal) = call(&auth, "read:items", &token).await;
        assert_eq!(status, StatusCode::OK, "{resource}");
        let p = principal.unwrap();
        assert_eq!(p.subject(), CC_CLIENT.0);
        assert_eq!(p.issuer(), Some(op.as_str()));
        assert!(p.scopes().contains("read:items"));
        assert_eq!(p.kind(), tower_auth_core::PrincipalKind::Service);

        // Authenticated, but without the scope: 403.
        let (status, _) = call(&auth, "write:items", &token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{resource}");
    }
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn a_token_for_another_audience_is_rejected() {
    let op = op_url();
    let keys = discovery(&op);
    let auth = authenticator(&op, "urn:tower-auth:es256", keys.clone());
    // Signed by the same provider with a published key, but for another resource.
    let token = client_credentials_token(&op, "urn:tower-auth:rs256", "read:items").await;
    let (status, principal) = call(&auth, "read:items", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(principal.is_none());
    // It was refused on its audience, not for want of keys.
    assert!(keys.keys().unwrap().get("rs256").is_some());
    let right = authenticator(&op, "urn:tower-auth:rs256", keys);
    assert_eq!(call(&right, "read:items", &token).await.0, StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn a_tampered_provider_token_is_rejected() {
    let op = op_url();
    let auth = authenticator(&op, "urn:tower-auth:eddsa", discovery(&op));
    let token = client_credentials_token(&op, "urn:tower-auth:eddsa", "read:items").await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // Swap in the claims of a token with more scopes, keep the signature.
    let other =
        client_credentials_token(&op, "urn:tower-auth:eddsa", "read:items write:items").await;
    parts[1] = other.split('.').nth(1).unwrap().to_owned();
    let forged = parts.join(".");
    assert_eq!(
        call(&auth, "read:items", &forged).await.0,
        StatusCode::UNAUTHORIZED
    );
}
