//! The quickstart's TOML configuration.
//!
//! Every key is optional; unknown keys are errors. Durations are humantime strings (`30s`,
//! `15m`). See the crate docs for the full list.
//!
//! Every problem is reported the same way, by [`ConfigError`]: where the value came from (the
//! file, or a command-line option), the key's path as written in the file
//! (`issuers[0].claims`, `cache.apikey_ttl`), the value, and the reason; the process exits with
//! code 2. A new section adds its fields to [`Config`] (serde reports type errors and unknown
//! keys with their paths) and its own checks to [`Config::validate`], through
//! [`ConfigError::new`].

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem: where, which key, which value, why. The process exits with code 2.
///
/// Displayed as `FILE: invalid `KEY` = VALUE: REASON` (the value as TOML writes it), or
/// `FILE: invalid `KEY`: REASON` when the key is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    key: String,
    value: Option<String>,
    reason: String,
}

impl ConfigError {
    /// A problem with `key` (its path as written in the file) holding `value` (as TOML writes
    /// it: `"text"`, `0`, `["a"]`), for `reason`. The origin is the configuration
    /// ([`Config::ORIGIN`]) until [`in_origin`](Self::in_origin) names the file.
    pub fn new(key: impl Into<String>, value: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            origin: Config::ORIGIN.to_owned(),
            key: key.into(),
            value,
            reason: reason.into(),
        }
    }

    /// A problem with a string value, quoted as TOML writes it.
    pub fn string(key: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        Self::new(key, Some(quote(value)), reason)
    }

    /// The same problem, found in `origin` (a file path, or a command-line option).
    #[must_use]
    pub fn in_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// The file or option the value came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key's path as written in the file, such as `issuers[0].claims`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value as TOML writes it, when there is one.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Why the value is refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: invalid `{}`", self.origin, self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// `value` as a TOML string.
fn quote(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen (default `127.0.0.1:3000`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL clients reach this server at (`https://api.example.com`), which is the
    /// built-in issuer's `iss`. Default: `http://<listen>`.
    pub public_url: Option<String>,
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
    /// Forward authentication for a proxy in front of other services.
    pub forward_auth: Option<ForwardAuthConfig>,
    /// Require DPoP server nonces (RFC 9449 section 9) in every proof (default false).
    #[serde(default)]
    pub dpop_nonce: bool,
    /// The secret the DPoP nonces are derived from (at least 32 bytes), required with
    /// `dpop_nonce = true`: give every instance the same one.
    pub dpop_nonce_secret: Option<Secret>,
}

/// A secret read from the file: `Debug` does not show it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[forward_auth]`: the endpoint a proxy (nginx `auth_request`, Traefik ForwardAuth, Envoy
/// `ext_authz`) asks about each request, served by tower-auth-forward's `ForwardAuth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// The endpoint's path (default `/forward-auth`); it answers every method.
    #[serde(default = "default_forward_path")]
    pub path: String,
    /// Where to serve Envoy's gRPC `Authorization/Check` API, when set.
    pub grpc_listen: Option<SocketAddr>,
    /// Envoy's HTTP mode sends the original method and path under this prefix (default
    /// `/forward-auth/envoy`).
    #[serde(default = "default_envoy_prefix")]
    pub envoy_prefix: String,
    /// The rules (`[[forward_auth.rules]]`); a request no rule covers is denied.
    #[serde(default)]
    pub rules: Vec<ForwardRuleConfig>,
}

/// `[[forward_auth.rules]]`: which requests a rule covers and what it requires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRuleConfig {
    /// A path prefix of whole segments (`/api/` covers `/api/x`, not `/apix`).
    pub path_prefix: Option<String>,
    /// An exact path (instead of `path_prefix`).
    pub path: Option<String>,
    /// The methods covered (default any).
    pub methods: Option<Vec<String>>,
    /// The schemes accepted: `api_key`, `jwt`, `introspection` (default every configured one).
    pub schemes: Option<Vec<String>>,
    /// Scopes, all required.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Roles, all required.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Let requests without any credential through (a credential present is still checked).
    #[serde(default)]
    pub anonymous: bool,
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
    /// The audiences this API accepts: an active answer whose `aud` names none of them (or
    /// that has no `aud`) is refused. Required, unless `insecure_accept_any_audience`.
    pub audiences: Option<Vec<String>>,
    /// Accept answers for any audience, `aud` unchecked: only for an authorization server that
    /// puts no `aud` in its answers and mints tokens for this API alone.
    #[serde(default)]
    pub insecure_accept_any_audience: bool,
    /// When set, an active answer must carry exactly this `iss`.
    pub issuer: Option<String>,
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
        humantime::parse_duration(&s)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("not a duration ({e}); examples: 30s, 15m, 24h")))
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

