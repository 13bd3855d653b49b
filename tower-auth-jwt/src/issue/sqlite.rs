//! [`SqliteStore`]: the issuer's stores in a SQLite database (feature `sqlite`).

use std::fmt;
use std::time::SystemTime;

use sqlx::sqlite::SqlitePool;
use tower_auth_core::sql::{Migrator, migrate_sqlite, open_sqlite};

use super::sql::{
    KEY_COLUMNS, Migration, bind_family, bind_new_key, bind_token, db_error, migrator, millis,
    refresh_columns, row_to_key, row_to_refresh, store_error,
};
use super::{
    RefreshFamily, RefreshTokenHash, RefreshTokenRecord, RefreshTokenStore, SigningKeyStore,
    StoreError, StoreFuture, StoredSigningKey,
};

const MIGRATOR: Migrator = migrator(&[
    Migration {
        version: 1,
        description: "create tower_auth_jwt_signing_keys",
        sql: include_str!("migrations/sqlite/0001_create_signing_keys.sql"),
    },
    Migration {
        version: 2,
        description: "create tower_auth_jwt_refresh_families and tower_auth_jwt_refresh_tokens",
        sql: include_str!("migrations/sqlite/0002_create_refresh_tokens.sql"),
    },
]);

/// The issuer's [`SigningKeyStore`] and [`RefreshTokenStore`] in a SQLite database (sqlx,
/// SQLite compiled in: nothing to install).
///
/// [`connect`](Self::connect) creates the database file if it is missing and applies the
/// issuer's migrations, shipped inside the crate. They are recorded in their own table,
/// `tower_auth_jwt_migrations`, and every table is prefixed `tower_auth_jwt_`, so one database
/// can hold the tables of the other tower-auth crates (tower-auth-apikey's key store), of this
/// crate's [`SqliteRevocationStore`](crate::revocation::SqliteRevocationStore) and of your
/// application. Migration runs in a `BEGIN IMMEDIATE` transaction, so processes starting
/// together do not race; a migration that changed after it was applied, or a database migrated
/// by a newer version of this crate, is an error.
///
/// Tables: `tower_auth_jwt_signing_keys`, `tower_auth_jwt_refresh_families`,
/// `tower_auth_jwt_refresh_tokens` (hashes only). [`RefreshTokenStore::consume`] is one
/// conditional `UPDATE ... WHERE token_hash = ? AND consumed_at IS NULL` whose affected-row
/// count decides the winner, in a `BEGIN IMMEDIATE` transaction with the insert of the next
/// token.
///
/// The database holds private keys: keep the file readable by the issuing service only.
/// For several instances sharing keys and sessions, use
/// [`PostgresStore`](super::PostgresStore) (feature `postgres`).
///
/// ```
/// use tower_auth_jwt::issue::{JwtIssuer, SqliteStore, TokenRequest};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.db");
/// let issuer = |store| {
///     JwtIssuer::builder(store)
///         .issuer("https://app.example")
///         .audience("app-api")
///         .client_id("app-web")
///         .build()
///         .unwrap()
/// };
/// let first = issuer(SqliteStore::open(&path).await.unwrap());
/// let token = first.issue(&TokenRequest::new("alice")).await.unwrap();
///
/// // After a restart, the same key signs (and verifies) again.
/// let again = issuer(SqliteStore::open(&path).await.unwrap());
/// assert_eq!(again.active_kid().await.unwrap(), token.kid());
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

