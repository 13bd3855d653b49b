//! OpenID Connect Discovery / RFC 8414 metadata documents, and the metadata URLs derived from
//! an issuer.
//!
//! Input: the first byte picks what the rest is read as: a metadata document (expected issuer
//! `https://idp.example.com`), or an issuer URL.
//!
//! Properties: accepted metadata names exactly the expected issuer and its endpoints are the
//! document's strings; the URLs derived from an issuer start with that issuer (OpenID Connect)
//! or with its origin (RFC 8414).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_auth_jwt::fuzzing::metadata_urls;
use tower_auth_jwt::remote::Metadata;

const ISSUER: &str = "https://idp.example.com";

fn metadata(doc: &[u8]) {
    let Ok(m) = Metadata::from_json(doc, ISSUER) else {
        return;
    };
    assert_eq!(m.issuer(), ISSUER);
    assert_eq!(m.raw()["issuer"], ISSUER);
    for (name, got) in [
        ("jwks_uri", m.jwks_uri()),
        ("token_endpoint", m.token_endpoint()),
        ("introspection_endpoint", m.introspection_endpoint()),
        ("authorization_endpoint", m.authorization_endpoint()),
    ] {
        assert_eq!(m.raw().get(name).and_then(Value::as_str), got, "{name}");
    }
}

fn urls(issuer: &str) {
    let Some([oidc, rfc8414]) = metadata_urls(issuer) else {
        return;
    };
    let (oidc, rfc8414) = (oidc.to_string(), rfc8414.to_string());
    assert!(!issuer.contains('#') && !issuer.contains('?'), "{issuer:?}");
    // The scheme is case-insensitive, and a parsed URI writes it in lower case.
    let lower_scheme = |url: &str| match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => url.to_owned(),
    };
    let base = lower_scheme(issuer.trim_end_matches('/'));
    assert_eq!(
        oidc,
        format!("{base}/.well-known/openid-configuration"),
        "{issuer:?}"
    );
    assert!(
        rfc8414.contains("/.well-known/oauth-authorization-server"),
        "{rfc8414}"
    );
    let scheme_end = issuer.find("://").expect("an absolute URL") + 3;
    let authority_end = issuer[scheme_end..]
        .find('/')
        .map_or(issuer.len(), |i| i + scheme_end);
    assert!(
        rfc8414.starts_with(&lower_scheme(&issuer[..authority_end])),
        "{issuer:?} -> {rfc8414}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        metadata(data);
    } else if let Ok(issuer) = std::str::from_utf8(data) {
        urls(issuer);
    }
});
