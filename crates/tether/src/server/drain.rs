//! The two-phase drain of a worker at shutdown, and the live count it waits on.
//!
//! Phase 1, the drain window: every response closes and idle connections go once idle for
//! `min_idle_age`. Phase 2, until the hard deadline: idle connections go at once and
//! requests in flight may finish. Whatever remains at the deadline is cut, and counted.

use std::cell::Cell;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::Config;
use crate::conn::host::Kick;
use crate::server::registry::Registry;

/// A worker's connections admitted and not yet closed, parked ones included, and the wait
/// for them all to close.
#[derive(Default)]
pub(crate) struct Live {
    count: Cell<usize>,
    all_closed: Notify,
}

impl Live {
    pub fn add(&self) {
        self.count.set(self.count.get() + 1);
    }

    pub fn remove(&self) {
        self.count.set(self.count.get() - 1);
        if self.count.get() == 0 {
            self.all_closed.notify_one();
        }
    }

    pub fn count(&self) -> usize {
        self.count.get()
    }

    /// Waits until no connection is left, or `until`.
    pub async fn all_closed(&self, until: Instant) {
        while self.count.get() > 0 {
            if tokio::time::timeout_at(until, self.all_closed.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// What one worker's shutdown found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections open when shutdown started.
    pub connections: u64,
    /// Requests answered after shutdown started.
    pub requests_completed: u64,
    /// Connections that closed on their own terms during the drain.
    pub connections_closed: u64,
    /// Connections still open at the hard deadline, and cut.
    pub connections_cut: u64,
    /// Of those, connections that were in the middle of a request.
    pub requests_cut: u64,
}

impl std::ops::AddAssign for DrainReport {
    fn add_assign(&mut self, o: Self) {
        self.connections += o.connections;
        self.requests_completed += o.requests_completed;
        self.connections_closed += o.connections_closed;
        self.connections_cut += o.connections_cut;
        self.requests_cut += o.requests_cut;
    }
}

/// The two phases of a shutdown (see [`crate::Running::shutdown`]).
/// `requests` reads the worker's count of answered requests.
pub(crate) async fn drain(
    cfg: &Config,
    registry: &Registry,
    live: &Live,
    requests: impl Fn() -> u64,
    start: Instant,
) -> DrainReport {
    let (requests_before, open_before) = (requests(), live.count() as u64);
    // Phase 1: every response closes; idle connections go once idle for the minimum age.
    registry.kick_all(Kick::Drain);
    live.all_closed(start + cfg.drain_window).await;
    // Phase 2: idle connections go now; requests in flight may finish until the deadline.
    registry.kick_all(Kick::Close);
    live.all_closed(start + cfg.shutdown_timeout.max(cfg.drain_window))
        .await;
    let active = registry.active_count() as u64;
    let cut = live.count() as u64;
    DrainReport {
        connections: open_before,
        requests_completed: requests() - requests_before,
        connections_closed: open_before.saturating_sub(cut),
        connections_cut: cut,
        requests_cut: active,
    }
}
