//! One API, two identity providers: a Keycloak realm for the company's staff and an Azure AD
//! tenant for a partner organisation. Each issuer has its own audience and its own claim mapping;
//! the token's `iss` selects the issuer *before* any signature work, and a token from an issuer
//! that is not configured is rejected without a key lookup.
//!
//! | issuer | audience | roles from | tenant from |
//! |---|---|---|---|
//! | Keycloak `https://sso.acme.test/realms/staff` | `inventory-api` | `realm_access.roles` | (none) |
//! | Azure AD `https://login.microsoftonline.com/<tid>/v2.0` | `api://inventory` | `roles` | `tid` |
//!
//! `GET /whoami` answers the principal (subject, issuer, tenant, roles) as JSON; `GET /stock`
//! needs role `inventory.read` (Azure app role) or `inventory-reader` (Keycloak realm role).
//!
//! Run it with `cargo run -p multi-tenant`; it prints one demo token per issuer. In production the
//! issuers' keys come from their JWKS (OIDC discovery) instead of the demo HMAC secrets.

use axum::routing::get;
use axum::{Json, Router};
use tower_auth_core::{AuthenticateLayer, Principal, RequireRolesLayer};
use tower_auth_jwt::{ClaimsMapping, JwtAuthenticator, TrustedIssuer};

/// The Keycloak realm's issuer.
pub const KEYCLOAK: &str = "https://sso.acme.test/realms/staff";
/// The partner's Azure AD tenant id.
pub const AZURE_TENANT: &str = "5e0e3a0e-1111-4c4c-9e9e-0123456789ab";

/// The Azure AD issuer of [`AZURE_TENANT`].
pub fn azure_issuer() -> String {
    format!("https://login.microsoftonline.com/{AZURE_TENANT}/v2.0")
}

/// The authenticator trusting both issuers.
pub fn authenticator(keycloak_secret: &[u8], azure_secret: &[u8]) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(KEYCLOAK)
                .audience("inventory-api")
                .hmac_secret(keycloak_secret)
                .claims_mapping(ClaimsMapping::keycloak()),
        )
        .issuer(
            TrustedIssuer::new(azure_issuer())
                .audience("api://inventory")
                .hmac_secret(azure_secret)
                .claims_mapping(ClaimsMapping::azure_ad()),
        )
        .build()
        .expect("static configuration is valid")
}

async fn whoami(p: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "subject": p.subject(),
        "issuer": p.issuer(),
        "tenant": p.tenant(),
        "roles": p.roles().iter().collect::<Vec<_>>(),
    }))
}

/// The application.
pub fn app(auth: JwtAuthenticator) -> Router {
    let stock = Router::new()
        .route("/stock", get(|| async { "42 crates\n" }))
        .route_layer(RequireRolesLayer::any_of([
            "inventory.read",
            "inventory-reader",
        ]));
    Router::new()
        .route("/whoami", get(whoami))
        .merge(stock)
        .route_layer(AuthenticateLayer::required(auth))
}

/// Mints a demo token signed with `secret` (HS256) carrying `claims` plus an hour of validity.
pub fn mint(secret: &[u8], mut claims: serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    claims["iat"] = now.into();
    claims["exp"] = (now + 3600).into();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

/// A Keycloak-shaped staff token.
pub fn keycloak_token(secret: &[u8], user: &str, roles: &[&str]) -> String {
    mint(
        secret,
        serde_json::json!({
            "iss": KEYCLOAK, "aud": "inventory-api", "sub": user, "azp": "inventory-web",
            "preferred_username": user, "realm_access": { "roles": roles },
            "scope": "openid profile",
        }),
    )
}

/// An Azure AD-shaped partner token.
pub fn azure_token(secret: &[u8], oid: &str, roles: &[&str]) -> String {
    mint(
        secret,
        serde_json::json!({
            "iss": azure_issuer(), "aud": "api://inventory", "sub": oid, "oid": oid,
            "tid": AZURE_TENANT, "roles": roles, "ver": "2.0",
        }),
    )
}
