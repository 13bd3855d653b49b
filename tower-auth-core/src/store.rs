//! The error every store of the tower-auth crates fails with, and the boxed future their
//! traits return: tower-auth-apikey's key stores and tower-auth-jwt's issuer and revocation
//! stores re-export these under their own paths.
//!
//! ```
//! use std::error::Error as _;
//! use tower_auth_core::store::{StoreError, StoreErrorKind};
//!
//! let e = StoreError::new(StoreErrorKind::Unavailable, "revocation store unavailable")
//!     .with_source(std::io::Error::other("connection refused"));
//! assert_eq!(e.kind(), StoreErrorKind::Unavailable);
//! assert_eq!(e.to_string(), "revocation store unavailable: connection refused");
//! assert!(e.source().is_some());
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future returned by store methods: boxed, so the store traits are object safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

type BoxError = Box<dyn StdError + Send + Sync>;

/// A store failed.
///
/// Cheap to clone (the cause is shared). The message is fixed and never contains key or token
/// material; the [`source`](StdError::source) is the backend's error, for logs.
#[derive(Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: &'static str,
    source: Option<Arc<BoxError>>,
}

/// The class of a [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store cannot be reached, is locked, or failed to answer.
    Unavailable,
    /// The call missed its deadline.
    Timeout,
    /// An insert collided with an existing row (an existing id or hash).
    Conflict,
    /// Stored data could not be read back (a bad timestamp, bad JSON, a hash of the wrong size).
    Corrupt,
    /// Setting up the store (opening, migrating) failed.
    Setup,
    /// A value was refused before reaching the store (too long).
    InvalidInput,
    /// The store does not implement this operation.
    Unsupported,
}

impl StoreError {
    /// A failure of `kind`; `message` is a fixed, lowercase description.
    pub fn new(kind: StoreErrorKind, message: &'static str) -> Self {
        Self {
            kind,
            message,
            source: None,
        }
    }

    /// The store could not answer; `source` is the backend's error.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Unavailable, "key store unavailable").with_source(source)
    }

    /// The call missed its deadline.
    pub fn timeout() -> Self {
        Self::new(StoreErrorKind::Timeout, "key store deadline exceeded")
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::new(source.into()));
        self
    }

    /// The class of the failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(self.message),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| &**e as &(dyn StdError + 'static))
    }
}
