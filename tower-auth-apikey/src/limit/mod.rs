//! Per-key rate limits and usage credits, enforced by the API key scheme itself.
//!
//! A key's record may carry a [`RateLimit`] (requests per period, with a burst) and
//! [`Credits`] (a remaining count, optionally refilled). [`ApiKeyAuthenticator`] checks them
//! after it has authenticated the key, so every stack that runs the scheme applies them,
//! forward authentication included, and a request refused afterwards by a scope or role
//! requirement has been charged. Over the rate, or out of credits, the request gets 429 (gRPC
//! `RESOURCE_EXHAUSTED`) and the inner service is not called; a refused request is charged to
//! neither limit.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_auth_apikey::limit::{RateLimit, RateLimitHeadersLayer};
//! use tower_auth_apikey::{ApiKeyAuthenticator, MemoryStore, NewKey};
//! use tower_auth_core::AuthenticateLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = ApiKeyAuthenticator::builder(MemoryStore::new()).build().unwrap();
//! let rate = RateLimit::new("1/1h".parse().unwrap(), Some(2)).unwrap();
//! let key = auth.admin().create(NewKey::new("cron").rate_limit(rate)).await.unwrap().key;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(AuthenticateLayer::required(auth))
//!     .layer(RateLimitHeadersLayer::new())
//!     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
//! let get = || Request::get("/").header("x-api-key", key.expose_secret()).body(()).unwrap();
//!
//! // A burst of two, then one an hour.
//! let res = svc.clone().oneshot(get()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["ratelimit-policy"], "\"rate\";q=1;w=3600");
//! assert_eq!(res.headers()["ratelimit"], "\"rate\";r=1;t=3600");
//! assert_eq!(svc.clone().oneshot(get()).await.unwrap().status(), StatusCode::OK);
//! let res = svc.oneshot(get()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(res.headers()["retry-after"], "3600");
//! assert_eq!(res.headers()["ratelimit"], "\"rate\";r=0;t=7200");
//! # }
//! ```
//!
//! # Headers
//!
//! Refusals carry `Retry-After` when waiting helps (over the rate; out of credits that a
//! refill will restore, until the refill), and the structured fields of the IETF httpapi
//! draft [draft-ietf-httpapi-ratelimit-headers-10]:
//!
//! - `RateLimit-Policy: "rate";q=100;w=1, "credits";q=10000;w=2592000`: the rate's count and
//!   period in seconds; the refill's count and period (a `"credits"` policy only with a
//!   refill).
//! - `RateLimit: "rate";r=0;t=1, "credits";r=9876;t=86400`: `r` how many requests could be
//!   made now (up to the burst) or the credits left, `t` seconds until the full burst is
//!   available again or until the next refill (none without a refill).
//!
//! Allowed requests get the same headers with what remains through [`RateLimitHeadersLayer`],
//! placed inside `AuthenticateLayer` (building the values costs an allocation per request, so
//! it is a layer of its own). The [`KeyUsage`] extension of the principal gives the same
//! [`LimitStatus`] to handlers.
//!
//! # One instance
//!
//! The rate is a GCRA (generic cell rate algorithm) from the [`governor`] crate, kept per
//! key id, apart from the key cache: a cache reload (TTL, invalidation) neither resets a rate
//! nor forgets credits spent and not yet written. A reload with a changed rate limit starts
//! the new one with a full burst. Credits are counted in memory and written back to the store
//! in batches ([`KeyStore::spend_credits`](crate::KeyStore::spend_credits)), every
//! [`last_used_interval`](crate::ApiKeyAuthenticatorBuilder::last_used_interval) (10 s),
//! like last-used times; call
//! [`flush_credits`](crate::ApiKeyAuthenticator::flush_credits) on shutdown. The decision
//! takes a per-key lock for a few arithmetic operations and allocates nothing.
//!
//! governor was chosen over a hand-written GCRA (DESIGN.md: a well-kept crate first): it is
//! the ecosystem's standard rate limiter (tower-governor, actix-governor build on it), takes
//! an injectable clock (tests drive it with
//! [`ManualClock`](tower_auth_core::clock::ManualClock)), and its state information gives the
//! remaining burst for the headers. Its default features (a keyed `dashmap` store, `quanta`,
//! jitter) are off: the keyed state is ours, by key id.
//!
//! `SqliteStore` and `MemoryStore` serve one instance: there, the above is the whole story.
//! (Several processes on one SQLite file each hold their own rate, and share credits with an
//! overshoot of up to what each spends in one write-back interval.)
//!
//! # Several instances (Postgres)
//!
//! On a store that shares limits ([`KeyStore::shares_limits`](crate::KeyStore::shares_limits):
//! `PostgresStore`), the instances enforce one rate and one credit count per key together.
//! Each instance leases from the database, with one statement per lease
//! ([`KeyStore::lease_limits`](crate::KeyStore::lease_limits)), an `UPDATE ... RETURNING` on
//! the key's row that:
//!
//! - takes up to a batch of rate tokens from a GCRA kept on the row (its theoretical arrival
//!   time, `rate_tat_us`): as many as the key's burst allows now, up to the batch, moving the
//!   arrival time on by one emission interval per token;
//! - writes back the credits the instance spent since its last lease (the remaining count,
//!   refilled if a refill period began, less those spent, never below zero) and returns what
//!   is left.
//!
//! Concurrent leases queue on the row lock, so each sees the one before. The batch size is
//! [`limit_lease_batch`](crate::ApiKeyAuthenticatorBuilder::limit_lease_batch) (default 20):
//! the most rate tokens an instance holds, and the most credits it spends between two
//! leases. An instance takes a new lease in the background when it has spent half of its
//! batch, and when spent credits are written back (every
//! [`last_used_interval`](crate::ApiKeyAuthenticatorBuilder::last_used_interval) and by
//! [`flush_credits`](crate::ApiKeyAuthenticator::flush_credits)), so no request waits on the
//! database in steady state. The first request of a key on an instance waits for the key's
//! first lease (with the store lookup it needs anyway).
//!
//! **The bound.** Tokens leased but not yet spent, and credits spent but not yet written
//! back, are what the instances can use beyond the key's limits: a key may overshoot its rate
//! (over any window) and its credits by at most the batch size times the number of instances.
//! An instance whose leased tokens run out spends one more ahead of its next lease (counted
//! within its batch) and, if the database has none to give, refuses with 429 until it has;
//! its refused requests ask for a lease again once the next token is due (one emission
//! interval later), so a key hammered over its limit does not hammer the database.
//! Each instance still applies the rate in memory as well, so one instance alone never goes
//! over it. Leased tokens not spent when an instance stops are lost (the key's rate recovers
//! them within one burst); spent credits are written back by `flush_credits` on shutdown.
//!
//! **Store down.** A lease that fails (or misses the
//! [`store_timeout`](crate::ApiKeyAuthenticatorBuilder::store_timeout)) marks the store down
//! for that key. By default limits fail closed: once the instance's lease is spent, requests
//! of the key get 503 (`api key limits unavailable`) until a lease succeeds again (refused
//! requests ask for one in the background, at most every 100 ms). A changed rate limit
//! (`update_limits`) starts afresh in the database too, with a full burst. A key that spends half its batch faster
//! than one database round trip can see the same 503 while its lease is on the way: raise the
//! batch size for such keys' traffic.
//! [`limits_fail_open_when_store_down`](crate::ApiKeyAuthenticatorBuilder::limits_fail_open_when_store_down)
//! keeps allowing while the store is down, within the limits the instance last knew (its own
//! rate limiter and credit count): each instance then enforces the rate alone, so together
//! they may allow up to that many times the rate, and credits spent are written back when the
//! store returns.
//!
//! [draft-ietf-httpapi-ratelimit-headers-10]: https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/
//! [`ApiKeyAuthenticator`]: crate::ApiKeyAuthenticator

