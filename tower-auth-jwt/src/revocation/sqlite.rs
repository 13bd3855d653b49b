//! [`SqliteRevocationStore`]: revocations in a SQLite database (feature `sqlite`).

use std::fmt;
use std::time::{Duration, SystemTime};

use sqlx::sqlite::{SqlitePool, SqliteRow};
use tower_auth_core::ConfigError;
use tower_auth_core::sql::{ChangePoller, Changes, Migrator, migrate_sqlite, open_sqlite};

use super::sql::{
    Migration, REVOCATION_COLUMNS, cursor_param, db_error, migrator, millis, revocation_batch,
    row_to_revocation, store_error,
};
use super::{
    Revocation, RevocationBatch, RevocationEvent, RevocationFeed, RevocationFeedFuture,
    RevocationStore,
};
use crate::store::{StoreError, StoreErrorKind, StoreFuture};

/// The revocation log, read by the change feed.
const TABLE: &str = "tower_auth_jwt_revocations";
/// The columns the feed reads (the poller adds `seq`).
const FEED_COLUMNS: &str = "kind, issuer, value, issued_before, expires_at, created_at";
/// How long the feed may go without a change before it reports a heartbeat
/// ([`RevocationEvent::Alive`]) for the staleness bound, when its polls succeed.
const FEED_HEARTBEAT: Duration = Duration::from_secs(1);

const MIGRATOR: Migrator = migrator(&[Migration {
    version: 1,
    description: "create tower_auth_jwt_revocations",
    sql: include_str!("migrations/sqlite/0001_create_revocations.sql"),
}]);

/// A [`RevocationStore`] in a SQLite database (sqlx, SQLite compiled in: nothing to install),
/// for one instance, or several on one host sharing the file.
///
/// [`connect`](Self::connect) creates the database file if it is missing and applies the
/// revocation migrations, shipped inside the crate and recorded in their own table,
/// `tower_auth_jwt_revocation_migrations`, so one database can hold the tables of the other
/// tower-auth crates, of the issuer's `issue::SqliteStore` (feature
/// `issue`) and of your application. Migration runs in a `BEGIN IMMEDIATE` transaction, so
/// processes starting together do not race; a migration that changed after it was applied, or
/// a database migrated by a newer version of this crate, is an error.
///
/// Table: `tower_auth_jwt_revocations`, an append-only log ordered by its `AUTOINCREMENT`
/// sequence: SQLite serializes writers, so sequence order is commit order and a reader past
/// one entry never skips an earlier one.
///
/// # Change feed
///
/// Several processes may share the file: a server and the `tokens` command next to it, or
/// two servers. The store has a [feed](RevocationStore::revocation_feed), the same interface
/// as PostgreSQL's notifications: every [`RevocationList`](super::RevocationList) on it holds
/// one connection of its own that asks SQLite every
/// [`poll_interval`](SqliteRevocationStoreBuilder::poll_interval) (100 ms) whether another
/// connection committed (`PRAGMA data_version`, which reads no table) and only then reads the
/// entries past the last one it saw, so a token revoked or a subject logged out everywhere by
/// another process is refused here within about 100 ms. Writes to other tables of the file
/// (refresh-token rotation, last-used times of API keys) cost one empty read and change
/// nothing. The feed reconnects by itself without losing its place, survives `VACUUM`, and
/// reports a heartbeat every second its polls succeed (the list's
/// [staleness](super::RevocationList::staleness)). If the log no longer holds the entries
/// after its place (an entry it had not read was deleted, or the file was replaced), the list
/// reloads everything. [`without_change_feed`](SqliteRevocationStoreBuilder::without_change_feed)
/// goes back to polling by sequence every [`poll_interval`](super::RevocationListBuilder::poll_interval)
/// of the list.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_auth_jwt::revocation::{RevocationList, SqliteRevocationStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.db");
/// let list = RevocationList::builder(SqliteRevocationStore::open(&path).await.unwrap())
///     .build()
///     .unwrap();
/// list.load().await.unwrap();
/// let exp = SystemTime::now() + Duration::from_secs(600);
/// list.revoke_token("https://app.example", "jti-1", Some(exp)).await.unwrap();
///
/// // After a restart, the revocation is still there.
/// let again = RevocationList::builder(SqliteRevocationStore::open(&path).await.unwrap())
///     .build()
///     .unwrap();
/// again.load().await.unwrap();
/// assert_eq!(again.revoked_tokens(), 1);
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteRevocationStore {
    pool: SqlitePool,
    /// The change feed's poll interval; `None` without a feed.
    feed_interval: Option<Duration>,
}

