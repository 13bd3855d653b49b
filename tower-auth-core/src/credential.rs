//! Finding credentials in a request: the `Authorization: Bearer` header (RFC 6750 section 2.1,
//! RFC 7235), named headers, cookies and query parameters.
//!
//! These parsers are shared by every scheme so that all of them read requests the same way:
//!
//! - The auth-scheme name `Bearer` is matched case-insensitively and may be followed by one or
//!   more spaces (RFC 7235 `1*SP`); the token must be `token68`.
//! - More than one `Authorization` header is a malformed request (400 `invalid_request`).
//! - `Authorization: Bearer` with an empty token, or a token that is not `token68` (including
//!   non-UTF-8 or non-ASCII bytes), is a bad credential (401 `invalid_token`).
//! - An `Authorization` header of another scheme (`Basic ...`) is "not mine": `Ok(None)`.

use std::fmt;
use std::sync::Arc;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, Uri};

use crate::{AuthError, Scheme};

/// Where in the request a credential was found.
///
/// [`Or`](crate::Or) compares locations: two schemes claiming the same location (the same
/// `Authorization: Bearer` value) is resolved in favour of the earlier scheme; two credentials in
/// different locations is a malformed request.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// The `Authorization` header.
    Authorization,
    /// A named request header other than `Authorization` (`X-API-Key`).
    Header(HeaderName),
    /// A named cookie.
    Cookie(Arc<str>),
    /// A named query parameter.
    Query(Arc<str>),
    /// A location of a custom scheme.
    Custom(&'static str),
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authorization => f.write_str("Authorization"),
            Self::Header(h) => write!(f, "Header({h})"),
            Self::Cookie(c) => write!(f, "Cookie({c})"),
            Self::Query(q) => write!(f, "Query({q})"),
            Self::Custom(c) => write!(f, "Custom({c})"),
        }
    }
}

/// A credential found by [`Authenticator::extract`](crate::Authenticator::extract): which
/// scheme claimed it and where it was found.
///
/// `Debug` does not print the credential.
pub struct Found<C> {
    /// The scheme's credential.
    pub credential: C,
    /// Where it was found.
    pub location: Location,
    /// The scheme that claimed it (for logs and metrics labels).
    pub scheme: Scheme,
}

impl<C> Found<C> {
    /// A credential of `scheme` found at `location`.
    pub fn new(credential: C, location: Location, scheme: Scheme) -> Self {
        Self {
            credential,
            location,
            scheme,
        }
    }

    /// Maps the credential, keeping the location and scheme.
    pub fn map<D>(self, f: impl FnOnce(C) -> D) -> Found<D> {
        Found {
            credential: f(self.credential),
            location: self.location,
            scheme: self.scheme,
        }
    }
}

impl<C> fmt::Debug for Found<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Found")
            .field("location", &self.location)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// The token of an `Authorization: Bearer <token>` header.
///
/// `Ok(None)` when there is no `Authorization` header or it carries another scheme. See the
/// [module docs](self) for the rules.
///
/// ```
/// use http::HeaderMap;
/// use tower_auth_core::credential::bearer_token;
///
/// let mut h = HeaderMap::new();
/// h.insert("authorization", "bearer   abc.def-_~+/==".parse().unwrap());
/// assert_eq!(bearer_token(&h).unwrap(), Some("abc.def-_~+/=="));
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            "more than one authorization header",
        ));
    }
    let bytes = value.as_bytes();
    // `Bearer` then 1*SP; anything else (`Basic ...`, `Bearerx`) is another scheme.
    const SCHEME: &[u8] = b"bearer";
    if bytes.len() < SCHEME.len()
        || !bytes[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
        || bytes.get(SCHEME.len()).is_some_and(|&b| b != b' ')
    {
        return Ok(None);
    }
    let token = trim_ascii_spaces(&bytes[SCHEME.len()..]);
    if token.is_empty() {
        return Err(AuthError::invalid_token("empty bearer token"));
    }
    // Trailing spaces after the token are tolerated (hyper already strips trailing whitespace of
    // field values; other servers may not), but the token itself must be token68.
    if !is_token68(token) {
        return Err(AuthError::invalid_token("malformed bearer token"));
    }
    // token68 is ASCII, so this cannot fail; fall back to an error rather than panic.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| AuthError::invalid_token("malformed bearer token"))
}

fn trim_ascii_spaces(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b' ').map_or(start, |i| i + 1);
    &b[start..end]
}

