//! `--compare`: the same workload over persistent connections and over a new connection per
//! request, side by side with the ratio.

use std::fmt;
use std::io;

use serde::Serialize;

use crate::config::{Config, ConnMode};
use crate::report::{success_rate, thousands, us, Report};
use crate::runner::{run, Progress};

/// The two runs of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Persistent connections.
    pub keep_alive: Report,
    /// A new connection per request.
    pub new_connection: Report,
}

/// Runs `config` with persistent connections, then with one connection per request (no
/// pipelining). `progress` gets the run's label with each glimpse.
pub fn compare(
    config: &Config,
    progress: &mut dyn FnMut(&str, &Progress),
) -> io::Result<Comparison> {
    let mut persistent = config.clone();
    persistent.mode = ConnMode::Persistent;
    let keep_alive = run(&persistent, &mut |p| progress("keep-alive", p))?;
    let mut fresh = config.clone();
    fresh.mode = ConnMode::PerRequest;
    fresh.pipeline = 1;
    let new_connection = run(&fresh, &mut |p| progress("new connection", p))?;
    Ok(Comparison {
        keep_alive,
        new_connection,
    })
}

/// `a / b` as `3.21x`, or `-` when it means nothing.
fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, n) = (&self.keep_alive, &self.new_connection);
        writeln!(
            f,
            "{}: {} connections, {}",
            k.url,
            k.connection_slots,
            k.load_name()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  {:<20} {:>16} {:>16} {:>8}",
            "", "keep-alive", "new connection", "ratio"
        )?;
        let mut row = |name: &str, a: String, b: String, r: String| {
            let line = format!("  {name:<20} {a:>16} {b:>16} {r:>8}");
            writeln!(f, "{}", line.trim_end())
        };
        row(
            "requests",
            thousands(k.requests.total),
            thousands(n.requests.total),
            String::new(),
        )?;
        row(
            "success rate",
            format!("{:.2}%", success_rate(&k.requests)),
            format!("{:.2}%", success_rate(&n.requests)),
            String::new(),
        )?;
        row(
            "avg latency",
            us(k.latency_us.mean),
            us(n.latency_us.mean),
            ratio(n.latency_us.mean, k.latency_us.mean),
        )?;
        row(
            "p99 latency",
            us(k.latency_us.p99),
            us(n.latency_us.p99),
            ratio(n.latency_us.p99, k.latency_us.p99),
        )?;
        row(
            "throughput (req/s)",
            thousands(k.requests_per_sec.round() as u64),
            thousands(n.requests_per_sec.round() as u64),
            ratio(k.requests_per_sec, n.requests_per_sec),
        )?;
        row(
            "connections opened",
            thousands(k.connections.opened),
            thousands(n.connections.opened),
            ratio(n.connections.opened as f64, k.connections.opened as f64),
        )?;
        row(
            "requests/connection",
            format!("{:.1}", k.connections.requests_per_connection.mean),
            format!("{:.1}", n.connections.requests_per_connection.mean),
            String::new(),
        )?;
        row(
            "avg connect time",
            us(k.connect_us.mean),
            us(n.connect_us.mean),
            String::new(),
        )?;
        row(
            "errors",
            thousands(k.requests.failed),
            thousands(n.requests.failed),
            String::new(),
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  ratio: new connection over keep-alive for latency and connections, keep-alive \
             over new connection for throughput"
        )?;
        for (label, r) in [("keep-alive", k), ("new connection", n)] {
            for w in &r.warnings {
                writeln!(f, "  warning ({label}): {w}")?;
            }
        }
        Ok(())
    }
}
