//! `--compare`: the same workload over persistent connections and over a new connection per
//! request, side by side with the ratio. Over https a third run opens new connections
//! without session resumption, so that what keep-alive saves is shown against both kinds
//! of handshake.

use std::fmt;
use std::io;

use serde::Serialize;

use crate::config::{Config, ConnMode};
use crate::report::{success_rate, thousands, us, Report};
use crate::runner::{run, Progress};

/// The runs of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Persistent connections.
    pub keep_alive: Report,
    /// A new connection per request (over https resuming TLS sessions).
    pub new_connection: Report,
    /// https only: a new connection per request, every handshake a full one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_connection_no_resumption: Option<Report>,
    /// https only: what keep-alive saves over each new-connection run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_saving: Option<Savings>,
}

/// What keep-alive saves over the two new-connection runs of an https comparison.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Savings {
    /// Over new connections that resume TLS sessions.
    pub new_connection: Saving,
    /// Over new connections whose handshakes are all full ones.
    pub new_connection_no_resumption: Saving,
}

/// Keep-alive against one new-connection run, as ratios (`None`, in JSON `null`, when a
/// figure is missing, such as no request finished).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Saving {
    /// Keep-alive's requests per second over the new-connection run's.
    pub requests_per_sec: Option<f64>,
    /// The new-connection run's mean latency over keep-alive's.
    pub latency_mean: Option<f64>,
    /// The new-connection run's p99 latency over keep-alive's.
    pub latency_p99: Option<f64>,
}

impl Saving {
    fn of(keep_alive: &Report, new: &Report) -> Saving {
        Saving {
            requests_per_sec: quotient(keep_alive.requests_per_sec, new.requests_per_sec),
            latency_mean: quotient(new.latency_us.mean, keep_alive.latency_us.mean),
            latency_p99: quotient(new.latency_us.p99, keep_alive.latency_us.p99),
        }
    }
}

/// Runs `config` with persistent connections, then with one connection per request (no
/// pipelining); over https with session resumption, then again without. `progress` gets
/// the run's label with each glimpse.
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
    if !config.target.tls {
        let new_connection = run(&fresh, &mut |p| progress("new connection", p))?;
        return Ok(Comparison {
            keep_alive,
            new_connection,
            new_connection_no_resumption: None,
            keep_alive_saving: None,
        });
    }
    fresh.tls_resume = true;
    let resumed = run(&fresh, &mut |p| progress("new connection, resumption", p))?;
    fresh.tls_resume = false;
    let full = run(&fresh, &mut |p| {
        progress("new connection, no resumption", p)
    })?;
    Ok(Comparison {
        keep_alive_saving: Some(Savings {
            new_connection: Saving::of(&keep_alive, &resumed),
            new_connection_no_resumption: Saving::of(&keep_alive, &full),
        }),
        keep_alive,
        new_connection: resumed,
        new_connection_no_resumption: Some(full),
    })
}

