use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool};
use sqlx::{Postgres, Transaction};
use tower_auth_core::sql::{Migrator, connect_listener, migrate_postgres, open_postgres};

use super::sql::{
    LIMIT_COLUMNS, Migration, bind_key, db_error, fetch_key, fetch_records, key_hashes, migrator,
    millis, store_error, write_limits,
};
use super::{
    Invalidation, InvalidationFeed, InvalidationFuture, KeyStore, StoreError, StoreErrorKind,
    StoreFuture,
};
use crate::limit::{Lease, LeaseRequest, LimitsUpdate};
use crate::{KeyHash, KeyRecord, StoredKey, telemetry};

const MIGRATOR: Migrator = migrator(&[
    Migration {
        version: 1,
        description: "create tower_auth_api_keys",
        sql: include_str!("../../migrations/postgres/0001_create_api_keys.sql"),
    },
    Migration {
        version: 2,
        description: "add limits to tower_auth_api_keys",
        sql: include_str!("../../migrations/postgres/0002_add_api_key_limits.sql"),
    },
    Migration {
        version: 3,
        description: "add limit leases to tower_auth_api_keys",
        sql: include_str!("../../migrations/postgres/0003_add_api_key_limit_leases.sql"),
    },
]);

/// The `NOTIFY` channel: the payload is the changed key's hash in lowercase hex.
pub(super) const CHANNEL: &str = "tower_auth_api_keys";
/// The transaction-level advisory lock serializing this crate's migrations (`ta_apike`).
const MIGRATION_LOCK: i64 = 0x7461_5f61_7069_6b65;
/// The `application_name` of the `LISTEN` connections, to tell them apart in
/// `pg_stat_activity`.
pub(crate) const LISTENER_APPLICATION_NAME: &str = "tower-auth-apikey-listener";
/// The longest pause between two attempts to reconnect the listener.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// How long the listener may stay quiet before it checks that its connection still answers.
const DEFAULT_LISTENER_HEARTBEAT: Duration = Duration::from_secs(30);
/// The longest the check may take before the connection is given up and reopened (shorter
/// heartbeats wait as long as their interval).
const MAX_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

const COLUMNS: &str = "id, key_hash, owner, name, scopes, created_at, expires_at, revoked_at, \
                       last_used_at, metadata::text AS metadata, rate_count, rate_period_ms, \
                       rate_burst, credits_remaining, credits_updated_at, \
                       credits_refill_count, credits_refill_period_ms";

/// The GCRA's emission interval of the key's rate limit, in microseconds (at least 1).
const EMISSION_US: &str = "GREATEST(1, rate_period_ms * 1000 / rate_count)";

/// The leasing statement: one `UPDATE ... RETURNING` on the key's row, so concurrent leases of
/// several instances queue on the row lock and each sees the one before. `$1` the key id,
/// `$2` the rate tokens wanted, `$3` now (Unix microseconds), `$4` the credits spent, `$5`
/// when (Unix milliseconds).
///
/// Rate: a GCRA whose theoretical arrival time is `rate_tat_us` (at least now); the tokens
/// available are those that fit before it runs `burst` emission intervals ahead of now; the
/// grant is the lesser of those and the tokens wanted, and moves the arrival time on by one
/// interval per token. Every right-hand side reads the row as it was, so the grant is written
/// to `lease_granted` for `RETURNING`. Credits: the remaining count, refilled when a refill
/// period began since `credits_updated_at`, less those spent, never below zero (as
/// `spend_credits`).
static LEASE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let base = "GREATEST(COALESCE(rate_tat_us, 0), $3)";
    let grant = format!(
        "LEAST($2, GREATEST(0, ($3 + rate_burst * {EMISSION_US} - {base}) / {EMISSION_US}))"
    );
    format!(
        "UPDATE tower_auth_api_keys SET \
           lease_granted = CASE WHEN rate_count IS NULL THEN NULL ELSE {grant} END, \
           rate_tat_us = CASE WHEN rate_count IS NULL THEN NULL \
                         ELSE {base} + {grant} * {EMISSION_US} END, \
           credits_remaining = CASE WHEN credits_remaining IS NULL THEN NULL \
             ELSE GREATEST(0, CASE WHEN credits_refill_period_ms IS NOT NULL \
                 AND ($5 - created_at) / credits_refill_period_ms \
                   > (credits_updated_at - created_at) / credits_refill_period_ms \
               THEN credits_refill_count ELSE credits_remaining END - $4) END, \
           credits_updated_at = CASE WHEN credits_remaining IS NULL THEN credits_updated_at \
             ELSE GREATEST(credits_updated_at, $5) END \
         WHERE id = $1 \
         RETURNING lease_granted, credits_remaining"
    )
});

