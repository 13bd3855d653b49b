use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use super::{KeyStore, StoreError, StoreErrorKind, StoreFuture};
use crate::limit::LimitsUpdate;
use crate::{KeyHash, KeyRecord, StoredKey};

/// A [`KeyStore`] in process memory: for tests, examples and single-process tools. Keys are
/// lost when the process ends.
///
/// Cheap to clone; clones share the keys.
///
/// ```
/// use tower_auth_apikey::{ApiKeys, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let keys = ApiKeys::builder(MemoryStore::new()).build().unwrap();
/// let created = keys.create(tower_auth_apikey::NewKey::new("alice")).await.unwrap();
/// assert_eq!(keys.list().await.unwrap()[0].id, created.record.id);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    by_hash: HashMap<KeyHash, StoredKey>,
    /// id -> hash
    ids: HashMap<String, KeyHash>,
    /// insertion order, for `list`
    order: Vec<String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent (every write is a
        // single insert or field update), so a poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.read().ids.len())
            .finish()
    }
}

impl Inner {
    fn by_id_mut(&mut self, id: &str) -> Option<&mut StoredKey> {
        let hash = self.ids.get(id)?;
        self.by_hash.get_mut(hash)
    }

    fn insert(&mut self, key: &StoredKey) -> Result<(), StoreError> {
        if self.ids.contains_key(&key.record.id) || self.by_hash.contains_key(&key.hash) {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                "key id or hash already exists",
            ));
        }
        self.ids.insert(key.record.id.clone(), key.hash);
        self.order.push(key.record.id.clone());
        self.by_hash.insert(key.hash, key.clone());
        Ok(())
    }
}

impl KeyStore for MemoryStore {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        let found = self.read().by_hash.get(hash).map(|k| k.record.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        let inner = self.read();
        let found = inner
            .ids
            .get(id)
            .and_then(|h| inner.by_hash.get(h))
            .map(|k| k.record.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        let inner = self.read();
        let all = inner
            .order
            .iter()
            .filter_map(|id| inner.ids.get(id).and_then(|h| inner.by_hash.get(h)))
            .map(|k| k.record.clone())
            .collect();
        Box::pin(std::future::ready(Ok(all)))
    }

    fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()> {
        let result = self.write().insert(key);
        Box::pin(std::future::ready(result))
    }

    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
        let mut inner = self.write();
        let found = inner.by_id_mut(id).map(|k| {
            k.record.revoked_at.get_or_insert(at);
            k.clone()
        });
        Box::pin(std::future::ready(Ok(found)))
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        old_expires_at: SystemTime,
        new: &'a StoredKey,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        let mut inner = self.write();
        let result = match inner.by_id_mut(old_id) {
            Some(old) if !old.record.is_revoked() => {
                let previous = old.record.expires_at;
                old.record.expires_at = Some(old_expires_at);
                let updated = old.clone();
                match inner.insert(new) {
                    Ok(()) => Ok(Some(updated)),
                    Err(e) => {
                        // Undo, so the operation stays atomic.
                        if let Some(old) = inner.by_id_mut(old_id) {
                            old.record.expires_at = previous;
                        }
                        Err(e)
                    }
                }
            }
            _ => Ok(None),
        };
        Box::pin(std::future::ready(result))
    }

    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
        let mut inner = self.write();
        for (id, at) in batch {
            if let Some(k) = inner.by_id_mut(id) {
                let last = k.record.last_used_at.get_or_insert(*at);
                if *last < *at {
                    *last = *at;
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        update: &'a LimitsUpdate,
        at: SystemTime,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        let mut inner = self.write();
        let found = inner.by_id_mut(id).map(|k| {
            k.record.limits = update.apply(&k.record.limits, k.record.created_at, at);
            k.clone()
        });
        Box::pin(std::future::ready(Ok(found)))
    }

    fn spend_credits<'a>(&'a self, batch: &'a [(String, u64, SystemTime)]) -> StoreFuture<'a, ()> {
        let mut inner = self.write();
        for (id, spent, at) in batch {
            if let Some(k) = inner.by_id_mut(id) {
                let created = k.record.created_at;
                if let Some(c) = &mut k.record.limits.credits {
                    c.spend(created, *spent, *at);
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        super::super::testing::conformance(&MemoryStore::new()).await;
    }
}
