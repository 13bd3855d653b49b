//! Both issuers through one layer; tokens of one issuer are not accepted with the other's key
//! or audience.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use multi_tenant::{
    AZURE_TENANT, KEYCLOAK, app, authenticator, azure_issuer, azure_token, keycloak_token, mint,
};
use tower::ServiceExt;

const KC: &[u8] = b"test secret of the keycloak realm!!";
const AZ: &[u8] = b"test secret of the azure ad tenant!!";

async fn get(path: &str, token: &str) -> (StatusCode, serde_json::Value) {
    let res = app(authenticator(KC, AZ))
        .oneshot(
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn each_issuer_maps_its_own_claims() {
    let (status, me) = get(
        "/whoami",
        &keycloak_token(KC, "carol", &["inventory-reader"]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["issuer"], KEYCLOAK);
    assert_eq!(me["roles"], serde_json::json!(["inventory-reader"]));
    assert_eq!(me["tenant"], serde_json::Value::Null);

    let (status, me) = get("/whoami", &azure_token(AZ, "oid-1", &["inventory.read"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["issuer"], azure_issuer());
    assert_eq!(me["tenant"], AZURE_TENANT);
    assert_eq!(me["roles"], serde_json::json!(["inventory.read"]));
}

#[tokio::test]
async fn roles_gate_the_stock_route() {
    assert_eq!(
        get("/stock", &azure_token(AZ, "oid-1", &["inventory.read"]))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        get(
            "/stock",
            &keycloak_token(KC, "carol", &["inventory-reader"])
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        get("/stock", &keycloak_token(KC, "dave", &["other"]))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn issuers_do_not_cross() {
    // Signed with the other issuer's key.
    assert_eq!(
        get("/whoami", &keycloak_token(AZ, "carol", &[])).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The Azure audience on a Keycloak token.
    let token = mint(
        KC,
        serde_json::json!({"iss": KEYCLOAK, "aud": "api://inventory", "sub": "x"}),
    );
    assert_eq!(get("/whoami", &token).await.0, StatusCode::UNAUTHORIZED);
    // An issuer nobody configured.
    let token = mint(
        KC,
        serde_json::json!({"iss": "https://evil.test", "aud": "inventory-api", "sub": "x"}),
    );
    assert_eq!(get("/whoami", &token).await.0, StatusCode::UNAUTHORIZED);
}
