//! What one thread counts while it runs: histograms with bounded memory, the error taxonomy
//! and the connection accounting. Threads merge theirs at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest recorded value, in nanoseconds (an hour); larger ones are clamped to it.
const HIGHEST_NS: u64 = 3_600_000_000_000;

/// Why a request failed. Every failed request has exactly one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server refused the connection (nothing listening).
    ConnectRefused,
    /// The connection (over https with its TLS handshake) did not open within the timeout.
    ConnectTimeout,
    /// Opening the connection failed otherwise (for example no local port left).
    ConnectOther,
    /// https: the TLS handshake failed (the server's certificate refused, a TLS error, or
    /// the server closing during it).
    TlsHandshake,
    /// The server reset or closed the connection before any byte of the response (and it
    /// was not the race of an idle close, which is retried).
    ResetBeforeResponse,
    /// The connection ended inside a response.
    EofMidResponse,
    /// The response broke HTTP/1.1 framing.
    Protocol,
    /// No complete response within the timeout of its request being sent.
    ReadTimeout,
    /// A pipelined request still waiting when the connection closed after an earlier
    /// response (or error).
    PipelineLost,
    /// A 4xx status outside the success set.
    Status4xx,
    /// A 5xx status outside the success set.
    Status5xx,
    /// Any other status outside the success set (1xx never ends a response, so 2xx or 3xx).
    StatusOther,
}

/// Number of [`ErrorKind`]s.
pub const ERROR_KINDS: usize = 12;

impl ErrorKind {
    /// Every class, in report order.
    pub const ALL: [ErrorKind; ERROR_KINDS] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::ConnectOther,
        ErrorKind::TlsHandshake,
        ErrorKind::ResetBeforeResponse,
        ErrorKind::EofMidResponse,
        ErrorKind::Protocol,
        ErrorKind::ReadTimeout,
        ErrorKind::PipelineLost,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
        ErrorKind::StatusOther,
    ];

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectOther => "connect_other",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::ResetBeforeResponse => "reset_before_response",
            ErrorKind::EofMidResponse => "eof_mid_response",
            ErrorKind::Protocol => "protocol",
            ErrorKind::ReadTimeout => "read_timeout",
            ErrorKind::PipelineLost => "pipeline_lost",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::StatusOther => "status_other",
        }
    }

    /// The class of a status outside the success set.
    pub fn of_status(status: u16) -> ErrorKind {
        match status {
            400..=499 => ErrorKind::Status4xx,
            500..=599 => ErrorKind::Status5xx,
            _ => ErrorKind::StatusOther,
        }
    }
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The server said so in a response (`Connection: close`, HTTP/1.0 without keep-alive,
    /// or a body delimited by the close) and closed.
    ByServerAnnounced,
    /// The server closed (FIN) without saying so.
    ByServerSilently,
    /// The server reset the connection.
    ResetByServer,
    /// The client closed it (its limit, the server's `Keep-Alive: max`, an error, the end).
    ByClient,
}

/// Connection accounting.
#[derive(Clone, Debug, Default)]
pub struct ConnCounts {
    /// Connections opened.
    pub opened: u64,
    /// Closed by the server after announcing it.
    pub closed_announced: u64,
    /// Closed by the server without notice.
    pub closed_silently: u64,
    /// Reset by the server.
    pub reset_by_server: u64,
    /// Closed by the client.
    pub closed_by_client: u64,
    /// Of the server's closes, those noticed while the connection was idle.
    pub idle_closed: u64,
    /// Requests sent again on a new connection because the server closed a reused, idle
    /// connection just as they were sent.
    pub stale_retries: u64,
    /// Of the client's closes, those made because the server's `Keep-Alive: max` ran out.
    pub keepalive_max: u64,
    /// Responses per closed connection: least, most, sum.
    pub per_conn_min: u64,
    /// See `per_conn_min`.
    pub per_conn_max: u64,
    /// See `per_conn_min`.
    pub per_conn_sum: u64,
}

/// Everything one thread measured.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Latency of every measured response, nanoseconds.
    pub latency: Histogram<u64>,
    /// Time to open each connection, nanoseconds.
    pub connect: Histogram<u64>,
    /// Open loop: how late the client itself sent each measured request, nanoseconds.
    pub lag: Histogram<u64>,
    /// Measured requests with a response in the success set.
    pub ok: u64,
    /// Failed measured requests, by class.
    pub errors: [u64; ERROR_KINDS],
    /// Response bytes received during the measurement.
    pub bytes: u64,
    /// Measured responses by status code (index 0 holds codes outside 100..=999).
    pub statuses: Vec<u64>,
    /// Connection accounting over the whole run (warm-up included).
    pub conns: ConnCounts,
    /// https: the handshakes (`None` over plain http, which keeps no histograms for them).
    pub tls: Option<TlsStats>,
}

/// The TLS handshakes of a run (warm-up included), timed from the TCP connection being
/// open to the handshake being complete.
#[derive(Clone, Debug)]
pub struct TlsStats {
    /// Full handshakes (a new session), nanoseconds.
    pub full: Histogram<u64>,
    /// Handshakes that resumed a session, nanoseconds.
    pub resumed: Histogram<u64>,
    /// Handshakes that failed or timed out.
    pub failed: u64,
    /// Why the first failed handshake failed.
    pub first_error: Option<String>,
}

impl Default for TlsStats {
    fn default() -> Self {
        TlsStats {
            full: histogram(),
            resumed: histogram(),
            failed: 0,
            first_error: None,
        }
    }
}

