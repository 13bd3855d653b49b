//! Invalidations pushed by the store ([`KeyStore::invalidations`]): applied to the cache at
//! once, the task started without a runtime at build time, and stopped with the authenticator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;
use tokio::sync::mpsc;

use super::*;
use crate::key::KeyHasher;
use crate::{ApiKeys, Invalidation, InvalidationFeed, InvalidationFuture, NewKey};

/// A memory store shared with a standalone [`ApiKeys`] (whose changes this authenticator
/// cannot see), with a feed the test pushes invalidations into.
struct FeedStore {
    inner: Arc<MemoryStore>,
    feed: Mutex<Option<ChannelFeed>>,
}

struct ChannelFeed {
    rx: mpsc::UnboundedReceiver<Invalidation>,
    polled: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

impl InvalidationFeed for ChannelFeed {
    fn next(&mut self) -> InvalidationFuture<'_> {
        self.polled.store(true, Ordering::SeqCst);
        Box::pin(self.rx.recv())
    }
}

impl Drop for ChannelFeed {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl KeyStore for FeedStore {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        self.inner.find_by_hash(hash)
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        self.inner.get(id)
    }
    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        self.inner.list()
    }
    fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()> {
        self.inner.insert(key)
    }
    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
        self.inner.revoke(id, at)
    }
    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        old_expires_at: SystemTime,
        new: &'a StoredKey,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        self.inner.rotate(old_id, old_expires_at, new)
    }
    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
        self.inner.record_last_used(batch)
    }
    fn invalidations(&self) -> Option<Box<dyn InvalidationFeed>> {
        let feed = self.feed.lock().unwrap().take()?;
        Some(Box::new(feed))
    }
}

