//! How keys reach the store: only as the SHA-256 of the presented key, and a request cancelled
//! while its lookup is in flight leaves the cache as a completed one would.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sha2::{Digest, Sha256};

use super::*;
use crate::NewKey;

/// A store that records every hash it is asked for, and counts every other read.
#[derive(Clone, Default)]
struct Recording {
    inner: MemoryStore,
    hashes: Arc<Mutex<Vec<KeyHash>>>,
    other_reads: Arc<AtomicUsize>,
}

impl KeyStore for Recording {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        self.hashes.lock().unwrap().push(*hash);
        self.inner.find_by_hash(hash)
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        self.other_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id)
    }
    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        self.other_reads.fetch_add(1, Ordering::SeqCst);
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
}

fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The store never sees a key: every lookup is `find_by_hash` with the SHA-256 of the
/// presented key (computed here independently of the crate), no request lists or scans the
/// records (which could then be compared with the secret), malformed, wrong-environment and
/// bad-checksum keys are refused before any lookup, and nothing the store holds contains the
/// key or its random part.
#[tokio::test]
async fn keys_are_looked_up_only_by_their_hash() {
    let store = Recording::default();
    let auth = ApiKeyAuthenticator::builder(store.clone())
        .prefix("sk_test")
        .build()
        .unwrap();
    let good = auth.admin().create(NewKey::new("a")).await.unwrap();
    let revoked = auth.admin().create(NewKey::new("b")).await.unwrap();
    auth.admin().revoke(&revoked.record.id).await.unwrap();
    // A well-formed key of this environment that no store holds.
    let unknown = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()
        .unwrap()
        .admin()
        .create(NewKey::new("elsewhere"))
        .await
        .unwrap()
        .key;
    let live = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_live")
        .build()
        .unwrap()
        .admin()
        .create(NewKey::new("production"))
        .await
        .unwrap()
        .key;
    let good_key = good.key.expose_secret().to_owned();
    let last = if good_key.ends_with('x') { 'y' } else { 'x' };
    let tampered = format!("{}{last}", &good_key[..good_key.len() - 1]);
    store.hashes.lock().unwrap().clear();
    let (svc, _) = stack(auth);

    let looked_up = [
        good_key.as_str(),
        revoked.key.expose_secret(),
        unknown.expose_secret(),
    ];
    for key in looked_up {
        let _ = status(&svc, bearer(key)).await;
        let _ = status(&svc, with_header("x-api-key", key)).await;
    }
    for key in [
        tampered.as_str(),
        live.expose_secret(),
        "sk_test_short",
        "not a key",
    ] {
        assert_eq!(status(&svc, bearer(key)).await, StatusCode::UNAUTHORIZED);
    }

    let hashes: Vec<[u8; 32]> = store
        .hashes
        .lock()
        .unwrap()
        .iter()
        .map(|h| *h.as_bytes())
        .collect();
    let expected: Vec<[u8; 32]> = looked_up.iter().map(|k| sha256(k)).collect();
    // One lookup per distinct key (the second request of each is a cache hit), in order.
    assert_eq!(hashes, expected);
    assert_eq!(store.other_reads.load(Ordering::SeqCst), 0);

    // What the store holds for the keys: no trace of the secret.
    for (key, record) in [
        (good_key.as_str(), &good.record),
        (revoked.key.expose_secret(), &revoked.record),
    ] {
        let body = &key[key.rfind('_').unwrap() + 1..];
        let stored = store
            .inner
            .find_by_hash(&KeyHash::from_bytes(sha256(key)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.id, record.id);
        let text = serde_json::to_string(&stored).unwrap() + &format!("{stored:?}");
        assert!(
            !text.contains(body) && !text.contains(&body[..16]),
            "{text}"
        );
    }
}

/// A request dropped while its lookup waits on the store (a client that hung up) leaves the
/// cache as a finished lookup would: the next request for the key is answered correctly, from
/// the store again or from the cache, never from a half-written entry; a revocation afterwards
/// still takes effect.
#[tokio::test]
async fn a_cancelled_lookup_leaves_the_cache_consistent() {
    let store = TestStore::new();
    let auth = builder(&store).build().unwrap();
    let created = auth.admin().create(NewKey::new("a")).await.unwrap();
    let key = created.key.expose_secret().to_owned();
    let admin = auth.admin();
    let (svc, calls) = stack(auth);

    // The first request reaches the store and is dropped there.
    let (started, release) = store.pause_next_lookup();
    {
        let mut cancelled = pin!(svc.clone().oneshot(bearer(&key)));
        let mut cx = Context::from_waker(Waker::noop());
        let mut started = pin!(started);
        loop {
            assert!(cancelled.as_mut().poll(&mut cx).is_pending());
            if let Poll::Ready(r) = started.as_mut().poll(&mut cx) {
                r.unwrap();
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    let _ = release.send(());
    assert_eq!(store.finds(), 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the cancelled request never ran"
    );

    // The next request is answered correctly, and the one after from the cache.
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::OK);
    let finds = store.finds();
    assert!(finds <= 2, "{finds}");
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::OK);
    assert_eq!(store.finds(), finds, "served from the cache");

    // A revocation after the cancelled lookup still takes effect.
    admin.revoke(&created.record.id).await.unwrap();
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::UNAUTHORIZED);
}

/// `authenticate_now` decides exactly as the future of `authenticate` would (the trait's rule,
/// checked by tower-auth-core's shared helper): a good key, a revoked one, one no store holds
/// and a tampered one, in either header, before and after the cache holds them.
#[tokio::test]
async fn authenticate_now_decides_as_the_future() {
    let auth = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()
        .unwrap();
    let good = auth.admin().create(NewKey::new("a")).await.unwrap();
    let revoked = auth.admin().create(NewKey::new("b")).await.unwrap();
    auth.admin().revoke(&revoked.record.id).await.unwrap();
    let unknown = ApiKeyAuthenticator::builder(MemoryStore::new())
        .prefix("sk_test")
        .build()
        .unwrap()
        .admin()
        .create(NewKey::new("elsewhere"))
        .await
        .unwrap()
        .key;
    let good_key = good.key.expose_secret().to_owned();
    let last = if good_key.ends_with('x') { 'y' } else { 'x' };
    let tampered = format!("{}{last}", &good_key[..good_key.len() - 1]);
    tower_auth_core::testing::assert_now_decides_as_future(
        &auth,
        [
            bearer(&good_key),
            with_header("x-api-key", &good_key),
            bearer(revoked.key.expose_secret()),
            bearer(unknown.expose_secret()),
            bearer(&tampered),
        ],
    )
    .await;
}
