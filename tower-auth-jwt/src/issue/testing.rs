//! The scenarios every issuer store is held to (features `issue` and `testing`): the
//! [`SigningKeyStore`] contract, and refresh rotation, reuse
//! detection, the concurrent-refresh race, expiry, logout and "log out everywhere" driven
//! through a [`JwtIssuer`] on an injected clock. Public so that
//! this crate's tests run them on [`MemoryStore`](super::MemoryStore) and SQLite and the
//! workspace's integration tests on a real PostgreSQL server; a store of your own can be held
//! to the same contract. Each scenario wants a fresh, empty store and panics on the first
//! failed check.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use tower_auth_jwt::issue::{MemoryStore, testing};
//!
//! testing::signing_key_store_contract(&MemoryStore::new()).await;
//! testing::reuse_revokes_the_family(Arc::new(MemoryStore::new())).await;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tokio::sync::Barrier;
use tower_auth_core::clock::{Clock, ManualClock};

use super::{
    IssueErrorKind, JwtIssuer, RefreshFamily, RefreshTokenHash, RefreshTokenRecord,
    RefreshTokenStore, RefreshTokens, SigningKeyStore, StoreErrorKind, StoreFuture,
    StoredSigningKey, TokenRequest,
};
use crate::Algorithm;
#[cfg(feature = "revocation")]
use crate::revocation::{RevocationList, RevocationStore};
#[cfg(feature = "revocation")]
use crate::{JwtAuthenticator, TrustedIssuer};

/// A store serving both issuer roles: signing keys and refresh tokens.
pub trait Store: SigningKeyStore + RefreshTokenStore {}
impl<T: SigningKeyStore + RefreshTokenStore> Store for T {}

/// A shared store serving both issuer roles.
pub type SharedStore = Arc<dyn Store>;

/// 2026-01-01T00:00:00Z, where every scenario's clock starts.
const T0: u64 = 1_767_225_600;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

/// A clock stopped at 2026-01-01T00:00:00Z.
pub fn clock() -> ManualClock {
    ManualClock::new(t(0))
}

/// An issuer of `https://app.example` for `app-api`, client `app-web`, on `clock`, with
/// refresh tokens in `refresh` tuned by `tune`.
pub fn issuer(
    keys: impl SigningKeyStore,
    refresh: impl RefreshTokenStore,
    clock: &ManualClock,
    tune: impl FnOnce(RefreshTokens) -> RefreshTokens,
) -> JwtIssuer {
    JwtIssuer::builder(keys)
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
        .clock(clock.clone())
        .refresh_tokens(tune(RefreshTokens::new(refresh)))
        .build()
        .unwrap()
}

/// The claims of a compact JWS, unverified.
pub fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// alice, `orders:read`, custom claim `tenant` = `acme`.
pub fn login_request() -> TokenRequest {
    TokenRequest::new("alice")
        .scopes(["orders:read"])
        .claim("tenant", "acme")
}

/// The [`SigningKeyStore`] contract: the first key only when there is none, compare-and-swap
/// on the active `kid`, conflicts on a duplicate `kid` changing nothing, deletion of retired
/// keys only.
pub async fn signing_key_store_contract(store: &dyn SigningKeyStore) {
    let key = |kid: &str, s: u64| {
        StoredSigningKey::from_parts(kid, Algorithm::EdDSA, vec![kid.len() as u8; 48], t(s), None)
    };
    assert!(store.signing_keys().await.unwrap().is_empty());
    // First key: only when there is no active key.
    assert!(
        store
            .replace_active(None, t(0), &key("a", 0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_active(None, t(1), &key("b", 1))
            .await
            .unwrap()
    );
    // Compare-and-swap on the active kid.
    assert!(
        !store
            .replace_active(Some("zz"), t(1), &key("b", 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_active(Some("a"), t(10), &key("b", 10))
            .await
            .unwrap()
    );
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].kid(), keys[0].retired_at()), ("a", Some(t(10))));
    assert_eq!((keys[1].kid(), keys[1].retired_at()), ("b", None));
    assert_eq!(keys[1].secret_material(), &[1u8; 48][..]);
    assert_eq!(keys[1].algorithm(), Algorithm::EdDSA);
    // A kid that exists already is a conflict, and nothing changes.
    let e = store
        .replace_active(Some("b"), t(20), &key("a", 20))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Conflict);
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys[1].retired_at(), None);
    // One retired key by kid; never the current one.
    assert!(!store.delete_retired_key("b").await.unwrap());
    assert!(!store.delete_retired_key("zz").await.unwrap());
    assert!(
        store
            .replace_active(Some("b"), t(12), &key("c", 12))
            .await
            .unwrap()
    );
    assert!(store.delete_retired_key("b").await.unwrap());
    assert!(
        store
            .replace_active(Some("c"), t(13), &key("b", 13))
            .await
            .unwrap()
    );
    assert!(store.delete_retired_key("c").await.unwrap());
    // Deleting retired keys only.
    assert_eq!(store.delete_retired_before(t(10)).await.unwrap(), 0);
    assert_eq!(store.delete_retired_before(t(11)).await.unwrap(), 1);
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid(), "b");
}

