//! The background tasks of a [`RevocationList`]: the notification listener, the poll, the
//! full reload, the purge (and the staleness gauge). Each holds the list weakly, so dropping
//! the last clone of the list ends them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Inner, RevocationList, call};
use crate::revocation::{RevocationEvent, RevocationFeed};
use crate::store::{StoreError, StoreErrorKind};
use crate::telemetry;

fn upgrade(weak: &Weak<Inner>) -> Option<RevocationList> {
    weak.upgrade().map(|inner| RevocationList { inner })
}

/// The pause before retry `attempt` (0-based) of a background step: 100 ms doubling up to
/// 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(5))
}

/// Applies the feed's events (entries at once, reloads handed to [`reload_loop`] so entries
/// keep flowing meanwhile, heartbeats as synchronization). When the feed ends, or was lost
/// with an earlier task, asks the store for a new one, connects it and asks for a reload.
/// The list is held only while an event is applied, so dropping it ends this task.
pub(super) async fn feed_loop(weak: Weak<Inner>, mut feed: Option<Box<dyn RevocationFeed>>) {
    let mut attempt = 0;
    loop {
        let mut current = match feed.take() {
            Some(f) => f,
            None => {
                let Some(list) = upgrade(&weak) else { return };
                let Some(mut f) = list.inner.store.revocation_feed() else {
                    return;
                };
                let deadline = list.inner.full_read_timeout;
                let name = Arc::clone(&list.inner.name);
                drop(list);
                let connected = call(deadline, f.connect()).await;
                match connected {
                    Ok(()) => {
                        attempt = 0;
                        // Whatever was written while no feed listened is only in the store.
                        if let Some(list) = upgrade(&weak) {
                            list.request_reload();
                        }
                        f
                    }
                    Err(e) => {
                        telemetry::revocation_sync_failed(&name, "listen", &e);
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt = attempt.saturating_add(1);
                        continue;
                    }
                }
            }
        };
        while let Some(event) = current.next().await {
            let Some(list) = upgrade(&weak) else { return };
            match event {
                RevocationEvent::Added(entry) => list.apply(std::slice::from_ref(&entry), true),
                RevocationEvent::Batch(entries) => list.apply(&entries, true),
                RevocationEvent::Reload => list.request_reload(),
                RevocationEvent::Alive => list.feed_alive(),
            }
        }
        let Some(list) = upgrade(&weak) else { return };
        telemetry::revocation_sync_failed(
            &list.inner.name,
            "listen",
            &StoreError::new(StoreErrorKind::Unavailable, "revocation feed ended"),
        );
        drop(list);
        tokio::time::sleep(backoff(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Full reloads, when the feed asks for one (repeated requests collapse into one) and every
/// `interval`, each retried until it succeeds. The list is held only during an attempt, so
/// dropping it ends this task even while the store is down.
pub(super) async fn reload_loop(weak: Weak<Inner>, wanted: Arc<Notify>, interval: Duration) {
    loop {
        tokio::select! {
            () = wanted.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        let mut attempt = 0;
        loop {
            let Some(list) = upgrade(&weak) else { return };
            match list.reload_inner().await {
                Ok(_) => break,
                Err(e) => telemetry::revocation_sync_failed(&list.inner.name, "reload", &e),
            }
            drop(list);
            tokio::time::sleep(backoff(attempt)).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

/// Polls every `interval`; every `reload_interval` a full reload instead.
pub(super) async fn poll_loop(weak: Weak<Inner>, interval: Duration, reload_interval: Duration) {
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let Some(list) = upgrade(&weak) else { return };
        if last_full.elapsed() >= reload_interval {
            match list.reload_inner().await {
                Ok(_) => {
                    last_full = tokio::time::Instant::now();
                    continue;
                }
                // Entries added since the last poll still arrive meanwhile.
                Err(e) => telemetry::revocation_sync_failed(&list.inner.name, "reload", &e),
            }
        }
        if let Err(e) = list.poll().await {
            telemetry::revocation_sync_failed(&list.inner.name, "poll", &e);
        }
    }
}

pub(super) async fn purge_loop(weak: Weak<Inner>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(list) = upgrade(&weak) else { return };
        if let Err(e) = list.purge_expired().await {
            telemetry::revocation_sync_failed(&list.inner.name, "purge", &e);
        }
    }
}

/// Keeps the staleness gauge moving while nothing synchronizes.
#[cfg(feature = "metrics")]
pub(super) async fn staleness_loop(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let Some(list) = upgrade(&weak) else { return };
        list.report_staleness();
    }
}