/// `a / b` when it means something.
fn quotient(a: f64, b: f64) -> Option<f64> {
    (a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// `a / b` as `3.21x`, or `-` when it means nothing.
fn ratio(a: f64, b: f64) -> String {
    match quotient(a, b) {
        Some(q) => format!("{q:.2}x"),
        None => "-".into(),
    }
}

/// The side-by-side table: a label column, one column per run, then ratio columns.
struct Table<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    label: usize,
    value: usize,
    ratio: usize,
}

impl Table<'_, '_> {
    fn row(&mut self, name: &str, values: &[String], ratios: &[String]) -> fmt::Result {
        let mut line = format!("  {name:<w$}", w = self.label);
        for v in values {
            line.push_str(&format!(" {v:>w$}", w = self.value));
        }
        for r in ratios {
            line.push_str(&format!(" {r:>w$}", w = self.ratio));
        }
        writeln!(self.f, "{}", line.trim_end())
    }
}

impl Comparison {
    /// The https table: keep-alive, new connections resuming sessions, new connections with
    /// full handshakes, and keep-alive's ratio against each of the two.
    fn fmt_tls(&self, f: &mut fmt::Formatter<'_>, full: &Report) -> fmt::Result {
        let (k, n) = (&self.keep_alive, &self.new_connection);
        let runs = [k, n, full];
        let mut t = Table {
            f,
            label: 22,
            value: 20,
            ratio: 11,
        };
        let each = |get: &dyn Fn(&Report) -> String| runs.map(get).to_vec();
        // Ratios against keep-alive: the new-connection run over keep-alive (`up`) or
        // keep-alive over it (`down`, for throughput).
        let up =
            |get: &dyn Fn(&Report) -> f64| vec![ratio(get(n), get(k)), ratio(get(full), get(k))];
        let down =
            |get: &dyn Fn(&Report) -> f64| vec![ratio(get(k), get(n)), ratio(get(k), get(full))];
        let none = Vec::new();
        t.row(
            "",
            &[
                "keep-alive".into(),
                "new, resumption".into(),
                "new, no resumption".into(),
            ],
            &["vs resumed".into(), "vs full".into()],
        )?;
        t.row("requests", &each(&|r| thousands(r.requests.total)), &none)?;
        t.row(
            "success rate",
            &each(&|r| format!("{:.2}%", success_rate(&r.requests))),
            &none,
        )?;
        t.row(
            "avg latency",
            &each(&|r| us(r.latency_us.mean)),
            &up(&|r| r.latency_us.mean),
        )?;
        t.row(
            "p99 latency",
            &each(&|r| us(r.latency_us.p99)),
            &up(&|r| r.latency_us.p99),
        )?;
        t.row(
            "throughput (req/s)",
            &each(&|r| thousands(r.requests_per_sec.round() as u64)),
            &down(&|r| r.requests_per_sec),
        )?;
        t.row(
            "connections opened",
            &each(&|r| thousands(r.connections.opened)),
            &up(&|r| r.connections.opened as f64),
        )?;
        t.row(
            "requests/connection",
            &each(&|r| format!("{:.1}", r.connections.requests_per_connection.mean)),
            &none,
        )?;
        t.row("avg connect time", &each(&|r| us(r.connect_us.mean)), &none)?;
        let hs = |r: &Report, get: &dyn Fn(&crate::report::Handshakes) -> String| {
            r.tls.as_ref().map_or_else(|| "-".into(), get)
        };
        // A mean of no handshakes is no figure at all.
        let mean = |s: &crate::report::Summary| {
            if s.count == 0 {
                "-".into()
            } else {
                us(s.mean)
            }
        };
        t.row(
            "full handshakes",
            &each(&|r| hs(r, &|h| thousands(h.handshakes_full))),
            &none,
        )?;
        t.row(
            "resumed handshakes",
            &each(&|r| hs(r, &|h| thousands(h.handshakes_resumed))),
            &none,
        )?;
        t.row(
            "avg full handshake",
            &each(&|r| hs(r, &|h| mean(&h.handshake_full_us))),
            &none,
        )?;
        t.row(
            "avg resumed handshake",
            &each(&|r| hs(r, &|h| mean(&h.handshake_resumed_us))),
            &none,
        )?;
        t.row("errors", &each(&|r| thousands(r.requests.failed)), &none)?;
        writeln!(f)?;
        writeln!(
            f,
            "  ratio: each new-connection run over keep-alive for latency and connections, \
             keep-alive over it for throughput"
        )?;
        writeln!(
            f,
            "  vs resumed: new connections resuming TLS sessions; vs full: every handshake a \
             full one; handshakes timed from TCP connected to handshake done"
        )
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
        if let Some(full) = &self.new_connection_no_resumption {
            self.fmt_tls(f, full)?;
        } else {
            self.fmt_plain(f)?;
        }
        let mut labelled = vec![("keep-alive", k), ("new connection", n)];
        if let Some(full) = &self.new_connection_no_resumption {
            labelled[1].0 = "new connection, resumption";
            labelled.push(("new connection, no resumption", full));
        }
        for (label, r) in labelled {
            for w in &r.warnings {
                writeln!(f, "  warning ({label}): {w}")?;
            }
        }
        Ok(())
    }
}

impl Comparison {
    /// The plain http table: keep-alive and a new connection per request.
    fn fmt_plain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, n) = (&self.keep_alive, &self.new_connection);
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
        )
    }
}
