//! The opt-in replay cache shared by every instance through a store
//! ([`DpopAuthenticatorBuilder::shared_replay_store`](super::DpopAuthenticatorBuilder::shared_replay_store)).
//!
//! Each instance keeps its own bounded replay cache; a proof replayed to another instance is
//! caught by nonces, or by this store when it is configured. The store is asked after the
//! local cache and the token check, for every resource request: when it cannot answer, the
//! request is refused with 503 (fails closed), never let through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::store::{StoreError, StoreFuture};

/// A store of the DPoP proofs seen by every instance.
///
/// `key` is the SHA-256 of the proof key's thumbprint and the proof's `jti` (never the proof);
/// `expires` is when the proof's `iat` leaves the window, after which the entry may be
/// forgotten.
pub trait DpopReplayStore: Send + Sync + 'static {
    /// Records `key` until `expires` and answers whether it was new: `Ok(false)` when an
    /// unexpired entry holds it already (a replay). `now` is the verifier's clock.
    fn insert(&self, key: [u8; 32], expires: SystemTime, now: SystemTime) -> StoreFuture<'_, bool>;
}

/// The future of a shared-store check, owning the store.
pub(super) type SharedCheck = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>;

/// Asks `store` about `key`, owning what the future needs.
pub(super) fn check(
    store: &Arc<dyn DpopReplayStore>,
    key: [u8; 32],
    expires: SystemTime,
    now: SystemTime,
) -> SharedCheck {
    let store = Arc::clone(store);
    Box::pin(async move { store.insert(key, expires, now).await })
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql {
    use tower_auth_core::sql::{Migrator, SqlError};

    use crate::sql::Role;
    pub(super) use crate::sql::{Migration, millis};
    use crate::store::StoreError;

    /// The shared replay stores: their migrations table and error messages.
    const ROLE: Role = Role {
        table: "tower_auth_jwt_dpop_migrations",
        newer: "database was migrated by a newer version of tower-auth-jwt (dpop)",
        corrupt: "cannot read dpop proof record",
        unavailable: "dpop replay store unavailable",
    };

    /// `migrations` recorded in `tower_auth_jwt_dpop_migrations`, apart from the issuer's and
    /// the revocations', so each part migrates only its own tables.
    pub(super) const fn migrator(migrations: &'static [Migration]) -> Migrator {
        ROLE.migrator(migrations)
    }

    pub(super) fn store_error(e: SqlError) -> StoreError {
        ROLE.store_error(e)
    }

    pub(super) fn db_error(e: sqlx::Error) -> StoreError {
        ROLE.db_error(e)
    }

    /// Every this many inserts, the expired rows are deleted.
    pub(super) const PURGE_EVERY: u64 = 1024;
}

#[cfg(feature = "postgres")]
pub use self::postgres::PostgresReplayStore;
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteReplayStore;

#[cfg(feature = "postgres")]
mod postgres {
    use std::fmt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime};

    use sqlx::postgres::PgPool;
    use tower_auth_core::sql::{Migrator, migrate_postgres, open_postgres};

    use super::DpopReplayStore;
    use super::sql::{Migration, PURGE_EVERY, db_error, migrator, millis, store_error};
    use crate::store::{StoreError, StoreFuture};

    const MIGRATOR: Migrator = migrator(&[Migration {
        version: 1,
        description: "create tower_auth_jwt_dpop_proofs",
        sql: include_str!("migrations/postgres/0001_create_dpop_proofs.sql"),
    }]);

    /// The transaction-level advisory lock serializing these migrations (`ta_jwt_d`).
    const MIGRATION_LOCK: i64 = 0x7461_5f6a_7774_5f64;

    /// The shared DPoP replay cache in PostgreSQL (feature `postgres`): one table,
    /// `tower_auth_jwt_dpop_proofs`, migrated by [`connect`](Self::connect) and recorded in
    /// `tower_auth_jwt_dpop_migrations`.
    pub struct PostgresReplayStore {
        pool: PgPool,
        inserts: AtomicU64,
    }

    impl fmt::Debug for PostgresReplayStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("PostgresReplayStore")
                .field("connections", &self.pool.size())
                .finish()
        }
    }

    impl PostgresReplayStore {
        /// Connects (at most 8 connections, 2 s to get one: a request waits on it) and
        /// migrates.
        pub async fn connect(url: &str) -> Result<Self, StoreError> {
            let (pool, _) = open_postgres(url, 8, Duration::from_secs(2))
                .await
                .map_err(store_error)?;
            migrate_postgres(&pool, &MIGRATOR, MIGRATION_LOCK)
                .await
                .map_err(store_error)?;
            Ok(Self {
                pool,
                inserts: AtomicU64::new(0),
            })
        }

        /// Closes the connections; checks made afterwards fail (503).
        pub async fn close(&self) {
            self.pool.close().await;
        }
    }

    impl DpopReplayStore for PostgresReplayStore {
        fn insert(
            &self,
            key: [u8; 32],
            expires: SystemTime,
            now: SystemTime,
        ) -> StoreFuture<'_, bool> {
            Box::pin(async move {
                let now = millis(now);
                if self
                    .inserts
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(PURGE_EVERY)
                {
                    sqlx::query("DELETE FROM tower_auth_jwt_dpop_proofs WHERE expires_at <= $1")
                        .bind(now)
                        .execute(&self.pool)
                        .await
                        .map_err(db_error)?;
                }
                // New, or taking over an expired row: one row affected. A live row: none.
                let done = sqlx::query(
                    "INSERT INTO tower_auth_jwt_dpop_proofs (key, expires_at) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
                     WHERE tower_auth_jwt_dpop_proofs.expires_at <= $3",
                )
                .bind(&key[..])
                .bind(millis(expires))
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
                Ok(done.rows_affected() == 1)
            })
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::fmt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::SystemTime;

    use sqlx::sqlite::SqlitePool;
    use tower_auth_core::sql::{Migrator, migrate_sqlite, open_sqlite};

    use super::DpopReplayStore;
    use super::sql::{Migration, PURGE_EVERY, db_error, migrator, millis, store_error};
    use crate::store::{StoreError, StoreFuture};

    const MIGRATOR: Migrator = migrator(&[Migration {
        version: 1,
        description: "create tower_auth_jwt_dpop_proofs",
        sql: include_str!("migrations/sqlite/0001_create_dpop_proofs.sql"),
    }]);

    /// The shared DPoP replay cache in SQLite (feature `sqlite`), for instances on one host
    /// sharing a database file: one table, `tower_auth_jwt_dpop_proofs`, migrated by
    /// [`connect`](Self::connect) and recorded in `tower_auth_jwt_dpop_migrations`.
    pub struct SqliteReplayStore {
        pool: SqlitePool,
        inserts: AtomicU64,
    }

    impl fmt::Debug for SqliteReplayStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SqliteReplayStore")
                .field("connections", &self.pool.size())
                .finish()
        }
    }

    impl SqliteReplayStore {
        /// Opens (creating it if missing) the database at `url` (`sqlite://app.db`) and
        /// migrates it.
        pub async fn connect(url: &str) -> Result<Self, StoreError> {
            let pool = open_sqlite(url).await.map_err(store_error)?;
            migrate_sqlite(&pool, &MIGRATOR)
                .await
                .map_err(store_error)?;
            Ok(Self {
                pool,
                inserts: AtomicU64::new(0),
            })
        }

        /// Closes the connections; checks made afterwards fail (503).
        pub async fn close(&self) {
            self.pool.close().await;
        }
    }

    impl DpopReplayStore for SqliteReplayStore {
        fn insert(
            &self,
            key: [u8; 32],
            expires: SystemTime,
            now: SystemTime,
        ) -> StoreFuture<'_, bool> {
            Box::pin(async move {
                let now = millis(now);
                if self
                    .inserts
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(PURGE_EVERY)
                {
                    sqlx::query("DELETE FROM tower_auth_jwt_dpop_proofs WHERE expires_at <= ?1")
                        .bind(now)
                        .execute(&self.pool)
                        .await
                        .map_err(db_error)?;
                }
                // New, or taking over an expired row: one row changed. A live row: none.
                let done = sqlx::query(
                    "INSERT INTO tower_auth_jwt_dpop_proofs (key, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE tower_auth_jwt_dpop_proofs.expires_at <= ?3",
                )
                .bind(&key[..])
                .bind(millis(expires))
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
                Ok(done.rows_affected() == 1)
            })
        }
    }
}
