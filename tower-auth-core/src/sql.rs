//! Plumbing shared by the SQL stores of the tower-auth crates (features `sqlite` and
//! `postgres`).
//!
//! **Not a stable API.** This module is public (and hidden from the documentation) only so
//! that the sibling crates (tower-auth-apikey's key stores, tower-auth-jwt's issuer stores)
//! share one implementation of:
//!
//! - the migration runner: each crate records its migrations in a table of its own (so all of
//!   them, and the application, can migrate one database), with the SHA-256 checksum of each
//!   migration's SQL; a database migrated by a newer version of the crate, or one where an
//!   applied migration differs, is refused. SQLite migrates in a `BEGIN IMMEDIATE`
//!   transaction, PostgreSQL in a transaction holding a `pg_advisory_xact_lock`, so processes
//!   starting together migrate one after the other;
//! - opening pools (SQLite creating the file when missing, PostgreSQL with a bounded
//!   `acquire_timeout`);
//! - Unix-millisecond time conversions and the classification of sqlx errors;
//! - the SQLite change feed ([`ChangePoller`], [`prune_change_log`]): a change-log table
//!   written in the transaction of each change, read by each process over a connection of its
//!   own whenever `PRAGMA data_version` says another connection committed.
//!
//! Errors are a small [`SqlError`] that each crate converts into its own store error
//! (`connect_listener` hands sqlx's error to the listener loop that retries it); no sqlx type
//! appears in the public API of the scheme crates. Anything here may change in any
//! release.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use tower_auth_core::sql::{Migration, Migrator, from_millis, millis};
//!
//! const MIGRATOR: Migrator = Migrator {
//!     table: "example_migrations",
//!     newer: "database was migrated by a newer version of example",
//!     migrations: &[Migration {
//!         version: 1,
//!         description: "create example",
//!         sql: "CREATE TABLE example (x INTEGER)",
//!     }],
//! };
//! assert_eq!(MIGRATOR.pending(&[]).unwrap().len(), 1);
//!
//! let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
//! assert_eq!(from_millis(millis(t)), Some(t));
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// A boxed error, the source of a [`SqlError`].
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The class of a [`SqlError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// Opening or migrating the database failed (the message says why).
    Setup,
    /// An insert collided with an existing row (a unique violation).
    Conflict,
    /// A stored value could not be decoded.
    Corrupt,
    /// The database cannot be reached or failed to answer.
    Unavailable,
}

/// A failure of the shared SQL plumbing, converted by each crate into its own store error.
///
/// [`message`](Self::message) is meaningful for [`SqlErrorKind::Setup`]; for the other kinds
/// (from [`From<sqlx::Error>`](#impl-From<Error>-for-SqlError)) the crate supplies its own.
#[derive(Debug)]
pub struct SqlError {
    kind: SqlErrorKind,
    message: &'static str,
    source: Option<BoxError>,
}

impl SqlError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: SqlErrorKind, message: &'static str) -> Self {
        Self {
            kind,
            message,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    fn setup(message: &'static str) -> impl Fn(sqlx::Error) -> Self + Copy {
        move |e| Self::new(SqlErrorKind::Setup, message).with_source(e)
    }

    /// The class of the failure.
    pub fn kind(&self) -> SqlErrorKind {
        self.kind
    }

    /// What failed, without the source.
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// The underlying cause, if any.
    pub fn into_source(self) -> Option<BoxError> {
        self.source
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl StdError for SqlError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<sqlx::Error> for SqlError {
    /// Unique violations are conflicts, decoding failures corruption, the rest
    /// unavailability; the sqlx error is the source.
    fn from(e: sqlx::Error) -> Self {
        let (kind, message) = match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                (SqlErrorKind::Conflict, "row already exists")
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                (SqlErrorKind::Corrupt, "cannot decode a stored value")
            }
            _ => (SqlErrorKind::Unavailable, "database unavailable"),
        };
        Self::new(kind, message).with_source(e)
    }
}

/// Unix milliseconds, saturating (times before the epoch are 0).
pub fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The time `ms` Unix milliseconds after the epoch; `None` for a negative or unrepresentable
/// value.
pub fn from_millis(ms: i64) -> Option<SystemTime> {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
}

/// One migration of one backend of one crate.
#[derive(Debug)]
pub struct Migration {
    /// Its version, increasing from 1.
    pub version: i64,
    /// What it does, recorded with it.
    pub description: &'static str,
    /// The statements, run as one simple query.
    pub sql: &'static str,
}

impl Migration {
    /// The SHA-256 of [`sql`](Self::sql), recorded when applied and compared on every start.
    pub fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.sql.as_bytes()).to_vec()
    }
}

/// The migrations of one backend of one crate, and where they are recorded.
#[derive(Debug)]
pub struct Migrator {
    /// The crate's migrations table (for instance `tower_auth_apikey_migrations`).
    pub table: &'static str,
    /// The message of the error refusing a database migrated by a newer version of the crate.
    pub newer: &'static str,
    /// The migrations, in increasing version order.
    pub migrations: &'static [Migration],
}

impl Migrator {
    /// The migrations still to apply, given the `(version, checksum)` rows already recorded.
    /// Refuses a database migrated by a newer version of the crate (with [`newer`](Self::newer)),
    /// or one where an applied migration differs from this version's.
    pub fn pending(&self, applied: &[(i64, Vec<u8>)]) -> Result<Vec<&'static Migration>, SqlError> {
        let latest = self.migrations.last().map_or(0, |m| m.version);
        if applied.iter().any(|(v, _)| *v > latest) {
            return Err(SqlError::new(SqlErrorKind::Setup, self.newer));
        }
        let mut todo = Vec::new();
        for m in self.migrations {
            match applied.iter().find(|(v, _)| *v == m.version) {
                Some((_, c)) if *c == m.checksum() => {}
                Some(_) => {
                    return Err(SqlError::new(
                        SqlErrorKind::Setup,
                        "an applied migration differs from this version's",
                    ));
                }
                None => todo.push(m),
            }
        }
        Ok(todo)
    }
}

#[cfg(feature = "sqlite")]
pub use self::sqlite::{migrate_sqlite, open_sqlite};
#[cfg(feature = "sqlite")]
pub use self::sqlite_changes::{ChangePoller, Changes, change_log_head, prune_change_log};

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::str::FromStr;
    use std::time::{Duration, SystemTime};

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

    use super::{Migrator, SqlError, SqlErrorKind, millis};

    /// Opens (creating it if missing) the SQLite database at `url`: at most 4 connections,
    /// waiting up to 10 s for one, and up to 5 s on a locked database.
    pub async fn open_sqlite(url: &str) -> Result<SqlitePool, SqlError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| SqlError::new(SqlErrorKind::Setup, "invalid sqlite url").with_source(e))?
            .create_if_missing(true)
            // Lookups are bounded by the callers' deadlines; admin calls may wait longer.
            .busy_timeout(Duration::from_secs(5));
        SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(SqlError::setup("cannot open sqlite database"))
    }

    /// Applies the pending migrations of `migrator` in one `BEGIN IMMEDIATE` transaction.
    pub async fn migrate_sqlite(pool: &SqlitePool, migrator: &Migrator) -> Result<(), SqlError> {
        let setup = SqlError::setup("sqlite migration failed");
        let table = migrator.table;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(setup)?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 version     INTEGER NOT NULL PRIMARY KEY,
                 description TEXT    NOT NULL,
                 checksum    BLOB    NOT NULL,
                 applied_at  INTEGER NOT NULL
             )"
        ))
        .execute(&mut *tx)
        .await
        .map_err(setup)?;
        let applied: Vec<(i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT version, checksum FROM {table} ORDER BY version"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(setup)?;
        for m in migrator.pending(&applied)? {
            // A plain string runs as a simple query: several statements in one. (Not
            // `raw_sql`, whose future is not `Send` over a transaction.)
            sqlx::Executor::execute(&mut *tx, m.sql)
                .await
                .map_err(setup)?;
            sqlx::query(&format!(
                "INSERT INTO {table} (version, description, checksum, applied_at) \
                 VALUES (?, ?, ?, ?)"
            ))
            .bind(m.version)
            .bind(m.description)
            .bind(m.checksum())
            .bind(millis(SystemTime::now()))
            .execute(&mut *tx)
            .await
            .map_err(setup)?;
        }
        tx.commit().await.map_err(setup)
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_changes;

#[cfg(feature = "postgres")]
pub use self::postgres::{connect_listener, migrate_postgres, open_postgres};

#[cfg(feature = "postgres")]
mod postgres {
    use std::str::FromStr;
    use std::time::{Duration, SystemTime};

    use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

    use super::{Migrator, SqlError, SqlErrorKind, millis};

    /// A fresh `LISTEN` connection to the database of `options`, in a pool of its own (so a
    /// dead one never blocks the next), whose connection attempt gives up after
    /// `connect_timeout`. It does not reconnect by itself: a lost connection shows as
    /// `try_recv` returning `None` or an error, and the caller reconnects, knowing that
    /// notifications may have been missed meanwhile. Subscribe with `listen`.
    pub async fn connect_listener(
        options: &PgConnectOptions,
        connect_timeout: Duration,
    ) -> Result<PgListener, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(connect_timeout)
            .connect_with(options.clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        Ok(listener)
    }

    /// Connects a pool of at most `max_connections` to the PostgreSQL database at `url`, whose
    /// connection attempts give up after `acquire_timeout`; returns it with the parsed
    /// options (for extra connections of the caller's own).
    pub async fn open_postgres(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<(PgPool, PgConnectOptions), SqlError> {
        if max_connections == 0 || acquire_timeout.is_zero() {
            return Err(SqlError::new(
                SqlErrorKind::Setup,
                "max_connections and acquire_timeout must be more than zero",
            ));
        }
        let options =
            PgConnectOptions::from_str(url).map_err(SqlError::setup("invalid postgres url"))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(SqlError::setup("cannot connect to postgres"))?;
        Ok((pool, options))
    }

    /// Applies the pending migrations of `migrator` in one transaction holding the advisory
    /// lock `lock` (`pg_advisory_xact_lock`) until it commits.
    pub async fn migrate_postgres(
        pool: &PgPool,
        migrator: &Migrator,
        lock: i64,
    ) -> Result<(), SqlError> {
        let setup = SqlError::setup("postgres migration failed");
        let table = migrator.table;
        let mut tx = pool.begin().await.map_err(setup)?;
        // Held until commit: instances starting together migrate one after the other.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock)
            .execute(&mut *tx)
            .await
            .map_err(setup)?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 version     BIGINT NOT NULL PRIMARY KEY,
                 description TEXT   NOT NULL,
                 checksum    BYTEA  NOT NULL,
                 applied_at  BIGINT NOT NULL
             )"
        ))
        .execute(&mut *tx)
        .await
        .map_err(setup)?;
        let applied: Vec<(i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT version, checksum FROM {table} ORDER BY version"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(setup)?;
        for m in migrator.pending(&applied)? {
            // A plain string runs as a simple query: several statements in one. (Not
            // `raw_sql`, whose future is not `Send` over a transaction.)
            sqlx::Executor::execute(&mut *tx, m.sql)
                .await
                .map_err(setup)?;
            sqlx::query(&format!(
                "INSERT INTO {table} (version, description, checksum, applied_at) \
                 VALUES ($1, $2, $3, $4)"
            ))
            .bind(m.version)
            .bind(m.description)
            .bind(m.checksum())
            .bind(millis(SystemTime::now()))
            .execute(&mut *tx)
            .await
            .map_err(setup)?;
        }
        tx.commit().await.map_err(setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATOR: Migrator = Migrator {
        table: "test_migrations",
        newer: "database was migrated by a newer version of test",
        migrations: &[
            Migration {
                version: 1,
                description: "one",
                sql: "CREATE TABLE a (x INTEGER)",
            },
            Migration {
                version: 2,
                description: "two",
                sql: "CREATE TABLE b (x INTEGER)",
            },
        ],
    };

    #[test]
    fn pending_applies_what_is_missing_and_refuses_drift() {
        let ms = MIGRATOR.migrations;
        assert_eq!(MIGRATOR.pending(&[]).unwrap().len(), 2);
        let one = [(1, ms[0].checksum())];
        let todo = MIGRATOR.pending(&one).unwrap();
        assert_eq!(todo.iter().map(|m| m.version).collect::<Vec<_>>(), [2]);
        let both = [(1, ms[0].checksum()), (2, ms[1].checksum())];
        assert!(MIGRATOR.pending(&both).unwrap().is_empty());
        let changed = MIGRATOR.pending(&[(1, vec![0])]).unwrap_err();
        assert_eq!(changed.kind(), SqlErrorKind::Setup);
        assert!(changed.to_string().contains("differs"), "{changed}");
        let newer = MIGRATOR.pending(&[(3, vec![0])]).unwrap_err();
        assert_eq!(newer.kind(), SqlErrorKind::Setup);
        assert_eq!(newer.message(), MIGRATOR.newer);
    }

    #[test]
    fn checksums_are_the_sha256_of_the_sql() {
        // Recorded in existing databases: must never change.
        let m = Migration {
            version: 1,
            description: "abc",
            sql: "abc",
        };
        let hex: String = m.checksum().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn times_round_trip_and_bad_ones_are_none() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        assert_eq!(from_millis(millis(t)), Some(t));
        assert_eq!(millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_millis(-1), None);
    }

    #[test]
    fn sqlx_errors_are_classified() {
        let e = SqlError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), SqlErrorKind::Unavailable);
        assert!(e.source().is_some());
        let e = SqlError::from(sqlx::Error::Decode("bad".into()));
        assert_eq!(e.kind(), SqlErrorKind::Corrupt);
        let e = SqlError::from(sqlx::Error::ColumnDecode {
            index: "x".into(),
            source: "bad".into(),
        });
        assert_eq!(e.kind(), SqlErrorKind::Corrupt);
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use super::*;

    const MIGRATOR: Migrator = Migrator {
        table: "test_migrations",
        newer: "database was migrated by a newer version of test",
        migrations: &[Migration {
            version: 1,
            description: "create t",
            sql: "CREATE TABLE t (id TEXT PRIMARY KEY); CREATE TABLE u (x INTEGER)",
        }],
    };

    #[tokio::test]
    async fn sqlite_migrates_once_and_classifies_conflicts() {
        let pool = open_sqlite("sqlite::memory:").await.unwrap();
        migrate_sqlite(&pool, &MIGRATOR).await.unwrap();
        migrate_sqlite(&pool, &MIGRATOR).await.unwrap();
        let rows: Vec<(i64, String, Vec<u8>)> =
            sqlx::query_as("SELECT version, description, checksum FROM test_migrations")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            rows,
            [(1, "create t".to_owned(), MIGRATOR.migrations[0].checksum())]
        );
        sqlx::query("INSERT INTO t VALUES ('a')")
            .execute(&pool)
            .await
            .unwrap();
        let e = SqlError::from(
            sqlx::query("INSERT INTO t VALUES ('a')")
                .execute(&pool)
                .await
                .unwrap_err(),
        );
        assert_eq!(e.kind(), SqlErrorKind::Conflict);

        sqlx::query("UPDATE test_migrations SET checksum = x'00'")
            .execute(&pool)
            .await
            .unwrap();
        let e = migrate_sqlite(&pool, &MIGRATOR).await.unwrap_err();
        assert!(e.to_string().contains("differs"), "{e}");
    }

    #[tokio::test]
    async fn bad_sqlite_urls_are_setup_errors() {
        let e = open_sqlite("postgres://nope").await.unwrap_err();
        assert_eq!(e.kind(), SqlErrorKind::Setup);
        assert!(e.source().is_some());
    }
}
