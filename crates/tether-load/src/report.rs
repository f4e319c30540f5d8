//! The report of a run: the figures (serialised as the documented JSON) and their text form.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{Config, ConnMode};
use crate::stats::{ErrorKind, Stats, TlsStats};

/// Client lag (90th percentile) above which the report warns that the client fell behind.
const LAG_WARN: Duration = Duration::from_millis(5);

/// The result of one run. The top-level fields and the fields of their values are stable:
/// scripts may rely on them.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The URL loaded.
    pub url: String,
    /// The connection mode: `keep-alive`, `new connection per request`,
    /// `N requests per connection`, with `, HTTP/1.0` appended for HTTP/1.0.
    pub mode: String,
    /// `closed loop` or `constant rate`.
    pub load: String,
    /// Closed loop: the pause after each response, µs (0 for none).
    pub interval_us: f64,
    /// Connection slots (concurrent connections asked for).
    pub connection_slots: usize,
    /// Threads (one runtime each).
    pub threads: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Seconds measured (after the warm-up).
    pub duration_secs: f64,
    /// Finished measured requests (ok or failed) per second.
    pub requests_per_sec: f64,
    /// Response bytes received per second.
    pub bytes_per_sec: f64,
    /// Request counts.
    pub requests: Requests,
    /// Latency of measured responses, µs: closed loop from when the request was written
    /// (or its connection began to open), constant rate from when it was due.
    pub latency_us: Summary,
    /// Time to open a connection, µs (every connection of the run): the TCP connect; over
    /// https the handshake that follows is timed in `tls`.
    pub connect_us: Summary,
    /// Failed requests by class.
    pub errors: Errors,
    /// Connection accounting (the whole run, warm-up included).
    pub connections: Connections,
    /// Measured responses by status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// The latency distribution: (percentile, µs) pairs from p0 to p100.
    pub latency_distribution_us: Vec<(f64, f64)>,
    /// Constant rate: the requests per second asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Constant rate: how late the client itself sent requests, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_lag_us: Option<Summary>,
    /// https: the TLS handshakes (absent over plain http).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Handshakes>,
    /// Things the reader should know before trusting the figures.
    pub warnings: Vec<String>,
}

/// Request counts.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Requests {
    /// Finished measured requests.
    pub total: u64,
    /// With a status in the success set.
    pub ok: u64,
    /// Failed (see `errors`).
    pub failed: u64,
}

/// A distribution in µs.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Summary {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// The TLS handshakes of an https run: every connection's (warm-up included), each timed
/// from the TCP connection being open to the handshake being complete.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Handshakes {
    /// Whether new connections could resume an earlier session (`--tls-resume`).
    pub resumption: bool,
    /// Handshakes that made a new session.
    pub handshakes_full: u64,
    /// Handshakes that resumed a session.
    pub handshakes_resumed: u64,
    /// Handshakes that failed or timed out.
    pub handshakes_failed: u64,
    /// Time of the full handshakes, µs.
    pub handshake_full_us: Summary,
    /// Time of the resumed handshakes, µs.
    pub handshake_resumed_us: Summary,
}

impl Handshakes {
    fn of(config: &Config, t: &TlsStats) -> Handshakes {
        Handshakes {
            resumption: config.tls_resume,
            handshakes_full: t.full.len(),
            handshakes_resumed: t.resumed.len(),
            handshakes_failed: t.failed,
            handshake_full_us: Summary::of(&t.full),
            handshake_resumed_us: Summary::of(&t.resumed),
        }
    }
}

/// Failed requests, one count per class (see [`ErrorKind`]).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Errors {
    /// Connection refused.
    pub connect_refused: u64,
    /// Connection (over https: with its TLS handshake) not opened within the timeout.
    pub connect_timeout: u64,
    /// Connection failed to open otherwise.
    pub connect_other: u64,
    /// https only (absent over http): the TLS handshake failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_handshake: Option<u64>,
    /// Reset or closed by the server before any byte of the response.
    pub reset_before_response: u64,
    /// Connection ended inside a response.
    pub eof_mid_response: u64,
    /// Response broke HTTP/1.1 framing.
    pub protocol: u64,
    /// No response (or no progress writing the request) within the timeout.
    pub read_timeout: u64,
    /// Pipelined requests lost when the connection closed after an earlier response.
    pub pipeline_lost: u64,
    /// 4xx outside the success set.
    pub status_4xx: u64,
    /// 5xx outside the success set.
    pub status_5xx: u64,
    /// Other statuses outside the success set.
    pub status_other: u64,
}

