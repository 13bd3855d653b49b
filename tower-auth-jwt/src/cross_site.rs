//! [`is_cross_site`]: whether a browser sent a request on behalf of another site, for routes
//! authenticated by a cookie (which the browser attaches on its own).

use http::{HeaderMap, header};

/// Whether `headers` show a cross-site request: a state-changing route authenticated by a
/// cookie should refuse it (403) before touching any credential, since the browser attaches
/// cookies to requests another site starts (cross-site request forgery).
///
/// Fetch metadata first: `Sec-Fetch-Site` other than `same-origin` or `none` (a request the
/// user typed or bookmarked) is cross-site, `same-site` included, since a sibling subdomain
/// is another origin. Without it (older browsers), an `Origin` whose host and port differ from
/// `Host`, or that cannot be read, is cross-site. A request with neither header (a non-browser
/// client, which sends no ambient cookie on another site's behalf) is not.
///
/// This complements `SameSite=Strict` cookies; the built-in issuer's session endpoints (feature
/// `issue`) apply it, and so should your own cookie-authenticated writes.
///
/// ```
/// use http::Request;
/// use tower_auth_jwt::is_cross_site;
///
/// let req = |headers: &[(&str, &str)]| {
///     let mut b = Request::post("/auth/refresh").header("host", "app.example");
///     for (k, v) in headers {
///         b = b.header(*k, *v);
///     }
///     b.body(()).unwrap()
/// };
/// assert!(!is_cross_site(req(&[("sec-fetch-site", "same-origin")]).headers()));
/// assert!(is_cross_site(req(&[("sec-fetch-site", "cross-site")]).headers()));
/// assert!(is_cross_site(req(&[("origin", "https://evil.example")]).headers()));
/// assert!(!is_cross_site(req(&[("origin", "https://app.example")]).headers()));
/// assert!(!is_cross_site(req(&[]).headers()));
/// ```
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://").map(|(_, rest)| rest));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin_host, host) {
        (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn fetch_metadata_decides_first() {
        for site in ["cross-site", "same-site", "garbage", ""] {
            let h = headers(&[("sec-fetch-site", site), ("origin", "https://app.example")]);
            assert!(is_cross_site(&h), "{site}");
        }
        for site in ["same-origin", "none"] {
            let h = headers(&[("sec-fetch-site", site), ("origin", "https://evil.example")]);
            assert!(!is_cross_site(&h), "{site}");
        }
    }

    #[test]
    fn without_fetch_metadata_origin_must_match_host() {
        let host = ("host", "app.example:8443");
        assert!(!is_cross_site(&headers(&[host])));
        assert!(!is_cross_site(&headers(&[
            host,
            ("origin", "https://APP.example:8443")
        ])));
        for origin in [
            "https://evil.example",
            "https://app.example",
            "https://sub.app.example:8443",
            "null",
        ] {
            assert!(
                is_cross_site(&headers(&[host, ("origin", origin)])),
                "{origin}"
            );
        }
        // An origin and no host to compare it with.
        assert!(is_cross_site(&headers(&[(
            "origin",
            "https://app.example"
        )])));
    }
}
