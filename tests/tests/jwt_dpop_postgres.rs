//! The shared DPoP replay cache on PostgreSQL: two instances on one database refuse each
//! other's proofs, expired entries are taken over, and a store that is down fails closed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, SystemTime};

use tower_auth_jwt::dpop::{DpopReplayStore, PostgresReplayStore};
use tower_auth_tests::PgDatabase;

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn two_instances_share_the_replay_cache_and_a_store_down_fails_closed() {
    let db = PgDatabase::create().await;
    let one = PostgresReplayStore::connect(&db.url).await.unwrap();
    let two = PostgresReplayStore::connect(&db.url).await.unwrap();
    let now = SystemTime::now();
    let secs = Duration::from_secs;
    let key = [9u8; 32];
    assert!(one.insert(key, now + secs(60), now).await.unwrap());
    assert!(
        !two.insert(key, now + secs(60), now + secs(1))
            .await
            .unwrap()
    );
    assert!(
        !one.insert(key, now + secs(60), now + secs(59))
            .await
            .unwrap()
    );
    // Expired: a new proof with the same identifier may take the entry over.
    assert!(
        two.insert(key, now + secs(200), now + secs(60))
            .await
            .unwrap()
    );
    assert!(
        !one.insert(key, now + secs(200), now + secs(61))
            .await
            .unwrap()
    );
    // Another key is independent.
    assert!(one.insert([1u8; 32], now + secs(60), now).await.unwrap());

    // Down: an error, which the authenticator answers with 503 (its unit tests), never `true`.
    two.close().await;
    assert!(two.insert([2u8; 32], now + secs(60), now).await.is_err());
    one.close().await;
    db.drop_database().await;
}
