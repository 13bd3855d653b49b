//! "Log in with the provider" for a web app: tower-auth-oauth's [`Login`] helper (authorization
//! code + PKCE, OpenID Connect) in an axum app that then keeps its own session.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the logged-in user, or a "log in with the provider" link |
//! | `GET /login` | redirects to the provider (303), setting the short-lived login cookie |
//! | `GET /callback` | the redirect URI: completes the login, starts a session, redirects to `/` |
//! | `POST /logout` | ends the session |
//!
//! The session is the app's own business (the login helper ends at a validated
//! [`LoggedIn`]): here a random session id in a cookie (`HttpOnly`, `SameSite=Lax`, `Secure`
//! when the redirect URI is https), mapped in memory to the user's subject and email. Logging
//! in again replaces the browser's previous session, and expired sessions are swept whenever
//! a session starts. A real app would keep sessions in its database, or issue its own tokens
//! with tower-auth-jwt's `issue` module (`JwtIssuer`, `SessionEndpoints`; the quickstart's
//! `/auth/login` does) from [`LoggedIn::subject`].
//!
//! `/login` needs no credential and stores a pending login: put a per-address rate limit in
//! front of it in production.
//!
//! Run it against the test provider in `tests/op` (panva's oidc-provider, Node.js 22 or later:
//! its lock file pins one for Linux; its client `tower-auth-web` accepts any login name and
//! password). `cargo run -p web-login -- --help` shows the same lines:
//!
//! ```text
//! (cd tests/op && npm ci)
//! PATH=$PWD/tests/op/node_modules/.bin:$PATH   # the Node.js 22 the lock file pins, on Linux
//! PORT=9000 WEB_REDIRECT_URIS=http://127.0.0.1:3001/callback node tests/op/server.mjs &
//! cargo run -p web-login -- --issuer http://127.0.0.1:9000 \
//!     --client-id tower-auth-web --client-secret tower-auth-web-secret \
//!     --redirect-uri http://127.0.0.1:3001/callback --insecure-http
//! # open http://127.0.0.1:3001/ and log in with any name and password
//! ```
//!
//! Against a real provider, register `https://your.app/callback` as the redirect URI, drop
//! `--insecure-http`, and serve the app over https.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_auth_oauth::login::{LoggedIn, Login};

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// A logged-in user, as the app keeps it.
#[derive(Clone, Debug)]
pub struct SessionUser {
    /// The subject at the provider.
    pub subject: String,
    /// The email claim, when given.
    pub email: Option<String>,
    expires: Instant,
}

#[derive(Clone)]
struct AppState {
    login: Login,
    sessions: Arc<Mutex<HashMap<String, SessionUser>>>,
    cookie_name: &'static str,
    secure: bool,
}

