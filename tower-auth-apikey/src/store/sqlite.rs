use std::fmt;
use std::time::SystemTime;

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};
use tower_auth_core::sql::{Migrator, migrate_sqlite, open_sqlite};

use super::sql::{Migration, db_error, migrator, millis, row_to_stored, store_error};
use super::{KeyStore, StoreError, StoreFuture};
use crate::{KeyHash, KeyRecord, StoredKey};

const MIGRATOR: Migrator = migrator(&[Migration {
    version: 1,
    description: "create tower_auth_api_keys",
    sql: include_str!("../../migrations/sqlite/0001_create_api_keys.sql"),
}]);

const COLUMNS: &str = "id, key_hash, owner, name, scopes, created_at, expires_at, revoked_at, \
                       last_used_at, metadata";

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
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("connections", &self.pool.size())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url` and migrates it.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://keys.db` (relative to the working directory),
    /// `sqlite:///var/lib/app/keys.db`, or `sqlite::memory:` for a private in-memory database.
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

async fn insert(tx: &mut Transaction<'_, Sqlite>, key: &StoredKey) -> Result<(), StoreError> {
    let r = &key.record;
    sqlx::query(&format!(
        "INSERT INTO tower_auth_api_keys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&r.id)
    .bind(&key.hash.as_bytes()[..])
    .bind(&r.owner)
    .bind(&r.name)
    .bind(r.scopes.to_space_separated())
    .bind(millis(r.created_at))
    .bind(r.expires_at.map(millis))
    .bind(r.revoked_at.map(millis))
    .bind(r.last_used_at.map(millis))
    .bind(r.metadata.to_string())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn select_by_id(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
) -> Result<Option<StoredKey>, StoreError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM tower_auth_api_keys WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error)?
    .as_ref()
    .map(row_to_stored)
    .transpose()
}

impl KeyStore for SqliteStore {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tower_auth_api_keys WHERE key_hash = ?"
            ))
            .bind(&hash.as_bytes()[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(|row| row_to_stored(row).map(|k| k.record))
            .transpose()
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tower_auth_api_keys WHERE id = ?"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(|row| row_to_stored(row).map(|k| k.record))
            .transpose()
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        Box::pin(async move {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM tower_auth_api_keys ORDER BY created_at, id"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row_to_stored(row).map(|k| k.record))
            .collect()
        })
    }

    fn insert<'a>(&'a self, key: &'a StoredKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            insert(&mut tx, key).await?;
            tx.commit().await.map_err(db_error)
        })
    }

    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
        Box::pin(async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error)?;
            sqlx::query(
                "UPDATE tower_auth_api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            )
            .bind(millis(at))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let key = select_by_id(&mut tx, id).await?;
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
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error)?;
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
            tx.commit().await.map_err(db_error)?;
            Ok(old)
        })
    }

    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error)?;
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
