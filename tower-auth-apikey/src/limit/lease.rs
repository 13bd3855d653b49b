//! What an authenticator asks of a store that shares limits among several instances, and what
//! it gets back (see [`KeyStore::lease_limits`](crate::KeyStore::lease_limits)).

use std::time::SystemTime;

/// A lease asked of the store for one key: rate tokens wanted and credits spent since the last
/// lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Rate tokens wanted (0 for a key without a rate limit).
    pub rate_tokens: u64,
    /// Credits spent since the last lease, to write back.
    pub credits_spent: u64,
    /// When the last of them was spent.
    pub credits_spent_at: SystemTime,
}

/// A lease granted by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Rate tokens granted: at most those asked for, fewer when the key's rate limit allows
    /// fewer now (all those asked for when the key has no rate limit).
    pub rate_tokens: u64,
    /// The credits left in the store after the spending was written, if the key has credits.
    pub credits_remaining: Option<u64>,
}

/// How an authenticator leases limits from a store that shares them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeaseConfig {
    /// The largest lease of rate tokens, and the most credits spent between two leases.
    pub(crate) batch: u64,
    /// Keep allowing within the limits known in memory while the store is down.
    pub(crate) fail_open: bool,
    /// The deadline of a lease (the store timeout).
    pub(crate) timeout: std::time::Duration,
}