impl fmt::Debug for SqliteRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRevocationStore")
            .field("connections", &self.pool.size())
            .field("feed_interval", &self.feed_interval)
            .finish()
    }
}

impl SqliteRevocationStore {
    /// Opens (creating it if missing) the database at `url` with the default settings and
    /// migrates it.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://app.db` (relative to the working directory),
    /// `sqlite:///var/lib/app/app.db`, or `sqlite::memory:` for a private in-memory database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// Starts a builder for the change feed's settings; `url` as for
    /// [`connect`](Self::connect).
    pub fn builder(url: impl Into<String>) -> SqliteRevocationStoreBuilder {
        SqliteRevocationStoreBuilder {
            url: url.into(),
            poll_interval: SqliteRevocationStoreBuilder::DEFAULT_POLL_INTERVAL,
            feed: true,
        }
    }

    /// Opens (creating it if missing) the database file at `path` and migrates it.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", path.as_ref().display());
        Self::connect(&url).await
    }

    /// Closes the connections; calls made afterwards fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Settings of a [`SqliteRevocationStore`]'s change feed. Created by
/// [`SqliteRevocationStore::builder`].
#[must_use]
#[derive(Debug)]
pub struct SqliteRevocationStoreBuilder {
    url: String,
    poll_interval: Duration,
    feed: bool,
}

impl SqliteRevocationStoreBuilder {
    /// Default [`poll_interval`](Self::poll_interval).
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

    /// How often each list's feed asks whether another connection committed (default 100 ms,
    /// from 10 ms to 1 min): the bound on how long a revocation made by another process takes
    /// to apply here. An idle poll reads no table.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// No change feed: lists poll the store by sequence every
    /// [`RevocationListBuilder::poll_interval`](super::RevocationListBuilder::poll_interval)
    /// (5 s) on their pool instead, and [`RevocationList::poll`](super::RevocationList::poll)
    /// reads only what is new.
    pub fn without_change_feed(mut self) -> Self {
        self.feed = false;
        self
    }

    /// Validates the settings, opens (creating it if missing) and migrates the database.
    pub async fn connect(self) -> Result<SqliteRevocationStore, StoreError> {
        if self.poll_interval < Duration::from_millis(10)
            || self.poll_interval > Duration::from_secs(60)
        {
            return Err(
                StoreError::new(StoreErrorKind::Setup, "invalid sqlite store setting").with_source(
                    ConfigError::new(
                        "poll_interval",
                        format_args!("{}s", self.poll_interval.as_secs_f64()),
                        "must be from 10ms to 1m",
                    ),
                ),
            );
        }
        let pool = open_sqlite(&self.url).await.map_err(store_error)?;
        migrate_sqlite(&pool, &MIGRATOR)
            .await
            .map_err(store_error)?;
        Ok(SqliteRevocationStore {
            pool,
            feed_interval: self.feed.then_some(self.poll_interval),
        })
    }
}

/// Appends one revocation, on the pool or inside a transaction.
async fn insert_revocation<'e, E>(executor: E, entry: &Revocation) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO tower_auth_jwt_revocations \
         (kind, issuer, value, issued_before, expires_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.kind.as_str())
    .bind(&entry.issuer)
    .bind(&entry.value)
    .bind(millis(entry.issued_before))
    .bind(millis(entry.expires_at))
    .bind(millis(entry.created_at))
    .execute(executor)
    .await
    .map_err(db_error)?;
    Ok(())
}

