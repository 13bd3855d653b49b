//! The tower-auth quickstart server: every scheme composed in one axum service, on embedded
//! defaults.
//!
//! `cargo run -p quickstart` serves on `127.0.0.1:3000` with a SQLite database
//! `quickstart.db` in the working directory (created on first use). Manage API keys with the
//! embedded `keys` command (`cargo run -p quickstart -- keys create --owner me --scopes
//! "read:items"`). A running server sees what `keys` creates, revokes or rotates within about
//! 100 ms (the command says so on stderr).
//!
//! Routes:
//!
//! | route | needs |
//! |---|---|
//! | `GET /healthz` | nothing |
//! | `GET /metrics` | nothing (Prometheus text, `tower_auth_*` counters) |
//! | `GET /me` | any credential; the principal as JSON |
//! | `GET /items` | scope `read:items` |
//! | `POST /items` | scope `write:items` |
//! | `GET /admin` | scope `admin` |
//!
//! Credentials, in composition order (most specific first): API keys (`Authorization: Bearer
//! sk_...` or `X-API-Key`), then JWTs of the configured `[[issuers]]` (three-segment Bearer
//! values), then opaque tokens through RFC 7662 introspection when `[introspection]` is
//! configured. Every rejection follows the tower-auth response contract.
//!
//! Configuration (`quickstart serve --config FILE`, TOML, every key optional, unknown keys are
//! errors naming the key and value, exit code 2). `database` is `sqlite://PATH` (relative or
//! absolute) or a `postgres://` URL, for several instances sharing their keys:
//!
//! ```toml
//! listen = "127.0.0.1:3000"
//! database = "sqlite://quickstart.db"
//! insecure_allow_http = false        # plain-http issuers (loopback tests only)
//! api_key_prefix = "sk_test"
//!
//! [[issuers]]
//! issuer = "https://idp.example.com"
//! audiences = ["quickstart"]
//! # jwks_uri = "https://idp.example.com/jwks"   # absent: OIDC discovery from `issuer`
//! # algorithms = ["RS256", "ES256"]              # default: the asymmetric algorithms
//! # claims = "keycloak"                          # or "auth0", "azure"
//! # require_typ = "at+jwt"
//!
//! [introspection]
//! endpoint = "https://idp.example.com/token/introspection"
//! client_id = "quickstart"
//! client_secret = "..."
//! # auth_method = "post"                         # default "basic"
//!
//! [cache]
//! apikey_ttl = "30s"
//! apikey_negative_ttl = "10s"
//! jwks_refresh = "10m"                           # when the JWKS has no Cache-Control
//! jwks_cooldown = "30s"
//! introspection_ttl = "30s"
//! revocation_poll = "100ms"                      # SQLite's change feed; PostgreSQL pushes
//! ```
//!
//! The built-in issuer (see [`session`]) signs EdDSA access tokens (`iss` = `http://<listen>`,
//! `aud` = `quickstart`, 15 minutes) for the demo user `demo` / `demo`, keeps its keys and
//! refresh-token families in the database, and serves `/.well-known/jwks.json`,
//! `POST /auth/login`, `POST /auth/refresh` and `POST /auth/logout`, which need no other
//! credential. Its tokens are accepted as `Authorization: Bearer` or in the `access_token`
//! cookie.
//!
//! Revocation: every JWT is checked against a revocation list kept in memory and read from the
//! database at start (the server does not start without it). `POST /auth/logout-everywhere`,
//! with one of the built-in issuer's access tokens, ends every session of its user and every
//! access token issued to it until then. An administrator does the same from the command line,
//! or revokes one token by its `jti`:
//!
//! ```text
//! quickstart tokens --db sqlite://quickstart.db logout-everywhere --subject demo
//! quickstart tokens --db sqlite://quickstart.db revoke --jti <jti>
//! ```
//!
//! A running server applies what the command wrote within about 100 ms on SQLite (its change
//! feed, `cache.revocation_poll`), and within milliseconds on PostgreSQL, where every instance
//! is notified; the command says so. Tokens of external `[[issuers]]` can be revoked by `jti` too
//! (`--issuer`).

