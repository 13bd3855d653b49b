//! [`PostgresStore`]: the issuer's stores in a PostgreSQL database (feature `postgres`).

use std::fmt;
use std::time::{Duration, SystemTime};

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use tower_auth_core::sql::{Migrator, migrate_postgres, open_postgres};

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
        sql: include_str!("../../migrations/postgres/0001_create_signing_keys.sql"),
    },
    Migration {
        version: 2,
        description: "create tower_auth_jwt_refresh_families and tower_auth_jwt_refresh_tokens",
        sql: include_str!("../../migrations/postgres/0002_create_refresh_tokens.sql"),
    },
]);

/// The transaction-level advisory lock serializing this crate's migrations (`ta_jwt_m`).
const MIGRATION_LOCK: i64 = 0x7461_5f6a_7774_5f6d;
/// The transaction-level advisory lock serializing replacements of the active signing key
/// (`ta_jwt_k`).
const ACTIVE_KEY_LOCK: i64 = 0x7461_5f6a_7774_5f6b;

/// The issuer's [`SigningKeyStore`] and [`RefreshTokenStore`] in PostgreSQL, for several
/// instances sharing their signing keys and sessions (feature `postgres`).
///
/// [`connect`](Self::connect) applies the issuer's migrations, shipped inside the crate and
/// recorded in their own table, `tower_auth_jwt_migrations`; every table is prefixed
/// `tower_auth_jwt_` (`tower_auth_jwt_signing_keys`, `tower_auth_jwt_refresh_families`,
/// `tower_auth_jwt_refresh_tokens`), so one database (and schema) holds the tables of every
/// tower-auth crate, of this crate's
/// [`PostgresRevocationStore`](crate::revocation::PostgresRevocationStore) and of your
/// application. Instances starting together do not race: the migrations run in one
/// transaction under a transaction-level advisory lock (`pg_advisory_xact_lock`). A migration
/// that changed after it was applied, or a database migrated by a newer version of this
/// crate, is an error. Tables go to the first schema of the connection's `search_path`. Times
/// are stored as Unix milliseconds (`BIGINT`), as in [`SqliteStore`](super::SqliteStore).
///
/// Concurrency, across connections and instances:
///
/// - [`SigningKeyStore::replace_active`] reads the active `kid`, compares it with the
///   expected one, retires it and inserts the new key in one transaction under an advisory
///   lock, so instances starting together on an empty database create one key, and two
///   rotating together rotate once (the loser gets `false` and re-reads). A partial unique
///   index keeps at most one active key whatever else writes to the table.
/// - [`RefreshTokenStore::consume`] is one conditional
///   `UPDATE ... WHERE token_hash = $1 AND consumed_at IS NULL` (and the family not revoked)
///   whose affected-row count decides the winner, in a transaction with the insert of the
///   next token: of two concurrent refreshes with one token, the second waits for the first
///   to commit, then finds the token consumed and changes nothing.
///
/// Store calls use a pool whose connection attempts give up after the
/// [`acquire_timeout`](PostgresStoreBuilder::acquire_timeout) (default 1 s), inside the
/// issuer's [`store_timeout`](super::JwtIssuerBuilder::store_timeout) (2 s), so a database
/// outage turns into a prompt 503 and the pool reconnects by itself when the server is back.
///
/// The database holds private keys: grant access to `tower_auth_jwt_signing_keys` to the
/// issuing service only.
///
/// ```no_run
/// use tower_auth_jwt::issue::{JwtIssuer, PostgresStore, RefreshTokens, TokenRequest};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = PostgresStore::connect("postgres://app@db.internal/app").await.unwrap();
/// let issuer = JwtIssuer::builder(store.clone())
///     .issuer("https://app.example")
///     .audience("app-api")
///     .client_id("app-web")
///     .refresh_tokens(RefreshTokens::new(store))
///     .build()
///     .unwrap();
/// let pair = issuer.login(&TokenRequest::new("alice")).await.unwrap();
/// # drop(pair);
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, any
    /// libpq-style parameters sqlx accepts) with the default pool settings, and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// Starts a builder for the pool settings.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(1),
        }
    }

    /// Closes the pool; calls made afterwards fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Pool settings of a [`PostgresStore`]. Created by [`PostgresStore::builder`].
