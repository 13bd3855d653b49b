//! Log users in at an external authorization server: OAuth 2.0 authorization code flow with
//! PKCE (S256), `state` and `nonce`, and a validated OpenID Connect ID token (feature `login`).
//!
//! This is the helper for a web backend, or the backend-for-frontend of an SPA, whose users log
//! in at an OpenID provider (Keycloak, Auth0, Entra ID, Google, ...), and for a native app (a
//! CLI with a loopback redirect URI, RFC 8252). It does the protocol; your app keeps its own
//! session once it knows who the user is.
//!
//! 1. [`Login::start`] makes a fresh `state`, `nonce` and PKCE verifier, keeps the login
//!    server-side in a [`PendingLoginStore`], and returns the authorization URL to redirect the
//!    browser to plus the `Set-Cookie` value carrying the login's random id.
//! 2. The provider logs the user in and redirects back to your exact, registered redirect URI
//!    with `code` and `state` (or `error`).
//! 3. [`Login::callback`] takes the pending login out of the store by the cookie **and** the
//!    `state` (it works once), checks that this `Login` started it and the RFC 9207 `iss`,
//!    exchanges the code with the registered redirect URI and the PKCE verifier, and validates
//!    the ID token: signature with the provider's keys (tower-auth-jwt's JWKS cache), `iss`,
//!    `aud` (= your client id, with `azp` when there are several), `exp`/`iat` with a small
//!    leeway, and `nonce`. It returns [`LoggedIn`] with the subject, the claims and the
//!    tokens.
//! 4. Start your session from it and answer with [`Login::success_redirect`]: a 303 to a page
//!    of your own (the callback URL with its code leaves the address bar), not cacheable, no
//!    `Referer`, and the login cookie deleted.
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderValue, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_auth_oauth::login::Login;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // `LoginBuilder::discover()` reads the endpoints from the provider's metadata; here they
//! // are given, so nothing is fetched until a callback exchanges a code.
//! let login = Login::builder("https://idp.example.com")
//!     .authorization_endpoint("https://idp.example.com/authorize")
//!     .token_endpoint("https://idp.example.com/token")
//!     .client_id("web-app")
//!     .client_secret("s3cret")
//!     .redirect_uri("https://app.example.com/callback")
//!     .scopes(["email"])
//!     .build()?;
//!
//! let app = ServiceBuilder::new().service(service_fn(move |req: Request<()>| {
//!     let login = login.clone();
//!     async move {
//!         let res: Response<Full<Bytes>> = match req.uri().path() {
//!             "/login" => match login.start().await {
//!                 Ok(start) => start.into_response(),
//!                 Err(e) => login.error_response(&e),
//!             },
//!             "/callback" => match login.callback_request(&req.into_parts().0).await {
//!                 Ok(user) => {
//!                     // Start the app's own session for `user.issuer()` + `user.subject()`
//!                     // here, and append its cookie to this response.
//!                     let _session_for = (user.issuer().to_owned(), user.subject().to_owned());
//!                     login.success_redirect(HeaderValue::from_static("/"))
//!                 }
//!                 Err(e) => login.error_response(&e),
//!             },
//!             _ => Response::builder().status(404).body(Full::default())?,
//!         };
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(res)
//!     }
//! }));
//!
//! // /login redirects to the provider and sets the login cookie.
//! let res = app.clone().oneshot(Request::get("/login").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::SEE_OTHER);
//! let location = res.headers()["location"].to_str()?;
//! assert!(location.starts_with("https://idp.example.com/authorize?"));
//! assert!(location.contains("code_challenge_method=S256"));
//! let set_cookie = res.headers()["set-cookie"].to_str()?;
//! assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
//! let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
//! let state = location.split('&')
//!     .find_map(|p| p.strip_prefix("state=")).unwrap_or_default().to_owned();
//!
//! // A callback without the cookie, or with a state that is not the login's, is refused
//! // (400), and the forged one leaves the login pending for its genuine callback.
//! let res = app.clone().oneshot(Request::get("/callback?code=c&state=x").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//! let forged = Request::get("/callback?code=c&state=forged").header("cookie", &cookie).body(())?;
//! assert_eq!(app.clone().oneshot(forged).await?.status(), StatusCode::BAD_REQUEST);
//!
//! // The user cancelled at the provider: 403.
//! let denied = Request::get(format!("/callback?error=access_denied&state={state}"))
//!     .header("cookie", &cookie)
//!     .body(())?;
//! assert_eq!(app.oneshot(denied).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! # Choices, and why
//!
//! - **Sessions are left to the app.** What a session holds, where it lives and how long it
//!   lasts differ too much between apps; this module ends at a validated [`LoggedIn`]. One way
//!   to start a session is tower-auth-jwt's `issue` module: a `JwtIssuer` issues your app's
//!   own access and refresh tokens for [`LoggedIn::subject`], and `SessionEndpoints` serves
//!   refresh and logout (the `web-login` example keeps a plain server-side session instead).
//! - **Server-side pending logins, not an encrypted cookie.** The cookie holds only a random
//!   id; `nonce` and the PKCE verifier stay in a [`PendingLoginStore`] whose `take` is atomic,
//!   so a callback completes at most once: a replayed callback URL (from history, a log, a
//!   `Referer`) finds nothing. An encrypted cookie cannot be revoked: replaying it with a
//!   second code would be accepted until it expires, and it would need a key to manage.
//!   [`MemoryStore`] (the default, on the builder's clock) serves one instance; for several,
//!   implement the trait on a shared store (Redis `GETDEL`, SQL `DELETE ... RETURNING`).
//! - **A pending login is found by the cookie and the `state` together** (the store key is a
//!   hash of both). A forged callback (a cross-site link to `/callback?state=x`, on which the
//!   victim's `SameSite=Lax` cookie rides along) finds nothing and consumes nothing: the
//!   victim's genuine callback still completes. The `state` (256 bits) cannot be guessed.
//! - **A pending login is bound to the `Login` that started it**: it records the issuer, the
//!   client id and the redirect URI, and a callback at another `Login` is refused
//!   ([`LoginError::ProviderMismatch`]) even when both share a store and a cookie name. With
//!   several providers, still register **one redirect URI per provider** (so each response
//!   comes back to the `Login` it belongs to, RFC 9700 section 4.4) and give each `Login` its
//!   own [`cookie_name`](LoginBuilder::cookie_name).
//! - **One login per browser at a time** (per cookie name): a second `/login` in another tab
//!   replaces the cookie, and the first tab's callback then fails with
//!   [`LoginError::UnknownLogin`] ("start the login again"). The pending login it leaves
//!   expires with its TTL.
//! - **`/login` is unauthenticated and writes to the store**: rate-limit it per client address.
//!   [`MemoryStore`] is bounded (`max_pending`, 10,000 by default); a flood beyond that pushes
//!   out the oldest pending logins, whose users then start again.
//! - **The cookie is `SameSite=Lax`**, not `Strict`: the callback is a top-level navigation
//!   coming from the provider's site, and browsers withhold `Strict` cookies on it, which
//!   would fail every login. It is `HttpOnly`, `Secure` with the `__Host-` prefix (no
//!   `Domain`, `Path=/`) and lives as long as the pending login (10 minutes by default). It
//!   follows the redirect URI's scheme: with an `http://` loopback redirect URI (development,
//!   allowed by [`insecure_http_redirect_uri`](LoginBuilder::insecure_http_redirect_uri)) it
//!   drops `Secure` and the prefix.
//! - **PKCE with S256 only.** `plain` would send the verifier itself through the browser; a
//!   provider whose metadata lists `code_challenge_methods_supported` without `S256`, or
//!   `response_types_supported` without `code`, is refused when building. The verifier (256
//!   bits), `state`, `nonce` and the cookie id (256 bits each) come from the operating
//!   system's CSPRNG; the `oauth2` crate builds the URL and does the code exchange.
//! - **`state` and `nonce` both.** `state` binds the callback to the browser that started the
//!   login (login CSRF); `nonce` binds the ID token to this login, so a token obtained for
//!   another login and injected into this one is refused even at a provider that does not
//!   enforce PKCE. The nonce is compared in constant time.
//! - **The exact redirect URI** is sent in the authorization request and the token request,
//!   validated when building (absolute; https, or http on a loopback host only with the
//!   insecure switch).
//! - **Time settings are bounded** when building: `leeway` at most tower-auth-jwt's
//!   `MAX_LEEWAY` (10 minutes), `pending_ttl` from [`MIN_PENDING_TTL`] to [`MAX_PENDING_TTL`],
//!   `max_id_token_age` at most [`MAX_ID_TOKEN_AGE`]; every time sum in the ID token checks is
//!   overflow-checked and an overflow refuses the token.
//! - **A 5xx from the token endpoint is "unavailable" (503 with `Retry-After`)**, whatever its
//!   body; a 4xx without an RFC 6749 error body is an unusable answer (502).
//! - **Errors never echo input.** [`LoginError`]'s texts are fixed; an `error` code from the
//!   callback URL is shown only when it is a registered one ([`ErrorCode`]). Store, key and
//!   transport failures log their cause at debug level (these carry no token or secret).
//!
//! See RFC 6749 (OAuth 2.0), RFC 7636 (PKCE), RFC 8252 (native apps), RFC 9207 (issuer in the
//! authorization response), RFC 9700 (security best current practice) and OpenID Connect Core
//! 1.0.

