//! The builder of a [`Login`], and the settings' bounds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{AuthUrl, ClientId, ClientSecret, RedirectUrl, StandardRevocableToken, TokenUrl};
use serde_json::Value;
use tower_auth_core::ConfigError;
use tower_auth_core::client::HttpClient;
use tower_auth_core::clock::{Clock, SystemClock};
use tower_auth_jwt::remote::{Discovery, DiscoveryError, Metadata, discover};
use tower_auth_jwt::{Algorithm, KeySource, MAX_LEEWAY};

use super::cookie::valid_cookie_name;
use super::flow::{OAuthClient, OidcTokenResponse};
use super::{
    ClientAuth, DEFAULT_MAX_PENDING, DEFAULT_PENDING_TTL, DEFAULT_STORE_TIMEOUT,
    INSECURE_LOGIN_COOKIE, Inner, LOGIN_COOKIE, Login, MemoryStore, PendingLoginStore,
};
use crate::client::{ClientRegistration, Secret};

/// The longest [`pending_ttl`](LoginBuilder::pending_ttl) accepted.
pub const MAX_PENDING_TTL: Duration = Duration::from_secs(3600);
/// The shortest [`pending_ttl`](LoginBuilder::pending_ttl) accepted (the cookie's `Max-Age` is
/// in whole seconds).
pub const MIN_PENDING_TTL: Duration = Duration::from_secs(1);
/// The longest [`max_id_token_age`](LoginBuilder::max_id_token_age) accepted.
pub const MAX_ID_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

/// Authorization request parameters that [`LoginBuilder::authorize_param`] may not set: the
/// helper sets them, or they would change the flow.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "request",
    "request_uri",
];

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Login {
    /// Starts a builder for the authorization server `issuer` (exactly as its ID tokens'
    /// `iss` spell it). Give it the endpoints, or use [`LoginBuilder::discover`] or
    /// [`Login::builder_from_metadata`] to read them from the server's metadata.
    pub fn builder(issuer: impl Into<String>) -> LoginBuilder {
        LoginBuilder {
            issuer: issuer.into(),
            authorization_endpoint: None,
            token_endpoint: None,
            require_iss: None,
            metadata_iss: false,
            registration: ClientRegistration::default(),
            authorize_params: Vec::new(),
            redirect_uri: String::new(),
            http_redirect: false,
            keys: None,
            algorithms: Algorithm::ASYMMETRIC.to_vec(),
            store: None,
            clock: Arc::new(SystemClock),
            ttl: DEFAULT_PENDING_TTL,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            leeway: tower_auth_jwt::DEFAULT_LEEWAY,
            max_id_token_age: Duration::from_secs(300),
            cookie_name: None,
        }
    }

    /// Starts a builder from the authorization server's metadata (fetch it with
    /// [`tower_auth_jwt::remote::discover`]): issuer, authorization and token endpoints, and
    /// whether callbacks carry the RFC 9207 `iss` parameter (then it is required).
    ///
    /// ```
    /// use tower_auth_jwt::remote::Metadata;
    /// use tower_auth_oauth::login::Login;
    ///
    /// let doc = br#"{"issuer":"https://idp.example.com",
    ///   "authorization_endpoint":"https://idp.example.com/auth",
    ///   "token_endpoint":"https://idp.example.com/token",
    ///   "jwks_uri":"https://idp.example.com/jwks"}"#;
    /// let metadata = Metadata::from_json(doc, "https://idp.example.com").unwrap();
    /// let login = Login::builder_from_metadata(&metadata)
    ///     .unwrap()
    ///     .client_id("web-app")
    ///     .client_secret("s3cret")
    ///     .redirect_uri("https://app.example.com/callback")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(login.redirect_uri(), "https://app.example.com/callback");
    /// ```
    pub fn builder_from_metadata(metadata: &Metadata) -> Result<LoginBuilder, ConfigError> {
        Login::builder(metadata.issuer()).metadata(metadata)
    }
}

/// Why [`LoginBuilder::discover`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginBuildError {
    /// The metadata could not be fetched or does not belong to the issuer.
    Discovery(DiscoveryError),
    /// A setting, or an endpoint the metadata publishes, is not usable.
    Config(ConfigError),
}

impl fmt::Display for LoginBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovery(e) => write!(f, "authorization server metadata: {e}"),
            Self::Config(e) => write!(f, "login configuration: {e}"),
        }
    }
}

