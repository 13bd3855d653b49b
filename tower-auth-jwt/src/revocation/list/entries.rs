//! The entries of a [`RevocationList`](super::RevocationList): revoked `jti`s and subject
//! cut-offs of every issuer, in two concurrent hash maps that requests read without a lock
//! while one writer at a time changes them in place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::super::{Revocation, RevocationKind, TokenIdentity};

#[derive(Clone, Copy)]
pub(super) struct Cutoff {
    issued_before: SystemTime,
    keep_until: SystemTime,
}

/// value (`jti` or `sub`) -> the issuers it is revoked for (nearly always one), with what is
/// held for each. papaya's map: lock-free reads (see the [module docs](super::super)), and
/// an entry is replaced or removed in place, so a write costs the entry it changes, not the
/// size of the list. Lookups borrow the token's strings: one hash, no allocation.
///
/// foldhash (seeded per process) hashes a 36-byte `jti` in a few nanoseconds, several times
/// faster than std's SipHash, and only administrators and the issuer insert keys, so
/// flooding attacks on the table are out of reach of token holders.
type Map<V> = papaya::HashMap<Box<str>, Box<[(Arc<str>, V)]>, foldhash::fast::RandomState>;

/// A map that grows in one step: the write that fills the table copies it whole (a few
/// milliseconds at a million entries, on the writer), so a lookup never searches two tables,
/// as it would during papaya's default incremental resize, which a single writer may leave
/// half done for a long time.
fn map<V>() -> Map<V> {
    papaya::HashMap::builder()
        .hasher(foldhash::fast::RandomState::default())
        .resize_mode(papaya::ResizeMode::Blocking)
        .build()
}

/// The lists. Reads ([`is_revoked`](Self::is_revoked), the sizes) take no lock; writes go
/// through a [`Writer`], one at a time.
pub(super) struct Lists {
    tokens: Map<SystemTime>,
    subjects: Map<Cutoff>,
    /// `(jti, issuer)` pairs held.
    token_count: AtomicUsize,
    /// `(subject, issuer)` pairs held.
    subject_count: AtomicUsize,
    /// Serializes writers (each reads an entry, merges into it and writes it back), and
    /// holds each issuer's name once, shared by its entries.
    issuers: Mutex<Vec<Arc<str>>>,
}

/// The one writer of [`Lists`] at a time.
pub(super) struct Writer<'a> {
    lists: &'a Lists,
    issuers: MutexGuard<'a, Vec<Arc<str>>>,
}

/// What [`upsert`] did.
#[derive(PartialEq, Eq)]
enum Change {
    None,
    Updated,
    Added,
}

/// Merges `fresh` into `map[key]` for `issuer` (`merge` returns the merged value when it
/// differs from the held one). Only called by the [`Writer`], so nothing changes the entry
/// between its read and its write.
fn upsert<V: Copy>(
    map: &Map<V>,
    key: &str,
    issuer: Arc<str>,
    fresh: V,
    merge: impl Fn(V, V) -> Option<V>,
) -> Change {
    let map = map.pin();
    let Some(held) = map.get(key) else {
        map.insert(key.into(), Box::new([(issuer, fresh)]));
        return Change::Added;
    };
    let mut next = held.to_vec();
    let change = match held.iter().position(|(i, _)| *i == issuer) {
        Some(pos) => match merge(held[pos].1, fresh) {
            None => return Change::None,
            Some(v) => {
                next[pos].1 = v;
                Change::Updated
            }
        },
        None => {
            next.push((issuer, fresh));
            Change::Added
        }
    };
    map.insert(key.into(), next.into());
    change
}

/// Drops the values `keep` refuses; how many.
fn retain<V: Copy>(map: &Map<V>, keep: impl Fn(&V) -> bool) -> usize {
    let map = map.pin();
    let partly: Vec<Box<str>> = map
        .iter()
        .filter(|(_, held)| !held.iter().all(|(_, v)| keep(v)))
        .map(|(key, _)| key.clone())
        .collect();
    let mut dropped = 0;
    for key in partly {
        let Some(held) = map.get(&key) else { continue };
        let next: Vec<_> = held.iter().filter(|(_, v)| keep(v)).cloned().collect();
        dropped += held.len() - next.len();
        if next.is_empty() {
            map.remove(&key);
        } else {
            map.insert(key, next.into());
        }
    }
    dropped
}

impl Default for Lists {
    fn default() -> Self {
        Self {
            tokens: map(),
            subjects: map(),
            token_count: AtomicUsize::new(0),
            subject_count: AtomicUsize::new(0),
            issuers: Mutex::new(Vec::new()),
        }
    }
}

