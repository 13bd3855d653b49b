//! What the SQL stores share: the migration plan, time and row conversions, error mapping.
//!
//! Each backend keeps its own statements (placeholders, types and locking differ) and runs its
//! migrations in one transaction under its own lock; the decisions (which migration to apply,
//! when to refuse) and the mapping of rows and errors are made here, once. Times are Unix
//! milliseconds (`INTEGER` in SQLite, `BIGINT` in Postgres) and claims JSON text in both.

use std::str::FromStr;
use std::time::SystemTime;

use sqlx::{ColumnIndex, Decode, Row, Type};
pub(super) use tower_auth_core::sql::{Migration, millis};
use tower_auth_core::sql::{Migrator, SqlError, SqlErrorKind, from_millis};

use super::{
    RefreshFamily, RefreshTokenHash, RefreshTokenRecord, StoreError, StoreErrorKind,
    StoredSigningKey,
};
use crate::Algorithm;
use crate::revocation::{Revocation, RevocationKind};

/// `migrations` recorded in this crate's migrations table, `tower_auth_jwt_migrations`, in
/// every backend: each tower-auth crate keeps its own, so all of them can migrate one
/// database.
pub(super) const fn migrator(migrations: &'static [Migration]) -> Migrator {
    Migrator {
        table: "tower_auth_jwt_migrations",
        newer: "database was migrated by a newer version of tower-auth-jwt",
        migrations,
    }
}

/// This crate's error for a failure of the shared SQL plumbing: setup failures keep their
/// message; conflicts, corruption and unavailability get this crate's.
pub(super) fn store_error(e: SqlError) -> StoreError {
    let (kind, message) = match e.kind() {
        SqlErrorKind::Conflict => (StoreErrorKind::Conflict, "row already exists"),
        SqlErrorKind::Corrupt => (StoreErrorKind::Corrupt, "cannot read issuer record"),
        SqlErrorKind::Unavailable => (StoreErrorKind::Unavailable, "issuer store unavailable"),
        SqlErrorKind::Setup => (StoreErrorKind::Setup, e.message()),
    };
    let error = StoreError::new(kind, message);
    match e.into_source() {
        Some(source) => error.with_source(source),
        None => error,
    }
}

fn time(ms: i64) -> Result<SystemTime, StoreError> {
    from_millis(ms).ok_or_else(|| corrupt("bad timestamp in issuer store"))
}

fn opt_time(ms: Option<i64>) -> Result<Option<SystemTime>, StoreError> {
    ms.map(time).transpose()
}

fn corrupt(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}

/// Maps a sqlx error: unique violations are conflicts, decoding failures corruption, the rest
/// unavailability.
pub(super) fn db_error(e: sqlx::Error) -> StoreError {
    store_error(e.into())
}

/// The columns [`row_to_key`] reads.
pub(super) const KEY_COLUMNS: &str = "kid, algorithm, material, created_at, retired_at";

/// A signing key from a row holding [`KEY_COLUMNS`].
pub(super) fn row_to_key<'r, R>(row: &'r R) -> Result<StoredSigningKey, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let alg: String = row.try_get("algorithm").map_err(db_error)?;
    let algorithm =
        Algorithm::from_str(&alg).map_err(|_| corrupt("unknown algorithm in issuer store"))?;
    let retired: Option<i64> = row.try_get("retired_at").map_err(db_error)?;
    Ok(StoredSigningKey::from_parts(
        row.try_get::<String, _>("kid").map_err(db_error)?,
        algorithm,
        row.try_get::<Vec<u8>, _>("material").map_err(db_error)?,
        time(row.try_get("created_at").map_err(db_error)?)?,
        opt_time(retired)?,
    ))
}

/// The `SELECT` list [`row_to_refresh`] reads, over `tower_auth_jwt_refresh_tokens t` joined
/// with `tower_auth_jwt_refresh_families f`; `{claims}` is the claims column as JSON text.
pub(super) fn refresh_columns(claims: &str) -> String {
    format!(
        "t.token_hash, t.created_at AS t_created_at, t.expires_at AS t_expires_at, \
         t.consumed_at, f.id, f.subject, f.client_id, f.scope, {claims} AS claims, \
         f.created_at, f.expires_at, f.revoked_at"
    )
}

