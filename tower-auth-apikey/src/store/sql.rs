//! What the SQL stores share: the migration plan, time and row conversions, error mapping,
//! and running the statements both backends run alike (fetching keys, binding a key's values,
//! writing its limits back), generic over sqlx's [`Database`].
//!
//! Each backend keeps its own statement text where placeholders, types or locking differ
//! (Postgres `$1` and `::jsonb`, `FOR UPDATE`, `RETURNING`; SQLite `?`), its transactions and
//! how it announces changes (Postgres `NOTIFY`, the SQLite change log), and runs its
//! migrations in one transaction under its own lock; the decisions (which migration to apply,
//! when to refuse) and the mapping of rows and errors are made here, once.

use std::time::SystemTime;

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use tower_auth_core::Scopes;
pub(super) use tower_auth_core::sql::{Migration, millis};
use tower_auth_core::sql::{Migrator, SqlError, SqlErrorKind, from_millis};

use super::{StoreError, StoreErrorKind};
use crate::limit::{Credits, KeyLimits, Rate, RateLimit};
use crate::{KeyHash, KeyRecord, StoredKey};

/// `migrations` recorded in this crate's migrations table, `tower_auth_apikey_migrations`, in
/// every backend: each tower-auth crate keeps its own, so all of them can migrate one database.
pub(super) const fn migrator(migrations: &'static [Migration]) -> Migrator {
    Migrator {
        table: "tower_auth_apikey_migrations",
        newer: "database was migrated by a newer version of tower-auth-apikey",
        migrations,
    }
}

/// This crate's error for a failure of the shared SQL plumbing: setup failures keep their
/// message; conflicts, corruption and unavailability get this crate's.
pub(super) fn store_error(e: SqlError) -> StoreError {
    let (kind, message) = match e.kind() {
        SqlErrorKind::Conflict => (StoreErrorKind::Conflict, "key id or hash already exists"),
        SqlErrorKind::Corrupt => (StoreErrorKind::Corrupt, "cannot read key record"),
        SqlErrorKind::Unavailable => (StoreErrorKind::Unavailable, "key store unavailable"),
        SqlErrorKind::Setup => (StoreErrorKind::Setup, e.message()),
    };
    let error = StoreError::new(kind, message);
    match e.into_source() {
        Some(source) => error.with_source(source),
        None => error,
    }
}

fn time(ms: i64) -> Result<SystemTime, StoreError> {
    from_millis(ms).ok_or_else(|| corrupt("bad timestamp in key store"))
}

fn opt_time(ms: Option<i64>) -> Result<Option<SystemTime>, StoreError> {
    ms.map(time).transpose()
}

/// Maps a sqlx error: unique violations are conflicts, decoding failures corruption, the rest
/// unavailability.
pub(super) fn db_error(e: sqlx::Error) -> StoreError {
    store_error(e.into())
}

pub(super) fn corrupt(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}

/// The limit columns of `tower_auth_api_keys`, in the order of [`LimitColumns::values`].
pub(super) const LIMIT_COLUMNS: [&str; 7] = [
    "rate_count",
    "rate_period_ms",
    "rate_burst",
    "credits_remaining",
    "credits_updated_at",
    "credits_refill_count",
    "credits_refill_period_ms",
];

/// [`KeyLimits`] as the values of [`LIMIT_COLUMNS`], in order.
pub(super) fn limit_values(l: &KeyLimits) -> [Option<i64>; 7] {
    let rate = l.rate.as_ref();
    let credits = l.credits.as_ref();
    let refill = credits.and_then(|c| c.refill);
    [
        rate.map(|r| i64::from(r.rate().count())),
        rate.map(|r| r.rate().period_ms()),
        rate.map(|r| i64::from(r.burst())),
        credits.map(|c| i64::try_from(c.remaining).unwrap_or(i64::MAX)),
        credits.map(|c| millis(c.updated_at)),
        refill.map(|r| i64::from(r.count())),
        refill.map(|r| r.period_ms()),
    ]
}