/// Whether `b` matches RFC 7235 `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_token68(b: &[u8]) -> bool {
    let body_len = b.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    body_len > 0 && b[..body_len].iter().all(|&c| TOKEN68[usize::from(c)])
}

/// The bytes a token68 may hold before its padding, as a table: one load per byte instead of
/// a chain of range comparisons, which matters for a JWT of several hundred bytes checked on
/// every request.
const TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        c += 1;
    }
    table
};

/// The value of a named header other than `Authorization`.
///
/// `Ok(None)` when absent; more than one such header is a malformed request; an empty or
/// non-visible-ASCII value is a bad credential.
pub fn header_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            "more than one credential header",
        ));
    }
    let s = value
        .to_str()
        .map_err(|_| AuthError::invalid_token("malformed credential"))?
        .trim_matches(' ');
    if s.is_empty() {
        return Err(AuthError::invalid_token("empty credential"));
    }
    Ok(Some(s))
}

/// The value of the cookie `name`, across every `Cookie` header (HTTP/2 may split them).
///
/// `Ok(None)` when absent; the same cookie name twice is a malformed request (which of the two
/// is meant cannot be known); an empty value, or one that is not an RFC 6265 `cookie-value`
/// (cookie octets, optionally inside one pair of double quotes, which are removed), is a bad
/// credential.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut found = None;
    for value in headers.get_all(COOKIE) {
        // Non-UTF-8 cookie headers cannot hold our cookie; skip them rather than fail the request.
        let Ok(s) = value.to_str() else { continue };
        for pair in s.split(';') {
            let Some((k, v)) = pair.trim_matches(' ').split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return Err(AuthError::invalid_request("duplicate credential cookie"));
                }
                found = Some(v);
            }
        }
    }
    match found.map(cookie_octets) {
        None => Ok(None),
        Some(None) => Err(AuthError::invalid_token("malformed credential")),
        Some(Some("")) => Err(AuthError::invalid_token("empty credential")),
        Some(value) => Ok(value),
    }
}

/// RFC 6265 section 4.1.1 `cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )`:
/// the octets without their quotes, or `None`.
fn cookie_octets(value: &str) -> Option<&str> {
    let inner = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    // Visible ASCII but `"`, `,`, `;` and `\`.
    let octet = |b: u8| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
    inner.bytes().all(octet).then_some(inner)
}

