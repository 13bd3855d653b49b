//! The tower-auth quickstart server: every scheme composed in one axum service, on embedded
//! defaults.
//!
//! `cargo run -p quickstart` serves on `127.0.0.1:3000` with a SQLite database
//! `quickstart.db` in the working directory (created on first use). Manage API keys with the
//! embedded `keys` command (`cargo run -p quickstart -- keys create --owner me --scopes
//! "read:items"`). A running server sees what `keys` creates, revokes or rotates within about
//! 100 ms (the command says so on stderr).
//!
//! Command line: `quickstart [serve | keys ... | tokens ...]`, `serve` by default, with three
//! global options valid before or after any command: `--config FILE` (the TOML file below),
//! `--listen ADDR` (instead of the file's `listen`) and `--db URL` (instead of its `database`);
//! also read from `QUICKSTART_CONFIG`, `QUICKSTART_LISTEN` and `QUICKSTART_DB`. Every command
//! checks the whole configuration first; `serve` then binds its port (a busy port is reported
//! as such, with the option to choose another), opens the database, prints its address and
//! the built-in issuer's URL, and serves.
//!
//! Each request is logged on stderr by tower-http's trace layer: method, path (never the query
//! string), status, latency, and the principal's subject and scheme (never a credential),
//! filtered by `RUST_LOG` (default `info`; `RUST_LOG=debug` adds each rejection's reason, on
//! the `tower_auth` target). Rejections are RFC 9457 problem documents
//! (`application/problem+json`, tower-auth-core's `ProblemRejection`), with the response
//! contract's status and challenge.
//!
//! API keys' limits apply with no configuration: a key created with
//! `keys create ... --rate 100/1s --burst 200 --credits 10000 --refill 10000/30d` (or changed
//! with `keys update KEY_ID ...`, seen by running servers like a revocation) gets 429, a
//! problem document with `Retry-After` and the `RateLimit-Policy` / `RateLimit` headers, once
//! over them, on every route and at the forward-authentication endpoint alike (its requests
//! count like any other). Allowed API responses carry the same headers with what remains (see
//! tower-auth-apikey's `limit` module).
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
//! | `forward_auth.path` (default `/forward-auth`), `forward_auth.envoy_prefix/...` | the `[forward_auth]` rules (below) |
//!
//! Credentials, in composition order (most specific first): API keys (`Authorization: Bearer
//! sk_...` or `X-API-Key`), then JWTs of the configured `[[issuers]]` (three-segment Bearer
//! values), then opaque tokens through RFC 7662 introspection when `[introspection]` is
//! configured. Every rejection follows the tower-auth response contract. DPoP-bound tokens
//! (RFC 9449, `Authorization: DPoP` with a `DPoP` proof) are accepted on every protected route
//! beside them; see "DPoP" below.
//!
//! Configuration (`--config FILE`, TOML, every key optional). Errors, unknown keys included,
//! are reported in one format, `FILE: invalid `KEY` = VALUE: REASON` with the key's path as
//! written (`issuers[0].claims`), and exit with code 2. `database` is `sqlite://PATH`
//! (relative or absolute) or a `postgres://` URL, for several instances sharing their keys:
//!
//! ```toml
//! listen = "127.0.0.1:3000"
//! # public_url = "https://api.example.com"     # the built-in issuer's URL; default http://<listen>
//! database = "sqlite://quickstart.db"
//! insecure_allow_http = false        # plain-http issuers (loopback tests only)
//! api_key_prefix = "sk_test"
//! # dpop_nonce = true                          # DPoP server nonces, off by default
//! # dpop_nonce_secret = "..."                  # with dpop_nonce: 32+ bytes, the same everywhere
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
//! audiences = ["https://api.example.com"]      # required: an answer for another API is refused
//! # insecure_accept_any_audience = true          # instead of `audiences`: `aud` unchecked
//! # issuer = "https://idp.example.com"           # when set, the answer's `iss` must match
//! # auth_method = "post"                         # default "basic"
//!
//! [cache]
//! apikey_ttl = "30s"
//! apikey_negative_ttl = "10s"
//! jwks_refresh = "10m"                           # when the JWKS has no Cache-Control
//! jwks_cooldown = "30s"
//! introspection_ttl = "30s"
//! revocation_poll = "100ms"                      # SQLite's change feed; PostgreSQL pushes
//!
//! [forward_auth]                                 # see "Forward authentication" below
//! path = "/forward-auth"                         # default; answers every method
//! # grpc_listen = "127.0.0.1:50051"              # optional: the Envoy gRPC Check API
//! envoy_prefix = "/forward-auth/envoy"           # default: Envoy's HTTP mode (`path_prefix`)
//!
//! [[forward_auth.rules]]
//! path_prefix = "/api/"                          # or: path = "/exact"
//! methods = ["GET", "HEAD"]                      # optional, default any
//! schemes = ["api_key", "jwt"]                   # optional, default every configured scheme
//! scopes = ["read:items"]                        # optional, all required
//! # roles = ["admin"]                            # optional, all required
//! # anonymous = false                            # let requests without any credential through
//! ```
//!
//! The `[[issuers]]`' metadata (OIDC discovery) and keys are fetched lazily, at the first token
//! of each issuer, and kept current in the background: the server starts without any network
//! call, and an issuer that is down fails only its own tokens (503).
//!
//! The built-in issuer (see [`session`]) signs EdDSA access tokens (`iss` = its URL:
//! `public_url` when configured, else `http://<listen>`, one rule for the server and the
//! `tokens` commands alike; `aud` = `quickstart`, 15 minutes) for the demo user `demo` / `demo`, keeps its keys and
//! refresh-token families in the database, and serves `/.well-known/jwks.json`,
//! `POST /auth/login`, `POST /auth/refresh` and `POST /auth/logout`, which need no other
//! credential. Its tokens are accepted as `Authorization: Bearer` or in the
//! `__Host-access_token` cookie (`?mode=cookie`). The refresh token travels in the
//! `__Secure-refresh_token` cookie, sent only to `/auth`. Browsers keep prefixed cookies only
//! when they were set `Secure` from a secure origin: `https://`, or `http://127.0.0.1` and
//! `http://localhost`, which browsers treat as secure, so the cookies work on a loopback
//! quickstart over plain http; on another plain-http host a browser drops them. `curl` sends
//! them over plain http too. `/auth/refresh`, `/auth/logout` and every state-changing route
//! called with the access-token cookie refuse cross-site requests (`Sec-Fetch-Site` other than
//! `same-origin`/`none`, or an `Origin` of another host) with 403.
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
//! They write for the built-in issuer's URL by the same rule as the server, so give them the
//! server's `--config` or `--listen`. With `listen` on port 0 and no `public_url` only the
//! running server knows its URL: the commands refuse (exit 2) and ask for `--listen` with the
//! address it printed. A login right after a log out everywhere, in the same second too, gives
//! a token that is accepted (see tower-auth-jwt's `JwtIssuer::logout_everywhere`).
//!
//! A running server applies what the command wrote within about 100 ms on SQLite (its change
//! feed, `cache.revocation_poll`), and within milliseconds on PostgreSQL, where every instance
//! is notified; the command says so. Tokens of external `[[issuers]]` can be revoked by `jti` too
//! (`--issuer`).
//!
//! # DPoP
//!
//! A login or refresh with a `DPoP` proof (RFC 9449 section 5; `htm` `POST`, `htu` the route's
//! URL) gets an access token bound to the proof key (`cnf.jkt`, `"token_type": "DPoP"`), and
//! the session's refresh tokens are bound too: a refresh without a proof by that key is
//! refused, without consuming the refresh token. A session that started without a proof stays
//! unbound. A bad proof at these routes is 400 with an RFC 6749 error body
//! (`{"error": "invalid_dpop_proof", ...}`); `?mode=cookie` with a proof is 400
//! `invalid_request` (a cookie is sent by the browser whoever holds the key).
//!
//! The protected routes take `Authorization: DPoP <token>` with a fresh proof per request (its
//! `ath` the token's hash); `/me` reports such a principal with scheme `jwt`. A bound token sent
//! as Bearer is refused. Every 401 carries `Bearer realm="api"` first, then
//! `DPoP algs="ES256 ES384 EdDSA PS256 RS256"`. With `[introspection]`, an opaque token the
//! authorization server bound to a DPoP key (`cnf.jkt` in its answer) is accepted the same way
//! (and refused as Bearer). `htu` is compared with the built-in issuer's URL
//! (`public_url`, else `http://<listen>`) followed by the request path: set `public_url` when
//! clients reach the server through a proxy. Each instance keeps its own replay cache of proof
//! identifiers; with several instances, turn on `dpop_nonce = true` with one
//! `dpop_nonce_secret` for all of them: every proof must then carry a recent server nonce
//! (`use_dpop_nonce` and a `DPoP-Nonce` header tell the client which), which any instance
//! accepts.
//!
//! # Forward authentication
//!
//! With `[forward_auth]`, services in any language behind a proxy use the same API keys,
//! tokens and caches: the proxy asks `forward_auth.path` about each request (tower-auth-forward's
//! `ForwardAuth`; see that crate's docs for the rules and every answer). Allowed: 200, an empty
//! body and the identity headers `X-Auth-Subject`, `X-Auth-Scheme` (`api_key`, `jwt`,
//! `introspection`), `X-Auth-Scopes` and `X-Auth-Roles` (space separated, left out when
//! empty) and `X-Auth-Tenant` (when the principal has one); none on an anonymous pass. Refused:
//! the response contract's status and `WWW-Authenticate`. A path no rule covers is 403. Rules
//! match the decoded, normalised path; an ambiguous path (`%2F`, `//`, `;`, a NUL) is 400.
//!
//! nginx (`auth_request`, in Debian's package), in front of an upstream on `127.0.0.1:8080`,
//! with the quickstart on `127.0.0.1:3000`; this server block is tested against a real nginx
//! (`tests/forward.rs`). It maps 400, 429 and 503 through (`auth_request` alone turns them into
//! 500) and overwrites any identity header a client sends:
//!
//! ```nginx
#![doc = include_str!("../../../tower-auth-forward/proxy/nginx.conf")]
//! ```
//!
//! Traefik (untested: Traefik is not available from the package registries this project
//! tests with):
//!
//! ```yaml
//! http:
//!   middlewares:
//!     tower-auth:
//!       forwardAuth:
//!         address: "http://127.0.0.1:3000/forward-auth"
//!         trustForwardHeader: false
//!         authResponseHeaders:
//!           [X-Auth-Subject, X-Auth-Scheme, X-Auth-Scopes, X-Auth-Roles, X-Auth-Tenant]
//! ```
//!
//! Strip `X-Auth-*` from client requests with a `headers` middleware before this one: an
//! answer that leaves a header out may not remove the client's.
//!
//! Envoy (untested: not available from the registries either), gRPC mode with
//! `grpc_listen = "127.0.0.1:50051"` (its `Check` is tested with a tonic client):
//!
//! ```yaml
//! http_filters:
//!   - name: envoy.filters.http.ext_authz
//!     typed_config:
//!       "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
//!       transport_api_version: V3
//!       failure_mode_allow: false
//!       grpc_service:
//!         envoy_grpc:
//!           cluster_name: quickstart_grpc   # a cluster pointing at 127.0.0.1:50051 (HTTP/2)
//!         timeout: 2s
//! ```
//!
//! or HTTP mode on `envoy_prefix`:
//!
//! ```yaml
//!       http_service:
//!         server_uri: { uri: "http://127.0.0.1:3000", cluster: quickstart, timeout: 2s }
//!         path_prefix: /forward-auth/envoy
//!         authorization_request:
//!           allowed_headers:
//!             patterns: [{ exact: authorization }, { exact: x-api-key }, { exact: cookie }]
//!         authorization_response:
//!           allowed_upstream_headers: { patterns: [{ prefix: x-auth- }] }
//!           allowed_client_headers:
//!             patterns: [{ exact: www-authenticate }, { exact: retry-after }]
//! ```
//!
//! In HTTP mode, remove client `X-Auth-*` headers on the route (`request_headers_to_remove`);
//! the gRPC answer removes them itself. The endpoint must be reachable only by the proxy, and
//! the upstream only through the proxy.