mod error;
mod id_token;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tower_auth_core::client::{FetchError, HttpClient};
use tower_auth_core::clock::{Clock, SystemClock};
use tower_auth_core::{ConfigError, Principal, PrincipalKind, Scheme};
use tower_auth_jwt::remote::{Discovery, DiscoveryError, Metadata, discover};
use tower_auth_jwt::{Algorithm, KeySource, KeySourceError, MAX_LEEWAY};

pub use crate::introspection::ClientAuth;
use crate::token_request::SendError;

pub use self::error::{ErrorCode, LoginError};
pub use self::store::{
    DEFAULT_MAX_PENDING, DEFAULT_PENDING_TTL, MemoryStore, MemoryStoreBuilder, PendingLogin,
    PendingLoginStore, StoreFuture,
};

/// The default name of the login cookie (with `Secure`): the `__Host-` prefix makes browsers
/// refuse it unless it is `Secure`, has `Path=/` and no `Domain`.
pub const LOGIN_COOKIE: &str = "__Host-tower_auth_login";
/// The name of the login cookie when it is not `Secure` (development over plain http).
pub const INSECURE_LOGIN_COOKIE: &str = "tower_auth_login";

/// The token response's extra field of OpenID Connect: the ID token.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenField").finish_non_exhaustive()
    }
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

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