fn default_forward_path() -> String {
    "/forward-auth".to_owned()
}

fn default_envoy_prefix() -> String {
    "/forward-auth/envoy".to_owned()
}

fn default_auth_method() -> String {
    "basic".to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: None,
            database: default_database(),
            insecure_allow_http: false,
            api_key_prefix: default_prefix(),
            issuers: Vec::new(),
            introspection: None,
            cache: CacheSection::default(),
            forward_auth: None,
            dpop_nonce: false,
            dpop_nonce_secret: None,
        }
    }
}

impl Config {
    /// The origin of errors in a configuration that did not come from a file.
    pub const ORIGIN: &'static str = "configuration";

    /// Reads and validates `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::string("--config", &origin, format!("cannot read the file: {e}"))
                .in_origin("command line")
        })?;
        Self::parse(&text).map_err(|e| e.in_origin(origin))
    }

    /// Parses and validates a TOML document.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|span| line_of(text, span.start));
            let key = at.map_or_else(|| "(file)".to_owned(), |line| format!("(line {line})"));
            ConfigError::new(key, None, format!("not valid TOML: {}", e.message()))
        })?;
        let document = toml::Value::Table(table);
        let config: Self = serde_path_to_error::deserialize(document.clone()).map_err(|e| {
            let mut key = e.path().to_string();
            let mut reason = e.inner().message().trim().to_owned();
            if let Some(field) = reason
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'))
            {
                key = if key == "." {
                    field.to_owned()
                } else {
                    format!("{key}.{field}")
                };
                reason = "required, missing".to_owned();
            } else if reason.starts_with("unknown field") {
                reason = reason.replacen("unknown field", "unknown key", 1);
            }
            let value = value_at(&document, &key).map(|v| v.to_string());
            ConfigError::new(key, value, reason)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The checks serde does not make. Every check of a value read from the file belongs here,
    /// so that the whole file is checked before the server binds its port.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.database.starts_with("sqlite://") || self.database.starts_with("postgres://")) {
            return Err(ConfigError::string(
                "database",
                &self.database,
                "expected sqlite://PATH or postgres://...",
            ));
        }
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        if self.api_key_prefix.is_empty()
            || !self
                .api_key_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError::string(
                "api_key_prefix",
                &self.api_key_prefix,
                "expected letters, digits and `_`, such as sk_test or sk_live",
            ));
        }
        if let Some(i) = &self.introspection {
            i.validate()?;
        }
        if let Some(f) = &self.forward_auth {
            f.validate(self)?;
        }
        crate::dpop::nonces(self)?;
        for (n, issuer) in self.issuers.iter().enumerate() {
            let key = |k: &str| format!("issuers[{n}].{k}");
            if issuer.audiences.is_empty() {
                return Err(ConfigError::new(
                    key("audiences"),
                    Some("[]".into()),
                    "at least one audience is required",
                ));
            }
            if let Some(c) = &issuer.claims
                && !matches!(c.as_str(), "keycloak" | "auth0" | "azure")
            {
                return Err(ConfigError::string(
                    key("claims"),
                    c,
                    "expected keycloak, auth0 or azure",
                ));
            }
            if let Some(t) = &issuer.require_typ
                && !matches!(t.as_str(), "at+jwt" | "application/at+jwt")
            {
                return Err(ConfigError::string(
                    key("require_typ"),
                    t,
                    "only \"at+jwt\" is supported",
                ));
            }
            if let Some(url) = self.built_in_issuer_url()
                && issuer.issuer == url
            {
                return Err(ConfigError::string(
                    key("issuer"),
                    &issuer.issuer,
                    "this is the built-in issuer's URL (public_url, else http://<listen>)",
                ));
            }
        }
        Ok(())
    }

    /// The built-in issuer's URL, the one rule for the server and its commands alike:
    /// `public_url` when configured, else `http://<listen>`; `None` when neither names a port
    /// (`listen` on port 0 without `public_url`), where only the running server knows it.
    pub fn built_in_issuer_url(&self) -> Option<String> {
        match &self.public_url {
            Some(url) => Some(url.clone()),
            None if self.listen.port() == 0 => None,
            None => Some(format!("http://{}", self.listen)),
        }
    }
}

