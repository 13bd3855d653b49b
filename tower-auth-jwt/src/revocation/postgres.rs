//! [`PostgresRevocationStore`]: revocations in a PostgreSQL database, pushed to every instance
//! by `LISTEN`/`NOTIFY` (feature `postgres`).

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool};
use sqlx::{Postgres, Transaction};
use tower_auth_core::sql::{Migrator, connect_listener, migrate_postgres, open_postgres};

use super::sql::{
    Migration, REVOCATION_COLUMNS, cursor_param, db_error, migrator, millis, revocation_batch,
    store_error,
};
use super::{
    Revocation, RevocationBatch, RevocationEvent, RevocationFeed, RevocationFeedFuture,
    RevocationStore,
};
use crate::store::{StoreError, StoreErrorKind, StoreFuture};

const MIGRATOR: Migrator = migrator(&[Migration {
    version: 1,
    description: "create tower_auth_jwt_revocations",
    sql: include_str!("migrations/postgres/0001_create_revocations.sql"),
}]);

/// The `NOTIFY` channel of new revocations, as SQL: `tower_auth_jwt_revocations.<schema>` (the
/// schema's MD5 when its name is too long for a channel name), so deployments that share a
/// database with a schema each do not hear each other. The payload is the new row's `seq`.
const REVOCATION_CHANNEL_SQL: &str = "'tower_auth_jwt_revocations.' || CASE \
     WHEN octet_length(current_schema()) <= 36 THEN current_schema() \
     ELSE md5(current_schema()) END";
/// The longest a heartbeat may take to come back, and the deadline of reading notified rows.
const MAX_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default interval of the revocation feed's heartbeat.
pub const DEFAULT_REVOCATION_HEARTBEAT: Duration = Duration::from_secs(30);
/// Rows are deleted only once expired this long by the database's clock (10 min, the largest
/// verifier leeway), whatever the clock of the instance purging.
const PURGE_MARGIN: Duration = crate::MAX_LEEWAY;
/// The `application_name` of the `LISTEN` connections of revocation lists, to tell them apart
/// in `pg_stat_activity`.
const REVOCATION_LISTENER_APPLICATION_NAME: &str = "tower-auth-jwt-revocations";
/// The longest pause between two attempts to reconnect the listener.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// The deadline of opening the listener: connecting, reading its channel and `LISTEN`.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest heartbeat accepted.
pub const MIN_REVOCATION_HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest heartbeat accepted.
pub const MAX_REVOCATION_HEARTBEAT: Duration = Duration::from_secs(3600);
/// Heartbeats missed (or not sent) in a row before the feed logs at `error` level.
const MISSES_BEFORE_ERROR: u32 = 3;
/// The pause before reading again notified rows that were not found (committed rows are
/// visible once notified, but a replica or pooler in between may lag).
const HINT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The least time between two reloads asked for because notified rows were missing (anyone
/// who can connect can notify a sequence number that has no row).
const MISSING_ROW_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// The transaction-level advisory lock serializing the revocation migrations (`ta_jwt_r`).
const MIGRATION_LOCK: i64 = 0x7461_5f6a_7774_5f72;

/// A [`RevocationStore`] in PostgreSQL, for several instances sharing their revocations, each
/// one applied by every instance as soon as it commits (feature `postgres`).
///
/// [`connect`](Self::connect) applies the revocation migrations, shipped inside the crate and
/// recorded in their own table, `tower_auth_jwt_revocation_migrations`, so one database (and
/// schema) holds the tables of every tower-auth crate, of the issuer's
/// `issue::PostgresStore` (feature `issue`) and of your application.
/// Instances starting together do not race: the migrations run in one transaction under a
/// transaction-level advisory lock (`pg_advisory_xact_lock`). A migration that changed after
/// it was applied, or a database migrated by a newer version of this crate, is an error.
/// Tables go to the first schema of the connection's `search_path`. Times are stored as Unix
/// milliseconds (`BIGINT`).
///
/// Revocations live in `tower_auth_jwt_revocations`, an append-only log. Each
/// [`RevocationStore::add_revocation`] notifies the channel `tower_auth_jwt_revocations.<schema>`
/// (the current schema, so deployments sharing a database with a schema each stay apart)
/// with the new row's `seq` in the transaction of its insert, and every
/// [`RevocationList`](super::RevocationList) on the database reads that row as
/// soon as it commits. The notification is only a hint: anyone who can connect can send one,
/// so the row is read from the table, and a payload that is not a sequence number is ignored
/// (and counted). Each list holds one extra connection (`application_name`
/// `tower-auth-jwt-revocations`) that `LISTEN`s and checks itself with a
/// [heartbeat](PostgresRevocationStoreBuilder::revocation_heartbeat); when it is lost or
/// silent, the list reconnects (each attempt under a 10 s deadline, backoff up to 5 s, reset
/// only once a heartbeat comes back on the new connection) and then reloads every entry, since
/// notifications sent meanwhile are gone. A notified row that cannot be found is read once
/// more after 100 ms, then asks for a reload (at most every 30 s). Full reads take the
/// cursor from the identity sequence, or `MAX(seq)` when the role has no privilege on the
/// sequence. Expired rows are deleted only once expired by the database's clock too,
/// with a 10 min margin, so an instance whose clock runs ahead deletes nothing live.
///
/// Store calls use a pool whose connection attempts give up after the
/// [`acquire_timeout`](PostgresRevocationStoreBuilder::acquire_timeout) (default 1 s), inside
/// the list's [`store_timeout`](super::RevocationListBuilder::store_timeout) (2 s).
///
/// ```no_run
/// use tower_auth_jwt::revocation::{PostgresRevocationStore, RevocationList};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = PostgresRevocationStore::connect("postgres://app@db.internal/app")
///     .await
///     .unwrap();
/// let list = RevocationList::builder(store).build().unwrap();
/// list.load().await.unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresRevocationStore {
    pool: PgPool,
    listen_options: PgConnectOptions,
    heartbeat: Duration,
}

