//! The SQLite change feed: a change-log table that stores write in the transaction of each
//! change, read by every process over a connection of its own.
//!
//! SQLite has no `LISTEN`/`NOTIFY`, but it tells a connection cheaply whether anything changed:
//! `PRAGMA data_version` returns a different value once *another* connection (of this process
//! or of any other) has committed to the database, and reading it touches no table. So each
//! reader holds one connection that never writes, asks it every poll interval (100 ms in the
//! stores), and only when the value moved reads the log past the last sequence number it saw.
//! An idle server thus costs one pragma per interval; a write that logs nothing (last-used
//! times) costs one empty read of the log.
//!
//! The log must be a table with `seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT` and a
//! `created_at` column in Unix milliseconds. `AUTOINCREMENT` makes sequence numbers increase
//! for ever (never reused after a deletion, and kept by `VACUUM`), and committed ones are
//! contiguous, since a rolled-back insert gives its number back. Writers prune the log by age
//! with [`prune_change_log`], always a prefix, so a reader that finds the oldest row held past
//! the one after its last sequence has missed entries ([`Changes::FellBehind`]) and must drop
//! whatever it derived from the database.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{ConnectOptions, Connection, FromRow, Row, Sqlite, Transaction};

use super::{SqlError, SqlErrorKind};

/// Rows read per query; a longer backlog is read in several polls, without waiting between.
const PAGE: usize = 512;
/// The longest pause between two attempts after failures.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// What a [`ChangePoller`] found.
#[derive(Debug)]
pub enum Changes<R> {
    /// Reading starts at the current end of the log: changes made before are unknown, so what
    /// was read from the database before may be stale.
    Started,
    /// Entries the reader had not seen were pruned (or the log was reset, by a restored
    /// backup for instance): everything read from the database before may be stale.
    FellBehind,
    /// Entries that could not be decoded were skipped (the error says why): as for
    /// [`FellBehind`](Self::FellBehind), everything read before may be stale.
    Unreadable(SqlError),
    /// New entries, oldest first.
    Rows(Vec<R>),
}

/// Reads a change log over a connection of its own whenever `PRAGMA data_version` says that
/// another connection committed.
///
/// The log must be a table with `seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT` and a
/// `created_at` column in Unix milliseconds. `AUTOINCREMENT` makes sequence numbers increase
/// for ever (never reused after a deletion, and kept by `VACUUM`), and committed ones are
/// contiguous. Writers prune it with [`prune_change_log`], always a prefix, so a reader that
/// finds the oldest row held past the one after its last sequence has missed entries
/// ([`Changes::FellBehind`]). An idle poll runs `PRAGMA data_version` only, which reads no
/// table; the log is read when the value moved (another connection, of this process or
/// another, committed).
///
/// The connection is opened on first use and reopened after a failure (after a backoff of
/// the interval doubled per failure, up to 5 s); the position in the log is kept meanwhile,
/// so nothing committed during an outage is missed unless it was pruned.
pub struct ChangePoller {
    options: SqliteConnectOptions,
    table: &'static str,
    columns: &'static str,
    interval: Duration,
    conn: Option<SqliteConnection>,
    /// `PRAGMA data_version` when the log was last read in full; `None` forces a read.
    data_version: Option<i64>,
    /// The last sequence number seen; `None` before [`start`](Self::start).
    last_seq: Option<i64>,
    /// A full page was read: read on without waiting for a commit.
    more: bool,
    /// Failed polls in a row, for the backoff.
    failures: u32,
    /// Whether the next call of [`next`](Self::next) polls at once.
    poll_now: bool,
}

