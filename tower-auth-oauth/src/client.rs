//! This service's registration at an authorization server, shared by every part of this crate
//! that calls one: [client credentials](crate::client_credentials),
//! [introspection](crate::introspection), [login](crate::login) and the
//! [resource server](crate::resource_server).
//!
//! Each of those builders keeps its own setters (`client_id`, `client_secret`, ...), which
//! write into a [`ClientRegistration`]; give one registration to several builders with their
//! `registration` setter instead of repeating the setters.
//!
//! ```
//! use tower_auth_oauth::client::{ClientAuth, ClientRegistration};
//! use tower_auth_oauth::client_credentials::ClientCredentials;
//!
//! let registration = ClientRegistration::new("cron")
//!     .client_secret("s3cret")
//!     .client_auth(ClientAuth::ClientSecretPost)
//!     .scopes(["reports:read"]);
//! let tokens = ClientCredentials::builder("https://idp.example.com/token")
//!     .registration(registration)
//!     .build()
//!     .unwrap();
//! # let _ = tokens;
//! ```

use std::fmt;

use oauth2::AuthType;
use tower_auth_core::ConfigError;
use tower_auth_core::client::HttpClient;

/// How a confidential client authenticates to the authorization server's endpoints (RFC 6749
/// section 2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the URL-encoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl ClientAuth {
    /// The `oauth2` crate's name for it.
    pub(crate) fn auth_type(self) -> AuthType {
        match self {
            Self::ClientSecretPost => AuthType::RequestBody,
            Self::ClientSecretBasic => AuthType::BasicAuth,
        }
    }
}

/// A client registration: client id, secret, how the secret is sent, scopes and RFC 8707
/// resources to ask for, and the HTTP client that reaches the authorization server. See the
/// [module docs](self). `Debug` never shows the secret.
///
/// Scopes and resources are used where tokens are requested (client credentials, login);
/// introspection and the resource server ignore them.
#[derive(Clone, Default)]
#[must_use]
pub struct ClientRegistration {
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) auth: ClientAuth,
    pub(crate) scopes: Vec<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) http: Option<HttpClient>,
    pub(crate) allow_http: bool,
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_auth", &self.auth)
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .field("insecure_allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

/// Whether a builder requires a client secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Secret {
    /// A confidential client only (client credentials, introspection).
    Required,
    /// A public client may leave it out (login with PKCE).
    #[cfg_attr(
        not(feature = "login"),
        expect(dead_code, reason = "only login takes public clients")
    )]
    Optional,
}

impl ClientRegistration {
    /// A registration of the client `client_id`, with no secret, `client_secret_basic`, no
    /// scopes or resources, and the default HTTP client.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self::default().client_id(client_id)
    }

    /// The client id (required).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// The client secret. Required for client credentials and introspection; leave it out for
    /// a public client that logs users in with PKCE. Never logged or printed.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How the secret is sent (default `client_secret_basic`).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// The scopes to ask for.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// RFC 8707 `resource` indicators: the APIs the tokens are for.
    pub fn resources<I, T>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// The HTTP client for the authorization server (deadline, size cap, transport).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Allows a plain-http authorization server when no [`http_client`](Self::http_client) is
    /// given. Only for loopback tests: secrets and tokens cross the wire in clear.
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.client_id
    }

    /// The HTTP client given, or the default one, allowing plain http only when told.
    pub(crate) fn http(&self) -> Result<HttpClient, ConfigError> {
        match &self.http {
            Some(c) => Ok(c.clone()),
            None => HttpClient::builder()
                .insecure_allow_http(self.allow_http)
                .build(),
        }
    }

    /// Checks the client id and the secret: the id is not empty, and the secret is present and
    /// not empty where it is required, not empty where it is given.
    pub(crate) fn check(&self, secret: Secret) -> Result<(), ConfigError> {
        if self.client_id.is_empty() {
            return Err(ConfigError::new("client_id", "\"\"", "must not be empty"));
        }
        match (self.client_secret.as_deref(), secret) {
            (None | Some(""), Secret::Required) => Err(ConfigError::new(
                "client_secret",
                "\"\"",
                "must not be empty",
            )),
            (Some(""), Secret::Optional) => Err(ConfigError::new(
                "client_secret",
                "\"\"",
                "must not be empty (leave it out for a public client)",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let reg = ClientRegistration::new("app").client_secret("hunter2-secret");
        let shown = format!("{reg:?}");
        assert!(shown.contains("app"), "{shown}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }

    #[test]
    fn secret_rules_name_the_setting() {
        let public = ClientRegistration::new("app");
        assert!(public.check(Secret::Optional).is_ok());
        let e = public.check(Secret::Required).unwrap_err();
        assert!(e.to_string().contains("client_secret"), "{e}");
        let empty = ClientRegistration::new("app").client_secret("");
        let e = empty.check(Secret::Optional).unwrap_err();
        assert!(e.to_string().contains("public client"), "{e}");
        let e = ClientRegistration::default()
            .check(Secret::Optional)
            .unwrap_err();
        assert!(e.to_string().contains("client_id"), "{e}");
    }
}
