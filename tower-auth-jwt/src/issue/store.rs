//! Where the issuer keeps its state: the [`SigningKeyStore`] and [`RefreshTokenStore`] traits,
//! their records, and [`MemoryStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::StoredSigningKey;
use crate::store::{StoreError, StoreErrorKind, StoreFuture};

/// Persistence for signing keys. See the [module docs](super#stores).
///
/// At most one key is active (not retired) at a time; [`replace_active`](Self::replace_active)
/// is a compare-and-swap, so two processes starting together on one database generate one key,
/// and two rotating together rotate once. Implementations must be safe to call concurrently.
pub trait SigningKeyStore: Send + Sync + 'static {
    /// Every stored key, active and retired, oldest first.
    fn signing_keys(&self) -> StoreFuture<'_, Vec<StoredSigningKey>>;

    /// Atomically: when the active key's `kid` is `expected` (`None`: there is no active key),
    /// retires it at `retire_at`, inserts `new` (which is not retired) and returns `true`;
    /// otherwise changes nothing and returns `false` (another process got there first).
    fn replace_active<'a>(
        &'a self,
        expected: Option<&'a str>,
        retire_at: SystemTime,
        new: &'a StoredSigningKey,
    ) -> StoreFuture<'a, bool>;

    /// Deletes the keys retired before `before`; returns how many.
    fn delete_retired_before(&self, before: SystemTime) -> StoreFuture<'_, u64>;

    /// Deletes the retired key `kid` (withdrawing a compromised key); `false` when there is no
    /// such retired key. The current key is never deleted.
    fn delete_retired_key<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, bool>;
}

/// The SHA-256 of a refresh token: all a [`RefreshTokenStore`] ever sees of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash([u8; 32]);

impl RefreshTokenHash {
    /// The hash of a token.
    pub fn of(token: &str) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// A hash read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefreshTokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A refresh-token family: one login, and what every access token of it is issued with.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RefreshFamily {
    /// The family id, also the `sid` claim of its access tokens.
    pub id: String,
    /// The `sub` of its access tokens.
    pub subject: String,
    /// The `client_id` of its access tokens.
    pub client_id: String,
    /// The `scope` of its access tokens (space separated; may be empty).
    pub scope: String,
    /// Custom claims of its access tokens (a JSON object).
    pub claims: serde_json::Value,
    /// When the login happened.
    pub created_at: SystemTime,
    /// The absolute end of the family: no refresh after this, whatever the activity.
    pub expires_at: SystemTime,
    /// When the family was revoked (logout, or reuse of a consumed token).
    pub revoked_at: Option<SystemTime>,
}

impl RefreshFamily {
    /// A family record (for stores of your own reading one back).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        subject: String,
        client_id: String,
        scope: String,
        claims: serde_json::Value,
        created_at: SystemTime,
        expires_at: SystemTime,
        revoked_at: Option<SystemTime>,
    ) -> Self {
        Self {
            id,
            subject,
            client_id,
            scope,
            claims,
            created_at,
            expires_at,
            revoked_at,
        }
    }
}

/// One refresh token of a family, by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshTokenRecord {
    /// The SHA-256 of the token.
    pub hash: RefreshTokenHash,
    /// The family it belongs to.
    pub family_id: String,
    /// When it was issued.
    pub created_at: SystemTime,
    /// When it stops being accepted: the idle timeout after issue, capped by the family's end.
    pub expires_at: SystemTime,
    /// When it was exchanged for a new one, if it was.
    pub consumed_at: Option<SystemTime>,
}

impl RefreshTokenRecord {
    /// A token record (for stores of your own reading one back).
    pub fn new(
        hash: RefreshTokenHash,
        family_id: String,
        created_at: SystemTime,
        expires_at: SystemTime,
        consumed_at: Option<SystemTime>,
    ) -> Self {
        Self {
            hash,
            family_id,
            created_at,
            expires_at,
            consumed_at,
        }
    }
}

