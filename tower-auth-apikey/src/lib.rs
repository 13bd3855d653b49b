//! API key authentication for tower: prefixed, checksummed keys, stored only as hashes, looked
//! up through a bounded cache, with expiry, revocation, rotation, write-behind last-used times
//! and an administration API and CLI.
//!
//! [`ApiKeyAuthenticator`] is a tower-auth-core [`Authenticator`](tower_auth_core::Authenticator):
//! run it with [`AuthenticateLayer`](tower_auth_core::AuthenticateLayer), alone or composed
//! with other schemes (`apikey.or(jwt)`). A request it accepts carries a
//! [`Principal`](tower_auth_core::Principal) whose subject is the key's owner, kind
//! `Application`, scheme `api_key`, with the key's scopes and expiry, and the [`KeyRecord`] as
//! extension.
//!
//! # Quick start
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_apikey::{ApiKeyAuthenticator, KeyRecord, MemoryStore, NewKey};
//! use tower_auth_core::{AuthenticateLayer, Principal, RequireScopesLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = ApiKeyAuthenticator::builder(MemoryStore::new())
//!     .prefix("sk_test")
//!     .build()
//!     .unwrap();
//!
//! // Create a key: the plain key is returned once; only its hash is stored.
//! let created = auth
//!     .admin()
//!     .create(NewKey::new("billing-service").scopes(["read:items"]))
//!     .await
//!     .unwrap();
//! let key = created.key.expose_secret().to_owned();
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth.clone()))
//!     .layer(RequireScopesLayer::all_of(["read:items"]))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let p = req.extensions().get::<Principal>().unwrap();
//!         let record = p.extension::<KeyRecord>().unwrap();
//!         Ok::<_, Infallible>(Response::new(format!("{} via {}", p.subject(), record.id)))
//!     }));
//!
//! let get = |header: Option<(&str, String)>| {
//!     let mut b = Request::get("/items");
//!     if let Some((name, value)) = header { b = b.header(name, value); }
//!     b.body(()).unwrap()
//! };
//!
//! // The key as a Bearer token, or in the X-API-Key header: 200.
//! let res = svc.clone().oneshot(get(Some(("authorization", format!("Bearer {key}"))))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert!(res.body().starts_with("billing-service via key_"));
//! let res = svc.clone().oneshot(get(Some(("x-api-key", key.clone())))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // No key: 401 with a bare challenge. A tampered key: 401 invalid_token, no store lookup.
//! let res = svc.clone().oneshot(get(None)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
//! let last = if key.ends_with('x') { 'y' } else { 'x' };
//! let tampered = format!("{}{last}", &key[..key.len() - 1]);
//! let res = svc.clone().oneshot(get(Some(("x-api-key", tampered)))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
//!
//! // A key without the required scope: 403.
//! let reader = auth.admin().create(NewKey::new("intern")).await.unwrap();
//! let res = svc.clone()
//!     .oneshot(get(Some(("x-api-key", reader.key.expose_secret().to_owned()))))
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//!
//! // Revoked: 401 from the next request on.
//! auth.admin().revoke(&created.record.id).await.unwrap();
//! let res = svc.oneshot(get(Some(("x-api-key", key)))).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
//! # Keys
//!
//! A key looks like `sk_live_` followed by 36 base62 characters: 30 random characters from the
//! operating system's generator (178 bits) and 6 characters encoding the CRC32 of everything
//! before them, the prefix included (GitHub's and Stripe's shape). The prefix names the
//! environment; configure it with
//! [`prefix`](ApiKeyAuthenticatorBuilder::prefix) and
//! [`other_prefixes`](ApiKeyAuthenticatorBuilder::other_prefixes).
//!
//! Before any lookup, the authenticator rejects (401 `invalid_token`) a key that is too long or
//! too short, has an unknown prefix, a character outside base62, a bad checksum, or the prefix
//! of another environment. A Bearer value is claimed by this scheme when it starts with any
//! known prefix and `_`, so a test key sent to production is rejected here and never forwarded
//! to the next scheme in an `or` chain; other Bearer values (JWTs, opaque tokens) are left to
//! other schemes. Everything in the dedicated header is claimed.
//!
//! # Sources
//!
//! | source | default | notes |
//! |---|---|---|
//! | `Authorization: Bearer <key>` ([RFC 6750]) | on | parsed by tower-auth-core's shared parser (RFC 7235 rules) |
//! | a named header | `X-API-Key` | [`header`](ApiKeyAuthenticatorBuilder::header), [`no_header`](ApiKeyAuthenticatorBuilder::no_header) |
//! | a query parameter | off | [`insecure_query_parameter`](ApiKeyAuthenticatorBuilder::insecure_query_parameter): URLs leak into logs |
//!
//! A key in two places at once (even the same key) is a malformed request: 400
//! `invalid_request`. The 401 challenge is the core's `Bearer realm="api"`.
//!
//! # Lookups, cache and deadlines
//!
//! A well-formed key is hashed and looked up by hash through tower-auth-core's
//! [`AuthCache`](tower_auth_core::cache::AuthCache): positive entries for 30 s, negative
//! (unknown key) entries for 10 s, at most 100,000 entries (all configurable with
//! [`cache`](ApiKeyAuthenticatorBuilder::cache)). Concurrent misses for one key make one store
//! query; in steady state a request makes none. Revoked and expired keys are cached like any
//! record and rejected on every request: expiry is checked per request against the configured
//! [`Clock`](tower_auth_core::clock::Clock), cached or not.
//!
//! On a store with a change feed that lists its key hashes ([`SqliteStore`], [`PostgresStore`]),
//! a [filter of known keys](ApiKeyAuthenticatorBuilder::key_filter) comes first on a cache
//! miss: an in-memory Bloom filter of every stored key's hash (about 3.6 MB at a million keys)
//! refuses a key the store does not hold without a query or a cache entry, so a flood of
//! distinct unknown well-formed keys reaches neither the store (but for about 0.1 % false
//! positives) nor the cache of real keys. It is kept current by the change feed and reloaded
//! from the store periodically; until it is loaded, or when it cannot be, every key is looked
//! up (it fails open, never refusing a stored key). A key created by another process is
//! accepted once the feed reports it, within about 100 ms.
//!
//! Each store lookup has a deadline ([`store_timeout`](ApiKeyAuthenticatorBuilder::store_timeout),
//! default 2 s). A store error or a missed deadline answers 503 with `Retry-After`: fail closed,
//! never cached, so the next request tries the store again.
//!
//! Stale-if-error is an option, off by default:
//! [`stale_if_error(max_staleness)`](ApiKeyAuthenticatorBuilder::stale_if_error) keeps the last
//! record read from the store for each key (in a second bounded cache) and answers from it,
//! at most `max_staleness` after it was read, when a lookup fails; revoked and expired keys
//! are still rejected, keys not read before the outage still get a 503, and revocations
//! through this authenticator drop the copy at once. It trades fail-closed for availability:
//! a revocation made by another process during an outage is seen only after `max_staleness`.
//!
//! # Revocation and rotation
//!
//! [`ApiKeys::revoke`] drops the key from the cache of the authenticator it came from
//! ([`ApiKeyAuthenticator::admin`]) at once; a lookup that was already under way when the
//! revocation happened re-reads the store rather than caching the old record. Other processes
//! sharing the store see it within about 100 ms on SQLite (its change log, polled) and within
//! milliseconds on Postgres (`LISTEN`/`NOTIFY`); see below. On a store without a change feed
//! (such as [`MemoryStore`] shared through an `Arc` with a standalone [`ApiKeys`]), within the
//! positive TTL.
//!
//! [`ApiKeys::rotate`] creates a new key with the same owner, name, scopes and metadata and sets
//! the old key to expire after a grace period, so clients can switch without downtime.
//!
//! # Last used
//!
//! Successful requests note `(key id, time)` in memory (once a second per key at most); a
//! background tokio task, started on first use, writes the batch every
//! [`last_used_interval`](ApiKeyAuthenticatorBuilder::last_used_interval) (default 10 s). The
//! request path never writes to the store. Call [`ApiKeyAuthenticator::flush_last_used`] on
//! shutdown to write what is pending.
//!
//! # Rate limits and credits
//!
//! A key may carry a rate limit (requests per period, with a burst) and usage credits (a
//! remaining count, optionally refilled every period from the key's creation), set by
//! [`NewKey::rate_limit`] / [`NewKey::credits`] / [`NewKey::refill`] or
//! [`ApiKeys::update_limits`] (`keys create --rate 100/1s --burst 200 --credits 10000`,
//! `keys update KEY_ID ...`). The authenticator checks them after authenticating the key:
//! over a limit, 429 with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit`
//! headers, charged to neither limit. On one instance (`SqliteStore`, `MemoryStore`) rates are
//! kept in memory and credits written back in batches like last-used times
//! ([`ApiKeyAuthenticator::flush_credits`]). On `PostgresStore` the instances share them:
//! each leases batches of rate tokens and credits from the database
//! ([`limit_lease_batch`](ApiKeyAuthenticatorBuilder::limit_lease_batch)), so a key may
//! overshoot by at most the batch size times the instances, and a store down fails closed
//! (503 once the lease is spent) unless
//! [`limits_fail_open_when_store_down`](ApiKeyAuthenticatorBuilder::limits_fail_open_when_store_down).
//! See [`limit`] for the headers, the state kept and the leases.
//!
//! # Stores
//!
//! [`KeyStore`] is an object-safe trait with boxed futures; see the [`store`] module.
//! [`MemoryStore`] is for tests and tools, [`SqliteStore`] (feature `sqlite`) is the embedded
//! default for one instance, and [`PostgresStore`] (feature `postgres`) is the store for many
//! instances. The SQL stores ship their migrations in this crate and record them in their own
//! table (`tower_auth_apikey_migrations`), so one database can hold the tables of every
//! tower-auth crate and of your application.
//!
//! # Other processes on one SQLite file
//!
//! A server and the `keys` command next to it, or two servers, may share one SQLite file.
//! [`SqliteStore`] writes every change (key created, revoked, rotated) to a change log in the
//! transaction that makes it, and every [`ApiKeyAuthenticator`] on it polls that log over a
//! connection of its own every 100 ms ([`SqliteStoreBuilder::poll_interval`]), reading a table
//! only when `PRAGMA data_version` says another connection committed, and drops exactly the
//! changed keys from its cache: a key revoked by the `keys` command is refused by a running
//! server within about 100 ms instead of the 30 s TTL. Last-used writes are not changes and
//! drop nothing. The log is pruned after an hour
//! ([`SqliteStoreBuilder::change_log_retention`]); a reader that fell further behind clears
//! its whole cache and counts it in `tower_auth_apikey_feed_behind_total`. See
//! [`SqliteStore`].
//!
//! # Many instances: Postgres
//!
//! Use [`PostgresStore`] when several processes (replicas behind a load balancer, a fleet of
//! workers) serve the same keys. Each instance keeps its own cache, so the steady state is
//! still zero queries per request, and a revocation made anywhere reaches every instance at
//! once instead of after the cache TTL:
//!
//! - [`ApiKeys::revoke`] and [`ApiKeys::rotate`] (which moves the old key's expiry), from any
//!   process (a server, the CLI), run `NOTIFY tower_auth_api_keys, '<key hash in hex>'` in the
//!   same transaction as the change: the notification goes out if and only if the change
//!   commits. The payload is the key's hash (never the key), which anyone able to `LISTEN` can
//!   already read from the table.
//! - Every [`ApiKeyAuthenticator`] on a `PostgresStore` holds one `LISTEN` connection
//!   (`application_name` `tower-auth-apikey-listener`) in a background tokio task, and drops
//!   the key's cache entry when the notification arrives: within milliseconds (the tests
//!   measure under 5 ms on loopback). The task ends, and the connection closes, when the last
//!   clone of the authenticator is dropped.
//! - **Lost notifications.** `NOTIFY` is delivered only to connections listening at that
//!   moment. When the listening connection is lost (a restart, a failover, a terminated
//!   backend), the authenticator reconnects with a backoff (up to 5 s between attempts) and,
//!   once listening again, clears its whole cache, since it may have missed notifications
//!   meanwhile. A silently dead connection (a network partition without a reset) is only
//!   noticed by TCP; in every case the positive TTL (default 30 s) remains the upper bound.
//!   Changes made in SQL by hand send no notification unless you run the same `NOTIFY`.
//! - **Outages.** Store calls keep their deadline ([`store_timeout`](ApiKeyAuthenticatorBuilder::store_timeout),
//!   default 2 s) and the pool gives up connecting after its `acquire_timeout` (default 1 s),
//!   so while Postgres is down requests that miss the cache get a 503 promptly; keys still
//!   cached keep working until their TTL (or longer with `stale_if_error`). The pool and the
//!   listener reconnect by themselves when Postgres is back.
//!
//! The hook is generic: [`KeyStore::invalidations`] returns an optional
//! [`InvalidationFeed`] (default `None`), so another shared store (or a message bus in front of
//! one) can push invalidations the same way. The SQLite and Postgres stores implement the same
//! hook, so the layers do not care which one runs.
//!
//! # Administration
//!
//! [`ApiKeys`] creates, lists, gets, revokes, rotates keys and changes their limits from
//! Rust. The [`cli`] module
//! (feature `cli`) wraps it in a clap subcommand, `KeysCommand`, for your application's command
//! line.
//!
//! # Design choices
//!
//! - **Format checks happen in `extract`, the verdict in `authenticate`.** `extract` claims the
//!   key, checks its format and hashes it, but a bad key is carried as a credential whose
//!   future is immediately an error. So a composed [`Or`](tower_auth_core::Or) still sees where
//!   each credential was (a key in `X-API-Key` plus another scheme's Bearer token is a 400, not
//!   a 401), and a rejected key costs no allocation beyond the error itself.
//! - **One boxed future per lookup.** [`ApiKeyFuture`] is ready at once for format failures
//!   and boxes the cache lookup otherwise (the cache's own future is not nameable); that is one
//!   small allocation on the hit path.
//! - **Revoked and expired records are cached like valid ones** and rejected per request, so
//!   a client retrying with a revoked key costs no store queries either.
//! - **The checksum covers the prefix**, so relabelling a test key as a live one fails it.
//! - **An object-safe store** (`Arc<dyn KeyStore>`): the authenticator has one concrete type
//!   whatever the backend, which keeps it nameable in application state and lets the CLI take
//!   any store.
//! - **Last-used times are advisory**: noted at most once a second per key, buffered (bounded)
//!   and written in one transaction per interval; a failed write is retried on the next one.
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sqlite` | yes | [`SqliteStore`] (sqlx, SQLite compiled in), with its change-log feed |
//! | `postgres` | no | [`PostgresStore`] (sqlx), with `LISTEN`/`NOTIFY` invalidation |
//! | `postgres-tls` | no | TLS for Postgres connections (rustls with aws-lc-rs; `sslmode=verify-full` in the URL) |
//! | `testing` | no | `store::testing::conformance`, the suite every store passes; `bulk_insert` on the SQL stores and `store::testing::numbered_key`, to load many keys for benchmarks and tests |
//! | `tracing` | yes | events on the `tower_auth::apikey` target: outcome and public key id, never key material |
//! | `metrics` | no | counters `tower_auth_apikey_requests_total{outcome}`, `tower_auth_apikey_store_queries_total{op}`, `tower_auth_apikey_store_failures_total{op,reason}`, `tower_auth_apikey_stale_served_total`, `tower_auth_apikey_invalidations_total{kind=key\|created\|all}`, `tower_auth_apikey_listener_failures_total`, `tower_auth_apikey_feed_behind_total`, `tower_auth_apikey_feed_unreadable_total` (SQLite change feed), `tower_auth_apikey_filter_loads_total`, and core's `tower_auth_requests_total` and `tower_auth_cache_requests_total{cache="api_key"}` (key cache lookups); `describe_metrics()` gives them their help texts |
//! | `cli` | no | `cli::KeysCommand`, a clap subcommand |
//!
//! # Security notes
//!
//! - **Hash, not a password hash.** Keys carry 178 random bits, so a fast hash cannot be
//!   brute-forced and bcrypt or argon2 would only slow every cache miss down. SHA-256 also makes
//!   the hash usable as the lookup key (no per-key salt), so a lookup is one indexed query.
//! - **Pepper.** With [`pepper`](ApiKeyAuthenticatorBuilder::pepper) the stored value is
//!   HMAC-SHA256 under a secret kept outside the database: a leaked database alone does not even
//!   let an attacker confirm a candidate key.
//! - **Lookups by hash.** The store compares hashes of keys, never keys, so timing differences
//!   reveal nothing usable about a key.
//! - **Never logged.** Keys appear in no log event, metric label, error message or `Debug`
//!   output ([`PlainKey`], the credential and the hash are all redacted); errors sent to the
//!   client are fixed strings. [`PlainKey`] has no `Display`: printing it takes
//!   [`expose_secret`](PlainKey::expose_secret).
//! - **Query parameters leak** into access logs, proxies, `Referer` headers and browser
//!   history; that source is off unless enabled by its `insecure_` name.
//! - **Checksum.** It only filters typos and garbage before the store is touched; it is not a
//!   signature (anyone can compute a CRC32), and security rests on the random part.
//! - **Fail closed.** A store that errors or misses its deadline gives 503, never a pass.
//!
//! See [RFC 6750] (Bearer tokens), [RFC 7235] (HTTP authentication) and [RFC 9700] (OAuth 2.0
//! security best current practice).
//!
//! [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
//! [RFC 7235]: https://www.rfc-editor.org/rfc/rfc7235
//! [RFC 9700]: https://www.rfc-editor.org/rfc/rfc9700

#![cfg_attr(docsrs, feature(doc_cfg))]
// Where other crates' docs link to this one's when these docs are not built beside them (a
// fresh `cargo doc --no-deps`, where crates are documented in parallel).
#![doc(html_root_url = "https://docs.rs/tower-auth-apikey/0.1.0")]

mod admin;
mod authenticator;
#[cfg(feature = "cli")]
pub mod cli;
mod filter;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod key;
mod last_used;
pub mod limit;
mod record;
pub mod store;
mod telemetry;

pub use self::admin::{AdminError, ApiKeys, ApiKeysBuilder, CreatedKey, NewKey};
pub use self::authenticator::{
    ApiKeyAuthenticator, ApiKeyAuthenticatorBuilder, ApiKeyCredential, ApiKeyFuture,
};
pub use self::key::{KeyHash, PlainKey};
pub use self::record::{KeyRecord, StoredKey};
pub use self::store::{
    Invalidation, InvalidationFeed, InvalidationFuture, KeyStore, MemoryStore, StoreError,
    StoreErrorKind, StoreFuture,
};
#[cfg(feature = "postgres")]
pub use self::store::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use self::store::{SqliteStore, SqliteStoreBuilder};
#[cfg(feature = "metrics")]
pub use self::telemetry::describe_metrics;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod html_root_url_tests {
    /// The `html_root_url` above names this crate's version, so links from other crates' docs
    /// land on the right page after a release.
    #[test]
    fn html_root_url_names_this_version() {
        let expected = concat!(
            "html_root_url = \"https://docs.rs/",
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION"),
            "\""
        );
        assert!(include_str!("lib.rs").contains(expected), "{expected}");
    }
}