/// A [`KeyStore`] in PostgreSQL, for deployments of many instances sharing their keys, with
/// cache invalidation across instances through `LISTEN`/`NOTIFY` (feature `postgres`).
///
/// [`connect`](Self::connect) applies this crate's migrations, shipped inside the crate and
/// recorded in their own table, `tower_auth_apikey_migrations`; the keys live in
/// `tower_auth_api_keys`, so one database (and schema) can hold the tables of every
/// tower-auth crate and of your application. Instances starting together do not race: the
/// migrations run in one transaction under a transaction-level advisory lock. A migration that
/// changed after it was applied, or a database migrated by a newer version of this crate, is
/// an error. Tables go to the first schema of the connection's `search_path`.
///
/// # Invalidation
///
/// [`ApiKeys::create`](crate::ApiKeys::create), [`revoke`](crate::ApiKeys::revoke),
/// [`rotate`](crate::ApiKeys::rotate) (which moves the old key's expiry and creates a new one)
/// and [`update_limits`](crate::ApiKeys::update_limits) run
/// `NOTIFY tower_auth_api_keys, '<hash in hex>'` for each key they create or change, in the
/// transaction that makes the change, whichever process makes it (a server, the CLI): a
/// creation lets the new key through the authenticators'
/// [filter of known keys](crate::ApiKeyAuthenticatorBuilder::key_filter). Every
/// [`ApiKeyAuthenticator`](crate::ApiKeyAuthenticator) built on a `PostgresStore` holds one
/// extra connection (`application_name` `tower-auth-apikey-listener`) that `LISTEN`s on the
/// channel and drops the key's cache entry as soon as the notification arrives (in
/// milliseconds over a LAN). When that connection is lost, it reconnects (with a backoff up to
/// 5 s) and then clears its whole cache, since notifications sent meanwhile are gone; the
/// cache TTL stays the upper bound for anything missed. A connection lost without a word (a
/// NAT or load balancer dropping it silently) is found by a heartbeat: after
/// [`listener_heartbeat`](PostgresStoreBuilder::listener_heartbeat) (30 s) without a
/// notification the listener sends `SELECT 1`, and reconnects when no answer comes in time.
/// Changes made in SQL by hand send no notification: run the same `NOTIFY` (or wait for the
/// TTL, and for a key inserted by hand, the filter's
/// [refresh](crate::ApiKeyAuthenticatorBuilder::key_filter_refresh)).
///
/// # Outages
///
/// Lookups use a pool whose connection attempts give up after the
/// [`acquire_timeout`](PostgresStoreBuilder::acquire_timeout) (default 1 s), inside the
/// authenticator's deadline, so a request during an outage gets a 503 promptly, and the pool
/// reconnects by itself when the server is back.
///
/// ```no_run
/// use tower_auth_apikey::{ApiKeyAuthenticator, PostgresStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = PostgresStore::connect("postgres://app@db.internal/app").await.unwrap();
/// let auth = ApiKeyAuthenticator::builder(store).build().unwrap();
/// # drop(auth);
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    listen_options: PgConnectOptions,
    listener_heartbeat: Duration,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The connection pool (for the bulk loader).
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

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
            listener_heartbeat: DEFAULT_LISTENER_HEARTBEAT,
        }
    }

    /// Closes the pool; calls made afterwards fail. Listening connections close with their
    /// authenticators.
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
    listener_heartbeat: Duration,
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PostgresStoreBuilder")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("listener_heartbeat", &self.listener_heartbeat)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    /// The most connections the pool opens (default 10, at least 1). Listening connections
    /// are not counted: each authenticator holds one more.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a store call waits for a connection, including connecting (default 1 s). Keep
    /// it below the authenticator's
    /// [`store_timeout`](crate::ApiKeyAuthenticatorBuilder::store_timeout).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long a listening connection may go without a notification before it checks that
    /// the server still answers (default 30 s, at least 100 ms). A connection dropped without
    /// a word (a NAT or load balancer forgetting it, a failover) otherwise waits for
    /// notifications that never come; the check sends `SELECT 1` and, without an answer
    /// within the same interval (at most 5 s), reconnects and clears the cache. This bounds how long such a loss can delay
    /// revocations (the cache TTL bounds it too).
    pub fn listener_heartbeat(mut self, interval: Duration) -> Self {
        self.listener_heartbeat = interval;
        self
    }

    /// Connects and migrates the database.
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        if self.listener_heartbeat < Duration::from_millis(100) {
            return Err(StoreError::new(
                StoreErrorKind::Setup,
                "listener_heartbeat must be at least 100 ms",
            ));
        }
        let (pool, options) = open_postgres(&self.url, self.max_connections, self.acquire_timeout)
            .await
            .map_err(store_error)?;
        migrate_postgres(&pool, &MIGRATOR, MIGRATION_LOCK)
            .await
            .map_err(store_error)?;
        Ok(PostgresStore {
            pool,
            listen_options: options.application_name(LISTENER_APPLICATION_NAME),
            listener_heartbeat: self.listener_heartbeat,
        })
    }
}

