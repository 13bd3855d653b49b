//! The built-in issuer: demo login, refresh-token rotation, logout and log out everywhere, with
//! the access token in the response body or (`?mode=cookie`) in an HttpOnly cookie. A session
//! keeps its mode: a refresh of a cookie-mode session renews the access-token cookie (the mode
//! travels in the [`MODE_COOKIE`], beside the refresh token). Rejections are RFC 9457 problem
//! documents (`application/problem+json`).
//!
//! The cookies are `__Host-access_token` (`Path=/`), `__Secure-refresh_token` and
//! `__Secure-session_mode` (`Path=/auth`), all `HttpOnly; Secure; SameSite=Strict`. `/auth/refresh`
//! and `/auth/logout` refuse cross-site requests (`Sec-Fetch-Site: cross-site` or
//! `same-site`, or an `Origin` of another host) with 403, using tower-auth-jwt's
//! [`is_cross_site`]; so do the state-changing routes called with the access-token cookie (see
//! [`refuse_cross_site_cookie_writes`]).
//!
//! The password check is the application's own business; here it is a single demo user
//! (`demo` / `demo`, scopes `read:items write:items`, role `user`) so the flow can be tried.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower_auth_core::credential::cookie_value;
use tower_auth_core::{AuthError, OnRejection, Principal, ProblemRejection, Scheme};
use tower_auth_jwt::dpop::{DPOP, DpopAuthenticator};
use tower_auth_jwt::is_cross_site;
use tower_auth_jwt::issue::{IssueErrorKind, JwtIssuer, TokenPair, TokenRequest};

use crate::dpop;

/// The access-token cookie (`?mode=cookie`). The `__Host-` prefix makes a browser keep it only
/// when it was set `Secure`, with `Path=/` and no `Domain`, by this very host: a sibling
/// subdomain cannot plant one (which would turn the user's Bearer calls into 400s, a request
/// with both being malformed).
pub const ACCESS_COOKIE: &str = "__Host-access_token";
/// The refresh-token cookie, sent only to `/auth`. The `__Secure-` prefix (`__Host-` needs
/// `Path=/`) makes a browser keep it only when it was set `Secure` over a secure connection.
pub const REFRESH_COOKIE: &str = "__Secure-refresh_token";
/// The session's mode (`cookie` when the access token travels in the [`ACCESS_COOKIE`]), sent
/// only to `/auth` with the refresh token, so a refresh keeps the mode of the login.
pub const MODE_COOKIE: &str = "__Secure-session_mode";

/// The login form.
#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `?mode=cookie` puts the access token in a cookie instead of the body (`?mode=body`, the
/// default at login, puts it in the body).
#[derive(Debug, Deserialize)]
pub struct Mode {
    mode: Option<String>,
}

impl Mode {
    /// The mode asked for, else the session's (its [`MODE_COOKIE`]), else body.
    fn cookie(&self, headers: &HeaderMap) -> bool {
        match self.mode.as_deref() {
            Some(mode) => mode == "cookie",
            None => matches!(cookie_value(headers, MODE_COOKIE), Ok(Some("cookie"))),
        }
    }
}

/// The application's user check: the one demo user.
fn check_password(login: &Login) -> Option<TokenRequest> {
    // A real application compares a password hash (argon2, scrypt) in constant time.
    (login.username == "demo" && login.password == "demo").then(|| {
        TokenRequest::new("demo")
            .scopes(["read:items", "write:items"])
            .claim("roles", serde_json::json!(["user"]))
    })
}