/// Persistence for refresh tokens (hashes only) and their families. See the
/// [module docs](super#refresh-tokens).
///
/// [`consume`](Self::consume) is the operation that makes rotation safe: it must be atomic, so
/// that of two concurrent calls with one token exactly one returns `true`.
pub trait RefreshTokenStore: Send + Sync + 'static {
    /// Inserts a new family with its first token, atomically.
    fn create_family<'a>(
        &'a self,
        family: &'a RefreshFamily,
        token: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, ()>;

    /// The token with this hash and its family, or `None`.
    fn find<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
    ) -> StoreFuture<'a, Option<(RefreshTokenRecord, RefreshFamily)>>;

    /// Atomically: when the token `hash` is not consumed and its family is not revoked, marks
    /// it consumed at `at`, inserts `next` (same family) and returns `true`; otherwise changes
    /// nothing and returns `false`.
    fn consume<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
        at: SystemTime,
        next: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, bool>;

    /// Revokes the family at `at` (keeping an earlier revocation); `false` when it does not
    /// exist.
    fn revoke_family<'a>(&'a self, family_id: &'a str, at: SystemTime) -> StoreFuture<'a, bool>;

    /// Deletes the families that ended (expired or revoked) before `before`, with their
    /// tokens; returns how many families.
    fn delete_families_ended_before(&self, before: SystemTime) -> StoreFuture<'_, u64>;

    /// Revokes every family of `subject` not yet revoked, at `at` ("log out everywhere");
    /// returns how many. Families are not keyed by issuer: two issuers sharing one store
    /// revoke each other's sessions of a subject of the same name (use a store each, or
    /// subjects unique across issuers). Required, not defaulted: a store that cannot do it
    /// should not compile into an issuer whose "log out everywhere" silently fails.
    fn revoke_subject<'a>(&'a self, subject: &'a str, at: SystemTime) -> StoreFuture<'a, u64>;
}

impl<S: SigningKeyStore + ?Sized> SigningKeyStore for Arc<S> {
    fn signing_keys(&self) -> StoreFuture<'_, Vec<StoredSigningKey>> {
        (**self).signing_keys()
    }
    fn replace_active<'a>(
        &'a self,
        expected: Option<&'a str>,
        retire_at: SystemTime,
        new: &'a StoredSigningKey,
    ) -> StoreFuture<'a, bool> {
        (**self).replace_active(expected, retire_at, new)
    }
    fn delete_retired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        (**self).delete_retired_before(before)
    }
    fn delete_retired_key<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, bool> {
        (**self).delete_retired_key(kid)
    }
}

impl<S: RefreshTokenStore + ?Sized> RefreshTokenStore for Arc<S> {
    fn create_family<'a>(
        &'a self,
        family: &'a RefreshFamily,
        token: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, ()> {
        (**self).create_family(family, token)
    }
    fn find<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
    ) -> StoreFuture<'a, Option<(RefreshTokenRecord, RefreshFamily)>> {
        (**self).find(hash)
    }
    fn consume<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
        at: SystemTime,
        next: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, bool> {
        (**self).consume(hash, at, next)
    }
    fn revoke_family<'a>(&'a self, family_id: &'a str, at: SystemTime) -> StoreFuture<'a, bool> {
        (**self).revoke_family(family_id, at)
    }
    fn delete_families_ended_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        (**self).delete_families_ended_before(before)
    }
    fn revoke_subject<'a>(&'a self, subject: &'a str, at: SystemTime) -> StoreFuture<'a, u64> {
        (**self).revoke_subject(subject, at)
    }
}

#[derive(Default)]
struct MemoryState {
    keys: Vec<StoredSigningKey>,
    families: HashMap<String, RefreshFamily>,
    tokens: HashMap<RefreshTokenHash, RefreshTokenRecord>,
}