impl IntrospectionConfig {
    /// `auth_method`, and the audience rule: `audiences` (not empty, no empty entry) or
    /// `insecure_accept_any_audience = true`, not both; `issuer` not empty.
    fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.auth_method.as_str(), "basic" | "post") {
            return Err(ConfigError::string(
                "introspection.auth_method",
                &self.auth_method,
                "expected basic or post",
            ));
        }
        match (&self.audiences, self.insecure_accept_any_audience) {
            (None, false) => {
                return Err(ConfigError::new(
                    "introspection.audiences",
                    None,
                    "required, missing: the audiences this API accepts, such as [\"my-api\"] \
                     (or insecure_accept_any_audience = true)",
                ));
            }
            (Some(_), true) => {
                return Err(ConfigError::new(
                    "introspection.insecure_accept_any_audience",
                    Some("true".into()),
                    "conflicts with `introspection.audiences`: keep one of them",
                ));
            }
            (Some(audiences), false) if audiences.is_empty() => {
                return Err(ConfigError::new(
                    "introspection.audiences",
                    Some("[]".into()),
                    "at least one audience is required",
                ));
            }
            (Some(audiences), false) => {
                if let Some(n) = audiences.iter().position(String::is_empty) {
                    return Err(ConfigError::string(
                        format!("introspection.audiences[{n}]"),
                        "",
                        "must not be empty",
                    ));
                }
            }
            (None, true) => {}
        }
        if self.issuer.as_deref() == Some("") {
            return Err(ConfigError::string(
                "introspection.issuer",
                "",
                "must not be empty (remove the key to leave `iss` unchecked)",
            ));
        }
        Ok(())
    }
}

/// The quickstart's own routes, which the forward-auth endpoint must not take.
const OWN_ROUTES: &[&str] = &[
    "/healthz",
    "/metrics",
    "/me",
    "/items",
    "/admin",
    "/.well-known/jwks.json",
    "/auth",
];

impl ForwardAuthConfig {
    /// The endpoint's path and prefix, `grpc_listen` and each rule's own settings; the rest
    /// (overlapping rules, methods, scopes) is checked by the library, in `forward::check`.
    fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        for (key, path) in [
            ("forward_auth.path", &self.path),
            ("forward_auth.envoy_prefix", &self.envoy_prefix),
        ] {
            let plain = path.len() > 1
                && path.starts_with('/')
                && !path.ends_with('/')
                && !path.contains("//")
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c));
            if !plain {
                return Err(ConfigError::string(
                    key,
                    path,
                    "expected a path such as /forward-auth: `/`, letters, digits, `-._~`, \
                     no trailing `/`",
                ));
            }
            if let Some(own) = OWN_ROUTES
                .iter()
                .find(|own| path == *own || path.starts_with(&format!("{own}/")))
            {
                return Err(ConfigError::string(
                    key,
                    path,
                    format!("{own} is one of the quickstart's own routes"),
                ));
            }
        }
        if self.path == self.envoy_prefix {
            return Err(ConfigError::string(
                "forward_auth.envoy_prefix",
                &self.envoy_prefix,
                "must differ from `forward_auth.path`",
            ));
        }
        if let Some(grpc) = self.grpc_listen
            && grpc.port() != 0
            && grpc == config.listen
        {
            return Err(ConfigError::string(
                "forward_auth.grpc_listen",
                &grpc.to_string(),
                "is also `listen`: choose another port",
            ));
        }
        for (n, rule) in self.rules.iter().enumerate() {
            let key = |k: &str| format!("forward_auth.rules[{n}].{k}");
            match (&rule.path, &rule.path_prefix) {
                (Some(_), Some(p)) => {
                    return Err(ConfigError::string(
                        key("path_prefix"),
                        p,
                        "give either `path` or `path_prefix`, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::new(
                        key("path_prefix"),
                        None,
                        "required, missing: `path_prefix = \"/api/\"` or `path = \"/exact\"`",
                    ));
                }
                _ => {}
            }
            for (k, scheme) in rule.schemes.iter().flatten().enumerate() {
                let reason = match scheme.as_str() {
                    "api_key" | "jwt" => continue,
                    "introspection" if config.introspection.is_some() => continue,
                    "introspection" => "`[introspection]` is not configured",
                    _ => "expected api_key, jwt or introspection",
                };
                return Err(ConfigError::string(
                    format!("forward_auth.rules[{n}].schemes[{k}]"),
                    scheme,
                    reason,
                ));
            }
        }
        Ok(())
    }
}

