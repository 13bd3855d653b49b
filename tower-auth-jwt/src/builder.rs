//! Configuration: [`TrustedIssuer`] and [`JwtAuthenticatorBuilder`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_auth_core::CacheConfig;
use tower_auth_core::clock::{Clock, SystemClock};

use crate::authenticator::{Inner, IssuerState, JwtAuthenticator, TypPolicy};
use crate::cache::TokenCache;
use crate::{
    Algorithm, ClaimPath, ClaimsMapping, ConfigError, KeySet, KeySource, RevocationCheck,
    ServiceRule, StaticKeys, VerifyingKey,
};

/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// The largest leeway accepted.
pub const MAX_LEEWAY: Duration = Duration::from_secs(600);
/// The default longest lifetime of a token: its `exp` at most this far ahead of now
/// ([`TrustedIssuer::max_lifetime`]).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default maximum token size, checked before anything is decoded.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 8 * 1024;

enum KeySpec {
    Hmac(Vec<u8>),
    Pem(Vec<u8>),
    Jwk(String),
    Jwks(String),
    Key(VerifyingKey),
}

impl KeySpec {
    fn setting(&self) -> &'static str {
        match self {
            Self::Hmac(_) => "hmac_secret",
            Self::Pem(_) => "pem",
            Self::Jwk(_) => "jwk",
            Self::Jwks(_) => "jwks",
            Self::Key(_) => "key",
        }
    }
}

/// One trusted issuer: its `iss` value, audiences, keys and validation rules.
///
/// A by-value builder, validated by [`JwtAuthenticatorBuilder::build`]. Keys come from local
/// sources ([`hmac_secret`](Self::hmac_secret), [`pem`](Self::pem), [`jwk`](Self::jwk),
/// [`jwks`](Self::jwks), [`key`](Self::key), any number of them) or from one
/// [`key_source`](Self::key_source) (such as a remote JWKS).
///
/// ```
/// use std::time::Duration;
/// use tower_auth_jwt::{Algorithm, ClaimsMapping, TrustedIssuer};
///
/// let issuer = TrustedIssuer::new("https://sso.example.com/realms/main")
///     .audience("orders-api")
///     .jwks(r#"{"keys":[{"kty":"EC","kid":"k1","crv":"P-256",
///         "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
///         "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#)
///     .algorithms([Algorithm::ES256])
///     .leeway(Duration::from_secs(30))
///     .max_token_age(Duration::from_secs(3600))
///     .require_access_token_type()
///     .claims_mapping(ClaimsMapping::keycloak());
/// let auth = tower_auth_jwt::JwtAuthenticator::builder().issuer(issuer).build().unwrap();
/// # let _ = auth;
/// ```
#[must_use]
pub struct TrustedIssuer {
    issuer: String,
    audiences: Vec<String>,
    skip_audience: bool,
    keys: Vec<KeySpec>,
    source: Option<Arc<dyn KeySource>>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    max_age: Option<Duration>,
    max_lifetime: Option<Duration>,
    require_exp: bool,
    typ: TypPolicy,
    mapping: ClaimsMapping,
    service_rule: ServiceRule,
    subject: Option<ClaimPath>,
}

impl fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("skip_audience", &self.skip_audience)
            .field("keys", &self.keys.len())
            .field("key_source", &self.source.is_some())
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("max_age", &self.max_age)
            .field("max_lifetime", &self.max_lifetime)
            .field("require_exp", &self.require_exp)
            .field("typ", &self.typ)
            .field("mapping", &self.mapping)
            .field("service_rule", &self.service_rule)
            .field("subject", &self.subject)
            .finish()
    }
}