/// The issuer's stores in process memory (signing keys, refresh tokens): for tests and
/// single-process apps that accept losing every key and session on restart (tokens issued
/// before a restart stop validating). Clones share the same data. Revocations have their own
/// store, [`MemoryRevocationStore`](crate::revocation::MemoryRevocationStore).
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<MemoryState>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("MemoryStore")
            .field("signing_keys", &s.keys.len())
            .field("families", &s.families.len())
            .field("refresh_tokens", &s.tokens.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // The state stays consistent across a panic (every change is one step), so a poisoned
        // lock is recovered.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SigningKeyStore for MemoryStore {
    fn signing_keys(&self) -> StoreFuture<'_, Vec<StoredSigningKey>> {
        let keys = self.lock().keys.clone();
        Box::pin(async move { Ok(keys) })
    }

    fn replace_active<'a>(
        &'a self,
        expected: Option<&'a str>,
        retire_at: SystemTime,
        new: &'a StoredSigningKey,
    ) -> StoreFuture<'a, bool> {
        let done = {
            let mut s = self.lock();
            let active = s.keys.iter().position(|k| k.retired_at().is_none());
            let current = active.map(|i| s.keys[i].kid());
            if current != expected {
                false
            } else if s.keys.iter().any(|k| k.kid() == new.kid()) {
                return Box::pin(async {
                    Err(StoreError::new(
                        StoreErrorKind::Conflict,
                        "kid already exists",
                    ))
                });
            } else {
                if let Some(i) = active {
                    s.keys[i].retire(retire_at);
                }
                s.keys.push(new.clone());
                true
            }
        };
        Box::pin(async move { Ok(done) })
    }

    fn delete_retired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        let mut s = self.lock();
        let n = s.keys.len();
        s.keys
            .retain(|k| k.retired_at().is_none_or(|r| r >= before));
        let gone = (n - s.keys.len()) as u64;
        Box::pin(async move { Ok(gone) })
    }

    fn delete_retired_key<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, bool> {
        let mut s = self.lock();
        let n = s.keys.len();
        s.keys
            .retain(|k| k.kid() != kid || k.retired_at().is_none());
        let gone = s.keys.len() < n;
        Box::pin(async move { Ok(gone) })
    }
}

impl RefreshTokenStore for MemoryStore {
    fn create_family<'a>(
        &'a self,
        family: &'a RefreshFamily,
        token: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, ()> {
        let mut s = self.lock();
        let result = if s.families.contains_key(&family.id) || s.tokens.contains_key(&token.hash) {
            Err(StoreError::new(
                StoreErrorKind::Conflict,
                "family or token already exists",
            ))
        } else {
            s.families.insert(family.id.clone(), family.clone());
            s.tokens.insert(token.hash, token.clone());
            Ok(())
        };
        Box::pin(async move { result })
    }

    fn find<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
    ) -> StoreFuture<'a, Option<(RefreshTokenRecord, RefreshFamily)>> {
        let s = self.lock();
        let found = s
            .tokens
            .get(hash)
            .and_then(|t| s.families.get(&t.family_id).map(|f| (t.clone(), f.clone())));
        Box::pin(async move { Ok(found) })
    }

    fn consume<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
        at: SystemTime,
        next: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, bool> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let result = match s.tokens.get(hash) {
            Some(t)
                if t.consumed_at.is_none()
                    && s.families
                        .get(&t.family_id)
                        .is_some_and(|f| f.revoked_at.is_none()) =>
            {
                if s.tokens.contains_key(&next.hash) {
                    Err(StoreError::new(
                        StoreErrorKind::Conflict,
                        "token already exists",
                    ))
                } else {
                    if let Some(t) = s.tokens.get_mut(hash) {
                        t.consumed_at = Some(at);
                    }
                    s.tokens.insert(next.hash, next.clone());
                    Ok(true)
                }
            }
            _ => Ok(false),
        };
        drop(guard);
        Box::pin(async move { result })
    }

    fn revoke_family<'a>(&'a self, family_id: &'a str, at: SystemTime) -> StoreFuture<'a, bool> {
        let found = match self.lock().families.get_mut(family_id) {
            Some(f) => {
                f.revoked_at.get_or_insert(at);
                true
            }
            None => false,
        };
        Box::pin(async move { Ok(found) })
    }

    fn delete_families_ended_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let ended: Vec<String> = s
            .families
            .values()
            .filter(|f| f.expires_at < before || f.revoked_at.is_some_and(|r| r < before))
            .map(|f| f.id.clone())
            .collect();
        for id in &ended {
            s.families.remove(id);
        }
        s.tokens.retain(|_, t| !ended.contains(&t.family_id));
        let n = ended.len() as u64;
        drop(guard);
        Box::pin(async move { Ok(n) })
    }

    fn revoke_subject<'a>(&'a self, subject: &'a str, at: SystemTime) -> StoreFuture<'a, u64> {
        let n = self.revoke_subject_now(subject, at);
        Box::pin(async move { Ok(n) })
    }
}

impl MemoryStore {
    fn revoke_subject_now(&self, subject: &str, at: SystemTime) -> u64 {
        let mut n = 0;
        for f in self.lock().families.values_mut() {
            if f.subject == subject && f.revoked_at.is_none() {
                f.revoked_at = Some(at);
                n += 1;
            }
        }
        n
    }
}