pub mod config;
pub mod session;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::handler::Handler;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_auth_apikey::{ApiKeyAuthenticator, PostgresStore, SqliteStore};
use tower_auth_core::{
    AuthenticateLayer, Authenticator, CacheConfig, Principal, RequireScopesLayer,
};
use tower_auth_jwt::issue::{self, JwtIssuer, RefreshTokens};
use tower_auth_jwt::remote::{Discovery, JwksUrl};
use tower_auth_jwt::revocation::{
    PostgresRevocationStore, RevocationList, RevocationStore, SqliteRevocationStore,
};
use tower_auth_jwt::{
    Algorithm, ClaimPath, ClaimsMapping, JwtAuthenticator, ServiceRule, TrustedIssuer,
};
use tower_auth_oauth::introspection::{ClientAuth, IntrospectionAuthenticator};

use crate::config::{Config, ConfigError};

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// Bad configuration (exit code 2).
    Config(String),
    /// The database could not be opened or migrated (exit code 1).
    Database(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) | Self::Database(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e.0)
    }
}

impl From<tower_auth_core::ConfigError> for StartError {
    fn from(e: tower_auth_core::ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}

/// Opens the API key store named by `config.database` and builds the authenticator.
pub async fn api_keys(config: &Config) -> Result<ApiKeyAuthenticator, StartError> {
    let mut cache = CacheConfig::builder();
    if let Some(ttl) = config.cache.apikey_ttl {
        cache = cache.ttl(ttl);
    }
    if let Some(ttl) = config.cache.apikey_negative_ttl {
        cache = cache.negative_ttl(ttl);
    }
    let cache = cache.build().map_err(|e| {
        let key = cache_key(e.setting());
        e.for_setting(key)
    })?;
    let opened = |e: &dyn std::fmt::Display| {
        StartError::Database(format!("cannot open database {}: {e}", config.database))
    };
    // Every environment's prefix is claimed, so a key of the other environment is rejected here
    // and never forwarded to the authorization server.
    let other = if config.api_key_prefix == "sk_live" {
        "sk_test"
    } else {
        "sk_live"
    };
    let builder = if config.database.starts_with("postgres://") {
        // Many instances: a shared store, revocations pushed to every instance by LISTEN/NOTIFY.
        ApiKeyAuthenticator::builder(
            PostgresStore::connect(&config.database)
                .await
                .map_err(|e| opened(&e))?,
        )
    } else {
        ApiKeyAuthenticator::builder(
            SqliteStore::connect(&config.database)
                .await
                .map_err(|e| opened(&e))?,
        )
    };
    Ok(builder
        .prefix(&config.api_key_prefix)
        .other_prefixes([other])
        .cache(cache)
        .build()?)
}

fn cache_key(setting: &str) -> &'static str {
    match setting {
        "negative_ttl" => "cache.apikey_negative_ttl",
        _ => "cache.apikey_ttl",
    }
}

fn introspection(config: &Config) -> Result<Option<IntrospectionAuthenticator>, StartError> {
    let Some(i) = &config.introspection else {
        return Ok(None);
    };
    let mut cache = CacheConfig::builder();
    if let Some(ttl) = config.cache.introspection_ttl {
        cache = cache.ttl(ttl);
    }
    let cache = cache
        .build()
        .map_err(|e| e.for_setting("cache.introspection_ttl"))?;
    let built = IntrospectionAuthenticator::builder(&i.endpoint)
        .client_id(&i.client_id)
        .client_secret(&i.client_secret)
        .client_auth(if i.auth_method == "post" {
            ClientAuth::ClientSecretPost
        } else {
            ClientAuth::ClientSecretBasic
        })
        .cache(cache)
        .insecure_allow_http(config.insecure_allow_http)
        .build()
        .map_err(|e| {
            let key = match e.setting() {
                "endpoint" => "introspection.endpoint",
                "client_id" => "introspection.client_id",
                "client_secret" => "introspection.client_secret",
                _ => "introspection",
            };
            e.for_setting(key)
        })?;
    Ok(Some(built))
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding applications): then ours only
            // renders what it sees, which is nothing, rather than failing to start.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The JWT authenticator: the built-in issuer (Bearer or the `access_token` cookie) and the
