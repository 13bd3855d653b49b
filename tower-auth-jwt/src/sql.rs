//! What the SQL stores of both sides (the revocation stores and the issuer's stores) share:
//! the migration plan, time conversions, error mapping.
//!
//! Each side records its migrations in a table of its own (`tower_auth_jwt_migrations` for
//! the issuer, `tower_auth_jwt_revocation_migrations` for revocations), so a verifier that
//! keeps only revocations migrates only their table, and both can migrate one database. Each
//! backend keeps its own statements (placeholders, types and locking differ); times are Unix
//! milliseconds (`INTEGER` in SQLite, `BIGINT` in Postgres).

use std::time::SystemTime;

pub(crate) use tower_auth_core::sql::{Migration, millis};
use tower_auth_core::sql::{Migrator, SqlError, SqlErrorKind, from_millis};

use crate::store::{StoreError, StoreErrorKind};

/// The SQL stores of one side of the crate: where its migrations are recorded and the fixed
/// messages of its errors.
pub(crate) struct Role {
    /// The migrations table.
    pub(crate) table: &'static str,
    /// The error refusing a database migrated by a newer version.
    pub(crate) newer: &'static str,
    /// The message of a row that cannot be read back.
    pub(crate) corrupt: &'static str,
    /// The message of a store that failed to answer.
    pub(crate) unavailable: &'static str,
}

impl Role {
    /// `migrations`, recorded in this role's migrations table.
    pub(crate) const fn migrator(&self, migrations: &'static [Migration]) -> Migrator {
        Migrator {
            table: self.table,
            newer: self.newer,
            migrations,
        }
    }

    /// This crate's error for a failure of the shared SQL plumbing: setup failures keep their
    /// message; conflicts, corruption and unavailability get this role's.
    pub(crate) fn store_error(&self, e: SqlError) -> StoreError {
        let (kind, message) = match e.kind() {
            SqlErrorKind::Conflict => (StoreErrorKind::Conflict, "row already exists"),
            SqlErrorKind::Corrupt => (StoreErrorKind::Corrupt, self.corrupt),
            SqlErrorKind::Unavailable => (StoreErrorKind::Unavailable, self.unavailable),
            SqlErrorKind::Setup => (StoreErrorKind::Setup, e.message()),
        };
        let error = StoreError::new(kind, message);
        match e.into_source() {
            Some(source) => error.with_source(source),
            None => error,
        }
    }

    /// Maps a sqlx error: unique violations are conflicts, decoding failures corruption, the
    /// rest unavailability.
    pub(crate) fn db_error(&self, e: sqlx::Error) -> StoreError {
        self.store_error(e.into())
    }
}

/// A stored Unix-millisecond time.
pub(crate) fn time(ms: i64) -> Result<SystemTime, StoreError> {
    from_millis(ms).ok_or_else(|| corrupt("bad timestamp in store"))
}

/// A row that cannot be read back.
pub(crate) fn corrupt(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const ROLE: Role = Role {
        table: "example_migrations",
        newer: "database was migrated by a newer version of example",
        corrupt: "cannot read example record",
        unavailable: "example store unavailable",
    };

    #[test]
    fn errors_get_the_roles_kinds_and_messages() {
        let e = ROLE.db_error(sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), StoreErrorKind::Unavailable);
        assert!(
            e.to_string().starts_with("example store unavailable"),
            "{e}"
        );
        assert!(e.source().is_some());
        let e = ROLE.db_error(sqlx::Error::Decode("bad".into()));
        assert_eq!(e.kind(), StoreErrorKind::Corrupt);
        assert!(e.to_string().contains("cannot read example record"), "{e}");
        let e = ROLE.store_error(SqlError::new(SqlErrorKind::Conflict, "x"));
        assert_eq!(e.kind(), StoreErrorKind::Conflict);
        assert!(e.to_string().contains("row already exists"), "{e}");
        let newer = ROLE.migrator(&[]).pending(&[(1, vec![0])]).unwrap_err();
        let e = ROLE.store_error(newer);
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        assert!(e.to_string().contains("newer version of example"), "{e}");
    }

    #[test]
    fn times_round_trip_and_bad_ones_are_corrupt() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        assert_eq!(time(millis(t)).unwrap(), t);
        assert_eq!(time(-1).unwrap_err().kind(), StoreErrorKind::Corrupt);
    }
}
