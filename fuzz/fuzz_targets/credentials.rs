//! The credential parsers every scheme reads requests with: `Authorization: Bearer`, a named
//! header (`X-API-Key`), a cookie and a query parameter.
//!
//! Input: an HTTP request head as text: the request target on the first line, then one
//! `name: value` header per line (lines that are not a valid header are skipped).
//!
//! Properties: a value a parser returns is one it was given, holds no separator it splits on,
//! and reads back the same when sent alone; duplicates are `invalid_request`.
#![no_main]

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tower_auth_core::AuthErrorKind;
use tower_auth_core::credential::{
    bearer_token, cookie_value, header_value, is_token68, query_value,
};

const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

fn request(data: &[u8]) -> (Option<Uri>, HeaderMap) {
    let mut lines = data.split(|&b| b == b'\n');
    let uri = lines.next().and_then(|l| Uri::try_from(l).ok());
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    (uri, headers)
}

fn one(name: HeaderName, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        name,
        HeaderValue::from_str(value).expect("a parsed value is a header value"),
    );
    h
}

fn bearer(headers: &HeaderMap) {
    let count = headers.get_all(AUTHORIZATION).iter().count();
    match bearer_token(headers) {
        Ok(Some(token)) => {
            assert_eq!(count, 1);
            assert!(is_token68(token.as_bytes()), "{token:?}");
            let value = headers[AUTHORIZATION].as_bytes();
            assert!(value[..6].eq_ignore_ascii_case(b"bearer") && value[6] == b' ');
            let again = one(AUTHORIZATION, &format!("Bearer {token}"));
            assert_eq!(bearer_token(&again).ok().flatten(), Some(token));
        }
        Ok(None) => {
            assert!(count <= 1);
            if let Some(v) = headers.get(AUTHORIZATION) {
                let v = v.as_bytes();
                let bearer = v.len() >= 6
                    && v[..6].eq_ignore_ascii_case(b"bearer")
                    && v.get(6).is_none_or(|&b| b == b' ');
                assert!(!bearer, "a Bearer header was not claimed: {v:?}");
            }
        }
        Err(e) => assert_eq!(
            e.kind() == AuthErrorKind::InvalidRequest,
            count > 1,
            "{e:?} with {count} headers"
        ),
    }
}

fn api_key(headers: &HeaderMap) {
    let count = headers.get_all(API_KEY).iter().count();
    match header_value(headers, &API_KEY) {
        Ok(Some(v)) => {
            assert_eq!(count, 1);
            assert!(!v.is_empty() && !v.starts_with(' ') && !v.ends_with(' '));
            assert_eq!(
                header_value(&one(API_KEY, v), &API_KEY).ok().flatten(),
                Some(v)
            );
        }
        Ok(None) => assert_eq!(count, 0),
        Err(e) => assert_eq!(e.kind() == AuthErrorKind::InvalidRequest, count > 1),
    }
}

fn cookie(headers: &HeaderMap) {
    match cookie_value(headers, "session") {
        Ok(Some(v)) => {
            assert!(!v.is_empty() && !v.contains(';'), "{v:?}");
            assert!(!v.starts_with('"') && !v.ends_with('"'), "{v:?}");
            let alone = one(COOKIE, &format!("a=1; session={v}; b=2"));
            assert_eq!(cookie_value(&alone, "session").ok().flatten(), Some(v));
        }
        Ok(None) | Err(_) => {}
    }
}

fn query(uri: &Uri) {
    match query_value(uri, "api_key") {
        Ok(Some(v)) => {
            assert!(!v.is_empty() && !v.contains('&'), "{v:?}");
            let alone: Uri = format!("/x?a=1&api_key={v}")
                .parse()
                .expect("a value from a query stays a valid query");
            assert_eq!(query_value(&alone, "api_key").ok().flatten(), Some(v));
        }
        Ok(None) | Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (uri, headers) = request(data);
    bearer(&headers);
    api_key(&headers);
    cookie(&headers);
    if let Some(uri) = uri {
        query(&uri);
    }
});
