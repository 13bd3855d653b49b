//! Authorization server metadata: OpenID Connect Discovery 1.0 and RFC 8414.

use std::fmt;

use http::{StatusCode, Uri};
use serde_json::Value;
use tower_auth_core::client::{FetchError, HttpClient};

/// The metadata of an authorization server, as returned by [`discover`].
///
/// The fields this workspace uses are read out; everything else is in [`raw`](Self::raw).
/// Endpoint URLs are as published: check them with [`HttpClient::check_url`] before use (the
/// [`Discovery`](super::Discovery) key source does so for `jwks_uri`).
///
/// ```
/// use tower_auth_jwt::remote::Metadata;
///
/// let doc = br#"{"issuer":"https://idp.example.com","jwks_uri":"https://idp.example.com/jwks",
///               "token_endpoint":"https://idp.example.com/token","grant_types_supported":["client_credentials"]}"#;
/// let meta = Metadata::from_json(doc, "https://idp.example.com").unwrap();
/// assert_eq!(meta.jwks_uri(), Some("https://idp.example.com/jwks"));
/// assert_eq!(meta.token_endpoint(), Some("https://idp.example.com/token"));
/// assert_eq!(meta.introspection_endpoint(), None);
/// assert_eq!(meta.raw()["grant_types_supported"][0], "client_credentials");
///
/// // The published issuer must be the expected one, exactly.
/// assert!(Metadata::from_json(doc, "https://idp.example.com/").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Metadata {
    issuer: String,
    jwks_uri: Option<String>,
    token_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    raw: Value,
}

impl Metadata {
    /// Parses a metadata document and checks that its `issuer` is `expected_issuer`, byte for
    /// byte (OpenID Connect Discovery 1.0 section 4.3, RFC 8414 section 3.3): metadata naming
    /// another issuer could hand out someone else's keys.
    pub fn from_json(json: &[u8], expected_issuer: &str) -> Result<Self, DiscoveryError> {
        let raw: Value = serde_json::from_slice(json)
            .map_err(|_| DiscoveryError::Malformed("not a JSON document"))?;
        if !raw.is_object() {
            return Err(DiscoveryError::Malformed("not a JSON object"));
        }
        let issuer = match raw.get("issuer") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(DiscoveryError::Malformed("`issuer` is not a string")),
            None => return Err(DiscoveryError::Malformed("no `issuer`")),
        };
        if issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: expected_issuer.to_owned(),
                found: issuer,
            });
        }
        let url = |name: &'static str| -> Result<Option<String>, DiscoveryError> {
            match raw.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(DiscoveryError::Malformed("an endpoint is not a string")),
            }
        };
        Ok(Self {
            jwks_uri: url("jwks_uri")?,
            token_endpoint: url("token_endpoint")?,
            introspection_endpoint: url("introspection_endpoint")?,
            authorization_endpoint: url("authorization_endpoint")?,
            issuer,
            raw,
        })
    }

    /// `issuer`, equal to the issuer discovery was asked for.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `jwks_uri`: the signing keys.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// `token_endpoint`.
    pub fn token_endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_deref()
    }

    /// `introspection_endpoint` (RFC 7662).
    pub fn introspection_endpoint(&self) -> Option<&str> {
        self.introspection_endpoint.as_deref()
    }

    /// `authorization_endpoint`.
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.authorization_endpoint.as_deref()
    }

    /// The whole document.
    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

/// Why [`discover`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer is not an absolute URL with an allowed scheme (https, or http with
    /// `insecure_allow_http`), or has a query or fragment.
    InvalidIssuer(String),
    /// The request failed (connection, deadline, size cap, redirect).
    Fetch(FetchError),
    /// Neither metadata location answered 200.
    Status(StatusCode),
    /// The document is not metadata.
    Malformed(&'static str),
    /// The document names another issuer.
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The `issuer` in the document.
        found: String,
    },
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIssuer(why) => write!(f, "invalid issuer URL: {why}"),
            Self::Fetch(e) => write!(f, "metadata request failed: {e}"),
            Self::Status(s) => write!(f, "metadata request answered {s}"),
            Self::Malformed(why) => write!(f, "malformed metadata: {why}"),
            Self::IssuerMismatch { expected, found } => write!(
                f,
                "metadata issuer `{found}` is not the configured issuer `{expected}`"
            ),
        }
    }
}

impl std::error::Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Fetch(e) => Some(e),
            _ => None,
        }
    }
}