/// configured `[[issuers]]`, every token checked against `revocations`.
fn jwt(
    config: &Config,
    built_in: TrustedIssuer,
    revocations: RevocationList,
) -> Result<JwtAuthenticator, StartError> {
    let mut jwt = JwtAuthenticator::builder()
        .cookie(session::ACCESS_COOKIE)
        .revocation(revocations)
        .issuer(built_in);
    for (n, i) in config.issuers.iter().enumerate() {
        let key = |k: &str| format!("issuers[{n}].{k}");
        let bad = |k: &str, v: &str, why: String| {
            StartError::Config(format!("invalid `{}` = {v:?}: {why}", key(k)))
        };
        // `kind` is `service` for client-credentials tokens (no `sub`, or `sub` = `client_id`).
        let mut issuer = TrustedIssuer::new(&i.issuer).service_rule(ServiceRule::ClientCredentials);
        if i.audiences.is_empty() {
            return Err(bad(
                "audiences",
                "[]",
                "at least one audience is required".into(),
            ));
        }
        for a in &i.audiences {
            issuer = issuer.audience(a);
        }
        let algorithms = match &i.algorithms {
            None => Algorithm::ASYMMETRIC.to_vec(),
            Some(names) => names
                .iter()
                .map(|a| {
                    a.parse::<Algorithm>()
                        .map_err(|e| bad("algorithms", a, e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        issuer = issuer.algorithms(algorithms);
        if let Some(preset) = &i.claims {
            issuer = issuer.claims_mapping(match preset.as_str() {
                "keycloak" => ClaimsMapping::keycloak(),
                "auth0" => ClaimsMapping::auth0(),
                _ => ClaimsMapping::azure_ad(),
            });
        }
        match i.require_typ.as_deref() {
            None => {}
            Some("at+jwt" | "application/at+jwt") => issuer = issuer.require_access_token_type(),
            Some(other) => {
                return Err(bad(
                    "require_typ",
                    other,
                    "only \"at+jwt\" is supported".into(),
                ));
            }
        }
        let remote =
            |e: tower_auth_jwt::ConfigError| StartError::Config(format!("[[issuers]] #{n}: {e}"));
        macro_rules! tuned {
            ($b:expr) => {{
                let mut b = $b.insecure_allow_http(config.insecure_allow_http);
                if let Some(d) = config.cache.jwks_refresh {
                    b = b.default_refresh(d);
                }
                if let Some(d) = config.cache.jwks_cooldown {
                    b = b.unknown_kid_cooldown(d);
                }
                b
            }};
        }
        issuer = match &i.jwks_uri {
            Some(uri) => issuer.key_source(tuned!(JwksUrl::builder(uri)).build().map_err(remote)?),
            None => issuer.key_source(
                tuned!(Discovery::builder(&i.issuer))
                    .build()
                    .map_err(remote)?,
            ),
        };
        jwt = jwt.issuer(issuer);
    }
    jwt.build()
        .map_err(|e| StartError::Config(format!("[[issuers]]: {e}")))
}

/// The built-in issuer and the revocation list its tokens (and those of every configured
/// issuer) are checked against, both kept in the configured database.
#[derive(Debug, Clone)]
pub struct BuiltIn {
    /// The issuer: `iss` = `http://<listen>`, `aud` = `quickstart`.
    pub issuer: Arc<JwtIssuer>,
    /// The revocation list, loaded and kept current in the background.
    pub revocations: RevocationList,
}

/// The revocation list on `store`, not loaded yet.
fn revocation_list(
    config: &Config,
    store: impl RevocationStore,
) -> Result<RevocationList, StartError> {
    let mut list = RevocationList::builder(store);
    if let Some(poll) = config.cache.revocation_poll {
        list = list.poll_interval(poll);
    }
    // Only the poll interval comes from the configuration.
    list.build().map_err(|e| {
        StartError::Config(format!(
            "invalid `cache.revocation_poll` = {}: {}",
            e.value(),
            e.reason()
        ))
    })
}

/// The built-in issuer: `iss` = `http://<listen>`, `aud` = `quickstart`, EdDSA keys kept in the
/// database (so restarts keep validating earlier tokens), refresh tokens rotated on every use,
/// and its revocation list, loaded before this returns.
pub async fn built_in_issuer(config: &Config, url: &str) -> Result<BuiltIn, StartError> {
    let opened = |e: &dyn std::fmt::Display| {
        StartError::Database(format!("cannot open database {}: {e}", config.database))
    };
    let (builder, revocations) = if config.database.starts_with("postgres://") {
        let store = issue::PostgresStore::connect(&config.database)
            .await
            .map_err(|e| opened(&e))?;
        let revocations = PostgresRevocationStore::connect(&config.database)
            .await
            .map_err(|e| opened(&e))?;
        (
            JwtIssuer::builder(store.clone()).refresh_tokens(RefreshTokens::new(store)),
            revocation_list(config, revocations)?,
        )
    } else {
        let store = issue::SqliteStore::connect(&config.database)
            .await
            .map_err(|e| opened(&e))?;
        // The change feed's interval: how soon a revocation by another process applies here.
        let mut feed = SqliteRevocationStore::builder(config.database.as_str());
        if let Some(poll) = config.cache.revocation_poll {
            feed = feed.poll_interval(poll);
        }
        let revocations = feed.connect().await.map_err(|e| {
            match std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<tower_auth_core::ConfigError>())
            {
                Some(c) => StartError::Config(format!(
                    "invalid `cache.revocation_poll` = {}: {}",
                    c.value(),
                    c.reason()
                )),
                None => opened(&e),
            }
        })?;
        (
            JwtIssuer::builder(store.clone()).refresh_tokens(RefreshTokens::new(store)),
            revocation_list(config, revocations)?,
        )
    };
    revocations.load().await.map_err(|e| {
        StartError::Database(format!(
            "cannot read the revocation list from {}: {e}",
            config.database
        ))
    })?;
    let issuer = builder
        .issuer(url)
        .audience(AUDIENCE)
        .client_id("quickstart")
        .revocation_list(revocations.clone())
        .build()
        .map_err(|e| StartError::Config(e.to_string()))?;
    Ok(BuiltIn {
        issuer: Arc::new(issuer),
        revocations,
    })
}

/// The audience of the built-in issuer's tokens.
pub const AUDIENCE: &str = "quickstart";

/// The quickstart's router for a server listening on `addr`, with its authentication configured
/// from `config`.
pub async fn app(config: &Config, addr: SocketAddr) -> Result<Router, StartError> {
    let keys = api_keys(config).await?;
    let url = format!("http://{addr}");
    let BuiltIn {
        issuer,
        revocations,
    } = built_in_issuer(config, &url).await?;
    let built_in = TrustedIssuer::new(&url)
        .audience(AUDIENCE)
        .algorithms([Algorithm::EdDSA])
        .require_access_token_type()
        .claims_mapping(ClaimsMapping::none().role_path(ClaimPath::new("roles")))
        .service_rule(ServiceRule::ClientCredentials)
        .key_source(Arc::clone(&issuer));
    let auth = keys
        .or(jwt(config, built_in, revocations)?)
        .or(introspection(config)?);
    Ok(
        router(auth, session::authenticated_routes(Arc::clone(&issuer)))
            .merge(session::routes(issuer)),
    )
}

fn router<A>(auth: A, authenticated: Router) -> Router
where
    A: Authenticator + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
{
    let metrics = metrics_handle();
    let read = RequireScopesLayer::all_of(["read:items"]);
    let write = RequireScopesLayer::all_of(["write:items"]);
    let items = get((|| async { Json(serde_json::json!(["apple", "pear"])) }).layer(read))
        .post((|| async { (axum::http::StatusCode::CREATED, "created") }).layer(write));
    let admin = Router::new()
        .route("/admin", get(|| async { "welcome, admin" }))
        .route_layer(RequireScopesLayer::all_of(["admin"]));
    Router::new()
        .route("/me", get(|p: Principal| async move { Json(p) }))
        .route("/items", items)
        .merge(admin)
        .merge(authenticated)
        .route_layer(AuthenticateLayer::required(auth))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || async move { metrics.render() }))
}