/// Every refresh rotates the refresh token, consumes the old one in the store and keeps the
/// session and the family's claims.
pub async fn refresh_rotates_and_keeps_the_session(store: SharedStore) {
    let clock = clock();
    let issuer = issuer(store.clone(), store.clone(), &clock, |r| r);
    let first = issuer.login(&login_request()).await.unwrap();
    let sid = first.session_id().to_owned();
    let access = claims(first.access_token().as_str());
    assert_eq!(access["sid"], sid.as_str());
    assert_eq!(access["tenant"], "acme");
    // 256 bits of randomness.
    let raw = URL_SAFE_NO_PAD
        .decode(first.refresh_token().expose_secret())
        .unwrap();
    assert_eq!(raw.len(), 32);

    clock.advance(Duration::from_secs(60));
    let second = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap();
    assert_ne!(
        second.refresh_token().expose_secret(),
        first.refresh_token().expose_secret()
    );
    assert_eq!(second.session_id(), sid);
    let access = claims(second.access_token().as_str());
    assert_eq!(access["sid"], sid.as_str());
    assert_eq!(access["sub"], "alice");
    assert_eq!(access["scope"], "orders:read");
    assert_eq!(access["tenant"], "acme");
    assert_eq!(access["client_id"], "app-web");
    assert_ne!(access["jti"], claims(first.access_token().as_str())["jti"]);
    // The first token is consumed in the store, at the refresh time.
    let (old, family) = store
        .find(&RefreshTokenHash::of(first.refresh_token().expose_secret()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.consumed_at, Some(clock.now()));
    assert_eq!(
        (family.id.as_str(), family.revoked_at),
        (sid.as_str(), None)
    );
    let third = issuer
        .refresh(second.refresh_token().expose_secret())
        .await
        .unwrap();
    assert_eq!(third.session_id(), sid);

    // Unknown and malformed tokens.
    for bad in ["", "nope", &"x".repeat(600)] {
        assert_eq!(
            issuer.refresh(bad).await.unwrap_err().kind(),
            IssueErrorKind::InvalidToken
        );
    }
}

/// A consumed token presented again revokes its whole family (the newest token included) and
/// no other.
pub async fn reuse_revokes_the_family(store: SharedStore) {
    let clock = clock();
    let issuer = issuer(store.clone(), store, &clock, |r| r);
    let first = issuer.login(&login_request()).await.unwrap();
    let other_session = issuer.login(&login_request()).await.unwrap();
    let second = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    // The stolen first token comes back.
    let err = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::TokenReused);
    assert_eq!(err.to_auth_error().status(), http::StatusCode::UNAUTHORIZED);
    // The newest token of the family is dead too.
    let err = issuer
        .refresh(second.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    // Another login of the same user is not affected.
    issuer
        .refresh(other_session.refresh_token().expose_secret())
        .await
        .unwrap();
}

/// Holds the first two `find` calls (counted across clones) until both have arrived, so two
/// refreshes with one token both pass every check before either consumes it.
#[derive(Clone)]
struct Racing {
    inner: SharedStore,
    barrier: Arc<Barrier>,
    finds: Arc<AtomicUsize>,
}

impl RefreshTokenStore for Racing {
    fn create_family<'a>(
        &'a self,
        family: &'a RefreshFamily,
        token: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, ()> {
        self.inner.create_family(family, token)
    }
    fn find<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
    ) -> StoreFuture<'a, Option<(RefreshTokenRecord, RefreshFamily)>> {
        Box::pin(async move {
            let found = self.inner.find(hash).await;
            if self.finds.fetch_add(1, Ordering::SeqCst) < 2 {
                self.barrier.wait().await;
            }
            found
        })
    }
    fn consume<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
        at: SystemTime,
        next: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, bool> {
        self.inner.consume(hash, at, next)
    }
    fn revoke_family<'a>(&'a self, family_id: &'a str, at: SystemTime) -> StoreFuture<'a, bool> {
        self.inner.revoke_family(family_id, at)
    }
    fn delete_families_ended_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        self.inner.delete_families_ended_before(before)
    }
    fn revoke_subject<'a>(&'a self, subject: &'a str, at: SystemTime) -> StoreFuture<'a, u64> {
        self.inner.revoke_subject(subject, at)
    }
}

