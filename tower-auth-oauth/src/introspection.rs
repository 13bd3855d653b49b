//! Opaque access tokens checked by OAuth 2.0 token introspection ([RFC 7662]).
//!
//! [`IntrospectionAuthenticator`] claims every `Authorization: Bearer` value (any `token68`), so compose it
//! **last**: after API keys (which claim their prefixes) and JWT (which claims three-segment
//! compact JWS values). The path is chosen by the token's shape before anything is checked; a
//! token rejected by one scheme is never tried with another.
//!
//! For each token it asks the authorization server's introspection endpoint, authenticating as
//! the resource server with `client_secret_basic` (default) or `client_secret_post`, and then:
//!
//! - accepts only `"active": true` (the JSON boolean; `"true"` or a missing member is inactive);
//! - checks the answer like a JWT: rejects a token whose `exp` has passed, whose `nbf` is still
//!   ahead (beyond the [leeway](IntrospectionAuthenticatorBuilder::leeway), 60 s by default),
//!   whose `iss` differs from the configured [issuer](IntrospectionAuthenticatorBuilder::issuer),
//!   or whose `aud` contains none of the configured
//!   [audiences](IntrospectionAuthenticatorBuilder::audiences). Audiences are required: a
//!   resource server that accepts tokens minted for any API accepts tokens stolen from every
//!   other API of the authorization server, so [`build`](IntrospectionAuthenticatorBuilder::build)
//!   refuses a configuration without them unless
//!   [`insecure_accept_any_audience`](IntrospectionAuthenticatorBuilder::insecure_accept_any_audience)
//!   says so;
//! - rejects a Bearer token whose answer carries `cnf` (a sender-constrained token, RFC 8705 /
//!   RFC 9449): such a token must not be accepted as a plain Bearer token. A DPoP-bound token
//!   (`cnf.jkt`) is accepted with its proof through [`DpopIntrospection`](crate::dpop::DpopIntrospection);
//! - maps `sub`, `client_id`, `scope`, `iss` and `exp` onto the [`Principal`]: the subject is
//!   `sub` (else `client_id`); the kind is [`PrincipalKind::Service`] when there is no `sub` or it
//!   equals `client_id` (a client-credentials token), [`PrincipalKind::User`] otherwise; the full
//!   response is attached as [`IntrospectionClaims`].
//!
//! # Token scanning
//!
//! Every unknown token costs a call to the authorization server, so a flood of random tokens
//! would be relayed to it without bound. Two limits stop that: a token longer than
//! [`max_token_length`](IntrospectionAuthenticatorBuilder::max_token_length) (4 KiB by
//! default) is refused (401 `invalid_token`) without a call, and at most
//! [`max_in_flight`](IntrospectionAuthenticatorBuilder::max_in_flight) calls (64 by default)
//! run at once: a request that would start another gets 503 with `Retry-After` at once,
//! without waiting and without being cached. Requests for one token share one call, and
//! cached answers need none, so the limit only meets tokens the cache has not seen.
//!
//! # Caching
//!
//! Results are cached by the SHA-256 of the token (the token itself is not kept): an active
//! result for the configured TTL (default 30 s) **but never past the token's `exp`**, an inactive
//! result for the negative TTL (default 10 s). Concurrent requests with one token share one
//! introspection call. A revocation at the authorization server is therefore seen within the TTL;
//! lower it if that is too long for you. Endpoint failures, non-200 answers, malformed JSON and
//! timeouts (default 5 s) are 503 and are never cached.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder};
//! use tower_auth_core::{AuthenticateLayer, RequireScopesLayer};
//! use tower_auth_oauth::introspection::IntrospectionAuthenticator;
//!
//! let introspection = IntrospectionAuthenticator::builder("https://auth.example.com/token/introspection")
//!     .client_id("my-api")
//!     .client_secret("s3cret")
//!     .audiences(["https://api.example.com"])
//!     .issuer("https://auth.example.com")
//!     .build()
//!     .unwrap();
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(introspection))
//!     .layer(RequireScopesLayer::all_of(["read:items"]))
//!     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
//! # let _ = svc;
//! ```
//!
//! [RFC 7662]: https://www.rfc-editor.org/rfc/rfc7662

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tower_auth_core::cache::{AuthCache, CacheRead, Loaded};
use tower_auth_core::client::{FetchError, HttpClient};
use tower_auth_core::clock::{Clock, SystemClock};
use tower_auth_core::credential::{Found, Location, bearer_token};
use tower_auth_core::{
    AuthError, Authentication, Authenticator, BoxAuthFuture, CacheConfig, ConfigError, Principal,
    PrincipalKind, Scheme, Scopes,
};

pub use crate::client::ClientAuth;
use crate::client::{ClientRegistration, Secret};

#[cfg(feature = "tracing")]
const TARGET: &str = "tower_auth::oauth";

/// Default longest token sent to the endpoint (4 KiB): longer ones are refused without a call.
pub const DEFAULT_MAX_TOKEN_LENGTH: usize = 4096;
/// Default most introspection calls running at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default leeway on `nbf` (60 s), for clock skew between the authorization server and here.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The introspection response of an accepted token, attached to the [`Principal`] for handlers
/// that need members we do not map (`username`, custom members).
#[derive(Clone, Debug)]
pub struct IntrospectionClaims(Map<String, Value>);

