//! [`ApiKeys`]: create, list, revoke and rotate keys from Rust.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tower_auth_core::clock::{Clock, SystemClock};
use tower_auth_core::{ConfigError, Scopes};

use crate::authenticator::Caches;
use crate::key::{self, KeyFormat, KeyHasher};
use crate::limit::{Credits, KeyLimits, LimitsUpdate, Rate, RateLimit};
use crate::{KeyRecord, KeyStore, PlainKey, StoreError, StoreErrorKind, StoredKey};

/// Key administration: create (the plain key is returned once), list, get, revoke, rotate.
///
/// Get one from [`ApiKeyAuthenticator::admin`](crate::ApiKeyAuthenticator::admin), whose cache
/// it then invalidates on revoke and rotate, or build a standalone one with
/// [`ApiKeys::builder`] (a CLI, another process: the authenticators elsewhere see the change
/// through their store's change feed, within about 100 ms on SQLite and milliseconds on
/// Postgres, or else within their cache TTL). Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use tower_auth_apikey::{ApiKeys, MemoryStore, NewKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let keys = ApiKeys::builder(MemoryStore::new()).prefix("sk_test").build().unwrap();
/// let created = keys
///     .create(NewKey::new("billing-service").name("nightly export").scopes(["invoices:read"]))
///     .await
///     .unwrap();
/// assert!(created.key.expose_secret().starts_with("sk_test_"));
/// assert!(created.record.id.starts_with("key_"));
///
/// let rotated = keys.rotate(&created.record.id, Duration::from_secs(3600)).await.unwrap();
/// assert_eq!(rotated.record.scopes, created.record.scopes);
/// keys.revoke(&created.record.id).await.unwrap();
/// assert_eq!(keys.list().await.unwrap().len(), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct ApiKeys {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn KeyStore>,
    format: KeyFormat,
    hasher: KeyHasher,
    clock: Arc<dyn Clock>,
    cache: Option<Caches>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("prefix", &self.inner.format.prefix())
            .field("hasher", &self.inner.hasher)
            .field("invalidates_cache", &self.inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Starts a standalone administration API over `store`.
    pub fn builder(store: impl KeyStore) -> ApiKeysBuilder {
        ApiKeysBuilder {
            store: Arc::new(store),
            prefix: KeyFormat::DEFAULT_PREFIX.to_owned(),
            pepper: None,
            clock: Arc::new(SystemClock),
        }
    }

    pub(crate) fn from_parts(
        store: Arc<dyn KeyStore>,
        format: KeyFormat,
        hasher: KeyHasher,
        clock: Arc<dyn Clock>,
        cache: Option<Caches>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                format,
                hasher,
                clock,
                cache,
            }),
        }
    }

    /// Creates a key. The returned [`CreatedKey::key`] is the only time the plain key exists
    /// outside its holder: only its hash is stored.
    pub async fn create(&self, new: NewKey) -> Result<CreatedKey, AdminError> {
        new.validate()?;
        let now = self.inner.clock.now();
        let expires_at = match (new.expires_at, new.expires_in) {
            (Some(at), _) => Some(at),
            (None, Some(d)) => Some(now + d),
            (None, None) => None,
        };
        let limits = KeyLimits {
            rate: new.rate,
            credits: (new.credits.is_some() || new.refill.is_some()).then(|| Credits {
                remaining: new
                    .credits
                    .unwrap_or_else(|| new.refill.map_or(0, |r| u64::from(r.count()))),
                refill: new.refill,
                updated_at: now,
            }),
        };
        let record = KeyRecord {
            id: String::new(),
            owner: new.owner,
            name: new.name,
            scopes: new.scopes,
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            metadata: new.metadata,
            limits,
        };
        self.insert_new(record, |stored| {
            let store = Arc::clone(&self.inner.store);
            async move { store.insert(&stored).await.map(|()| stored) }
        })
        .await
        .map(|(created, _)| created)
    }

    /// Generates a key and id for `record` and stores it with `insert`, retrying (a few times)
    /// the astronomically unlikely collision of a random id or key.
    async fn insert_new<F, Fut, T>(
        &self,
        mut record: KeyRecord,
        insert: F,
    ) -> Result<(CreatedKey, T), AdminError>
    where
        F: Fn(StoredKey) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempts = 0;
        loop {
            let key = self.inner.format.generate().map_err(AdminError::random)?;
            record.id = key::generate_id().map_err(AdminError::random)?;
            let hash = self.inner.hasher.hash(key.expose_secret());
            let stored = StoredKey {
                hash,
                record: record.clone(),
            };
            match insert(stored).await {
                Ok(t) => {
                    // Usable here at once, whatever the store's feed.
                    if let Some(cache) = &self.inner.cache {
                        cache.known(&hash);
                    }
                    return Ok((
                        CreatedKey {
                            key,
                            record: record.clone(),
                        },
                        t,
                    ));
                }
                Err(e) if e.kind() == StoreErrorKind::Conflict && attempts < 3 => attempts += 1,
                Err(e) => return Err(AdminError::Store(e)),
            }
        }
    }

    /// Every key, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, AdminError> {
        Ok(self.inner.store.list().await?)
    }

    /// The key with id `id`.
    pub async fn get(&self, id: &str) -> Result<Option<KeyRecord>, AdminError> {
        Ok(self.inner.store.get(id).await?)
    }

    /// Revokes the key `id` now: it is rejected from the next request on in this process (the
    /// authenticator's cache entry is dropped at once, and a lookup already under way does not
    /// put it back), and in others through the store's change feed (about 100 ms on SQLite,
    /// milliseconds on Postgres; the cache TTL on a store without one). Revoking twice keeps
    /// the first time.
    pub async fn revoke(&self, id: &str) -> Result<KeyRecord, AdminError> {
        let now = self.inner.clock.now();
        let stored = self
            .inner
            .store
            .revoke(id, now)
            .await?
            .ok_or_else(|| AdminError::NotFound(id.to_owned()))?;
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(&stored.hash).await;
        }
        Ok(stored.record)
    }

    /// Replaces the key `id` with a new key of the same owner, name, scopes and metadata (and,
    /// if the old key had an expiry, the same lifetime counted from now). The old key keeps
    /// working for `grace` (or until its own expiry, if sooner), then expires. Returns the new
    /// key, shown once.
    pub async fn rotate(&self, id: &str, grace: Duration) -> Result<CreatedKey, AdminError> {
        let old = self
            .inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(id.to_owned()))?;
        if old.is_revoked() {
            return Err(AdminError::Revoked(id.to_owned()));
        }
        let now = self.inner.clock.now();
        let grace_end = now.checked_add(grace).ok_or(AdminError::Invalid {
            field: "grace",
            reason: "too long",
        })?;
        let old_expires_at = match old.expires_at {
            Some(e) if e < grace_end => e,
            _ => grace_end,
        };
        let lifetime = old
            .expires_at
            .map(|e| e.duration_since(old.created_at).unwrap_or_default());
        let record = KeyRecord {
            id: String::new(),
            owner: old.owner.clone(),
            name: old.name.clone(),
            scopes: old.scopes.clone(),
            created_at: now,
            expires_at: lifetime.and_then(|l| now.checked_add(l)),
            revoked_at: None,
            last_used_at: None,
            metadata: old.metadata.clone(),
            limits: old.limits,
        };
        let (created, updated) = self
            .insert_new(record, |stored| {
                let store = Arc::clone(&self.inner.store);
                let id = id.to_owned();
                async move { store.rotate(&id, old_expires_at, &stored).await }
            })
            .await?;
        let updated = updated.ok_or_else(|| AdminError::NotFound(id.to_owned()))?;
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(&updated.hash).await;
        }
        Ok(created)
    }

    /// Changes the rate limit and credits of the key `id` (see [`LimitsUpdate`]) and returns
    /// the updated record. Like a revocation, the change reaches this process's authenticator
    /// at once and the others through the store's change feed; a new rate limit starts with
    /// a full burst, and `credits(n)` replaces the remaining count in the store (requests a
    /// running server served before and has not yet written back, at most one write-back
    /// interval's worth, are still subtracted).
    pub async fn update_limits(
        &self,
        id: &str,
        update: LimitsUpdate,
    ) -> Result<KeyRecord, AdminError> {
        let now = self.inner.clock.now();
        let stored = self
            .inner
            .store
            .update_limits(id, &update, now)
            .await?
            .ok_or_else(|| AdminError::NotFound(id.to_owned()))?;
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(&stored.hash).await;
        }
        Ok(stored.record)
    }
}

