use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime};

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};
use tower_auth_core::ConfigError;
use tower_auth_core::sql::{
    ChangePoller, Changes, Migrator, change_log_head, migrate_sqlite, open_sqlite, prune_change_log,
};

use super::sql::{
    Migration, bind_key, db_error, fetch_key, fetch_records, key_hashes, migrator, millis,
    store_error, write_limits,
};
use super::{
    Invalidation, InvalidationFeed, InvalidationFuture, KeyStore, StoreError, StoreErrorKind,
    StoreFuture,
};
use crate::limit::LimitsUpdate;
use crate::{KeyHash, KeyRecord, StoredKey, telemetry};

const MIGRATOR: Migrator = migrator(&[
    Migration {
        version: 1,
        description: "create tower_auth_api_keys",
        sql: include_str!("../../migrations/sqlite/0001_create_api_keys.sql"),
    },
    Migration {
        version: 2,
        description: "create tower_auth_api_key_changes",
        sql: include_str!("../../migrations/sqlite/0002_create_api_key_changes.sql"),
    },
    Migration {
        version: 3,
        description: "add limits to tower_auth_api_keys",
        sql: include_str!("../../migrations/sqlite/0003_add_api_key_limits.sql"),
    },
]);

const COLUMNS: &str = "id, key_hash, owner, name, scopes, created_at, expires_at, revoked_at, \
                       last_used_at, metadata, rate_count, rate_period_ms, rate_burst, \
                       credits_remaining, credits_updated_at, credits_refill_count, \
                       credits_refill_period_ms";

/// The change log, written in the transaction of each change.
const CHANGES: &str = "tower_auth_api_key_changes";

/// What a change-log entry says changed; the reader drops the key's cache entry whatever the
/// kind.
#[derive(Clone, Copy)]
enum Change {
    Created,
    Revoked,
    Rotated,
    Updated,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Revoked => "revoked",
            Self::Rotated => "rotated",
            Self::Updated => "updated",
        }
    }
}

/// A [`KeyStore`] in a SQLite database (sqlx, with SQLite compiled in: nothing to install).
///
/// [`connect`](Self::connect) creates the database file if it is missing and applies this
/// crate's migrations, which are shipped inside the crate. They are recorded in their own table,
/// `tower_auth_apikey_migrations`, and the keys live in `tower_auth_api_keys`, so the same
/// database can hold the tables of the other tower-auth crates and of your application.
/// Migration runs in a `BEGIN IMMEDIATE` transaction, so processes starting together do not
/// race; a migration that changed after it was applied, or a database migrated by a newer
/// version of this crate, is an error.
///
/// The journal mode is left as the database has it (SQLite's default is a rollback journal).
/// While another connection holds an exclusive lock, lookups wait up to the authenticator's
/// store deadline and then fail: the request gets a 503.
///
/// # Changes made by other processes
///
/// Several processes may share the file: a server and the `keys` command next to it, or two
/// servers. Every change (a key created, revoked or rotated, its limits updated) is written to the change log,
/// `tower_auth_api_key_changes`, in the transaction that makes it, naming the key's hash, with
/// a sequence number that only grows. Every
/// [`ApiKeyAuthenticator`](crate::ApiKeyAuthenticator) built on a `SqliteStore` holds one more
/// connection of its own that asks SQLite every
/// [`poll_interval`](SqliteStoreBuilder::poll_interval) (100 ms) whether another connection
/// committed (`PRAGMA data_version`, which reads no table), and only then reads the log past
/// the last entry it saw and drops exactly those keys from its cache: a change made by another
/// process is seen within about 100 ms, like PostgreSQL's notifications. A revoked key is
/// refused, a rotated key's new expiry applies, and a key created elsewhere is accepted even if
/// it was presented (and cached as unknown) before, and from then on passes the authenticator's
/// [filter of known keys](crate::ApiKeyAuthenticatorBuilder::key_filter) (a key inserted with
/// plain SQL, without a log entry, passes it after its next
/// [refresh](crate::ApiKeyAuthenticatorBuilder::key_filter_refresh)). Last-used times are written behind without
/// an entry, so the server's own bookkeeping drops nothing. The feed reads from where the log
/// ended when the store was opened, reconnects by itself (with a backoff up to 5 s) without
/// losing its place, and survives `VACUUM`.
///
/// Each change also deletes the entries older than the
/// [`change_log_retention`](SqliteStoreBuilder::change_log_retention) (1 hour). A reader that
/// could not poll for longer than that (its connection failing all along, the process
/// suspended) finds entries it has not seen gone: it clears its whole cache and counts it in
/// `tower_auth_apikey_feed_behind_total`. Changes made in SQL by hand write no entry: clear
/// the cache with [`invalidate_cache`](crate::ApiKeyAuthenticator::invalidate_cache) (or wait
/// for the TTL).
///
/// ```
/// use tower_auth_apikey::{ApiKeys, NewKey, SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("sqlite://{}", dir.path().join("keys.db").display());
/// let keys = ApiKeys::builder(SqliteStore::connect(&url).await.unwrap()).build().unwrap();
/// let created = keys.create(NewKey::new("alice").scopes(["read"])).await.unwrap();
///
/// // Reopening runs no migration twice and finds the key.
/// let again = SqliteStore::connect(&url).await.unwrap();
/// let keys = ApiKeys::builder(again).build().unwrap();
/// assert_eq!(keys.get(&created.record.id).await.unwrap().unwrap().owner, "alice");
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    poll_interval: Duration,
    retention: Duration,
    /// The end of the change log when the store was opened: feeds read on from there.
    head: i64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("connections", &self.pool.size())
            .field("poll_interval", &self.poll_interval)
            .field("change_log_retention", &self.retention)
            .finish()
    }
}