impl IntrospectionClaims {
    /// A member of the response.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The whole response object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Why an introspection call failed (the request then gets 503).
#[derive(Debug)]
#[non_exhaustive]
pub enum IntrospectionError {
    /// The call itself failed: connection, deadline, size cap, redirect.
    Fetch(FetchError),
    /// The endpoint answered with a status other than 200.
    Status(http::StatusCode),
    /// The body is not a JSON object.
    Malformed(serde_json::Error),
    /// [`max_in_flight`](IntrospectionAuthenticatorBuilder::max_in_flight) calls were already
    /// running: no call was made.
    Overloaded,
}

impl fmt::Display for IntrospectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch(e) => write!(f, "introspection call failed: {e}"),
            Self::Status(s) => write!(f, "introspection endpoint answered {s}"),
            Self::Malformed(_) => f.write_str("introspection response is not a JSON object"),
            Self::Overloaded => f.write_str("too many introspection calls in flight"),
        }
    }
}

impl std::error::Error for IntrospectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Fetch(e) => Some(e),
            Self::Malformed(e) => Some(e),
            Self::Status(_) | Self::Overloaded => None,
        }
    }
}

/// The cached outcome for one token: a principal, or the fixed reason it is rejected.
type Verdict = Result<Principal, &'static str>;

/// The RFC 7662 authenticator. See the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct IntrospectionAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Uri,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    basic: HeaderValue,
    client: HttpClient,
    /// Keyed by the SHA-256 of the token: a fast hasher (seeded per process) is enough for the
    /// table, SipHash would only add time to every lookup.
    cache: AuthCache<[u8; 32], Verdict, foldhash::fast::RandomState>,
    audiences: Vec<String>,
    any_audience: bool,
    issuer: Option<String>,
    leeway: Duration,
    max_token_length: usize,
    /// One permit per call allowed in flight.
    in_flight: tokio::sync::Semaphore,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for IntrospectionAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionAuthenticator")
            .field("endpoint", &self.inner.endpoint)
            .field("client_id", &self.inner.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth", &self.inner.auth)
            .field("audiences", &self.inner.audiences)
            .field("insecure_accept_any_audience", &self.inner.any_audience)
            .field("issuer", &self.inner.issuer)
            .field("leeway", &self.inner.leeway)
            .field("max_token_length", &self.inner.max_token_length)
            .field("cache", &self.inner.cache.config())
            .finish()
    }
}

impl IntrospectionAuthenticator {
    /// Starts a builder for the introspection endpoint at `endpoint`.
    pub fn builder(endpoint: impl Into<String>) -> IntrospectionAuthenticatorBuilder {
        IntrospectionAuthenticatorBuilder {
            endpoint: endpoint.into(),
            registration: ClientRegistration::default(),
            cache: CacheConfig::default(),
            audiences: Vec::new(),
            any_audience: false,
            issuer: None,
            leeway: DEFAULT_LEEWAY,
            max_token_length: DEFAULT_MAX_TOKEN_LENGTH,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            clock: Arc::new(SystemClock),
        }
    }

    /// Forgets every cached result (after a mass revocation, for example).
    pub fn clear_cache(&self) {
        self.inner.cache.invalidate_all();
    }
}

impl Authenticator for IntrospectionAuthenticator {
    type Credential = String;
    type Future = BoxAuthFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
        Ok(bearer_token(&parts.headers)?
            .map(|t| Found::new(t.to_owned(), Location::Authorization, Scheme::Introspection)))
    }

    /// The future continues from [`authenticate_now`](Self::authenticate_now), the trait's
    /// convention.
    fn authenticate(&self, token: String) -> BoxAuthFuture {
        match self.authenticate_now(token) {
            Authentication::Ready(result) => Box::pin(std::future::ready(result)),
            Authentication::Pending(fut) => fut,
        }
    }

    /// A cached verdict answers at once; a miss goes to the endpoint.
    fn authenticate_now(&self, token: String) -> Authentication<BoxAuthFuture> {
        self.inner.authenticate_now(token, None)
    }
}

/// An introspection response body: a JSON object.
fn parse_response(body: &[u8]) -> Result<Map<String, Value>, IntrospectionError> {
    serde_json::from_slice(body).map_err(IntrospectionError::Malformed)
}

#[cfg(fuzzing)]
impl IntrospectionAuthenticator {
    /// The verdict on a response body read at `now`: what an endpoint answering 200 decides.
    pub(crate) fn judge_response(
        &self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Result<Principal, &'static str>, IntrospectionError> {
        Ok(self.inner.judge(parse_response(body)?, now))
    }
}

