//! Tests of the scheme through `AuthenticateLayer`, with a store that counts, fails, hangs or
//! pauses on demand.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use tokio::sync::oneshot;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_auth_core::clock::ManualClock;
use tower_auth_core::{AuthenticateLayer, Principal};

use crate::{
    ApiKeyAuthenticator, ApiKeyAuthenticatorBuilder, KeyHash, KeyRecord, KeyStore, MemoryStore,
    StoreError, StoreFuture, StoredKey,
};

mod cache;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "sqlite")]
mod filter;
mod invalidation;
mod layer;
mod limits;
mod lookup;
#[cfg(feature = "metrics")]
mod metrics;
mod secrecy;
#[cfg(feature = "sqlite")]
mod sqlite;

const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

type Pause = (oneshot::Sender<()>, oneshot::Receiver<()>);

/// A store wrapper that counts lookups and can fail, hang, or pause the next lookup.
#[derive(Clone)]
pub(crate) struct TestStore {
    inner: Arc<dyn KeyStore>,
    finds: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
    pause: Arc<Mutex<Option<Pause>>>,
    /// Whether the inner store's invalidation feed is handed out.
    listen: bool,
    /// Whether the inner store's key hashes are handed out (for the filter of known keys).
    hashes: bool,
    /// Whether listing the key hashes fails.
    hashes_fail: Arc<std::sync::atomic::AtomicBool>,
}

impl TestStore {
    pub(crate) fn new() -> Self {
        Self::wrap(MemoryStore::new())
    }

    pub(crate) fn wrap(inner: impl KeyStore) -> Self {
        Self {
            inner: Arc::new(inner),
            finds: Arc::new(AtomicUsize::new(0)),
            mode: Arc::new(AtomicU8::new(OK)),
            pause: Arc::new(Mutex::new(None)),
            listen: false,
            hashes: false,
            hashes_fail: Arc::default(),
        }
    }

    /// Wraps `inner`, handing out its invalidation feed and its key hashes, so that the
    /// authenticator keeps a filter of known keys.
    #[cfg(feature = "sqlite")]
    pub(crate) fn wrap_filtered(inner: impl KeyStore) -> Self {
        Self {
            listen: true,
            hashes: true,
            ..Self::wrap(inner)
        }
    }

    /// Makes listing the key hashes fail (`true`) or work again.
    #[cfg(feature = "sqlite")]
    pub(crate) fn fail_hashes(&self, fail: bool) {
        self.hashes_fail.store(fail, Ordering::SeqCst);
    }

    /// Wraps `inner`, handing out its invalidation feed.
    #[cfg(feature = "sqlite")]
    pub(crate) fn wrap_listening(inner: impl KeyStore) -> Self {
        Self {
            listen: true,
            ..Self::wrap(inner)
        }
    }

    /// Lookups made so far.
    pub(crate) fn finds(&self) -> usize {
        self.finds.load(Ordering::SeqCst)
    }

    pub(crate) fn fail(&self) {
        self.mode.store(FAIL, Ordering::SeqCst);
    }

    pub(crate) fn hang(&self) {
        self.mode.store(HANG, Ordering::SeqCst);
    }

    pub(crate) fn recover(&self) {
        self.mode.store(OK, Ordering::SeqCst);
    }

    /// The next lookup reads the store, then signals `started` and waits for `release` before
    /// answering what it read.
    pub(crate) fn pause_next_lookup(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.pause.lock().unwrap() = Some((started_tx, release_rx));
        (started_rx, release_tx)
    }
}

impl KeyStore for TestStore {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        let pause = self.pause.lock().unwrap().take();
        let mode = self.mode.load(Ordering::SeqCst);
        Box::pin(async move {
            match mode {
                FAIL => {
                    return Err(StoreError::unavailable(std::io::Error::other(
                        "connection refused",
                    )));
                }
                HANG => std::future::pending::<()>().await,
                _ => {}
            }
            let found = self.inner.find_by_hash(hash).await;
            if let Some((started, release)) = pause {
                let _ = started.send(());
                let _ = release.await;
            }
            found
        })
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
    fn key_hashes(&self) -> StoreFuture<'_, Option<Vec<KeyHash>>> {
        if !self.hashes {
            return Box::pin(std::future::ready(Ok(None)));
        }
        if self.hashes_fail.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(StoreError::unavailable(
                std::io::Error::other("connection refused"),
            ))));
        }
        self.inner.key_hashes()
    }
    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        update: &'a crate::limit::LimitsUpdate,
        at: SystemTime,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        self.inner.update_limits(id, update, at)
    }
    fn spend_credits<'a>(&'a self, batch: &'a [(String, u64, SystemTime)]) -> StoreFuture<'a, ()> {
        if self.mode.load(Ordering::SeqCst) == FAIL {
            return Box::pin(std::future::ready(Err(StoreError::unavailable(
                std::io::Error::other("connection refused"),
            ))));
        }
        self.inner.spend_credits(batch)
    }
    fn invalidations(&self) -> Option<Box<dyn crate::InvalidationFeed>> {
        if self.listen {
            self.inner.invalidations()
        } else {
            None
        }
    }
}

pub(crate) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub(crate) fn clock() -> ManualClock {
    ManualClock::new(t0())
}

pub(crate) fn builder(store: &TestStore) -> ApiKeyAuthenticatorBuilder {
    ApiKeyAuthenticator::builder(store.clone()).prefix("sk_test")
}

/// A stack `AuthenticateLayer::required(auth)` over a handler that answers 200 with the
/// principal's subject and counts its calls.
pub(crate) fn stack(
    auth: ApiKeyAuthenticator,
) -> (
    impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(AuthenticateLayer::required(auth))
        .service(service_fn(move |req: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            let subject = req
                .extensions()
                .get::<Principal>()
                .map(|p| p.subject().to_owned())
                .unwrap_or_default();
            async move { Ok::<_, Infallible>(Response::new(subject)) }
        }));
    (svc, calls)
}

pub(crate) fn with_header(name: &str, value: &str) -> Request<()> {
    Request::get("/items").header(name, value).body(()).unwrap()
}

pub(crate) fn bearer(key: &str) -> Request<()> {
    with_header("authorization", &format!("Bearer {key}"))
}

pub(crate) async fn status<S>(svc: &S, req: Request<()>) -> StatusCode
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
{
    svc.clone().oneshot(req).await.unwrap().status()
}

pub(crate) fn www_authenticate(res: &Response<String>) -> &str {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}