impl fmt::Debug for PostgresRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRevocationStore")
            .field("connections", &self.pool.size())
            .field("revocation_heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

impl PostgresRevocationStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, any
    /// libpq-style parameters sqlx accepts) with the default pool settings, and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// Starts a builder for the pool and feed settings.
    pub fn builder(url: impl Into<String>) -> PostgresRevocationStoreBuilder {
        PostgresRevocationStoreBuilder {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(1),
            heartbeat: DEFAULT_REVOCATION_HEARTBEAT,
        }
    }

    /// Closes the pool; calls made afterwards fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The position of the newest revocation ever added: the identity sequence's last
    /// value, which never goes back (unlike `MAX(seq)` after a purge). Reading it needs
    /// `SELECT` or `USAGE` on the sequence, which inserting into an identity column does
    /// not: without them, `MAX(seq)`. Lists on PostgreSQL never poll by cursor (they use
    /// the notification feed), so a cursor that goes back after a purge costs nothing there.
    async fn revocation_cursor(&self) -> Result<i64, StoreError> {
        let last = sqlx::query_scalar(
            "SELECT COALESCE(pg_sequence_last_value(\
             pg_get_serial_sequence('tower_auth_jwt_revocations', 'seq')), 0)",
        )
        .fetch_one(&self.pool)
        .await;
        match last {
            Ok(top) => Ok(top),
            Err(e) if is_permission_denied(&e) => {
                sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM tower_auth_jwt_revocations")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_error)
            }
            Err(e) => Err(db_error(e)),
        }
    }
}

/// Whether `e` is PostgreSQL's `insufficient_privilege` (SQLSTATE 42501).
fn is_permission_denied(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "42501")
}

/// Pool and feed settings of a [`PostgresRevocationStore`]. Created by
/// [`PostgresRevocationStore::builder`].
#[must_use]
pub struct PostgresRevocationStoreBuilder {
    url: String,
    max_connections: u32,
    acquire_timeout: Duration,
    heartbeat: Duration,
}

