//! Remote keys (feature `remote`): a JWKS URL ([`JwksUrl`]) or an issuer's metadata
//! ([`Discovery`]: OpenID Connect Discovery, falling back to RFC 8414), cached in memory,
//! refreshed ahead of expiry, and safe through key rotation and endpoint outages.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
//! use base64::Engine as _;
//! use base64::engine::general_purpose::URL_SAFE_NO_PAD;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_core::{AuthenticateLayer, Principal};
//! use tower_auth_jwt::remote::JwksUrl;
//! use tower_auth_jwt::{Algorithm, TrustedIssuer, JwtAuthenticator};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // The issuer: an Ed25519 signing key, its JWKS served on a loopback port.
//! let pair = Ed25519KeyPair::generate().unwrap();
//! let jwks = serde_json::json!({"keys": [{
//!     "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "2026-01",
//!     "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
//! }]});
//! let app = axum::Router::new().route(
//!     "/jwks",
//!     axum::routing::get(move || async move { axum::Json(jwks) }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let jwks_url = format!("http://{}/jwks", listener.local_addr().unwrap());
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // The API: building does no I/O; keys load on first use, or now with warm_up.
//! let keys = JwksUrl::builder(&jwks_url)
//!     .insecure_allow_http(true) // plain http for this loopback example only
//!     .build()
//!     .unwrap();
//! let auth = JwtAuthenticator::builder()
//!     .issuer(
//!         TrustedIssuer::new("https://auth.example.com")
//!             .audience("orders-api")
//!             .algorithms([Algorithm::EdDSA])
//!             .key_source(keys.clone()),
//!     )
//!     .build()
//!     .unwrap();
//! keys.warm_up().await.unwrap();
//! assert_eq!(keys.keys().unwrap().len(), 1);
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .service(service_fn(|req: Request<()>| async move {
//!         assert_eq!(req.extensions().get::<Principal>().unwrap().subject(), "alice");
//!         Ok::<_, Infallible>(Response::new(()))
//!     }));
//!
//! let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
//! let claims = serde_json::json!({
//!     "iss": "https://auth.example.com", "aud": "orders-api", "sub": "alice", "exp": now + 300,
//! });
//! let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
//! header.kid = Some("2026-01".into());
//! let signing = jsonwebtoken::EncodingKey::from_ed_der(pair.to_pkcs8().unwrap().as_ref());
//! let token = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
//!
//! let call = |token: &str| {
//!     let req = Request::get("/orders").header("authorization", format!("Bearer {token}"));
//!     svc.clone().oneshot(req.body(()).unwrap())
//! };
//! assert_eq!(call(&token).await.unwrap().status(), StatusCode::OK);
//! // Signed by a key the issuer never published: 401.
//! let other = Ed25519KeyPair::generate().unwrap();
//! let forged = jsonwebtoken::encode(
//!     &header,
//!     &claims,
//!     &jsonwebtoken::EncodingKey::from_ed_der(other.to_pkcs8().unwrap().as_ref()),
//! )
//! .unwrap();
//! assert_eq!(call(&forged).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # How the cache behaves
//!
//! | situation | what happens |
//! |---|---|
//! | construction | URLs checked ([`HttpClient::check_url`]); no request is sent |
//! | first token (cold) | one fetch, single-flight: every concurrent request waits for the same fetch |
//! | keys loaded and fresh | [`KeyLookup::Ready`]: a read lock and an `Arc` clone, no allocation, no wait |
//! | 75% of the refresh interval passed | one refresh in a background task; requests are served the current keys meanwhile |
//! | refresh interval | `Cache-Control: max-age` of the JWKS response (`no-store` / `no-cache` count as 0), 10 min when absent, clamped to [`refresh_bounds`](JwksUrlBuilder::refresh_bounds) (default 1 min to 1 h) |
//! | token with an unknown `kid` | one refetch (single-flight) unless the keys were fetched less than the [cooldown](JwksUrlBuilder::unknown_kid_cooldown) (default 30 s) ago; an unknown `kid` is remembered for the cooldown (at most 1,024 are remembered; the cooldown bounds the fetches whatever the number of kids) |
//! | a fetch fails with keys loaded | the last good keys keep being served until the refresh interval plus the [maximum staleness](JwksUrlBuilder::max_staleness) (default 1 h), then 503; retries every [`retry_after_failure`](JwksUrlBuilder::retry_after_failure) (default 5 s) |
//! | a fetch fails at cold start | 503 (`KeyLookup::Unavailable`), and 503 without a new attempt until `retry_after_failure` has passed |
//! | a published key is unusable | `use: enc`, unknown `kty`, unsupported curve, an `alg` that disagrees with the key, symmetric `oct` keys, private members, bad material: skipped and logged, the rest is used. Keys sharing a `kid` are all skipped (which one is meant cannot be known). A set with no usable key counts as a failed fetch |
//! | a key removed upstream | gone at the next refresh; tokens it verified leave the verified-token cache with it |
//!
//! Unchanged keys keep their identity across refreshes (the same `Arc<VerifyingKey>`), so the
//! tokens they verified stay in the [verified-token cache](crate::JwtAuthenticatorBuilder::verified_token_cache);
//! the tokens of a withdrawn key are verified again, and fail.
//!
//! After the first fetch, a task on the tokio runtime of that fetch refreshes the set at 75% of
//! each interval (and retries failures every `retry_after_failure`), so keys stay current even
//! when every request is served from the verified-token cache. It holds only a weak reference:
//! it ends when the last clone of the source is dropped, or with its runtime. Requests that
//! find the set due start a refresh themselves too (single-flight with the task), and a set
//! past its staleness bound is fetched on the request path.
//!
//! # HTTP
//!
//! Requests go through tower-auth-core's [`HttpClient`]: a deadline per exchange (5 s by
//! default, body included), a response size cap (1 MiB by default), no redirects (a 3xx is a
//! failed fetch: a key endpoint that moves is a configuration change, not something to chase),
//! and `https` only. [`insecure_allow_http`](JwksUrlBuilder::insecure_allow_http) allows plain
//! http (loopback tests, development); [`http_client`](JwksUrlBuilder::http_client) brings
//! your own client (a proxy, private roots, other limits).
//!
//! # Why staleness is bounded
//!
//! Serving the last good keys through an outage keeps an API up when its identity provider
//! blips. Serving them forever would let whoever can keep the JWKS endpoint unreachable from
//! you (or a broken network path) keep a withdrawn, possibly compromised, key trusted. The
//! bound caps that: a key removed upstream is trusted at most for the refresh interval plus
//! the maximum staleness (2 h with the defaults), then requests get 503 until keys can be
//! fetched again.

pub(crate) mod discovery;
pub(crate) mod engine;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_auth_core::client::HttpClient;

pub use self::discovery::{DiscoveryError, Metadata, discover};
use self::engine::{Endpoint, Policy, Remote};
use crate::{ConfigError, KeyLookup, KeySet, KeySource, KeySourceError};

/// The refresh interval when the JWKS response has no `Cache-Control: max-age`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
/// The default lower bound of the refresh interval.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);
/// The default upper bound of the refresh interval.
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(3600);
/// The default cooldown between refetches caused by unknown `kid`s.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// The default maximum staleness: how long past its refresh interval a key set is still
/// served while the endpoint fails.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(3600);
/// The default wait after a failed fetch before the next attempt.
pub const DEFAULT_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Settings shared by both builders.
#[derive(Clone)]
struct Common {
    client: Option<HttpClient>,
    allow_http: bool,
    policy: Policy,
}

impl Common {
    fn new() -> Self {
        Self {
            client: None,
            allow_http: false,
            policy: Policy {
                default_refresh: DEFAULT_REFRESH,
                min_refresh: DEFAULT_MIN_REFRESH,
                max_refresh: DEFAULT_MAX_REFRESH,
                unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
                max_staleness: DEFAULT_MAX_STALENESS,
                retry_after_failure: DEFAULT_RETRY_AFTER_FAILURE,
            },
        }
    }

    fn client(&self) -> Result<HttpClient, ConfigError> {
        let p = &self.policy;
        let secs = |d: Duration| format!("{}s", d.as_secs_f64());
        if p.min_refresh.is_zero() {
            return Err(ConfigError::new(
                "refresh_bounds",
                secs(p.min_refresh),
                "the minimum must be greater than zero",
            ));
        }
        if p.min_refresh > p.max_refresh {
            return Err(ConfigError::new(
                "refresh_bounds",
                format!("{}..{}", secs(p.min_refresh), secs(p.max_refresh)),
                "the minimum must not exceed the maximum",
            ));
        }
        for (setting, d) in [
            ("default_refresh", p.default_refresh),
            ("unknown_kid_cooldown", p.unknown_kid_cooldown),
            ("retry_after_failure", p.retry_after_failure),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(setting, "0s", "must be greater than zero"));
            }
        }
        match &self.client {
            Some(c) if self.allow_http && !c.allows_http() => Err(ConfigError::new(
                "insecure_allow_http",
                true,
                "the given http_client does not allow http; set insecure_allow_http on it",
            )),
            Some(c) => Ok(c.clone()),
            None => HttpClient::builder()
                .insecure_allow_http(self.allow_http)
                .build()
                .map_err(|e| ConfigError::new("http_client", "default", e.to_string())),
        }
    }
}

fn url_error(setting: &'static str, url: &str, e: &tower_auth_core::ConfigError) -> ConfigError {
    let reason = e.to_string();
    let reason = reason.rsplit_once(": ").map_or(reason.as_str(), |(_, r)| r);
    ConfigError::new(setting, url, reason.to_owned())
}

macro_rules! common_setters {
    () => {
        /// Sends requests through `client` instead of a default [`HttpClient`] (https only,
        /// 5 s deadline, 1 MiB cap, hyper-rustls on aws-lc-rs).
        pub fn http_client(mut self, client: HttpClient) -> Self {
            self.common.client = Some(client);
            self
        }

        /// Allows plain-http URLs, for loopback tests and development only: keys fetched over
        /// plain http can be replaced by anyone on the path, and with them every token. With
        /// [`http_client`](Self::http_client), that client must allow http itself.
        pub fn insecure_allow_http(mut self, allow: bool) -> Self {
            self.common.allow_http = allow;
            self
        }

        /// The refresh interval used when the JWKS response has no `Cache-Control: max-age`
        /// (default 10 min), clamped to the [bounds](Self::refresh_bounds) like `max-age`.
        pub fn default_refresh(mut self, interval: Duration) -> Self {
            self.common.policy.default_refresh = interval;
            self
        }

        /// The bounds the refresh interval is clamped to (default 1 min to 1 h). The upper
        /// bound is how long a key removed upstream may still verify tokens while the
        /// endpoint works.
        pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
            self.common.policy.min_refresh = min;
            self.common.policy.max_refresh = max;
            self
        }

        /// The shortest time between two fetches caused by tokens with an unknown `kid`, and
        /// how long an unknown `kid` is remembered (default 30 s).
        pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
            self.common.policy.unknown_kid_cooldown = cooldown;
            self
        }

        /// How long past its refresh interval the last good key set is served while fetches
        /// fail (default 1 h). Zero serves nothing stale. See the
        /// [module docs](crate::remote#why-staleness-is-bounded).
        pub fn max_staleness(mut self, staleness: Duration) -> Self {
            self.common.policy.max_staleness = staleness;
            self
        }

        /// How long to wait after a failed fetch before trying again (default 5 s). Meanwhile
        /// a source without usable keys answers 503 at once.
        pub fn retry_after_failure(mut self, wait: Duration) -> Self {
            self.common.policy.retry_after_failure = wait;
            self
        }
    };
}

