//! An OAuth 2.0 resource server in one piece: JWT access tokens verified locally, opaque tokens
//! introspected, both configured from the authorization server's metadata.
//!
//! [`ResourceServerBuilder::discover`] reads the authorization server's metadata (OpenID Connect
//! Discovery, falling back to RFC 8414; its `issuer` must be the configured one exactly) and
//! builds:
//!
//! - a [`JwtAuthenticator`] for the issuer, whose keys come from the metadata's `jwks_uri`
//!   through tower-auth-jwt's rotation-safe JWKS cache, checking the audiences you give and, by
//!   default, the RFC 9068 `typ` (`at+jwt`), so an ID token is not accepted as an access token;
//! - when you give the resource server's client credentials, an [`IntrospectionAuthenticator`]
//!   authenticator on the metadata's `introspection_endpoint` for opaque tokens.
//!
//! The two are composed JWT first: a three-segment compact JWS goes to JWT verification, any
//! other token to introspection. The path is chosen by the token's shape, never by trying one
//! and falling back to the other. Scopes are read from both kinds of token, so
//! [`RequireScopesLayer`](tower_auth_core::RequireScopesLayer) works the same for both.
//!
//! ```no_run
//! use tower::ServiceBuilder;
//! use tower_auth_core::{AuthenticateLayer, RequireScopesLayer};
//! use tower_auth_oauth::resource_server::ResourceServer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let rs = ResourceServer::builder("https://auth.example.com")
//!     .audiences(["https://api.example.com"])
//!     .introspection_client("my-api", std::env::var("INTROSPECTION_SECRET")?)
//!     .discover()
//!     .await?;
//! let layers = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(rs))
//!     .layer(RequireScopesLayer::all_of(["read:items"]));
//! # let _ = layers;
//! # Ok(())
//! # }
//! ```

use std::fmt;

use http::request::Parts;
use tower_auth_core::client::HttpClient;
use tower_auth_core::credential::Found;
use tower_auth_core::{AuthError, Authenticator, CacheConfig, Either, Or, OrFuture};
use tower_auth_jwt::remote::{DiscoveryError, JwksUrl, Metadata, discover};
use tower_auth_jwt::{Algorithm, JwtAuthenticator, JwtCredential, JwtFuture, TrustedIssuer};

use crate::client::{ClientAuth, ClientRegistration};
use crate::introspection::IntrospectionAuthenticator;

/// Why a [`ResourceServer`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResourceServerError {
    /// The metadata could not be fetched or does not belong to the issuer.
    Discovery(DiscoveryError),
    /// A setting, or an endpoint the metadata publishes, is not usable.
    Config(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for ResourceServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovery(e) => write!(f, "authorization server metadata: {e}"),
            Self::Config(e) => write!(f, "resource server configuration: {e}"),
        }
    }
}

impl std::error::Error for ResourceServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Discovery(e) => Some(e),
            Self::Config(e) => Some(&**e),
        }
    }
}

fn config(e: impl std::error::Error + Send + Sync + 'static) -> ResourceServerError {
    ResourceServerError::Config(Box::new(e))
}

/// JWT access tokens and (optionally) introspected opaque tokens of one authorization server.
/// See the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ResourceServer {
    inner: Or<JwtAuthenticator, Option<IntrospectionAuthenticator>>,
    metadata: Metadata,
}

impl ResourceServer {
    /// Starts a builder for the authorization server `issuer`.
    pub fn builder(issuer: impl Into<String>) -> ResourceServerBuilder {
        ResourceServerBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            require_typ: true,
            algorithms: None,
            introspection: false,
            registration: ClientRegistration::default(),
            introspection_cache: CacheConfig::default(),
            verified_token_cache: None,
        }
    }

    /// The authorization server's metadata, as discovered.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
}

impl Authenticator for ResourceServer {
    type Credential = Either<JwtCredential, String>;
    type Future = OrFuture<JwtFuture, tower_auth_core::MaybeFuture<tower_auth_core::BoxAuthFuture>>;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<Self::Credential>>, AuthError> {
        self.inner.extract(parts)
    }

