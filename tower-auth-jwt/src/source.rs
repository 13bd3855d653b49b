//! Where an issuer's keys come from: the [`KeySource`] trait and the static source.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::KeySet;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The keys of one issuer.
///
/// The authenticator asks the source of the token's issuer for keys once per token that is not
/// served from the verified-token cache, passing the token's `kid`. A source answers:
///
/// - [`KeyLookup::Ready`] with its current key set, synchronously. This is the hot path: no
///   allocation, no await. When the set holds no key for the `kid`, the token is rejected (401).
/// - [`KeyLookup::Pending`] with a future, when it must fetch first (a cold cache, or an unknown
///   `kid` that justifies a refetch). Boxed, because it is off the hot path.
/// - [`KeyLookup::Unavailable`] when it cannot answer now (endpoint down past the allowed
///   staleness): the request gets 503 and the inner service is not called.
///
/// [`StaticKeys`] is the local source. The remote sources of the `remote` feature
/// (`remote::JwksUrl`, `remote::Discovery`) implement the same trait: it keeps the last good set in memory, answers `Ready` with it, refreshes in
/// the background, and answers `Pending` only while it has nothing usable or when an unknown
/// `kid` calls for a refetch within its cooldown. Plug it in with
/// [`TrustedIssuer::key_source`](crate::TrustedIssuer::key_source).
///
/// The verified-token cache holds a weak reference to the key that verified each token: once
/// a source stops holding a key (it left the published set), the tokens it verified are no
/// longer served from the cache and are verified again, which fails if the key is gone. A source
/// that rebuilds its set on refresh should reuse the `Arc<VerifyingKey>` of unchanged keys
/// ([`KeySet::from_shared`]) so their tokens stay cached.
///
/// Implementations must be cheap to call and must not block.
pub trait KeySource: Send + Sync + 'static {
    /// The keys to verify a token with this `kid` (`None` when the header has none).
    fn lookup(&self, kid: Option<&str>) -> KeyLookup;
}

impl<S: KeySource + ?Sized> KeySource for Arc<S> {
    fn lookup(&self, kid: Option<&str>) -> KeyLookup {
        (**self).lookup(kid)
    }
}

/// A future that resolves to a key set, for [`KeyLookup::Pending`].
pub type KeySetFuture = Pin<Box<dyn Future<Output = Result<Arc<KeySet>, KeySourceError>> + Send>>;

/// The answer of a [`KeySource`].
#[non_exhaustive]
pub enum KeyLookup {
    /// The current keys.
    Ready(Arc<KeySet>),
    /// The keys after a fetch.
    Pending(KeySetFuture),
    /// No keys can be had now: 503.
    Unavailable(KeySourceError),
}

impl fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(keys) => f.debug_tuple("Ready").field(&keys.len()).finish(),
            Self::Pending(_) => f.write_str("Pending"),
            Self::Unavailable(e) => f.debug_tuple("Unavailable").field(e).finish(),
        }
    }
}

/// A key source could not provide keys. Turns into a 503 response; the description is fixed
/// and the source (a network error) goes to logs only.
#[derive(Debug)]
pub struct KeySourceError {
    description: &'static str,
    source: Option<BoxError>,
}

impl KeySourceError {
    /// A failure described by a fixed string (`"jwks endpoint unavailable"`).
    pub fn new(description: &'static str) -> Self {
        Self {
            description,
            source: None,
        }
    }

    /// Attaches the underlying cause, for logs.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The fixed description.
    pub fn description(&self) -> &'static str {
        self.description
    }
}

impl fmt::Display for KeySourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description)
    }
}

impl StdError for KeySourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// Keys given locally (HMAC secrets, PEM keys, JWKs, a JWKS document): always
/// [`KeyLookup::Ready`].
#[derive(Clone, Debug)]
pub struct StaticKeys {
    keys: Arc<KeySet>,
}

impl StaticKeys {
    /// A source that always answers with `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self {
            keys: Arc::new(keys),
        }
    }

    /// The keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }
}

impl KeySource for StaticKeys {
    fn lookup(&self, _kid: Option<&str>) -> KeyLookup {
        KeyLookup::Ready(Arc::clone(&self.keys))
    }
}