/// Keys from a JWKS URL. A [`KeySource`]: plug it into
/// [`TrustedIssuer::key_source`](crate::TrustedIssuer::key_source). Cheap to clone (clones share the cache).
///
/// See the [module docs](self) for the cache's behaviour.
#[derive(Clone)]
pub struct JwksUrl {
    remote: Arc<Remote>,
}

impl fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksUrl")
            .field("url", &&*self.remote.label)
            .field("loaded", &self.remote.keys().map(|k| k.len()))
            .finish_non_exhaustive()
    }
}

impl JwksUrl {
    /// Starts a builder for the JWKS at `url`.
    pub fn builder(url: impl Into<String>) -> JwksUrlBuilder {
        JwksUrlBuilder {
            url: url.into(),
            common: Common::new(),
        }
    }

    /// Loads the keys now unless a usable set is already loaded (single-flight with any
    /// request doing the same). Call it at startup to take the first fetch off the first request, and
    /// to fail fast when the endpoint is unreachable.
    pub async fn warm_up(&self) -> Result<(), KeySourceError> {
        warm_up(&self.remote).await
    }

    /// The current key set, once loaded (possibly stale).
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.remote.keys()
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.remote.label
    }
}

impl KeySource for JwksUrl {
    fn lookup(&self, kid: Option<&str>) -> KeyLookup {
        self.remote.lookup(kid)
    }
}