impl SigningKeyStore for SqliteStore {
    fn signing_keys(&self) -> StoreFuture<'_, Vec<StoredSigningKey>> {
        Box::pin(async move {
            sqlx::query(&format!(
                "SELECT {KEY_COLUMNS} FROM tower_auth_jwt_signing_keys ORDER BY created_at, kid"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(row_to_key)
            .collect()
        })
    }

    fn replace_active<'a>(
        &'a self,
        expected: Option<&'a str>,
        retire_at: SystemTime,
        new: &'a StoredSigningKey,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error)?;
            let active: Option<String> = sqlx::query_scalar(
                "SELECT kid FROM tower_auth_jwt_signing_keys WHERE retired_at IS NULL",
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if active.as_deref() != expected {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE tower_auth_jwt_signing_keys SET retired_at = ? WHERE retired_at IS NULL",
            )
            .bind(millis(retire_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            bind_new_key!(
                sqlx::query(
                    "INSERT INTO tower_auth_jwt_signing_keys \
                     (kid, algorithm, material, created_at, retired_at) \
                     VALUES (?, ?, ?, ?, NULL)"
                ),
                new
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(true)
        })
    }

    fn delete_retired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            Ok(sqlx::query(
                "DELETE FROM tower_auth_jwt_signing_keys \
                 WHERE retired_at IS NOT NULL AND retired_at < ?",
            )
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected())
        })
    }

    fn delete_retired_key<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(sqlx::query(
                "DELETE FROM tower_auth_jwt_signing_keys \
                 WHERE kid = ? AND retired_at IS NOT NULL",
            )
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected()
                > 0)
        })
    }
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    token: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    bind_token!(
        sqlx::query(
            "INSERT INTO tower_auth_jwt_refresh_tokens \
             (token_hash, family_id, created_at, expires_at, consumed_at) \
             VALUES (?, ?, ?, ?, ?)"
        ),
        token
    )
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

impl RefreshTokenStore for SqliteStore {
    fn create_family<'a>(
        &'a self,
        family: &'a RefreshFamily,
        token: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error)?;
            bind_family!(
                sqlx::query(
                    "INSERT INTO tower_auth_jwt_refresh_families \
                     (id, subject, client_id, scope, claims, created_at, expires_at, revoked_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                family
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            insert_token(&mut tx, token).await?;
            tx.commit().await.map_err(db_error)
        })
    }

    fn find<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
    ) -> StoreFuture<'a, Option<(RefreshTokenRecord, RefreshFamily)>> {
        Box::pin(async move {
            sqlx::query(&format!(
                "SELECT {} \
                 FROM tower_auth_jwt_refresh_tokens t \
                 JOIN tower_auth_jwt_refresh_families f ON f.id = t.family_id \
                 WHERE t.token_hash = ?",
                refresh_columns("f.claims")
            ))
            .bind(&hash.as_bytes()[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .as_ref()
            .map(row_to_refresh)
            .transpose()
        })
    }

    fn consume<'a>(
        &'a self,
        hash: &'a RefreshTokenHash,
        at: SystemTime,
        next: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error)?;
            let consumed = sqlx::query(
                "UPDATE tower_auth_jwt_refresh_tokens SET consumed_at = ? \
                 WHERE token_hash = ? AND consumed_at IS NULL AND family_id IN \
                 (SELECT id FROM tower_auth_jwt_refresh_families WHERE revoked_at IS NULL)",
            )
            .bind(millis(at))
            .bind(&hash.as_bytes()[..])
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if consumed != 1 {
                return Ok(false);
            }
            insert_token(&mut tx, next).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(true)
        })
    }

    fn revoke_family<'a>(&'a self, family_id: &'a str, at: SystemTime) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            Ok(sqlx::query(
                "UPDATE tower_auth_jwt_refresh_families \
                 SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            )
            .bind(millis(at))
            .bind(family_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected()
                > 0)
        })
    }

    fn delete_families_ended_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(db_error)?;
            let ended = "SELECT id FROM tower_auth_jwt_refresh_families \
                         WHERE expires_at < ?1 OR revoked_at < ?1";
            sqlx::query(&format!(
                "DELETE FROM tower_auth_jwt_refresh_tokens WHERE family_id IN ({ended})"
            ))
            .bind(millis(before))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let n = sqlx::query(
                "DELETE FROM tower_auth_jwt_refresh_families \
                 WHERE expires_at < ?1 OR revoked_at < ?1",
            )
            .bind(millis(before))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            tx.commit().await.map_err(db_error)?;
            Ok(n)
        })
    }

    fn revoke_subject<'a>(&'a self, subject: &'a str, at: SystemTime) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            Ok(sqlx::query(
                "UPDATE tower_auth_jwt_refresh_families SET revoked_at = ? \
                 WHERE subject = ? AND revoked_at IS NULL",
            )
            .bind(millis(at))
            .bind(subject)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected())
        })
    }
}