/// Builds a standalone [`ApiKeys`]. Created by [`ApiKeys::builder`].
#[must_use]
pub struct ApiKeysBuilder {
    store: Arc<dyn KeyStore>,
    prefix: String,
    pepper: Option<Vec<u8>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ApiKeysBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeysBuilder")
            .field("prefix", &self.prefix)
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ApiKeysBuilder {
    /// The prefix of created keys (default `sk_live`); must match the authenticator's.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The HMAC pepper; must match the authenticator's. See
    /// [`ApiKeyAuthenticatorBuilder::pepper`](crate::ApiKeyAuthenticatorBuilder::pepper).
    pub fn pepper(mut self, pepper: impl Into<Vec<u8>>) -> Self {
        self.pepper = Some(pepper.into());
        self
    }

    /// The clock for creation, revocation and rotation times (default the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<ApiKeys, ConfigError> {
        Ok(ApiKeys::from_parts(
            self.store,
            KeyFormat::new(&self.prefix, None)?,
            KeyHasher::new(self.pepper.as_deref())?,
            self.clock,
            None,
        ))
    }
}

/// The settings of a key to create with [`ApiKeys::create`].
#[must_use]
#[derive(Clone, Debug)]
pub struct NewKey {
    owner: String,
    name: Option<String>,
    scopes: Scopes,
    expires_in: Option<Duration>,
    expires_at: Option<SystemTime>,
    metadata: serde_json::Value,
    rate: Option<RateLimit>,
    credits: Option<u64>,
    refill: Option<Rate>,
}

