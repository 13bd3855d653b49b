//! The DPoP replay cache: the `jti`s of the proofs accepted recently, per instance, bounded.
//!
//! An entry lives until its proof's `iat` leaves the acceptance window, after which the proof
//! is refused for its age anyway. When the cache is full of live entries a new proof is
//! refused (503) rather than evicting an entry, which would let that entry's proof be replayed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

pub(crate) type ReplayKey = [u8; 32];

/// Why [`ReplayCache::insert`] refused a proof.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The `jti` was seen before.
    Replayed,
    /// The cache is full of live entries.
    Full,
}

pub(crate) struct ReplayCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Key -> the instant the entry may go.
    seen: HashMap<ReplayKey, SystemTime, foldhash::fast::RandomState>,
    /// The same entries, soonest expiry first.
    expiries: BinaryHeap<Reverse<(SystemTime, ReplayKey)>>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::default(),
        }
    }

    /// Records `key` until `expires`, unless it is there already or the cache is full. Entries
    /// whose expiry is before `now` are dropped first.
    pub(crate) fn insert(
        &self,
        key: ReplayKey,
        expires: SystemTime,
        now: SystemTime,
    ) -> Result<(), Refused> {
        // A poisoned lock only means another thread panicked mid-insert; the maps are still
        // consistent enough to refuse replays.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let State { seen, expiries } = &mut *state;
        while let Some(Reverse((at, k))) = expiries.peek().copied() {
            if at >= now {
                break;
            }
            expiries.pop();
            seen.remove(&k);
        }
        if seen.contains_key(&key) {
            return Err(Refused::Replayed);
        }
        if seen.len() >= self.capacity {
            return Err(Refused::Full);
        }
        seen.insert(key, expires);
        expiries.push(Reverse((expires, key)));
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.lock().map(|s| s.seen.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn key(n: u8) -> ReplayKey {
        [n; 32]
    }

    #[test]
    fn a_key_is_refused_until_it_expires() {
        let c = ReplayCache::new(10);
        assert_eq!(c.insert(key(1), at(160), at(100)), Ok(()));
        assert_eq!(c.insert(key(1), at(160), at(100)), Err(Refused::Replayed));
        assert_eq!(
            c.insert(key(1), at(200), at(160)),
            Err(Refused::Replayed),
            "still there at its expiry"
        );
        assert_eq!(c.insert(key(1), at(221), at(161)), Ok(()), "gone after");
    }

    #[test]
    fn a_full_cache_refuses_and_never_evicts_a_live_entry() {
        let c = ReplayCache::new(2);
        c.insert(key(1), at(160), at(100)).unwrap();
        c.insert(key(2), at(170), at(100)).unwrap();
        assert_eq!(c.insert(key(3), at(170), at(110)), Err(Refused::Full));
        // Both live entries are still refused.
        assert_eq!(c.insert(key(1), at(170), at(110)), Err(Refused::Replayed));
        assert_eq!(c.insert(key(2), at(170), at(110)), Err(Refused::Replayed));
        // Once the first expires there is room again.
        assert_eq!(c.insert(key(3), at(230), at(165)), Ok(()));
        assert_eq!(c.len(), 2);
    }
}
