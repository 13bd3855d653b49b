//! The contract every [`RevocationStore`] is held to (features `revocation` and `testing`).
//! Public so that this crate's tests run it on
//! [`MemoryRevocationStore`](super::MemoryRevocationStore) and SQLite and the workspace's
//! integration tests on a real PostgreSQL server; a store of your own can be held to the same
//! contract. It wants a fresh, empty store and panics on the first failed check.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower_auth_jwt::revocation::{MemoryRevocationStore, testing};
//!
//! testing::revocation_store_contract(&MemoryRevocationStore::new()).await;
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Revocation, RevocationKind, RevocationStore};

/// 2026-01-01T00:00:00Z, where the contract's times start.
const T0: u64 = 1_767_225_600;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

/// The [`RevocationStore`] contract: entries are appended (the same one twice is two
/// entries), read in full without the expired ones, polled by cursor (the cursor never goes
/// back, even when the newest entry is deleted, and an empty poll keeps it; an entry added
/// after a deletion is seen from the old cursor), and deleted once expired.
pub async fn revocation_store_contract(store: &dyn RevocationStore) {
    let empty = store.revocations(t(0)).await.unwrap();
    assert!(empty.entries.is_empty());
    let start = empty.cursor;
    let a = Revocation::token("https://app.example", "jti-a", t(100), t(0));
    let b = Revocation::subject("https://app.example", "alice", t(5), t(200), t(6));
    let c = Revocation::token("https://other.example", "jti-c", t(300), t(7));
    store.add_revocation(&a).await.unwrap();
    store.add_revocation(&b).await.unwrap();
    let all = store.revocations(t(0)).await.unwrap();
    assert_eq!(all.entries, [a.clone(), b.clone()]);
    assert!(all.cursor > start);
    let polled = store.revocations_since(start).await.unwrap();
    assert_eq!(polled.entries, [a.clone(), b.clone()]);
    assert_eq!(polled.cursor, all.cursor);
    let nothing = store.revocations_since(all.cursor).await.unwrap();
    assert!(nothing.entries.is_empty());
    assert_eq!(nothing.cursor, all.cursor);
    store.add_revocation(&c).await.unwrap();
    store.add_revocation(&a).await.unwrap();
    let more = store.revocations_since(all.cursor).await.unwrap();
    assert_eq!(more.entries, [c.clone(), a.clone()]);
    assert!(more.cursor > all.cursor);
    assert_eq!(more.entries[0].kind, RevocationKind::Token);

    // Expired entries are not read in full, and are deleted.
    let later = store.revocations(t(150)).await.unwrap();
    assert_eq!(later.entries, [b.clone(), c.clone()]);
    assert_eq!(later.cursor, more.cursor);
    assert_eq!(
        store
            .delete_revocations_expired_before(t(150))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .delete_revocations_expired_before(t(150))
            .await
            .unwrap(),
        0
    );
    let left = store.revocations(t(0)).await.unwrap();
    assert_eq!(left.entries, [b.clone(), c.clone()]);
    // The newest entry (the second `a`) was deleted: the cursor does not move back, and a
    // poll from it sees nothing old again.
    assert!(
        left.cursor >= more.cursor,
        "{} < {}",
        left.cursor,
        more.cursor
    );
    assert!(
        store
            .revocations_since(more.cursor)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    // An entry added after the newest one was deleted gets a new position: a poll from the
    // old cursor sees it (a store reusing the deleted position would hide it for good).
    let d = Revocation::token("https://app.example", "jti-d", t(400), t(151));
    store.add_revocation(&d).await.unwrap();
    let after = store.revocations_since(more.cursor).await.unwrap();
    assert_eq!(after.entries, std::slice::from_ref(&d));
    assert!(after.cursor > more.cursor);
    let all = store.revocations(t(0)).await.unwrap();
    assert_eq!(all.entries, [b, c, d]);
    assert!(all.cursor >= after.cursor);
}