impl TlsStats {
    /// Records a completed handshake that took `took`.
    pub fn handshake(&mut self, resumed: bool, took: Duration) {
        let h = if resumed {
            &mut self.resumed
        } else {
            &mut self.full
        };
        h.saturating_record(nanos(took));
    }

    /// Records a failed handshake; `why` is asked for only for the first.
    pub fn failure(&mut self, why: impl FnOnce() -> String) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }

    fn merge(&mut self, other: &TlsStats) {
        // The histograms have the same bounds, so adding cannot fail.
        let _ = self.full.add(&other.full);
        let _ = self.resumed.add(&other.resumed);
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("constant bounds are valid")
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            connect: histogram(),
            lag: histogram(),
            ok: 0,
            errors: [0; ERROR_KINDS],
            bytes: 0,
            statuses: vec![0; 1000],
            conns: ConnCounts {
                per_conn_min: u64::MAX,
                ..ConnCounts::default()
            },
            tls: None,
        }
    }
}

/// Nanoseconds of `d`, at least 1 (the histograms' lowest value).
#[inline]
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Stats {
    /// Empty figures for a run, with room for handshakes when it is over TLS.
    pub fn new(tls: bool) -> Stats {
        Stats {
            tls: tls.then(TlsStats::default),
            ..Stats::default()
        }
    }

    /// Records a failed request.
    #[inline]
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    /// Records a measured response: its status and latency.
    #[inline]
    pub fn response(&mut self, status: u16, ok: bool, latency: Duration) {
        self.latency.saturating_record(nanos(latency));
        self.statuses[if status < 1000 {
            usize::from(status)
        } else {
            0
        }] += 1;
        if ok {
            self.ok += 1;
        } else {
            self.error(ErrorKind::of_status(status));
        }
    }

    /// Records the end of a connection that carried `served` responses.
    pub fn closed(&mut self, how: Closed, served: u64) {
        let c = &mut self.conns;
        match how {
            Closed::ByServerAnnounced => c.closed_announced += 1,
            Closed::ByServerSilently => c.closed_silently += 1,
            Closed::ResetByServer => c.reset_by_server += 1,
            Closed::ByClient => c.closed_by_client += 1,
        }
        c.per_conn_min = c.per_conn_min.min(served);
        c.per_conn_max = c.per_conn_max.max(served);
        c.per_conn_sum += served;
    }

    /// Failed measured requests.
    pub fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Adds another thread's figures to these.
    pub fn merge(&mut self, other: &Stats) {
        // The histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.connect.add(&other.connect);
        let _ = self.lag.add(&other.lag);
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.bytes += other.bytes;
        for (a, b) in self.statuses.iter_mut().zip(&other.statuses) {
            *a += b;
        }
        let (c, o) = (&mut self.conns, &other.conns);
        c.opened += o.opened;
        c.closed_announced += o.closed_announced;
        c.closed_silently += o.closed_silently;
        c.reset_by_server += o.reset_by_server;
        c.closed_by_client += o.closed_by_client;
        c.idle_closed += o.idle_closed;
        c.stale_retries += o.stale_retries;
        c.keepalive_max += o.keepalive_max;
        c.per_conn_min = c.per_conn_min.min(o.per_conn_min);
        c.per_conn_max = c.per_conn_max.max(o.per_conn_max);
        c.per_conn_sum += o.per_conn_sum;
        match (&mut self.tls, &other.tls) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.tls = Some(b.clone()),
            (_, None) => {}
        }
    }
}

/// Counters a thread updates as it goes, read by the progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Measured requests finished (ok or failed).
    pub requests: AtomicU64,
    /// Of those, failed.
    pub errors: AtomicU64,
}

impl Live {
    /// Counts one finished measured request.
    #[inline]
    pub fn finished(&self, ok: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_up() {
        let mut a = Stats::default();
        a.response(200, true, Duration::from_micros(100));
        a.response(503, false, Duration::from_micros(300));
        a.closed(Closed::ByClient, 2);
        let mut b = Stats::default();
        b.error(ErrorKind::ConnectRefused);
        b.response(404, false, Duration::from_micros(200));
        b.closed(Closed::ResetByServer, 0);
        a.merge(&b);
        assert_eq!(a.ok, 1);
        assert_eq!(a.failed(), 3);
        assert_eq!(a.errors[ErrorKind::Status5xx as usize], 1);
        assert_eq!(a.errors[ErrorKind::Status4xx as usize], 1);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.statuses[404], 1);
        assert_eq!((a.conns.per_conn_min, a.conns.per_conn_max), (0, 2));
        assert_eq!(a.conns.closed_by_client + a.conns.reset_by_server, 2);
        assert!(a.tls.is_none(), "plain runs keep no handshake figures");

        let mut t = Stats::new(true);
        let mut u = Stats::new(true);
        let tls = t.tls.as_mut().expect("over TLS");
        tls.handshake(false, Duration::from_micros(900));
        tls.failure(|| "first".into());
        let tls = u.tls.as_mut().expect("over TLS");
        tls.handshake(true, Duration::from_micros(300));
        tls.failure(|| "second".into());
        let mut all = Stats::default();
        all.merge(&t);
        all.merge(&u);
        let tls = all.tls.expect("merged");
        assert_eq!((tls.full.len(), tls.resumed.len(), tls.failed), (1, 1, 2));
        assert_eq!(tls.first_error.as_deref(), Some("first"));
    }
}