/// The store key of a pending login: a hash of the login cookie's id and the login's `state`,
/// so that only a callback with both finds it, and the store sees neither.
fn store_key(id: &str, state: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tower-auth-login\0");
    h.update(id.as_bytes());
    h.update(b"\0");
    h.update(state.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The store call `fut`, failing with [`LoginError::Store`] when it fails or takes longer than
/// `deadline`.
async fn with_deadline<T>(deadline: Duration, fut: StoreFuture<'_, T>) -> Result<T, LoginError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r.map_err(LoginError::Store),
        Err(elapsed) => Err(LoginError::Store(Box::new(elapsed))),
    }
}

/// The default deadline of each pending-login store call.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// `n` random bytes from the operating system's CSPRNG, base64url without padding.
fn random_token(n: usize) -> Result<String, LoginError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|_| LoginError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Logs users in at one authorization server. See the [module docs](self). Cheap to clone;
/// clones share the store and the key cache.
#[derive(Clone)]
pub struct Login {
    inner: Arc<Inner>,
}

struct Inner {
    oauth: OAuthClient,
    http: HttpClient,
    issuer: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    resources: Vec<String>,
    authorize_params: Vec<(String, String)>,
    require_iss: bool,
    keys: Arc<dyn KeySource>,
    algorithms: Vec<Algorithm>,
    store: Arc<dyn PendingLoginStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    store_timeout: Duration,
    leeway: Duration,
    max_id_token_age: Duration,
    cookie_name: String,
    cookie_secure: bool,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Login")
            .field("issuer", &i.issuer)
            .field("client_id", &i.client_id)
            .field("redirect_uri", &i.redirect_uri)
            .field("scopes", &i.scopes)
            .field("cookie", &i.cookie_name)
            .finish_non_exhaustive()
    }
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
            client_id: String::new(),
            client_secret: None,
            client_auth: ClientAuth::default(),
            authorize_params: Vec::new(),
            redirect_uri: String::new(),
            scopes: Vec::new(),
            resources: Vec::new(),
            http: None,
            allow_http: false,
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

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The redirect URI, as registered.
    pub fn redirect_uri(&self) -> &str {
        &self.inner.redirect_uri
    }

    /// The name of the login cookie.
    pub fn cookie_name(&self) -> &str {
        &self.inner.cookie_name
    }

    /// Loads the authorization server's signing keys now, unless they are loaded: call it at
    /// startup to fail fast when the provider is unreachable and to take the first fetch off
    /// the first callback.
    pub async fn warm_up(&self) -> Result<(), LoginError> {
        match self.inner.keys.lookup(None) {
            tower_auth_jwt::KeyLookup::Pending(fut) => {
                fut.await.map(drop).map_err(LoginError::KeysUnavailable)
            }
            tower_auth_jwt::KeyLookup::Ready(_) => Ok(()),
            tower_auth_jwt::KeyLookup::Unavailable(e) => Err(LoginError::KeysUnavailable(e)),
            // A lookup result this version does not know: fail closed, as validation does.
            _ => Err(LoginError::KeysUnavailable(KeySourceError::new(
                "unknown key lookup result",
            ))),
        }
    }

    /// Starts a login: keeps a new pending login in the store and returns where to send the
    /// browser, with the login cookie to set.
    pub async fn start(&self) -> Result<LoginStart, LoginError> {
        let i = &self.inner;
        let id = random_token(32)?;
        let state = random_token(32)?;
        let nonce = random_token(32)?;
        let verifier = PkceCodeVerifier::new(random_token(32)?);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let mut request = i
            .oauth
            .authorize_url(|| CsrfToken::new(state.clone()))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone());
        for s in &i.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        for r in &i.resources {
            request = request.add_extra_param("resource", r.clone());
        }
        for (k, v) in &i.authorize_params {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        let (url, _) = request.url();
        let pending = PendingLogin {
            issuer: i.issuer.clone(),
            client_id: i.client_id.clone(),
            redirect_uri: i.redirect_uri.clone(),
            nonce,
            verifier: verifier.secret().clone(),
            // The TTL is at most an hour (checked at build time).
            expires_at: i.clock.now() + i.ttl,
        };
        let key = store_key(&id, &state);
        with_deadline(i.store_timeout, i.store.put(key, pending))
            .await
            .inspect_err(|_e| {
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    target: "tower_auth::oauth",
                    error = %_e,
                    cause = std::error::Error::source(_e).map(ToString::to_string).unwrap_or_default(),
                    "login start failed"
                );
            })?;
        let set_cookie = self.cookie(&id, i.ttl);
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_auth_login_starts_total").increment(1);
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "tower_auth::oauth", issuer = %i.issuer, "login started");
        Ok(LoginStart {
            authorize_url: url.into(),
            set_cookie,
            id,
        })
    }

    fn cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
        let i = &self.inner;
        let secure = if i.cookie_secure { "; Secure" } else { "" };
        let mut v = HeaderValue::try_from(format!(
            "{}={value}; Max-Age={}; Path=/; HttpOnly{secure}; SameSite=Lax",
            i.cookie_name,
            max_age.as_secs()
        ))
        // The name was validated at build time and the value is base64url.
        .unwrap_or_else(|_| HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }

    /// The `Set-Cookie` value that deletes the login cookie. Send it with the callback's
    /// response, success or not ([`error_response`](Self::error_response) does).
    pub fn clear_cookie(&self) -> HeaderValue {
        self.cookie("", Duration::ZERO)
    }

    /// Completes a login from the callback request: reads the login cookie from its headers
    /// and the parameters from its query string. See [`callback`](Self::callback).
    pub async fn callback_request(
        &self,
        parts: &http::request::Parts,
    ) -> Result<LoggedIn, LoginError> {
        let cookie = tower_auth_core::credential::cookie_value(&parts.headers, self.cookie_name())
            .map_err(|_| LoginError::MalformedCallback)?;
        self.callback(cookie, parts.uri.query().unwrap_or("")).await
    }

    /// Completes a login: `login_cookie` is the value of the login cookie (`None` when the
    /// request has none), `query` the callback's query string (`code`, `state`, `iss`, or
    /// `error`).
    ///
    /// The pending login is found by the cookie **and** the `state` together, and consumed
    /// whatever the outcome once found: a callback with a `state` that is not the login's
    /// (forged, or from another login) finds nothing and leaves the login for its genuine
    /// callback.
    pub async fn callback(
        &self,
        login_cookie: Option<&str>,
        query: &str,
    ) -> Result<LoggedIn, LoginError> {
        let result = self.complete(login_cookie, query).await;
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "tower_auth_login_callbacks_total",
            "outcome" => result.as_ref().map_or_else(LoginError::outcome, |_| "success")
        )
        .increment(1);
        #[cfg(feature = "tracing")]
        match &result {
            Ok(u) => tracing::debug!(
                target: "tower_auth::oauth",
                issuer = %self.inner.issuer,
                subject = %u.subject,
                "login completed"
            ),
            Err(e) => {
                // The causes of these are the store's, the key source's or the HTTP client's
                // errors: no token, code or secret is in them.
                let cause = match e {
                    LoginError::Store(_)
                    | LoginError::KeysUnavailable(_)
                    | LoginError::TokenEndpointUnavailable(_) => {
                        std::error::Error::source(e).map(ToString::to_string)
                    }
                    _ => None,
                };
                tracing::debug!(
                    target: "tower_auth::oauth",
                    error = %e,
                    cause = cause.as_deref().unwrap_or(""),
                    "login failed"
                );
            }
        }
        result
    }

    async fn complete(
        &self,
        login_cookie: Option<&str>,
        query: &str,
    ) -> Result<LoggedIn, LoginError> {
        let i = &self.inner;
        let params = CallbackParams::parse(query)?;
        let id = login_cookie
            .filter(|c| !c.is_empty())
            .ok_or(LoginError::MissingCookie)?;
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(LoginError::StateMismatch)?;
        let pending = with_deadline(i.store_timeout, i.store.take(&store_key(id, state)))
            .await?
            .ok_or(LoginError::UnknownLogin)?;
        // Started by another Login sharing the store and the cookie name: another provider's
        // response must not be completed here (mix-up, RFC 9700 section 4.4).
        if pending.issuer != i.issuer
            || pending.client_id != i.client_id
            || pending.redirect_uri != i.redirect_uri
        {
            return Err(LoginError::ProviderMismatch);
        }
        let now = i.clock.now();
        if now >= pending.expires_at {
            return Err(LoginError::Expired);
        }
        match &params.iss {
            Some(iss) if *iss != i.issuer => return Err(LoginError::IssuerMismatch),
            None if i.require_iss => return Err(LoginError::IssuerMismatch),
            _ => {}
        }
        if let Some(error) = &params.error {
            return Err(match error.as_str() {
                "access_denied" => LoginError::AccessDenied,
                other => LoginError::AuthorizationFailed(ErrorCode::parse(other)),
            });
        }
        let code = params.code.ok_or(LoginError::MalformedCallback)?;
        let tokens = self.exchange(code, pending.verifier).await?;
        let id_token = tokens
            .extra_fields()
            .id_token
            .clone()
            .ok_or(LoginError::InvalidIdToken("missing"))?;
        let rules = id_token::Rules {
            issuer: &i.issuer,
            client_id: &i.client_id,
            algorithms: &i.algorithms,
            leeway: i.leeway,
            max_age: i.max_id_token_age,
            now: i.clock.now(),
            nonce: &pending.nonce,
        };
        let claims = id_token::validate(&id_token, &*i.keys, &rules).await?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(LoggedIn {
            subject,
            issuer: i.issuer.clone(),
            claims,
            id_token,
            access_token: tokens.access_token().secret().clone(),
            refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
            expires_in: tokens.expires_in(),
            // An empty `scope` member lists no scope (not one empty scope).
            scopes: tokens.scopes().map(|s| {
                s.iter()
                    .map(|s| s.to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
        })
    }

    async fn exchange(
        &self,
        code: String,
        verifier: String,
    ) -> Result<OidcTokenResponse, LoginError> {
        let i = &self.inner;
        let mut req = i
            .oauth
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier));
        for r in &i.resources {
            req = req.add_extra_param("resource", r.clone());
        }
        let http = i.http.clone();
        let send = move |r: oauth2::HttpRequest| crate::token_request::send(http.clone(), r);
        req.request_async(&send).await.map_err(|e| match e {
            oauth2::RequestTokenError::ServerResponse(r) => {
                LoginError::CodeRejected(ErrorCode::parse(r.error().as_ref()))
            }
            // Unreachable, past its deadline, or a 5xx answer (whatever its body): try later.
            oauth2::RequestTokenError::Request(
                e @ (SendError::Status(_)
                | SendError::Fetch(FetchError::Timeout(_) | FetchError::Transport(_))),
            ) => LoginError::TokenEndpointUnavailable(Box::new(e)),
            // Parse errors carry the response body, which may hold tokens: keep nothing of it.
            _ => LoginError::TokenEndpointMalformed,
        })
    }

    /// The response for a failed login: the error's status, its fixed
    /// [user message](LoginError::user_message) as plain text, `Cache-Control: no-store`,
    /// `Referrer-Policy: no-referrer` (the callback URL holds the code), `Retry-After` on 503,
    /// and the `Set-Cookie` that deletes the login cookie. Build your own page from
    /// [`LoginError::status`] and the message when you want one.
    pub fn error_response<B: From<&'static str>>(&self, error: &LoginError) -> Response<B> {
        let status = error.status();
        let mut res = Response::new(B::from(error.user_message()));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        h.insert(SET_COOKIE, self.clear_cookie());
        res
    }

    /// The response for a completed login: `303 See Other` to `location` (a page of your own
    /// app, so the callback URL with its code leaves the address bar and the history),
    /// `Cache-Control: no-store`, `Referrer-Policy: no-referrer`, and the `Set-Cookie` that
    /// deletes the login cookie. Append your session cookie to it.
    ///
    /// `location` must be your own: never a value taken from the request (an open redirect).
    pub fn success_redirect<B: Default>(&self, location: HeaderValue) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = StatusCode::SEE_OTHER;
        let h = res.headers_mut();
        h.insert(LOCATION, location);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        h.insert(SET_COOKIE, self.clear_cookie());
        res
    }
}