impl fmt::Debug for PostgresRevocationStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("PostgresRevocationStoreBuilder")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("revocation_heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

impl PostgresRevocationStoreBuilder {
    /// The most connections the pool opens (default 10, at least 1), besides the `LISTEN`
    /// connection of each list.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a store call waits for a connection, including connecting (default 1 s). Keep
    /// it below the list's [`store_timeout`](super::RevocationListBuilder::store_timeout).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How often the `LISTEN` connection of a revocation list checks that notifications
    /// still reach it (default 30 s, from [1 s](MIN_REVOCATION_HEARTBEAT) to
    /// [1 h](MAX_REVOCATION_HEARTBEAT): [`connect`](Self::connect) refuses other values with
    /// [`StoreErrorKind::InvalidInput`], its source naming the value): it notifies a channel of its own
    /// through the pool and expects the notification back within the interval (at most
    /// 10 s); otherwise it reconnects and the list reloads. This catches connections dropped
    /// silently (sqlx enables no TCP keepalive) and poolers that accept `LISTEN` but deliver
    /// nothing (PgBouncer in transaction mode). Each heartbeat is also the list's proof of
    /// freshness ([`RevocationList::staleness`](super::RevocationList::staleness)).
    /// A heartbeat that cannot be sent (the pool exhausted) keeps the connection and is
    /// retried at the next interval, the list getting staler meanwhile; after 3 misses in a
    /// row the feed logs at `error` level.
    pub fn revocation_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Connects and migrates the database.
    pub async fn connect(self) -> Result<PostgresRevocationStore, StoreError> {
        if !(MIN_REVOCATION_HEARTBEAT..=MAX_REVOCATION_HEARTBEAT).contains(&self.heartbeat) {
            return Err(StoreError::new(
                StoreErrorKind::InvalidInput,
                "revocation heartbeat out of range",
            )
            .with_source(crate::ConfigError::new(
                "revocation_heartbeat",
                format!("{}s", self.heartbeat.as_secs_f64()),
                "must be from 1 s to 1 h",
            )));
        }
        let (pool, options) = open_postgres(&self.url, self.max_connections, self.acquire_timeout)
            .await
            .map_err(store_error)?;
        migrate_postgres(&pool, &MIGRATOR, MIGRATION_LOCK)
            .await
            .map_err(store_error)?;
        Ok(PostgresRevocationStore {
            pool,
            listen_options: options.application_name(REVOCATION_LISTENER_APPLICATION_NAME),
            heartbeat: self.heartbeat,
        })
    }
}

/// Inserts `entry` and notifies its `seq` in `tx`.
async fn insert_revocation(
    tx: &mut Transaction<'_, Postgres>,
    entry: &Revocation,
) -> Result<(), StoreError> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO tower_auth_jwt_revocations \
                 (kind, issuer, value, issued_before, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
    )
    .bind(entry.kind.as_str())
    .bind(&entry.issuer)
    .bind(&entry.value)
    .bind(millis(entry.issued_before))
    .bind(millis(entry.expires_at))
    .bind(millis(entry.created_at))
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    // Delivered to every listener of this schema's channel when the transaction
    // commits, never if it rolls back. Only the sequence number: listeners read the
    // row itself.
    sqlx::query(&format!("SELECT pg_notify({REVOCATION_CHANNEL_SQL}, $1)"))
        .bind(seq.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl RevocationStore for PostgresRevocationStore {
    fn add_revocation<'a>(&'a self, entry: &'a Revocation) -> StoreFuture<'a, ()> {
        self.add_revocations(std::slice::from_ref(entry))
    }

    /// Appends the entries in one transaction, which notifies each `seq` when it commits.
    fn add_revocations<'a>(&'a self, entries: &'a [Revocation]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            for entry in entries {
                insert_revocation(&mut tx, entry).await?;
            }
            tx.commit().await.map_err(db_error)
        })
    }

    fn revocations(&self, now: SystemTime) -> StoreFuture<'_, RevocationBatch> {
        Box::pin(async move {
            let top = self.revocation_cursor().await?;
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
    /// PostgreSQL use the notification feed, and their [`poll`](crate::revocation::RevocationList::poll)
    /// is a full reload.
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

    /// Deletes the rows that expired before `before` and, by the database's clock, more than
    /// 10 min (the largest verifier leeway) ago: an instance whose clock runs ahead cannot delete the live
    /// revocations of the others.
    fn delete_revocations_expired_before(&self, before: SystemTime) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            Ok(sqlx::query(
                "DELETE FROM tower_auth_jwt_revocations WHERE expires_at < LEAST($1, \
                 (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - $2)",
            )
            .bind(millis(before))
            .bind(i64::try_from(PURGE_MARGIN.as_millis()).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected())
        })
    }

    fn revocation_feed(&self) -> Option<Box<dyn RevocationFeed>> {
        Some(Box::new(PgFeed {
            pool: self.pool.clone(),
            options: self.listen_options.clone(),
            heartbeat: self.heartbeat,
            listener: None,
            heartbeat_channel: String::new(),
            failures: 0,
            ready: VecDeque::new(),
            ping: 0,
            waiting_for: None,
            next_heartbeat: tokio::time::Instant::now(),
            misses: 0,
            missing_reload_at: None,
        }))
    }
}