async fn warm_up(remote: &Arc<Remote>) -> Result<(), KeySourceError> {
    match remote.lookup(None) {
        KeyLookup::Ready(_) => Ok(()),
        KeyLookup::Unavailable(e) => Err(e),
        KeyLookup::Pending(fut) => fut.await.map(drop),
    }
}

/// Builds a [`JwksUrl`]. No network I/O happens here.
#[must_use]
pub struct JwksUrlBuilder {
    url: String,
    common: Common,
}

impl fmt::Debug for JwksUrlBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksUrlBuilder")
            .field("url", &self.url)
            .field("policy", &self.common.policy)
            .finish_non_exhaustive()
    }
}

impl JwksUrlBuilder {
    common_setters!();

    /// Checks the settings and the URL (absolute, https unless allowed) and builds the source.
    pub fn build(self) -> Result<JwksUrl, ConfigError> {
        let client = self.common.client()?;
        let uri = client
            .check_url(&self.url)
            .map_err(|e| url_error("jwks_url", &self.url, &e))?;
        Ok(JwksUrl {
            remote: Arc::new(Remote::new(
                self.url,
                client,
                Endpoint::Jwks(uri),
                self.common.policy,
            )),
        })
    }
}

/// Keys of an issuer found through its metadata: OpenID Connect Discovery
/// (`{issuer}/.well-known/openid-configuration`), falling back to RFC 8414
/// (`/.well-known/oauth-authorization-server`). The metadata's `issuer` must equal the
/// configured issuer exactly; when it does not, the source is unavailable (503) and the
/// mismatch is logged.
///
/// The metadata is fetched with the first key fetch and kept; it is fetched again after a JWKS
/// fetch fails (the keys may have moved). Otherwise the source behaves like [`JwksUrl`] on
/// the `jwks_uri` it found, which must itself pass the client's URL rules.
///
/// ```
/// use tower_auth_jwt::remote::Discovery;
/// use tower_auth_jwt::{Algorithm, TrustedIssuer, JwtAuthenticator};
///
/// // Building sends nothing: keys load on the first token, or with `warm_up().await`.
/// let keys = Discovery::builder("https://idp.example.com/realms/main").build().unwrap();
/// let auth = JwtAuthenticator::builder()
///     .issuer(
///         TrustedIssuer::new("https://idp.example.com/realms/main")
///             .audience("orders-api")
///             .algorithms([Algorithm::RS256])
///             .key_source(keys.clone()),
///     )
///     .build()
///     .unwrap();
/// assert!(keys.metadata().is_none());
///
/// // https is required unless allowed.
/// assert!(Discovery::builder("http://idp.example.com").build().is_err());
/// ```
#[derive(Clone)]
pub struct Discovery {
    remote: Arc<Remote>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("issuer", &&*self.remote.label)
            .field("loaded", &self.remote.keys().map(|k| k.len()))
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Starts a builder for the issuer identifier `issuer` (an https URL, exactly as the
    /// metadata and the tokens' `iss` spell it).
    pub fn builder(issuer: impl Into<String>) -> DiscoveryBuilder {
        DiscoveryBuilder {
            issuer: issuer.into(),
            common: Common::new(),
        }
    }

    /// Loads the metadata and keys now unless a usable set is already loaded. See
    /// [`JwksUrl::warm_up`].
    pub async fn warm_up(&self) -> Result<(), KeySourceError> {
        warm_up(&self.remote).await
    }

    /// The current key set, once loaded (possibly stale).
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.remote.keys()
    }