struct Race {
    issuer: JwtIssuer,
    clock: ManualClock,
    winner: String,
    loser: IssueErrorKind,
    old: String,
}

/// Two issuers, on `stores[0]` and `stores[1]` (one store twice, or two connections to one
/// database), refresh with the same token at once, both past `find` before either consumes.
async fn race(stores: [SharedStore; 2], reuse_interval: Duration) -> Race {
    let clock = clock();
    let barrier = Arc::new(Barrier::new(2));
    let finds = Arc::new(AtomicUsize::new(2)); // disarmed for the login
    let [a, b] = stores.map(|store| {
        let racing = Racing {
            inner: store.clone(),
            barrier: barrier.clone(),
            finds: finds.clone(),
        };
        issuer(store, racing, &clock, |r| r.reuse_interval(reuse_interval))
    });
    let pair = a.login(&login_request()).await.unwrap();
    let old = pair.refresh_token().expose_secret().to_owned();
    finds.store(0, Ordering::SeqCst);
    let refresh = |issuer: &JwtIssuer| {
        let (issuer, token) = (issuer.clone(), old.clone());
        tokio::spawn(async move { issuer.refresh(&token).await })
    };
    // Spawned, so they run at once; then awaited in turn.
    let (ra, rb) = (refresh(&a), refresh(&b));
    let results = [ra.await.unwrap(), rb.await.unwrap()];
    // Both passed `find` before either consumed: the store's atomic consume decided.
    assert!(finds.load(Ordering::SeqCst) >= 2);
    let winners: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|p| p.refresh_token().expose_secret().to_owned())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one refresh wins: {results:?}");
    let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    Race {
        issuer: a,
        clock,
        winner: winners[0].clone(),
        loser: loser.kind(),
        old,
    }
}

/// Strict mode: of two concurrent refreshes with one token exactly one wins, the other is
/// reuse, and the family ends (the winner's token is refused). Needs a multi-thread runtime.
pub async fn concurrent_refresh_strict(stores: [SharedStore; 2]) {
    let r = race(stores, Duration::ZERO).await;
    assert_eq!(r.loser, IssueErrorKind::TokenReused);
    let err = r.issuer.refresh(&r.winner).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
}

/// With a reuse interval of 5 s: exactly one wins, the other gets a plain refusal and the
/// family lives; past the interval the old token is reuse and ends the family. Needs a
/// multi-thread runtime.
pub async fn concurrent_refresh_with_reuse_interval(stores: [SharedStore; 2]) {
    let r = race(stores, Duration::from_secs(5)).await;
    assert_eq!(r.loser, IssueErrorKind::InvalidToken);
    // Within the interval, again: a plain 401, the family lives.
    r.clock.advance(Duration::from_secs(4));
    let err = r.issuer.refresh(&r.old).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    let next = r.issuer.refresh(&r.winner).await.unwrap();
    // Past the interval, the old token is reuse: the family ends.
    r.clock.advance(Duration::from_secs(2));
    let err = r.issuer.refresh(&r.old).await.unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::TokenReused);
    let err = r
        .issuer
        .refresh(next.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
}