/// A token and its family from a row holding [`refresh_columns`].
pub(super) fn row_to_refresh<'r, R>(
    row: &'r R,
) -> Result<(RefreshTokenRecord, RefreshFamily), StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let hash: Vec<u8> = row.try_get("token_hash").map_err(db_error)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| corrupt("token hash of the wrong size in issuer store"))?;
    let claims: String = row.try_get("claims").map_err(db_error)?;
    let claims = serde_json::from_str(&claims)
        .map_err(|e| corrupt("bad claims json in issuer store").with_source(e))?;
    let family_id: String = row.try_get("id").map_err(db_error)?;
    let token = RefreshTokenRecord::new(
        RefreshTokenHash::from_bytes(hash),
        family_id.clone(),
        time(row.try_get("t_created_at").map_err(db_error)?)?,
        time(row.try_get("t_expires_at").map_err(db_error)?)?,
        opt_time(row.try_get("consumed_at").map_err(db_error)?)?,
    );
    let family = RefreshFamily::new(
        family_id,
        row.try_get("subject").map_err(db_error)?,
        row.try_get("client_id").map_err(db_error)?,
        row.try_get("scope").map_err(db_error)?,
        claims,
        time(row.try_get("created_at").map_err(db_error)?)?,
        time(row.try_get("expires_at").map_err(db_error)?)?,
        opt_time(row.try_get("revoked_at").map_err(db_error)?)?,
    );
    Ok((token, family))
}

/// The columns [`row_to_revocation`] reads, from `tower_auth_jwt_revocations`.
pub(super) const REVOCATION_COLUMNS: &str =
    "seq, kind, issuer, value, issued_before, expires_at, created_at";

/// A revocation and its sequence number from a row holding [`REVOCATION_COLUMNS`].
pub(super) fn row_to_revocation<'r, R>(row: &'r R) -> Result<(u64, Revocation), StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = row.try_get("seq").map_err(db_error)?;
    let seq = u64::try_from(seq).map_err(|_| corrupt("negative revocation sequence"))?;
    let kind: String = row.try_get("kind").map_err(db_error)?;
    let kind =
        RevocationKind::from_stored(&kind).ok_or_else(|| corrupt("unknown revocation kind"))?;
    Ok((
        seq,
        Revocation {
            kind,
            issuer: row.try_get("issuer").map_err(db_error)?,
            value: row.try_get("value").map_err(db_error)?,
            issued_before: time(row.try_get("issued_before").map_err(db_error)?)?,
            expires_at: time(row.try_get("expires_at").map_err(db_error)?)?,
            created_at: time(row.try_get("created_at").map_err(db_error)?)?,
        },
    ))
}

/// A batch from rows holding [`REVOCATION_COLUMNS`], oldest first; its cursor is the highest
/// of `floor` and the rows' sequence numbers. A row that cannot be read (written by hand, or
/// by another program) is logged and skipped, its sequence number counted: one bad row must
/// not stop every later revocation from applying.
pub(super) fn revocation_batch<'r, R>(
    rows: &'r [R],
    floor: u64,
) -> Result<crate::revocation::RevocationBatch, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut cursor = floor;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        match row_to_revocation(row) {
            Ok((seq, r)) => {
                cursor = cursor.max(seq);
                entries.push(r);
            }
            Err(e) => {
                let seq = row
                    .try_get::<i64, _>("seq")
                    .ok()
                    .and_then(|s| u64::try_from(s).ok());
                if let Some(seq) = seq {
                    cursor = cursor.max(seq);
                }
                crate::telemetry::revocation_row_skipped(seq, &e);
            }
        }
    }
    Ok(crate::revocation::RevocationBatch::new(entries, cursor))
}

/// A cursor as the `BIGINT` it is compared with.
pub(super) fn cursor_param(cursor: u64) -> i64 {
    i64::try_from(cursor).unwrap_or(i64::MAX)
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
        assert!(e.to_string().starts_with("issuer store unavailable"), "{e}");
        assert!(e.source().is_some());
        let e = db_error(sqlx::Error::Decode("bad".into()));
        assert_eq!(e.kind(), StoreErrorKind::Corrupt);
        assert!(e.to_string().contains("cannot read issuer record"), "{e}");
        let e = store_error(SqlError::new(SqlErrorKind::Conflict, "x"));
        assert_eq!(e.kind(), StoreErrorKind::Conflict);
        assert!(e.to_string().contains("row already exists"), "{e}");
        let newer = migrator(&[]).pending(&[(1, vec![0])]).unwrap_err();
        let e = store_error(newer);
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        assert!(
            e.to_string().contains("newer version of tower-auth-jwt"),
            "{e}"
        );
    }

    #[test]
    fn times_round_trip_and_bad_ones_are_corrupt() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        assert_eq!(time(millis(t)).unwrap(), t);
        assert_eq!(time(-1).unwrap_err().kind(), StoreErrorKind::Corrupt);
    }
}
