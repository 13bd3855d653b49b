//! The scheme over a real SQLite file.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use sqlx::Connection;

use super::*;
use crate::{NewKey, SqliteStore};

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("keys.db").display())
}

#[tokio::test]
async fn works_end_to_end_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::wrap(SqliteStore::connect(&url(&dir)).await.unwrap());
    let auth = builder(&store).build().unwrap();
    let created = auth
        .admin()
        .create(NewKey::new("alice").scopes(["read"]))
        .await
        .unwrap();
    let (svc, _) = stack(auth.clone());
    let key = created.key.expose_secret();
    for _ in 0..5 {
        assert_eq!(status(&svc, bearer(key)).await, StatusCode::OK);
    }
    assert_eq!(store.finds(), 1);
    auth.admin().revoke(&created.record.id).await.unwrap();
    assert_eq!(status(&svc, bearer(key)).await, StatusCode::UNAUTHORIZED);
    auth.flush_last_used().await.unwrap();
    assert!(
        store
            .get(&created.record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_lock_on_the_database_is_503_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let store = TestStore::wrap(SqliteStore::connect(&url).await.unwrap());
    let auth = builder(&store)
        .store_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let created = auth.admin().create(NewKey::new("alice")).await.unwrap();
    let key = created.key.expose_secret();
    let (svc, calls) = stack(auth);

    // Another connection takes an exclusive lock: readers are shut out.
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    for _ in 0..2 {
        let res = tokio::time::timeout(Duration::from_secs(10), svc.clone().oneshot(bearer(key)))
            .await
            .expect("answered by the deadline")
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "5");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "never 2xx, never the inner service"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    locker.close().await.unwrap();

    // Back: the next request goes to the store again and passes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match status(&svc, bearer(key)).await {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(tokio::time::Instant::now() < deadline, "never recovered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
}

#[tokio::test]
async fn the_database_file_never_holds_a_plain_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&url(&dir)).await.unwrap();
    let admin = crate::ApiKeys::builder(store.clone())
        .prefix("sk_test")
        .build()
        .unwrap();
    let mut keys = Vec::new();
    for i in 0..20 {
        let c = admin
            .create(NewKey::new(format!("owner-{i}")).scopes(["read"]))
            .await
            .unwrap();
        keys.push(c);
    }
    let rotated = admin
        .rotate(&keys[0].record.id, Duration::from_secs(60))
        .await
        .unwrap();
    keys.push(rotated);
    store.close().await;

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let hasher = crate::key::KeyHasher::new(None).unwrap();
    for c in &keys {
        let key = c.key.expose_secret();
        let random = &key["sk_test_".len().."sk_test_".len() + 30];
        assert!(!contains(key.as_bytes()), "plain key in the database file");
        assert!(
            !contains(random.as_bytes()),
            "random part in the database file"
        );
        // The check looks at the right bytes: the record and the hash are there.
        assert!(contains(c.record.id.as_bytes()));
        assert!(contains(hasher.hash(key).as_bytes()));
    }
}

/// How long a change made by another process may take to reach a running layer (the feed
/// polls every 100 ms).
const SEEN_WITHIN: Duration = Duration::from_secs(1);

