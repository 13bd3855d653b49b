//! [`SessionEndpoints`]: login, refresh and logout for browser apps, as functions from request
//! parts to `http::Response`s, for any framework.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use tower_auth_core::{AuthError, DefaultRejection, OnRejection};

use super::cookie::{self, REFRESH_COOKIE};
use super::{IssueError, IssueErrorKind, JwtIssuer, TokenPair, TokenRequest};
use crate::ConfigError;

/// Login, refresh and logout endpoints for a browser app that keeps its tokens in cookies.
///
/// Each method takes the request's [`Parts`] (axum extracts them; any framework has them) and
/// returns a complete `http::Response<String>`. Your app checks the user's credentials (a
/// password, an SSO callback) and calls [`login`](Self::login) only when they are good; mount
/// [`refresh`](Self::refresh) and [`logout`](Self::logout) as `POST` routes under the refresh
/// cookie's path (`/auth` by default: `/auth/refresh`, `/auth/logout`). Those two need no
/// other credential than their refresh cookie: keep them outside the `AuthenticateLayer`.
///
/// | endpoint | success | refused |
/// |---|---|---|
/// | `login` | 200, `Set-Cookie` access + refresh, body `{"token_type":"Bearer","expires_in":900}`, `Cache-Control: no-store` | 503 when the store is down |
/// | `refresh` | 200, new cookies, same body | 401 without a cookie; 401 `invalid_token` and both cookies cleared (unknown, expired, revoked, reused: the family is revoked); 400 for two refresh cookies; 503 (cookies kept) |
/// | `logout` | 204, both cookies cleared, the family revoked | 503 (cookies cleared all the same) |
///
/// Every method first refuses, before touching any token: a method other than `POST` (405,
/// `Allow: POST`), a request with a `DPoP` proof (400: cookies and DPoP do not mix; a bound
/// session uses [`JwtIssuer::login`] with [`TokenRequest::dpop_jkt`] and
/// [`JwtIssuer::refresh_dpop`] on a token route of your own), and a cross-site request (403, [`is_cross_site`](crate::is_cross_site)):
/// `Sec-Fetch-Site` other than `same-origin` or `none`, or, without it, an `Origin` whose host
/// differs from `Host`. Requests with neither header (non-browser clients) pass. This complements `SameSite=Strict`; it does not
/// replace CSRF protection on your other state-changing routes (see the
/// [module docs](super#cookies-and-csrf)).
///
/// ```
/// use http::{Request, StatusCode};
/// use tower_auth_jwt::issue::{JwtIssuer, MemoryStore, RefreshTokens, SessionEndpoints, TokenRequest};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let issuer = JwtIssuer::builder(store.clone())
///     .issuer("https://app.example")
///     .audience("app-api")
///     .client_id("app-web")
///     .refresh_tokens(RefreshTokens::new(store))
///     .build()
///     .unwrap();
/// let endpoints = SessionEndpoints::new(issuer);
///
/// // POST /auth/login, after the app checked alice's password.
/// let (parts, ()) = Request::post("/auth/login").body(()).unwrap().into_parts();
/// let res = endpoints.login(&parts, &TokenRequest::new("alice")).await;
/// assert_eq!(res.status(), StatusCode::OK);
/// let cookies: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
/// assert_eq!(cookies.len(), 2);
///
/// // POST /auth/refresh with the refresh cookie the browser sends back.
/// let refresh = cookies[1].to_str().unwrap().split(';').next().unwrap();
/// let (parts, ()) = Request::post("/auth/refresh")
///     .header("cookie", refresh)
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert_eq!(endpoints.refresh(&parts).await.status(), StatusCode::OK);
/// // The same cookie again is reuse: 401, and the session is over.
/// assert_eq!(endpoints.refresh(&parts).await.status(), StatusCode::UNAUTHORIZED);
/// # }
/// ```
#[derive(Clone)]
pub struct SessionEndpoints {
    issuer: JwtIssuer,
    refresh_path: Arc<str>,
    rejection: DefaultRejection,
}

impl fmt::Debug for SessionEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEndpoints")
            .field("issuer", &self.issuer)
            .field("refresh_path", &self.refresh_path)
            .finish_non_exhaustive()
    }
}

impl SessionEndpoints {
    /// Endpoints of this issuer (built with refresh tokens), the refresh cookie on
    /// [`DEFAULT_REFRESH_PATH`](super::DEFAULT_REFRESH_PATH).
    pub fn new(issuer: JwtIssuer) -> Self {
        Self {
            issuer,
            refresh_path: Arc::from(cookie::DEFAULT_REFRESH_PATH),
            rejection: DefaultRejection::new(),
        }
    }

