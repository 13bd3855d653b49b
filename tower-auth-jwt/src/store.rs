//! What every store of this crate shares: the boxed [`StoreFuture`] its traits return and
//! the [`StoreError`] they fail with. Revocation stores (the verifier's) and the issuer's
//! stores both use them, so neither side imports the other for it.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future returned by store methods: boxed, so the traits are object safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

type BoxError = Box<dyn StdError + Send + Sync>;

/// A store failed. The message is fixed and never contains key or token material; the
/// [`source`](StdError::source) is the backend's error, for logs.
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
    /// An insert collided with an existing row.
    Conflict,
    /// Stored data could not be read back.
    Corrupt,
    /// Opening or migrating the store failed.
    Setup,
    /// A value was refused before reaching the store (too long).
    InvalidInput,
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