/// The parameters of a callback query. Each at most once.
#[derive(Default)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

impl CallbackParams {
    fn parse(query: &str) -> Result<Self, LoginError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut p = Self::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "iss" => &mut p.iss,
                "error" => &mut p.error,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(LoginError::MalformedCallback);
            }
        }
        Ok(p)
    }
}

/// A started login: the authorization URL to send the browser to, and the login cookie to set
/// on that response. `Debug` shows neither (the cookie is a bearer secret until the callback).
#[must_use = "send the browser to the authorization URL with the login cookie"]
pub struct LoginStart {
    authorize_url: String,
    set_cookie: HeaderValue,
    id: String,
}

impl fmt::Debug for LoginStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginStart").finish_non_exhaustive()
    }
}

impl LoginStart {
    /// The authorization URL: `response_type=code`, `client_id`, `redirect_uri`, `scope`,
    /// `state`, `nonce`, `code_challenge` and `code_challenge_method=S256` (and `resource`
    /// when configured).
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// The `Set-Cookie` value of the login cookie (marked sensitive).
    pub fn set_cookie(&self) -> &HeaderValue {
        &self.set_cookie
    }

    /// The login cookie's value: the pending login's random id. A native app (a CLI with a
    /// loopback redirect URI) is its own "browser": it keeps this and passes it to
    /// [`Login::callback`] instead of setting a cookie. A secret until the callback: never log
    /// it.
    pub fn login_id(&self) -> &str {
        &self.id
    }