fn limits_from_values(v: [Option<i64>; 7]) -> Result<KeyLimits, StoreError> {
    let bad = || corrupt("bad limits in key store");
    let rate = match (v[0], v[1], v[2]) {
        (None, None, None) => None,
        (Some(count), Some(period), Some(burst)) => {
            let rate = Rate::from_parts(count, period).ok_or_else(bad)?;
            let burst = u32::try_from(burst).map_err(|_| bad())?;
            Some(RateLimit::new(rate, Some(burst)).map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    let refill = match (v[5], v[6]) {
        (None, None) => None,
        (Some(count), Some(period)) => Some(Rate::from_parts(count, period).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let credits = match (v[3], v[4]) {
        (None, None) if refill.is_none() => None,
        (Some(remaining), Some(at)) => Some(Credits {
            remaining: u64::try_from(remaining).map_err(|_| bad())?,
            refill,
            updated_at: time(at)?,
        }),
        _ => return Err(bad()),
    };
    Ok(KeyLimits { rate, credits })
}

/// A stored key hash, read back.
pub(super) fn key_hash(bytes: Vec<u8>) -> Result<KeyHash, StoreError> {
    let hash: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("key hash of the wrong size in key store"))?;
    Ok(KeyHash::from_bytes(hash))
}

/// Every key hash of `rows` (from `SELECT key_hash`), for [`KeyStore::key_hashes`](
/// super::KeyStore::key_hashes).
pub(super) fn key_hashes(rows: Vec<Vec<u8>>) -> Result<Option<Vec<KeyHash>>, StoreError> {
    rows.into_iter()
        .map(key_hash)
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A key record from a row holding the key columns, with the metadata as JSON text and times
/// as Unix milliseconds, whatever the backend.
pub(super) fn row_to_stored<'r, R>(row: &'r R) -> Result<StoredKey, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let hash = key_hash(row.try_get("key_hash").map_err(db_error)?)?;
    let scopes: String = row.try_get("scopes").map_err(db_error)?;
    let metadata: String = row.try_get("metadata").map_err(db_error)?;
    let metadata = serde_json::from_str(&metadata)
        .map_err(|e| corrupt("bad metadata json in key store").with_source(e))?;
    let mut limits = [None; 7];
    for (value, column) in limits.iter_mut().zip(LIMIT_COLUMNS) {
        *value = row.try_get(column).map_err(db_error)?;
    }
    Ok(StoredKey {
        record: KeyRecord {
            id: row.try_get("id").map_err(db_error)?,
            owner: row.try_get("owner").map_err(db_error)?,
            name: row.try_get("name").map_err(db_error)?,
            scopes: Scopes::from_space_separated(&scopes),
            created_at: time(row.try_get("created_at").map_err(db_error)?)?,
            expires_at: opt_time(row.try_get("expires_at").map_err(db_error)?)?,
            revoked_at: opt_time(row.try_get("revoked_at").map_err(db_error)?)?,
            last_used_at: opt_time(row.try_get("last_used_at").map_err(db_error)?)?,
            metadata,
            limits: limits_from_values(limits)?,
        },
        hash,
    })
}

/// The key `query` selects (or returns), if any: a row of the key columns, as
/// [`row_to_stored`] reads them.
pub(super) async fn fetch_key<'q, 'c, DB, E>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    executor: E,
) -> Result<Option<StoredKey>, StoreError>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
    &'static str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
{
    query
        .fetch_optional(executor)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(row_to_stored)
        .transpose()
}

/// The records of every key `query` selects, in its order.
pub(super) async fn fetch_records<'q, 'c, DB, E>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    executor: E,
) -> Result<Vec<KeyRecord>, StoreError>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
    &'static str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
{
    query
        .fetch_all(executor)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| row_to_stored(row).map(|k| k.record))
        .collect()
}

/// `query` (an `INSERT` of the key columns, in their order) with the values of `key` bound.
pub(super) fn bind_key<'q, DB>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    key: &'q StoredKey,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let r = &key.record;
    let mut query = query
        .bind(r.id.as_str())
        .bind(&key.hash.as_bytes()[..])
        .bind(r.owner.as_str())
        .bind(r.name.as_deref())
        .bind(r.scopes.to_space_separated())
        .bind(millis(r.created_at))
        .bind(r.expires_at.map(millis))
        .bind(r.revoked_at.map(millis))
        .bind(r.last_used_at.map(millis))
        .bind(r.metadata.to_string());
    for value in limit_values(&r.limits) {
        query = query.bind(value);
    }
    query
}

/// Writes the limits of `key` back to its row, through `executor` (the transaction that read
/// it). The placeholders are numbered, which SQLite takes too.
pub(super) async fn write_limits<'c, DB, E>(executor: E, key: &StoredKey) -> Result<(), StoreError>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    E: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let set = LIMIT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE tower_auth_api_keys SET {set} WHERE id = ${}",
        LIMIT_COLUMNS.len() + 1
    );
    let mut query = sqlx::query(&sql);
    for value in limit_values(&key.record.limits) {
        query = query.bind(value);
    }
    query
        .bind(key.record.id.as_str())
        .execute(executor)
        .await
        .map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn errors_get_this_crates_kinds_and_messages() {
        let e = db_error(sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), StoreErrorKind::Unavailable);
        assert!(e.to_string().starts_with("key store unavailable"), "{e}");
        assert!(e.source().is_some());
        let e = db_error(sqlx::Error::Decode("bad".into()));
        assert_eq!(e.kind(), StoreErrorKind::Corrupt);
        assert!(e.to_string().contains("cannot read key record"), "{e}");
        let e = store_error(SqlError::new(SqlErrorKind::Conflict, "row already exists"));
        assert_eq!(e.kind(), StoreErrorKind::Conflict);
        assert!(e.to_string().contains("key id or hash"), "{e}");
        let newer = migrator(&[]).pending(&[(1, vec![0])]).unwrap_err();
        let e = store_error(newer);
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        assert!(
            e.to_string().contains("newer version of tower-auth-apikey"),
            "{e}"
        );
    }

    #[test]
    fn limits_round_trip_through_columns() {
        let limits = KeyLimits {
            rate: Some(RateLimit::new("100/1s".parse().unwrap(), Some(200)).unwrap()),
            credits: Some(Credits {
                remaining: 9_876,
                refill: Some("10000/30d".parse().unwrap()),
                updated_at: UNIX_EPOCH + Duration::from_millis(1_767_225_600_123),
            }),
        };
        assert_eq!(limits_from_values(limit_values(&limits)).unwrap(), limits);
        let none = KeyLimits::default();
        assert_eq!(limits_from_values(limit_values(&none)).unwrap(), none);
        let mut half = limit_values(&limits);
        half[2] = None;
        assert_eq!(
            limits_from_values(half).unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
        let mut negative = limit_values(&limits);
        negative[3] = Some(-1);
        assert!(limits_from_values(negative).is_err());
    }

    #[test]
    fn bad_times_are_corrupt() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        assert_eq!(time(millis(t)).unwrap(), t);
        assert_eq!(time(-1).unwrap_err().kind(), StoreErrorKind::Corrupt);
    }
}