pub mod config;
pub mod dpop;
pub mod forward;
pub mod session;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::handler::Handler;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_auth_apikey::{ApiKeyAuthenticator, PostgresStore, SqliteStore};
use tower_auth_core::{
    AuthenticateLayer, Authenticator, CacheConfig, Principal, ProblemRejection, RequireScopesLayer,
};
use tower_auth_jwt::issue::{self, JwtIssuer, RefreshTokens};
use tower_auth_jwt::remote::{Discovery, JwksUrl};
use tower_auth_jwt::revocation::{
    PostgresRevocationStore, RevocationList, RevocationStore, SqliteRevocationStore,
};
use tower_auth_jwt::{
    Algorithm, ClaimPath, ClaimsMapping, JwtAuthenticator, ServiceRule, TrustedIssuer,
};
use tower_auth_oauth::dpop::DpopIntrospection;
use tower_auth_oauth::introspection::{ClientAuth, IntrospectionAuthenticator};

use crate::config::{Config, ConfigError};

/// Why the server or a command could not start.
#[derive(Debug)]
pub enum StartError {
    /// Bad configuration (exit code 2).
    Config(ConfigError),
    /// The listening address could not be bound (exit code 1): in use, or not allowed.
    Listen(String),
    /// The database could not be opened or migrated (exit code 1).
    Database(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Listen(e) | Self::Database(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

/// A setting a library builder refused: the core's and the JWT crate's configuration errors.
trait Refusal {
    fn setting(&self) -> &str;
    fn value(&self) -> &str;
    fn reason(&self) -> &str;
}

impl Refusal for tower_auth_core::ConfigError {
    fn setting(&self) -> &str {
        self.setting()
    }
    fn value(&self) -> &str {
        self.value()
    }
    fn reason(&self) -> &str {
        self.reason()
    }
}

impl Refusal for tower_auth_jwt::ConfigError {
    fn setting(&self) -> &str {
        self.setting()
    }
    fn value(&self) -> &str {
        self.value()
    }
    fn reason(&self) -> &str {
        self.reason()
    }
}

/// A library's refusal of a value of the file, reported under the file's `key`, with the value
/// as the file wrote it when known.
fn refused(key: impl Into<String>, written: Option<String>, e: &dyn Refusal) -> ConfigError {
    let value = written.unwrap_or_else(|| format!("{:?}", e.value()));
    let reason = match e.setting() {
        // The library names its own setting when it is not the one the file wrote.
        "url" | "endpoint" | "issuer" | "ttl" | "negative_ttl" | "poll_interval" => {
            e.reason().to_owned()
        }
        other => format!("{other}: {}", e.reason()),
    };
    ConfigError::new(key, Some(value), reason)
}

/// A duration as the file would write it.
fn written(d: Duration) -> String {
    format!("{:?}", humantime::format_duration(d).to_string())
}

fn api_key_cache(config: &Config) -> Result<CacheConfig, ConfigError> {
    let c = &config.cache;
    let mut cache = CacheConfig::builder();
    if let Some(ttl) = c.apikey_ttl {
        cache = cache.ttl(ttl);
    }
    if let Some(ttl) = c.apikey_negative_ttl {
        cache = cache.negative_ttl(ttl);
    }
    cache.build().map_err(|e| {
        let (key, value) = match e.setting() {
            "negative_ttl" => ("cache.apikey_negative_ttl", c.apikey_negative_ttl),
            _ => ("cache.apikey_ttl", c.apikey_ttl),
        };
        refused(key, value.map(written), &e)
    })
}

/// Opens the API key store named by `config.database` and builds the authenticator.
pub async fn api_keys(config: &Config) -> Result<ApiKeyAuthenticator, StartError> {
    let cache = api_key_cache(config)?;
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
    builder
        .prefix(&config.api_key_prefix)
        .other_prefixes([other])
        .cache(cache)
        .build()
        .map_err(|e| refused("api_key_prefix", None, &e).into())
}

fn introspection(config: &Config) -> Result<Option<IntrospectionAuthenticator>, ConfigError> {
    let Some(i) = &config.introspection else {
        return Ok(None);
    };
    let mut cache = CacheConfig::builder();
    if let Some(ttl) = config.cache.introspection_ttl {
        cache = cache.ttl(ttl);
    }
    let cache = cache.build().map_err(|e| {
        refused(
            "cache.introspection_ttl",
            config.cache.introspection_ttl.map(written),
            &e,
        )
    })?;
    let built = IntrospectionAuthenticator::builder(&i.endpoint)
        .client_id(&i.client_id)
        .client_secret(&i.client_secret)
        .client_auth(if i.auth_method == "post" {
            ClientAuth::ClientSecretPost
        } else {
            ClientAuth::ClientSecretBasic
        })
        .cache(cache)
        .audiences(i.audiences.iter().flatten())
        .insecure_accept_any_audience(i.insecure_accept_any_audience)
        .insecure_allow_http(config.insecure_allow_http);
    let built = match &i.issuer {
        Some(issuer) => built.issuer(issuer),
        None => built,
    };
    let built = built.build().map_err(|e| match e.setting() {
        "client_id" => refused("introspection.client_id", None, &e),
        "audiences" => refused(
            "introspection.audiences",
            i.audiences
                .as_ref()
                .map(|a| toml::Value::from(a.clone()).to_string()),
            &e,
        ),
        "insecure_accept_any_audience" => {
            refused("introspection.insecure_accept_any_audience", None, &e)
        }
        // Never echo the secret.
        "client_secret" => ConfigError::new(
            "introspection.client_secret",
            Some("\"...\"".into()),
            e.reason(),
        ),
        _ => refused(
            "introspection.endpoint",
            Some(format!("{:?}", i.endpoint)),
            &e,
        ),
    })?;
    Ok(Some(built))
}

/// The configured `[[issuers]]`, with their key sources (nothing fetched yet: metadata and
/// keys are fetched at the first token of each issuer).
fn external_issuers(config: &Config) -> Result<Vec<TrustedIssuer>, ConfigError> {
    let mut issuers = Vec::with_capacity(config.issuers.len());
    for (n, i) in config.issuers.iter().enumerate() {
        let key = |k: &str| format!("issuers[{n}].{k}");
        // `kind` is `service` for client-credentials tokens (no `sub`, or `sub` = `client_id`).
        let mut issuer = TrustedIssuer::new(&i.issuer).service_rule(ServiceRule::ClientCredentials);
        for a in &i.audiences {
            issuer = issuer.audience(a);
        }
        let algorithms = match &i.algorithms {
            None => Algorithm::ASYMMETRIC.to_vec(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(k, a)| {
                    a.parse::<Algorithm>().map_err(|e| {
                        ConfigError::string(
                            format!("issuers[{n}].algorithms[{k}]"),
                            a,
                            e.to_string(),
                        )
                    })
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
        if i.require_typ.is_some() {
            issuer = issuer.require_access_token_type();
        }
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
        let remote = |e: tower_auth_jwt::ConfigError| match e.setting() {
            "default_refresh" => refused(
                "cache.jwks_refresh",
                config.cache.jwks_refresh.map(written),
                &e,
            ),
            "unknown_kid_cooldown" => refused(
                "cache.jwks_cooldown",
                config.cache.jwks_cooldown.map(written),
                &e,
            ),
            _ => match &i.jwks_uri {
                Some(uri) => refused(key("jwks_uri"), Some(format!("{uri:?}")), &e),
                None => refused(key("issuer"), Some(format!("{:?}", i.issuer)), &e),
            },
        };
        issuer = match &i.jwks_uri {
            Some(uri) => issuer.key_source(tuned!(JwksUrl::builder(uri)).build().map_err(remote)?),
            None => issuer.key_source(
                tuned!(Discovery::builder(&i.issuer))
                    .build()
                    .map_err(remote)?,
            ),
        };
        issuers.push(issuer);
    }
    Ok(issuers)
}

/// Everything the configuration decides that can be checked without the database or the
/// network: built by [`Prepared::new`] before the server binds its port, so that every
/// configuration error is reported as such, whatever the state of the port.
#[derive(Debug)]
pub struct Prepared {
    issuers: Vec<TrustedIssuer>,
    introspection: Option<IntrospectionAuthenticator>,
}

impl Prepared {
    /// Checks and builds the parts of `config` that need neither the database nor the network.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        api_key_cache(config)?;
        // The revocation list's settings, checked on a list that is never loaded.
        revocation_list(
            config,
            tower_auth_jwt::revocation::MemoryRevocationStore::new(),
        )?;
        forward::check(config)?;
        Ok(Self {
            issuers: external_issuers(config)?,
            introspection: introspection(config)?,
        })
    }
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
            // HELP texts for the `/metrics` page (each also describes tower-auth-core's).
            tower_auth_apikey::describe_metrics();
            tower_auth_oauth::describe_metrics();
            tower_auth_jwt::describe_metrics();
            handle
        })
        .clone()
}

/// The JWT authenticator: the built-in issuer (Bearer or the `access_token` cookie) and the
/// configured `[[issuers]]`, every token checked against `revocations`.
fn jwt(
    issuers: Vec<TrustedIssuer>,
    built_in: TrustedIssuer,
    revocations: RevocationList,
) -> Result<JwtAuthenticator, ConfigError> {
    let mut jwt = JwtAuthenticator::builder()
        .cookie(session::ACCESS_COOKIE)
        .revocation(revocations)
        .issuer(built_in);
    for issuer in issuers {
        jwt = jwt.issuer(issuer);
    }
    jwt.build().map_err(|e| refused("issuers", None, &e))
}

/// The built-in issuer and the revocation list its tokens (and those of every configured
/// issuer) are checked against, both kept in the configured database.
#[derive(Debug, Clone)]
pub struct BuiltIn {
    /// The issuer: `iss` = its URL, `aud` = `quickstart`.
    pub issuer: Arc<JwtIssuer>,
    /// The revocation list, loaded and kept current in the background.
    pub revocations: RevocationList,
}

/// The revocation list on `store`, not loaded yet.
fn revocation_list(
    config: &Config,
    store: impl RevocationStore,
) -> Result<RevocationList, ConfigError> {
    let mut list = RevocationList::builder(store);
    if let Some(poll) = config.cache.revocation_poll {
        list = list.poll_interval(poll);
    }
    // Only the poll interval comes from the configuration.
    list.build().map_err(|e| {
        refused(
            "cache.revocation_poll",
            config.cache.revocation_poll.map(written),
            &e,
        )
    })
}

/// The built-in issuer: `iss` = `url`, `aud` = `quickstart`, EdDSA keys kept in the database
/// (so restarts keep validating earlier tokens), refresh tokens rotated on every use, and its
/// revocation list, loaded before this returns. `url` follows the one rule of
/// [`Config::built_in_issuer_url`] (`public_url`, else `http://<listen>`).
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
                Some(c) => StartError::Config(config::ConfigError::new(
                    "cache.revocation_poll",
                    Some(c.value().to_owned()),
                    c.reason(),
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
        .map_err(|e| refused("public_url", Some(format!("{url:?}")), &e))?;
    Ok(BuiltIn {
        issuer: Arc::new(issuer),
        revocations,
    })
}

/// The audience of the built-in issuer's tokens.
pub const AUDIENCE: &str = "quickstart";

/// The quickstart's router for a server listening on `addr`, with its authentication configured
/// from `config`; the built-in issuer's URL is `public_url`, else `http://<addr>`.
pub async fn app(config: &Config, addr: SocketAddr) -> Result<Router, StartError> {
    let prepared = Prepared::new(config)?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    app_prepared(config, prepared, &url).await
}

/// The quickstart's router from a configuration already checked by [`Prepared::new`], with the
/// built-in issuer at `url`: opens the database, loads the revocation list.
pub async fn app_prepared(
    config: &Config,
    prepared: Prepared,
    url: &str,
) -> Result<Router, StartError> {
    app_serving(config, prepared, url, None).await
}

/// [`app_prepared`], and Envoy's gRPC `Authorization/Check` API (`[forward_auth]`) served on
/// `grpc`, bound by the caller at `forward_auth.grpc_listen`, in a background task.
pub async fn app_serving(
    config: &Config,
    prepared: Prepared,
    url: &str,
    grpc: Option<tokio::net::TcpListener>,
) -> Result<Router, StartError> {
    let keys = api_keys(config).await?;
    let BuiltIn {
        issuer,
        revocations,
    } = built_in_issuer(config, url).await?;
    let built_in = TrustedIssuer::new(url)
        .audience(AUDIENCE)
        .algorithms([Algorithm::EdDSA])
        .require_access_token_type()
        .claims_mapping(ClaimsMapping::none().role_path(ClaimPath::new("roles")))
        .service_rule(ServiceRule::ClientCredentials)
        .key_source(Arc::clone(&issuer));
    let jwt = jwt(prepared.issuers, built_in, revocations)?;
    let dpop = dpop::authenticator(config, jwt.clone(), url)?;
    let rejection = dpop::rejection(&dpop);
    // DPoP-bound opaque tokens (`cnf.jkt` in the introspection answer), before the JWT DPoP
    // authenticator, which claims every other `DPoP` token.
    let dpop_introspection = prepared
        .introspection
        .clone()
        .map(|i| DpopIntrospection::new(i, dpop.clone()));
    let auth = keys
        .or(dpop_introspection)
        .or(dpop.clone())
        .or(jwt)
        .or(prepared.introspection);
    let mut app = router(
        auth.clone(),
        session::authenticated_routes(Arc::clone(&issuer)),
        rejection,
    )
    .merge(session::routes(issuer, dpop));
    if let Some(f) = &config.forward_auth {
        let endpoint = forward::endpoint(auth, f)?;
        if let Some(listener) = grpc {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let check = tonic::transport::Server::builder()
                .add_service(endpoint.envoy_grpc())
                .serve_with_incoming(incoming);
            tokio::spawn(async move {
                if let Err(e) = check.await {
                    tracing::error!(target: LOG_TARGET, error = %e, "gRPC Check API stopped");
                }
            });
        }
        app = app.merge(forward::routes(endpoint, f));
    }
    Ok(logged(app))
}

fn router<A>(auth: A, authenticated: Router, rejection: ProblemRejection) -> Router
where
    A: Authenticator + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
{
    let metrics = metrics_handle();
    let read = RequireScopesLayer::all_of(["read:items"]).with_rejection(rejection.clone());
    let write = RequireScopesLayer::all_of(["write:items"]).with_rejection(rejection.clone());
    let items = get((|| async { Json(serde_json::json!(["apple", "pear"])) }).layer(read))
        .post((|| async { (axum::http::StatusCode::CREATED, "created") }).layer(write));
    let admin = Router::new()
        .route("/admin", get(|| async { "welcome, admin" }))
        .route_layer(RequireScopesLayer::all_of(["admin"]).with_rejection(rejection.clone()));
    Router::new()
        .route("/me", get(|p: Principal| async move { Json(p) }))
        .route("/items", items)
        .merge(admin)
        .merge(authenticated)
        .route_layer(axum::middleware::from_fn(record_principal))
        // What remains of an API key's limits, on allowed responses (refusals carry it anyway).
        .route_layer(tower_auth_apikey::limit::RateLimitHeadersLayer::new())
        .route_layer(AuthenticateLayer::required(auth).with_rejection(rejection))
        .route_layer(axum::middleware::from_fn(
            session::refuse_cross_site_cookie_writes,
        ))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || async move { metrics.render() }))
}

/// The tracing target of the request log.
pub const LOG_TARGET: &str = "quickstart::request";

/// Logs every request of `router` with tower-http's trace layer: one event per response, at
/// info, in a span with the method, the path (never the query string, which may carry a
/// credential), and, once authenticated, the principal's subject and scheme; the status and
/// latency on the event. Rejections log their reason at debug on the `tower_auth` target.
pub fn logged(router: Router) -> Router {
    use tower_http::trace::TraceLayer;

    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
            tracing::info_span!(
                target: LOG_TARGET,
                "request",
                method = %req.method(),
                path = req.uri().path(),
                subject = tracing::field::Empty,
                scheme = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_response(
            |res: &axum::http::Response<axum::body::Body>, latency: Duration, _: &tracing::Span| {
                tracing::info!(
                    target: LOG_TARGET,
                    status = res.status().as_u16(),
                    latency = ?latency,
                    "response"
                );
            },
        )
        .on_body_chunk(())
        .on_eos(())
        .on_failure(());
    router.layer(trace)
}

/// Records the authenticated principal's subject and scheme on the request's span.
async fn record_principal(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(p) = req.extensions().get::<Principal>() {
        let span = tracing::Span::current();
        span.record("subject", p.subject());
        span.record("scheme", p.scheme().as_str());
    }
    next.run(req).await
}