impl Lists {
    /// Takes the write side (waiting for the current writer, if any).
    pub(super) fn write(&self) -> Writer<'_> {
        // The guarded data is the issuer names, whole after every change: a poisoned lock is
        // recovered.
        let issuers = self.issuers.lock().unwrap_or_else(|e| e.into_inner());
        Writer {
            lists: self,
            issuers,
        }
    }

    /// The number of `(jti, issuer)` pairs held.
    pub(super) fn token_count(&self) -> usize {
        self.token_count.load(Ordering::Acquire)
    }

    /// The number of `(subject, issuer)` pairs held.
    pub(super) fn subject_count(&self) -> usize {
        self.subject_count.load(Ordering::Acquire)
    }

    pub(super) fn is_revoked(&self, t: &TokenIdentity) -> bool {
        let issuer = t.issuer();
        if self.token_count() > 0
            && let Some(jti) = t.jti()
            && self
                .tokens
                .pin()
                .get(jti)
                .is_some_and(|held| held.iter().any(|(i, _)| **i == *issuer))
        {
            return true;
        }
        if self.subject_count() > 0
            && let Some(sub) = t.subject()
            && let Some(issued_before) = self.subjects.pin().get(sub).and_then(|held| {
                held.iter()
                    .find(|(i, _)| **i == *issuer)
                    .map(|(_, c)| c.issued_before)
            })
        {
            // Without `iat` nothing says the token came after the cut-off: revoked (fail
            // closed). Cut-offs are whole seconds, like `iat`.
            return t.issued_at().is_none_or(|iat| iat < issued_before);
        }
        false
    }
}

impl Writer<'_> {
    fn issuer(&mut self, name: &str) -> Arc<str> {
        if let Some(i) = self.issuers.iter().find(|i| ***i == *name) {
            return Arc::clone(i);
        }
        let i: Arc<str> = name.into();
        self.issuers.push(Arc::clone(&i));
        i
    }

    /// The sizes: `(tokens, subjects)`.
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.lists.token_count(), self.lists.subject_count())
    }

    /// Applies `r` unless it has expired at `now`; whether anything changed.
    pub(super) fn apply(&mut self, r: &Revocation, now: SystemTime) -> bool {
        if r.expires_at < now {
            return false;
        }
        let issuer = self.issuer(&r.issuer);
        let lists = self.lists;
        let (change, count) = match r.kind {
            RevocationKind::Token => (
                upsert(
                    &lists.tokens,
                    &r.value,
                    issuer,
                    r.expires_at,
                    |held, new| (new > held).then_some(new),
                ),
                &lists.token_count,
            ),
            RevocationKind::Subject => {
                let fresh = Cutoff {
                    issued_before: r.issued_before,
                    keep_until: r.expires_at,
                };
                let change = upsert(&lists.subjects, &r.value, issuer, fresh, |c, new| {
                    let merged = Cutoff {
                        issued_before: c.issued_before.max(new.issued_before),
                        keep_until: c.keep_until.max(new.keep_until),
                    };
                    (merged.issued_before != c.issued_before || merged.keep_until != c.keep_until)
                        .then_some(merged)
                });
                (change, &lists.subject_count)
            }
        };
        if change == Change::Added {
            count.fetch_add(1, Ordering::AcqRel);
        }
        change != Change::None
    }

    /// Drops the entries kept until before `now`; how many. One pass over the lists, off
    /// the request path; entries left are not touched.
    pub(super) fn purge(&mut self, now: SystemTime) -> usize {
        let lists = self.lists;
        let tokens = retain(&lists.tokens, |until| *until >= now);
        let subjects = retain(&lists.subjects, |c| c.keep_until >= now);
        lists.token_count.fetch_sub(tokens, Ordering::AcqRel);
        lists.subject_count.fetch_sub(subjects, Ordering::AcqRel);
        if tokens + subjects > 0 {
            self.forget_unused_issuers();
        }
        tokens + subjects
    }

    /// Drops the issuers no entry refers to (counted by pointer). One pass over the entries,
    /// whatever the number of issuers.
    fn forget_unused_issuers(&mut self) {
        let mut used = std::collections::HashSet::<*const u8>::new();
        let tokens = self.lists.tokens.pin();
        let subjects = self.lists.subjects.pin();
        let held = tokens
            .values()
            .flat_map(|h| h.iter().map(|(i, _)| i))
            .chain(subjects.values().flat_map(|h| h.iter().map(|(i, _)| i)));
        for issuer in held {
            if used.insert(Arc::as_ptr(issuer).cast::<u8>()) && used.len() == self.issuers.len() {
                return;
            }
        }
        self.issuers
            .retain(|i| used.contains(&Arc::as_ptr(i).cast::<u8>()));
    }

    /// The number of issuer names held.
    #[cfg(test)]
    pub(super) fn issuer_count(&self) -> usize {
        self.issuers.len()
    }

    /// Whether both maps are empty.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.lists.tokens.is_empty() && self.lists.subjects.is_empty()
    }
}