impl AppState {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionUser>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn session_id<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        tower_auth_core::credential::cookie_value(headers, self.cookie_name)
            .ok()
            .flatten()
    }

    fn user(&self, headers: &HeaderMap) -> Option<SessionUser> {
        let id = self.session_id(headers)?;
        let mut sessions = self.sessions();
        match sessions.get(id) {
            Some(u) if u.expires > Instant::now() => Some(u.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Starts a session for `user`, replacing `previous` (the browser's current session, if
    /// any) and dropping every expired session.
    fn start_session(&self, id: String, user: SessionUser, previous: Option<&str>) {
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, u| u.expires > now);
        if let Some(previous) = previous {
            sessions.remove(previous);
        }
        sessions.insert(id, user);
    }

    fn session_cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let mut v = HeaderValue::try_from(format!(
            "{}={value}; Max-Age={}; Path=/; HttpOnly{secure}; SameSite=Lax",
            self.cookie_name,
            max_age.as_secs()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }
}

/// The app's router. The session cookie follows the login's redirect URI: `__Host-session`,
/// `Secure`, when it is https; `session` without `Secure` for development over plain http.
pub fn app(login: Login) -> Router {
    let secure_cookies = login.redirect_uri().starts_with("https://");
    let state = AppState {
        login,
        sessions: Arc::new(Mutex::new(HashMap::new())),
        cookie_name: if secure_cookies {
            "__Host-session"
        } else {
            "session"
        },
        secure: secure_cookies,
    };
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_start))
        .route("/callback", get(callback))
        .route("/logout", post(logout))
        .with_state(state)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.user(&headers) {
        Some(u) => html(
            StatusCode::OK,
            format!(
                "<!doctype html><title>web-login</title><p>Logged in as <b id=\"subject\">{}</b>{}</p>\
                 <form method=\"post\" action=\"/logout\"><button>Log out</button></form>",
                escape(&u.subject),
                u.email
                    .as_deref()
                    .map(|e| format!(" (<span id=\"email\">{}</span>)", escape(e)))
                    .unwrap_or_default()
            ),
        ),
        None => html(
            StatusCode::OK,
            "<!doctype html><title>web-login</title><p>Not logged in.</p>\
             <p><a href=\"/login\">Log in with the provider</a></p>"
                .to_owned(),
        ),
    }
}

async fn login_start(State(state): State<AppState>) -> Response<Body> {
    match state.login.start().await {
        Ok(start) => start.into_response(),
        Err(e) => state.login.error_response(&e),
    }
}

fn random_id() -> Option<String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

async fn callback(State(state): State<AppState>, req: Request) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let user: LoggedIn = match state.login.callback_request(&parts).await {
        Ok(u) => u,
        Err(e) => return state.login.error_response(&e),
    };
    let Some(id) = random_id() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    state.start_session(
        id.clone(),
        SessionUser {
            subject: user.subject().to_owned(),
            email: user.email().map(str::to_owned),
            expires: Instant::now() + SESSION_TTL,
        },
        state.session_id(&parts.headers),
    );
    // A 303 to a page of our own, so the callback URL (with its code) leaves the address bar;
    // not cacheable, no Referer, the login cookie deleted; plus the session cookie.
    let mut res: Response<Body> = state.login.success_redirect(HeaderValue::from_static("/"));
    res.headers_mut()
        .append(SET_COOKIE, state.session_cookie(&id, SESSION_TTL));
    res
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = state.session_id(&headers) {
        state.sessions().remove(id);
    }
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/"));
    res.headers_mut()
        .insert(SET_COOKIE, state.session_cookie("", Duration::ZERO));
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn state() -> AppState {
        let login = Login::builder("https://idp.example")
            .authorization_endpoint("https://idp.example/authorize")
            .token_endpoint("https://idp.example/token")
            .client_id("web")
            .redirect_uri("https://app.example/callback")
            .build()
            .unwrap();
        AppState {
            login,
            sessions: Arc::new(Mutex::new(HashMap::new())),
            cookie_name: "__Host-session",
            secure: true,
        }
    }

    fn user(subject: &str, expires: Instant) -> SessionUser {
        SessionUser {
            subject: subject.into(),
            email: None,
            expires,
        }
    }

    #[test]
    fn a_new_session_sweeps_expired_ones_and_replaces_the_previous() {
        let s = state();
        let now = Instant::now();
        let later = now + SESSION_TTL;
        s.sessions().insert("live".into(), user("carol", later));
        s.sessions()
            .insert("old".into(), user("dave", now - Duration::from_millis(1)));
        s.start_session("first".into(), user("alice", later), None);
        let ids: Vec<String> = {
            let mut ids: Vec<String> = s.sessions().keys().cloned().collect();
            ids.sort();
            ids
        };
        assert_eq!(ids, ["first", "live"], "the expired session is gone");
        s.start_session("second".into(), user("alice", later), Some("first"));
        assert!(!s.sessions().contains_key("first"), "replaced");
        assert!(s.sessions().contains_key("second"));
        assert!(
            s.sessions().contains_key("live"),
            "another user's session stays"
        );
    }
}
