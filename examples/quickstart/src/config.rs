//! The quickstart's TOML configuration.
//!
//! Every key is optional; unknown keys are errors. Durations are humantime strings (`30s`,
//! `15m`). See the crate docs for the full list.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, naming the key and the value; the process exits with code 2.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen (default `127.0.0.1:3000`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `sqlite://PATH` (default `sqlite://quickstart.db`) or a `postgres://` URL.
    #[serde(default = "default_database")]
    pub database: String,
    /// Allow plain-http issuer and introspection URLs (loopback tests only).
    #[serde(default)]
    pub insecure_allow_http: bool,
    /// The environment prefix of new API keys (default `sk_test`).
    #[serde(default = "default_prefix")]
    pub api_key_prefix: String,
    /// External token issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// RFC 7662 introspection of opaque tokens.
    pub introspection: Option<IntrospectionConfig>,
    /// Cache settings.
    #[serde(default)]
    pub cache: CacheSection,
}

/// An external JWT issuer (`[[issuers]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// The JWKS URL; absent means OIDC discovery from the issuer.
    pub jwks_uri: Option<String>,
    /// Allowed algorithms (`RS256`, `ES256`, `EdDSA`, ...).
    pub algorithms: Option<Vec<String>>,
    /// Claims preset: `keycloak`, `auth0` or `azure`.
    pub claims: Option<String>,
    /// Required `typ`, such as `at+jwt`.
    pub require_typ: Option<String>,
}

/// `[introspection]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The introspection endpoint.
    pub endpoint: String,
    /// Our client id there.
    pub client_id: String,
    /// Our client secret there.
    pub client_secret: String,
    /// `basic` (default) or `post`.
    #[serde(default = "default_auth_method")]
    pub auth_method: String,
}

/// `[cache]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// TTL of cached API key lookups.
    #[serde(default, with = "opt_duration")]
    pub apikey_ttl: Option<Duration>,
    /// TTL of cached unknown API keys.
    #[serde(default, with = "opt_duration")]
    pub apikey_negative_ttl: Option<Duration>,
    /// JWKS refresh interval when the response has no Cache-Control.
    #[serde(default, with = "opt_duration")]
    pub jwks_refresh: Option<Duration>,
    /// Minimum time between refetches for unknown `kid`s.
    #[serde(default, with = "opt_duration")]
    pub jwks_cooldown: Option<Duration>,
    /// TTL of cached introspection results.
    #[serde(default, with = "opt_duration")]
    pub introspection_ttl: Option<Duration>,
    /// How often the SQLite change feed of the revocation list checks for revocations made by
    /// another process (default 100 ms; PostgreSQL pushes them at once): about the longest
    /// such a revocation takes to apply.
    #[serde(default, with = "opt_duration")]
    pub revocation_poll: Option<Duration>,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Some).map_err(|e| {
            D::Error::custom(format!(
                "{s:?} is not a duration ({e}); examples: 30s, 15m, 24h"
            ))
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}

fn default_database() -> String {
    "sqlite://quickstart.db".to_owned()
}

fn default_prefix() -> String {
    "sk_test".to_owned()
}

fn default_auth_method() -> String {
    "basic".to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            database: default_database(),
            insecure_allow_http: false,
            api_key_prefix: default_prefix(),
            issuers: Vec::new(),
            introspection: None,
            cache: CacheSection::default(),
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|ConfigError(e)| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses and validates a TOML document.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &str, why: &str| {
            Err(ConfigError(format!("invalid `{key}` = {value:?}: {why}")))
        };
        if !(self.database.starts_with("sqlite://") || self.database.starts_with("postgres://")) {
            return bad(
                "database",
                &self.database,
                "expected sqlite://PATH or postgres://...",
            );
        }
        if let Some(i) = &self.introspection
            && !matches!(i.auth_method.as_str(), "basic" | "post")
        {
            return bad(
                "introspection.auth_method",
                &i.auth_method,
                "expected basic or post",
            );
        }
        for (n, issuer) in self.issuers.iter().enumerate() {
            if let Some(c) = &issuer.claims
                && !matches!(c.as_str(), "keycloak" | "auth0" | "azure")
            {
                return bad(
                    &format!("issuers[{n}].claims"),
                    c,
                    "expected keycloak, auth0 or azure",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.database, "sqlite://quickstart.db");
        assert_eq!(c.api_key_prefix, "sk_test");
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let e = Config::parse("listen = \"nowhere\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = Config::parse("bogus = 1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = Config::parse("[cache]\napikey_ttl = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("apikey_ttl") && e.contains("soon"), "{e}");
        let e = Config::parse("database = \"mysql://x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`database`") && e.contains("mysql://x"), "{e}");
        let e = Config::parse("[introspection]\nendpoint = \"https://a/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\nauth_method = \"jwt\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("introspection.auth_method") && e.contains("jwt"),
            "{e}"
        );
    }
}