impl std::error::Error for LoginBuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Discovery(e) => Some(e),
            Self::Config(e) => Some(e),
        }
    }
}

impl From<ConfigError> for LoginBuildError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

/// Builds a [`Login`]. [`build`](Self::build) does no network I/O;
/// [`discover`](Self::discover) reads the endpoints from the issuer's metadata first.
#[must_use]
pub struct LoginBuilder {
    pub(super) issuer: String,
    pub(super) authorization_endpoint: Option<String>,
    pub(super) token_endpoint: Option<String>,
    pub(super) require_iss: Option<bool>,
    pub(super) metadata_iss: bool,
    pub(super) registration: ClientRegistration,
    pub(super) authorize_params: Vec<(String, String)>,
    pub(super) redirect_uri: String,
    pub(super) http_redirect: bool,
    pub(super) keys: Option<Arc<dyn KeySource>>,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) store: Option<Arc<dyn PendingLoginStore>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) ttl: Duration,
    pub(super) store_timeout: Duration,
    pub(super) leeway: Duration,
    pub(super) max_id_token_age: Duration,
    pub(super) cookie_name: Option<String>,
}

impl fmt::Debug for LoginBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginBuilder")
            .field("issuer", &self.issuer)
            .field("client_id", &self.registration.client_id)
            .field(
                "client_secret",
                &self
                    .registration
                    .client_secret
                    .as_ref()
                    .map(|_| "<redacted>"),
            )
            .field("client_auth", &self.registration.auth)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.registration.scopes)
            .finish_non_exhaustive()
    }
}