/// Asks `svc` with `key` until it answers `want`, for at most [`SEEN_WITHIN`].
async fn seen<S>(svc: &S, key: &str, want: StatusCode) -> bool
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible> + Clone,
{
    let deadline = tokio::time::Instant::now() + SEEN_WITHIN;
    loop {
        if status(svc, bearer(key)).await == want {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A server (a store, an authenticator listening to its change feed, a stack) and another
/// process's administration API over its own store on the same file.
struct TwoProcesses {
    _dir: tempfile::TempDir,
    url: String,
    store: TestStore,
    auth: ApiKeyAuthenticator,
    other: crate::ApiKeys,
}

async fn two_processes() -> TwoProcesses {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let store = TestStore::wrap_listening(SqliteStore::connect(&url).await.unwrap());
    let auth = builder(&store)
        .last_used_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let other = crate::ApiKeys::builder(SqliteStore::connect(&url).await.unwrap())
        .prefix("sk_test")
        .build()
        .unwrap();
    TwoProcesses {
        _dir: dir,
        url,
        store,
        auth,
        other,
    }
}

#[tokio::test]
async fn revocations_and_rotations_by_another_process_reach_the_running_layer() {
    let p = two_processes().await;
    let (svc, _) = stack(p.auth.clone());
    let a = p.other.create(NewKey::new("a")).await.unwrap();
    let b = p.other.create(NewKey::new("b")).await.unwrap();
    let c = p.other.create(NewKey::new("c")).await.unwrap();
    for k in [&a.key, &b.key, &c.key] {
        assert_eq!(
            status(&svc, bearer(k.expose_secret())).await,
            StatusCode::OK
        );
    }
    let finds = p.store.finds();

    // Revoked elsewhere: refused here, without waiting for the 30 s TTL.
    p.other.revoke(&a.record.id).await.unwrap();
    assert!(seen(&svc, a.key.expose_secret(), StatusCode::UNAUTHORIZED).await);

    // Rotated elsewhere without a grace period: the old key's new expiry applies here, the new
    // key works.
    let new = p.other.rotate(&b.record.id, Duration::ZERO).await.unwrap();
    assert!(seen(&svc, b.key.expose_secret(), StatusCode::UNAUTHORIZED).await);
    assert!(seen(&svc, new.key.expose_secret(), StatusCode::OK).await);

    // Exactly the changed keys were dropped: c is still served from the cache.
    let before = p.store.finds();
    assert_eq!(
        status(&svc, bearer(c.key.expose_secret())).await,
        StatusCode::OK
    );
    assert_eq!(p.store.finds(), before);
    assert!(p.store.finds() > finds);
}

#[tokio::test]
async fn a_key_created_by_another_process_is_announced_and_accepted() {
    let p = two_processes().await;
    let mut feed = SqliteStore::connect(&p.url)
        .await
        .unwrap()
        .invalidations()
        .unwrap();
    let (svc, _) = stack(p.auth.clone());
    let created = p.other.create(NewKey::new("new")).await.unwrap();
    assert!(seen(&svc, created.key.expose_secret(), StatusCode::OK).await);
    // The feed names it, so that whatever holds it as unknown drops that.
    let hash = crate::key::KeyHasher::new(None)
        .unwrap()
        .hash(created.key.expose_secret());
    let next = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .unwrap();
    assert_eq!(next, Some(crate::Invalidation::Created(hash)));
}

#[tokio::test]
async fn the_servers_own_writes_drop_nothing() {
    let p = two_processes().await;
    let (svc, _) = stack(p.auth.clone());
    let a = p.other.create(NewKey::new("a")).await.unwrap();
    let b = p.other.create(NewKey::new("b")).await.unwrap();
    for k in [&a.key, &b.key] {
        assert_eq!(
            status(&svc, bearer(k.expose_secret())).await,
            StatusCode::OK
        );
    }
    let finds = p.store.finds();
    // Last-used times written behind, several times: commits the feed sees, but no changes.
    for _ in 0..3 {
        assert_eq!(
            status(&svc, bearer(a.key.expose_secret())).await,
            StatusCode::OK
        );
        p.auth.flush_last_used().await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        p.store
            .get(&a.record.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );
    // A change after them, once seen, shows that the feed read past the writes.
    p.other.revoke(&b.record.id).await.unwrap();
    assert!(seen(&svc, b.key.expose_secret(), StatusCode::UNAUTHORIZED).await);
    assert_eq!(
        p.store.finds(),
        finds + 1,
        "only the revoked key was read again"
    );
    assert_eq!(
        status(&svc, bearer(a.key.expose_secret())).await,
        StatusCode::OK
    );
    assert_eq!(p.store.finds(), finds + 1, "a is still cached");
}

#[tokio::test]
async fn the_feed_survives_vacuum() {
    let p = two_processes().await;
    let (svc, _) = stack(p.auth.clone());
    let a = p.other.create(NewKey::new("a")).await.unwrap();
    let b = p.other.create(NewKey::new("b")).await.unwrap();
    for k in [&a.key, &b.key] {
        assert_eq!(
            status(&svc, bearer(k.expose_secret())).await,
            StatusCode::OK
        );
    }
    p.other.revoke(&a.record.id).await.unwrap();
    assert!(seen(&svc, a.key.expose_secret(), StatusCode::UNAUTHORIZED).await);
    let mut conn = sqlx::SqliteConnection::connect(&p.url).await.unwrap();
    sqlx::raw_sql("VACUUM").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    p.other.revoke(&b.record.id).await.unwrap();
    assert!(seen(&svc, b.key.expose_secret(), StatusCode::UNAUTHORIZED).await);
}

#[tokio::test]
async fn bad_feed_settings_name_the_setting_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteStore::builder(url(&dir))
        .poll_interval(Duration::from_millis(1))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), crate::StoreErrorKind::Setup);
    assert!(e.to_string().contains("`poll_interval` = 1ms"), "{e}");
    let e = SqliteStore::builder(url(&dir))
        .change_log_retention(Duration::from_secs(1))
        .connect()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`change_log_retention` = 1s"), "{e}");
}

#[tokio::test]
async fn each_change_is_logged_once_and_old_entries_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&url(&dir)).await.unwrap();
    let db = sqlx::SqlitePool::connect(&url(&dir)).await.unwrap();
    let admin = crate::ApiKeys::builder(store.clone())
        .prefix("sk_test")
        .build()
        .unwrap();
    // An entry from long ago: pruned by the next change.
    sqlx::query(
        "INSERT INTO tower_auth_api_key_changes (kind, key_id, key_hash, created_at) \
         VALUES ('revoked', 'key_old', x'00', 0)",
    )
    .execute(&db)
    .await
    .unwrap();
    let a = admin.create(NewKey::new("a")).await.unwrap();
    admin
        .rotate(&a.record.id, Duration::from_secs(60))
        .await
        .unwrap();
    admin.revoke(&a.record.id).await.unwrap();
    admin.revoke("key_unknown").await.unwrap_err();
    store
        .record_last_used(&[(a.record.id.clone(), SystemTime::now())])
        .await
        .unwrap();
    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, key_id FROM tower_auth_api_key_changes ORDER BY seq")
            .fetch_all(&db)
            .await
            .unwrap();
    let kinds: Vec<(&str, bool)> = kinds
        .iter()
        .map(|(k, id)| (k.as_str(), *id == a.record.id))
        .collect();
    assert_eq!(
        kinds,
        [
            ("created", true),
            ("rotated", true),
            ("created", false),
            ("revoked", true)
        ]
    );
}