/// [`RefreshTokenStore::consume`] called at once through `a` and `b` (two connections to one
/// database) with one token, 20 times: exactly one wins and only its next token exists. A
/// revoked family's live token cannot be consumed; a duplicate token hash is a conflict.
/// Needs a multi-thread runtime.
pub async fn consume_is_atomic(a: SharedStore, b: SharedStore) {
    let record = |token: &str, family: &str| {
        RefreshTokenRecord::new(
            RefreshTokenHash::of(token),
            family.into(),
            t(0),
            t(60),
            None,
        )
    };
    let family = |id: &str| {
        RefreshFamily::new(
            id.into(),
            "alice".into(),
            "app-web".into(),
            String::new(),
            serde_json::json!({"tenant": "acme"}),
            t(0),
            t(3600),
            None,
        )
    };
    for round in 0..20 {
        let fam = format!("fam-{round}");
        let first = format!("first-{round}");
        a.create_family(&family(&fam), &record(&first, &fam))
            .await
            .unwrap();
        let na = record(&format!("a-{round}"), &fam);
        let nb = record(&format!("b-{round}"), &fam);
        let hash = RefreshTokenHash::of(&first);
        let consume = |store: &SharedStore, next: &RefreshTokenRecord| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move { store.consume(&hash, t(0), &next).await })
        };
        let (ra, rb) = (consume(&a, &na), consume(&b, &nb));
        let wins = [ra.await.unwrap().unwrap(), rb.await.unwrap().unwrap()];
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}");
        // Only the winner's next token exists.
        let a_exists = a.find(&na.hash).await.unwrap().is_some();
        let b_exists = a.find(&nb.hash).await.unwrap().is_some();
        assert_eq!([a_exists, b_exists], wins, "round {round}");
    }
    // A revoked family's live token cannot be consumed, and nothing is inserted.
    let mut live = None;
    for token in ["a-0", "b-0"] {
        let hash = RefreshTokenHash::of(token);
        if let Some((r, _)) = a.find(&hash).await.unwrap() {
            assert_eq!(r.consumed_at, None);
            live = Some(hash);
        }
    }
    let live = live.unwrap();
    assert!(a.revoke_family("fam-0", t(0)).await.unwrap());
    let late = record("late", "fam-0");
    assert!(!a.consume(&live, t(0), &late).await.unwrap());
    assert!(a.find(&late.hash).await.unwrap().is_none());
    // A duplicate token hash is a conflict.
    let err = a
        .create_family(&family("fam-x"), &record("first-1", "fam-x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
}

/// A token unused for longer than the idle timeout is refused; a family older than its
/// lifetime is refused however active.
pub async fn idle_timeout_and_family_lifetime(store: SharedStore) {
    let clock = clock();
    let issuer = issuer(store.clone(), store, &clock, |r| {
        r.family_lifetime(Duration::from_secs(3600))
            .idle_timeout(Duration::from_secs(600))
    });
    // Idle: unused for longer than the idle timeout.
    let idle = issuer.login(&login_request()).await.unwrap();
    assert_eq!(
        idle.refresh_token().expires_at(),
        clock.now() + Duration::from_secs(600)
    );
    clock.advance(Duration::from_secs(599));
    let fresh = issuer
        .refresh(idle.refresh_token().expose_secret())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(600));
    let err = issuer
        .refresh(fresh.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);

    // Absolute: active all along, but the family ends after an hour.
    let mut pair = issuer.login(&login_request()).await.unwrap();
    for _ in 0..6 {
        clock.advance(Duration::from_secs(590));
        pair = issuer
            .refresh(pair.refresh_token().expose_secret())
            .await
            .unwrap();
    }
    // 3540 s in; the token's own expiry is capped by the family's end.
    clock.advance(Duration::from_secs(60));
    let err = issuer
        .refresh(pair.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
}

/// Logout (by refresh token) and `revoke_session` (by session id) revoke the family; ended
/// sessions are purged with their tokens after `keep`, live ones stay.
pub async fn logout_revokes_the_family(store: SharedStore) {
    let clock = clock();
    let issuer = issuer(store.clone(), store.clone(), &clock, |r| r);
    let first = issuer.login(&login_request()).await.unwrap();
    let second = issuer
        .refresh(first.refresh_token().expose_secret())
        .await
        .unwrap();
    assert!(
        issuer
            .logout(second.refresh_token().expose_secret())
            .await
            .unwrap()
    );
    let err = issuer
        .refresh(second.refresh_token().expose_secret())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidToken);
    assert!(!issuer.logout("unknown").await.unwrap());
    assert!(!issuer.logout("").await.unwrap());

    // By session id.
    let other = issuer.login(&login_request()).await.unwrap();
    assert!(issuer.revoke_session(other.session_id()).await.unwrap());
    assert!(
        issuer
            .refresh(other.refresh_token().expose_secret())
            .await
            .is_err()
    );
    assert!(!issuer.revoke_session("nope").await.unwrap());
    let alive = issuer.login(&login_request()).await.unwrap();

    // Ended sessions are purged after `keep`.
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        issuer
            .purge_ended_sessions(Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        issuer
            .purge_ended_sessions(Duration::from_secs(60))
            .await
            .unwrap(),
        2
    );
    for gone in [&first, &second, &other] {
        let hash = RefreshTokenHash::of(gone.refresh_token().expose_secret());
        assert!(store.find(&hash).await.unwrap().is_none());
    }
    issuer
        .refresh(alive.refresh_token().expose_secret())
        .await
        .unwrap();
}

