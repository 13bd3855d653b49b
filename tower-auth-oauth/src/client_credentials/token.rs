use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderValue;
use oauth2::basic::{BasicClient, BasicTokenType};
use oauth2::{ClientId, ClientSecret, EndpointNotSet, EndpointSet, Scope, TokenResponse, TokenUrl};
use tokio::time::Instant;
use tower_auth_core::ConfigError;
use tower_auth_core::client::HttpClient;
use tower_auth_jwt::dpop::DpopKey;

use super::dpop::ClientDpop;

use crate::client::{ClientAuth, ClientRegistration, Secret};

type OAuthClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The shortest token lifetime believed; shorter `expires_in` values are raised to it.
const MIN_LIFETIME: Duration = Duration::from_secs(1);
/// The longest token lifetime believed; longer `expires_in` values are lowered to it.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The token request of a concurrent caller, which this caller waited for, failed.
#[derive(Debug)]
struct SharedFailure;

impl fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the token request made for a concurrent caller failed")
    }
}

impl std::error::Error for SharedFailure {}

/// Why no access token could be obtained. The request that needed it is not sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenError {
    /// The token endpoint could not be reached, timed out, or answered something unusable.
    Endpoint(Box<dyn std::error::Error + Send + Sync>),
    /// The authorization server refused (`invalid_client`, `invalid_scope`, ...). Holds the
    /// RFC 6749 error code.
    Refused(String),
    /// The response could not be read as a token response, or the token is not usable as an
    /// HTTP header value. (Nothing of the response is kept: it may hold a token.)
    Malformed,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint(_) => f.write_str("token endpoint unavailable"),
            Self::Refused(code) => write!(f, "token request refused: {code}"),
            Self::Malformed => f.write_str("token endpoint returned an unusable response"),
        }
    }
}

impl std::error::Error for TokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Endpoint(e) => Some(&**e),
            _ => None,
        }
    }
}

/// An access token ready to be sent: the `Authorization` value (marked sensitive) and when it
/// stops being usable. `Debug` does not show it.
#[derive(Clone)]
pub struct AccessToken {
    header: HeaderValue,
    usable_until: Instant,
    refresh_from: Instant,
    generation: u64,
}

impl AccessToken {
    /// `Bearer <token>` (`DPoP <token>` for a DPoP-bound one), marked sensitive so HTTP/2 never indexes it and logging layers that
    /// honour the flag hide it.
    pub fn authorization(&self) -> &HeaderValue {
        &self.header
    }

    /// The token itself when it is DPoP-bound (`DPoP <token>`).
    pub(crate) fn dpop_token(&self) -> Option<&str> {
        self.header.to_str().ok()?.strip_prefix("DPoP ")
    }

    fn usable(&self, now: Instant) -> bool {
        now < self.usable_until
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("usable_until", &self.usable_until)
            .finish_non_exhaustive()
    }
}

