//! The revocation hook, checked on every request.

use std::fmt;
use std::time::SystemTime;

/// What a revocation check sees of a verified token: enough to match a `jti` blocklist or a
/// "tokens of subject S issued before T" cut-off.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub(crate) issuer: String,
    pub(crate) subject: Option<String>,
    pub(crate) jti: Option<String>,
    pub(crate) issued_at: Option<SystemTime>,
    pub(crate) expires_at: Option<SystemTime>,
}

impl TokenIdentity {
    /// A token identity, for tests of your own [`RevocationCheck`].
    pub fn new(
        issuer: impl Into<String>,
        subject: Option<String>,
        jti: Option<String>,
        issued_at: Option<SystemTime>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            subject,
            jti,
            issued_at,
            expires_at,
        }
    }

    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `sub`, when present.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// `jti`, when present.
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// `iat`, when present.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// `exp`, when present.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

impl fmt::Debug for TokenIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Decides whether a verified token has been revoked.
///
/// Called on every request, after the signature and claims checks and on every hit of the
/// verified-token cache, so a revocation takes effect at once even for cached tokens. It is
/// synchronous and must answer from memory (a `jti` blocklist, subject cut-offs kept current in
/// the background); never query a store here. A revoked token gets 401 `invalid_token`.
///
/// Closures implement it:
///
/// ```
/// use tower_auth_jwt::{RevocationCheck, TokenIdentity};
///
/// let blocklist = |t: &TokenIdentity| t.jti() == Some("stolen-1");
/// let t = TokenIdentity::new("iss", Some("alice".into()), Some("stolen-1".into()), None, None);
/// assert!(blocklist.is_revoked(&t));
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// Whether the token is revoked.
    fn is_revoked(&self, token: &TokenIdentity) -> bool;
}

impl<F> RevocationCheck for F
where
    F: Fn(&TokenIdentity) -> bool + Send + Sync + 'static,
{
    fn is_revoked(&self, token: &TokenIdentity) -> bool {
        self(token)
    }
}