impl SqliteStore {
    /// The connection pool (for the bulk loader).
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Opens (creating it if missing) the database at `url` with the default settings and
    /// migrates it.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://keys.db` (relative to the working directory),
    /// `sqlite:///var/lib/app/keys.db`, or `sqlite::memory:` for a private in-memory database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// Opens (creating it if missing) the database file at `path` and migrates it.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", path.as_ref().display());
        Self::connect(&url).await
    }

    /// Starts a builder for the change feed's settings; `url` as for
    /// [`connect`](Self::connect).
    pub fn builder(url: impl Into<String>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            url: url.into(),
            poll_interval: SqliteStoreBuilder::DEFAULT_POLL_INTERVAL,
            retention: SqliteStoreBuilder::DEFAULT_CHANGE_LOG_RETENTION,
        }
    }

    /// Closes the connections; calls made afterwards fail. The feeds' connections close with
    /// their authenticators.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction, taking the write lock at once (`BEGIN IMMEDIATE`) so that
    /// it cannot fail halfway on a lock upgrade.
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }

    /// Appends `change` of `key` to the change log and prunes it, in `tx`.
    async fn log(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        change: Change,
        key: &StoredKey,
    ) -> Result<(), StoreError> {
        let now = millis(SystemTime::now());
        sqlx::query(&format!(
            "INSERT INTO {CHANGES} (kind, key_id, key_hash, created_at) VALUES (?, ?, ?, ?)"
        ))
        .bind(change.as_str())
        .bind(&key.record.id)
        .bind(&key.hash.as_bytes()[..])
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        let retention = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        prune_change_log(tx, CHANGES, now.saturating_sub(retention))
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// Settings of a [`SqliteStore`]'s change feed. Created by [`SqliteStore::builder`].
#[must_use]
#[derive(Debug)]
pub struct SqliteStoreBuilder {
    url: String,
    poll_interval: Duration,
    retention: Duration,
}

impl SqliteStoreBuilder {
    /// Default [`poll_interval`](Self::poll_interval).
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
    /// Default [`change_log_retention`](Self::change_log_retention).
    pub const DEFAULT_CHANGE_LOG_RETENTION: Duration = Duration::from_secs(3600);

    /// How often each authenticator's feed asks whether another connection committed
    /// (default 100 ms, from 10 ms to 1 min): the bound on how long a change made by another
    /// process takes to reach this one's cache. An idle poll reads no table.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long change-log entries are kept (default 1 hour, from 1 min to 30 days). A feed
    /// that falls further behind clears its whole cache.
    pub fn change_log_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Validates the settings, opens (creating it if missing) and migrates the database.
    pub async fn connect(self) -> Result<SqliteStore, StoreError> {
        let invalid = |e: ConfigError| {
            StoreError::new(StoreErrorKind::Setup, "invalid sqlite store setting").with_source(e)
        };
        if self.poll_interval < Duration::from_millis(10)
            || self.poll_interval > Duration::from_secs(60)
        {
            return Err(invalid(ConfigError::new(
                "poll_interval",
                humantime::format_duration(self.poll_interval),
                "must be from 10ms to 1m",
            )));
        }
        if self.retention < Duration::from_secs(60)
            || self.retention > Duration::from_secs(30 * 86_400)
        {
            return Err(invalid(ConfigError::new(
                "change_log_retention",
                humantime::format_duration(self.retention),
                "must be from 1m to 30days",
            )));
        }
        let pool = open_sqlite(&self.url).await.map_err(store_error)?;
        migrate_sqlite(&pool, &MIGRATOR)
            .await
            .map_err(store_error)?;
        let head = change_log_head(&pool, CHANGES).await.map_err(store_error)?;
        Ok(SqliteStore {
            pool,
            poll_interval: self.poll_interval,
            retention: self.retention,
            head,
        })
    }
}

async fn insert(tx: &mut Transaction<'_, Sqlite>, key: &StoredKey) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO tower_auth_api_keys ({COLUMNS}) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    bind_key(sqlx::query(&sql), key)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn select_by_id(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
) -> Result<Option<StoredKey>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tower_auth_api_keys WHERE id = ?");
    fetch_key(sqlx::query(&sql).bind(id), &mut **tx).await
}

