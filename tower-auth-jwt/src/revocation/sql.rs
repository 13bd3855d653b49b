//! What the SQL revocation stores share: their migrations table, row conversions, error
//! mapping.

use sqlx::{ColumnIndex, Decode, Row, Type};
use tower_auth_core::sql::{Migrator, SqlError};

pub(super) use crate::sql::{Migration, millis};
use crate::sql::{Role, corrupt, time};
use crate::store::StoreError;

use super::{Revocation, RevocationBatch, RevocationKind};

/// The revocation stores: their migrations table and error messages.
const ROLE: Role = Role {
    table: "tower_auth_jwt_revocation_migrations",
    newer: "database was migrated by a newer version of tower-auth-jwt (revocations)",
    corrupt: "cannot read revocation record",
    unavailable: "revocation store unavailable",
};

/// `migrations` recorded in the revocation stores' migrations table,
/// `tower_auth_jwt_revocation_migrations`, in every backend: apart from the issuer's, so a
/// verifier migrates only the revocations table, and both can migrate one database.
pub(super) const fn migrator(migrations: &'static [Migration]) -> Migrator {
    ROLE.migrator(migrations)
}

/// This crate's error for a failure of the shared SQL plumbing.
pub(super) fn store_error(e: SqlError) -> StoreError {
    ROLE.store_error(e)
}

/// Maps a sqlx error: unique violations are conflicts, decoding failures corruption, the rest
/// unavailability.
pub(super) fn db_error(e: sqlx::Error) -> StoreError {
    ROLE.db_error(e)
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
) -> Result<RevocationBatch, StoreError>
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
    Ok(RevocationBatch::new(entries, cursor))
}

/// A cursor as the `BIGINT` it is compared with.
pub(super) fn cursor_param(cursor: u64) -> i64 {
    i64::try_from(cursor).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::store::StoreErrorKind;

    #[test]
    fn errors_get_the_revocation_stores_messages() {
        let e = db_error(sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), StoreErrorKind::Unavailable);
        assert!(
            e.to_string().starts_with("revocation store unavailable"),
            "{e}"
        );
        assert!(e.source().is_some());
        let e = db_error(sqlx::Error::Decode("bad".into()));
        assert!(
            e.to_string().contains("cannot read revocation record"),
            "{e}"
        );
        let newer = migrator(&[]).pending(&[(1, vec![0])]).unwrap_err();
        assert_eq!(store_error(newer).kind(), StoreErrorKind::Setup);
    }
}
