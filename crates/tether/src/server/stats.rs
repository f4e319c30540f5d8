//! Counters, one set per worker (a single writer each), summed when read.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::lifecycle::{CloseReason, ConnState, Handshake, HandshakeFailure};

/// Upper bounds of the requests-per-connection histogram buckets (the last is unbounded).
pub const REQUESTS_PER_CONN_BUCKETS: [u64; 16] = [
    0,
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
    256,
    512,
    1024,
    4096,
    16384,
    65536,
    u64::MAX,
];

/// Upper bounds of the TLS handshake time histogram buckets, in microseconds (the last is
/// unbounded): a resumed handshake on loopback takes some tens, a full one some hundreds.
pub const HANDSHAKE_MICROS_BUCKETS: [u64; 14] = [
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
    u64::MAX,
];

/// Gauged states: every state but `Closed`.
const GAUGED: [ConnState; 4] = [
    ConnState::New,
    ConnState::Active,
    ConnState::Idle,
    ConnState::Closing,
];

fn gauge_index(s: ConnState) -> Option<usize> {
    GAUGED.iter().position(|&g| g == s)
}

/// One worker's counters. Only its own thread writes them, so an update is a plain load and
/// store, not a locked read-modify-write.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub requests: AtomicU64,
    /// Idle connections waiting as bare sockets (a gauge).
    pub parked: AtomicU64,
    states: [AtomicU64; 4],
    closed: [AtomicU64; CloseReason::ALL.len()],
    per_conn: [AtomicU64; REQUESTS_PER_CONN_BUCKETS.len()],
    per_conn_sum: AtomicU64,
    /// Bytes read and written by the worker's sockets (published from its thread's count).
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    /// TLS handshakes completed: full, resumed.
    handshakes: [AtomicU64; 2],
    handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    handshake_time: [AtomicU64; HANDSHAKE_MICROS_BUCKETS.len()],
    handshake_micros_sum: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
}

pub(crate) fn drop_one(c: &AtomicU64) {
    c.store(c.load(Relaxed).saturating_sub(1), Relaxed);
}

impl Counters {
    /// Moves one connection from state `from` to `to` in the gauges.
    pub fn transition(&self, from: ConnState, to: ConnState) {
        if let Some(i) = gauge_index(from) {
            drop_one(&self.states[i]);
        }
        if let Some(i) = gauge_index(to) {
            bump(&self.states[i]);
        }
    }

    /// Idle connections held in tasks (not parked).
    pub fn idle_tasks(&self) -> u64 {
        let idle = self.states[2].load(Relaxed);
        idle.saturating_sub(self.parked.load(Relaxed))
    }

    /// Publishes the bytes read and written by the worker's sockets so far.
    #[inline]
    pub fn traffic(&self, (read, written): (u64, u64)) {
        self.bytes_read.store(read, Relaxed);
        self.bytes_written.store(written, Relaxed);
    }

    /// Records a TLS handshake: how it ended, and the time a completed one took.
    pub fn handshake(&self, outcome: Handshake, took: std::time::Duration) {
        let done = match outcome {
            Handshake::Full => 0,
            Handshake::Resumed => 1,
            Handshake::Failed(f) => return bump(&self.handshake_failures[f as usize]),
        };
        bump(&self.handshakes[done]);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = HANDSHAKE_MICROS_BUCKETS
            .iter()
            .position(|&le| micros <= le)
            .unwrap_or(0);
        bump(&self.handshake_time[bucket]);
        self.handshake_micros_sum.store(
            self.handshake_micros_sum
                .load(Relaxed)
                .saturating_add(micros),
            Relaxed,
        );
    }

    /// Records a closed connection: its reason and how many requests it served.
    pub fn closed(&self, reason: CloseReason, requests: u64) {
        bump(&self.closed[reason as usize]);
        let bucket = REQUESTS_PER_CONN_BUCKETS
            .iter()
            .position(|&le| requests <= le)
            .unwrap_or(0);
        bump(&self.per_conn[bucket]);
        self.per_conn_sum
            .store(self.per_conn_sum.load(Relaxed) + requests, Relaxed);
    }
}