/// The cache key of a token: its SHA-256 (the token itself is never kept).
fn cache_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Inner {
    /// Refuses a token longer than the maximum before anything else: no cache entry, no call.
    fn check_length(&self, token: &str) -> Result<(), AuthError> {
        if token.len() > self.max_token_length {
            record("rejected");
            return Err(AuthError::invalid_token("token too long"));
        }
        Ok(())
    }

    /// A cached verdict answers at once; a miss goes to the endpoint. `proof_jkt`: the
    /// thumbprint of the DPoP proof key the token came with (`DPoP` scheme), `None` for a
    /// Bearer token.
    fn authenticate_now(
        self: &Arc<Self>,
        token: String,
        proof_jkt: Option<String>,
    ) -> Authentication<BoxAuthFuture> {
        if let Err(e) = self.check_length(&token) {
            return Authentication::Ready(Err(e));
        }
        let key = cache_key(&token);
        match self.cache.get_now(&key) {
            CacheRead::Hit(verdict) => {
                Authentication::Ready(self.decide(Ok(verdict), proof_jkt.as_deref()))
            }
            CacheRead::Miss(missed) => {
                let inner = Arc::clone(self);
                Authentication::Pending(Box::pin(async move {
                    let verdict = inner
                        .cache
                        .load_missed(key, missed, || {
                            let this = Arc::clone(&inner);
                            let token = token.clone();
                            async move { this.load(&token).await }
                        })
                        .await;
                    inner.decide(verdict, proof_jkt.as_deref())
                }))
            }
        }
    }

    /// The outcome of a cached or loaded verdict (or of a failed load), for a token that came
    /// with a DPoP proof by the key of thumbprint `proof_jkt`, or as Bearer (`None`).
    fn decide(
        &self,
        verdict: Result<Option<Verdict>, Arc<IntrospectionError>>,
        proof_jkt: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let outcome = match verdict {
            Ok(Some(Ok(principal))) => {
                // The cache never outlives `exp`, but check anyway: the clock decides.
                match principal.expires_at() {
                    Some(exp) if exp <= self.clock.now() => {
                        Err(AuthError::invalid_token("token expired"))
                    }
                    _ => binding(principal, proof_jkt),
                }
            }
            Ok(Some(Err(reason))) => Err(AuthError::invalid_token(reason)),
            Ok(None) => Err(AuthError::invalid_token("token is not active")),
            Err(e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: TARGET, error = %e, "introspection failed");
                Err(AuthError::unavailable("introspection endpoint unavailable")
                    .with_source(Box::new(e) as Box<dyn std::error::Error + Send + Sync>))
            }
        };
        record(match &outcome {
            Ok(_) => "active",
            Err(e) if e.kind() == tower_auth_core::AuthErrorKind::Unavailable => "error",
            Err(_) => "rejected",
        });
        outcome
    }

    async fn load(&self, token: &str) -> Result<Loaded<Verdict>, IntrospectionError> {
        let doc = self.call(token).await?;
        let now = self.clock.now();
        let verdict = self.judge(doc, now);
        let max_ttl = match &verdict {
            Ok(p) => p
                .expires_at()
                .map(|exp| exp.duration_since(now).unwrap_or(Duration::ZERO)),
            Err(_) => Some(self.cache.config().negative_ttl()),
        };
        Ok(Loaded::Found {
            value: verdict,
            max_ttl,
        })
    }

    async fn call(&self, token: &str) -> Result<Map<String, Value>, IntrospectionError> {
        // Never waits: past the cap the request gets 503 at once, so a flood neither reaches
        // the authorization server nor queues here. Held until the answer is read.
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| IntrospectionError::Overloaded)?;
        record_call();
        let req = self
            .request(token)
            .map_err(|e| IntrospectionError::Fetch(FetchError::Transport(Box::new(e))))?;
        let res = self
            .client
            .send(req)
            .await
            .map_err(IntrospectionError::Fetch)?;
        if res.status != http::StatusCode::OK {
            return Err(IntrospectionError::Status(res.status));
        }
        parse_response(&res.body)
    }

    fn request(&self, token: &str) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", "access_token");
        let mut req = Request::post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        match self.auth {
            ClientAuth::ClientSecretBasic => {
                req = req.header(AUTHORIZATION, self.basic.clone());
            }
            ClientAuth::ClientSecretPost => {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", &self.client_secret);
            }
        }
        req.body(Full::new(Bytes::from(form.finish())))
    }

    /// Decides on an introspection response.
    fn judge(&self, doc: Map<String, Value>, now: SystemTime) -> Verdict {
        if doc.get("active") != Some(&Value::Bool(true)) {
            return Err("token is not active");
        }
        // `token_type_hint` is only a hint: an authorization server may answer for a refresh
        // token presented as a Bearer token. Refresh tokens are not access tokens.
        if doc
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("refresh_token"))
        {
            return Err("not an access token");
        }
        let exp = match doc.get("exp") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
                    .ok_or("token is not active")?,
            ),
        };
        if exp.is_some_and(|exp| exp <= now) {
            return Err("token expired");
        }
        if let Some(nbf) = doc.get("nbf") {
            let nbf = nbf
                .as_u64()
                .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
                .ok_or("token is not active")?;
            if nbf > now + self.leeway {
                return Err("token not yet valid");
            }
        }
        // `cnf` (a sender-constrained token) is checked against the request's scheme by
        // `binding`, once the verdict is out of the cache.
        let str_member = |name: &str| doc.get(name).and_then(Value::as_str);
        if let Some(expected) = &self.issuer
            && str_member("iss") != Some(expected.as_str())
        {
            return Err("token issuer not accepted");
        }
        if !self.any_audience {
            let ok = match doc.get("aud") {
                Some(Value::String(a)) => self.audiences.iter().any(|x| x == a),
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audiences.iter().any(|x| x == a)),
                _ => false,
            };
            if !ok {
                return Err("token audience not accepted");
            }
        }
        let client_id = str_member("client_id");
        let sub = str_member("sub");
        let subject = sub.or(client_id).ok_or("token has no subject")?;
        let kind = if sub.is_none() || sub == client_id {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        };
        let mut b = Principal::builder(subject, Scheme::Introspection)
            .kind(kind)
            .scope_set(
                str_member("scope").map_or_else(Scopes::default, Scopes::from_space_separated),
            )
            .maybe_expires_at(exp);
        if let Some(iss) = str_member("iss") {
            b = b.issuer(iss);
        }
        Ok(b.extension(IntrospectionClaims(doc)).build())
    }
}