impl std::fmt::Debug for ChangePoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePoller")
            .field("table", &self.table)
            .field("interval", &self.interval)
            .field("connected", &self.conn.is_some())
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl ChangePoller {
    /// A poller of `table` (see [above](Self) for its shape) in the database of
    /// `pool`, reading `columns` (a select list) of new rows every `interval`. It connects on
    /// first use, with the pool's options (so an in-memory database is the pool's).
    pub fn new(
        pool: &SqlitePool,
        table: &'static str,
        columns: &'static str,
        interval: Duration,
    ) -> Self {
        Self {
            options: (*pool.connect_options()).clone(),
            table,
            columns,
            interval,
            conn: None,
            data_version: None,
            last_seq: None,
            more: false,
            failures: 0,
            poll_now: true,
        }
    }

    /// Reads from the entry after `seq` on (from [`change_log_head`], read before anything
    /// derived from the database was), instead of from wherever the log ends on the first
    /// poll: [`next`](Self::next) then never returns [`Changes::Started`].
    #[must_use]
    pub fn starting_after(mut self, seq: i64) -> Self {
        self.last_seq = Some(seq);
        self
    }

    /// Connects and takes the current end of the log as the position to read from, if not
    /// done yet: changes committed from now on will be returned by [`next`](Self::next). Call
    /// it before reading the state the log describes, so that nothing committed in between
    /// is missed. [`next`](Self::next) calls it when needed and then returns
    /// [`Changes::Started`].
    pub async fn start(&mut self) -> Result<(), SqlError> {
        if self.last_seq.is_some() {
            return Ok(());
        }
        let table = self.table;
        let conn = self.connection().await?;
        let version = data_version(conn).await?;
        let mut tx = conn.begin().await.map_err(SqlError::from)?;
        let (_, head) = bounds(&mut tx, table).await?;
        tx.commit().await.map_err(SqlError::from)?;
        self.data_version = Some(version);
        self.last_seq = Some(head);
        Ok(())
    }

    /// Waits for the next changes: polls at once on the first call, then every interval
    /// (at once again while a backlog is read page by page). Returns only when there is
    /// something to report. Errors end the call, after dropping the connection; the next
    /// call waits a backoff and reconnects. Cancel safe between polls: dropping the future
    /// while it waits loses nothing.
    pub async fn next<R>(&mut self) -> Result<Changes<R>, SqlError>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        loop {
            if !self.poll_now {
                tokio::time::sleep(self.delay()).await;
            }
            self.poll_now = false;
            match self.poll().await {
                Ok(found) => {
                    self.failures = 0;
                    self.poll_now = self.more;
                    if let Some(changes) = found {
                        return Ok(changes);
                    }
                }
                Err(e) => {
                    self.failures = self.failures.saturating_add(1);
                    self.conn = None;
                    self.more = false;
                    return Err(e);
                }
            }
        }
    }

    /// Whether the last poll succeeded (false before the first, and after a failure until a
    /// poll succeeds again).
    pub fn is_healthy(&self) -> bool {
        self.conn.is_some() && self.failures == 0
    }

    fn delay(&self) -> Duration {
        if self.failures == 0 {
            return self.interval;
        }
        self.interval
            .saturating_mul(1 << self.failures.min(8))
            .min(MAX_RETRY_DELAY.max(self.interval))
    }

    async fn connection(&mut self) -> Result<&mut SqliteConnection, SqlError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let conn = self.options.connect().await.map_err(|e| {
                    SqlError::new(
                        SqlErrorKind::Unavailable,
                        "cannot open change feed connection",
                    )
                    .with_source(e)
                })?;
                // A new connection's data_version is unrelated to the old one's.
                self.data_version = None;
                conn
            }
        };
        Ok(self.conn.insert(conn))
    }

    async fn poll<R>(&mut self) -> Result<Option<Changes<R>>, SqlError>
    where
        R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let Some(last) = self.last_seq else {
            self.start().await?;
            return Ok(Some(Changes::Started));
        };
        let (table, columns, more, seen) = (self.table, self.columns, self.more, self.data_version);
        let conn = self.connection().await?;
        let version = data_version(conn).await?;
        if !more && seen == Some(version) {
            return Ok(None);
        }
        let read = read_log(conn, table, columns, last).await?;
        self.data_version = Some(version);
        let rows = match read {
            Read::Behind { head } => {
                self.last_seq = Some(head);
                self.more = false;
                return Ok(Some(Changes::FellBehind));
            }
            Read::Rows(rows) => rows,
        };
        self.more = rows.len() == PAGE;
        let Some(newest) = rows.last() else {
            return Ok(None);
        };
        // Past these rows whatever happens: an unreadable one is reported, not retried.
        self.last_seq = Some(newest.try_get("seq").map_err(SqlError::from)?);
        let decoded: Result<Vec<R>, sqlx::Error> = rows.iter().map(R::from_row).collect();
        Ok(Some(match decoded {
            Ok(rows) => Changes::Rows(rows),
            Err(e) => Changes::Unreadable(SqlError::from(e)),
        }))
    }
}

enum Read {
    /// Entries past `last` were pruned; the log ends at `head`.
    Behind { head: i64 },
    /// The entries past `last` (a page at most).
    Rows(Vec<SqliteRow>),
}

