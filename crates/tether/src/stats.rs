//! Counters, one set per worker (a single writer each), summed when read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// One worker's counters. Only its own thread writes them, so an increment is a plain load
/// and store, not a locked read-modify-write.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub requests: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
}

/// A point-in-time sum of every worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed.
    pub closed: u64,
    /// Requests answered.
    pub requests: u64,
}

impl Snapshot {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }
}

/// Read side of the counters of a running server.
#[derive(Clone, Debug)]
pub struct Stats {
    pub(crate) workers: Arc<[Counters]>,
}

impl Stats {
    pub(crate) fn new(workers: usize) -> Self {
        Stats {
            workers: (0..workers).map(|_| Counters::default()).collect(),
        }
    }

    /// Sums the counters now.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for w in self.workers.iter() {
            s.accepted += w.accepted.load(Relaxed);
            s.closed += w.closed.load(Relaxed);
            s.requests += w.requests.load(Relaxed);
        }
        s
    }
}