/// Obtains, caches and refreshes client-credentials access tokens (RFC 6749 section 4.4).
/// Cheap to clone; clones share the token.
///
/// - The token is reused until shortly before it expires (`expiry_skew`, default 10 s, at most a
///   quarter of its lifetime).
/// - Once three quarters of its lifetime have passed, the next caller triggers a refresh in the
///   background and keeps using the current token: callers rarely wait.
/// - Only one token request runs at a time; concurrent callers that need a token wait for it.
#[derive(Clone)]
pub struct ClientCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    oauth: OAuthClient,
    http: HttpClient,
    token_endpoint: String,
    client_id: String,
    scopes: Vec<String>,
    resources: Vec<String>,
    skew: Duration,
    default_lifetime: Duration,
    current: RwLock<Option<AccessToken>>,
    dpop: Option<Arc<ClientDpop>>,
    fetch: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    /// Token requests finished so far, and the number of the last one that failed: callers that
    /// queued behind a failed request share its failure instead of each trying again.
    attempts: AtomicU64,
    last_failure: AtomicU64,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_endpoint", &self.inner.token_endpoint)
            .field("client_id", &self.inner.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.inner.scopes)
            .field("resources", &self.inner.resources)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Starts a builder for the token endpoint at `token_endpoint`.
    pub fn builder(token_endpoint: impl Into<String>) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            token_endpoint: token_endpoint.into(),
            registration: ClientRegistration::default(),
            skew: Duration::from_secs(10),
            default_lifetime: Duration::from_secs(300),
            dpop: None,
        }
    }

    /// Starts a builder for the token endpoint that `metadata` publishes (fetch it with
    /// [`tower_auth_jwt::remote::discover`]).
    ///
    /// ```
    /// use tower_auth_jwt::remote::Metadata;
    /// use tower_auth_oauth::client_credentials::ClientCredentials;
    ///
    /// let doc = br#"{"issuer":"https://idp.example.com","token_endpoint":"https://idp.example.com/oauth/token"}"#;
    /// let metadata = Metadata::from_json(doc, "https://idp.example.com").unwrap();
    /// let tokens = ClientCredentials::builder_from_metadata(&metadata)
    ///     .unwrap()
    ///     .client_id("cron")
    ///     .client_secret("s3cret")
    ///     .build()
    ///     .unwrap();
    /// # let _ = tokens;
    /// ```
    pub fn builder_from_metadata(
        metadata: &tower_auth_jwt::remote::Metadata,
    ) -> Result<ClientCredentialsBuilder, ConfigError> {
        let endpoint = metadata.token_endpoint().ok_or_else(|| {
            ConfigError::new(
                "token_endpoint",
                "none",
                "the authorization server publishes no token_endpoint",
            )
        })?;
        Ok(Self::builder(endpoint))
    }

    /// A usable token: the cached one, or a new one when there is none or it expired.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let now = Instant::now();
        if let Some(t) = self.current().filter(|t| t.usable(now)) {
            if now >= t.refresh_from {
                self.refresh_in_background();
            }
            return Ok(t);
        }
        self.fetch_unless(|t| t.usable(Instant::now())).await
    }

    /// A token other than `stale` (which the resource server just refused): fetches a new one
    /// unless another caller already did.
    pub async fn refresh(&self, stale: &AccessToken) -> Result<AccessToken, TokenError> {
        let generation = stale.generation;
        self.fetch_unless(|t| t.generation != generation && t.usable(Instant::now()))
            .await
    }

    /// The DPoP key, when tokens are requested bound to one
    /// ([`ClientCredentialsBuilder::dpop`]).
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.inner.dpop.as_deref().map(ClientDpop::key)
    }

    pub(crate) fn dpop(&self) -> Option<&ClientDpop> {
        self.inner.dpop.as_deref()
    }

    fn current(&self) -> Option<AccessToken> {
        self.inner
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Single-flight fetch: waits for the fetch lock, then reuses the current token if `good`
    /// holds for it (someone fetched meanwhile), else asks the token endpoint.
    async fn fetch_unless(
        &self,
        good: impl Fn(&AccessToken) -> bool,
    ) -> Result<AccessToken, TokenError> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let _guard = self.inner.fetch.lock().await;
        if let Some(t) = self.current().filter(|t| good(t)) {
            return Ok(t);
        }
        let finished = self.inner.attempts.load(Ordering::Acquire);
        if finished != seen && self.inner.last_failure.load(Ordering::Acquire) == finished {
            return Err(TokenError::Endpoint(Box::new(SharedFailure)));
        }
        let generation = self.current().map_or(0, |t| t.generation) + 1;
        let result = self.inner.request(generation).await;
        let n = self.inner.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        if result.is_err() {
            self.inner.last_failure.store(n, Ordering::Release);
        }
        let token = result?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    fn refresh_in_background(&self) {
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let now = Instant::now();
            let result = this.fetch_unless(|t| now < t.refresh_from).await;
            if let Err(_e) = result {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "tower_auth::oauth", error = %_e, "background token refresh failed");
            }
            this.inner.refreshing.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    async fn request(&self, generation: u64) -> Result<AccessToken, TokenError> {
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_auth_client_credentials_token_requests_total").increment(1);
        let mut req = self.oauth.exchange_client_credentials();
        for s in &self.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        for r in &self.resources {
            req = req.add_extra_param("resource", r.clone());
        }
        let http = self.http.clone();
        let dpop = self.dpop.clone();
        let endpoint: Arc<str> = Arc::from(self.token_endpoint.as_str());
        let send = move |r: oauth2::HttpRequest| {
            let http = http.clone();
            let dpop = dpop.clone();
            let endpoint = Arc::clone(&endpoint);
            async move {
                match dpop {
                    Some(d) => d.send_token_request(http, &endpoint, r).await,
                    None => crate::token_request::send(http, r).await,
                }
            }
        };
        let started = Instant::now();
        let res = req.request_async(&send).await.map_err(|e| match e {
            oauth2::RequestTokenError::ServerResponse(r) => {
                TokenError::Refused(r.error().to_string())
            }
            oauth2::RequestTokenError::Request(e) => TokenError::Endpoint(Box::new(e)),
            // Parse errors carry the response body, which may hold a token: keep nothing of it.
            _ => TokenError::Malformed,
        })?;
        // Bounded, so neither an `expires_in` of 0 (a fetch per call) nor a huge one (overflow,
        // a token kept forever) is taken literally.
        let lifetime = res
            .expires_in()
            .unwrap_or(self.default_lifetime)
            .clamp(MIN_LIFETIME, MAX_LIFETIME);
        // A token the server bound to our DPoP key says so (RFC 9449 section 5); one it did
        // not bind is a Bearer token.
        let scheme = match res.token_type() {
            BasicTokenType::Extension(t)
                if self.dpop.is_some() && t.eq_ignore_ascii_case("dpop") =>
            {
                "DPoP"
            }
            _ => "Bearer",
        };
        let mut header = HeaderValue::try_from(format!("{scheme} {}", res.access_token().secret()))
            .map_err(|_| TokenError::Malformed)?;
        header.set_sensitive(true);
        let skew = self.skew.min(lifetime / 4);
        Ok(AccessToken {
            header,
            usable_until: started + lifetime - skew,
            refresh_from: started + lifetime * 3 / 4,
            generation,
        })
    }
}