async fn insert(tx: &mut Transaction<'_, Postgres>, key: &StoredKey) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO tower_auth_api_keys (id, key_hash, owner, name, scopes, created_at, \
         expires_at, revoked_at, last_used_at, metadata, {}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, \
         $11, $12, $13, $14, $15, $16, $17)",
        LIMIT_COLUMNS.join(", ")
    );
    bind_key(sqlx::query(&sql), key)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The key `id`, locked until the end of `tx`.
async fn select_for_update(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
) -> Result<Option<StoredKey>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tower_auth_api_keys WHERE id = $1 FOR UPDATE");
    fetch_key(sqlx::query(&sql).bind(id), &mut **tx).await
}

/// Publishes the change of `hash`; delivered to listeners when the transaction commits, and
/// never if it rolls back.
async fn notify(tx: &mut Transaction<'_, Postgres>, hash: &KeyHash) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(to_hex(hash.as_bytes()))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl KeyStore for PostgresStore {
    fn find_by_hash<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let sql = format!("SELECT {COLUMNS} FROM tower_auth_api_keys WHERE key_hash = $1");
            let query = sqlx::query(&sql).bind(&hash.as_bytes()[..]);
            Ok(fetch_key(query, &self.pool).await?.map(|k| k.record))
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let sql = format!("SELECT {COLUMNS} FROM tower_auth_api_keys WHERE id = $1");
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
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            insert(&mut tx, key).await?;
            // Filters of known keys admit it once notified.
            notify(&mut tx, &key.hash).await?;
            tx.commit().await.map_err(db_error)
        })
    }

    fn revoke<'a>(&'a self, id: &'a str, at: SystemTime) -> StoreFuture<'a, Option<StoredKey>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let sql = format!(
                "UPDATE tower_auth_api_keys SET revoked_at = COALESCE(revoked_at, $1) \
                 WHERE id = $2 RETURNING {COLUMNS}"
            );
            let key = fetch_key(sqlx::query(&sql).bind(millis(at)).bind(id), &mut *tx).await?;
            if let Some(key) = &key {
                notify(&mut tx, &key.hash).await?;
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
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let sql = format!(
                "UPDATE tower_auth_api_keys SET expires_at = $1 \
                 WHERE id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
            );
            let query = sqlx::query(&sql).bind(millis(old_expires_at)).bind(old_id);
            let old = fetch_key(query, &mut *tx).await?;
            let Some(old) = old else {
                // Dropping the transaction rolls it back.
                return Ok(None);
            };
            insert(&mut tx, new).await?;
            notify(&mut tx, &old.hash).await?;
            notify(&mut tx, &new.hash).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(Some(old))
        })
    }

    fn update_limits<'a>(
        &'a self,
        id: &'a str,
        update: &'a LimitsUpdate,
        at: SystemTime,
    ) -> StoreFuture<'a, Option<StoredKey>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let Some(mut key) = select_for_update(&mut tx, id).await? else {
                return Ok(None);
            };
            let r = &mut key.record;
            let old_rate = r.limits.rate;
            r.limits = update.apply(&r.limits, r.created_at, at);
            let rate_changed = r.limits.rate != old_rate;
            write_limits(&mut *tx, &key).await?;
            if rate_changed {
                // A new rate limit starts with a full burst, as in memory.
                sqlx::query("UPDATE tower_auth_api_keys SET rate_tat_us = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            notify(&mut tx, &key.hash).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(Some(key))
        })
    }

    fn spend_credits<'a>(&'a self, batch: &'a [(String, u64, SystemTime)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            // Rows are locked in id order, so that two instances writing back overlapping
            // batches cannot deadlock.
            let mut batch: Vec<_> = batch.iter().collect();
            batch.sort_by(|a, b| a.0.cmp(&b.0));
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            for (id, spent, at) in batch {
                let Some(mut key) = select_for_update(&mut tx, id).await? else {
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

    fn shares_limits(&self) -> bool {
        true
    }

    fn lease_limits<'a>(
        &'a self,
        id: &'a str,
        request: &'a LeaseRequest,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            let now_us = i64::try_from(
                now.duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros(),
            )
            .unwrap_or(i64::MAX);
            let spent_at = if request.credits_spent > 0 {
                request.credits_spent_at
            } else {
                now
            };
            let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(&LEASE_SQL)
                .bind(id)
                .bind(i64::try_from(request.rate_tokens).unwrap_or(i64::MAX))
                .bind(now_us)
                .bind(i64::try_from(request.credits_spent).unwrap_or(i64::MAX))
                .bind(millis(spent_at))
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(row.map(|(granted, credits)| Lease {
                rate_tokens: granted.map_or(request.rate_tokens, |g| {
                    u64::try_from(g).unwrap_or_default()
                }),
                credits_remaining: credits.map(|c| u64::try_from(c).unwrap_or_default()),
            }))
        })
    }

    fn record_last_used<'a>(&'a self, batch: &'a [(String, SystemTime)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            // One statement for the whole batch; one row per id, the latest time.
            let mut latest: HashMap<&str, i64> = HashMap::with_capacity(batch.len());
            for (id, at) in batch {
                let at = millis(*at);
                let e = latest.entry(id.as_str()).or_insert(at);
                *e = (*e).max(at);
            }
            let (ids, times): (Vec<&str>, Vec<i64>) = latest.into_iter().unzip();
            sqlx::query(
                "UPDATE tower_auth_api_keys AS k \
                 SET last_used_at = GREATEST(COALESCE(k.last_used_at, 0), b.at) \
                 FROM UNNEST($1::text[], $2::bigint[]) AS b(id, at) WHERE k.id = b.id",
            )
            .bind(ids)
            .bind(times)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(())
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

    fn invalidations(&self) -> Option<Box<dyn InvalidationFeed>> {
        Some(Box::new(PgFeed {
            options: self.listen_options.clone(),
            heartbeat: self.listener_heartbeat,
            listener: None,
            failures: 0,
        }))
    }
}