impl LoginBuilder {
    /// Takes the endpoints from the authorization server's metadata, and requires the RFC 9207
    /// `iss` callback parameter when the metadata says the server sends it (unless
    /// [`require_issuer_in_callback`](Self::require_issuer_in_callback) said otherwise, before
    /// or after). Fails when the metadata is for another issuer, lacks an endpoint, or lists
    /// `response_types_supported` without `code` or `code_challenge_methods_supported` without
    /// `S256` (an absent list is accepted: many servers leave them out).
    pub fn metadata(mut self, metadata: &Metadata) -> Result<Self, ConfigError> {
        if metadata.issuer() != self.issuer {
            return Err(ConfigError::new(
                "issuer",
                metadata.issuer(),
                "the metadata is for another issuer",
            ));
        }
        let auth = metadata.authorization_endpoint().ok_or_else(|| {
            ConfigError::new(
                "authorization_endpoint",
                "none",
                "the authorization server publishes no authorization_endpoint",
            )
        })?;
        let token = metadata.token_endpoint().ok_or_else(|| {
            ConfigError::new(
                "token_endpoint",
                "none",
                "the authorization server publishes no token_endpoint",
            )
        })?;
        let raw = metadata.raw();
        // Absent lists say nothing (RFC 8414 makes `code_challenge_methods_supported`
        // optional): accepted. Present ones must list what this helper uses.
        let lists = |name: &str, wanted: &str| match raw.get(name) {
            None => true,
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(wanted)),
            Some(_) => false,
        };
        if !lists("response_types_supported", "code") {
            return Err(ConfigError::new(
                "response_types_supported",
                raw.get("response_types_supported").unwrap_or(&Value::Null),
                "the authorization server does not support response_type code",
            ));
        }
        if !lists("code_challenge_methods_supported", "S256") {
            return Err(ConfigError::new(
                "code_challenge_methods_supported",
                raw.get("code_challenge_methods_supported")
                    .unwrap_or(&Value::Null),
                "the authorization server does not support PKCE with S256",
            ));
        }
        self.authorization_endpoint = Some(auth.to_owned());
        self.token_endpoint = Some(token.to_owned());
        self.metadata_iss = raw
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(self)
    }

    /// The authorization endpoint (required unless read from metadata).
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorization_endpoint = Some(url.into());
        self
    }

    /// The token endpoint (required unless read from metadata).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Refuse callbacks without the RFC 9207 `iss` parameter. Default: what the metadata's
    /// `authorization_response_iss_parameter_supported` says, false without metadata. An
    /// explicit choice here wins over the metadata, whichever comes first. A present `iss` is
    /// always checked.
    pub fn require_issuer_in_callback(mut self, require: bool) -> Self {
        self.require_iss = Some(require);
        self
    }

    /// The client id (required).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.registration = self.registration.client_id(id);
        self
    }

    /// The client secret of a confidential client, sent as [`client_auth`](Self::client_auth)
    /// says. Leave it out for a public client (PKCE alone protects the code; the `client_id`
    /// goes in the form). Never logged or printed.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.registration = self.registration.client_secret(secret);
        self
    }

    /// How a confidential client authenticates to the token endpoint (default
    /// `client_secret_basic`), as for [introspection](crate::introspection) and
    /// [client credentials](crate::client_credentials).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.registration = self.registration.client_auth(auth);
        self
    }

    /// The whole [`ClientRegistration`] (client id, optional secret, client authentication,
    /// scopes, resources, HTTP client) at once, replacing what the other client setters set.
    pub fn registration(mut self, registration: ClientRegistration) -> Self {
        self.registration = registration;
        self
    }

    /// An extra authorization request parameter, such as `prompt=consent` (which
    /// oidc-provider and others need before they issue a refresh token for
    /// `offline_access`), `login_hint`, `ui_locales` or `acr_values`. Repeatable. The
    /// parameters this helper sets (`state`, `nonce`, `redirect_uri`, `scope`,
    /// `code_challenge`, `resource`, ...) and `request` / `request_uri` are refused at build
    /// time.
    pub fn authorize_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.authorize_params.push((name.into(), value.into()));
        self
    }

    /// The redirect URI (required), exactly as registered at the authorization server: an
    /// absolute https URL, or http on a loopback host with
    /// [`insecure_http_redirect_uri`](Self::insecure_http_redirect_uri).
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = uri.into();
        self
    }

    /// Scopes to ask for besides `openid`, which is always asked for (`email`, `profile`,
    /// `offline_access` for a refresh token, API scopes).
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.registration = self.registration.scopes(scopes);
        self
    }

    /// RFC 8707 `resource` indicators: the APIs the access token is for, sent in the
    /// authorization and token requests.
    pub fn resources<I, T>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.registration = self.registration.resources(resources);
        self
    }

    /// The HTTP client for the token endpoint and the keys (deadline, size cap, transport).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.registration = self.registration.http_client(client);
        self
    }

    /// Allows a plain-http authorization server when no [`http_client`](Self::http_client) is
    /// given. Only for loopback tests: codes, tokens and keys cross the wire in clear.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.registration = self.registration.insecure_allow_http(allow);
        self
    }

    /// Allows an `http://` redirect URI on a loopback host (`localhost`, `127.0.0.1`, `[::1]`):
    /// for development over plain http, and for native apps, whose loopback redirect is plain
    /// http (RFC 8252 section 7.3). With an http redirect URI the login cookie is set without
    /// `Secure` (named [`INSECURE_LOGIN_COOKIE`]): the cookie follows the redirect URI's
    /// scheme, so an https redirect URI keeps `Secure` and `__Host-` whatever this says.
    pub fn insecure_http_redirect_uri(mut self, allow: bool) -> Self {
        self.http_redirect = allow;
        self
    }

    /// Where the provider's signing keys come from. Default: a
    /// [`Discovery`] of the issuer (JWKS cache with
    /// refresh-ahead and unknown-`kid` refetch), over this builder's HTTP client.
    pub fn key_source(mut self, keys: impl KeySource) -> Self {
        self.keys = Some(Arc::new(keys));
        self
    }

    /// The ID token signature algorithms accepted (default: the asymmetric ones; HMAC only if
    /// you list it, keyed with the client secret through [`key_source`](Self::key_source)).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Where pending logins wait for their callback (default: a [`MemoryStore`]).
    pub fn store(mut self, store: impl PendingLoginStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// How long a user has to log in at the provider (default 10 minutes, from
    /// [`MIN_PENDING_TTL`] to [`MAX_PENDING_TTL`]); also the login cookie's `Max-Age`.
    pub fn pending_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The deadline of each call to the pending-login store (default 2 s); past it the login
    /// fails with [`LoginError::Store`](super::LoginError::Store) (503).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The clock (default: the system clock), for pending-login expiry and ID token times; the
    /// default store is built on it too.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The clock skew allowed on the ID token's `exp`, `iat` and `nbf` (default 60 s, at most
    /// tower-auth-jwt's [`MAX_LEEWAY`], 10 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The oldest ID token accepted, by its `iat` (default 5 minutes: it was issued moments
    /// before, in the code exchange; at most [`MAX_ID_TOKEN_AGE`]).
    pub fn max_id_token_age(mut self, age: Duration) -> Self {
        self.max_id_token_age = age;
        self
    }

    /// The login cookie's name (default [`LOGIN_COOKIE`], or [`INSECURE_LOGIN_COOKIE`] with an
    /// http redirect URI). With several `Login`s in one app (one per provider), give each its
    /// own name: a browser holds one login cookie per name, so with a shared name starting a
    /// login at one provider ends the login pending at the other.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// Reads the issuer's metadata (OpenID Connect Discovery, falling back to RFC 8414), takes
    /// the endpoints from it ([`metadata`](Self::metadata)), and builds.
    pub async fn discover(self) -> Result<Login, LoginBuildError> {
        let http = self.registration.http()?;
        let metadata = discover(&http, &self.issuer)
            .await
            .map_err(LoginBuildError::Discovery)?;
        Ok(self.http_client(http).metadata(&metadata)?.build()?)
    }

    /// Validates the settings and builds.
    pub fn build(self) -> Result<Login, ConfigError> {
        let http = self.registration.http()?;
        let (auth_endpoint, token_endpoint) = self.checked_endpoints(&http)?;
        self.registration.check(Secret::Optional)?;
        let secure = self.check_redirect_uri()?;
        self.check_flow_settings()?;
        let cookie_name = self.checked_cookie_name(secure)?;
        let keys = self.keys_or_discovery(&http)?;
        let oauth = self.oauth_client(&auth_endpoint, &token_endpoint)?;
        let mut scopes = vec!["openid".to_owned()];
        let ClientRegistration {
            client_id,
            scopes: asked,
            resources,
            ..
        } = self.registration;
        for s in asked {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let store = self.store.unwrap_or_else(|| {
            Arc::new(MemoryStore::with(
                DEFAULT_MAX_PENDING,
                Arc::clone(&self.clock),
            ))
        });
        Ok(Login {
            inner: Arc::new(Inner {
                oauth,
                http,
                issuer: self.issuer,
                client_id,
                redirect_uri: self.redirect_uri,
                scopes,
                resources,
                authorize_params: self.authorize_params,
                require_iss: self.require_iss.unwrap_or(self.metadata_iss),
                keys,
                algorithms: self.algorithms,
                store,
                clock: self.clock,
                ttl: self.ttl,
                store_timeout: self.store_timeout,
                leeway: self.leeway,
                max_id_token_age: self.max_id_token_age,
                cookie_name,
                cookie_secure: secure,
            }),
        })
    }

    /// The authorization and token endpoints: both given (or discovered), and URLs the HTTP
    /// client may call.
    fn checked_endpoints(&self, http: &HttpClient) -> Result<(String, String), ConfigError> {
        let auth_endpoint = self.authorization_endpoint.clone().ok_or_else(|| {
            ConfigError::new("authorization_endpoint", "none", "required (or discover)")
        })?;
        let token_endpoint = self
            .token_endpoint
            .clone()
            .ok_or_else(|| ConfigError::new("token_endpoint", "none", "required (or discover)"))?;
        http.check_url(&auth_endpoint)
            .map_err(|e| e.for_setting("authorization_endpoint"))?;
        http.check_url(&token_endpoint)
            .map_err(|e| e.for_setting("token_endpoint"))?;
        Ok((auth_endpoint, token_endpoint))
    }

    /// The redirect URI is absolute https, or http on a loopback host when allowed. Returns
    /// whether it is https (the login cookie follows its scheme).
    fn check_redirect_uri(&self) -> Result<bool, ConfigError> {
        let redirect: http::Uri = self
            .redirect_uri
            .parse()
            .map_err(|_| ConfigError::new("redirect_uri", &self.redirect_uri, "not a valid URL"))?;
        match (redirect.scheme_str(), redirect.host()) {
            (Some("https"), Some(_)) => Ok(true),
            (Some("http"), Some(host)) if is_loopback(host) && self.http_redirect => Ok(false),
            (Some("http"), Some(host)) if is_loopback(host) => Err(ConfigError::new(
                "redirect_uri",
                &self.redirect_uri,
                "plain http needs insecure_http_redirect_uri",
            )),
            _ => Err(ConfigError::new(
                "redirect_uri",
                &self.redirect_uri,
                "must be an absolute https URL (or http on a loopback host)",
            )),
        }
    }

    /// The extra authorization parameters, the algorithms, and the time settings' bounds.
    fn check_flow_settings(&self) -> Result<(), ConfigError> {
        for (name, _) in &self.authorize_params {
            if name.is_empty() || RESERVED_PARAMS.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    "authorize_param",
                    name,
                    "set by the login helper, or changes the flow",
                ));
            }
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::new(
                "algorithms",
                "[]",
                "at least one is needed",
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::new(
                "store_timeout",
                "0s",
                "must be greater than zero",
            ));
        }
        if !(MIN_PENDING_TTL..=MAX_PENDING_TTL).contains(&self.ttl) {
            return Err(ConfigError::new(
                "pending_ttl",
                format_args!("{:?}", self.ttl),
                "must be from 1 s to 1 h",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new(
                "leeway",
                format_args!("{:?}", self.leeway),
                "must be at most 10 minutes (tower_auth_jwt::MAX_LEEWAY)",
            ));
        }
        if self.max_id_token_age.is_zero() || self.max_id_token_age > MAX_ID_TOKEN_AGE {
            return Err(ConfigError::new(
                "max_id_token_age",
                format_args!("{:?}", self.max_id_token_age),
                "must be greater than zero and at most 1 day",
            ));
        }
        Ok(())
    }

    /// The login cookie's name: the one given or the default for the redirect URI's scheme, a
    /// valid cookie name, and without a prefix that needs `Secure` when the cookie is not.
    fn checked_cookie_name(&self, secure: bool) -> Result<String, ConfigError> {
        let cookie_name = self.cookie_name.clone().unwrap_or_else(|| {
            if secure {
                LOGIN_COOKIE
            } else {
                INSECURE_LOGIN_COOKIE
            }
            .to_owned()
        });
        if !valid_cookie_name(&cookie_name) {
            return Err(ConfigError::new(
                "cookie_name",
                &cookie_name,
                "not a valid cookie name",
            ));
        }
        if !secure && (cookie_name.starts_with("__Host-") || cookie_name.starts_with("__Secure-")) {
            return Err(ConfigError::new(
                "cookie_name",
                &cookie_name,
                "a __Host- or __Secure- cookie must be Secure, which an http redirect URI turns off",
            ));
        }
        Ok(cookie_name)
    }

    /// The key source given, or a [`Discovery`] of the issuer over `http`.
    fn keys_or_discovery(&self, http: &HttpClient) -> Result<Arc<dyn KeySource>, ConfigError> {
        match &self.keys {
            Some(k) => Ok(Arc::clone(k)),
            None => Ok(Arc::new(
                Discovery::builder(self.issuer.clone())
                    .http_client(http.clone())
                    .insecure_allow_http(http.allows_http())
                    .build()
                    .map_err(|e| ConfigError::new("issuer", e, "no key source for it"))?,
            )),
        }
    }

    /// The `oauth2` client that builds the authorization URL and exchanges codes.
    fn oauth_client(
        &self,
        auth_endpoint: &str,
        token_endpoint: &str,
    ) -> Result<OAuthClient, ConfigError> {
        let auth_url = AuthUrl::new(auth_endpoint.to_owned()).map_err(|_| {
            ConfigError::new("authorization_endpoint", auth_endpoint, "not a valid URL")
        })?;
        let token_url = TokenUrl::new(token_endpoint.to_owned())
            .map_err(|_| ConfigError::new("token_endpoint", token_endpoint, "not a valid URL"))?;
        let redirect_url = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|_| ConfigError::new("redirect_uri", &self.redirect_uri, "not a valid URL"))?;
        let oauth: OAuthClient = oauth2::Client::<
            BasicErrorResponse,
            OidcTokenResponse,
            BasicTokenIntrospectionResponse,
            StandardRevocableToken,
            BasicRevocationErrorResponse,
        >::new(ClientId::new(self.registration.client_id.clone()))
        .set_auth_uri(auth_url)
        .set_token_uri(token_url)
        .set_redirect_uri(redirect_url)
        .set_auth_type(self.registration.auth.auth_type());
        Ok(match &self.registration.client_secret {
            Some(secret) => oauth.set_client_secret(ClientSecret::new(secret.clone())),
            None => oauth,
        })
    }
}
