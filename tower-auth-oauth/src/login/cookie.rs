//! The login cookie, and the responses that set or delete it.

use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};

use super::{Login, LoginError};

/// The default name of the login cookie (with `Secure`): the `__Host-` prefix makes browsers
/// refuse it unless it is `Secure`, has `Path=/` and no `Domain`.
pub const LOGIN_COOKIE: &str = "__Host-tower_auth_login";
/// The name of the login cookie when it is not `Secure` (development over plain http).
pub const INSECURE_LOGIN_COOKIE: &str = "tower_auth_login";

pub(super) fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Login {
    pub(super) fn cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
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