    /// Scopes the refresh cookie to `path` instead of `/auth`: the path under which the
    /// refresh and logout routes are mounted.
    pub fn refresh_cookie_path(mut self, path: &str) -> Result<Self, ConfigError> {
        cookie::clear_refresh_cookie(path).map_err(|_| {
            ConfigError::new(
                "refresh_cookie_path",
                format!("{path:?}"),
                "must start with `/` and hold no `;` or control characters",
            )
        })?;
        self.refresh_path = Arc::from(path);
        Ok(self)
    }

    /// Starts a session for the user your app has just authenticated: a new refresh-token
    /// family, both cookies set.
    pub async fn login(&self, parts: &Parts, request: &TokenRequest) -> Response<String> {
        if let Some(refused) = self.check(parts) {
            return refused;
        }
        match self.issuer.login(request).await {
            Ok(pair) => self.tokens(&pair),
            Err(e) => self.error(&e, false),
        }
    }

    /// Rotates the refresh cookie: new access and refresh cookies, or 401 with both cookies
    /// cleared.
    pub async fn refresh(&self, parts: &Parts) -> Response<String> {
        if let Some(refused) = self.check(parts) {
            return refused;
        }
        let token = match refresh_cookie_value(&parts.headers) {
            Ok(Some(token)) => token,
            Ok(None) => return self.reject(&AuthError::missing_credential(), false),
            Err(e) => return self.reject(&e, false),
        };
        match self.issuer.refresh(&token).await {
            Ok(pair) => self.tokens(&pair),
            // An outage says nothing about the session: keep its cookies.
            Err(e) => {
                let clear = matches!(
                    e.kind(),
                    IssueErrorKind::InvalidToken | IssueErrorKind::TokenReused
                );
                self.error(&e, clear)
            }
        }
    }

    /// Ends the session of the refresh cookie (its family is revoked) and clears both
    /// cookies. Access tokens already issued stay valid until their `exp`.
    pub async fn logout(&self, parts: &Parts) -> Response<String> {
        if let Some(refused) = self.check(parts) {
            return refused;
        }
        match refresh_cookie_value(&parts.headers) {
            Ok(Some(token)) => {
                if let Err(e) = self.issuer.logout(&token).await {
                    return self.error(&e, true);
                }
            }
            Ok(None) => {}
            Err(e) => return self.reject(&e, false),
        }
        let mut res = Response::new(String::new());
        *res.status_mut() = StatusCode::NO_CONTENT;
        self.clear_cookies(res.headers_mut());
        res
    }

    /// 405 for a method other than POST, 403 for a cross-site request, 400 for a DPoP proof
    /// (session cookies and DPoP do not mix: a cookie is sent by the browser whoever holds the
    /// key, so binding it proves nothing).
    fn check(&self, parts: &Parts) -> Option<Response<String>> {
        if parts.method != Method::POST {
            let mut res = Response::new(String::new());
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Some(res);
        }
        if crate::is_cross_site(&parts.headers) {
            return Some(self.reject(&AuthError::forbidden("cross-site request refused"), false));
        }
        if parts.headers.contains_key(crate::dpop::DPOP) {
            return Some(self.reject(
                &AuthError::invalid_request("dpop proofs are not accepted with session cookies"),
                false,
            ));
        }
        None
    }

    fn tokens(&self, pair: &TokenPair) -> Response<String> {
        let access = pair.access_token();
        let refresh = pair.refresh_token();
        let refresh_age = refresh
            .expires_at()
            .duration_since(self.issuer.inner.clock.now())
            .unwrap_or_default()
            // To the nearest second: the token was minted a moment ago.
            + Duration::from_millis(500);
        let cookies = (
            cookie::access_cookie(access.as_str(), access.expires_in()),
            cookie::refresh_cookie(refresh.expose_secret(), &self.refresh_path, refresh_age),
        );
        let (Ok(access_cookie), Ok(refresh_cookie)) = cookies else {
            // Our tokens are base64url and the path was checked: unreachable in practice.
            return self.reject(&AuthError::unavailable("cannot set session cookies"), false);
        };
        let mut res = Response::new(format!(
            "{{\"token_type\":\"Bearer\",\"expires_in\":{}}}",
            access.expires_in().as_secs()
        ));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.append(header::SET_COOKIE, access_cookie);
        h.append(header::SET_COOKIE, refresh_cookie);
        res
    }

    fn error(&self, error: &IssueError, clear: bool) -> Response<String> {
        self.reject(&error.to_auth_error(), clear)
    }

    fn reject(&self, error: &AuthError, clear: bool) -> Response<String> {
        let mut res: Response<String> = self.rejection.on_rejection(error);
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if clear {
            self.clear_cookies(res.headers_mut());
        }
        res
    }

    fn clear_cookies(&self, headers: &mut HeaderMap) {
        headers.append(header::SET_COOKIE, cookie::clear_access_cookie());
        if let Ok(v) = cookie::clear_refresh_cookie(&self.refresh_path) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// The refresh cookie; two of them is a malformed request (400).
fn refresh_cookie_value(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    Ok(
        tower_auth_core::credential::cookie_value(headers, REFRESH_COOKIE)?
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
    )
}