/// What an application embedding the CLI does: `keys create` against the database file, then
/// a server process (another store instance, another authenticator) accepts the key.
#[cfg(feature = "cli")]
#[tokio::test]
async fn a_key_created_by_the_cli_is_accepted_by_a_server_on_the_same_file() {
    use clap::Parser;

    #[derive(clap::Parser)]
    struct App {
        #[command(subcommand)]
        keys: crate::cli::KeysCommand,
    }

    let dir = tempfile::tempdir().unwrap();
    let cli_store = SqliteStore::connect(&url(&dir)).await.unwrap();
    let admin = crate::ApiKeys::builder(cli_store)
        .prefix("sk_test")
        .build()
        .unwrap();
    let mut out = Vec::new();
    App::parse_from(["keys", "create", "--owner", "alice", "--scopes", "read"])
        .keys
        .run(&admin, &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    let key = out.lines().last().unwrap().to_owned();

    let server_store = SqliteStore::connect(&url(&dir)).await.unwrap();
    let auth = ApiKeyAuthenticator::builder(server_store)
        .prefix("sk_test")
        .build()
        .unwrap();
    let (svc, _) = stack(auth);
    let res = svc.clone().oneshot(bearer(&key)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "alice");

    let id = out.lines().next().unwrap().strip_prefix("id ").unwrap();
    let mut out = Vec::new();
    App::parse_from(["keys", "revoke", id])
        .keys
        .run(&admin, &mut out)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), format!("revoked {id}\n"));
    let mut out = Vec::new();
    App::parse_from(["keys", "list"])
        .keys
        .run(&admin, &mut out)
        .await
        .unwrap();
    let row = String::from_utf8(out).unwrap();
    let row: Vec<&str> = row.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!(row[0], id);
    assert_ne!(row[5], "-", "revoked time shown");
}