    /// A `303 See Other` to the authorization URL, setting the login cookie, not cacheable.
    pub fn into_response<B: Default>(self) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = StatusCode::SEE_OTHER;
        let h = res.headers_mut();
        if let Ok(location) = HeaderValue::try_from(self.authorize_url) {
            h.insert(LOCATION, location);
        }
        h.insert(SET_COOKIE, self.set_cookie);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// A completed login: who the user is, as the ID token says, and the tokens. `Debug` shows no
/// token.
#[derive(Clone)]
#[must_use = "start the app's session from the completed login"]
pub struct LoggedIn {
    subject: String,
    issuer: String,
    claims: Map<String, Value>,
    id_token: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<Duration>,
    scopes: Option<Vec<String>>,
}

impl fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggedIn")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl LoggedIn {
    /// The user's identifier at the issuer (`sub`): with [`issuer`](Self::issuer), the key to
    /// your user record. Never key users by email.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Every claim of the validated ID token (`email`, `name`, ...).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `email` claim, when present.
    pub fn email(&self) -> Option<&str> {
        self.claims.get("email").and_then(Value::as_str)
    }

    /// The ID token, as received (for RP-initiated logout's `id_token_hint`).
    pub fn id_token(&self) -> &str {
        &self.id_token
    }

    /// The access token, for calling APIs on the user's behalf.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token, when one was issued (scope `offline_access` at most providers).
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }

    /// The access token's lifetime, when the token response said.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The scopes granted, when the token response listed them.
    pub fn scopes(&self) -> Option<&[String]> {
        self.scopes.as_deref()
    }

    /// A user [`Principal`] (scheme `oidc`) with the subject and issuer, and this login as its
    /// extension, for an app that keeps principals in its session.
    pub fn to_principal(&self) -> Principal {
        Principal::builder(self.subject.clone(), Scheme::Custom("oidc"))
            .kind(PrincipalKind::User)
            .issuer(self.issuer.clone())
            .extension(self.clone())
            .build()
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
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    require_iss: Option<bool>,
    metadata_iss: bool,
    client_id: String,
    client_secret: Option<String>,
    client_auth: ClientAuth,
    authorize_params: Vec<(String, String)>,
    redirect_uri: String,
    scopes: Vec<String>,
    resources: Vec<String>,
    http: Option<HttpClient>,
    allow_http: bool,
    http_redirect: bool,
    keys: Option<Arc<dyn KeySource>>,
    algorithms: Vec<Algorithm>,
    store: Option<Arc<dyn PendingLoginStore>>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    store_timeout: Duration,
    leeway: Duration,
    max_id_token_age: Duration,
    cookie_name: Option<String>,
}

