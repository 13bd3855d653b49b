//! What the SQL stores share: the migration plan, time and row conversions, error mapping.
//!
//! Each backend keeps its own statements (placeholders, types and locking differ) and runs its
//! migrations in one transaction under its own lock; the decisions (which migration to apply,
//! when to refuse) and the mapping of rows and errors are made here, once. Times are Unix
//! milliseconds (`INTEGER` in SQLite, `BIGINT` in Postgres) and claims JSON text in both.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{
    RefreshFamily, RefreshTokenHash, RefreshTokenRecord, StoreError, StoreErrorKind,
    StoredSigningKey,
};
use crate::Algorithm;

/// This crate's migrations table, in every backend: each tower-auth crate keeps its own, so
/// all of them can migrate one database.
pub(super) const MIGRATIONS_TABLE: &str = "tower_auth_jwt_migrations";

/// One migration of one backend.
#[derive(Debug)]
pub(super) struct Migration {
    pub(super) version: i64,
    pub(super) description: &'static str,
    pub(super) sql: &'static str,
}

impl Migration {
    pub(super) fn checksum(&self) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.sql.as_bytes())
            .as_ref()
            .to_vec()
    }
}

/// The migrations still to apply, given the `(version, checksum)` rows already recorded.
/// Refuses a database migrated by a newer version of this crate, or one where an applied
/// migration differs from this version's.
pub(super) fn pending<'m>(
    migrations: &'m [Migration],
    applied: &[(i64, Vec<u8>)],
) -> Result<Vec<&'m Migration>, StoreError> {
    let latest = migrations.last().map_or(0, |m| m.version);
    if applied.iter().any(|(v, _)| *v > latest) {
        return Err(StoreError::new(
            StoreErrorKind::Setup,
            "database was migrated by a newer version of tower-auth-jwt",
        ));
    }
    let mut todo = Vec::new();
    for m in migrations {
        match applied.iter().find(|(v, _)| *v == m.version) {
            Some((_, c)) if *c == m.checksum() => {}
            Some(_) => {
                return Err(StoreError::new(
                    StoreErrorKind::Setup,
                    "an applied migration differs from this version's",
                ));
            }
            None => todo.push(m),
        }
    }
    Ok(todo)
}

/// Unix milliseconds, saturating.
pub(super) fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

fn time(ms: i64) -> Result<SystemTime, StoreError> {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .ok_or_else(|| corrupt("bad timestamp in issuer store"))
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
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::new(StoreErrorKind::Conflict, "row already exists").with_source(e)
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::new(StoreErrorKind::Corrupt, "cannot read issuer record").with_source(e)
        }
        _ => {
            StoreError::new(StoreErrorKind::Unavailable, "issuer store unavailable").with_source(e)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &[Migration] = &[
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
    ];

    #[test]
    fn pending_applies_what_is_missing_and_refuses_drift() {
        assert_eq!(pending(MS, &[]).unwrap().len(), 2);
        let one = [(1, MS[0].checksum())];
        let todo = pending(MS, &one).unwrap();
        assert_eq!(todo.iter().map(|m| m.version).collect::<Vec<_>>(), [2]);
        let both = [(1, MS[0].checksum()), (2, MS[1].checksum())];
        assert!(pending(MS, &both).unwrap().is_empty());
        assert!(
            pending(MS, &[(1, vec![0])])
                .unwrap_err()
                .to_string()
                .contains("differs")
        );
        assert!(
            pending(MS, &[(3, vec![0])])
                .unwrap_err()
                .to_string()
                .contains("newer")
        );
    }

    #[test]
    fn times_round_trip_and_bad_ones_are_corrupt() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        assert_eq!(time(millis(t)).unwrap(), t);
        assert_eq!(millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(time(-1).unwrap_err().kind(), StoreErrorKind::Corrupt);
    }
}
