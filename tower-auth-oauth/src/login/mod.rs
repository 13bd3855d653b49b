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

mod builder;
mod cookie;
mod error;
mod flow;
mod id_token;
mod result;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_auth_core::client::HttpClient;
use tower_auth_core::clock::Clock;
use tower_auth_jwt::{Algorithm, KeySource};

pub use crate::client::ClientAuth;

pub use self::builder::{
    LoginBuildError, LoginBuilder, MAX_ID_TOKEN_AGE, MAX_PENDING_TTL, MIN_PENDING_TTL,
};
pub use self::cookie::{INSECURE_LOGIN_COOKIE, LOGIN_COOKIE};
pub use self::error::{ErrorCode, LoginError};
use self::flow::OAuthClient;
pub use self::result::{LoggedIn, LoginStart};
pub use self::store::{
    DEFAULT_MAX_PENDING, DEFAULT_PENDING_TTL, DEFAULT_STORE_TIMEOUT, MemoryStore,
    MemoryStoreBuilder, PendingLogin, PendingLoginStore, StoreFuture,
};

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
}

#[cfg(test)]
mod tests;
