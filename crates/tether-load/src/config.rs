//! What to run: the workload, the connection mode, the bounds, and what counts as success.

use std::time::Duration;

use crate::target::Target;
use crate::tls::TlsTrust;

/// The longest duration any setting may have (a year), so that every instant computed from
/// the start of a run exists.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// The most body bytes a pipelined batch may hold (256 MiB).
const MAX_BATCH: usize = 256 << 20;

/// The lowest constant rate, in requests per second.
pub const MIN_RATE: f64 = 0.001;

/// Why an https run with no [`TlsTrust`] chosen is refused.
pub(crate) const NO_TRUST: &str = "an https URL needs the server's certificate checked: \
     --cacert FILE (trust the CA certificates in FILE) or --insecure (accept any certificate)";

/// How connections are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnMode {
    /// Reuse each connection for as long as the server allows (reconnecting when it closes).
    Persistent,
    /// Open a new connection for every request (the request says `Connection: close`).
    PerRequest,
    /// Send this many requests on a connection, then close it and open another.
    PerConnection(u64),
}

/// When the run stops. A run always has a time limit; `requests` adds a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Measured requests in all (split evenly across connections); `None` for no count.
    pub requests: Option<u64>,
    /// Measured time after the warm-up; the run stops at this even if requests remain.
    pub duration: Duration,
}

/// The status codes that count as success, as a bit set over 0..1000.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 16]);

impl StatusSet {
    /// 200 to 399.
    pub fn default_success() -> StatusSet {
        let mut s = StatusSet([0; 16]);
        s.insert_range(200, 399);
        s
    }

    /// Parses `200-299,304,418`: codes and inclusive ranges, each within 100..=999.
    pub fn parse(spec: &str) -> Result<StatusSet, String> {
        let mut s = StatusSet([0; 16]);
        for part in spec.split(',').map(str::trim) {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (code(lo)?, code(hi)?),
                None => (code(part)?, code(part)?),
            };
            if lo > hi {
                return Err(format!("empty range {part:?}"));
            }
            s.insert_range(lo, hi);
        }
        Ok(s)
    }

    fn insert_range(&mut self, lo: u16, hi: u16) {
        for c in lo..=hi {
            self.0[usize::from(c / 64)] |= 1 << (c % 64);
        }
    }

    /// Whether `code` is in the set.
    #[inline]
    pub fn contains(&self, code: u16) -> bool {
        code < 1000 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

fn code(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(c) if (100..=999).contains(&c) => Ok(c),
        _ => Err(format!("{s:?} is not a status code (100 to 999)")),
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        let mut c = 100u16;
        while c < 1000 {
            if self.contains(c) {
                let lo = c;
                while c + 1 < 1000 && self.contains(c + 1) {
                    c += 1;
                }
                list.entry(&format_args!("{lo}-{c}"));
            }
            c += 1;
        }
        list.finish()
    }
}

/// A whole load test. Build one with [`Config::new`] and adjust the fields.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the requests go.
    pub target: Target,
    /// Concurrent connections (each is one task with at most `pipeline` requests in flight).
    pub connections: usize,
    /// When to stop.
    pub bounds: Bounds,
    /// Open loop: requests per second in total, each due at a fixed time.
    pub rate: Option<f64>,
    /// Closed loop: the pause between a response and the connection's next request.
    pub interval: Duration,
    /// Requests in flight per connection; more than one are written in one write.
    pub pipeline: usize,
    /// How connections are used.
    pub mode: ConnMode,
    /// Send `HTTP/1.0` request lines (with `Connection: keep-alive` unless per-request).
    pub http10: bool,
    /// The request method.
    pub method: String,
    /// Extra header lines, `Name: value`; a `Host` or `User-Agent` here replaces the default.
    pub headers: Vec<String>,
    /// The request body (sent with `Content-Length`).
    pub body: Vec<u8>,
    /// Time run before measuring; its requests and latencies are not reported.
    pub warmup: Duration,
    /// Longest wait for a connection to open or for a response once its request was sent.
    pub timeout: Duration,
    /// Status codes that count as success.
    pub success: StatusSet,
    /// Threads, each running one single-threaded runtime with its share of the connections.
    pub threads: usize,
    /// https: which server certificates are accepted (one must be chosen).
    pub tls_trust: TlsTrust,
    /// https: whether a new connection resumes an earlier session (from one session store
    /// shared by the whole run) or makes every handshake a full one.
    pub tls_resume: bool,
}

