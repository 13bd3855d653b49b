//! [`SqliteRevocationStore`]: revocations in a SQLite database (feature `sqlite`).

use std::fmt;
use std::time::SystemTime;

use sqlx::sqlite::SqlitePool;
use tower_auth_core::sql::{Migrator, migrate_sqlite, open_sqlite};

use super::sql::{
    Migration, REVOCATION_COLUMNS, cursor_param, db_error, migrator, millis, revocation_batch,
    store_error,
};
use super::{Revocation, RevocationBatch, RevocationStore};
use crate::store::{StoreError, StoreFuture};

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
/// Table: `tower_auth_jwt_revocations`, an append-only log that
/// [`RevocationList`](super::RevocationList)s poll by its `AUTOINCREMENT` sequence: SQLite
/// serializes writers, so sequence order is commit order and a poll never skips an entry.
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
}

impl fmt::Debug for SqliteRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRevocationStore")
            .field("connections", &self.pool.size())
            .finish()
    }
}

impl SqliteRevocationStore {
    /// Opens (creating it if missing) the database at `url` and migrates it.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://app.db` (relative to the working directory),
    /// `sqlite:///var/lib/app/app.db`, or `sqlite::memory:` for a private in-memory database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = open_sqlite(url).await.map_err(store_error)?;
        migrate_sqlite(&pool, &MIGRATOR)
            .await
            .map_err(store_error)?;
        Ok(Self { pool })
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
}