/// The token's binding against the request: a Bearer token must carry no `cnf` (an mTLS or
/// DPoP binding nobody checks must not pass as a plain Bearer token); a token sent with a DPoP
/// proof must carry `cnf.jkt`, the thumbprint of the proof key (RFC 9449 section 6.2).
fn binding(principal: Principal, proof_jkt: Option<&str>) -> Result<Principal, AuthError> {
    let cnf = principal
        .extension::<IntrospectionClaims>()
        .and_then(|c| c.0.get("cnf"));
    match (proof_jkt, cnf) {
        (None, None) => Ok(principal),
        (None, Some(_)) => Err(AuthError::invalid_token(
            "sender-constrained token not accepted as bearer",
        )),
        (Some(proof), Some(cnf)) => {
            match cnf.get("jkt").and_then(Value::as_str) {
                Some(jkt) if jkt == proof => Ok(principal),
                Some(_) => Err(AuthError::invalid_dpop_proof(
                    "dpop proof key does not match the token",
                )),
                None => Err(AuthError::invalid_token("token is not bound to a dpop key")
                    .with_challenge("DPoP")),
            }
        }
        (Some(_), None) => {
            Err(AuthError::invalid_token("token is not bound to a dpop key").with_challenge("DPoP"))
        }
    }
}

impl IntrospectionAuthenticator {
    /// Authenticates `token`, sent with a DPoP proof whose key has the RFC 7638 thumbprint
    /// `proof_jkt` (already checked): the answer must carry `cnf.jkt` = `proof_jkt`.
    pub(crate) fn authenticate_bound(&self, token: String, proof_jkt: String) -> BoxAuthFuture {
        match self.inner.authenticate_now(token, Some(proof_jkt)) {
            Authentication::Ready(result) => Box::pin(std::future::ready(result)),
            Authentication::Pending(fut) => fut,
        }
    }
}

#[allow(unused_variables)]
fn record(outcome: &'static str) {
    // One arm, and so one `static` key, per outcome the caller passes: counting allocates
    // nothing. Any other outcome would still be counted under its own name.
    #[cfg(feature = "metrics")]
    match outcome {
        "active" => {
            metrics::counter!("tower_auth_introspection_requests_total", "outcome" => "active")
        }
        "rejected" => {
            metrics::counter!("tower_auth_introspection_requests_total", "outcome" => "rejected")
        }
        "error" => {
            metrics::counter!("tower_auth_introspection_requests_total", "outcome" => "error")
        }
        other => metrics::counter!("tower_auth_introspection_requests_total", "outcome" => other),
    }
    .increment(1);
}

fn record_call() {
    #[cfg(feature = "metrics")]
    metrics::counter!("tower_auth_introspection_calls_total").increment(1);
}

/// Builds an [`IntrospectionAuthenticator`].
#[must_use]
pub struct IntrospectionAuthenticatorBuilder {
    endpoint: String,
    registration: ClientRegistration,
    cache: CacheConfig,
    audiences: Vec<String>,
    any_audience: bool,
    issuer: Option<String>,
    leeway: Duration,
    max_token_length: usize,
    max_in_flight: usize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for IntrospectionAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionAuthenticatorBuilder")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.registration.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth", &self.registration.auth)
            .finish_non_exhaustive()
    }
}