impl Errors {
    fn of(counts: &[u64; crate::stats::ERROR_KINDS], tls: bool) -> Errors {
        let c = |k: ErrorKind| counts[k as usize];
        Errors {
            connect_refused: c(ErrorKind::ConnectRefused),
            connect_timeout: c(ErrorKind::ConnectTimeout),
            connect_other: c(ErrorKind::ConnectOther),
            tls_handshake: tls.then(|| c(ErrorKind::TlsHandshake)),
            reset_before_response: c(ErrorKind::ResetBeforeResponse),
            eof_mid_response: c(ErrorKind::EofMidResponse),
            protocol: c(ErrorKind::Protocol),
            read_timeout: c(ErrorKind::ReadTimeout),
            pipeline_lost: c(ErrorKind::PipelineLost),
            status_4xx: c(ErrorKind::Status4xx),
            status_5xx: c(ErrorKind::Status5xx),
            status_other: c(ErrorKind::StatusOther),
        }
    }

    /// (class name, count) for every class.
    pub fn list(&self) -> [(&'static str, u64); crate::stats::ERROR_KINDS] {
        [
            ("connect refused", self.connect_refused),
            ("connect timeout", self.connect_timeout),
            ("connect failed", self.connect_other),
            ("TLS handshake failed", self.tls_handshake.unwrap_or(0)),
            ("reset before response", self.reset_before_response),
            ("EOF mid-response", self.eof_mid_response),
            ("protocol error", self.protocol),
            ("timeout", self.read_timeout),
            ("pipelined lost to a close", self.pipeline_lost),
            ("4xx", self.status_4xx),
            ("5xx", self.status_5xx),
            ("other status", self.status_other),
        ]
    }
}

/// Connection accounting. `opened = closed_by_server + reset_by_server + closed_by_client`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Connections {
    /// Connections opened.
    pub opened: u64,
    /// Closed by the server with a FIN (announced or not).
    pub closed_by_server: u64,
    /// Of those, announced by the response (`Connection: close`, HTTP/1.0 without
    /// keep-alive, or a body delimited by the close).
    pub closed_by_server_announced: u64,
    /// Of those, without notice.
    pub closed_by_server_silently: u64,
    /// Reset by the server.
    pub reset_by_server: u64,
    /// Closed by the client (its per-connection limit, the server's `Keep-Alive: max`, an
    /// error or timeout, or the end of the run).
    pub closed_by_client: u64,
    /// Of the client's closes, those because the server's `Keep-Alive: max` ran out.
    pub keepalive_max_reached: u64,
    /// Server closes (and resets) noticed while the connection was idle.
    pub idle_closed: u64,
    /// Requests sent again on a new connection because the server closed a reused, idle
    /// connection just as they were written (not errors).
    pub stale_retries: u64,
    /// Responses per connection.
    pub requests_per_connection: PerConnection,
}

/// Responses per connection.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PerConnection {
    /// Least.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Most.
    pub max: u64,
}