mod headers;
mod lease;
mod limiter;
mod model;

pub use self::headers::{
    KeyUsage, RATELIMIT, RATELIMIT_POLICY, RateLimitHeaders, RateLimitHeadersLayer, ResponseFuture,
};
pub use self::lease::{Lease, LeaseRequest};
pub use self::limiter::{CreditsStatus, LimitStatus, RateStatus};
pub use self::model::{Credits, InvalidLimit, KeyLimits, LimitsUpdate, Rate, RateLimit};

pub(crate) use self::lease::LeaseConfig;
pub(crate) use self::limiter::Limiters;

/// Decides a request of the key `key_id` at `now`: 429 when over a limit.
pub(crate) fn check(
    usage: &KeyUsage,
    now: std::time::SystemTime,
    key_id: &str,
) -> Result<(), tower_auth_core::AuthError> {
    match usage.0.check(now) {
        limiter::Decision::Allowed => Ok(()),
        limiter::Decision::Unavailable => {
            crate::telemetry::outcome("unavailable", Some(key_id));
            Err(tower_auth_core::AuthError::unavailable(
                "api key limits unavailable",
            ))
        }
        limiter::Decision::Refused(refusal) => {
            crate::telemetry::limited(refusal.reason.as_str(), key_id);
            Err(headers::refusal_error(&refusal))
        }
    }
}
