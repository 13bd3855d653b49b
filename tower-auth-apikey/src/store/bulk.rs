//! Bulk loading for benchmarks and tests (feature `testing`): many keys in one transaction,
//! batched into multi-row `INSERT`s, and numbered keys that can be made again from their
//! number.

use sha2::{Digest, Sha256};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use super::StoreError;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use super::sql::{db_error, millis};
use crate::key::{KeyFormat, KeyHasher, RANDOM_LEN};
use crate::{KeyHash, StoredKey};

/// Rows per `INSERT` statement: 10 columns each, well under SQLite's 32,766 and Postgres's
/// 65,535 bind parameters.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const BATCH: usize = 1_000;

/// The columns a bulk insert writes, in order.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const INSERT: &str = "INSERT INTO tower_auth_api_keys (id, key_hash, owner, name, scopes, \
                      created_at, expires_at, revoked_at, last_used_at, metadata) ";

/// Pushes `keys` as one multi-row insert into `query` (after [`INSERT`]). `metadata_cast` is
/// appended to the metadata placeholder (`::jsonb` on Postgres).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn push_rows<'a, DB>(query: &mut sqlx::QueryBuilder<'a, DB>, keys: &'a [StoredKey], cast: &str)
where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a [u8]: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    query.push("VALUES ");
    let mut rows = query.separated(", ");
    for key in keys {
        let r = &key.record;
        rows.push("(");
        rows.push_bind_unseparated(r.id.as_str());
        rows.push_bind(&key.hash.as_bytes()[..]);
        rows.push_bind(r.owner.as_str());
        rows.push_bind(r.name.as_deref());
        rows.push_bind(r.scopes.to_space_separated());
        rows.push_bind(millis(r.created_at));
        rows.push_bind(r.expires_at.map(millis));
        rows.push_bind(r.revoked_at.map(millis));
        rows.push_bind(r.last_used_at.map(millis));
        rows.push_bind(r.metadata.to_string());
        rows.push_unseparated(cast);
        rows.push_unseparated(")");
    }
}

#[cfg(feature = "sqlite")]
impl super::SqliteStore {
    /// Inserts `keys` in one transaction, in multi-row `INSERT`s of 1,000 rows (feature
    /// `testing`): a million keys in seconds, for benchmarks and tests.
    ///
    /// Unlike [`KeyStore::insert`](super::KeyStore::insert) it writes no change-log entries:
    /// authenticators already running on the database learn of the keys at their filter's next
    /// [refresh](crate::ApiKeyAuthenticatorBuilder::key_filter_refresh) (or call
    /// [`invalidate_cache`](crate::ApiKeyAuthenticator::invalidate_cache)). Load before
    /// starting them. A duplicate id or hash is a conflict and rolls everything back.
    pub async fn bulk_insert<I>(&self, keys: I) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = StoredKey>,
    {
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let batch: Vec<StoredKey> = keys.by_ref().take(BATCH).collect();
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(INSERT);
            push_rows(&mut query, &batch, "");
            query.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}

#[cfg(feature = "postgres")]
impl super::PostgresStore {
    /// Inserts `keys` in one transaction, in multi-row `INSERT`s of 1,000 rows (feature
    /// `testing`): a million keys in seconds, for benchmarks and tests.
    ///
    /// It sends one notification for the whole load (not a key's hash), on which every
    /// listening authenticator clears its cache and reloads its filter of known keys. A
    /// duplicate id or hash is a conflict and rolls everything back.
    pub async fn bulk_insert<I>(&self, keys: I) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = StoredKey>,
    {
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let batch: Vec<StoredKey> = keys.by_ref().take(BATCH).collect();
            let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(INSERT);
            push_rows(&mut query, &batch, "::jsonb");
            query.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        sqlx::query("SELECT pg_notify($1, 'bulk')")
            .bind(super::postgres::CHANNEL)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }
}

/// Key number `n` under `prefix`, the same every time: the plain key (well-formed, with a
/// valid checksum, hashed with plain SHA-256 as without a pepper) and a record (id
/// `key_{n}`, owner `owner_{n}`, scope `read`, no name, expiry or metadata) to store. For loading many keys and presenting
/// some of them later without keeping them all; never for real keys, which must be random.
///
/// # Panics
///
/// When `prefix` is not a valid key prefix.
#[allow(clippy::expect_used)]
pub fn numbered_key(prefix: &str, n: u64) -> (String, StoredKey) {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let format = KeyFormat::new(prefix, None).expect("a valid key prefix");
    let seed = Sha256::digest(n.to_be_bytes());
    let random: String = seed
        .iter()
        .take(RANDOM_LEN)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let key = format.key_with_random(&random);
    let hash: KeyHash = KeyHasher::new(None)
        .expect("no pepper")
        .hash(key.expose_secret());
    let mut stored = super::testing::stored(&format!("key_{n}"), 0);
    stored.hash = hash;
    stored.record.owner = format!("owner_{n}");
    stored.record.name = None;
    stored.record.scopes = tower_auth_core::Scopes::new(["read"]);
    stored.record.expires_at = None;
    stored.record.metadata = serde_json::json!({});
    (key.expose_secret().to_owned(), stored)
}