impl IntrospectionAuthenticatorBuilder {
    /// The resource server's client id at the authorization server (required).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.registration = self.registration.client_id(id);
        self
    }

    /// The resource server's client secret (required). Never logged or printed.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.registration = self.registration.client_secret(secret);
        self
    }

    /// How to authenticate to the endpoint (default `client_secret_basic`).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.registration = self.registration.client_auth(auth);
        self
    }

    /// The resource server's whole [`ClientRegistration`] (client id, secret, client
    /// authentication, HTTP client) at once, replacing what the setters above and
    /// [`http_client`](Self::http_client) set. Its scopes and resources are not used here.
    pub fn registration(mut self, registration: ClientRegistration) -> Self {
        self.registration = registration;
        self
    }

    /// Accept only tokens whose `aud` (a string, or an array of strings) contains one of these;
    /// an answer without `aud` is refused. Required, unless
    /// [`insecure_accept_any_audience`](Self::insecure_accept_any_audience).
    pub fn audiences<I, T>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Accepts tokens for any audience, `aud` unchecked: only for an authorization server
    /// that puts no `aud` in its introspection answers and mints tokens for this API alone.
    /// Otherwise a token minted for another API (and stolen from it) is accepted here. Refused
    /// together with [`audiences`](Self::audiences).
    pub fn insecure_accept_any_audience(mut self, accept: bool) -> Self {
        self.any_audience = accept;
        self
    }

    /// Accept only tokens whose `iss` is exactly this (an answer without `iss` is refused).
    /// Without it, `iss` is not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// How far ahead of the clock an answer's `nbf` may be (default 60 s, at most 10 min), for
    /// clock skew with the authorization server.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest token sent to the endpoint (default [4 KiB](DEFAULT_MAX_TOKEN_LENGTH), at
    /// least 1): a longer one is refused (401 `invalid_token`) without a call or a cache entry.
    pub fn max_token_length(mut self, bytes: usize) -> Self {
        self.max_token_length = bytes;
        self
    }

    /// The most introspection calls running at once (default [64](DEFAULT_MAX_IN_FLIGHT), at
    /// least 1): a request needing one more gets 503 with `Retry-After` at once, and nothing is
    /// cached for it. Requests sharing a token share a call; cache hits make none.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls;
        self
    }

    /// The result cache (default TTL 30 s, negative TTL 10 s, 100,000 entries).
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// The HTTP client (deadline, size cap, transport). Default: [`HttpClient`]'s defaults.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.registration = self.registration.http_client(client);
        self
    }

    /// Allows a plain-http endpoint when no [`http_client`](Self::http_client) is given. Only
    /// for loopback tests: the token and the client secret cross the wire in clear.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.registration = self.registration.insecure_allow_http(allow);
        self
    }

    /// The clock used for `exp` (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<IntrospectionAuthenticator, ConfigError> {
        let client = self.registration.http()?;
        let endpoint = client
            .check_url(&self.endpoint)
            .map_err(|e| e.for_setting("endpoint"))?;
        self.registration.check(Secret::Required)?;
        let ClientRegistration {
            client_id,
            client_secret,
            auth,
            ..
        } = self.registration;
        let client_secret = client_secret.unwrap_or_default();
        match (self.audiences.is_empty(), self.any_audience) {
            (true, false) => {
                return Err(ConfigError::new(
                    "audiences",
                    "[]",
                    "required: the audiences this API accepts (or insecure_accept_any_audience)",
                ));
            }
            (false, true) => {
                return Err(ConfigError::new(
                    "insecure_accept_any_audience",
                    "true",
                    "conflicts with the configured audiences",
                ));
            }
            _ => {}
        }
        if let Some(empty) = self.audiences.iter().find(|a| a.is_empty()) {
            return Err(ConfigError::new(
                "audiences",
                format!("{empty:?}"),
                "must not be empty",
            ));
        }
        if self.leeway > tower_auth_jwt::MAX_LEEWAY {
            return Err(ConfigError::new(
                "leeway",
                format!("{}s", self.leeway.as_secs_f64()),
                "must be at most 10 minutes",
            ));
        }
        if self.max_token_length == 0 {
            return Err(ConfigError::new(
                "max_token_length",
                "0",
                "must be at least 1",
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "max_in_flight",
                self.max_in_flight.to_string(),
                "must be at least 1 and within tokio's semaphore limit",
            ));
        }
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&client_id),
            enc(&client_secret)
        ));
        let mut basic = HeaderValue::try_from(format!("Basic {credentials}"))
            .map_err(|_| ConfigError::new("client_id", &client_id, "not encodable"))?;
        basic.set_sensitive(true);
        Ok(IntrospectionAuthenticator {
            inner: Arc::new(Inner {
                endpoint,
                client_id,
                client_secret,
                auth,
                basic,
                client,
                cache: AuthCache::with_hasher(
                    "introspection",
                    self.cache,
                    foldhash::fast::RandomState::default(),
                ),
                audiences: self.audiences,
                any_audience: self.any_audience,
                issuer: self.issuer,
                leeway: self.leeway,
                max_token_length: self.max_token_length,
                in_flight: tokio::sync::Semaphore::new(self.max_in_flight),
                clock: self.clock,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::HeaderMap;
    use tower::{Layer, ServiceExt, service_fn};
    use tower_auth_core::AuthenticateLayer;
    use tower_auth_core::clock::ManualClock;

    const NOW: u64 = 1_800_000_000;

    #[derive(Clone)]
    struct Op {
        calls: Arc<AtomicUsize>,
        responses: Arc<HashMap<&'static str, (u16, Value)>>,
        delay: Duration,
        /// Each answer waits for a permit (one per answer), so a test can hold calls open.
        hold: Arc<tokio::sync::Semaphore>,
    }

    /// A loopback introspection endpoint: checks the client authentication the way an
    /// authorization server would, counts calls, and answers per token.
    async fn endpoint(
        State(op): State<Op>,
        headers: HeaderMap,
        body: String,
    ) -> (http::StatusCode, axum::Json<Value>) {
        op.calls.fetch_add(1, Ordering::SeqCst);
        op.hold.acquire().await.unwrap().forget();
        tokio::time::sleep(op.delay).await;
        let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let basic_ok = headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some("Basic cnMlM0ExOnNlY3JldCUyNg==");
        let post_ok = form.get("client_id").map(String::as_str) == Some("rs:1")
            && form.get("client_secret").map(String::as_str) == Some("secret&");
        if !(basic_ok ^ post_ok) {
            return (
                http::StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "invalid_client"})),
            );
        }
        let token = form.get("token").cloned().unwrap_or_default();
        let (status, doc) = op
            .responses
            .get(token.as_str())
            .cloned()
            .unwrap_or((200, serde_json::json!({"active": false})));
        (http::StatusCode::from_u16(status).unwrap(), axum::Json(doc))
    }

    async fn server(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let hold = Arc::new(tokio::sync::Semaphore::new(
            tokio::sync::Semaphore::MAX_PERMITS,
        ));
        server_held(delay, hold).await
    }

    /// [`server`] whose answers each wait for a permit of `hold`.
    async fn server_held(
        delay: Duration,
        hold: Arc<tokio::sync::Semaphore>,
    ) -> (String, Arc<AtomicUsize>) {
        let active = |extra: Value| {
            let mut doc = serde_json::json!({
                "active": true, "sub": "alice", "client_id": "web", "scope": "read:items write:items",
                "iss": "https://as.example", "aud": "https://api.example", "exp": NOW + 60,
            });
            for (k, v) in extra.as_object().unwrap() {
                doc[k] = v.clone();
            }
            (200, doc)
        };
        let responses: HashMap<&'static str, (u16, Value)> = [
            ("good", active(serde_json::json!({}))),
            ("service", active(serde_json::json!({"sub": "web"}))),
            (
                "aud-array",
                active(serde_json::json!({"aud": ["other", "https://api.example"]})),
            ),
            (
                "aud-other",
                active(serde_json::json!({"aud": "https://other.example"})),
            ),
            (
                "iss-other",
                active(serde_json::json!({"iss": "https://evil.example"})),
            ),
            ("expired", active(serde_json::json!({"exp": NOW - 1}))),
            ("soon", active(serde_json::json!({"exp": NOW + 2}))),
            ("string-true", active(serde_json::json!({"active": "true"}))),
            (
                "refresh",
                active(serde_json::json!({"token_type": "refresh_token"})),
            ),
            ("far-exp", active(serde_json::json!({"exp": u64::MAX}))),
            ("nbf-ahead", active(serde_json::json!({"nbf": NOW + 61}))),
            ("nbf-leeway", active(serde_json::json!({"nbf": NOW + 60}))),
            ("nbf-string", active(serde_json::json!({"nbf": "now"}))),
            ("no-aud", active(serde_json::json!({"aud": null}))),
            ("no-iss", active(serde_json::json!({"iss": null}))),
            (
                "cnf",
                active(serde_json::json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})),
            ),
            ("boom", (500, serde_json::json!({"error": "server_error"}))),
        ]
        .into_iter()
        .collect();
        let op = Op {
            calls: Arc::new(AtomicUsize::new(0)),
            responses: Arc::new(responses),
            delay,
            hold,
        };
        let calls = Arc::clone(&op.calls);
        let app = axum::Router::new()
            .route("/introspect", axum::routing::post(endpoint))
            .with_state(op);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/introspect"), calls)
    }

    fn builder(url: &str, clock: &ManualClock) -> IntrospectionAuthenticatorBuilder {
        IntrospectionAuthenticator::builder(url)
            .client_id("rs:1")
            .client_secret("secret&")
            .audiences(["https://api.example"])
            .issuer("https://as.example")
            .insecure_allow_http(true)
            .clock(clock.clone())
    }

    fn clock() -> ManualClock {
        ManualClock::new(UNIX_EPOCH + Duration::from_secs(NOW))
    }

    /// The status and the whole response of a request with `token`.
    async fn call_response(
        auth: &IntrospectionAuthenticator,
        token: &str,
    ) -> (http::StatusCode, http::Response<()>) {
        let svc =
            AuthenticateLayer::required(auth.clone()).layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(http::Response::new(()))
            }));
        let req = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        (res.status(), res)
    }

    async fn call(
        auth: &IntrospectionAuthenticator,
        token: &str,
    ) -> (http::StatusCode, Option<Principal>) {
        let svc = AuthenticateLayer::required(auth.clone()).layer(service_fn(
            |req: Request<()>| async move {
                let p = req.extensions().get::<Principal>().cloned();
                let mut res = http::Response::new(());
                res.extensions_mut().insert(p);
                Ok::<_, Infallible>(res)
            },
        ));
        let req = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        let p = res
            .extensions()
            .get::<Option<Principal>>()
            .cloned()
            .flatten();
        (res.status(), p)
    }

    #[tokio::test]
    async fn active_token_maps_to_a_principal_and_is_cached() {
        let (url, calls) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        let (status, p) = call(&auth, "good").await;
        assert_eq!(status, 200);
        let p = p.unwrap();
        assert_eq!(p.subject(), "alice");
        assert_eq!(p.kind(), PrincipalKind::User);
        assert_eq!(p.scheme(), Scheme::Introspection);
        assert_eq!(p.issuer(), Some("https://as.example"));
        assert!(p.scopes().contains_all(["read:items", "write:items"]));
        assert_eq!(
            p.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(NOW + 60))
        );
        assert_eq!(
            p.extension::<IntrospectionClaims>()
                .unwrap()
                .get("client_id"),
            Some(&Value::from("web"))
        );
        for _ in 0..5 {
            assert_eq!(call(&auth, "good").await.0, 200);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn client_credentials_tokens_are_services() {
        let (url, _) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        let p = call(&auth, "service").await.1.unwrap();
        assert_eq!(p.kind(), PrincipalKind::Service);
    }

    #[tokio::test]
    async fn both_client_authentication_methods_work() {
        let (url, _) = server(Duration::ZERO).await;
        let post = builder(&url, &clock())
            .client_auth(ClientAuth::ClientSecretPost)
            .build()
            .unwrap();
        assert_eq!(call(&post, "good").await.0, 200);
        let basic = builder(&url, &clock()).build().unwrap();
        assert_eq!(call(&basic, "good").await.0, 200);
        // A wrong secret makes the endpoint answer 401: that is the server failing us, 503.
        let wrong = builder(&url, &clock())
            .client_secret("nope")
            .build()
            .unwrap();
        assert_eq!(call(&wrong, "good").await.0, 503);
    }

    #[tokio::test]
    async fn rejections_are_401_and_cached_briefly() {
        let (url, calls) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        for token in [
            "unknown",
            "aud-other",
            "iss-other",
            "expired",
            "string-true",
            "refresh",
            "far-exp",
            "nbf-ahead",
            "nbf-string",
            "no-aud",
            "no-iss",
            "cnf",
        ] {
            assert_eq!(call(&auth, token).await.0, 401, "{token}");
            assert_eq!(call(&auth, token).await.0, 401, "{token}");
        }
        // One call per token: the second request was answered from the negative entry.
        assert_eq!(calls.load(Ordering::SeqCst), 12);
        assert_eq!(call(&auth, "aud-array").await.0, 200);
    }

    #[tokio::test]
    async fn any_audience_only_when_a_named_setting_says_so_and_issuer_only_when_set() {
        let (url, _) = server(Duration::ZERO).await;
        let base = || {
            IntrospectionAuthenticator::builder(url.clone())
                .client_id("rs:1")
                .client_secret("secret&")
                .insecure_allow_http(true)
                .clock(clock())
        };
        let e = base().build().unwrap_err();
        assert_eq!(e.setting(), "audiences");
        assert!(
            e.to_string().contains("insecure_accept_any_audience"),
            "{e}"
        );
        let e = base()
            .audiences(["https://api.example"])
            .insecure_accept_any_audience(true)
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "insecure_accept_any_audience");

        let any = base().insecure_accept_any_audience(true).build().unwrap();
        for token in ["aud-other", "no-aud", "iss-other", "no-iss"] {
            assert_eq!(call(&any, token).await.0, 200, "{token}");
        }
        let strict = base().audiences(["https://api.example"]).build().unwrap();
        assert_eq!(call(&strict, "aud-other").await.0, 401);
        assert_eq!(call(&strict, "iss-other").await.0, 200);
    }

    #[tokio::test]
    async fn nbf_is_checked_with_the_leeway() {
        let (url, _) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        assert_eq!(call(&auth, "nbf-leeway").await.0, 200);
        assert_eq!(call(&auth, "nbf-ahead").await.0, 401);
        let strict = builder(&url, &clock())
            .leeway(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(call(&strict, "nbf-leeway").await.0, 401);
    }

    #[tokio::test]
    async fn refusals_say_why_without_echoing_the_token() {
        let (url, _) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        for (token, reason) in [
            ("nbf-ahead", "token not yet valid"),
            ("cnf", "sender-constrained token not accepted as bearer"),
            ("aud-other", "token audience not accepted"),
        ] {
            let e = auth.authenticate(token.to_owned()).await.unwrap_err();
            assert_eq!(e.description(), reason, "{token}");
        }
    }

    #[tokio::test]
    async fn a_token_over_the_maximum_length_is_refused_without_a_call() {
        let (url, calls) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        let (status, res) = call_response(&auth, &"a".repeat(DEFAULT_MAX_TOKEN_LENGTH + 1)).await;
        assert_eq!(status, 401);
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // At the maximum, the endpoint is asked (and says inactive).
        assert_eq!(
            call(&auth, &"a".repeat(DEFAULT_MAX_TOKEN_LENGTH)).await.0,
            401
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let short = builder(&url, &clock()).max_token_length(4).build().unwrap();
        assert_eq!(call(&short, "service").await.0, 401);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(call(&short, "good").await.0, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn calls_beyond_the_in_flight_cap_are_503_at_once_and_not_cached() {
        let hold = Arc::new(tokio::sync::Semaphore::new(0));
        let (url, calls) = server_held(Duration::ZERO, Arc::clone(&hold)).await;
        let auth = builder(&url, &clock()).max_in_flight(2).build().unwrap();
        let held: Vec<_> = ["good", "service"]
            .into_iter()
            .map(|token| {
                let auth = auth.clone();
                tokio::spawn(async move { call(&auth, token).await.0 })
            })
            .collect();
        // Both calls have reached the endpoint, which holds them.
        let start = std::time::Instant::now();
        while calls.load(Ordering::SeqCst) < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "calls never arrived"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // A third token: no call, 503 with Retry-After, nothing cached.
        let (status, res) = call_response(&auth, "aud-array").await;
        assert_eq!(status, 503);
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The same token as a held call shares it rather than making another.
        let shared = {
            let auth = auth.clone();
            tokio::spawn(async move { call(&auth, "good").await.0 })
        };
        hold.add_permits(2);
        for task in held {
            assert_eq!(task.await.unwrap(), 200);
        }
        assert_eq!(shared.await.unwrap(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The permits came back: the refused token is asked now.
        hold.add_permits(1);
        assert_eq!(call(&auth, "aud-array").await.0, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_cached_result_is_not_served_after_exp() {
        let (url, calls) = server(Duration::ZERO).await;
        let clock = clock();
        let auth = builder(&url, &clock).build().unwrap();
        assert_eq!(call(&auth, "soon").await.0, 200);
        clock.advance(Duration::from_secs(2));
        assert_eq!(call(&auth, "soon").await.0, 401);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_call() {
        let (url, calls) = server(Duration::from_millis(50)).await;
        let auth = builder(&url, &clock()).build().unwrap();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { call(&auth, "good").await.0 })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn endpoint_failures_are_503_and_not_cached() {
        let (url, calls) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        assert_eq!(call(&auth, "boom").await.0, 503);
        assert_eq!(call(&auth, "boom").await.0, 503);
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let down = builder(&format!("http://{closed}/introspect"), &clock())
            .build()
            .unwrap();
        assert_eq!(call(&down, "good").await.0, 503);
    }

    #[tokio::test]
    async fn a_hanging_endpoint_hits_the_deadline() {
        let (url, _) = server(Duration::from_secs(30)).await;
        let auth = builder(&url, &clock())
            .http_client(
                HttpClient::builder()
                    .timeout(Duration::from_millis(100))
                    .insecure_allow_http(true)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert_eq!(call(&auth, "good").await.0, 503);
    }

    #[test]
    fn limits_out_of_range_are_refused_naming_the_setting() {
        let base = || {
            IntrospectionAuthenticator::builder("https://as.example/introspect")
                .client_id("a")
                .client_secret("b")
                .audiences(["api"])
        };
        let e = base().max_token_length(0).build().unwrap_err();
        assert_eq!(e.setting(), "max_token_length");
        let e = base().max_in_flight(0).build().unwrap_err();
        assert_eq!(e.setting(), "max_in_flight");
        let e = base().leeway(Duration::from_secs(601)).build().unwrap_err();
        assert_eq!(e.setting(), "leeway");
        assert!(e.to_string().contains("601"), "{e}");
        let e = base().audiences([""]).build().unwrap_err();
        assert_eq!(e.setting(), "audiences");
    }

    #[test]
    fn configuration_errors_name_the_setting() {
        let e = IntrospectionAuthenticator::builder("http://as.example/introspect")
            .client_id("a")
            .client_secret("b")
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "endpoint");
        assert!(
            e.to_string().contains("http://as.example/introspect"),
            "{e}"
        );
        let e = IntrospectionAuthenticator::builder("https://as.example/introspect")
            .client_secret("b")
            .build()
            .unwrap_err();
        assert_eq!(e.setting(), "client_id");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let b = IntrospectionAuthenticator::builder("https://as.example/i")
            .client_id("rs")
            .client_secret("hunter2-very-secret")
            .audiences(["api"]);
        assert!(!format!("{b:?}").contains("hunter2"));
        let a = b.build().unwrap();
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    /// Each outcome is its own label value of `tower_auth_introspection_requests_total`, and
    /// counting one of the outcomes the scheme reports allocates nothing.
    #[cfg(feature = "metrics")]
    #[test]
    fn the_request_counter_labels_each_outcome_without_allocating() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            for outcome in ["active", "rejected", "rejected", "error", "not_listed"] {
                record(outcome);
            }
        });
        let mut seen: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = value else {
                    panic!("{} is not a counter", key.name())
                };
                (format!("{}{{{}}}", key.name(), labels.join(",")), n)
            })
            .collect();
        seen.sort();
        let name = "tower_auth_introspection_requests_total";
        assert_eq!(
            seen,
            [
                (format!("{name}{{outcome=active}}"), 1),
                (format!("{name}{{outcome=error}}"), 1),
                (format!("{name}{{outcome=not_listed}}"), 1),
                (format!("{name}{{outcome=rejected}}"), 2),
            ]
        );

        metrics::with_local_recorder(&metrics::NoopRecorder, || {
            for outcome in ["active", "rejected", "error"] {
                record(outcome);
                let info = allocation_counter::measure(|| record(outcome));
                assert_eq!(info.count_total, 0, "{outcome}: {info:?}");
            }
            // An outcome without an arm builds its key per call: the measurement is live.
            let info = allocation_counter::measure(|| record("not_listed"));
            assert!(info.count_total > 0, "{info:?}");
        });
    }

    /// `authenticate_now` decides exactly as the future of `authenticate` would (the trait's
    /// rule, checked by tower-auth-core's shared helper), before and after the cache holds the
    /// answer: active tokens, inactive and unknown ones, another audience's, an expired one,
    /// an endpoint failure and a token over the maximum length.
    #[tokio::test]
    async fn authenticate_now_decides_as_the_future() {
        let (url, _) = server(Duration::ZERO).await;
        let auth = builder(&url, &clock()).build().unwrap();
        let long = "a".repeat(DEFAULT_MAX_TOKEN_LENGTH + 1);
        let tokens = [
            "good",
            "service",
            "aud-other",
            "expired",
            "string-true",
            "unknown",
            "boom",
            long.as_str(),
        ];
        tower_auth_core::testing::assert_now_decides_as_future(
            &auth,
            tokens.map(|t| {
                Request::get("/")
                    .header("authorization", format!("Bearer {t}"))
                    .body(())
                    .unwrap()
            }),
        )
        .await;
    }
}
