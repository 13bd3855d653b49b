//! What the SQL stores share: the migration plan, time and row conversions, error mapping.
//!
//! Each backend keeps its own few statements (placeholders, types and locking differ) and
//! runs its migrations in one transaction under its own lock; the decisions (which migration
//! to apply, when to refuse) and the mapping of rows and errors are made here, once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tower_auth_core::Scopes;

use super::{StoreError, StoreErrorKind};
use crate::{KeyHash, KeyRecord, StoredKey};

/// This crate's migrations table, in every backend: each tower-auth crate keeps its own, so all
/// of them can migrate one database.
pub(super) const MIGRATIONS_TABLE: &str = "tower_auth_apikey_migrations";

/// One migration of one backend.
#[derive(Debug)]
pub(super) struct Migration {
    pub(super) version: i64,
    pub(super) description: &'static str,
    pub(super) sql: &'static str,
}

impl Migration {
    pub(super) fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.sql.as_bytes()).to_vec()
    }
}

/// The migrations of `migrations` still to apply, given the `(version, checksum)` rows already
/// recorded. Refuses a database migrated by a newer version of this crate, or one where an
/// applied migration differs from this version's.
pub(super) fn pending<'m>(
    migrations: &'m [Migration],
    applied: &[(i64, Vec<u8>)],
) -> Result<Vec<&'m Migration>, StoreError> {
    let latest = migrations.last().map_or(0, |m| m.version);
    if applied.iter().any(|(v, _)| *v > latest) {
        return Err(StoreError::new(
            StoreErrorKind::Setup,
            "database was migrated by a newer version of tower-auth-apikey",
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
        .ok_or_else(|| corrupt("bad timestamp in key store"))
}

fn opt_time(ms: Option<i64>) -> Result<Option<SystemTime>, StoreError> {
    ms.map(time).transpose()
}

/// Maps a sqlx error: unique violations are conflicts, decoding failures corruption, the rest
/// unavailability.
pub(super) fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::new(StoreErrorKind::Conflict, "key id or hash already exists")
                .with_source(e)
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::new(StoreErrorKind::Corrupt, "cannot read key record").with_source(e)
        }
        _ => StoreError::unavailable(e),
    }
}

pub(super) fn corrupt(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}

/// A key record from a row holding [`COLUMN_NAMES`], with the metadata as JSON text and times
/// as Unix milliseconds, whatever the backend.
pub(super) fn row_to_stored<'r, R>(row: &'r R) -> Result<StoredKey, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let hash: Vec<u8> = row.try_get("key_hash").map_err(db_error)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| corrupt("key hash of the wrong size in key store"))?;
    let scopes: String = row.try_get("scopes").map_err(db_error)?;
    let metadata: String = row.try_get("metadata").map_err(db_error)?;
    let metadata = serde_json::from_str(&metadata)
        .map_err(|e| corrupt("bad metadata json in key store").with_source(e))?;
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
        },
        hash: KeyHash::from_bytes(hash),
    })
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
        let changed = [(1, vec![0])];
        assert!(
            pending(MS, &changed)
                .unwrap_err()
                .to_string()
                .contains("differs")
        );
        let newer = [(3, vec![0])];
        assert!(
            pending(MS, &newer)
                .unwrap_err()
                .to_string()
                .contains("newer")
        );
    }
}
