//! Request-time and build-time errors.

use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;

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
}

impl AuthErrorKind {
    /// The HTTP status this kind maps to.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredential | Self::InvalidToken => StatusCode::UNAUTHORIZED,
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