impl TrustedIssuer {
    /// An issuer whose tokens carry exactly this `iss` (compared byte for byte).
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: Vec::new(),
            skip_audience: false,
            keys: Vec::new(),
            source: None,
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            max_age: None,
            max_lifetime: Some(DEFAULT_MAX_LIFETIME),
            require_exp: true,
            typ: TypPolicy::NotOtherJwt,
            mapping: ClaimsMapping::default(),
            service_rule: ServiceRule::Never,
            subject: None,
        }
    }

    /// Adds an accepted audience. A token is accepted when its `aud` (a string, or an array of
    /// strings) contains any of them. At least one is required unless
    /// [`insecure_skip_audience`](Self::insecure_skip_audience) is set.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Does not check `aud` at all. Dangerous: a token this issuer minted for another service
    /// is accepted here too (RFC 8725 section 3.9). Only for issuers that mint tokens for this
    /// service alone.
    pub fn insecure_skip_audience(mut self) -> Self {
        self.skip_audience = true;
        self
    }

    /// Adds an HMAC secret (raw bytes, at least 32).
    pub fn hmac_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.keys.push(KeySpec::Hmac(secret.as_ref().to_vec()));
        self
    }

    /// Adds a PEM public key (RSA, EC P-256, EC P-384, Ed25519).
    pub fn pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.keys.push(KeySpec::Pem(pem.as_ref().to_vec()));
        self
    }

    /// Adds a JWK (JSON text).
    pub fn jwk(mut self, jwk: impl Into<String>) -> Self {
        self.keys.push(KeySpec::Jwk(jwk.into()));
        self
    }

    /// Adds every key of a JWKS document (JSON text). Every key must be valid.
    pub fn jwks(mut self, jwks: impl Into<String>) -> Self {
        self.keys.push(KeySpec::Jwks(jwks.into()));
        self
    }

    /// Adds an already built key.
    pub fn key(mut self, key: VerifyingKey) -> Self {
        self.keys.push(KeySpec::Key(key));
        self
    }

    /// Takes keys from a [`KeySource`] instead of local keys (for a remote JWKS). Needs an
    /// explicit [`algorithms`](Self::algorithms) list, since the keys are not known at build
    /// time.
    pub fn key_source(mut self, source: impl KeySource) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The accepted signature algorithms. By default, the algorithm of each local key: its JWK
    /// `alg`, else `HS256` for secrets, `RS256` for RSA, `ES256` / `ES384` for EC and `EdDSA`
    /// for Ed25519. Whatever the list says, a token's `alg` must also fit the key that verifies
    /// it.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 60 s, at most 10 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Rejects tokens issued (`iat`) longer ago than this, and makes `iat` required.
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Refuses tokens whose `exp` is more than this far ahead of now (plus the leeway).
    /// Default [`DEFAULT_MAX_LIFETIME`], 7 days: a token that stays valid for years is a
    /// credential nobody can take back short of revoking it (RFC 8725 section 3.10).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Accepts an `exp` however far ahead. Dangerous: a leaked long-lived token stays usable
    /// for as long as its issuer chose.
    pub fn insecure_allow_unbounded_lifetime(mut self) -> Self {
        self.max_lifetime = None;
        self
    }

    /// Requires the RFC 9068 access-token type: header `typ` of `at+jwt` or
    /// `application/at+jwt` (case-insensitive). Stops an ID token or another JWT of the same
    /// issuer from being used as an access token.
    ///
    /// Without it, a `typ` naming another kind of JWT (`dpop+jwt`, `logout+jwt`,
    /// `secevent+jwt`: any `*+jwt` but `at+jwt`) is still refused (RFC 8725 section 3.11),
    /// while `JWT` or no `typ` passes.
    pub fn require_access_token_type(mut self) -> Self {
        self.typ = TypPolicy::AccessToken;
        self
    }

    /// Accepts tokens without `exp`. Dangerous: such a token is valid forever unless revoked.
    pub fn insecure_allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Which claims become roles and tenant (default: roles from `roles`).
    pub fn claims_mapping(mut self, mapping: ClaimsMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// When a principal is a service rather than a user (default: never).
    pub fn service_rule(mut self, rule: ServiceRule) -> Self {
        self.service_rule = rule;
        self
    }

    /// The claim that names the principal. By default `sub`, or for tokens without one
    /// (client credentials at some providers) `client_id`, then `azp`; a token with none of
    /// them is rejected. When set, only this claim is used (`oid` for Azure AD object ids,
    /// for example), and it must hold a string.
    pub fn subject_claim(mut self, path: ClaimPath) -> Self {
        self.subject = Some(path);
        self
    }

    fn build(self) -> Result<IssuerState, ConfigError> {
        let iss = self.issuer.clone();
        self.build_inner().map_err(|e| e.for_issuer(&iss))
    }

    fn build_inner(self) -> Result<IssuerState, ConfigError> {
        if self.audiences.is_empty() && !self.skip_audience {
            return Err(ConfigError::new(
                "audience",
                "none",
                "set the accepted audience(s), or opt out with insecure_skip_audience",
            ));
        }
        if let Some(a) = self.audiences.iter().find(|a| a.is_empty()) {
            return Err(ConfigError::new(
                "audience",
                format!("{a:?}"),
                "must not be empty",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new(
                "leeway",
                format!("{}s", self.leeway.as_secs()),
                "must be at most 600s",
            ));
        }
        if self.max_lifetime.is_some_and(|a| a.is_zero()) {
            return Err(ConfigError::new(
                "max_lifetime",
                "0s",
                "must be greater than zero (insecure_allow_unbounded_lifetime lifts the limit)",
            ));
        }
        if self.max_age.is_some_and(|a| a.is_zero()) {
            return Err(ConfigError::new(
                "max_token_age",
                "0s",
                "must be greater than zero",
            ));
        }
        let (source, static_keys): (Arc<dyn KeySource>, Option<KeySet>) =
            match (self.source, self.keys.is_empty()) {
                (Some(_), false) => {
                    return Err(ConfigError::new(
                        "key_source",
                        "a key source and local keys",
                        "use either local keys or one key source",
                    ));
                }
                (None, true) => {
                    return Err(ConfigError::new(
                        "keys",
                        "none",
                        "add a key (hmac_secret, pem, jwk, jwks, key) or a key_source",
                    ));
                }
                (Some(source), true) => (source, None),
                (None, false) => {
                    let mut keys = Vec::new();
                    for (i, spec) in self.keys.into_iter().enumerate() {
                        let setting = spec.setting();
                        let bad = |e: crate::KeyError| {
                            ConfigError::new(setting, format!("key #{}", i + 1), e.to_string())
                        };
                        match spec {
                            KeySpec::Hmac(s) => {
                                keys.push(VerifyingKey::hmac_secret(s).map_err(bad)?)
                            }
                            KeySpec::Pem(p) => keys.push(VerifyingKey::from_pem(p).map_err(bad)?),
                            KeySpec::Jwk(j) => keys.push(VerifyingKey::from_jwk(&j).map_err(bad)?),
                            KeySpec::Jwks(j) => keys.extend(
                                KeySet::from_jwks(&j)
                                    .map_err(bad)?
                                    .iter()
                                    .map(|k| (**k).clone()),
                            ),
                            KeySpec::Key(k) => keys.push(k),
                        }
                    }
                    if keys.is_empty() {
                        return Err(ConfigError::new(
                            "jwks",
                            "{\"keys\":[]}",
                            "the key set is empty",
                        ));
                    }
                    let set = KeySet::new(keys)
                        .map_err(|e| ConfigError::new("keys", "key set", e.to_string()))?;
                    (Arc::new(StaticKeys::new(set.clone())), Some(set))
                }
            };
        let algorithms = match (self.algorithms, &static_keys) {
            (Some(algs), _) if algs.is_empty() => {
                return Err(ConfigError::new("algorithms", "[]", "must not be empty"));
            }
            (Some(algs), Some(keys)) => {
                if let Some(alg) = algs.iter().find(|alg| !keys.iter().any(|k| k.fits(**alg))) {
                    return Err(ConfigError::new(
                        "algorithms",
                        alg,
                        "no configured key can verify it",
                    ));
                }
                algs
            }
            (Some(algs), None) => algs,
            (None, Some(keys)) => {
                let mut algs: Vec<_> = keys.iter().map(|k| k.default_algorithm()).collect();
                algs.sort();
                algs.dedup();
                algs
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "algorithms",
                    "[]",
                    "set the accepted algorithms for a key source",
                ));
            }
        };
        for path in self
            .mapping
            .roles
            .iter()
            .chain(self.mapping.tenant.iter())
            .chain(self.subject.iter())
        {
            if !path.is_valid() {
                return Err(ConfigError::new(
                    "claims_mapping",
                    path,
                    "claim paths must not have empty segments",
                ));
            }
        }
        Ok(IssuerState {
            issuer: self.issuer,
            audiences: self.audiences,
            skip_audience: self.skip_audience,
            algorithms,
            source,
            leeway: self.leeway,
            max_age: self.max_age,
            max_lifetime: self.max_lifetime,
            require_exp: self.require_exp,
            typ: self.typ,
            mapping: self.mapping,
            service_rule: self.service_rule,
            subject: self.subject,
        })
    }
}

