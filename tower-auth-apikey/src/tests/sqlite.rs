//! The scheme over a real SQLite file.

use std::time::Duration;

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
