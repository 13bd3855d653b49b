//! [`RevocationStore`]: where revocations are kept, and how other processes learn of them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::store::StoreFuture;

/// What a [`Revocation`] revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationKind {
    /// One token, by its `jti`.
    Token,
    /// Every token of a subject (`sub`) issued before a time.
    Subject,
}

impl RevocationKind {
    /// The name stored in the `kind` column: `jti` or `subject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "jti",
            Self::Subject => "subject",
        }
    }

    /// The kind stored as `s`, if any.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "jti" => Some(Self::Token),
            "subject" => Some(Self::Subject),
            _ => None,
        }
    }
}

/// One revocation, as a [`RevocationStore`] keeps it and a
/// [`RevocationList`](super::RevocationList) applies it.
///
/// Stores treat entries as an append-only log: revoking the same `jti` twice adds two
/// entries, which the list merges (the latest expiry, the latest cut-off wins).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revocation {
    /// A single token or a subject cut-off.
    pub kind: RevocationKind,
    /// The `iss` of the tokens concerned.
    pub issuer: String,
    /// The `jti` ([`RevocationKind::Token`]) or the `sub` ([`RevocationKind::Subject`]).
    pub value: String,
    /// For a subject cut-off, tokens whose `iat` is before this time are revoked. For a token,
    /// the time of the revocation.
    pub issued_before: SystemTime,
    /// When the entry may be forgotten: once every token it concerns has expired.
    pub expires_at: SystemTime,
    /// When it was written, by the writer's clock (for the notification-lag histogram).
    pub created_at: SystemTime,
}

impl Revocation {
    /// A revoked token (`jti` of `issuer`), kept until `expires_at`.
    pub fn token(
        issuer: impl Into<String>,
        jti: impl Into<String>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Self {
        Self {
            kind: RevocationKind::Token,
            issuer: issuer.into(),
            value: jti.into(),
            issued_before: now,
            expires_at,
            created_at: now,
        }
    }

    /// A subject cut-off: tokens of `subject` from `issuer` issued before `issued_before` are
    /// revoked; kept until `expires_at`.
    pub fn subject(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        issued_before: SystemTime,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Self {
        Self {
            kind: RevocationKind::Subject,
            issuer: issuer.into(),
            value: subject.into(),
            issued_before,
            expires_at,
            created_at: now,
        }
    }
}

/// Entries read from a [`RevocationStore`], and the position of the newest one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationBatch {
    /// The entries, oldest first.
    pub entries: Vec<Revocation>,
    /// The position (sequence number) of the newest entry the store holds, for the next
    /// [`RevocationStore::revocations_since`]; never lower than the cursor asked with.
    pub cursor: u64,
}

impl RevocationBatch {
    /// A batch (for stores of your own).
    pub fn new(entries: Vec<Revocation>, cursor: u64) -> Self {
        Self { entries, cursor }
    }
}

/// What a [`RevocationFeed`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationEvent {
    /// An entry was added (by this process or another).
    Added(Revocation),
    /// Entries were added: applied together, under one hold of the list's writer lock.
    Batch(Vec<Revocation>),
    /// Entries may have been missed (the feed reconnected, or a notified entry could not be
    /// read): the list reloads everything from the store.
    Reload,
    /// The feed checked its connection end to end (a heartbeat came back): every entry
    /// committed before the check and notified on this connection has been reported. The
    /// list counts itself synchronized as of now (see
    /// [`RevocationList::staleness`](super::RevocationList::staleness)) only when no
    /// [`Reload`](Self::Reload) it was asked for is pending: entries missed before the
    /// connection (re)opened are only in the store, so until a full read started after the
    /// request succeeds, heartbeats leave the staleness growing.
    Alive,
}

/// The future returned by [`RevocationFeed::next`].
pub type RevocationFeedFuture<'a> =
    Pin<Box<dyn Future<Output = Option<RevocationEvent>> + Send + 'a>>;

/// Pushed notifications of new revocations from a store shared by several processes
/// (PostgreSQL's `LISTEN`/`NOTIFY`), pulled by the list's background task.
///
/// [`RevocationList::load`](super::RevocationList::load) first calls
/// [`connect`](Self::connect), so the subscription exists before the full read and nothing
/// committed in between is missed; a failed `connect` fails the load. From then on the feed
/// handles its own failures: after reconnecting it yields [`RevocationEvent::Reload`], since
/// it may have missed notifications, and it should check its connection regularly (a
/// silently dropped connection delivers nothing and reports no error), yielding
/// [`RevocationEvent::Alive`] after each successful check. `None` ends it: the list logs it,
/// asks the store for a new feed and reloads.
pub trait RevocationFeed: Send + 'static {
    /// Establishes the subscription (PostgreSQL: `LISTEN` on a connection of its own).
    /// The default does nothing.
    fn connect(&mut self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// The next event.
    fn next(&mut self) -> RevocationFeedFuture<'_>;
}

/// Persistence for revocations, read in full at start and kept current from then on, never
/// on the request path. See the [module docs](super#stores).
///
/// [`MemoryRevocationStore`](super::MemoryRevocationStore), (feature `sqlite`)
/// [`SqliteRevocationStore`](super::SqliteRevocationStore) and (feature `postgres`)
/// [`PostgresRevocationStore`](super::PostgresRevocationStore) implement it.
pub trait RevocationStore: Send + Sync + 'static {
    /// Appends an entry. A store with a [feed](Self::revocation_feed) notifies it to every
    /// listening process, in the same transaction.
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()>;

    /// Appends several entries (a mass revocation). The default adds them one by one;
    /// [`SqliteRevocationStore`](super::SqliteRevocationStore) and
    /// [`PostgresRevocationStore`](super::PostgresRevocationStore) write them in one
    /// transaction.
    fn add_revocations<'a>(&'a self, entries: &'a [Revocation]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            for entry in entries {
                self.add_revocation(entry).await?;
            }
            Ok(())
        })
    }

    /// Every entry that has not expired at `now`, and the cursor of the newest entry ever
    /// added (never decreasing, even when the newest entries are deleted).
    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch>;

    /// The entries added after `cursor` (for polling), and the new cursor. The cursor must
    /// never decrease, even when the newest entries are deleted.
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch>;

    /// Deletes the entries that expired before `before`; returns how many. Lists pass their
    /// clock's time minus their [leeway](super::RevocationListBuilder::leeway); a store
    /// shared by several hosts should not trust one host's clock alone
    /// ([`PostgresRevocationStore`](super::PostgresRevocationStore) also compares with the database's
    /// clock, minus a margin).
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64>;

    /// A push feed of new entries, when the store has one (PostgreSQL). Without one (the
    /// default), lists poll [`revocations_since`](Self::revocations_since).
    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        None
    }
}

impl<S: RevocationStore + ?Sized> RevocationStore for Arc<S> {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        (**self).add_revocation(entry)
    }
    fn add_revocations<'a>(&'a self, entries: &'a [Revocation]) -> StoreFuture<'a, ()> {
        (**self).add_revocations(entries)
    }
    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        (**self).revocations(now)
    }
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        (**self).revocations_since(cursor)
    }
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        (**self).delete_revocations_expired_before(before)
    }
    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        (**self).revocation_feed()
    }
}