fn cookie(name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
    let v = format!(
        "{name}={value}; HttpOnly; Secure; SameSite=Strict; Path={path}; Max-Age={}",
        max_age.as_secs()
    );
    let mut v = HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

fn rejection(error: &AuthError) -> Response {
    tracing::debug!(target: "quickstart::session", reason = error.description(), "rejected");
    let res: axum::http::Response<axum::body::Body> = ProblemRejection::new().on_rejection(error);
    res.into_response()
}

/// A failed login: 401 with the bare challenge (no token was presented) and a problem
/// document saying what failed.
fn login_refused() -> Response {
    tracing::debug!(target: "quickstart::session", "login refused: invalid username or password");
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "invalid username or password",
    });
    let mut res = (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
    let headers = res.headers_mut();
    headers.insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

/// The response to a successful login or refresh, in body or cookie mode.
fn tokens(pair: TokenPair, cookie_mode: bool) -> Response {
    let (access, refresh) = pair.into_parts();
    let expires_in = access.expires_in().as_secs();
    let token_type = access.token_type();
    let refresh_age = refresh
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.append(
        SET_COOKIE,
        cookie(
            REFRESH_COOKIE,
            refresh.expose_secret(),
            "/auth",
            refresh_age,
        ),
    );
    let mode = if cookie_mode { "cookie" } else { "body" };
    headers.append(SET_COOKIE, cookie(MODE_COOKIE, mode, "/auth", refresh_age));
    let body = if cookie_mode {
        headers.append(
            SET_COOKIE,
            cookie(ACCESS_COOKIE, access.as_str(), "/", access.expires_in()),
        );
        serde_json::json!({"token_type": token_type, "expires_in": expires_in})
    } else {
        serde_json::json!({
            "access_token": access.as_str(), "token_type": token_type, "expires_in": expires_in,
        })
    };
    (StatusCode::OK, headers, Json(body)).into_response()
}

/// A login or refresh request's DPoP proof, checked: the thumbprint of its key when it has
/// one; an error is answered with [`dpop::token_error`] (400 with an RFC 6749 body).
fn token_request_proof(
    dpop: &DpopAuthenticator,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Option<String>, AuthError> {
    dpop.check_token_request(&dpop::parts(method, uri, headers))
}

async fn login(
    State(issuer): State<Arc<JwtIssuer>>,
    Extension(dpop): Extension<DpopAuthenticator>,
    Query(mode): Query<Mode>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Json(form): Json<Login>,
) -> Response {
    // A login starts a new session: its mode is the one asked for, body by default.
    let cookie_mode = mode.mode.as_deref() == Some("cookie");
    if cookie_mode && headers.contains_key(DPOP) {
        return dpop::cookie_mode_refused();
    }
    let jkt = match token_request_proof(&dpop, method, uri, headers) {
        Ok(jkt) => jkt,
        Err(e) => return dpop::token_error(&e),
    };
    let Some(mut request) = check_password(&form) else {
        // Wrong credentials: 401, and no cookies.
        return login_refused();
    };
    if let Some(jkt) = jkt {
        request = request.dpop_jkt(jkt);
    }
    match issuer.login(&request).await {
        Ok(pair) => tokens(pair, cookie_mode),
        Err(e) => rejection(&e.to_auth_error()),
    }
}

/// 403 for a request a browser sent on behalf of another site ([`is_cross_site`]): the routes
/// that act on the session's cookies, which the browser attaches on its own, refuse it before
/// reading any cookie.
pub fn cross_site_refused() -> Response {
    rejection(&AuthError::forbidden(
        "cross-site request refused on a cookie-authenticated route",
    ))
}

async fn refresh(
    State(issuer): State<Arc<JwtIssuer>>,
    Extension(dpop): Extension<DpopAuthenticator>,
    Query(mode): Query<Mode>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if is_cross_site(&headers) {
        return cross_site_refused();
    }
    let token = match cookie_value(&headers, REFRESH_COOKIE) {
        Ok(Some(t)) => t.to_owned(),
        Ok(None) => return rejection(&AuthError::invalid_token("no refresh cookie")),
        Err(e) => return rejection(&e),
    };
    let cookie_mode = mode.cookie(&headers);
    if cookie_mode && headers.contains_key(DPOP) {
        return dpop::cookie_mode_refused();
    }
    let jkt = match token_request_proof(&dpop, method, uri, headers) {
        Ok(jkt) => jkt,
        Err(e) => return dpop::token_error(&e),
    };
    match issuer.refresh_dpop(&token, jkt.as_deref()).await {
        Ok(pair) => tokens(pair, cookie_mode),
        // A bound session refreshed without its key's proof: a token-route DPoP error.
        Err(e) if e.kind() == IssueErrorKind::InvalidDpopProof => {
            dpop::token_error(&e.to_auth_error())
        }
        Err(e) => rejection(&e.to_auth_error()),
    }
}

async fn logout(State(issuer): State<Arc<JwtIssuer>>, headers: HeaderMap) -> Response {
    if is_cross_site(&headers) {
        return cross_site_refused();
    }
    if let Ok(Some(token)) = cookie_value(&headers, REFRESH_COOKIE)
        && let Err(e) = issuer.logout(token).await
        && e.kind() == IssueErrorKind::Unavailable
    {
        return rejection(&e.to_auth_error());
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&mut res);
    res
}

/// Clears both cookies of a session.
fn clear_cookies(res: &mut Response) {
    res.headers_mut()
        .append(SET_COOKIE, cookie(ACCESS_COOKIE, "", "/", Duration::ZERO));
    res.headers_mut().append(
        SET_COOKIE,
        cookie(REFRESH_COOKIE, "", "/auth", Duration::ZERO),
    );
    res.headers_mut()
        .append(SET_COOKIE, cookie(MODE_COOKIE, "", "/auth", Duration::ZERO));
}

/// Ends every session of the caller and every access token issued to it until now, on every
/// instance sharing the database. Only the built-in issuer's users have sessions here: any
/// other principal gets 403. The check is the scheme and the issuer together: a JWT's `iss`
/// picked the key that verified it (and no `[[issuers]]` entry may repeat the built-in URL),
/// while an introspected token's `iss` is whatever the authorization server said.
async fn logout_everywhere(State(issuer): State<Arc<JwtIssuer>>, principal: Principal) -> Response {
    if principal.scheme() != Scheme::Jwt || principal.issuer() != Some(issuer.issuer()) {
        return rejection(&AuthError::forbidden(
            "only sessions of the built-in issuer can be logged out",
        ));
    }
    match issuer.logout_everywhere(principal.subject()).await {
        Ok(sessions) => {
            let mut res = Json(serde_json::json!({ "sessions_revoked": sessions })).into_response();
            clear_cookies(&mut res);
            res
        }
        Err(e) => rejection(&e.to_auth_error()),
    }
}

async fn jwks(State(issuer): State<Arc<JwtIssuer>>) -> Response {
    issuer.jwks_response().await.into_response()
}

/// `/.well-known/jwks.json` and `/auth/{login,refresh,logout}`: no other credential needed.
/// A login or refresh with a DPoP proof checked by `dpop` gets tokens bound to its key.
pub fn routes(issuer: Arc<JwtIssuer>, dpop: DpopAuthenticator) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .layer(Extension(dpop))
        .with_state(issuer)
}

/// `POST /auth/logout-everywhere`: needs the built-in issuer's access token, so it goes behind
/// the authentication layer.
pub fn authenticated_routes(issuer: Arc<JwtIssuer>) -> Router {
    Router::new()
        .route("/auth/logout-everywhere", post(logout_everywhere))
        .with_state(issuer)
}

/// Refuses (403) a state-changing request (any method but `GET`, `HEAD`, `OPTIONS`, `TRACE`)
/// that carries the [`ACCESS_COOKIE`] and that a browser sent on behalf of another site
/// ([`is_cross_site`]), before it is authenticated: the browser attaches the cookie on its own.
/// `SameSite=Strict` already keeps the cookie off most such requests; this covers the browsers
/// and the sibling subdomains it does not. Requests without the cookie (Bearer, API key) pass.
pub async fn refuse_cross_site_cookie_writes(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let with_cookie = !matches!(cookie_value(req.headers(), ACCESS_COOKIE), Ok(None));
    if with_cookie && !req.method().is_safe() && is_cross_site(req.headers()) {
        return cross_site_refused();
    }
    next.run(req).await
}