/// One `LISTEN` connection, opened when first polled, reopened when lost.
struct PgFeed {
    options: PgConnectOptions,
    /// Quiet time after which the connection is checked.
    heartbeat: Duration,
    listener: Option<PgListener>,
    /// Failed connection attempts in a row, for the backoff.
    failures: u32,
}

impl InvalidationFeed for PgFeed {
    fn next(&mut self) -> InvalidationFuture<'_> {
        Box::pin(self.next_invalidation())
    }
}

impl PgFeed {
    async fn next_invalidation(&mut self) -> Option<Invalidation> {
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
                        telemetry::listener_connected();
                        // Whatever was notified while not listening is lost.
                        return Some(Invalidation::All);
                    }
                    Err(e) => {
                        self.failures = self.failures.saturating_add(1);
                        telemetry::listener_failed(&StoreError::unavailable(e));
                        continue;
                    }
                }
            };
            // `try_recv` is cancel-safe: a notification arriving as the wait ends is kept.
            let Ok(received) = tokio::time::timeout(self.heartbeat, listener.try_recv()).await
            else {
                // Quiet for a while: check that the connection still answers. Notifications
                // arriving meanwhile are buffered by the listener.
                let ping = sqlx::query("SELECT 1").execute(&mut *listener);
                let wait = self.heartbeat.min(MAX_HEARTBEAT_TIMEOUT);
                if !matches!(tokio::time::timeout(wait, ping).await, Ok(Ok(_))) {
                    telemetry::listener_failed(&StoreError::new(
                        StoreErrorKind::Unavailable,
                        "listening connection does not answer",
                    ));
                    self.listener = None;
                }
                continue;
            };
            match received {
                Ok(Some(n)) => {
                    return Some(match parse_hex(n.payload()) {
                        Some(hash) => Invalidation::Key(KeyHash::from_bytes(hash)),
                        // Not ours to interpret: dropping everything is always safe.
                        None => Invalidation::All,
                    });
                }
                Ok(None) => {
                    telemetry::listener_failed(&StoreError::new(
                        StoreErrorKind::Unavailable,
                        "listening connection lost",
                    ));
                    self.listener = None;
                }
                Err(e) => {
                    telemetry::listener_failed(&StoreError::unavailable(e));
                    self.listener = None;
                }
            }
        }
    }
}