/// One `LISTEN` connection, opened by [`RevocationFeed::connect`], reopened when lost.
///
/// Notifications are hints: a numeric payload names the `seq` of a new row, which is read
/// from the table (so a forged notification cannot add an entry the table does not hold);
/// anything else is ignored and counted. Every `heartbeat` the feed notifies a channel only
/// its own connection listens to, through the pool, and expects it back within the interval
/// (at most 10 s): a connection that was dropped silently (no TCP keepalive) or that cannot
/// deliver notifications (a transaction-mode pooler) is replaced, and the list reloads.
struct PgFeed {
    pool: PgPool,
    options: PgConnectOptions,
    heartbeat: Duration,
    listener: Option<PgListener>,
    /// The channel of this connection's heartbeats: `tower_auth_jwt_heartbeat_<backend pid>`.
    heartbeat_channel: String,
    /// Failed connection attempts in a row, for the backoff.
    failures: u32,
    /// Events read but not yet returned.
    ready: VecDeque<RevocationEvent>,
    /// The number of the last heartbeat sent.
    ping: u64,
    /// The heartbeat awaited, and until when.
    waiting_for: Option<(String, tokio::time::Instant)>,
    next_heartbeat: tokio::time::Instant,
    /// Heartbeats missed or not sent in a row.
    misses: u32,
    /// When the last reload for missing notified rows was asked for.
    missing_reload_at: Option<tokio::time::Instant>,
}

/// The most notified entries read in one query.
const MAX_HINTS: usize = 512;

impl RevocationFeed for PgFeed {
    fn connect(&mut self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (listener, channel) = tokio::time::timeout(LISTEN_TIMEOUT, listen(&self.options))
                .await
                .map_err(|_| {
                    StoreError::new(
                        StoreErrorKind::Unavailable,
                        "revocation listener connection deadline exceeded",
                    )
                })?
                .map_err(db_error)?;
            self.listener = Some(listener);
            self.heartbeat_channel = channel;
            // `failures` is reset by the first heartbeat that comes back, not here: a
            // connection that opens and then fails at once keeps backing off.
            self.waiting_for = None;
            self.next_heartbeat = after(self.heartbeat);
            Ok(())
        })
    }

    fn next(&mut self) -> RevocationFeedFuture<'_> {
        Box::pin(self.next_event())
    }
}

