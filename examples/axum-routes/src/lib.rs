//! tower-auth with axum: a different scheme per route.
//!
//! | route | who may call it |
//! |---|---|
//! | `GET /reports` | machines with an **API key** holding scope `reports:read` |
//! | `GET /profile` | **users with a JWT**, role `user` |
//! | `GET /orders` | **either**: an API key or a JWT, with scope `orders:read` |
//! | `GET /admin` | users with a JWT and role `admin` |
//! | `GET /healthz` | anyone |
//!
//! Each route group gets its own `route_layer`: the authentication layer decides *who* is
//! calling, the requirement layers inside it decide *whether they may*. For `/orders` the schemes
//! are composed with `or`, API keys first (they claim `sk_...` values; JWT claims three-segment
//! tokens), so each credential goes to the scheme its shape belongs to.
//!
//! Run it with `cargo run -p axum-routes`; it prints a demo API key, demo tokens and a curl line
//! per route.

use axum::Router;
use axum::routing::get;
use tower_auth_apikey::ApiKeyAuthenticator;
use tower_auth_core::{
    AuthenticateLayer, Authenticator, Principal, RequireRolesLayer, RequireScopesLayer,
};
use tower_auth_jwt::{ClaimsMapping, JwtAuthenticator, TrustedIssuer};

/// The issuer of the demo tokens.
pub const ISSUER: &str = "https://login.example.test";
/// The audience of this API.
pub const AUDIENCE: &str = "axum-routes";

/// A JWT authenticator for tokens signed with `secret` by [`ISSUER`], roles from a Keycloak-style
/// `realm_access.roles` claim.
pub fn jwt(secret: &[u8]) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(
            TrustedIssuer::new(ISSUER)
                .audience(AUDIENCE)
                .hmac_secret(secret)
                .claims_mapping(ClaimsMapping::keycloak()),
        )
        .build()
        .expect("static configuration is valid")
}

async fn whoami(p: Principal) -> String {
    format!("{} via {}\n", p.subject(), p.scheme())
}

/// The application: one router, a scheme per route.
pub fn app(keys: ApiKeyAuthenticator, jwt: JwtAuthenticator) -> Router {
    let reports = Router::new()
        .route("/reports", get(whoami))
        .route_layer(RequireScopesLayer::all_of(["reports:read"]))
        .route_layer(AuthenticateLayer::required(keys.clone()));
    let profile = Router::new()
        .route("/profile", get(whoami))
        .route_layer(RequireRolesLayer::any_of(["user", "admin"]))
        .route_layer(AuthenticateLayer::required(jwt.clone()));
    let admin = Router::new()
        .route("/admin", get(whoami))
        .route_layer(RequireRolesLayer::all_of(["admin"]))
        .route_layer(AuthenticateLayer::required(jwt.clone()));
    let orders = Router::new()
        .route("/orders", get(whoami))
        .route_layer(RequireScopesLayer::all_of(["orders:read"]))
        .route_layer(AuthenticateLayer::required(keys.or(jwt)));
    Router::new()
        .merge(reports)
        .merge(profile)
        .merge(admin)
        .merge(orders)
        .route("/healthz", get(|| async { "ok\n" }))
}

/// Mints a demo token as the identity provider would (HS256).
pub fn mint(secret: &[u8], sub: &str, scope: &str, roles: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 3600,
        "scope": scope, "realm_access": { "roles": roles },
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}