/// `public_url`: an absolute http(s) URL without a trailing `/`, query or fragment (it is
/// compared with `iss` as a string).
fn check_public_url(url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let reason = match rest {
        None => "expected an http:// or https:// URL",
        Some("") => "the URL has no host",
        Some(_) if url.ends_with('/') => "remove the trailing `/` (it is compared with `iss`)",
        Some(r) if r.contains(['?', '#', ' ']) => "no query, fragment or space allowed",
        Some(_) => return Ok(()),
    };
    Err(ConfigError::string("public_url", url, reason))
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// The value at `path` (`a.b[2].c`, as serde_path_to_error writes it) in `document`.
fn value_at<'a>(document: &'a toml::Value, path: &str) -> Option<&'a toml::Value> {
    let mut value = document;
    for part in path.split('.') {
        let (name, indices) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if !name.is_empty() {
            value = value.get(name)?;
        }
        for index in indices
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .map(str::parse::<usize>)
        {
            value = value.get(index.ok()?)?;
        }
    }
    Some(value)
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
        assert_eq!(
            c.built_in_issuer_url().as_deref(),
            Some("http://127.0.0.1:3000")
        );
    }

    /// Every error: the key's path as written, the value as TOML writes it, the reason.
    #[test]
    fn errors_name_the_key_path_and_value() {
        for (toml, expected) in [
            (
                "listen = \"nowhere\"",
                "configuration: invalid `listen` = \"nowhere\": invalid socket address syntax",
            ),
            (
                "bogus = 1",
                "configuration: invalid `bogus` = 1: unknown key `bogus`",
            ),
            (
                "[cache]\napikey_ttl = \"soon\"",
                "configuration: invalid `cache.apikey_ttl` = \"soon\": not a duration",
            ),
            (
                "database = \"mysql://x\"",
                "configuration: invalid `database` = \"mysql://x\": expected sqlite://PATH",
            ),
            (
                "api_key_prefix = \"sk-live\"",
                "configuration: invalid `api_key_prefix` = \"sk-live\": expected letters",
            ),
            (
                "[introspection]\nendpoint = \"https://a/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\naudiences = [\"x\"]\nauth_method = \"jwt\"",
                "configuration: invalid `introspection.auth_method` = \"jwt\": expected basic or post",
            ),
            (
                "[introspection]\nendpoint = \"https://a/i\"\nclient_id = \"a\"\nclient_secret = \"b\"",
                "configuration: invalid `introspection.audiences`: required, missing",
            ),
            (
                "[introspection]\nendpoint = \"https://a/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\naudiences = []",
                "configuration: invalid `introspection.audiences` = []: at least one audience",
            ),
            (
                "[introspection]\nendpoint = \"https://a/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\naudiences = [\"x\", \"\"]",
                "configuration: invalid `introspection.audiences[1]` = \"\": must not be empty",
            ),
            (
                "[introspection]\nendpoint = \"https://a/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\naudiences = [\"x\"]\ninsecure_accept_any_audience = true",
                "configuration: invalid `introspection.insecure_accept_any_audience` = true: conflicts",
            ),
            (
                "[introspection]\nendpoint = \"https://a/i\"\nclient_id = \"a\"\nclient_secret = \"b\"\ninsecure_accept_any_audience = true\nissuer = \"\"",
                "configuration: invalid `introspection.issuer` = \"\": must not be empty",
            ),
            (
                "[[issuers]]\nissuer = \"https://a\"\naudiences = [\"x\"]\nclaims = \"okta\"",
                "configuration: invalid `issuers[0].claims` = \"okta\": expected keycloak",
            ),
            (
                "[[issuers]]\nissuer = \"https://a\"\naudiences = [\"x\"]\n[[issuers]]\nissuer = \"https://b\"\naudiences = \"x\"",
                "configuration: invalid `issuers[1].audiences` = \"x\": invalid type",
            ),
            (
                "[[issuers]]\nissuer = \"https://a\"",
                "configuration: invalid `issuers[0].audiences`: required, missing",
            ),
            (
                "[[issuers]]\nissuer = \"https://a\"\naudiences = []",
                "configuration: invalid `issuers[0].audiences` = []: at least one audience",
            ),
            (
                "[[issuers]]\nissuer = \"http://127.0.0.1:3000\"\naudiences = [\"a\"]",
                "configuration: invalid `issuers[0].issuer` = \"http://127.0.0.1:3000\": this is the built-in issuer's URL",
            ),
            (
                "[forward_auth]\npath = \"/auth/check\"\n[[forward_auth.rules]]\npath = \"/x\"",
                "configuration: invalid `forward_auth.path` = \"/auth/check\": /auth is one of the quickstart's own routes",
            ),
            (
                "[forward_auth]\nenvoy_prefix = \"envoy\"\n[[forward_auth.rules]]\npath = \"/x\"",
                "configuration: invalid `forward_auth.envoy_prefix` = \"envoy\": expected a path",
            ),
            (
                "[forward_auth]\ngrpc_listen = \"127.0.0.1:3000\"\n[[forward_auth.rules]]\npath = \"/x\"",
                "configuration: invalid `forward_auth.grpc_listen` = \"127.0.0.1:3000\": is also `listen`",
            ),
            (
                "[forward_auth]\n[[forward_auth.rules]]\npath = \"/x\"\n[[forward_auth.rules]]\nmethods = [\"GET\"]",
                "configuration: invalid `forward_auth.rules[1].path_prefix`: required, missing",
            ),
            (
                "[forward_auth]\n[[forward_auth.rules]]\npath = \"/x\"\npath_prefix = \"/y\"",
                "configuration: invalid `forward_auth.rules[0].path_prefix` = \"/y\": give either",
            ),
            (
                "[forward_auth]\n[[forward_auth.rules]]\npath = \"/x\"\nschemes = [\"jwt\", \"basic\"]",
                "configuration: invalid `forward_auth.rules[0].schemes[1]` = \"basic\": expected api_key, jwt or introspection",
            ),
            (
                "[forward_auth]\n[[forward_auth.rules]]\npath = \"/x\"\nschemes = [\"introspection\"]",
                "configuration: invalid `forward_auth.rules[0].schemes[0]` = \"introspection\": `[introspection]` is not configured",
            ),
            (
                "[forward_auth]\n[[forward_auth.rules]]\npath = \"/x\"\nanonymous = \"yes\"",
                "configuration: invalid `forward_auth.rules[0].anonymous` = \"yes\": invalid type",
            ),
            (
                "public_url = \"https://api.example.com/\"",
                "configuration: invalid `public_url` = \"https://api.example.com/\": remove the trailing",
            ),
            (
                "dpop_nonce = true",
                "configuration: invalid `dpop_nonce_secret`: required, missing",
            ),
            (
                "dpop_nonce = true\ndpop_nonce_secret = \"short\"",
                "configuration: invalid `dpop_nonce_secret` = <5 bytes>: must be at least 32 bytes",
            ),
            (
                "dpop_nonce_secret = \"a secret of at least thirty-two bytes\"",
                "configuration: invalid `dpop_nonce_secret` = \"...\": only used with `dpop_nonce = true`",
            ),
            (
                "listen = \"127.0.0.1:1\"\n[cache\n",
                "configuration: invalid `(line 2)`: not valid TOML",
            ),
        ] {
            let e = Config::parse(toml).unwrap_err().to_string();
            assert!(
                e.starts_with(expected),
                "{toml}\n got: {e}\nwant: {expected}"
            );
        }
    }

    #[test]
    fn the_built_in_issuer_url_has_one_rule() {
        let c = Config::parse("public_url = \"https://api.example.com\"").unwrap();
        assert_eq!(
            c.built_in_issuer_url().as_deref(),
            Some("https://api.example.com")
        );
        let c = Config::parse("listen = \"127.0.0.1:0\"").unwrap();
        assert_eq!(c.built_in_issuer_url(), None);
        let c =
            Config::parse("listen = \"127.0.0.1:0\"\npublic_url = \"http://x.test:8080\"").unwrap();
        assert_eq!(
            c.built_in_issuer_url().as_deref(),
            Some("http://x.test:8080")
        );
    }

    #[test]
    fn a_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.toml");
        std::fs::write(&path, "[cache]\napikey_ttl = \"soon\"").unwrap();
        let e = Config::load(&path).unwrap_err();
        assert_eq!(e.origin(), path.display().to_string());
        assert_eq!(e.key(), "cache.apikey_ttl");
        assert_eq!(e.value(), Some("\"soon\""));
        let missing = dir.path().join("missing.toml");
        let e = Config::load(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "command line: invalid `--config` = \"{}\": cannot read the file",
                missing.display()
            )),
            "{e}"
        );
    }
}