impl RevocationStore for SqliteRevocationStore {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        Box::pin(insert_revocation(&self.pool, entry))
    }

    /// Appends the entries in one transaction.
    fn add_revocations<'a>(&'a self, entries: &'a [Revocation]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            for entry in entries {
                insert_revocation(&mut *tx, entry).await?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        Box::pin(async move {
            // The cursor first: an entry added in between is read again by the next poll,
            // which is harmless (applying an entry twice changes nothing). It comes from
            // AUTOINCREMENT's sqlite_sequence, which never goes back, not from MAX(seq),
            // which drops when the newest entries are purged.
            let top: i64 = sqlx::query_scalar(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence \
                 WHERE name = 'tower_auth_jwt_revocations'), 0)",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
            let rows = sqlx::query(&format!(
                "SELECT {REVOCATION_COLUMNS} FROM tower_auth_jwt_revocations \
                 WHERE expires_at >= ? ORDER BY seq"
            ))
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            revocation_batch(&rows, u64::try_from(top).unwrap_or(0))
        })
    }

    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "SELECT {REVOCATION_COLUMNS} FROM tower_auth_jwt_revocations \
                 WHERE seq > ? ORDER BY seq"
            ))
            .bind(cursor_param(cursor))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            revocation_batch(&rows, cursor)
        })
    }

    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            Ok(
                sqlx::query("DELETE FROM tower_auth_jwt_revocations WHERE expires_at < ?")
                    .bind(millis(before))
                    .execute(&self.pool)
                    .await
                    .map_err(db_error)?
                    .rows_affected(),
            )
        })
    }

    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        let interval = self.feed_interval?;
        Some(Box::new(SqliteFeed {
            poller: ChangePoller::new(&self.pool, TABLE, FEED_COLUMNS, interval),
        }))
    }
}

/// A revocation row read by the feed, or why it could not be read.
struct FeedRow(Result<(u64, Revocation), StoreError>);

impl sqlx::FromRow<'_, SqliteRow> for FeedRow {
    fn from_row(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(Self(row_to_revocation(row)))
    }
}

/// The revocation log read over a connection of its own (see the
/// [store docs](SqliteRevocationStore#change-feed)).
struct SqliteFeed {
    poller: ChangePoller,
}

impl RevocationFeed for SqliteFeed {
    /// Takes the end of the log as the place to read from, before the list's full read.
    fn connect(&mut self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.poller.start().await.map_err(store_error) })
    }

    fn next(&mut self) -> RevocationFeedFuture<'_> {
        Box::pin(self.next_event())
    }
}

impl SqliteFeed {
    async fn next_event(&mut self) -> Option<RevocationEvent> {
        loop {
            // Cancelling a poll between its statements loses nothing: the place in the log
            // moves only once a read has completed.
            let Ok(polled) = tokio::time::timeout(FEED_HEARTBEAT, self.poller.next()).await else {
                if self.poller.is_healthy() {
                    return Some(RevocationEvent::Alive);
                }
                continue;
            };
            match polled {
                Ok(Changes::Rows(rows)) => {
                    let entries: Vec<Revocation> = rows
                        .into_iter()
                        .filter_map(|FeedRow(row)| match row {
                            Ok((_, entry)) => Some(entry),
                            Err(e) => {
                                // Skipped, like a poll skips it: one bad row must not stop
                                // every later revocation from applying.
                                crate::telemetry::revocation_row_skipped(None, &e);
                                None
                            }
                        })
                        .collect();
                    if !entries.is_empty() {
                        return Some(RevocationEvent::Batch(entries));
                    }
                }
                Ok(Changes::FellBehind | Changes::Started) => {
                    crate::telemetry::revocation_feed_failed(
                        "behind",
                        &StoreError::new(
                            StoreErrorKind::Unavailable,
                            "revocation log no longer holds the entries after this reader",
                        ),
                    );
                    return Some(RevocationEvent::Reload);
                }
                Ok(Changes::Unreadable(e)) => {
                    crate::telemetry::revocation_row_skipped(None, &store_error(e));
                    return Some(RevocationEvent::Reload);
                }
                Err(e) => crate::telemetry::revocation_feed_failed("poll", &store_error(e)),
            }
        }
    }
}