/// The two metadata URLs of an issuer: OpenID Connect Discovery
/// (`{issuer}/.well-known/openid-configuration`) first, then RFC 8414
/// (`{scheme}://{host}/.well-known/oauth-authorization-server{path}`).
pub(crate) fn metadata_urls(client: &HttpClient, issuer: &str) -> Result<[Uri; 2], DiscoveryError> {
    let uri = client
        .check_url(issuer)
        .map_err(|e| DiscoveryError::InvalidIssuer(e.to_string()))?;
    if uri.query().is_some() || issuer.contains('#') {
        return Err(DiscoveryError::InvalidIssuer(
            "an issuer has no query or fragment".to_owned(),
        ));
    }
    let base = issuer.trim_end_matches('/');
    let oidc = format!("{base}/.well-known/openid-configuration");
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map_or("", |a| a.as_str());
    let path = uri.path().trim_end_matches('/');
    let rfc8414 = format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}");
    let parse = |s: String| {
        s.parse::<Uri>()
            .map_err(|_| DiscoveryError::InvalidIssuer("not a valid URL".to_owned()))
    };
    Ok([parse(oidc)?, parse(rfc8414)?])
}

/// Fetches and checks the metadata of `issuer`: OpenID Connect Discovery
/// (`/.well-known/openid-configuration`) first, RFC 8414
/// (`/.well-known/oauth-authorization-server`) when that does not answer 200. The document's
/// `issuer` must equal `issuer` exactly. The client's rules apply: deadline, size cap, no
/// redirects, https only unless allowed.
///
/// ```no_run
/// use tower_auth_core::client::HttpClient;
/// use tower_auth_jwt::remote::discover;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client = HttpClient::builder().build().unwrap();
/// let meta = discover(&client, "https://idp.example.com").await.unwrap();
/// println!("token endpoint: {:?}", meta.token_endpoint());
/// # }
/// ```
pub async fn discover(client: &HttpClient, issuer: &str) -> Result<Metadata, DiscoveryError> {
    let urls = metadata_urls(client, issuer)?;
    let mut status = StatusCode::NOT_FOUND;
    for url in &urls {
        let res = client.get_json(url).await.map_err(DiscoveryError::Fetch)?;
        if res.status == StatusCode::OK {
            return Metadata::from_json(&res.body, issuer);
        }
        status = res.status;
    }
    Err(DiscoveryError::Status(status))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn metadata_locations() {
        let client = HttpClient::builder()
            .insecure_allow_http(true)
            .build()
            .unwrap();
        let urls = |i: &str| {
            metadata_urls(&client, i)
                .map(|u| u.map(|u| u.to_string()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            urls("https://idp.example.com").unwrap(),
            [
                "https://idp.example.com/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server"
            ]
        );
        assert_eq!(
            urls("https://idp.example.com/realms/a/").unwrap(),
            [
                "https://idp.example.com/realms/a/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server/realms/a"
            ]
        );
        assert!(urls("https://idp.example.com/?x=1").is_err());
        assert!(urls("idp.example.com").is_err());
        let strict = HttpClient::builder().build().unwrap();
        assert!(metadata_urls(&strict, "http://idp.example.com").is_err());
    }

    #[test]
    fn metadata_documents() {
        let err = |doc: &str| Metadata::from_json(doc.as_bytes(), "https://a").unwrap_err();
        assert!(matches!(err("[]"), DiscoveryError::Malformed(_)));
        assert!(matches!(err("{}"), DiscoveryError::Malformed(_)));
        assert!(matches!(
            err(r#"{"issuer":1}"#),
            DiscoveryError::Malformed(_)
        ));
        assert!(matches!(
            err(r#"{"issuer":"https://a","jwks_uri":5}"#),
            DiscoveryError::Malformed(_)
        ));
        assert_eq!(
            err(r#"{"issuer":"https://b"}"#).to_string(),
            "metadata issuer `https://b` is not the configured issuer `https://a`"
        );
        let m = Metadata::from_json(
            br#"{"issuer":"https://a","introspection_endpoint":"https://a/i","authorization_endpoint":"https://a/auth"}"#,
            "https://a",
        )
        .unwrap();
        assert_eq!(m.issuer(), "https://a");
        assert_eq!(m.jwks_uri(), None);
        assert_eq!(m.introspection_endpoint(), Some("https://a/i"));
        assert_eq!(m.authorization_endpoint(), Some("https://a/auth"));
    }
}