impl NewKey {
    /// A key owned by `owner` (the principal's subject), with no scopes, no expiry and empty
    /// metadata.
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            name: None,
            scopes: Scopes::default(),
            expires_in: None,
            expires_at: None,
            metadata: serde_json::Value::Object(serde_json::Map::new()),
            rate: None,
            credits: None,
            refill: None,
        }
    }

    /// A rate limit (none by default).
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate = Some(limit);
        self
    }

    /// Usage credits: how many requests the key may make (no limit by default).
    pub fn credits(mut self, remaining: u64) -> Self {
        self.credits = Some(remaining);
        self
    }

    /// Resets the credits to the refill's count at each of its periods, counted from the key's
    /// creation; without [`credits`](Self::credits), the key starts with that count.
    pub fn refill(mut self, refill: Rate) -> Self {
        self.refill = Some(refill);
        self
    }

    /// A human-readable label.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The scopes the key grants (RFC 6749 scope tokens: printable ASCII, no spaces or quotes).
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = Scopes::new(scopes);
        self
    }

    /// Expires this long after creation.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }

    /// Expires at `at` (takes precedence over [`expires_in`](Self::expires_in)).
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Free-form JSON kept with the record.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    fn validate(&self) -> Result<(), AdminError> {
        if self.owner.trim().is_empty() {
            return Err(AdminError::Invalid {
                field: "owner",
                reason: "must not be empty",
            });
        }
        // RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let token_ok = |s: &str| {
            s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        };
        if !self.scopes.iter().all(token_ok) {
            return Err(AdminError::Invalid {
                field: "scopes",
                reason: "a scope must be printable ASCII without spaces, quotes or backslashes",
            });
        }
        if self.expires_in.is_some_and(|d| d.is_zero()) {
            return Err(AdminError::Invalid {
                field: "expires_in",
                reason: "must be more than zero",
            });
        }
        Ok(())
    }
}

/// A key just created (or rotated in): the plain key, shown once, and its record.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    /// The key to hand to its holder. It is not stored anywhere.
    pub key: PlainKey,
    /// The stored record.
    pub record: KeyRecord,
}

/// Why an administration call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminError {
    /// No key has this id.
    NotFound(String),
    /// The key is revoked (it cannot be rotated).
    Revoked(String),
    /// An argument was rejected.
    Invalid {
        /// The argument.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The store failed.
    Store(StoreError),
    /// The operating system's random number generator failed.
    Random(String),
}

impl AdminError {
    fn random(e: getrandom::Error) -> Self {
        Self::Random(e.to_string())
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(id) => write!(f, "no api key with id {id}"),
            Self::Revoked(id) => write!(f, "api key {id} is revoked"),
            Self::Invalid { field, reason } => write!(f, "invalid {field}: {reason}"),
            Self::Store(e) => e.fmt(f),
            Self::Random(e) => write!(f, "random number generator failed: {e}"),
        }
    }
}

impl StdError for AdminError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}