/// The entries of `table` past `last`, in one read transaction so that the bounds and the
/// rows come from the same snapshot.
async fn read_log(
    conn: &mut SqliteConnection,
    table: &str,
    columns: &str,
    last: i64,
) -> Result<Read, SqlError> {
    let mut tx = conn.begin().await.map_err(SqlError::from)?;
    let (oldest, head) = bounds(&mut tx, table).await?;
    let read = if head < last || oldest.unwrap_or(head + 1) > last + 1 {
        Read::Behind { head }
    } else {
        Read::Rows(
            sqlx::query(&format!(
                "SELECT {columns}, seq FROM {table} WHERE seq > ? ORDER BY seq LIMIT {PAGE}"
            ))
            .bind(last)
            .fetch_all(&mut *tx)
            .await
            .map_err(SqlError::from)?,
        )
    };
    tx.commit().await.map_err(SqlError::from)?;
    Ok(read)
}

async fn data_version(conn: &mut SqliteConnection) -> Result<i64, SqlError> {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
        .map_err(SqlError::from)
}

/// The oldest sequence number `table` holds (`None` when empty), and the highest ever given
/// (0 before the first insert).
async fn bounds(
    tx: &mut Transaction<'_, Sqlite>,
    table: &str,
) -> Result<(Option<i64>, i64), SqlError> {
    let (oldest, head): (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
        "SELECT (SELECT MIN(seq) FROM {table}), \
                (SELECT seq FROM sqlite_sequence WHERE name = '{table}')"
    ))
    .fetch_one(&mut **tx)
    .await
    .map_err(SqlError::from)?;
    Ok((oldest, head.unwrap_or(0)))
}

/// The highest sequence number ever given in the change log `table` (0 before the first
/// entry): a position to read on from with [`ChangePoller::starting_after`].
pub async fn change_log_head(pool: &SqlitePool, table: &str) -> Result<i64, SqlError> {
    let mut tx = pool.begin().await.map_err(SqlError::from)?;
    let (_, head) = bounds(&mut tx, table).await?;
    tx.commit().await.map_err(SqlError::from)?;
    Ok(head)
}

