//! What the SQL stores share: the migration plan, time and row conversions, error mapping.
//!
//! Each backend keeps its own statements (placeholders, types and locking differ) and runs its
//! migrations in one transaction under its own lock; the decisions (which migration to apply,
//! when to refuse) and the mapping of rows and errors are made here, once. Times are Unix
//! milliseconds (`INTEGER` in SQLite, `BIGINT` in Postgres) and claims JSON text in both.

use std::str::FromStr;

use sqlx::{ColumnIndex, Decode, Row, Type};
use tower_auth_core::sql::{Migrator, SqlError};

pub(super) use crate::sql::{Migration, millis};
use crate::sql::{Role, corrupt, time};

use super::{RefreshFamily, RefreshTokenHash, RefreshTokenRecord, StoreError, StoredSigningKey};
use crate::Algorithm;

/// The issuer's stores: their migrations table and error messages.
const ROLE: Role = Role {
    table: "tower_auth_jwt_migrations",
    newer: "database was migrated by a newer version of tower-auth-jwt",
    corrupt: "cannot read issuer record",
    unavailable: "issuer store unavailable",
};

/// `migrations` recorded in the issuer's migrations table, `tower_auth_jwt_migrations`, in
/// every backend: each tower-auth crate (and the revocation stores) keeps its own, so all of
/// them can migrate one database.
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

// The rows the issuer's stores write, bound in one place: the statements differ between
// backends only in their placeholders (and Postgres's `::jsonb`), the values and their order
// never. Macros rather than functions generic over sqlx's database, whose `Encode` bounds
// would be longer than the binds.

/// Binds a new signing key's `kid, algorithm, material, created_at` to `$query`, in that order.
macro_rules! bind_new_key {
    ($query:expr, $key:expr) => {
        $query
            .bind($key.kid())
            .bind($key.algorithm().as_str())
            .bind($key.secret_material())
            .bind($crate::sql::millis($key.created_at()))
    };
}

/// Binds a refresh token's `token_hash, family_id, created_at, expires_at, consumed_at` to
/// `$query`, in that order.
macro_rules! bind_token {
    ($query:expr, $token:expr) => {
        $query
            .bind(&$token.hash.as_bytes()[..])
            .bind(&$token.family_id)
            .bind($crate::sql::millis($token.created_at))
            .bind($crate::sql::millis($token.expires_at))
            .bind($token.consumed_at.map($crate::sql::millis))
    };
}

/// Binds a refresh family's `id, subject, client_id, scope, claims, created_at, expires_at,
/// revoked_at` to `$query`, in that order (the claims as JSON text).
macro_rules! bind_family {
    ($query:expr, $family:expr) => {
        $query
            .bind(&$family.id)
            .bind(&$family.subject)
            .bind(&$family.client_id)
            .bind(&$family.scope)
            .bind($family.claims.to_string())
            .bind($crate::sql::millis($family.created_at))
            .bind($crate::sql::millis($family.expires_at))
            .bind($family.revoked_at.map($crate::sql::millis))
    };
}

pub(super) use {bind_family, bind_new_key, bind_token};

/// A stored optional Unix-millisecond time.
fn opt_time(ms: Option<i64>) -> Result<Option<std::time::SystemTime>, StoreError> {
    ms.map(time).transpose()
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
    use std::error::Error as _;

    use super::*;
    use crate::store::StoreErrorKind;

    #[test]
    fn errors_get_the_issuers_messages() {
        let e = db_error(sqlx::Error::PoolTimedOut);
        assert_eq!(e.kind(), StoreErrorKind::Unavailable);
        assert!(e.to_string().starts_with("issuer store unavailable"), "{e}");
        assert!(e.source().is_some());
        let e = db_error(sqlx::Error::Decode("bad".into()));
        assert!(e.to_string().contains("cannot read issuer record"), "{e}");
        let newer = migrator(&[]).pending(&[(1, vec![0])]).unwrap_err();
        let e = store_error(newer);
        assert_eq!(e.kind(), StoreErrorKind::Setup);
        assert!(
            e.to_string().contains("newer version of tower-auth-jwt"),
            "{e}"
        );
    }
}
