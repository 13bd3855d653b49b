//! Claims mapping presets on realistic Keycloak, Auth0 and Azure AD access-token payloads.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use jsonwebtoken::Algorithm as J;
use serde::Deserialize;
use serde_json::{Value, json};
use tower_auth_core::PrincipalKind;
use tower_auth_jwt::{
    ClaimPath, Claims, ClaimsMapping, JwtAuthenticator, ServiceRule, TrustedIssuer,
};

fn auth_for(iss: &str, aud: &str, mapping: ClaimsMapping, rule: ServiceRule) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(iss)
                .audience(aud)
                .pem(data("rsa_public.pem"))
                .claims_mapping(mapping)
                .service_rule(rule),
        )
        .clock(clock())
        .build()
        .unwrap()
}

fn keycloak_user() -> Value {
    json!({
        "exp": NOW + 300, "iat": NOW - 5, "auth_time": NOW - 10,
        "jti": "0b6a6c1e-6f0c-4d5c-9f7e-1c2d3e4f5a6b",
        "iss": "https://sso.example.com/realms/acme",
        "aud": ["orders-api", "account"],
        "sub": "f3c1e2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f",
        "typ": "Bearer", "azp": "web-app", "session_state": "9a8b7c6d",
        "acr": "1", "allowed-origins": ["https://app.example.com"],
        "realm_access": { "roles": ["offline_access", "uma_authorization", "order-admin"] },
        "resource_access": {
            "orders-api": { "roles": ["orders.refund"] },
            "account": { "roles": ["manage-account", "view-profile"] }
        },
        "scope": "openid profile email orders:read",
        "sid": "9a8b7c6d", "email_verified": true,
        "name": "Alice Liddell", "preferred_username": "alice",
        "given_name": "Alice", "family_name": "Liddell", "email": "alice@example.com"
    })
}

#[tokio::test]
async fn keycloak_preset() {
    let iss = "https://sso.example.com/realms/acme";
    let auth = auth_for(
        iss,
        "orders-api",
        ClaimsMapping::keycloak().role_path(ClaimPath::new("resource_access.orders-api.roles")),
        ServiceRule::ClientCredentials,
    );
    let out = send_token(&auth, &mint(&keycloak_user(), &Signer::rs256())).await;
    let p = out.assert_ok();
    assert_eq!(p.subject(), "f3c1e2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f");
    assert_eq!(p.kind(), PrincipalKind::User);
    assert_eq!(p.issuer(), Some(iss));
    assert!(p.roles().contains("order-admin"));
    assert!(p.roles().contains("orders.refund"));
    assert!(!p.roles().contains("manage-account"));
    assert!(p.scopes().contains_all(["openid", "orders:read"]));
    assert_eq!(p.tenant(), None);

    // Handlers read their own typed view of the claims.
    #[derive(Deserialize)]
    struct KeycloakProfile<'a> {
        preferred_username: &'a str,
        email: String,
        email_verified: bool,
    }
    let claims = p.extension::<Claims>().unwrap();
    let profile: KeycloakProfile<'_> = claims.deserialize().unwrap();
    assert_eq!(profile.preferred_username, "alice");
    assert_eq!(profile.email, "alice@example.com");
    assert!(profile.email_verified);

    // A Keycloak service-account token: sub is the service account user, azp the client; the
    // client-credentials rule needs `client_id` == sub or no sub. Keycloak 24 sends client_id.
    let mut service = keycloak_user();
    service["sub"] = json!("service-account-billing");
    service["client_id"] = json!("service-account-billing");
    service["realm_access"] = json!({"roles": ["default-roles-acme"]});
    let p = send_token(&auth, &mint(&service, &Signer::rs256())).await;
    assert_eq!(p.assert_ok().kind(), PrincipalKind::Service);
}

#[tokio::test]
async fn auth0_preset() {
    let iss = "https://acme.eu.auth0.com/";
    let auth = auth_for(
        iss,
        "https://api.acme.example",
        ClaimsMapping::auth0().tenant_path(ClaimPath::new("org_id")),
        ServiceRule::ClaimEquals(ClaimPath::new("gty"), "client-credentials".into()),
    );
    let user = json!({
        "iss": iss,
        "sub": "auth0|64f1c2d3e4b5a6978899aabb",
        "aud": ["https://api.acme.example", "https://acme.eu.auth0.com/userinfo"],
        "iat": NOW - 5, "exp": NOW + 86_000,
        "azp": "Xk1y2Z3a4B5c6D7e8F9g0H1i2J3k4L5m",
        "scope": "openid profile read:orders",
        "org_id": "org_9Zq8Yp7Xo6Wn5Vm4",
        "permissions": ["read:orders", "refund:orders"],
        "https://acme.example/roles": ["support"]
    });
    let out = send_token(&auth, &mint(&user, &Signer::rs256())).await;
    let p = out.assert_ok();
    assert_eq!(p.subject(), "auth0|64f1c2d3e4b5a6978899aabb");
    assert!(p.roles().contains_all(["read:orders", "refund:orders"]));
    assert!(p.scopes().contains("read:orders"));
    assert_eq!(p.tenant(), Some("org_9Zq8Yp7Xo6Wn5Vm4"));
    assert_eq!(p.kind(), PrincipalKind::User);

    // A namespaced claim (dots in its name) is addressed with ClaimPath::key.
    let auth = auth_for(
        iss,
        "https://api.acme.example",
        ClaimsMapping::none().role_path(ClaimPath::key("https://acme.example/roles")),
        ServiceRule::Never,
    );
    let p = send_token(&auth, &mint(&user, &Signer::rs256())).await;
    assert!(p.assert_ok().roles().contains("support"));

    // Machine-to-machine token.
    let auth = auth_for(
        iss,
        "https://api.acme.example",
        ClaimsMapping::auth0(),
        ServiceRule::ClaimEquals(ClaimPath::new("gty"), "client-credentials".into()),
    );
    let m2m = json!({
        "iss": iss,
        "sub": "Xk1y2Z3a4B5c6D7e8F9g0H1i2J3k4L5m@clients",
        "aud": "https://api.acme.example",
        "iat": NOW - 5, "exp": NOW + 86_000,
        "gty": "client-credentials",
        "azp": "Xk1y2Z3a4B5c6D7e8F9g0H1i2J3k4L5m",
        "scope": "read:orders",
        "permissions": ["read:orders"]
    });
    let p = send_token(&auth, &mint(&m2m, &Signer::rs256())).await;
    let p = p.assert_ok();
    assert_eq!(p.kind(), PrincipalKind::Service);
    assert_eq!(p.subject(), "Xk1y2Z3a4B5c6D7e8F9g0H1i2J3k4L5m@clients");
}

