//! [`PostgresStore`]: the issuer's stores in a PostgreSQL database (feature `postgres`).

use std::fmt;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tower_auth_core::sql::{Migrator, migrate_postgres, open_postgres};

use super::sql::{
    KEY_COLUMNS, Migration, REVOCATION_COLUMNS, cursor_param, db_error, migrator, millis,
    refresh_columns, revocation_batch, row_to_key, row_to_refresh, store_error,
};
use super::{
    RefreshFamily, RefreshTokenHash, RefreshTokenRecord, RefreshTokenStore, SigningKeyStore,
    StoreError, StoreErrorKind, StoreFuture, StoredSigningKey,
};
use crate::revocation::{
    Revocation, RevocationBatch, RevocationEvent, RevocationFeed, RevocationFeedFuture,
    RevocationKind, RevocationStore,
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
    Migration {
        version: 3,
        description: "create tower_auth_jwt_revocations",
        sql: include_str!("../../migrations/postgres/0003_create_revocations.sql"),
    },
]);

/// The `NOTIFY` channel of new revocations: the payload is the entry as JSON, or empty when
/// it would not fit (listeners then reload).
const REVOCATION_CHANNEL: &str = "tower_auth_jwt_revocations";
/// The largest payload sent; PostgreSQL refuses 8000 bytes and more.
const MAX_PAYLOAD: usize = 7900;
/// The `application_name` of the `LISTEN` connections of revocation lists, to tell them apart
/// in `pg_stat_activity`.
pub(crate) const REVOCATION_LISTENER_APPLICATION_NAME: &str = "tower-auth-jwt-revocations";
/// The longest pause between two attempts to reconnect the listener.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// The transaction-level advisory lock serializing this crate's migrations (`ta_jwt_m`).
const MIGRATION_LOCK: i64 = 0x7461_5f6a_7774_5f6d;
/// The transaction-level advisory lock serializing replacements of the active signing key
/// (`ta_jwt_k`).
const ACTIVE_KEY_LOCK: i64 = 0x7461_5f6a_7774_5f6b;

/// The issuer's [`SigningKeyStore`] and [`RefreshTokenStore`], and a [`RevocationStore`], in
/// PostgreSQL, for several instances sharing their signing keys, sessions and revocations
/// (feature `postgres`).
///
/// [`connect`](Self::connect) applies this crate's migrations, shipped inside the crate and
/// recorded in their own table, `tower_auth_jwt_migrations`; every table is prefixed
/// `tower_auth_jwt_` (`tower_auth_jwt_signing_keys`, `tower_auth_jwt_refresh_families`,
/// `tower_auth_jwt_refresh_tokens`), so one database (and schema) holds the tables of every
/// tower-auth crate and of your application. Instances starting together do not race: the
/// migrations run in one transaction under a transaction-level advisory lock
/// (`pg_advisory_xact_lock`). A migration that changed after it was applied, or a database
/// migrated by a newer version of this crate, is an error. Tables go to the first schema of
/// the connection's `search_path`. Times are stored as Unix milliseconds (`BIGINT`), as in
/// [`SqliteStore`](super::SqliteStore).
///
/// Revocations live in `tower_auth_jwt_revocations`, an append-only log. Each
/// [`RevocationStore::add_revocation`] runs `NOTIFY tower_auth_jwt_revocations, '<entry as
/// JSON>'` in the transaction of its insert, so every
/// [`RevocationList`](crate::revocation::RevocationList) on the database applies it as soon as
/// it commits. Each list holds one extra connection (`application_name`
/// `tower-auth-jwt-revocations`) that `LISTEN`s; when it is lost, the list reconnects (backoff
/// up to 5 s) and then reloads every entry, since notifications sent meanwhile are gone.
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
    listen_options: PgConnectOptions,
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
        let (pool, options) = open_postgres(&self.url, self.max_connections, self.acquire_timeout)
            .await
            .map_err(store_error)?;
        migrate_postgres(&pool, &MIGRATOR, MIGRATION_LOCK)
            .await
            .map_err(store_error)?;
        Ok(PostgresStore {
            pool,
            listen_options: options.application_name(REVOCATION_LISTENER_APPLICATION_NAME),
        })
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
            sqlx::query(
                "INSERT INTO tower_auth_jwt_signing_keys \
                 (kid, algorithm, material, created_at, retired_at) \
                 VALUES ($1, $2, $3, $4, NULL)",
            )
            .bind(new.kid())
            .bind(new.algorithm().as_str())
            .bind(new.secret_material())
            .bind(millis(new.created_at()))
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
    sqlx::query(
        "INSERT INTO tower_auth_jwt_refresh_tokens \
         (token_hash, family_id, created_at, expires_at, consumed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.hash.as_bytes()[..])
    .bind(&token.family_id)
    .bind(millis(token.created_at))
    .bind(millis(token.expires_at))
    .bind(token.consumed_at.map(millis))
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
            sqlx::query(
                "INSERT INTO tower_auth_jwt_refresh_families \
                 (id, subject, client_id, scope, claims, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)",
            )
            .bind(&family.id)
            .bind(&family.subject)
            .bind(&family.client_id)
            .bind(&family.scope)
            .bind(family.claims.to_string())
            .bind(millis(family.created_at))
            .bind(millis(family.expires_at))
            .bind(family.revoked_at.map(millis))
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

/// The `NOTIFY` payload of an entry: JSON, or empty when too large (listeners reload).
fn payload(entry: &Revocation) -> String {
    let json = serde_json::json!({
        "k": entry.kind.as_str(),
        "i": entry.issuer,
        "v": entry.value,
        "b": millis(entry.issued_before),
        "e": millis(entry.expires_at),
        "c": millis(entry.created_at),
    })
    .to_string();
    if json.len() > MAX_PAYLOAD {
        String::new()
    } else {
        json
    }
}

/// The entry of a payload; `None` for an empty or unreadable one.
fn parse_payload(payload: &str) -> Option<Revocation> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let time = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_i64)
            .and_then(tower_auth_core::sql::from_millis)
    };
    Some(Revocation {
        kind: RevocationKind::from_stored(v.get("k")?.as_str()?)?,
        issuer: v.get("i")?.as_str()?.to_owned(),
        value: v.get("v")?.as_str()?.to_owned(),
        issued_before: time("b")?,
        expires_at: time("e")?,
        created_at: time("c")?,
    })
}

