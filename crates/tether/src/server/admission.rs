//! Admission of new connections: the server-wide connection limit and the optional limit
//! per client address, shared by every worker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::lifecycle::ConnEvent;
use crate::proto::status::Status;
use crate::server::stats::Stats;

/// The connection-state hook.
pub(crate) type Hook = Arc<dyn Fn(&ConnEvent) + Send + Sync>;

/// What a worker shows the others so that eviction picks the least recently used idle
/// connection of the whole server.
pub(crate) struct EvictionSlot {
    /// When this worker's oldest idle connection became idle, in nanoseconds since
    /// `Shared::epoch`; `u64::MAX` when it has none.
    pub oldest_idle: AtomicU64,
    /// Evictions other workers asked of this one.
    pub requested: AtomicUsize,
    /// Wakes this worker's evictor.
    pub wake: Notify,
}

/// What every worker of a server shares.
pub(crate) struct Shared {
    /// Time origin of `EvictionSlot::oldest_idle`.
    pub epoch: Instant,
    /// One per worker.
    pub slots: Vec<EvictionSlot>,
    pub stats: Stats,
    pub hook: Option<Hook>,
    /// Set when shutdown starts (readiness probes read it).
    pub draining: AtomicBool,
    /// Admitted connections, over all workers.
    open: AtomicUsize,
    max_connections: usize,
    max_per_ip: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// TLS on every accepted connection, when configured (`Builder::tls`).
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A connection's place within the limits, given back when dropped.
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.ip {
            self.shared.release_ip(ip);
        }
    }
}

impl Shared {
    pub fn new(
        stats: Stats,
        hook: Option<Hook>,
        max_connections: usize,
        max_per_ip: usize,
    ) -> Self {
        let slots = (0..stats.workers.len())
            .map(|_| EvictionSlot {
                oldest_idle: AtomicU64::new(u64::MAX),
                requested: AtomicUsize::new(0),
                wake: Notify::new(),
            })
            .collect();
        Shared {
            epoch: Instant::now(),
            slots,
            stats,
            hook,
            draining: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            max_connections,
            max_per_ip,
            per_ip: Mutex::new(HashMap::new()),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Whether every accepted connection speaks TLS.
    pub fn speaks_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        return false;
    }

    /// Admits a connection from `ip`. At the server-wide limit, `evict` may close an idle
    /// connection to make room; otherwise the connection is refused with 503. Over the limit
    /// per address it is refused with 429.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        evict: impl FnOnce() -> bool,
    ) -> Result<Ticket, Status> {
        let ip = if self.max_per_ip > 0 {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                return Err(Status::TOO_MANY_REQUESTS);
            }
            *n += 1;
            Some(ip)
        } else {
            None
        };
        let ticket = Ticket {
            shared: self.clone(),
            ip,
        };
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        // The evicted connection closes a moment later: the count may exceed the limit by
        // the connections being evicted, never by connections being served.
        if open > self.max_connections && !evict() {
            return Err(Status::SERVICE_UNAVAILABLE); // the ticket's drop gives the place back
        }
        Ok(ticket)
    }

    /// The server-wide connection limit in force.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Nanoseconds from the epoch to `t`.
    pub fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The worker whose oldest idle connection is the oldest of all, if it has been idle
    /// for `min_age` at `now`.
    pub fn lru_worker(&self, now: Instant, min_age: Duration) -> Option<usize> {
        let newest_allowed = self
            .nanos(now)
            .checked_sub(u64::try_from(min_age.as_nanos()).ok()?)?;
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.oldest_idle.load(Ordering::Relaxed), i))
            .filter(|&(t, _)| t <= newest_allowed)
            .min()
            .map(|(_, i)| i)
    }

    fn release_ip(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    /// Connections admitted and not yet closed.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// The default connection limit: nine tenths of the soft `RLIMIT_NOFILE`, less a few
/// descriptors for listeners, the runtime and files, so that accepting never runs the
/// process out of descriptors.
pub(crate) fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (soft / 10 * 9).saturating_sub(32).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_eviction() {
        let shared = Arc::new(Shared::new(Stats::new(1), None, 2, 0));
        let ip: IpAddr = [127, 0, 0, 1].into();
        let a = shared.admit(ip, || unreachable!()).unwrap();
        let _b = shared.admit(ip, || unreachable!()).unwrap();
        assert_eq!(
            shared.admit(ip, || false).err(),
            Some(Status::SERVICE_UNAVAILABLE)
        );
        assert_eq!(shared.open(), 2);
        let _c = shared.admit(ip, || true).unwrap();
        drop(a);
        assert_eq!(shared.open(), 2);
    }

    #[test]
    fn per_address_limit() {
        let shared = Arc::new(Shared::new(Stats::new(1), None, 100, 1));
        let (x, y): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let a = shared.admit(x, || false).unwrap();
        assert_eq!(
            shared.admit(x, || false).err(),
            Some(Status::TOO_MANY_REQUESTS)
        );
        let _b = shared.admit(y, || false).unwrap();
        drop(a);
        assert!(shared.admit(x, || false).is_ok());
    }

    #[test]
    fn default_limit_leaves_headroom() {
        assert!(default_max_connections() >= 16);
    }
}
