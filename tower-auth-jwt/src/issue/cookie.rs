//! `Set-Cookie` values for the access and refresh tokens.

use std::fmt;
use std::time::Duration;

use http::HeaderValue;

/// The default name of the access-token cookie. The `__Host-` prefix makes browsers refuse
/// it unless it is `Secure`, has `Path=/` and no `Domain`, so a sibling subdomain cannot plant
/// or shadow it.
pub const ACCESS_COOKIE: &str = "__Host-access_token";
/// The default name of the refresh-token cookie. The `__Secure-` prefix makes browsers refuse
/// it unless it is `Secure` (`__Host-` would force `Path=/`, sending it with every request).
pub const REFRESH_COOKIE: &str = "__Secure-refresh_token";
/// The default path of the refresh cookie: the refresh and logout endpoints live under it.
pub const DEFAULT_REFRESH_PATH: &str = "/auth";

/// A cookie value or path that cannot go into a `Set-Cookie` header. Never shows the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCookie {
    what: &'static str,
}

impl fmt::Display for InvalidCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cookie {}", self.what)
    }
}

impl std::error::Error for InvalidCookie {}

/// RFC 6265 `cookie-octet`: visible ASCII without `"`, `,`, `;`, `\`.
fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// RFC 6265 `path-value`, starting with `/`: no control characters and no `;`.
fn valid_path(p: &str) -> bool {
    p.starts_with('/') && p.bytes().all(|b| (0x20..0x7F).contains(&b) && b != b';')
}

fn build(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
) -> Result<HeaderValue, InvalidCookie> {
    if !valid_value(value) && !value.is_empty() {
        return Err(InvalidCookie { what: "value" });
    }
    if !valid_path(path) {
        return Err(InvalidCookie { what: "path" });
    }
    HeaderValue::from_str(&format!(
        "{name}={value}; Max-Age={}; Path={path}; HttpOnly; Secure; SameSite=Strict",
        max_age.as_secs()
    ))
    .map(|mut v| {
        v.set_sensitive(true);
        v
    })
    .map_err(|_| InvalidCookie { what: "value" })
}

/// `Set-Cookie` for the access token, named [`ACCESS_COOKIE`]:
/// `__Host-access_token=<token>; Max-Age=<secs>; Path=/; HttpOnly; Secure; SameSite=Strict`.
///
/// Give it the access token's lifetime ([`AccessToken::expires_in`](super::AccessToken::expires_in)).
/// Read it back with [`JwtAuthenticatorBuilder::cookie`](crate::JwtAuthenticatorBuilder::cookie)`(ACCESS_COOKIE)`.
/// The header value is marked sensitive, so HTTP tracing layers do not print it.
///
/// ```
/// use std::time::Duration;
/// use tower_auth_jwt::issue::access_cookie;
///
/// let v = access_cookie("eyJ.eyJ.sig", Duration::from_secs(900)).unwrap();
/// assert_eq!(
///     v,
///     "__Host-access_token=eyJ.eyJ.sig; Max-Age=900; Path=/; HttpOnly; Secure; SameSite=Strict"
/// );
/// assert!(v.is_sensitive());
/// assert!(access_cookie("bad;value", Duration::from_secs(900)).is_err());
/// ```
pub fn access_cookie(token: &str, max_age: Duration) -> Result<HeaderValue, InvalidCookie> {
    if token.is_empty() {
        return Err(InvalidCookie { what: "value" });
    }
    build(ACCESS_COOKIE, token, "/", max_age)
}

/// `Set-Cookie` for the refresh token, named [`REFRESH_COOKIE`], sent only to `path` (the
/// refresh and logout endpoints, [`DEFAULT_REFRESH_PATH`] say):
/// `__Secure-refresh_token=<token>; Max-Age=<secs>; Path=<path>; HttpOnly; Secure; SameSite=Strict`.
///
/// Give it the time left until [`RefreshToken::expires_at`](super::RefreshToken::expires_at).
///
/// ```
/// use std::time::Duration;
/// use tower_auth_jwt::issue::refresh_cookie;
///
/// let v = refresh_cookie("r4nd0m", "/auth", Duration::from_secs(3600)).unwrap();
/// assert_eq!(
///     v,
///     "__Secure-refresh_token=r4nd0m; Max-Age=3600; Path=/auth; HttpOnly; Secure; SameSite=Strict"
/// );
/// assert!(refresh_cookie("r4nd0m", "auth", Duration::from_secs(1)).is_err());
/// ```
pub fn refresh_cookie(
    token: &str,
    path: &str,
    max_age: Duration,
) -> Result<HeaderValue, InvalidCookie> {
    if token.is_empty() {
        return Err(InvalidCookie { what: "value" });
    }
    build(REFRESH_COOKIE, token, path, max_age)
}

/// `Set-Cookie` that deletes the access cookie (empty value, `Max-Age=0`, same attributes).
pub fn clear_access_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-access_token=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict",
    )
}

/// `Set-Cookie` that deletes the refresh cookie set with this `path` (a cookie is only
/// replaced by one with the same name and path).
pub fn clear_refresh_cookie(path: &str) -> Result<HeaderValue, InvalidCookie> {
    build(REFRESH_COOKIE, "", path, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn attributes_exactly() {
        let v = access_cookie("a.b.c", Duration::from_secs(900)).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-access_token=a.b.c; Max-Age=900; Path=/; HttpOnly; Secure; SameSite=Strict"
        );
        let v = refresh_cookie("tok-_0", "/auth", Duration::from_secs(604_800)).unwrap();
        assert_eq!(
            v.to_str().unwrap(),
            "__Secure-refresh_token=tok-_0; Max-Age=604800; Path=/auth; HttpOnly; Secure; SameSite=Strict"
        );
        assert!(v.is_sensitive());
        assert_eq!(
            clear_access_cookie().to_str().unwrap(),
            "__Host-access_token=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            clear_refresh_cookie("/auth").unwrap().to_str().unwrap(),
            "__Secure-refresh_token=; Max-Age=0; Path=/auth; HttpOnly; Secure; SameSite=Strict"
        );
    }

    #[test]
    fn header_injection_is_refused() {
        let age = Duration::from_secs(1);
        for bad in [
            "",
            "a;b",
            "a b",
            "a,b",
            "a\"b",
            "a\\b",
            "a\r\nSet-Cookie: x=y",
            "é",
        ] {
            assert!(access_cookie(bad, age).is_err(), "{bad:?}");
            assert!(refresh_cookie(bad, "/auth", age).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "auth",
            "/a;Domain=evil.example",
            "/a\r\nX: y",
            "/a\u{7f}",
        ] {
            assert!(refresh_cookie("t", bad, age).is_err(), "{bad:?}");
            assert!(clear_refresh_cookie(bad).is_err(), "{bad:?}");
        }
        let err = access_cookie("secret;value", age).unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
