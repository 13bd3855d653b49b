//! Errors of issuing, refreshing and logging out.

use std::error::Error as StdError;
use std::fmt;

use tower_auth_core::AuthError;

use super::StoreError;

/// Issuing, refreshing or logging out failed.
///
/// [`kind`](Self::kind) says what to answer: [`IssueErrorKind::InvalidToken`] and
/// [`IssueErrorKind::TokenReused`] are a 401 for the client,
/// [`IssueErrorKind::Unavailable`] a 503, the rest a server-side mistake. [`to_auth_error`](Self::to_auth_error)
/// maps it onto the tower-auth response contract. Messages are fixed strings and never contain
/// a token.
#[derive(Clone)]
pub struct IssueError {
    kind: IssueErrorKind,
    message: &'static str,
    source: Option<StoreError>,
}

/// The class of an [`IssueError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssueErrorKind {
    /// The refresh token is unknown, expired (idle or absolute), of a revoked family, or was
    /// consumed moments ago by a concurrent refresh within the reuse interval (the family
    /// lives on).
    InvalidToken,
    /// The refresh token had already been used: its whole family is now revoked.
    TokenReused,
    /// The store could not answer.
    Unavailable,
    /// The request cannot be issued (a custom claim shadows a registered one, refresh tokens
    /// not configured).
    InvalidRequest,
    /// Key generation, loading or signing failed.
    Crypto,
    /// The refresh token's session is bound to a DPoP key and the request carried no proof by
    /// that key (RFC 9449 section 5): nothing was consumed or revoked. A token endpoint answers
    /// 400 `invalid_dpop_proof`.
    InvalidDpopProof,
}

impl IssueError {
    pub(crate) fn new(kind: IssueErrorKind, message: &'static str) -> Self {
        Self {
            kind,
            message,
            source: None,
        }
    }

    pub(crate) fn crypto(message: &'static str) -> Self {
        Self::new(IssueErrorKind::Crypto, message)
    }

    pub(crate) fn store(source: StoreError) -> Self {
        Self {
            kind: IssueErrorKind::Unavailable,
            message: "issuer store unavailable",
            source: Some(source),
        }
    }

    /// The class of the failure.
    pub fn kind(&self) -> IssueErrorKind {
        self.kind
    }

    /// The failure as a request-time [`AuthError`]: 401 `invalid_token` for an unusable or
    /// reused refresh token, `invalid_dpop_proof` for a missing or foreign DPoP proof, and 503
    /// otherwise (a store outage, or an issuer that cannot serve
    /// the request: fail closed).
    pub fn to_auth_error(&self) -> AuthError {
        match self.kind {
            IssueErrorKind::InvalidToken | IssueErrorKind::TokenReused => {
                AuthError::invalid_token(self.message)
            }
            IssueErrorKind::InvalidDpopProof => AuthError::invalid_dpop_proof(self.message),
            IssueErrorKind::Unavailable
            | IssueErrorKind::InvalidRequest
            | IssueErrorKind::Crypto => AuthError::unavailable(self.message),
        }
    }
}

impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        Self::store(e)
    }
}

impl From<IssueError> for AuthError {
    fn from(e: IssueError) -> Self {
        e.to_auth_error()
    }
}

impl fmt::Debug for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(self.message),
        }
    }
}

impl StdError for IssueError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}