impl Report {
    /// Builds the report of `stats` gathered over `elapsed` of measurement.
    pub fn new(config: &Config, stats: &Stats, elapsed: Duration) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let failed = stats.failed();
        let total = stats.ok + failed;
        let c = &stats.conns;
        let closed =
            c.closed_announced + c.closed_silently + c.reset_by_server + c.closed_by_client;
        let distribution = [0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0]
            .iter()
            .map(|&p| {
                let v = if stats.latency.is_empty() {
                    0.0
                } else {
                    stats.latency.value_at_percentile(p) as f64 / 1000.0
                };
                (p, v)
            })
            .collect();
        let statuses = stats
            .statuses
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(code, &n)| (code as u16, n))
            .collect();
        let client_lag_us = config.rate.map(|_| Summary::of(&stats.lag));
        let requests_per_sec = total as f64 / secs;
        let mut report = Report {
            url: config.target.to_string(),
            mode: mode_name(config),
            load: if config.rate.is_some() {
                "constant rate".into()
            } else {
                "closed loop".into()
            },
            interval_us: config.interval.as_secs_f64() * 1e6,
            connection_slots: config.connections,
            threads: config.threads,
            pipeline: config.pipeline,
            duration_secs: secs,
            requests_per_sec,
            bytes_per_sec: stats.bytes as f64 / secs,
            requests: Requests {
                total,
                ok: stats.ok,
                failed,
            },
            latency_us: Summary::of(&stats.latency),
            connect_us: Summary::of(&stats.connect),
            errors: Errors::of(&stats.errors, stats.tls.is_some()),
            connections: Connections {
                opened: c.opened,
                closed_by_server: c.closed_announced + c.closed_silently,
                closed_by_server_announced: c.closed_announced,
                closed_by_server_silently: c.closed_silently,
                reset_by_server: c.reset_by_server,
                closed_by_client: c.closed_by_client,
                keepalive_max_reached: c.keepalive_max,
                idle_closed: c.idle_closed,
                stale_retries: c.stale_retries,
                requests_per_connection: PerConnection {
                    min: if closed == 0 { 0 } else { c.per_conn_min },
                    mean: if closed == 0 {
                        0.0
                    } else {
                        c.per_conn_sum as f64 / closed as f64
                    },
                    max: c.per_conn_max,
                },
            },
            status_codes: statuses,
            latency_distribution_us: distribution,
            target_rate: config.rate,
            client_lag_us,
            tls: stats.tls.as_ref().map(|t| Handshakes::of(config, t)),
            warnings: Vec::new(),
        };
        report.warnings = warnings(&report);
        if let Some(t) = &stats.tls {
            if let Some(why) = &t.first_error {
                report.warnings.push(format!(
                    "{} TLS handshake{} failed; the first: {why}",
                    thousands(t.failed),
                    if t.failed == 1 { "" } else { "s" }
                ));
            }
        }
        report
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl Report {
    /// `closed loop`, `closed loop, 5.0 ms pause` or `constant rate 1000 req/s`.
    pub fn load_name(&self) -> String {
        match self.target_rate {
            Some(r) => format!("constant rate {r:.0} req/s"),
            None if self.interval_us > 0.0 => {
                format!("closed loop, {} pause", us(self.interval_us))
            }
            None => "closed loop".into(),
        }
    }
}

fn mode_name(config: &Config) -> String {
    let mut m = match config.mode {
        ConnMode::Persistent => "keep-alive".to_owned(),
        ConnMode::PerRequest => "new connection per request".to_owned(),
        ConnMode::PerConnection(n) => format!("{n} requests per connection"),
    };
    if config.http10 {
        m.push_str(", HTTP/1.0");
    }
    m
}

fn warnings(r: &Report) -> Vec<String> {
    let mut w = Vec::new();
    if let (Some(target), Some(lag)) = (r.target_rate, r.client_lag_us) {
        if lag.p90 > LAG_WARN.as_secs_f64() * 1e6 {
            w.push(format!(
                "the client fell behind its own schedule (lag p90 {}): the figures partly \
                 measure this client; use more --threads or fewer connections",
                us(lag.p90)
            ));
        }
        if r.requests_per_sec < 0.95 * target {
            w.push(format!(
                "achieved {:.0} req/s of the {:.0} asked: the server (or {} connections x {} \
                 in flight) could not keep up; latency still counts from each request's due time",
                r.requests_per_sec, target, r.connection_slots, r.pipeline
            ));
        }
    }
    if r.requests.total == 0 {
        w.push("no request finished within the measurement".into());
    }
    w
}

/// `1.23 ms`, `456.7 µs`, `2.50 s`.
pub fn us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2} s", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.1} µs")
    }
}