/// Builds a [`ClientCredentials`] token source.
#[must_use]
pub struct ClientCredentialsBuilder {
    token_endpoint: String,
    registration: ClientRegistration,
    skew: Duration,
    default_lifetime: Duration,
    dpop: Option<DpopKey>,
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.registration.client_id)
            .field("client_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ClientCredentialsBuilder {
    /// The client id (required).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.registration = self.registration.client_id(id);
        self
    }

    /// The client secret (required). Never logged or printed.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.registration = self.registration.client_secret(secret);
        self
    }

    /// How to authenticate to the token endpoint (default `client_secret_basic`).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.registration = self.registration.client_auth(auth);
        self
    }

    /// The scopes to ask for.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.registration = self.registration.scopes(scopes);
        self
    }

    /// RFC 8707 `resource` indicators: the APIs the token is for.
    pub fn resources<I, T>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.registration = self.registration.resources(resources);
        self
    }

    /// The whole [`ClientRegistration`] (client id, secret, client authentication, scopes,
    /// resources, HTTP client) at once, replacing what the other client setters set.
    pub fn registration(mut self, registration: ClientRegistration) -> Self {
        self.registration = registration;
        self
    }

    /// Stop using a token this long before it expires (default 10 s; at most a quarter of the
    /// token's lifetime is taken).
    pub fn expiry_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// The lifetime assumed when the token response has no `expires_in` (default 5 minutes).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// Requests DPoP-bound tokens (RFC 9449) for `key` (make one with
    /// [`DpopKey::generate`]): each token request carries a proof (sent once more with the
    /// authorization server's nonce when it asks for one), and
    /// [`ClientCredentialsLayer`](super::ClientCredentialsLayer) sends each request with a
    /// fresh proof. A token the server answers with `token_type` `Bearer` is sent as Bearer.
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// The HTTP client for the token endpoint (deadline, size cap, transport).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.registration = self.registration.http_client(client);
        self
    }

    /// Allows a plain-http token endpoint when no [`http_client`](Self::http_client) is given.
    /// Only for loopback tests: the client secret crosses the wire in clear.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.registration = self.registration.insecure_allow_http(allow);
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<ClientCredentials, ConfigError> {
        let http = self.registration.http()?;
        http.check_url(&self.token_endpoint)
            .map_err(|e| e.for_setting("token_endpoint"))?;
        self.registration.check(Secret::Required)?;
        if self.default_lifetime.is_zero() {
            return Err(ConfigError::new(
                "default_lifetime",
                "0s",
                "must be greater than zero",
            ));
        }
        let token_url = TokenUrl::new(self.token_endpoint.clone()).map_err(|_| {
            ConfigError::new("token_endpoint", &self.token_endpoint, "not a valid URL")
        })?;
        let ClientRegistration {
            client_id,
            client_secret,
            auth,
            scopes,
            resources,
            ..
        } = self.registration;
        let oauth = BasicClient::new(ClientId::new(client_id.clone()))
            .set_client_secret(ClientSecret::new(client_secret.unwrap_or_default()))
            .set_auth_type(auth.auth_type())
            .set_token_uri(token_url);
        Ok(ClientCredentials {
            inner: Arc::new(Inner {
                oauth,
                http,
                token_endpoint: self.token_endpoint,
                client_id,
                scopes,
                resources,
                skew: self.skew,
                default_lifetime: self.default_lifetime,
                current: RwLock::new(None),
                dpop: self.dpop.map(|k| Arc::new(ClientDpop::new(k))),
                fetch: tokio::sync::Mutex::new(()),
                refreshing: AtomicBool::new(false),
                attempts: AtomicU64::new(0),
                last_failure: AtomicU64::new(0),
            }),
        })
    }
}