impl PgFeed {
    fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat.min(MAX_HEARTBEAT_TIMEOUT)
    }

    fn lost(&mut self, reason: &'static str, error: StoreError) {
        crate::telemetry::revocation_feed_failed(reason, &error);
        self.listener = None;
        self.waiting_for = None;
    }

    async fn next_event(&mut self) -> Option<RevocationEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.listener.is_none() {
                if self.failures > 0 {
                    let delay = Duration::from_millis(50)
                        .saturating_mul(1 << self.failures.min(7))
                        .min(MAX_RECONNECT_DELAY);
                    tokio::time::sleep(delay).await;
                }
                match self.connect().await {
                    // Whatever was notified while not listening is lost.
                    Ok(()) => return Some(RevocationEvent::Reload),
                    Err(e) => {
                        self.failures = self.failures.saturating_add(1);
                        crate::telemetry::revocation_feed_failed("connect", &e);
                        continue;
                    }
                }
            }
            let now = tokio::time::Instant::now();
            match &self.waiting_for {
                Some((_, deadline)) if now >= *deadline => {
                    // What was received already may hold the heartbeat: read it first.
                    if self.drain_buffered().await {
                        continue;
                    }
                    self.missed();
                    self.lost(
                        "heartbeat",
                        StoreError::new(
                            StoreErrorKind::Unavailable,
                            "revocation heartbeat not delivered in time",
                        ),
                    );
                    continue;
                }
                None if now >= self.next_heartbeat => {
                    self.send_heartbeat().await;
                    continue;
                }
                _ => {}
            }
            let wake = match &self.waiting_for {
                Some((_, deadline)) => *deadline,
                None => self.next_heartbeat,
            };
            let Some(listener) = self.listener.as_mut() else {
                continue;
            };
            match tokio::time::timeout_at(wake, listener.try_recv()).await {
                Err(_) => {} // time for the heartbeat, or its deadline
                Ok(Ok(Some(first))) => {
                    let mut hints = BTreeSet::new();
                    let alive = self.note(first.payload(), &mut hints);
                    let (more, more_alive) = self.take_buffered(hints.len());
                    hints.extend(more);
                    self.handle(hints, alive || more_alive).await;
                }
                Ok(Ok(None)) => self.lost(
                    "lost",
                    StoreError::new(StoreErrorKind::Unavailable, "listening connection lost"),
                ),
                Ok(Err(e)) => self.lost("lost", db_error(e)),
            }
        }
    }

    /// Notes the notifications already received (up to [`MAX_HINTS`] sequence numbers in
    /// all, `have` of them noted already): the sequence numbers, and whether the awaited
    /// heartbeat was among them.
    fn take_buffered(&mut self, have: usize) -> (BTreeSet<i64>, bool) {
        let mut hints = BTreeSet::new();
        let mut alive = false;
        while have + hints.len() < MAX_HINTS {
            let Some(n) = self.listener.as_mut().and_then(PgListener::next_buffered) else {
                break;
            };
            alive |= self.note(n.payload(), &mut hints);
        }
        (hints, alive)
    }

    /// Handles the notifications already received, if any; whether there were.
    async fn drain_buffered(&mut self) -> bool {
        let Some(first) = self.listener.as_mut().and_then(PgListener::next_buffered) else {
            return false;
        };
        let mut hints = BTreeSet::new();
        let alive = self.note(first.payload(), &mut hints);
        let (more, more_alive) = self.take_buffered(hints.len());
        hints.extend(more);
        self.handle(hints, alive || more_alive).await;
        true
    }

    /// Reads the notified rows and queues their entries, then the heartbeat's `Alive`.
    /// Rows not found are read once more after a short pause; still missing (forged, purged,
    /// or not visible yet), they ask for a reload, at most every 30 s, so a forged
    /// notification adds nothing and cannot make the list reload constantly.
    async fn handle(&mut self, hints: BTreeSet<i64>, alive: bool) {
        if !hints.is_empty() {
            match self.read(&hints).await {
                Ok((entries, found)) => {
                    if !entries.is_empty() {
                        self.ready.push_back(RevocationEvent::Batch(entries));
                    }
                    let missing: BTreeSet<i64> = hints.difference(&found).copied().collect();
                    if !missing.is_empty() {
                        self.read_missing(&missing).await;
                    }
                }
                Err(e) => {
                    // The notified entries are in the table: read them all.
                    crate::telemetry::revocation_feed_failed("read", &e);
                    self.ready.push_back(RevocationEvent::Reload);
                }
            }
        }
        if alive {
            self.ready.push_back(RevocationEvent::Alive);
        }
    }

    async fn read_missing(&mut self, missing: &BTreeSet<i64>) {
        tokio::time::sleep(HINT_RETRY_DELAY).await;
        match self.read(missing).await {
            Ok((entries, found)) => {
                if !entries.is_empty() {
                    self.ready.push_back(RevocationEvent::Batch(entries));
                }
                if found.len() < missing.len() {
                    let now = tokio::time::Instant::now();
                    let due = self.missing_reload_at.is_none_or(|at| {
                        at.checked_add(MISSING_ROW_RELOAD_INTERVAL)
                            .is_none_or(|next| now >= next)
                    });
                    crate::telemetry::revocation_notified_rows_missing(due);
                    if due {
                        self.missing_reload_at = Some(now);
                        self.ready.push_back(RevocationEvent::Reload);
                    }
                }
            }
            Err(e) => {
                crate::telemetry::revocation_feed_failed("read", &e);
                self.ready.push_back(RevocationEvent::Reload);
            }
        }
    }

    /// A heartbeat missed or not sent: counted, and logged at `error` level once
    /// [`MISSES_BEFORE_ERROR`] are missed in a row.
    fn missed(&mut self) {
        self.misses = self.misses.saturating_add(1);
        if self.misses >= MISSES_BEFORE_ERROR {
            crate::telemetry::revocation_heartbeats_missed(self.misses);
        }
    }

    /// Reads one notification: a sequence number goes to `hints`; the awaited heartbeat
    /// returns `true`; anything else is ignored (and counted).
    fn note(&mut self, payload: &str, hints: &mut BTreeSet<i64>) -> bool {
        if let Some((ping, _)) = &self.waiting_for
            && payload == ping
        {
            self.waiting_for = None;
            self.next_heartbeat = after(self.heartbeat);
            // The connection is proven end to end: the backoff and the misses start over.
            self.failures = 0;
            self.misses = 0;
            return true;
        }
        match payload.parse::<i64>() {
            Ok(seq) if seq > 0 && payload.bytes().all(|b| b.is_ascii_digit()) => {
                hints.insert(seq);
            }
            // An earlier heartbeat of ours, late: harmless.
            _ if payload.starts_with("heartbeat:") => {}
            _ => crate::telemetry::revocation_notification_ignored(),
        }
        false
    }

    /// Sends the next heartbeat through the pool, to this connection's own channel.
    async fn send_heartbeat(&mut self) {
        self.ping += 1;
        let payload = format!("heartbeat:{}", self.ping);
        let sent = tokio::time::timeout(
            self.heartbeat_timeout(),
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.heartbeat_channel)
                .bind(&payload)
                .execute(&self.pool),
        )
        .await;
        let error = match sent {
            Ok(Ok(_)) => {
                self.waiting_for = Some((payload, after(self.heartbeat_timeout())));
                return;
            }
            Ok(Err(e)) => db_error(e),
            Err(_) => StoreError::new(StoreErrorKind::Unavailable, "revocation heartbeat not sent"),
        };
        // The pool failed (exhausted, or the database is down), not necessarily the
        // listener: keep it, and try again at the next interval. Nothing proves the list
        // current meanwhile, so its staleness grows.
        crate::telemetry::revocation_feed_failed("heartbeat_send", &error);
        self.missed();
        self.next_heartbeat = after(self.heartbeat);
    }

    /// The notified entries still in the table, and the sequence numbers found.
    async fn read(
        &self,
        seqs: &BTreeSet<i64>,
    ) -> Result<(Vec<Revocation>, BTreeSet<i64>), StoreError> {
        let seqs: Vec<i64> = seqs.iter().copied().collect();
        let rows = tokio::time::timeout(
            MAX_HEARTBEAT_TIMEOUT,
            sqlx::query(&format!(
                "SELECT {REVOCATION_COLUMNS} FROM tower_auth_jwt_revocations \
                 WHERE seq = ANY($1) ORDER BY seq"
            ))
            .bind(seqs)
            .fetch_all(&self.pool),
        )
        .await
        .map_err(|_| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                "revocation store deadline exceeded",
            )
        })?
        .map_err(db_error)?;
        let found = rows
            .iter()
            .filter_map(|row| sqlx::Row::try_get::<i64, _>(row, "seq").ok())
            .collect();
        Ok((revocation_batch(&rows, 0)?.entries, found))
    }
}