/// Builds a [`JwtAuthenticator`]. Created by [`JwtAuthenticator::builder`].
#[must_use]
pub struct JwtAuthenticatorBuilder {
    issuers: Vec<TrustedIssuer>,
    max_token_size: usize,
    cookie: Option<String>,
    clock: Arc<dyn Clock>,
    cache: Option<CacheConfig>,
    revocation: Option<Arc<dyn RevocationCheck>>,
}

impl fmt::Debug for JwtAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticatorBuilder")
            .field("issuers", &self.issuers)
            .field("max_token_size", &self.max_token_size)
            .field("cookie", &self.cookie)
            .field("cache", &self.cache)
            .field("revocation", &self.revocation.is_some())
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticatorBuilder {
    pub(crate) fn new() -> Self {
        Self {
            issuers: Vec::new(),
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
            cookie: None,
            clock: Arc::new(SystemClock),
            cache: None,
            revocation: None,
        }
    }

    /// Trusts an issuer. Call once per issuer; the token's `iss` picks one.
    pub fn issuer(mut self, issuer: TrustedIssuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The largest token accepted, in bytes (default 8 KiB; 256 B to 1 MiB). Checked before
    /// anything is decoded.
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// Also reads the token from this cookie (set it `HttpOnly`, `Secure`, `SameSite`). A
    /// request with both the cookie and an `Authorization: Bearer` JWT is malformed (400).
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// The clock for `exp`, `nbf`, `iat` and cache expiry (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Caches verified tokens (off by default). A token that passed every check is served from
    /// memory until its `exp`, or the cache TTL when sooner (see the crate docs for how entries
    /// are keyed; the token itself is not kept). Expiry, maximum age and the revocation check
    /// still apply on every request. Only `ttl` and `max_capacity` of the config are used
    /// (invalid tokens are not cached); each entry holds the principal, its claims and the
    /// token's signing input, typically 2 to 3 KiB.
    pub fn verified_token_cache(mut self, config: CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// Checks every accepted token, cached or not, against this revocation hook.
    pub fn revocation(mut self, check: impl RevocationCheck) -> Self {
        self.revocation = Some(Arc::new(check));
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<JwtAuthenticator, ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::new(
                "issuer",
                "none",
                "at least one issuer is required",
            ));
        }
        if !(256..=1024 * 1024).contains(&self.max_token_size) {
            return Err(ConfigError::new(
                "max_token_size",
                self.max_token_size,
                "must be between 256 and 1048576 bytes",
            ));
        }
        if let Some(name) = &self.cookie
            && (name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)))
        {
            return Err(ConfigError::new(
                "cookie",
                format!("{name:?}"),
                "not a valid cookie name (RFC 6265 token)",
            ));
        }
        let mut issuers = HashMap::new();
        for issuer in self.issuers {
            if issuer.issuer.is_empty() {
                return Err(ConfigError::new("issuer", "\"\"", "must not be empty"));
            }
            let name = issuer.issuer.clone();
            if issuers.contains_key(name.as_str()) {
                return Err(ConfigError::new(
                    "issuer",
                    format!("{name:?}"),
                    "configured twice",
                ));
            }
            let state = issuer.build()?;
            issuers.insert(name.into_boxed_str(), state);
        }
        Ok(JwtAuthenticator {
            inner: Arc::new(Inner {
                issuers,
                max_token_size: self.max_token_size,
                cookie: self.cookie.map(Arc::from),
                clock: self.clock,
                cache: self.cache.map(TokenCache::new),
                revocation: self.revocation,
            }),
        })
    }
}
