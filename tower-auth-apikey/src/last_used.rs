//! Write-behind of last-used times: the request path only notes `(key id, time)` in memory; a
//! background tokio task writes the batch every interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crate::{KeyStore, StoreError, telemetry};

/// Pending entries kept at most; beyond that new keys are dropped until the next flush (the
/// times are advisory, memory is not).
const MAX_PENDING: usize = 100_000;

pub(crate) struct LastUsed {
    store: Arc<dyn KeyStore>,
    pending: Mutex<HashMap<Arc<str>, SystemTime>>,
    interval: Duration,
    timeout: Duration,
    started: AtomicBool,
}

impl LastUsed {
    pub(crate) fn new(store: Arc<dyn KeyStore>, interval: Duration, timeout: Duration) -> Self {
        Self {
            store,
            pending: Mutex::new(HashMap::new()),
            interval,
            timeout,
            started: AtomicBool::new(false),
        }
    }

    /// Notes a use. Called on the request path: a map insert, and the first time only, spawning
    /// the flusher on the current tokio runtime.
    pub(crate) fn note(self: &Arc<Self>, id: &Arc<str>, at: SystemTime) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let full = pending.len() >= MAX_PENDING;
            match pending.get_mut(id) {
                Some(t) if *t < at => *t = at,
                Some(_) => {}
                None if !full => {
                    pending.insert(Arc::clone(id), at);
                }
                None => {}
            }
        }
        if !self.started.load(Ordering::Relaxed) && !self.started.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(flush_loop(Arc::downgrade(self), self.interval));
                }
                // No runtime here: try again on the next use.
                Err(_) => self.started.store(false, Ordering::Release),
            }
        }
    }

    /// Writes what is pending now. On failure the entries are put back for the next attempt.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let batch: Vec<(String, SystemTime)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *pending)
                .into_iter()
                .map(|(id, t)| (id.to_string(), t))
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        telemetry::store_query("record_last_used");
        let result =
            match tokio::time::timeout(self.timeout, self.store.record_last_used(&batch)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    telemetry::store_failure("record_last_used", "error", &e);
                    e
                }
                Err(_) => {
                    let e = StoreError::timeout();
                    telemetry::store_failure("record_last_used", "timeout", &e);
                    e
                }
            };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, t) in batch {
            if pending.len() >= MAX_PENDING {
                break;
            }
            let e = pending.entry(Arc::from(id)).or_insert(t);
            if *e < t {
                *e = t;
            }
        }
        Err(result)
    }
}

async fn flush_loop(this: Weak<LastUsed>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        // Holding only a weak reference between ticks: the task ends with the authenticator.
        let Some(this) = this.upgrade() else { return };
        // Failures are logged and counted by `flush`, and retried on the next tick.
        let _ = this.flush().await;
    }
}