/// `d` from now; far in the future if that overflows the timer.
fn after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_REVOCATION_HEARTBEAT))
        .unwrap_or(now)
}

/// A fresh connection (in a pool of its own, so a dead one never blocks the next) listening
/// on this schema's revocation channel and on its own heartbeat channel, which it returns.
async fn listen(options: &PgConnectOptions) -> Result<(PgListener, String), sqlx::Error> {
    // It does not reconnect by itself: the feed does, so that the list reloads after it.
    let mut listener = connect_listener(options, MAX_RECONNECT_DELAY).await?;
    let (channel, pid): (String, i32) = sqlx::query_as(&format!(
        "SELECT {REVOCATION_CHANNEL_SQL}, pg_backend_pid()"
    ))
    .fetch_one(&mut listener)
    .await?;
    let heartbeat = format!("tower_auth_jwt_heartbeat_{pid}");
    listener
        .listen_all([channel.as_str(), heartbeat.as_str()])
        .await?;
    Ok((listener, heartbeat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_sequence_numbers_and_our_heartbeat_are_read() {
        let options = PgConnectOptions::new();
        let mut feed = PgFeed {
            pool: sqlx::postgres::PgPoolOptions::new().connect_lazy_with(options.clone()),
            options,
            heartbeat: Duration::from_secs(30),
            listener: None,
            heartbeat_channel: String::new(),
            failures: 0,
            ready: VecDeque::new(),
            ping: 0,
            waiting_for: Some(("heartbeat:7".into(), tokio::time::Instant::now())),
            next_heartbeat: tokio::time::Instant::now(),
            misses: 0,
            missing_reload_at: None,
        };
        let mut hints = BTreeSet::new();
        for forged in [
            r#"{"k":"jti","i":"https://i","v":"x","b":0,"e":99999999999999,"c":0}"#,
            "",
            "-3",
            "0",
            "+5",
            "12abc",
            "heartbeat:6",
        ] {
            assert!(!feed.note(forged, &mut hints), "{forged}");
        }
        assert!(hints.is_empty());
        assert!(!feed.note("42", &mut hints));
        assert!(!feed.note("42", &mut hints));
        assert!(!feed.note("41", &mut hints));
        assert_eq!(hints.into_iter().collect::<Vec<_>>(), [41, 42]);
        // Failed connections and missed heartbeats before it: the backoff and the count of
        // misses start over once a heartbeat comes back, not when a connection opens.
        feed.failures = 4;
        feed.misses = 2;
        assert!(feed.note("heartbeat:7", &mut BTreeSet::new()));
        assert!(feed.waiting_for.is_none());
        assert_eq!((feed.failures, feed.misses), (0, 0));
    }

    #[tokio::test]
    async fn a_heartbeat_out_of_range_is_refused_naming_its_value() {
        for (heartbeat, shown) in [
            (Duration::from_millis(10), "0.01s"),
            (Duration::ZERO, "0s"),
            (Duration::from_secs(3601), "3601s"),
            (Duration::MAX, "18446744073709552000s"),
        ] {
            // Refused before connecting: the address does not matter.
            let err = PostgresRevocationStore::builder("postgres://nobody@127.0.0.1:1/none")
                .revocation_heartbeat(heartbeat)
                .connect()
                .await
                .unwrap_err();
            assert_eq!(err.kind(), StoreErrorKind::InvalidInput, "{heartbeat:?}");
            let source = std::error::Error::source(&err).unwrap().to_string();
            assert!(
                source.contains("revocation_heartbeat") && source.contains(shown),
                "{source}"
            );
        }
    }

    #[test]
    fn scheduling_a_huge_interval_does_not_overflow() {
        let now = tokio::time::Instant::now();
        assert!(after(Duration::MAX) >= now);
        assert!(after(Duration::from_secs(1)) > now);
    }
}