/// The raw (not percent-decoded) value of query parameter `name`.
///
/// `Ok(None)` when absent; the parameter twice is a malformed request; an empty value is a bad
/// credential. Credentials in URLs end up in access logs and browser history: schemes read them
/// only when explicitly enabled.
pub fn query_value<'a>(uri: &'a Uri, name: &str) -> Result<Option<&'a str>, AuthError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err(AuthError::invalid_request("duplicate credential parameter"));
            }
            found = Some(v);
        }
    }
    match found {
        Some("") => Err(AuthError::invalid_token("empty credential")),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthErrorKind;
    use http::HeaderValue;

    fn auth(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn kind(r: Result<Option<&str>, AuthError>) -> AuthErrorKind {
        r.unwrap_err().kind()
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_with_one_or_more_spaces() {
        for v in [
            &b"Bearer abc"[..],
            b"bearer abc",
            b"BEARER abc",
            b"bEaReR    abc",
            b"Bearer abc  ",
        ] {
            assert_eq!(bearer_token(&auth(&[v])).unwrap(), Some("abc"), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_are_not_mine() {
        assert_eq!(bearer_token(&auth(&[b"Basic dXNlcjpwYXNz"])).unwrap(), None);
        assert_eq!(bearer_token(&auth(&[b"Bearerabc"])).unwrap(), None);
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn empty_and_malformed_tokens_are_invalid_token() {
        for v in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer    ",
            b"Bearer a b",
            b"Bearer ===",
            b"Bearer a=b",
            b"Bearer a,b",
            b"Bearer \"abc\"",
            b"Bearer \xff\xfe",
            b"Bearer caf\xc3\xa9",
            b"Bearer \tabc",
        ] {
            assert_eq!(
                kind(bearer_token(&auth(&[v]))),
                AuthErrorKind::InvalidToken,
                "{v:?}"
            );
        }
    }

    #[test]
    fn token68_characters_exactly() {
        for c in 0..=255u8 {
            let expected =
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_token68(&[c]), expected, "{c:#x}");
        }
    }

    #[test]
    fn token68_long_values_are_checked_at_every_position() {
        // Short and long values (a JWT is hundreds of bytes), a bad byte at every position.
        for len in [1, 31, 32, 33, 64, 65, 100, 700] {
            let good: Vec<u8> = (0..len).map(|i| b"aZ9-._~+/"[i % 9]).collect();
            assert!(is_token68(&good), "{len}");
            for pos in 0..len {
                for bad in [b' ', b',', b'"', 0x80, b'=', 0] {
                    let mut v = good.clone();
                    v[pos] = bad;
                    // `=` is padding only at the end.
                    let expected = bad == b'=' && pos == len - 1 && len > 1;
                    assert_eq!(is_token68(&v), expected, "{len} {pos} {bad:#x}");
                }
            }
        }
    }

    #[test]
    fn token68_padding_is_allowed_at_the_end_only() {
        assert!(is_token68(b"abc=="));
        assert!(is_token68(b"a-._~+/Z9"));
        assert!(!is_token68(b"=abc"));
        assert!(!is_token68(b""));
    }

    #[test]
    fn duplicate_authorization_headers_are_invalid_request() {
        assert_eq!(
            kind(bearer_token(&auth(&[b"Bearer a", b"Bearer a"]))),
            AuthErrorKind::InvalidRequest
        );
        assert_eq!(
            kind(bearer_token(&auth(&[b"Basic a", b"Bearer b"]))),
            AuthErrorKind::InvalidRequest
        );
    }

    #[test]
    fn cookies_across_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; session=xyz"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&h, "session").unwrap(), Some("xyz"));
        assert_eq!(cookie_value(&h, "missing").unwrap(), None);
        h.append(COOKIE, HeaderValue::from_static("session=other"));
        assert_eq!(
            cookie_value(&h, "session").unwrap_err().kind(),
            AuthErrorKind::InvalidRequest
        );
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("session="));
        assert_eq!(
            cookie_value(&h, "session").unwrap_err().kind(),
            AuthErrorKind::InvalidToken
        );
    }

    /// Found by the `credentials` fuzz target: a quoted value with spaces inside came back with
    /// a trailing space, and an unbalanced quote was silently dropped.
    #[test]
    fn cookie_values_are_rfc6265_cookie_values() {
        let cookie = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.append(COOKIE, HeaderValue::from_static(v));
            h
        };
        assert_eq!(
            cookie_value(&cookie("a=1; session=\"abc\"; b"), "session").unwrap(),
            Some("abc")
        );
        assert_eq!(
            cookie_value(
                &cookie("session=a=b.c-d_~!#$%&'()*+/:<=>?@[]^`{|}"),
                "session"
            )
            .unwrap(),
            Some("a=b.c-d_~!#$%&'()*+/:<=>?@[]^`{|}")
        );
        for bad in [
            "session=e: 3 x \"",
            "session=a b",
            "session=\"abc",
            "session=abc\"",
            "session=\"",
            "session=\"a\"b\"",
            "session=a\\b",
            "session=a,b",
        ] {
            let mut h = HeaderMap::new();
            h.append(COOKIE, HeaderValue::from_str(bad).unwrap());
            assert_eq!(
                cookie_value(&h, "session").unwrap_err().kind(),
                AuthErrorKind::InvalidToken,
                "{bad}"
            );
        }
        assert_eq!(
            cookie_value(&cookie("session=\"\""), "session")
                .unwrap_err()
                .kind(),
            AuthErrorKind::InvalidToken
        );
    }

    #[test]
    fn header_and_query_values() {
        let name = HeaderName::from_static("x-api-key");
        let mut h = HeaderMap::new();
        assert_eq!(header_value(&h, &name).unwrap(), None);
        h.append(&name, HeaderValue::from_static("k1"));
        assert_eq!(header_value(&h, &name).unwrap(), Some("k1"));
        h.append(&name, HeaderValue::from_static("k2"));
        assert_eq!(
            header_value(&h, &name).unwrap_err().kind(),
            AuthErrorKind::InvalidRequest
        );

        let uri: Uri = "/x?a=1&api_key=k&b".parse().unwrap();
        assert_eq!(query_value(&uri, "api_key").unwrap(), Some("k"));
        assert_eq!(
            query_value(&uri, "b").unwrap_err().kind(),
            AuthErrorKind::InvalidToken
        );
        let uri: Uri = "/x?api_key=1&api_key=2".parse().unwrap();
        assert_eq!(
            query_value(&uri, "api_key").unwrap_err().kind(),
            AuthErrorKind::InvalidRequest
        );
    }
}
