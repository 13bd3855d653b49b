//! Request-time and build-time errors.

use std::error::Error as StdError;
use std::fmt;

use http::{HeaderName, HeaderValue, StatusCode};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a request was not authenticated or not authorized.
///
/// Opaque on purpose: match on [`AuthError::kind`]. The kind alone decides the response (status
/// code and challenge, see [`DefaultRejection`](crate::DefaultRejection)); the description is a
/// fixed string chosen by the scheme and never contains request input, so it is safe to send to
/// the client and to log. The [`source`](StdError::source) carries the underlying cause (a store
/// error, a timeout) for logs only.
pub struct AuthError {
    kind: AuthErrorKind,
    description: &'static str,
    /// The rarely used parts, boxed so that the common error (a kind and a fixed description)
    /// costs no allocation.
    extra: Option<Box<Extra>>,
}

#[derive(Default)]
struct Extra {
    scope: Option<String>,
    source: Option<BoxError>,
    challenge: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The class of an [`AuthError`], which fixes the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No credential at all: 401 with a bare `Bearer realm` challenge.
    MissingCredential,
    /// A malformed request (credentials in two places, duplicate `Authorization` headers): 400
    /// `invalid_request`.
    InvalidRequest,
    /// A bad, empty, expired, revoked or unknown credential: 401 `invalid_token`.
    InvalidToken,
    /// Authenticated, but a required scope is missing: 403 `insufficient_scope`.
    InsufficientScope,
    /// Authenticated, but not allowed (a role or a predicate failed): 403 with no scope attribute.
    Forbidden,
    /// A dependency (key store, JWKS, introspection endpoint) failed or missed its deadline: 503.
    Unavailable,
    /// A bad DPoP proof (RFC 9449 section 7.1): 401 with `error="invalid_dpop_proof"` on the
    /// `DPoP` challenge.
    InvalidDpopProof,
    /// The DPoP proof lacks a current server nonce (RFC 9449 section 9): 401 with
    /// `error="use_dpop_nonce"` on the `DPoP` challenge and the nonce in a `DPoP-Nonce` header
    /// carried by the error.
    UseDpopNonce,
    /// A rate limit or a usage quota is exhausted: 429, no challenge; the error carries its
    /// `Retry-After` and `RateLimit` headers.
    TooManyRequests,
}

impl AuthErrorKind {
    /// The HTTP status this kind maps to.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredential
            | Self::InvalidToken
            | Self::InvalidDpopProof
            | Self::UseDpopNonce => StatusCode::UNAUTHORIZED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InsufficientScope | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable snake_case name, used as the `outcome` label in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::TooManyRequests => "too_many_requests",
        }
    }
}

impl AuthError {
    fn new(kind: AuthErrorKind, description: &'static str) -> Self {
        Self {
            kind,
            description,
            extra: None,
        }
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// No credential was presented.
    pub fn missing_credential() -> Self {
        Self::new(AuthErrorKind::MissingCredential, "no credential")
    }

    /// The request is malformed. `description` must be a fixed string.
    pub fn invalid_request(description: &'static str) -> Self {
        Self::new(AuthErrorKind::InvalidRequest, description)
    }

    /// The credential is bad. `description` must be a fixed string that does not echo input.
    pub fn invalid_token(description: &'static str) -> Self {
        Self::new(AuthErrorKind::InvalidToken, description)
    }

    /// A required scope is missing. `required` is the space-separated scope list that would
    /// satisfy the requirement; it goes into the challenge's `scope` attribute.
    pub fn insufficient_scope(required: impl Into<String>) -> Self {
        let mut e = Self::new(AuthErrorKind::InsufficientScope, "insufficient scope");
        e.extra_mut().scope = Some(required.into());
        e
    }

    /// The principal is not allowed. `description` must be a fixed string.
    pub fn forbidden(description: &'static str) -> Self {
        Self::new(AuthErrorKind::Forbidden, description)
    }

    /// A dependency failed or timed out. `description` must be a fixed string.
    pub fn unavailable(description: &'static str) -> Self {
        Self::new(AuthErrorKind::Unavailable, description)
    }

    /// The DPoP proof is bad (RFC 9449). `description` must be a fixed string.
    pub fn invalid_dpop_proof(description: &'static str) -> Self {
        Self::new(AuthErrorKind::InvalidDpopProof, description).with_challenge("DPoP")
    }

    /// The DPoP proof must carry the server nonce `nonce` (RFC 9449 section 9), sent back in a
    /// `DPoP-Nonce` header.
    pub fn use_dpop_nonce(nonce: HeaderValue) -> Self {
        Self::new(
            AuthErrorKind::UseDpopNonce,
            "authorization server requires nonce in dpop proof",
        )
        .with_challenge("DPoP")
        .with_header(HeaderName::from_static("dpop-nonce"), nonce)
    }

    /// A rate limit or quota is exhausted (429). Add `Retry-After` and the `RateLimit` headers
    /// with [`with_header`](Self::with_header). `description` must be a fixed string.
    pub fn too_many_requests(description: &'static str) -> Self {
        Self::new(AuthErrorKind::TooManyRequests, description)
    }

    /// Names the authentication scheme whose `WWW-Authenticate` challenge carries this error's
    /// `error` attributes (default `Bearer`): `DPoP` for a failure of a request sent with the
    /// `DPoP` scheme (RFC 9449 section 7.1). Must be a fixed token.
    #[must_use]
    pub fn with_challenge(mut self, scheme: &'static str) -> Self {
        self.extra_mut().challenge = Some(scheme);
        self
    }

    /// Adds a response header (`DPoP-Nonce`, `Retry-After`, `RateLimit-Policy`, `RateLimit`),
    /// written by every built-in responder after its own headers; a `Retry-After` here replaces
    /// the responder's default. Never put a credential in it.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra_mut().headers.push((name, value));
        self
    }