    /// The issuer's metadata, once fetched.
    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        match &self.remote.endpoint {
            Endpoint::Discovery { metadata, .. } => metadata
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            Endpoint::Jwks(_) => None,
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.remote.label
    }
}

impl KeySource for Discovery {
    fn lookup(&self, kid: Option<&str>) -> KeyLookup {
        self.remote.lookup(kid)
    }
}

/// Builds a [`Discovery`] source. No network I/O happens here.
#[must_use]
pub struct DiscoveryBuilder {
    issuer: String,
    common: Common,
}

impl fmt::Debug for DiscoveryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryBuilder")
            .field("issuer", &self.issuer)
            .field("policy", &self.common.policy)
            .finish_non_exhaustive()
    }
}

impl DiscoveryBuilder {
    common_setters!();

    /// Checks the settings and the issuer URL (absolute, https unless allowed, no query or
    /// fragment) and builds the source.
    pub fn build(self) -> Result<Discovery, ConfigError> {
        let client = self.common.client()?;
        discovery::metadata_urls(&client, &self.issuer).map_err(|e| {
            let reason = match e {
                DiscoveryError::InvalidIssuer(why) => why,
                other => other.to_string(),
            };
            let reason = reason
                .rsplit_once(": ")
                .map_or(reason.clone(), |(_, r)| r.to_owned());
            ConfigError::new("issuer", &self.issuer, reason)
        })?;
        Ok(Discovery {
            remote: Arc::new(Remote::new(
                self.issuer.clone(),
                client,
                Endpoint::Discovery {
                    issuer: self.issuer,
                    metadata: std::sync::RwLock::new(None),
                },
                self.common.policy,
            )),
        })
    }
}