    fn authenticate(&self, credential: Self::Credential) -> Self::Future {
        self.inner.authenticate(credential)
    }
}

/// Builds a [`ResourceServer`]; [`discover`](Self::discover) does the network I/O.
#[must_use]
pub struct ResourceServerBuilder {
    issuer: String,
    audiences: Vec<String>,
    require_typ: bool,
    algorithms: Option<Vec<Algorithm>>,
    /// Whether opaque tokens are introspected, with the client of `registration`.
    introspection: bool,
    registration: ClientRegistration,
    introspection_cache: CacheConfig,
    verified_token_cache: Option<CacheConfig>,
}

impl fmt::Debug for ResourceServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceServerBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("require_typ", &self.require_typ)
            .field(
                "introspection_client",
                &self.introspection.then_some(self.registration.id()),
            )
            .finish_non_exhaustive()
    }
}

impl ResourceServerBuilder {
    /// The audiences this API answers to: `aud` of JWT access tokens and of introspection
    /// results must contain one of them (a result without `aud` is rejected). At least one is
    /// required.
    pub fn audiences<I, T>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Accept JWTs without the RFC 9068 `typ` (`at+jwt`). Some authorization servers issue
    /// access tokens typed `JWT`; with this switch an ID token of the same issuer and audience
    /// would pass as an access token too.
    pub fn insecure_skip_access_token_type(mut self) -> Self {
        self.require_typ = false;
        self
    }

    /// The JWT algorithms to accept. Default: the asymmetric ones (RS256/384/512, PS256/384/512,
    /// ES256/384, EdDSA); never HMAC, whose key a resource server would have to share with the
    /// authorization server.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Enables introspection of opaque tokens, authenticating to the endpoint with
    /// `client_secret_basic`.
    pub fn introspection_client(
        self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.introspection_client_with(client_id, secret, ClientAuth::ClientSecretBasic)
    }

    /// Enables introspection of opaque tokens with the given client authentication.
    pub fn introspection_client_with(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        self.registration = self
            .registration
            .client_id(client_id)
            .client_secret(secret)
            .client_auth(auth);
        self.introspection = true;
        self
    }

    /// Enables introspection of opaque tokens with this [`ClientRegistration`] (client id,
    /// secret, client authentication), whose HTTP client, when it has one, also fetches the
    /// metadata and keys. Its scopes and resources are not used.
    pub fn introspection_registration(mut self, registration: ClientRegistration) -> Self {
        self.registration = registration;
        self.introspection = true;
        self
    }

    /// The introspection result cache (default TTL 30 s, never past a token's `exp`).
    pub fn introspection_cache(mut self, config: CacheConfig) -> Self {
        self.introspection_cache = config;
        self
    }

    /// Enables tower-auth-jwt's verified-token cache for JWT access tokens.
    pub fn verified_token_cache(mut self, config: CacheConfig) -> Self {
        self.verified_token_cache = Some(config);
        self
    }

