//! Build-time errors.

use std::borrow::Cow;
use std::fmt;

/// A setting of [`JwtAuthenticatorBuilder`](crate::JwtAuthenticatorBuilder) was rejected.
///
/// Names the setting, the issuer it belongs to, the offending value (never a secret: keys are
/// shown by position, `key #2`) and the reason, so a misconfiguration is found before the first
/// request.
///
/// ```
/// use tower_auth_jwt::{TrustedIssuer, JwtAuthenticator};
///
/// let err = JwtAuthenticator::builder()
///     .issuer(TrustedIssuer::new("https://issuer.example").audience("api").hmac_secret(b"too short"))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "hmac_secret");
/// assert_eq!(
///     err.to_string(),
///     "invalid `hmac_secret` = key #1 of issuer `https://issuer.example`: HMAC secret of 9 bytes; at least 32 required"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    value: String,
    issuer: Option<String>,
    reason: Cow<'static, str>,
}

impl ConfigError {
    pub(crate) fn new(
        setting: &'static str,
        value: impl fmt::Display,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            setting,
            value: value.to_string(),
            issuer: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn for_issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// The name of the rejected setting (the builder method).
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The offending value, as displayed.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The issuer the setting belongs to, for per-issuer settings.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}` = {}", self.setting, self.value)?;
        if let Some(iss) = &self.issuer {
            write!(f, " of issuer `{iss}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}