/// "Log out everywhere" with a [`RevocationList`] on `revocations`: every session of the
/// subject in `store` ends (another subject's lives), every access token issued to it until
/// now is refused (the verified-token cache included), a token issued a second later is
/// accepted; a second list loading from the revocation store refuses the same tokens.
#[cfg(feature = "revocation")]
pub async fn logout_everywhere(store: SharedStore, revocations: Arc<dyn RevocationStore>) {
    let clock = clock();
    let list = RevocationList::builder(revocations.clone())
        .clock(clock.clone())
        .poll_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    list.load().await.unwrap();
    let issuer = JwtIssuer::builder(store.clone())
        .issuer("https://app.example")
        .audience("app-api")
        .client_id("app-web")
        .clock(clock.clone())
        .refresh_tokens(RefreshTokens::new(store.clone()))
        .revocation_list(list.clone())
        .build()
        .unwrap();
    let verifier = |list: &RevocationList| {
        JwtAuthenticator::builder()
            .issuer(
                TrustedIssuer::new("https://app.example")
                    .audience("app-api")
                    .key_source(issuer.clone())
                    .algorithms([Algorithm::EdDSA]),
            )
            .clock(clock.clone())
            .verified_token_cache(tower_auth_core::CacheConfig::default())
            .revocation(list.clone())
            .build()
            .unwrap()
    };
    let auth = verifier(&list);
    let laptop = issuer.login(&login_request()).await.unwrap();
    let phone = issuer.login(&login_request()).await.unwrap();
    let bob = issuer.login(&TokenRequest::new("bob")).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let refreshed = issuer
        .refresh(phone.refresh_token().expose_secret())
        .await
        .unwrap();
    for pair in [&laptop, &refreshed, &bob] {
        auth.verify(pair.access_token().as_str()).await.unwrap();
    }
    assert!(auth.cached_tokens() >= 3);

    clock.advance(Duration::from_secs(1));
    assert_eq!(issuer.logout_everywhere("alice").await.unwrap(), 2);
    for pair in [&laptop, &phone, &refreshed] {
        let e = auth.verify(pair.access_token().as_str()).await.unwrap_err();
        assert_eq!(e.description(), "token revoked");
    }
    for token in [&laptop, &refreshed] {
        let e = issuer
            .refresh(token.refresh_token().expose_secret())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), IssueErrorKind::InvalidToken);
    }
    auth.verify(bob.access_token().as_str()).await.unwrap();
    issuer
        .refresh(bob.refresh_token().expose_secret())
        .await
        .unwrap();
    // Nothing left to revoke the second time; the cut-off moves to now.
    assert_eq!(issuer.logout_everywhere("alice").await.unwrap(), 0);

    // A new login, a second later, works.
    clock.advance(Duration::from_secs(1));
    let again = issuer.login(&login_request()).await.unwrap();
    auth.verify(again.access_token().as_str()).await.unwrap();
    issuer
        .refresh(again.refresh_token().expose_secret())
        .await
        .unwrap();

    // Another process loading from the store refuses the same tokens.
    let other = RevocationList::builder(revocations)
        .clock(clock.clone())
        .build()
        .unwrap();
    other.load().await.unwrap();
    let auth = verifier(&other);
    auth.verify(laptop.access_token().as_str())
        .await
        .unwrap_err();
    auth.verify(again.access_token().as_str()).await.unwrap();
}
