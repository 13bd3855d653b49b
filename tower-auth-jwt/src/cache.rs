//! The verified-token cache: SHA-256 of the token's signature segment -> its signing input and
//! the principal it authenticated.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use tower_auth_core::{CacheConfig, Principal};

use crate::{TokenIdentity, VerifyingKey};

pub(crate) type TokenHash = [u8; 32];

pub(crate) fn hash(bytes: &[u8]) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub(crate) struct CachedToken {
    pub(crate) principal: Principal,
    pub(crate) identity: TokenIdentity,
    /// `header.payload` as received, compared byte for byte on a hit.
    pub(crate) signing_input: Box<[u8]>,
    /// The key that verified the token. Once no key set holds it any more (a remote source
    /// dropped it at a refresh), the entry is no longer served.
    pub(crate) key: Weak<VerifyingKey>,
    /// The instant after which the token fails its time checks (`exp` + leeway, or
    /// `iat` + max age + leeway), by the authenticator's clock.
    pub(crate) valid_until: Option<SystemTime>,
    /// Whether the token is sender-constrained (carries `cnf`): served only to the DPoP scheme,
    /// never as a Bearer token.
    pub(crate) bound: bool,
    /// How long moka keeps the entry.
    ttl: Duration,
}

impl CachedToken {
    pub(crate) fn new(
        principal: Principal,
        identity: TokenIdentity,
        signing_input: Box<[u8]>,
        key: Weak<VerifyingKey>,
        valid_until: Option<SystemTime>,
        now: SystemTime,
        max_ttl: Duration,
    ) -> Self {
        let left = valid_until.map_or(max_ttl, |t| t.duration_since(now).unwrap_or_default());
        Self {
            principal,
            identity,
            signing_input,
            key,
            valid_until,
            bound: false,
            ttl: left.min(max_ttl),
        }
    }
}

struct EntryExpiry;

impl Expiry<TokenHash, Arc<CachedToken>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        entry: &Arc<CachedToken>,
        _: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

pub(crate) struct TokenCache {
    /// Keys are SHA-256 digests already, spread evenly whatever the tokens: a fast hasher
    /// (seeded per process) is enough, SipHash would only add time to every lookup.
    cache: moka::sync::Cache<TokenHash, Arc<CachedToken>, foldhash::fast::RandomState>,
    pub(crate) ttl: Duration,
}

impl TokenCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .name("jwt_verified_tokens")
                .max_capacity(config.max_capacity())
                .expire_after(EntryExpiry)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            ttl: config.ttl(),
        }
    }

    pub(crate) fn get(&self, key: &TokenHash) -> Option<Arc<CachedToken>> {
        self.cache.get(key)
    }

    pub(crate) fn insert(&self, key: TokenHash, value: CachedToken) {
        if !value.ttl.is_zero() {
            self.cache.insert(key, Arc::new(value));
        }
    }

    pub(crate) fn remove(&self, key: &TokenHash) {
        self.cache.invalidate(key);
    }

    pub(crate) fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}
