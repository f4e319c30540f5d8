//! When a connection's next request is due: after the last response (closed loop, with an
//! optional pause) or at fixed times that add up to a constant total rate (open loop).

use std::time::{Duration, Instant};

use crate::config::MAX_DURATION;

/// One connection's schedule.
#[derive(Clone, Copy, Debug)]
pub enum Schedule {
    /// The next request is due `interval` after the latest response.
    Closed {
        /// When the next request is due.
        next: Instant,
        /// Pause after each response.
        interval: Duration,
    },
    /// Request `k` is due at `base + offset + k * period`: with `n` connections at a total
    /// rate `r`, the period is `n / r` and connection `i`'s offset `i / r`, so the due times
    /// of all connections together are evenly spaced.
    Open {
        /// The start of the run.
        base: Instant,
        /// This connection's first due time after `base`, in nanoseconds.
        offset_ns: f64,
        /// Nanoseconds between this connection's due times.
        period_ns: f64,
        /// Index of the next request.
        k: u64,
    },
}

impl Schedule {
    /// A closed-loop schedule starting at `start`.
    pub fn closed(start: Instant, interval: Duration) -> Schedule {
        Schedule::Closed {
            next: start,
            interval,
        }
    }

    /// Connection `index`'s share of `rate` requests per second over `connections`.
    pub fn open(start: Instant, rate: f64, connections: usize, index: usize) -> Schedule {
        let per_request_ns = 1e9 / rate;
        Schedule::Open {
            base: start,
            offset_ns: index as f64 * per_request_ns,
            period_ns: connections as f64 * per_request_ns,
            k: 0,
        }
    }

    /// Whether this is the open loop (latency counted from due times, client lag reported).
    pub fn is_open(&self) -> bool {
        matches!(self, Schedule::Open { .. })
    }

    /// When the next request is due.
    #[inline]
    pub fn due(&self) -> Instant {
        match *self {
            Schedule::Closed { next, .. } => next,
            Schedule::Open {
                base,
                offset_ns,
                period_ns,
                k,
            } => {
                let after = Duration::from_nanos((offset_ns + k as f64 * period_ns) as u64);
                // Past any instant that can be represented, the request is never due.
                base.checked_add(after).unwrap_or(base + MAX_DURATION)
            }
        }
    }

    /// The next request was sent (or given up on): move to the one after.
    #[inline]
    pub fn advance(&mut self) {
        if let Schedule::Open { k, .. } = self {
            *k += 1;
        }
    }

    /// A response arrived at `now`.
    #[inline]
    pub fn response(&mut self, now: Instant) {
        if let Schedule::Closed { next, interval } = self {
            *next = now + *interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_spacing() {
        let t0 = Instant::now();
        // 1000 req/s over 4 connections: every connection every 4 ms, offset 1 ms apart.
        let mut s = Schedule::open(t0, 1000.0, 4, 2);
        assert_eq!(s.due() - t0, Duration::from_millis(2));
        s.advance();
        assert_eq!(s.due() - t0, Duration::from_millis(6));
        assert!(s.is_open());
    }

    #[test]
    fn closed_loop_follows_responses() {
        let t0 = Instant::now();
        let mut s = Schedule::closed(t0, Duration::from_millis(5));
        assert_eq!(s.due(), t0);
        s.advance();
        assert_eq!(s.due(), t0, "sending does not move a closed schedule");
        s.response(t0 + Duration::from_millis(1));
        assert_eq!(s.due() - t0, Duration::from_millis(6));
    }
}