impl fmt::Debug for LoginBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginBuilder")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_auth", &self.client_auth)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
        self.client_id = id.into();
        self
    }

    /// The client secret of a confidential client, sent as [`client_auth`](Self::client_auth)
    /// says. Leave it out for a public client (PKCE alone protects the code; the `client_id`
    /// goes in the form). Never logged or printed.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How a confidential client authenticates to the token endpoint (default
    /// `client_secret_basic`), as for [introspection](crate::introspection) and
    /// [client credentials](crate::client_credentials).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
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
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// RFC 8707 `resource` indicators: the APIs the access token is for, sent in the
    /// authorization and token requests.
    pub fn resources<I, T>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// The HTTP client for the token endpoint and the keys (deadline, size cap, transport).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Allows a plain-http authorization server when no [`http_client`](Self::http_client) is
    /// given. Only for loopback tests: codes, tokens and keys cross the wire in clear.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
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
    /// fails with [`LoginError::Store`] (503).
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
        let http = crate::http_client(self.http.clone(), self.allow_http)?;
        let metadata = discover(&http, &self.issuer)
            .await
            .map_err(LoginBuildError::Discovery)?;
        Ok(self.http_client(http).metadata(&metadata)?.build()?)
    }

    /// Validates the settings and builds.
    pub fn build(self) -> Result<Login, ConfigError> {
        let http = crate::http_client(self.http, self.allow_http)?;
        let auth_endpoint = self.authorization_endpoint.ok_or_else(|| {
            ConfigError::new("authorization_endpoint", "none", "required (or discover)")
        })?;
        let token_endpoint = self
            .token_endpoint
            .ok_or_else(|| ConfigError::new("token_endpoint", "none", "required (or discover)"))?;
        http.check_url(&auth_endpoint)
            .map_err(|e| e.for_setting("authorization_endpoint"))?;
        http.check_url(&token_endpoint)
            .map_err(|e| e.for_setting("token_endpoint"))?;
        if self.client_id.is_empty() {
            return Err(ConfigError::new("client_id", "\"\"", "must not be empty"));
        }
        if self.client_secret.as_deref() == Some("") {
            return Err(ConfigError::new(
                "client_secret",
                "\"\"",
                "must not be empty (leave it out for a public client)",
            ));
        }
        let redirect: http::Uri = self
            .redirect_uri
            .parse()
            .map_err(|_| ConfigError::new("redirect_uri", &self.redirect_uri, "not a valid URL"))?;
        match (redirect.scheme_str(), redirect.host()) {
            (Some("https"), Some(_)) => {}
            (Some("http"), Some(host)) if is_loopback(host) && self.http_redirect => {}
            (Some("http"), Some(host)) if is_loopback(host) => {
                return Err(ConfigError::new(
                    "redirect_uri",
                    &self.redirect_uri,
                    "plain http needs insecure_http_redirect_uri",
                ));
            }
            _ => {
                return Err(ConfigError::new(
                    "redirect_uri",
                    &self.redirect_uri,
                    "must be an absolute https URL (or http on a loopback host)",
                ));
            }
        }
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
        // The cookie follows the redirect URI's scheme: the callback comes back to it.
        let secure = redirect.scheme_str() == Some("https");
        let cookie_name = self.cookie_name.unwrap_or_else(|| {
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
        let keys: Arc<dyn KeySource> = match self.keys {
            Some(k) => k,
            None => Arc::new(
                Discovery::builder(self.issuer.clone())
                    .http_client(http.clone())
                    .insecure_allow_http(http.allows_http())
                    .build()
                    .map_err(|e| ConfigError::new("issuer", e, "no key source for it"))?,
            ),
        };
        let mut scopes = vec!["openid".to_owned()];
        for s in self.scopes {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let auth_url = AuthUrl::new(auth_endpoint.clone()).map_err(|_| {
            ConfigError::new("authorization_endpoint", &auth_endpoint, "not a valid URL")
        })?;
        let token_url = TokenUrl::new(token_endpoint.clone())
            .map_err(|_| ConfigError::new("token_endpoint", &token_endpoint, "not a valid URL"))?;
        let redirect_url = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|_| ConfigError::new("redirect_uri", &self.redirect_uri, "not a valid URL"))?;
        let mut oauth: OAuthClient = oauth2::Client::<
            BasicErrorResponse,
            OidcTokenResponse,
            BasicTokenIntrospectionResponse,
            StandardRevocableToken,
            BasicRevocationErrorResponse,
        >::new(ClientId::new(self.client_id.clone()))
        .set_auth_uri(auth_url)
        .set_token_uri(token_url)
        .set_redirect_uri(redirect_url)
        .set_auth_type(match self.client_auth {
            ClientAuth::ClientSecretPost => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        });
        if let Some(secret) = self.client_secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret));
        }
        Ok(Login {
            inner: Arc::new(Inner {
                oauth,
                http,
                issuer: self.issuer,
                client_id: self.client_id,
                redirect_uri: self.redirect_uri,
                scopes,
                resources: self.resources,
                authorize_params: self.authorize_params,
                require_iss: self.require_iss.unwrap_or(self.metadata_iss),
                keys,
                algorithms: self.algorithms,
                store: self.store.unwrap_or_else(|| {
                    Arc::new(MemoryStore::with(
                        DEFAULT_MAX_PENDING,
                        Arc::clone(&self.clock),
                    ))
                }),
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
}

#[cfg(test)]
mod tests;