    /// The HTTP client for metadata, keys and introspection.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.registration = self.registration.http_client(client);
        self
    }

    /// Allows plain-http URLs when no [`http_client`](Self::http_client) is given. Loopback
    /// tests only.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.registration = self.registration.insecure_allow_http(allow);
        self
    }

    /// Fetches the metadata and builds the resource server. JWT keys are fetched on first use
    /// (or call a request through it to warm up).
    pub async fn discover(self) -> Result<ResourceServer, ResourceServerError> {
        let http = self.client()?;
        let metadata = discover(&http, &self.issuer)
            .await
            .map_err(ResourceServerError::Discovery)?;
        self.build_from(metadata, http)
    }

    /// Builds the resource server from metadata fetched elsewhere (no network I/O).
    pub fn from_metadata(self, metadata: Metadata) -> Result<ResourceServer, ResourceServerError> {
        let http = self.client()?;
        self.build_from(metadata, http)
    }

    fn client(&self) -> Result<HttpClient, ResourceServerError> {
        self.registration.http().map_err(config)
    }

    fn build_from(
        self,
        metadata: Metadata,
        http: HttpClient,
    ) -> Result<ResourceServer, ResourceServerError> {
        if self.audiences.is_empty() {
            return Err(config(tower_auth_core::ConfigError::new(
                "audiences",
                "[]",
                "at least one audience is required",
            )));
        }
        let jwks_uri = metadata.jwks_uri().ok_or_else(|| {
            config(tower_auth_core::ConfigError::new(
                "jwks_uri",
                "none",
                "the authorization server publishes no jwks_uri",
            ))
        })?;
        let keys = JwksUrl::builder(jwks_uri)
            .http_client(http.clone())
            .build()
            .map_err(config)?;
        let mut issuer = TrustedIssuer::new(metadata.issuer()).key_source(keys);
        for a in &self.audiences {
            issuer = issuer.audience(a);
        }
        if self.require_typ {
            issuer = issuer.require_access_token_type();
        }
        issuer = issuer.algorithms(
            self.algorithms
                .unwrap_or_else(|| Algorithm::ASYMMETRIC.to_vec()),
        );
        let mut jwt = JwtAuthenticator::builder().issuer(issuer);
        if let Some(c) = self.verified_token_cache {
            jwt = jwt.verified_token_cache(c);
        }
        let jwt = jwt.build().map_err(config)?;

        let introspection = match self.introspection {
            false => None,
            true => {
                let endpoint = metadata.introspection_endpoint().ok_or_else(|| {
                    config(tower_auth_core::ConfigError::new(
                        "introspection_endpoint",
                        "none",
                        "the authorization server publishes no introspection_endpoint",
                    ))
                })?;
                Some(
                    IntrospectionAuthenticator::builder(endpoint)
                        .registration(self.registration)
                        .issuer(metadata.issuer())
                        .audiences(self.audiences.iter().cloned())
                        .cache(self.introspection_cache)
                        .http_client(http)
                        .build()
                        .map_err(config)?,
                )
            }
        };
        Ok(ResourceServer {
            inner: jwt.or(introspection),
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(doc: &str) -> Metadata {
        Metadata::from_json(doc.as_bytes(), "https://as.example").unwrap()
    }

    #[test]
    fn configuration_problems_are_named() {
        let full = r#"{"issuer":"https://as.example","jwks_uri":"https://as.example/jwks",
                      "introspection_endpoint":"https://as.example/introspect"}"#;
        let e = ResourceServer::builder("https://as.example")
            .from_metadata(metadata(full))
            .unwrap_err();
        assert!(e.to_string().contains("audiences"), "{e}");

        let no_jwks = r#"{"issuer":"https://as.example"}"#;
        let e = ResourceServer::builder("https://as.example")
            .audiences(["api"])
            .from_metadata(metadata(no_jwks))
            .unwrap_err();
        assert!(e.to_string().contains("jwks_uri"), "{e}");

        let no_introspection =
            r#"{"issuer":"https://as.example","jwks_uri":"https://as.example/jwks"}"#;
        let e = ResourceServer::builder("https://as.example")
            .audiences(["api"])
            .introspection_client("rs", "secret")
            .from_metadata(metadata(no_introspection))
            .unwrap_err();
        assert!(e.to_string().contains("introspection_endpoint"), "{e}");

        let rs = ResourceServer::builder("https://as.example")
            .audiences(["api"])
            .introspection_client("rs", "secret-value-never-shown")
            .from_metadata(metadata(full))
            .unwrap();
        assert!(!format!("{rs:?}").contains("secret-value-never-shown"));
    }

    #[test]
    fn plain_http_endpoints_need_the_switch() {
        let doc = r#"{"issuer":"https://as.example","jwks_uri":"http://as.example/jwks"}"#;
        assert!(
            ResourceServer::builder("https://as.example")
                .audiences(["api"])
                .from_metadata(metadata(doc))
                .is_err()
        );
    }
}