struct Setup {
    auth: ApiKeyAuthenticator,
    store: Arc<MemoryStore>,
    other_process: ApiKeys,
    tx: mpsc::UnboundedSender<Invalidation>,
    polled: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

fn setup() -> Setup {
    let inner = Arc::new(MemoryStore::new());
    let (tx, rx) = mpsc::unbounded_channel();
    let polled = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let store = FeedStore {
        inner: Arc::clone(&inner),
        feed: Mutex::new(Some(ChannelFeed {
            rx,
            polled: Arc::clone(&polled),
            dropped: Arc::clone(&dropped),
        })),
    };
    let auth = ApiKeyAuthenticator::builder(store)
        .prefix("sk_test")
        .build()
        .unwrap();
    let other_process = ApiKeys::builder(Arc::clone(&inner))
        .prefix("sk_test")
        .build()
        .unwrap();
    Setup {
        auth,
        store: inner,
        other_process,
        tx,
        polled,
        dropped,
    }
}

/// Polls `svc` with `key` until it answers `want`, for at most 5 s.
async fn eventually<S>(svc: &S, key: &str, want: StatusCode) -> bool
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
{
    for _ in 0..500 {
        if status(svc, bearer(key)).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn wait_for(flag: &AtomicBool) -> bool {
    for _ in 0..500 {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_pushed_key_invalidation_drops_that_entry_only() {
    let s = setup();
    let a = s.other_process.create(NewKey::new("a")).await.unwrap();
    let b = s.other_process.create(NewKey::new("b")).await.unwrap();
    let (svc, _) = stack(s.auth.clone());
    for k in [&a.key, &b.key] {
        assert_eq!(
            status(&svc, bearer(k.expose_secret())).await,
            StatusCode::OK
        );
    }
    // Revoked elsewhere: still cached here, until the store says so.
    s.other_process.revoke(&a.record.id).await.unwrap();
    s.other_process.revoke(&b.record.id).await.unwrap();
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
    let hash = KeyHasher::new(None).unwrap().hash(a.key.expose_secret());
    s.tx.send(Invalidation::Key(hash)).unwrap();
    assert!(eventually(&svc, a.key.expose_secret(), StatusCode::UNAUTHORIZED).await);
    // The other entry was left alone: still served from the cache.
    assert_eq!(
        status(&svc, bearer(b.key.expose_secret())).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_pushed_all_clears_the_cache() {
    let s = setup();
    let a = s.other_process.create(NewKey::new("a")).await.unwrap();
    let (svc, _) = stack(s.auth.clone());
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
    s.other_process.revoke(&a.record.id).await.unwrap();
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
    s.tx.send(Invalidation::All).unwrap();
    assert!(eventually(&svc, a.key.expose_secret(), StatusCode::UNAUTHORIZED).await);
}

#[tokio::test]
async fn dropping_the_authenticator_drops_the_feed() {
    let s = setup();
    assert!(wait_for(&s.polled).await, "the feed is polled once built");
    let (svc, _) = stack(s.auth.clone());
    let admin = s.auth.admin();
    drop(s.auth);
    // Clones (in the stack, behind the admin API) keep it alive.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!s.dropped.load(Ordering::SeqCst));
    drop(svc);
    drop(admin);
    assert!(
        wait_for(&s.dropped).await,
        "the feed is dropped with the last clone"
    );
}

#[test]
fn built_outside_a_runtime_it_listens_from_the_first_lookup() {
    let s = setup();
    assert!(!s.polled.load(Ordering::SeqCst));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = s.other_process.create(NewKey::new("a")).await.unwrap();
        let (svc, _) = stack(s.auth.clone());
        assert_eq!(
            status(&svc, bearer(a.key.expose_secret())).await,
            StatusCode::OK
        );
        assert!(
            wait_for(&s.polled).await,
            "listening after the first lookup"
        );
        s.other_process.revoke(&a.record.id).await.unwrap();
        s.tx.send(Invalidation::All).unwrap();
        assert!(eventually(&svc, a.key.expose_secret(), StatusCode::UNAUTHORIZED).await);
    });
}

#[tokio::test]
async fn a_pushed_creation_drops_an_unknown_entry_and_keeps_a_record() {
    let s = setup();
    let (svc, _) = stack(s.auth.clone());
    // A key the server's store does not hold yet: cached as unknown.
    let elsewhere = ApiKeys::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()
        .unwrap();
    let late = elsewhere.create(NewKey::new("late")).await.unwrap();
    let late_key = late.key.expose_secret();
    assert_eq!(
        status(&svc, bearer(late_key)).await,
        StatusCode::UNAUTHORIZED
    );
    let hasher = KeyHasher::new(None).unwrap();
    let stored = StoredKey {
        record: late.record.clone(),
        hash: hasher.hash(late_key),
    };
    s.store.insert(&stored).await.unwrap();
    assert_eq!(
        status(&svc, bearer(late_key)).await,
        StatusCode::UNAUTHORIZED
    );
    s.tx.send(Invalidation::Created(stored.hash)).unwrap();
    assert!(eventually(&svc, late_key, StatusCode::OK).await);

    // A cached record is kept: a creation says nothing about it.
    let a = s.other_process.create(NewKey::new("a")).await.unwrap();
    let b = s.other_process.create(NewKey::new("b")).await.unwrap();
    let (a_key, b_key) = (a.key.expose_secret(), b.key.expose_secret());
    for k in [a_key, b_key] {
        assert_eq!(status(&svc, bearer(k)).await, StatusCode::OK);
    }
    s.other_process.revoke(&a.record.id).await.unwrap();
    s.other_process.revoke(&b.record.id).await.unwrap();
    s.tx.send(Invalidation::Created(hasher.hash(a_key)))
        .unwrap();
    // Once the invalidation sent after it is applied, the creation was too.
    s.tx.send(Invalidation::Key(hasher.hash(b_key))).unwrap();
    assert!(eventually(&svc, b_key, StatusCode::UNAUTHORIZED).await);
    assert_eq!(status(&svc, bearer(a_key)).await, StatusCode::OK);
}