/// `12,345` with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn bytes(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} GB", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} MB", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kB", v / 1e3)
    } else {
        format!("{v:.0} B")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} connections ({}), {}, {} thread{}{}",
            self.url,
            self.connection_slots,
            self.mode,
            self.load_name(),
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            if self.pipeline > 1 {
                format!(", pipeline {}", self.pipeline)
            } else {
                String::new()
            }
        )?;
        let r = &self.requests;
        let rate = match self.target_rate {
            Some(t) => format!(" (target {t:.0})"),
            None => String::new(),
        };
        writeln!(
            f,
            "  {} requests in {:.2} s: {} ok, {} failed ({:.2}% success)",
            thousands(r.total),
            self.duration_secs,
            thousands(r.ok),
            thousands(r.failed),
            success_rate(r)
        )?;
        writeln!(
            f,
            "  {} req/s{}, {}/s received",
            thousands(self.requests_per_sec.round() as u64),
            rate,
            bytes(self.bytes_per_sec)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "", "min", "mean", "p50", "p90", "p99", "p99.9", "max"
        )?;
        let mut row = |name: &str, s: &Summary| {
            writeln!(
                f,
                "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                name,
                us(s.min),
                us(s.mean),
                us(s.p50),
                us(s.p90),
                us(s.p99),
                us(s.p999),
                us(s.max)
            )
        };
        row("latency", &self.latency_us)?;
        row("connect", &self.connect_us)?;
        if let Some(t) = &self.tls {
            if t.handshakes_full > 0 {
                row("full hs", &t.handshake_full_us)?;
            }
            if t.handshakes_resumed > 0 {
                row("resumed hs", &t.handshake_resumed_us)?;
            }
        }
        if let Some(lag) = &self.client_lag_us {
            row("client lag", lag)?;
        }
        writeln!(f)?;
        let errors: Vec<String> = self
            .errors
            .list()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {}", thousands(*n)))
            .collect();
        if errors.is_empty() {
            writeln!(f, "  errors: none")?;
        } else {
            writeln!(f, "  errors: {}", errors.join(", "))?;
        }
        let c = &self.connections;
        writeln!(
            f,
            "  connections: {} opened; closed by server {} ({} announced, {} silently), reset by server {}, closed by client {}",
            thousands(c.opened),
            thousands(c.closed_by_server),
            thousands(c.closed_by_server_announced),
            thousands(c.closed_by_server_silently),
            thousands(c.reset_by_server),
            thousands(c.closed_by_client)
        )?;
        writeln!(
            f,
            "  requests per connection: min {}, mean {:.1}, max {}; Keep-Alive max reached {}, idle closes {}, retried after an idle close {}",
            c.requests_per_connection.min,
            c.requests_per_connection.mean,
            c.requests_per_connection.max,
            c.keepalive_max_reached,
            c.idle_closed,
            c.stale_retries
        )?;
        if let Some(t) = &self.tls {
            writeln!(
                f,
                "  tls: {} full handshakes (hs), {} resumed, {} failed; resumption {}; hs times from TCP connected to handshake done",
                thousands(t.handshakes_full),
                thousands(t.handshakes_resumed),
                thousands(t.handshakes_failed),
                if t.resumption { "on" } else { "off" }
            )?;
        }
        let codes: Vec<String> = self
            .status_codes
            .iter()
            .map(|(code, n)| format!("{code} x{}", thousands(*n)))
            .collect();
        if !codes.is_empty() {
            writeln!(f, "  status codes: {}", codes.join(", "))?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// Percentage of finished requests that succeeded (100 when none finished and none failed).
pub fn success_rate(r: &Requests) -> f64 {
    if r.total == 0 {
        0.0
    } else {
        r.ok as f64 * 100.0 / r.total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(us(12.34), "12.3 µs");
        assert_eq!(us(1500.0), "1.50 ms");
        assert_eq!(us(2_500_000.0), "2.50 s");
        assert_eq!(bytes(1500.0), "1.5 kB");
    }
}
