//! Every crate's migrations on ONE database, on SQLite and on Postgres, next to an application
//! that uses sqlx's own migrator: each crate records its migrations in a table of its own, so
//! they coexist, and running them all again changes nothing.
//!
//! A crate that adds a store with migrations adds one line to [`MIGRATORS`] (the tables it
//! creates included); nothing else changes here.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;

use sqlx::{AnyPool, Row};
use tower_auth_tests::PgDatabase;

type Migrate = fn(String) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// One crate's migrations: its name, its migrations table, the tables it creates (on both
/// backends, and on SQLite only), and how it migrates a database given a SQLite URL and a
/// Postgres URL.
struct Migrator {
    krate: &'static str,
    migrations_table: &'static str,
    tables: &'static [&'static str],
    /// The SQLite change logs, which Postgres does without (it notifies).
    sqlite_tables: &'static [&'static str],
    /// Columns added by later migrations, as `(table, column)`: they must all be there.
    columns: &'static [(&'static str, &'static str)],
    sqlite: Migrate,
    postgres: Migrate,
}

const MIGRATORS: &[Migrator] = &[
    Migrator {
        krate: "tower-auth-apikey",
        migrations_table: "tower_auth_apikey_migrations",
        tables: &["tower_auth_api_keys"],
        sqlite_tables: &["tower_auth_api_key_changes"],
        columns: &[
            ("tower_auth_api_keys", "rate_count"),
            ("tower_auth_api_keys", "rate_period_ms"),
            ("tower_auth_api_keys", "rate_burst"),
            ("tower_auth_api_keys", "credits_remaining"),
            ("tower_auth_api_keys", "credits_updated_at"),
            ("tower_auth_api_keys", "credits_refill_count"),
            ("tower_auth_api_keys", "credits_refill_period_ms"),
        ],
        sqlite: |url| {
            Box::pin(async move {
                let s = tower_auth_apikey::SqliteStore::connect(&url).await.unwrap();
                s.close().await;
            })
        },
        postgres: |url| {
            Box::pin(async move {
                let s = tower_auth_apikey::PostgresStore::connect(&url)
                    .await
                    .unwrap();
                s.close().await;
            })
        },
    },
    Migrator {
        krate: "tower-auth-jwt",
        migrations_table: "tower_auth_jwt_migrations",
        tables: &[
            "tower_auth_jwt_signing_keys",
            "tower_auth_jwt_refresh_families",
            "tower_auth_jwt_refresh_tokens",
        ],
        sqlite_tables: &[],
        columns: &[],
        sqlite: |url| {
            Box::pin(async move {
                tower_auth_jwt::issue::SqliteStore::connect(&url)
                    .await
                    .unwrap()
                    .close()
                    .await
            })
        },
        postgres: |url| {
            Box::pin(async move {
                tower_auth_jwt::issue::PostgresStore::connect(&url)
                    .await
                    .unwrap()
                    .close()
                    .await
            })
        },
    },
    Migrator {
        krate: "tower-auth-jwt (revocations)",
        migrations_table: "tower_auth_jwt_revocation_migrations",
        tables: &["tower_auth_jwt_revocations"],
        sqlite_tables: &[],
        columns: &[],
        sqlite: |url| {
            Box::pin(async move {
                tower_auth_jwt::revocation::SqliteRevocationStore::connect(&url)
                    .await
                    .unwrap()
                    .close()
                    .await
            })
        },
        postgres: |url| {
            Box::pin(async move {
                tower_auth_jwt::revocation::PostgresRevocationStore::connect(&url)
                    .await
                    .unwrap()
                    .close()
                    .await
            })
        },
    },
    Migrator {
        krate: "tower-auth-jwt (dpop)",
        migrations_table: "tower_auth_jwt_dpop_migrations",
        tables: &["tower_auth_jwt_dpop_proofs"],
        sqlite_tables: &[],
        columns: &[],
        sqlite: |url| {
            Box::pin(async move {
                tower_auth_jwt::dpop::SqliteReplayStore::connect(&url)
                    .await
                    .unwrap()
                    .close()
                    .await
            })
        },
        postgres: |url| {
            Box::pin(async move {
                tower_auth_jwt::dpop::PostgresReplayStore::connect(&url)
                    .await
                    .unwrap()
                    .close()
                    .await
            })
        },
    },
];

/// The application's own sqlx-migrated table, present before any crate migrates.
const APP_SQL: &str =
    "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT);
                       INSERT INTO _sqlx_migrations VALUES (1, 'app');
                       CREATE TABLE users (id BIGINT PRIMARY KEY)";

async fn check(sqlite: bool, pool: &AnyPool) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for m in MIGRATORS {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {}", m.migrations_table))
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{}: no {}: {e}", m.krate, m.migrations_table))
            .get(0);
        assert!(n >= 1, "{} recorded no migration", m.krate);
        counts.push((m.migrations_table.to_owned(), n));
        let only_sqlite = if sqlite { m.sqlite_tables } else { &[] };
        for table in m.tables.iter().chain(only_sqlite) {
            sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(pool)
                .await
                .unwrap_or_else(|e| panic!("{}: table {table} missing: {e}", m.krate));
        }
        for (table, column) in m.columns {
            sqlx::query(&format!("SELECT COUNT({column}) FROM {table}"))
                .fetch_one(pool)
                .await
                .unwrap_or_else(|e| panic!("{}: column {table}.{column} missing: {e}", m.krate));
        }
    }
    let app: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(app, 1, "the application's migrations are untouched");
    counts
}

async fn run_all(sqlite: bool, url: &str) -> Vec<(String, i64)> {
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(url).await.unwrap();
    sqlx::raw_sql(APP_SQL).execute(&pool).await.unwrap();
    for m in MIGRATORS {
        (if sqlite { m.sqlite } else { m.postgres })(url.to_owned()).await;
    }
    let first = check(sqlite, &pool).await;
    // Again, in the reverse order: nothing is applied twice.
    for m in MIGRATORS.iter().rev() {
        (if sqlite { m.sqlite } else { m.postgres })(url.to_owned()).await;
    }
    assert_eq!(check(sqlite, &pool).await, first);
    pool.close().await;
    first
}

#[tokio::test]
async fn every_crate_migrates_one_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("all.db").display());
    let counts = run_all(true, &url).await;
    println!("sqlite: {counts:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run scripts/test"]
async fn every_crate_migrates_one_postgres_database() {
    let db = PgDatabase::create().await;
    let counts = run_all(false, &db.url).await;
    println!("postgres: {counts:?}");
    db.drop_database().await;
}