/// A point-in-time sum of every worker's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections accepted (admitted).
    pub accepted: u64,
    /// Connections refused at the connection limits.
    pub refused: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Requests answered.
    pub requests: u64,
    /// Connections now in `New`, `Active`, `Idle` and `Closing`, in that order.
    pub states: [u64; 4],
    /// Of the idle connections, those parked: waiting as bare sockets, without a task
    /// (see [`crate::Config::park_after`]).
    pub parked: u64,
    /// Connections closed per reason, indexed like [`CloseReason::ALL`].
    pub closed_by: [u64; CloseReason::ALL.len()],
    /// Closed connections per requests served, counted in the buckets of
    /// [`REQUESTS_PER_CONN_BUCKETS`] (not cumulative).
    pub requests_per_conn: [u64; REQUESTS_PER_CONN_BUCKETS.len()],
    /// Requests served by the closed connections, in all.
    pub requests_per_conn_sum: u64,
    /// Bytes received from clients (heads and bodies), as read from the sockets.
    pub bytes_read: u64,
    /// Bytes sent to clients (heads and bodies, file bodies included).
    pub bytes_written: u64,
    /// TLS handshakes completed with a new session.
    pub tls_full: u64,
    /// TLS handshakes that resumed a session.
    pub tls_resumed: u64,
    /// TLS handshakes failed, by class, in the order of [`HandshakeFailure::ALL`].
    pub tls_failed_by: [u64; HandshakeFailure::ALL.len()],
    /// Completed TLS handshakes by time taken, in the buckets of
    /// [`HANDSHAKE_MICROS_BUCKETS`] (not cumulative).
    pub tls_handshake_time: [u64; HANDSHAKE_MICROS_BUCKETS.len()],
    /// The sum of the completed handshakes' times, in microseconds.
    pub tls_handshake_micros_sum: u64,
}

impl Snapshot {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.states.iter().sum()
    }

    /// Connections now in `state` (0 for `Closed`).
    pub fn in_state(&self, state: ConnState) -> u64 {
        gauge_index(state).map_or(0, |i| self.states[i])
    }

    /// Connections closed for `reason`.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        self.closed_by[reason as usize]
    }

    /// TLS handshakes failed, of every class.
    pub fn tls_failed(&self) -> u64 {
        self.tls_failed_by.iter().sum()
    }

    /// TLS handshakes failed of one class.
    pub fn tls_failed_for(&self, class: HandshakeFailure) -> u64 {
        self.tls_failed_by[class as usize]
    }

    /// The counters in the Prometheus text exposition format.
    ///
    /// ```
    /// let text = tether::Snapshot::default().to_prometheus();
    /// assert!(text.contains("tether_connections_accepted_total 0"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Each metric's HELP and TYPE lines, then its samples, as one group.
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "tether_connections_accepted_total",
            "counter",
            "Connections accepted.",
        );
        let _ = writeln!(out, "tether_connections_accepted_total {}", self.accepted);
        head(
            &mut out,
            "tether_connections_refused_total",
            "counter",
            "Connections refused at a connection limit.",
        );
        let _ = writeln!(out, "tether_connections_refused_total {}", self.refused);
        head(
            &mut out,
            "tether_requests_total",
            "counter",
            "Requests answered.",
        );
        let _ = writeln!(out, "tether_requests_total {}", self.requests);
        head(
            &mut out,
            "tether_connections",
            "gauge",
            "Open connections by state.",
        );
        for (s, n) in GAUGED.iter().zip(self.states) {
            let _ = writeln!(out, "tether_connections{{state=\"{}\"}} {n}", s.name());
        }
        head(
            &mut out,
            "tether_connections_parked",
            "gauge",
            "Idle connections waiting as bare sockets, without a task.",
        );
        let _ = writeln!(out, "tether_connections_parked {}", self.parked);
        head(
            &mut out,
            "tether_connections_closed_total",
            "counter",
            "Connections closed, by reason.",
        );
        for (r, n) in CloseReason::ALL.iter().zip(self.closed_by) {
            let _ = writeln!(
                out,
                "tether_connections_closed_total{{reason=\"{}\"}} {n}",
                r.name()
            );
        }
        head(
            &mut out,
            "tether_requests_per_connection",
            "histogram",
            "Requests served by each closed connection.",
        );
        let mut cumulative = 0;
        for (le, n) in REQUESTS_PER_CONN_BUCKETS.iter().zip(self.requests_per_conn) {
            cumulative += n;
            if *le == u64::MAX {
                let _ = writeln!(
                    out,
                    "tether_requests_per_connection_bucket{{le=\"+Inf\"}} {cumulative}"
                );
            } else {
                let _ = writeln!(
                    out,
                    "tether_requests_per_connection_bucket{{le=\"{le}\"}} {cumulative}"
                );
            }
        }
        let _ = writeln!(
            out,
            "tether_requests_per_connection_sum {}",
            self.requests_per_conn_sum
        );
        let _ = writeln!(out, "tether_requests_per_connection_count {cumulative}");
        head(
            &mut out,
            "tether_bytes_read_total",
            "counter",
            "Bytes received from clients.",
        );
        let _ = writeln!(out, "tether_bytes_read_total {}", self.bytes_read);
        head(
            &mut out,
            "tether_bytes_written_total",
            "counter",
            "Bytes sent to clients.",
        );
        let _ = writeln!(out, "tether_bytes_written_total {}", self.bytes_written);
        head(
            &mut out,
            "tether_tls_handshakes_total",
            "counter",
            "TLS handshakes by result: full (a new session), resumed, failed.",
        );
        for (result, n) in [
            ("full", self.tls_full),
            ("resumed", self.tls_resumed),
            ("failed", self.tls_failed()),
        ] {
            let _ = writeln!(
                out,
                "tether_tls_handshakes_total{{result=\"{result}\"}} {n}"
            );
        }
        head(
            &mut out,
            "tether_tls_handshake_failures_total",
            "counter",
            "Failed TLS handshakes, by class.",
        );
        for (c, n) in HandshakeFailure::ALL.iter().zip(self.tls_failed_by) {
            let _ = writeln!(
                out,
                "tether_tls_handshake_failures_total{{class=\"{}\"}} {n}",
                c.name()
            );
        }
        head(
            &mut out,
            "tether_tls_handshake_seconds",
            "histogram",
            "Time from the accept to a completed TLS handshake.",
        );
        let mut cumulative = 0;
        for (le, n) in HANDSHAKE_MICROS_BUCKETS.iter().zip(self.tls_handshake_time) {
            cumulative += n;
            if *le == u64::MAX {
                let _ = writeln!(
                    out,
                    "tether_tls_handshake_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
                );
            } else {
                let _ = writeln!(
                    out,
                    "tether_tls_handshake_seconds_bucket{{le=\"{}\"}} {cumulative}",
                    *le as f64 / 1e6
                );
            }
        }
        let _ = writeln!(
            out,
            "tether_tls_handshake_seconds_sum {}",
            self.tls_handshake_micros_sum as f64 / 1e6
        );
        let _ = writeln!(out, "tether_tls_handshake_seconds_count {cumulative}");
        out
    }
}