/// A fresh connection listening on [`CHANNEL`]. It does not reconnect by itself: the feed
/// does, so that the cache is cleared after it.
async fn listen(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    // Connecting is bounded by the pool's acquire timeout, `LISTEN` by nothing: a connection
    // gone silent right after connecting would stall the feed before its heartbeat starts.
    let setup = async {
        let mut listener = connect_listener(options, MAX_RECONNECT_DELAY).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    };
    tokio::time::timeout(MAX_RECONNECT_DELAY.saturating_mul(2), setup)
        .await
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "LISTEN did not complete in time",
            )))
        })
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let hex = to_hex(&bytes);
        assert_eq!(hex.len(), 64);
        assert_eq!(parse_hex(&hex), Some(bytes));
        assert_eq!(parse_hex(&hex.to_uppercase()), Some(bytes));
        assert_eq!(parse_hex(&hex[..62]), None);
        assert_eq!(parse_hex(&format!("{}zz", &hex[..62])), None);
    }

    #[tokio::test]
    async fn bad_urls_are_setup_errors() {
        let e = PostgresStore::connect("sqlite://nope").await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        let e = PostgresStore::builder("postgres://localhost/x")
            .max_connections(0)
            .connect()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        // Checked before connecting: no server is needed to refuse it.
        let e = PostgresStore::builder("postgres://127.0.0.1:1/x")
            .listener_heartbeat(Duration::from_millis(10))
            .connect()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        assert!(e.to_string().contains("listener_heartbeat"), "{e}");
    }
}