impl RevocationStore for PostgresStore {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            sqlx::query(
                "INSERT INTO tower_auth_jwt_revocations \
                 (kind, issuer, value, issued_before, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(entry.kind.as_str())
            .bind(&entry.issuer)
            .bind(&entry.value)
            .bind(millis(entry.issued_before))
            .bind(millis(entry.expires_at))
            .bind(millis(entry.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            // Delivered to every listener when the transaction commits, never if it rolls back.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(payload(entry))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        })
    }

    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        Box::pin(async move {
            let top: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM tower_auth_jwt_revocations")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error)?;
            let rows = sqlx::query(&format!(
                "SELECT {REVOCATION_COLUMNS} FROM tower_auth_jwt_revocations \
                 WHERE expires_at >= $1 ORDER BY seq"
            ))
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            revocation_batch(&rows, u64::try_from(top).unwrap_or(0))
        })
    }

    /// Entries with a sequence number above `cursor`. Sequence numbers are taken at insert
    /// and transactions may commit out of order, so polling alone could skip one; lists on
    /// PostgreSQL use the notification feed instead and never call this.
    fn revocations_since(&self, cursor: u64) -> StoreFuture<'_, RevocationBatch> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "SELECT {REVOCATION_COLUMNS} FROM tower_auth_jwt_revocations \
                 WHERE seq > $1 ORDER BY seq"
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
                sqlx::query("DELETE FROM tower_auth_jwt_revocations WHERE expires_at < $1")
                    .bind(millis(before))
                    .execute(&self.pool)
                    .await
                    .map_err(db_error)?
                    .rows_affected(),
            )
        })
    }

    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        Some(Box::new(PgFeed {
            options: self.listen_options.clone(),
            listener: None,
            failures: 0,
        }))
    }
}

/// One `LISTEN` connection, opened when first polled, reopened when lost.
struct PgFeed {
    options: PgConnectOptions,
    listener: Option<PgListener>,
    /// Failed connection attempts in a row, for the backoff.
    failures: u32,
}

impl RevocationFeed for PgFeed {
    fn next(&mut self) -> RevocationFeedFuture<'_> {
        Box::pin(self.next_event())
    }
}

impl PgFeed {
    async fn next_event(&mut self) -> Option<RevocationEvent> {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                if self.failures > 0 {
                    let delay = Duration::from_millis(50)
                        .saturating_mul(1 << self.failures.min(7))
                        .min(MAX_RECONNECT_DELAY);
                    tokio::time::sleep(delay).await;
                }
                match listen(&self.options).await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        self.failures = 0;
                        // Whatever was notified while not listening is lost.
                        return Some(RevocationEvent::Reload);
                    }
                    Err(e) => {
                        self.failures = self.failures.saturating_add(1);
                        crate::telemetry::revocation_listener_failed(&db_error(e));
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    return Some(match parse_payload(n.payload()) {
                        Some(entry) => RevocationEvent::Added(entry),
                        // Too large to send, or not ours to read: reloading is always right.
                        None => RevocationEvent::Reload,
                    });
                }
                Ok(None) => {
                    crate::telemetry::revocation_listener_failed(&StoreError::new(
                        StoreErrorKind::Unavailable,
                        "listening connection lost",
                    ));
                    self.listener = None;
                }
                Err(e) => {
                    crate::telemetry::revocation_listener_failed(&db_error(e));
                    self.listener = None;
                }
            }
        }
    }
}

/// A fresh connection (in a pool of its own, so a dead one never blocks the next) listening
/// on [`REVOCATION_CHANNEL`].
async fn listen(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(MAX_RECONNECT_DELAY)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // Reconnection is done here, so that the list reloads after it.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(REVOCATION_CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn payload_round_trip_and_oversized_entries_ask_for_a_reload() {
        let t = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let mut entry = Revocation::subject("https://i", "alice", t(1_000), t(90_000), t(1_500));
        assert_eq!(parse_payload(&payload(&entry)), Some(entry.clone()));
        entry.kind = RevocationKind::Token;
        assert_eq!(parse_payload(&payload(&entry)), Some(entry.clone()));
        entry.value = "x".repeat(MAX_PAYLOAD);
        assert_eq!(payload(&entry), "");
        assert_eq!(parse_payload(""), None);
        assert_eq!(parse_payload(r#"{"k":"other"}"#), None);
    }
}
