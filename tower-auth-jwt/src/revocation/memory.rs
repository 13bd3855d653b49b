//! [`MemoryRevocationStore`]: revocations in process memory.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{Revocation, RevocationBatch, RevocationStore};
use crate::store::StoreFuture;

#[derive(Default)]
struct Log {
    /// The entries, with sequence numbers from 1.
    entries: Vec<(u64, Revocation)>,
    seq: u64,
}

/// A [`RevocationStore`] in process memory: for tests and single-process apps that accept
/// losing every revocation on restart. Clones share the same log, so two
/// [`RevocationList`](super::RevocationList)s on clones of one store behave like two
/// instances on one database (they poll it).
#[derive(Clone, Default)]
pub struct MemoryRevocationStore {
    log: Arc<Mutex<Log>>,
}

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocationStore")
            .field("revocations", &self.lock().entries.len())
            .finish()
    }
}

impl MemoryRevocationStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // The log stays consistent across a panic (every change is one step), so a poisoned
        // lock is recovered.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        let mut log = self.lock();
        log.seq += 1;
        let seq = log.seq;
        log.entries.push((seq, entry.clone()));
        drop(log);
        Box::pin(async { Ok(()) })
    }

    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        let log = self.lock();
        let entries = log
            .entries
            .iter()
            .filter(|(_, r)| r.expires_at >= now)
            .map(|(_, r)| r.clone())
            .collect();
        let batch = RevocationBatch::new(entries, log.seq);
        drop(log);
        Box::pin(async move { Ok(batch) })
    }

    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        let log = self.lock();
        let entries = log
            .entries
            .iter()
            .filter(|(seq, _)| *seq > cursor)
            .map(|(_, r)| r.clone())
            .collect();
        let batch = RevocationBatch::new(entries, log.seq.max(cursor));
        drop(log);
        Box::pin(async move { Ok(batch) })
    }

    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        let mut log = self.lock();
        let n = log.entries.len();
        log.entries.retain(|(_, r)| r.expires_at >= before);
        let gone = (n - log.entries.len()) as u64;
        drop(log);
        Box::pin(async move { Ok(gone) })
    }
}
