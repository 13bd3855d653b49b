//! The filter of known keys over a real SQLite file: unknown well-formed keys are refused
//! without a store query, keys created elsewhere are admitted once the change feed reports
//! them, and the filter is rebuilt from the store and fails open.

use std::time::Duration;

use http::StatusCode;
use sqlx::Connection;

use super::*;
use crate::key::{KeyFormat, KeyHasher};
use crate::{ApiKeys, NewKey, SqliteStore};

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("keys.db").display())
}

/// `n` distinct well-formed `sk_test` keys (valid checksums) that no store holds.
fn unknown_keys(n: usize) -> Vec<String> {
    let format = KeyFormat::new("sk_test", None).unwrap();
    (0..n)
        .map(|_| format.generate().unwrap().expose_secret().to_owned())
        .collect()
}

/// Waits (at most 5 s) until `auth`'s filter is loaded.
async fn loaded(auth: &ApiKeyAuthenticator) -> bool {
    for _ in 0..500 {
        if auth.key_filter_loaded() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Asks `svc` with `key` until it answers `want`, for at most 2 s (the feed polls every
/// 100 ms).
async fn seen<S>(svc: &S, key: &str, want: StatusCode) -> bool
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
{
    for _ in 0..200 {
        if status(svc, bearer(key)).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

struct Server {
    dir: tempfile::TempDir,
    store: TestStore,
    auth: ApiKeyAuthenticator,
}

async fn server(
    configure: impl FnOnce(ApiKeyAuthenticatorBuilder) -> ApiKeyAuthenticatorBuilder,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::wrap_filtered(SqliteStore::connect(&url(&dir)).await.unwrap());
    let auth = configure(builder(&store)).build().unwrap();
    Server { dir, store, auth }
}

/// Another process's administration API on the same file.
async fn other_process(dir: &tempfile::TempDir) -> ApiKeys {
    ApiKeys::builder(SqliteStore::connect(&url(dir)).await.unwrap())
        .prefix("sk_test")
        .build()
        .unwrap()
}

#[tokio::test]
async fn unknown_keys_never_reach_the_store() {
    let s = server(|b| b).await;
    let real = s.auth.admin().create(NewKey::new("alice")).await.unwrap();
    assert!(loaded(&s.auth).await, "filter loaded");
    let (svc, calls) = stack(s.auth.clone());
    let before = s.store.finds();
    for key in unknown_keys(2_000) {
        assert_eq!(status(&svc, bearer(&key)).await, StatusCode::UNAUTHORIZED);
    }
    // 0.1 % false positives: a couple may be looked up, not thousands.
    let looked_up = s.store.finds() - before;
    assert!(
        looked_up <= 10,
        "{looked_up} of 2000 unknown keys reached the store"
    );
    // Nor do they fill the cache of real keys.
    assert!(s.auth.cached_entries().await <= 10);
    assert_eq!(
        status(&svc, bearer(real.key.expose_secret())).await,
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_the_filter_every_unknown_key_is_a_store_query() {
    let s = server(|b| b.key_filter(false)).await;
    let (svc, _) = stack(s.auth.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!s.auth.key_filter_loaded());
    for key in unknown_keys(100) {
        assert_eq!(status(&svc, bearer(&key)).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(s.store.finds(), 100);
}

#[tokio::test]
async fn a_key_created_by_another_process_is_admitted_once_the_feed_reports_it() {
    let s = server(|b| b).await;
    assert!(loaded(&s.auth).await, "filter loaded");
    let (svc, _) = stack(s.auth.clone());
    let other = other_process(&s.dir).await;
    let created = other.create(NewKey::new("bob")).await.unwrap();
    assert!(seen(&svc, created.key.expose_secret(), StatusCode::OK).await);
    // A rotation elsewhere creates a key too.
    let rotated = other
        .rotate(&created.record.id, Duration::ZERO)
        .await
        .unwrap();
    assert!(seen(&svc, rotated.key.expose_secret(), StatusCode::OK).await);
    assert!(
        s.auth.key_filter_loaded(),
        "admitted by the feed, not a reload"
    );
}

#[tokio::test]
async fn keys_created_through_admin_are_admitted_at_once() {
    let s = server(|b| b).await;
    assert!(loaded(&s.auth).await, "filter loaded");
    let (svc, _) = stack(s.auth.clone());
    let admin = s.auth.admin();
    let created = admin.create(NewKey::new("carol")).await.unwrap();
    assert_eq!(
        status(&svc, bearer(created.key.expose_secret())).await,
        StatusCode::OK
    );
    let rotated = admin
        .rotate(&created.record.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        status(&svc, bearer(rotated.key.expose_secret())).await,
        StatusCode::OK
    );
}

/// Inserts a key with plain SQL, past the change log: no feed reports it.
async fn insert_by_hand(dir: &tempfile::TempDir, key: &str) {
    let hash = KeyHasher::new(None).unwrap().hash(key);
    let mut conn = sqlx::SqliteConnection::connect(&url(dir)).await.unwrap();
    sqlx::query(
        "INSERT INTO tower_auth_api_keys (id, key_hash, owner, scopes, created_at) \
         VALUES ('key_by_hand', ?, 'dave', '', 1700000000000)",
    )
    .bind(&hash.as_bytes()[..])
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_filter_is_rebuilt_from_the_store_every_refresh() {
    let s = server(|b| b.key_filter_refresh(Duration::from_secs(1))).await;
    assert!(loaded(&s.auth).await, "filter loaded");
    let (svc, _) = stack(s.auth.clone());
    let key = unknown_keys(1).remove(0);
    insert_by_hand(&s.dir, &key).await;
    // Not reported: refused by the filter, without a store query...
    let before = s.store.finds();
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.store.finds(), before);
    // ...until the next rebuild reads it from the store.
    for _ in 0..300 {
        if status(&svc, bearer(&key)).await == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("key inserted by hand not admitted after the filter's refresh");
}

#[tokio::test]
async fn invalidate_cache_turns_the_filter_off_until_it_is_rebuilt() {
    let s = server(|b| b).await;
    assert!(loaded(&s.auth).await, "filter loaded");
    let (svc, _) = stack(s.auth.clone());
    let key = unknown_keys(1).remove(0);
    insert_by_hand(&s.dir, &key).await;
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::UNAUTHORIZED);
    // Bulk changes by another process: every key goes to the store until the rebuild.
    s.auth.invalidate_cache();
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::OK);
    assert!(loaded(&s.auth).await, "filter rebuilt");
}

#[tokio::test]
async fn a_filter_that_cannot_load_lets_every_key_through_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::wrap_filtered(SqliteStore::connect(&url(&dir)).await.unwrap());
    store.fail_hashes(true);
    let auth = builder(&store).build().unwrap();
    let (svc, _) = stack(auth.clone());
    let key = unknown_keys(1).remove(0);
    insert_by_hand(&dir, &key).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!auth.key_filter_loaded());
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::OK);
    let unknown = unknown_keys(1).remove(0);
    let before = store.finds();
    assert_eq!(
        status(&svc, bearer(&unknown)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        store.finds(),
        before + 1,
        "looked up, as without the filter"
    );
    // Once the store answers, the retry loads it.
    store.fail_hashes(false);
    assert!(
        loaded(&auth).await,
        "filter loaded after the store recovered"
    );
}

#[tokio::test]
async fn bulk_loaded_keys_are_found_and_pass_the_filter() {
    use crate::store::testing::numbered_key;

    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::connect(&url(&dir)).await.unwrap();
    sqlite
        .bulk_insert((0..2_500).map(|n| numbered_key("sk_test", n).1))
        .await
        .unwrap();
    // Same number, same key; each in the store under its own id.
    assert_eq!(numbered_key("sk_test", 7), numbered_key("sk_test", 7));
    let (key, stored) = numbered_key("sk_test", 2_499);
    assert_eq!(
        sqlite.find_by_hash(&stored.hash).await.unwrap(),
        Some(stored.record)
    );
    // A duplicate rolls the whole load back.
    let err = sqlite
        .bulk_insert(
            (2_500..2_600)
                .chain([0])
                .map(|n| numbered_key("sk_test", n).1),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), crate::StoreErrorKind::Conflict);
    assert_eq!(sqlite.key_hashes().await.unwrap().unwrap().len(), 2_500);

    let store = TestStore::wrap_filtered(sqlite);
    let auth = builder(&store).build().unwrap();
    assert!(loaded(&auth).await, "filter loaded");
    let (svc, _) = stack(auth);
    assert_eq!(status(&svc, bearer(&key)).await, StatusCode::OK);
    let (first, _) = numbered_key("sk_test", 0);
    assert_eq!(status(&svc, bearer(&first)).await, StatusCode::OK);
    let (never_loaded, _) = numbered_key("sk_test", 2_500);
    assert_eq!(
        status(&svc, bearer(&never_loaded)).await,
        StatusCode::UNAUTHORIZED
    );
}