impl KeyStore for SqliteStore {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let sql = format!("SELECT {COLUMNS} FROM tower_auth_api_keys WHERE key_hash = ?");
            let query = sqlx::query(&sql).bind(&hash.as_bytes()[..]);
            Ok(fetch_key(query, &self.pool).await?.map(|k| k.record))
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let sql = format!("SELECT {COLUMNS} FROM tower_auth_api_keys WHERE id = ?");
            Ok(fetch_key(sqlx::query(&sql).bind(id), &self.pool)
                .await?
                .map(|k| k.record))
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        Box::pin(async move {
            let sql = format!("SELECT {COLUMNS} FROM tower_auth_api_keys ORDER BY created_at, id");
            fetch_records(sqlx::query(&sql), &self.pool).await
        })
    }

    fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            insert(&mut tx, key).await?;
            // A key presented before it existed may be cached as unknown.
            self.log(&mut tx, Change::Created, key).await?;
            tx.commit().await.map_err(db_error)
        })
    }

    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            sqlx::query(
                "UPDATE tower_auth_api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            )
            .bind(millis(at))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let key = select_by_id(&mut tx, id).await?;
            if let Some(key) = &key {
                self.log(&mut tx, Change::Revoked, key).await?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(key)
        })
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        old_expires_at: SystemTime,
        new: &'a StoredKey,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let updated = sqlx::query(
                "UPDATE tower_auth_api_keys SET expires_at = ? \
                 WHERE id = ? AND revoked_at IS NULL",
            )
            .bind(millis(old_expires_at))
            .bind(old_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if updated == 0 {
                // Dropping the transaction rolls it back.
                return Ok(None);
            }
            insert(&mut tx, new).await?;
            let old = select_by_id(&mut tx, old_id).await?;
            if let Some(old) = &old {
                self.log(&mut tx, Change::Rotated, old).await?;
            }
            self.log(&mut tx, Change::Created, new).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(old)
        })
    }

    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin().await?;
            for (id, at) in batch {
                sqlx::query(
                    "UPDATE tower_auth_api_keys \
                     SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                )
                .bind(millis(*at))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    fn key_hashes(&self) -> StoreFuture<'_, Option<Vec<KeyHash>>> {
        Box::pin(async move {
            let rows = sqlx::query_scalar("SELECT key_hash FROM tower_auth_api_keys")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            key_hashes(rows)
        })
    }

    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        update: &'a LimitsUpdate,
        at: SystemTime,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let Some(mut key) = select_by_id(&mut tx, id).await? else {
                return Ok(None);
            };
            let r = &mut key.record;
            r.limits = update.apply(&r.limits, r.created_at, at);
            write_limits(&mut *tx, &key).await?;
            self.log(&mut tx, Change::Updated, &key).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(Some(key))
        })
    }

    fn spend_credits<'a>(&'a self, batch: &'a [(String, u64, SystemTime)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin().await?;
            for (id, spent, at) in batch {
                let Some(mut key) = select_by_id(&mut tx, id).await? else {
                    continue;
                };
                let created = key.record.created_at;
                let Some(credits) = &mut key.record.limits.credits else {
                    continue;
                };
                credits.spend(created, *spent, *at);
                write_limits(&mut *tx, &key).await?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    fn invalidations(&self) -> Option<Box<dyn InvalidationFeed>> {
        let poller = ChangePoller::new(&self.pool, CHANGES, "kind, key_hash", self.poll_interval)
            .starting_after(self.head);
        Some(Box::new(SqliteFeed {
            poller,
            pending: VecDeque::new(),
        }))
    }
}