/// Read side of the counters of a server: cheap to clone and to send to other threads.
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
            s.refused += w.refused.load(Relaxed);
            s.requests += w.requests.load(Relaxed);
            s.parked += w.parked.load(Relaxed);
            for (a, b) in s.states.iter_mut().zip(&w.states) {
                *a += b.load(Relaxed);
            }
            for (a, b) in s.closed_by.iter_mut().zip(&w.closed) {
                *a += b.load(Relaxed);
            }
            for (a, b) in s.requests_per_conn.iter_mut().zip(&w.per_conn) {
                *a += b.load(Relaxed);
            }
            s.requests_per_conn_sum += w.per_conn_sum.load(Relaxed);
            s.bytes_read += w.bytes_read.load(Relaxed);
            s.bytes_written += w.bytes_written.load(Relaxed);
            s.tls_full += w.handshakes[0].load(Relaxed);
            s.tls_resumed += w.handshakes[1].load(Relaxed);
            for (a, b) in s.tls_failed_by.iter_mut().zip(&w.handshake_failures) {
                *a += b.load(Relaxed);
            }
            for (a, b) in s.tls_handshake_time.iter_mut().zip(&w.handshake_time) {
                *a += b.load(Relaxed);
            }
            s.tls_handshake_micros_sum += w.handshake_micros_sum.load(Relaxed);
        }
        s.closed = s.closed_by.iter().sum();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric's samples follow its own HELP and TYPE lines, as the text format wants.
    #[test]
    fn prometheus_groups_each_metric() {
        let text = Snapshot::default().to_prometheus();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap_or("").to_owned();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or("");
                let base = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(
                    name == current || base == current,
                    "{name} outside the group of {current}"
                );
            }
        }
        assert!(text.contains("tether_connections{state=\"idle\"} 0"));
    }
}
