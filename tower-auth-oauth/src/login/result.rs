//! What the flow returns: a started login and a completed one.

use std::fmt;
use std::time::Duration;

use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Map, Value};
use tower_auth_core::{Principal, PrincipalKind, Scheme};

/// A started login: the authorization URL to send the browser to, and the login cookie to set
/// on that response. `Debug` shows neither (the cookie is a bearer secret until the callback).
#[must_use = "send the browser to the authorization URL with the login cookie"]
pub struct LoginStart {
    pub(super) authorize_url: String,
    pub(super) set_cookie: HeaderValue,
    pub(super) id: String,
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
    /// [`Login::callback`](super::Login::callback) instead of setting a cookie. A secret until the callback: never log
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
    pub(super) subject: String,
    pub(super) issuer: String,
    pub(super) claims: Map<String, Value>,
    pub(super) id_token: String,
    pub(super) access_token: String,
    pub(super) refresh_token: Option<String>,
    pub(super) expires_in: Option<Duration>,
    pub(super) scopes: Option<Vec<String>>,
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