#[tokio::test]
async fn azure_ad_preset() {
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let iss = format!("https://login.microsoftonline.com/{tid}/v2.0");
    let aud = "api://6e74172b-be56-4843-9ff4-e66a39bb12e3";
    let auth = auth_for(
        &iss,
        aud,
        ClaimsMapping::azure_ad(),
        ServiceRule::ClientCredentials,
    );
    let user = json!({
        "aud": aud, "iss": iss, "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 3600,
        "aio": "AXQAi/8TAAAA", "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "azpacr": "0",
        "name": "Abe Lincoln", "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        "preferred_username": "abeli@microsoft.com", "rh": "I",
        "roles": ["Orders.Admin"],
        "scp": "access_as_user Orders.Read",
        "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
        "tid": tid, "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0"
    });
    let out = send_token(&auth, &mint(&user, &Signer::rs256())).await;
    let p = out.assert_ok();
    assert_eq!(p.tenant(), Some(tid));
    assert!(p.roles().contains("Orders.Admin"));
    assert!(p.scopes().contains_all(["access_as_user", "Orders.Read"]));
    assert_eq!(p.kind(), PrincipalKind::User);

    // App-only token (client credentials): roles, no scp, idtyp=app, sub == oid.
    let app = json!({
        "aud": aud, "iss": iss, "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 3600,
        "azp": "0c3d1f6a-1b2c-4d5e-8f9a-0b1c2d3e4f5a", "azpacr": "1",
        "idtyp": "app", "oid": "a1b2c3d4-0000-4000-8000-000000000001",
        "roles": ["Orders.Read.All"],
        "sub": "a1b2c3d4-0000-4000-8000-000000000001",
        "tid": tid, "ver": "2.0"
    });
    let p = send_token(&auth, &mint(&app, &Signer::rs256())).await;
    let p = p.assert_ok();
    assert_eq!(p.kind(), PrincipalKind::Service);
    assert!(p.roles().contains("Orders.Read.All"));
    assert!(p.scopes().is_empty());

    // The object id as subject, on request.
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(iss.clone())
                .audience(aud)
                .pem(data("rsa_public.pem"))
                .claims_mapping(ClaimsMapping::azure_ad())
                .subject_claim(ClaimPath::new("oid")),
        )
        .clock(clock())
        .build()
        .unwrap();
    let p = send_token(&auth, &mint(&user, &Signer::rs256())).await;
    assert_eq!(
        p.assert_ok().subject(),
        "690222be-ff1a-4d56-abd1-7e4f7d38e474"
    );
}

#[tokio::test]
async fn scopes_from_scope_or_scp() {
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET),
        )
        .clock(clock())
        .build()
        .unwrap();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    let cases = [
        (json!({"scope": "a b  c"}), vec!["a", "b", "c"]),
        (json!({"scp": "a b"}), vec!["a", "b"]),
        (json!({"scp": ["a", "b", 3]}), vec!["a", "b"]),
        (json!({"scope": "a", "scp": ["b"]}), vec!["a"]),
        (json!({}), vec![]),
    ];
    for (extra, want) in cases {
        let mut c = without(claims(), "scope");
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let out = send_token(&auth, &mint(&c, &s)).await;
        let got: Vec<&str> = out.assert_ok().scopes().iter().collect();
        assert_eq!(got, want, "{extra}");
    }
}

#[tokio::test]
async fn default_mapping_and_kind() {
    let auth = JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISS)
                .audience(AUD)
                .hmac_secret(HMAC_SECRET),
        )
        .clock(clock())
        .build()
        .unwrap();
    let s = Signer::hmac(J::HS256, HMAC_SECRET);
    // Default: roles from `roles`, everyone a user, even without sub (client_id is the subject).
    let c = with(without(claims(), "sub"), "client_id", json!("billing"));
    let c = with(c, "roles", json!("auditor"));
    let out = send_token(&auth, &mint(&c, &s)).await;
    let p = out.assert_ok();
    assert_eq!(p.subject(), "billing");
    assert_eq!(p.kind(), PrincipalKind::User);
    assert!(p.roles().contains("auditor"));
}