/// The change log read over a connection of its own (see the [store docs](SqliteStore)).
struct SqliteFeed {
    poller: ChangePoller,
    /// Invalidations read and not yet handed out.
    pending: VecDeque<Invalidation>,
}

impl InvalidationFeed for SqliteFeed {
    fn next(&mut self) -> InvalidationFuture<'_> {
        Box::pin(self.next_invalidation())
    }
}

impl SqliteFeed {
    async fn next_invalidation(&mut self) -> Option<Invalidation> {
        loop {
            if let Some(invalidation) = self.pending.pop_front() {
                return Some(invalidation);
            }
            match self.poller.next::<(String, Vec<u8>)>().await {
                Ok(Changes::Rows(rows)) => {
                    for (kind, hash) in rows {
                        let Ok(hash) = <[u8; 32]>::try_from(hash) else {
                            // Not a key this crate wrote: dropping everything is always safe.
                            telemetry::feed_unreadable(&super::sql::corrupt(
                                "key hash of the wrong size in the change log",
                            ));
                            self.pending.clear();
                            return Some(Invalidation::All);
                        };
                        let hash = KeyHash::from_bytes(hash);
                        self.pending.push_back(if kind == Change::Created.as_str() {
                            Invalidation::Created(hash)
                        } else {
                            Invalidation::Key(hash)
                        });
                    }
                }
                Ok(Changes::Unreadable(e)) => {
                    telemetry::feed_unreadable(&store_error(e));
                    return Some(Invalidation::All);
                }
                Ok(Changes::FellBehind) => {
                    telemetry::feed_behind();
                    return Some(Invalidation::All);
                }
                // Not returned by a poller started at a known position; safe anyway.
                Ok(Changes::Started) => return Some(Invalidation::All),
                Err(e) => telemetry::listener_failed(&store_error(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::SqliteConnectOptions;

    use super::super::StoreErrorKind;
    use super::*;

    fn url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}", dir.path().join("keys.db").display())
    }

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::connect(&url(&dir)).await.unwrap();
        super::super::testing::conformance(&store).await;
    }

    #[tokio::test]
    async fn in_memory_databases_work_across_the_pool() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        super::super::testing::conformance(&store).await;
    }

    #[tokio::test]
    async fn file_is_created_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub.db");
        assert!(!path.exists());
        let s = SqliteStore::open(&path).await.unwrap();
        assert!(path.exists());
        s.close().await;
        let s = SqliteStore::open(&path).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tower_auth_apikey_migrations")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(n, i64::try_from(MIGRATOR.migrations.len()).unwrap());
    }

    #[tokio::test]
    async fn coexists_with_other_migration_tables() {
        let dir = tempfile::tempdir().unwrap();
        let url = url(&dir);
        // Another crate (or sqlx's own migrator) already migrated this database.
        let other = SqlitePool::connect_with(
            SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT);
             INSERT INTO _sqlx_migrations VALUES (1, 'app');
             CREATE TABLE tower_auth_jwt_migrations (version INTEGER PRIMARY KEY);
             INSERT INTO tower_auth_jwt_migrations VALUES (1), (2), (3);
             CREATE TABLE users (id INTEGER PRIMARY KEY);",
        )
        .execute(&other)
        .await
        .unwrap();
        let store = SqliteStore::connect(&url).await.unwrap();
        super::super::testing::conformance(&store).await;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tower_auth_jwt_migrations")
            .fetch_one(&other)
            .await
            .unwrap();
        assert_eq!(n, 3, "other crates' migrations are untouched");
    }

    #[tokio::test]
    async fn changed_or_newer_migrations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = url(&dir);
        let s = SqliteStore::connect(&url).await.unwrap();
        sqlx::query("UPDATE tower_auth_apikey_migrations SET checksum = x'00' WHERE version = 1")
            .execute(&s.pool)
            .await
            .unwrap();
        let e = SqliteStore::connect(&url).await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        assert!(e.to_string().contains("differs"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let url = super::tests::url(&dir);
        let s = SqliteStore::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO tower_auth_apikey_migrations VALUES (999, 'future', x'00', 0)")
            .execute(&s.pool)
            .await
            .unwrap();
        let e = SqliteStore::connect(&url).await.unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    #[tokio::test]
    async fn bad_urls_are_setup_errors() {
        let e = SqliteStore::connect("postgres://nope").await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Setup);
    }
}