impl Config {
    /// A closed-loop, persistent-connection `GET` of `target`: 10 connections for 10 s, one
    /// thread per core.
    pub fn new(target: Target) -> Config {
        Config {
            target,
            connections: 10,
            bounds: Bounds {
                requests: None,
                duration: Duration::from_secs(10),
            },
            rate: None,
            interval: Duration::ZERO,
            pipeline: 1,
            mode: ConnMode::Persistent,
            http10: false,
            method: "GET".to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(10),
            success: StatusSet::default_success(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tls_trust: TlsTrust::Unset,
            tls_resume: true,
        }
    }

    /// Checks the combination of settings; the message names the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("connections must be at least 1".into());
        }
        if self.threads == 0 || self.threads > 1024 {
            return Err("threads must be 1..=1024".into());
        }
        if self.pipeline == 0 || self.pipeline > 1024 {
            return Err("pipeline must be 1..=1024".into());
        }
        if self.body.len().saturating_mul(self.pipeline) > MAX_BATCH {
            return Err(format!(
                "body x pipeline must be at most {} MiB (the requests of a batch are kept \
                 encoded in memory)",
                MAX_BATCH >> 20
            ));
        }
        if self.pipeline > 1 && self.mode == ConnMode::PerRequest {
            return Err("pipeline needs persistent connections (not with no-keepalive)".into());
        }
        if self.mode == ConnMode::PerConnection(0) {
            return Err("max-requests-per-conn must be at least 1".into());
        }
        for (name, d) in [
            ("duration", self.bounds.duration),
            ("interval", self.interval),
            ("warmup", self.warmup),
            ("timeout", self.timeout),
        ] {
            if d > MAX_DURATION {
                return Err(format!("{name} must be at most a year"));
            }
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r >= MIN_RATE) {
                return Err(format!(
                    "rate must be a number of requests per second, at least {MIN_RATE}"
                ));
            }
            if !self.interval.is_zero() {
                return Err(
                    "rate (open loop) and interval (closed loop) exclude each other".into(),
                );
            }
        }
        if self.bounds.requests == Some(0) {
            return Err("requests must be at least 1".into());
        }
        if self.bounds.duration.is_zero() {
            return Err("duration must be more than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("timeout must be more than 0".into());
        }
        if self.method.is_empty() || !self.method.bytes().all(is_token) {
            return Err(format!("method {:?} is not an HTTP token", self.method));
        }
        for h in &self.headers {
            crate::request::check_header(h)?;
        }
        if self.target.tls && matches!(self.tls_trust, TlsTrust::Unset) {
            return Err(NO_TRUST.into());
        }
        Ok(())
    }

    /// Whether the method's requests may be sent again after a server closed a reused
    /// connection just as they were sent (RFC 9110 §9.2.2).
    pub fn idempotent(&self) -> bool {
        matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
        )
    }
}

/// An RFC 9110 `tchar`.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets() {
        let d = StatusSet::default_success();
        assert!(d.contains(200) && d.contains(399) && !d.contains(404) && !d.contains(199));
        let s = StatusSet::parse("200-204, 404").expect("valid");
        assert!(s.contains(204) && s.contains(404) && !s.contains(205));
        assert_eq!(format!("{s:?}"), "[200-204, 404-404]");
        for bad in ["", "99", "1000", "300-200", "2xx", "200-"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad}");
        }
        assert!(!s.contains(1000) && !s.contains(u16::MAX));
    }

    #[test]
    fn validation() {
        let t = Target::parse("http://127.0.0.1:1/").expect("target");
        let ok = Config::new(t);
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.pipeline = 4;
        c.mode = ConnMode::PerRequest;
        assert!(c.validate().expect_err("pipeline").contains("pipeline"));
        let mut c = ok.clone();
        c.rate = Some(10.0);
        c.interval = Duration::from_millis(5);
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.method = "GE T".into();
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.headers = vec!["NoColon".into()];
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.interval = Duration::from_secs(400 * 24 * 3600);
        assert!(c.validate().expect_err("a long pause").contains("interval"));
        let mut c = ok;
        c.rate = Some(1e-9);
        assert!(c.validate().is_err());

        let mut c = Config::new(Target::parse("https://127.0.0.1:1/").expect("target"));
        let e = c.validate().expect_err("no trust chosen");
        assert!(e.contains("--cacert") && e.contains("--insecure"), "{e}");
        c.tls_trust = TlsTrust::Insecure;
        assert!(c.validate().is_ok());
    }
}