#[must_use]
pub struct PostgresStoreBuilder {
    url: String,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PostgresStoreBuilder")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    /// The most connections the pool opens (default 10, at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a store call waits for a connection, including connecting (default 1 s). Keep
    /// it below the issuer's [`store_timeout`](super::JwtIssuerBuilder::store_timeout).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Connects and migrates the database.
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        let (pool, _) = open_postgres(&self.url, self.max_connections, self.acquire_timeout)
            .await
            .map_err(store_error)?;
        migrate_postgres(&pool, &MIGRATOR, MIGRATION_LOCK)
            .await
            .map_err(store_error)?;
        Ok(PostgresStore { pool })
    }
}

impl SigningKeyStore for PostgresStore {
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
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            // Held until the end of the transaction: the read, the comparison and the writes
            // below are one step for every process sharing the database. Each statement after
            // it sees what the previous holder committed.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ACTIVE_KEY_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            let active: Option<String> = sqlx::query_scalar(
                "SELECT kid FROM tower_auth_jwt_signing_keys WHERE retired_at IS NULL",
            )
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            if active.as_deref() != expected {
                // Dropping the transaction rolls it back and releases the lock.
                return Ok(false);
            }
            sqlx::query(
                "UPDATE tower_auth_jwt_signing_keys SET retired_at = $1 WHERE retired_at IS NULL",
            )
            .bind(millis(retire_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            bind_new_key!(
                sqlx::query(
                    "INSERT INTO tower_auth_jwt_signing_keys \
                     (kid, algorithm, material, created_at, retired_at) \
                     VALUES ($1, $2, $3, $4, NULL)"
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
                 WHERE retired_at IS NOT NULL AND retired_at < $1",
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
                 WHERE kid = $1 AND retired_at IS NOT NULL",
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
    tx: &mut Transaction<'_, Postgres>,
    token: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    bind_token!(
        sqlx::query(
            "INSERT INTO tower_auth_jwt_refresh_tokens \
             (token_hash, family_id, created_at, expires_at, consumed_at) \
             VALUES ($1, $2, $3, $4, $5)"
        ),
        token
    )
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

impl RefreshTokenStore for PostgresStore {
    fn create_family<'a>(
        &'a self,
        family: &'a RefreshFamily,
        token: &'a RefreshTokenRecord,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            bind_family!(
                sqlx::query(
                    "INSERT INTO tower_auth_jwt_refresh_families \
                     (id, subject, client_id, scope, claims, created_at, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)"
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
                 WHERE t.token_hash = $1",
                refresh_columns("f.claims::text")
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
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            // A concurrent consume of the same token waits for this row's lock, then
            // re-checks `consumed_at IS NULL` on the committed row: one winner.
            let consumed = sqlx::query(
                "UPDATE tower_auth_jwt_refresh_tokens SET consumed_at = $1 \
                 WHERE token_hash = $2 AND consumed_at IS NULL AND family_id IN \
                 (SELECT id FROM tower_auth_jwt_refresh_families WHERE revoked_at IS NULL)",
            )
            .bind(millis(at))
            .bind(&hash.as_bytes()[..])
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if consumed != 1 {
                // Dropping the transaction rolls it back.
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
                 SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
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
            // The tokens go with their family (`ON DELETE CASCADE`).
            Ok(sqlx::query(
                "DELETE FROM tower_auth_jwt_refresh_families \
                 WHERE expires_at < $1 OR revoked_at < $1",
            )
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected())
        })
    }

    fn revoke_subject<'a>(&'a self, subject: &'a str, at: SystemTime) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            Ok(sqlx::query(
                "UPDATE tower_auth_jwt_refresh_families SET revoked_at = $1 \
                 WHERE subject = $2 AND revoked_at IS NULL",
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