    /// The scheme whose challenge carries the error attributes: `Bearer` unless
    /// [`with_challenge`](Self::with_challenge) said otherwise.
    pub fn challenge_scheme(&self) -> &'static str {
        self.extra
            .as_ref()
            .and_then(|e| e.challenge)
            .unwrap_or("Bearer")
    }

    /// The headers added with [`with_header`](Self::with_header), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.extra
            .as_ref()
            .map_or(&[][..], |e| e.headers.as_slice())
            .iter()
            .map(|(n, v)| (n, v))
    }

    /// Attaches the underlying cause, for logs. It is never sent to the client.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.extra_mut().source = Some(source.into());
        self
    }

    /// The class of the error.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// A fixed, client-safe description (RFC 6750 `error_description`).
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// For [`AuthErrorKind::InsufficientScope`]: the scopes that would satisfy the requirement.
    pub fn required_scope(&self) -> Option<&str> {
        self.extra.as_ref()?.scope.as_deref()
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .field("scope", &self.extra.as_ref().and_then(|e| e.scope.as_ref()))
            .field("challenge", &self.challenge_scheme())
            .field(
                "headers",
                &self.headers().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "source",
                &self.extra.as_ref().and_then(|e| e.source.as_ref()),
            )
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description)
    }
}

impl StdError for AuthError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.extra
            .as_ref()?
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A configuration value was rejected at build time.
///
/// Names the setting and the offending value, so a misconfiguration is found before the first
/// request. Secrets are never part of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    value: String,
    reason: &'static str,
}

impl ConfigError {
    /// A rejected `setting`, with the offending `value` as shown to the user and the `reason`.
    pub fn new(setting: &'static str, value: impl fmt::Display, reason: &'static str) -> Self {
        Self {
            setting,
            value: value.to_string(),
            reason,
        }
    }

    /// The name of the rejected setting.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The offending value, as displayed.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was rejected.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The same error, reported under `setting` (when a checked value has a more specific name
    /// in the caller's configuration, such as `endpoint` for a URL).
    #[must_use]
    pub fn for_setting(mut self, setting: &'static str) -> Self {
        self.setting = setting;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid `{}` = {}: {}",
            self.setting, self.value, self.reason
        )
    }
}

impl StdError for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_contract_statuses() {
        assert_eq!(AuthError::missing_credential().status(), 401);
        assert_eq!(AuthError::invalid_request("x").status(), 400);
        assert_eq!(AuthError::invalid_token("x").status(), 401);
        assert_eq!(AuthError::insufficient_scope("a").status(), 403);
        assert_eq!(AuthError::forbidden("x").status(), 403);
        assert_eq!(AuthError::unavailable("x").status(), 503);
        assert_eq!(AuthError::invalid_dpop_proof("x").status(), 401);
        let nonce = AuthError::use_dpop_nonce(HeaderValue::from_static("n1"));
        assert_eq!(nonce.status(), 401);
        assert_eq!(nonce.challenge_scheme(), "DPoP");
        assert_eq!(
            nonce
                .headers()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect::<Vec<_>>(),
            [("dpop-nonce", "n1")]
        );
        assert_eq!(AuthError::too_many_requests("x").status(), 429);
        assert_eq!(AuthError::invalid_token("x").challenge_scheme(), "Bearer");
    }

    #[test]
    fn source_is_kept_but_not_displayed() {
        let e = AuthError::unavailable("key store unavailable")
            .with_source(std::io::Error::other("connection refused"));
        assert_eq!(e.to_string(), "key store unavailable");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("connection refused")
        );
    }

    #[test]
    fn scope_and_source_are_kept_together() {
        let e =
            AuthError::insufficient_scope("a b").with_source(std::io::Error::other("policy store"));
        assert_eq!(e.kind(), AuthErrorKind::InsufficientScope);
        assert_eq!(e.required_scope(), Some("a b"));
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("policy store")
        );
        let e = AuthError::invalid_token("bad");
        assert_eq!((e.required_scope(), e.source().is_none()), (None, true));
        assert_eq!(e.description(), "bad");
    }

    #[test]
    fn config_error_names_setting_and_value() {
        let e = ConfigError::new("ttl", "0s", "must be greater than zero");
        assert_eq!(
            e.to_string(),
            "invalid `ttl` = 0s: must be greater than zero"
        );
    }
}