/// Deletes the entries of the change log `table` written before `before` (Unix
/// milliseconds), always a prefix of the log (up to the newest such entry), so that readers
/// can tell that they fell behind; returns how many. Run it in the writers' transactions.
pub async fn prune_change_log(
    tx: &mut Transaction<'_, Sqlite>,
    table: &str,
    before: i64,
) -> Result<u64, SqlError> {
    let deleted = sqlx::query(&format!(
        "DELETE FROM {table} WHERE seq <= (SELECT MAX(seq) FROM {table} WHERE created_at < ?)"
    ))
    .bind(before)
    .execute(&mut **tx)
    .await
    .map_err(SqlError::from)?;
    Ok(deleted.rows_affected())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sql::open_sqlite;

    const LOG: &str = "CREATE TABLE changes (
        seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        what       TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    )";

    fn url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}", dir.path().join("db.sqlite").display())
    }

    async fn setup(url: &str) -> (SqlitePool, ChangePoller) {
        let pool = open_sqlite(url).await.unwrap();
        sqlx::query(LOG).execute(&pool).await.unwrap();
        let poller = ChangePoller::new(&pool, "changes", "what", Duration::from_millis(10));
        (pool, poller)
    }

    async fn write(pool: &SqlitePool, what: &str, at: i64) {
        sqlx::query("INSERT INTO changes (what, created_at) VALUES (?, ?)")
            .bind(what)
            .bind(at)
            .execute(pool)
            .await
            .unwrap();
    }

    async fn next(poller: &mut ChangePoller) -> Changes<(String,)> {
        tokio::time::timeout(Duration::from_secs(5), poller.next())
            .await
            .expect("no change within 5 s")
            .unwrap()
    }

    fn rows(changes: Changes<(String,)>) -> Vec<String> {
        match changes {
            Changes::Rows(rows) => rows.into_iter().map(|(w,)| w).collect(),
            other => panic!("expected rows, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn reads_what_other_connections_commit_after_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut poller) = setup(&url(&dir)).await;
        write(&pool, "before", 1).await;
        assert!(matches!(next(&mut poller).await, Changes::Started));
        write(&pool, "a", 2).await;
        write(&pool, "b", 3).await;
        assert_eq!(rows(next(&mut poller).await), ["a", "b"]);
        write(&pool, "c", 4).await;
        assert_eq!(rows(next(&mut poller).await), ["c"]);
        // Nothing new: the poller keeps waiting.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), poller.next::<(String,)>())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_poller_starting_after_a_head_reads_everything_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = setup(&url(&dir)).await;
        write(&pool, "before", 1).await;
        let head = change_log_head(&pool, "changes").await.unwrap();
        write(&pool, "a", 2).await;
        let mut poller = ChangePoller::new(&pool, "changes", "what", Duration::from_millis(10))
            .starting_after(head);
        assert_eq!(rows(next(&mut poller).await), ["a"]);
    }

    #[tokio::test]
    async fn a_backlog_is_read_page_by_page_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut poller) = setup(&url(&dir)).await;
        poller.start().await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        for i in 0..PAGE + 10 {
            sqlx::query("INSERT INTO changes (what, created_at) VALUES (?, 0)")
                .bind(i.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let mut seen = rows(next(&mut poller).await);
        assert_eq!(seen.len(), PAGE);
        seen.extend(rows(next(&mut poller).await));
        let want: Vec<String> = (0..PAGE + 10).map(|i| i.to_string()).collect();
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn a_reader_behind_the_pruned_range_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut poller) = setup(&url(&dir)).await;
        poller.start().await.unwrap();
        // Two entries written and the older pruned before the reader polls.
        write(&pool, "old", 1).await;
        write(&pool, "new", 1_000).await;
        let mut tx = pool.begin().await.unwrap();
        assert_eq!(prune_change_log(&mut tx, "changes", 500).await.unwrap(), 1);
        tx.commit().await.unwrap();
        assert!(matches!(next(&mut poller).await, Changes::FellBehind));
        // Reading goes on from the end of the log.
        write(&pool, "after", 2_000).await;
        assert_eq!(rows(next(&mut poller).await), ["after"]);

        // Everything pruned, the log empty: still told.
        write(&pool, "gone", 3_000).await;
        let mut tx = pool.begin().await.unwrap();
        assert_eq!(
            prune_change_log(&mut tx, "changes", 10_000).await.unwrap(),
            3
        );
        tx.commit().await.unwrap();
        assert!(matches!(next(&mut poller).await, Changes::FellBehind));
    }

    #[tokio::test]
    async fn a_reader_up_to_date_is_not_behind_when_seen_entries_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut poller) = setup(&url(&dir)).await;
        poller.start().await.unwrap();
        write(&pool, "a", 1).await;
        assert_eq!(rows(next(&mut poller).await), ["a"]);
        let mut tx = pool.begin().await.unwrap();
        prune_change_log(&mut tx, "changes", 10).await.unwrap();
        tx.commit().await.unwrap();
        write(&pool, "b", 20).await;
        assert_eq!(rows(next(&mut poller).await), ["b"]);
    }

    #[tokio::test]
    async fn pruning_deletes_a_prefix_only() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _) = setup(&url(&dir)).await;
        // A writer with a clock behind: its entry is older than the one before it.
        for at in [10, 30, 20, 40] {
            write(&pool, "x", at).await;
        }
        let mut tx = pool.begin().await.unwrap();
        assert_eq!(prune_change_log(&mut tx, "changes", 25).await.unwrap(), 3);
        tx.commit().await.unwrap();
        let left: Vec<i64> = sqlx::query_scalar("SELECT created_at FROM changes")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(left, [40]);
    }

    #[tokio::test]
    async fn survives_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut poller) = setup(&url(&dir)).await;
        poller.start().await.unwrap();
        write(&pool, "a", 1).await;
        assert_eq!(rows(next(&mut poller).await), ["a"]);
        sqlx::query("VACUUM").execute(&pool).await.unwrap();
        write(&pool, "b", 2).await;
        assert_eq!(rows(next(&mut poller).await), ["b"]);
    }

    #[tokio::test]
    async fn in_memory_databases_are_the_pools() {
        let (pool, mut poller) = setup("sqlite::memory:").await;
        poller.start().await.unwrap();
        write(&pool, "a", 1).await;
        assert_eq!(rows(next(&mut poller).await), ["a"]);
    }

    #[tokio::test]
    async fn unreadable_rows_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut poller) = setup(&url(&dir)).await;
        poller.start().await.unwrap();
        write(&pool, "a", 1).await;
        let found = tokio::time::timeout(Duration::from_secs(5), poller.next::<(i64, i64)>())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(found, Changes::Unreadable(_)), "{found:?}");
        write(&pool, "b", 2).await;
        assert_eq!(rows(next(&mut poller).await), ["b"]);
    }

    #[tokio::test]
    async fn errors_are_returned_and_the_next_call_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_sqlite(&url(&dir)).await.unwrap();
        let mut poller = ChangePoller::new(&pool, "changes", "what", Duration::from_millis(10));
        // No log table yet.
        let e = poller.next::<(String,)>().await.unwrap_err();
        assert_eq!(e.kind(), SqlErrorKind::Unavailable);
        sqlx::query(LOG).execute(&pool).await.unwrap();
        assert!(matches!(next(&mut poller).await, Changes::Started));
    }
}
