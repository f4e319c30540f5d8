//! `tether load`: flags, turning them into a [`tether_load::Config`], the progress line, and
//! printing the report (text or JSON).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tether_load::{Bounds, Config, ConnMode, Progress, StatusSet, Target, TlsTrust, DEFAULT_CAP};

/// Flags of `tether load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The URL to load (http://host[:port]/path or https://...). Over https the report adds
    /// the TLS handshakes, full and resumed, each timed from the TCP connection being open to
    /// the handshake being complete
    #[arg(value_name = "URL")]
    pub url: String,

    /// Concurrent connections
    #[arg(short = 'c', long, value_name = "N", default_value_t = 10)]
    pub connections: usize,

    /// Measured requests in all, split evenly across the connections [default: none; the run
    /// lasts --duration]
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,

    /// Measured time (with -n: a cap) [default: 10s, or 10m with -n]
    #[arg(short = 'd', long, value_name = "D", value_parser = tether::parse_duration)]
    pub duration: Option<Duration>,

    /// Open loop: requests per second in total, each due at a fixed time; latency counts
    /// from the due time
    #[arg(long, value_name = "R", conflicts_with = "interval")]
    pub rate: Option<f64>,

    /// Closed loop: pause between a response and the connection's next request (a bare
    /// number is milliseconds)
    #[arg(long, value_name = "MS", value_parser = parse_interval)]
    pub interval: Option<Duration>,

    /// Requests in flight per connection, written in one write
    #[arg(long, value_name = "DEPTH", default_value_t = 1)]
    pub pipeline: usize,

    /// A new connection for every request (the request says Connection: close)
    #[arg(long, conflicts_with = "max_requests_per_conn")]
    pub no_keepalive: bool,

    /// Close each connection after N requests and open another
    #[arg(long, value_name = "N")]
    pub max_requests_per_conn: Option<u64>,

    /// Send HTTP/1.0 requests (with Connection: keep-alive unless --no-keepalive)
    #[arg(long = "http1.0")]
    pub http10: bool,

    /// Request method
    #[arg(short = 'm', long, value_name = "METHOD", default_value = "GET")]
    pub method: String,

    /// Extra request header, 'Name: value' (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,

    /// Send this file as the request body
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,

    /// Run this long before measuring; its requests are not reported
    #[arg(long, value_name = "D", default_value = "0", value_parser = tether::parse_duration)]
    pub warmup: Duration,

    /// Longest wait to connect (over https with the TLS handshake), or for a response after
    /// its request was written
    #[arg(long, value_name = "D", default_value = "10s", value_parser = tether::parse_duration)]
    pub timeout: Duration,

    /// https: check the server's certificate against the CA certificates in this PEM file
    /// (one or more; a self-signed server's own certificate works too)
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub cacert: Option<PathBuf>,

    /// https: accept any server certificate (the handshake's signatures are still checked)
    #[arg(long)]
    pub insecure: bool,

    /// https: whether a new connection resumes an earlier TLS session (one session store for
    /// the whole run) or makes a full handshake
    #[arg(long, value_name = "on|off", default_value = "on")]
    pub tls_resume: Switch,

    /// Run twice, keep-alive then a new connection per request, and print them side by side;
    /// over https a third time, new connections without TLS session resumption
    #[arg(long, conflicts_with_all = ["no_keepalive", "max_requests_per_conn"])]
    pub compare: bool,

    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,

    /// Status codes that count as success, such as 200-299,304
    #[arg(long, value_name = "CODES", default_value = "200-399", value_parser = StatusSet::parse)]
    pub success: StatusSet,

    /// Threads, each driving its share of the connections [default: number of cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `on` or `off` (variants undocumented so that the help lists them on one line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// `5` (milliseconds) or a duration with a unit.
fn parse_interval(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => tether::parse_duration(s),
    }
}

impl LoadArgs {
    /// The load these flags describe (the body file is read here).
    pub fn config(&self) -> Result<Config, String> {
        let target = Target::parse(&self.url)?;
        let mut c = Config::new(target);
        c.connections = self.connections;
        c.bounds = Bounds {
            requests: self.requests,
            duration: self.duration.unwrap_or(if self.requests.is_some() {
                DEFAULT_CAP
            } else {
                Duration::from_secs(10)
            }),
        };
        c.rate = self.rate;
        c.interval = self.interval.unwrap_or(Duration::ZERO);
        c.pipeline = self.pipeline;
        c.mode = match (self.no_keepalive, self.max_requests_per_conn) {
            (true, _) => ConnMode::PerRequest,
            (false, Some(n)) => ConnMode::PerConnection(n),
            (false, None) => ConnMode::Persistent,
        };
        c.http10 = self.http10;
        c.method = self.method.clone();
        c.headers = self.headers.clone();
        if let Some(path) = &self.body {
            c.body = std::fs::read(path)
                .map_err(|e| format!("cannot read --body {}: {e}", path.display()))?;
        }
        c.warmup = self.warmup;
        c.timeout = self.timeout;
        c.success = self.success;
        if let Some(t) = self.threads {
            c.threads = t;
        }
        if let Some(path) = &self.cacert {
            c.tls_trust = TlsTrust::ca_file(path).map_err(|e| format!("--cacert: {e}"))?;
        } else if self.insecure {
            c.tls_trust = TlsTrust::Insecure;
        }
        c.tls_resume = self.tls_resume == Switch::On;
        c.validate()?;
        Ok(c)
    }
}

/// Runs `tether load`.
pub fn run(args: &LoadArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let bar = progress_bar();
    let result = if args.compare {
        tether_load::compare(&config, &mut |label, p| tick(&bar, label, p)).map(|c| {
            if args.json {
                serde_json::to_string_pretty(&c).unwrap_or_default()
            } else {
                c.to_string()
            }
        })
    } else {
        tether_load::run(&config, &mut |p| tick(&bar, "", p)).map(|r| {
            if args.json {
                r.to_json()
            } else {
                r.to_string()
            }
        })
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(text) => {
            // A closed stdout (`| head`) is not an error of the run.
            let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A progress line on stderr, only when stderr is a terminal.
fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    Some(bar)
}

fn tick(bar: &Option<ProgressBar>, label: &str, p: &Progress) {
    let Some(bar) = bar else { return };
    let phase = if p.warming_up {
        "warming up"
    } else {
        "running"
    };
    let label = if label.is_empty() {
        String::new()
    } else {
        format!("{label}: ")
    };
    let done = match p.total {
        Some(total) => format!("{}/{} requests", p.requests, total),
        None => format!("{} requests", p.requests),
    };
    bar.set_message(format!(
        "{label}{phase} {:.1}s of {:.1}s, {done}, {} errors",
        p.elapsed.as_secs_f64(),
        p.length.as_secs_f64(),
        p.errors
    ));
    bar.tick();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<LoadArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["tether", "load"], args].concat())?;
        match cli.command {
            Command::Load(args) => Ok(args),
            Command::Serve(_) => panic!("parsed as serve"),
        }
    }

    #[test]
    fn flags_reach_the_config() {
        let a = parse(&[
            "http://127.0.0.1:9/x",
            "-c",
            "100",
            "-n",
            "10000",
            "--interval",
            "5",
            "--http1.0",
            "-H",
            "X-A: 1",
            "-H",
            "X-B: 2",
            "--max-requests-per-conn",
            "7",
            "--success",
            "200,404",
            "--threads",
            "1",
        ])
        .expect("valid");
        let c = a.config().expect("valid config");
        assert_eq!(c.connections, 100);
        assert_eq!(c.bounds.requests, Some(10_000));
        assert_eq!(c.bounds.duration, DEFAULT_CAP);
        assert_eq!(c.interval, Duration::from_millis(5));
        assert!(c.http10);
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.mode, ConnMode::PerConnection(7));
        assert!(c.success.contains(404) && !c.success.contains(201));
        assert_eq!(c.threads, 1);

        let c = parse(&["127.0.0.1:9", "--no-keepalive", "--interval", "250us"])
            .expect("valid")
            .config()
            .expect("valid config");
        assert_eq!(c.mode, ConnMode::PerRequest);
        assert_eq!(c.interval, Duration::from_micros(250));
        assert_eq!(c.bounds.duration, Duration::from_secs(10));
        assert!(c.tls_resume, "resumption is on by default");
        assert!(matches!(c.tls_trust, TlsTrust::Unset));

        let c = parse(&["https://127.0.0.1:9/", "--insecure", "--tls-resume", "off"])
            .expect("valid")
            .config()
            .expect("valid config");
        assert!(c.target.tls && !c.tls_resume);
        assert!(matches!(c.tls_trust, TlsTrust::Insecure));
    }

    #[test]
    fn refusals() {
        assert!(parse(&["http://127.0.0.1:9/", "--rate", "10", "--interval", "5"]).is_err());
        assert!(parse(&[
            "http://127.0.0.1:9/",
            "--no-keepalive",
            "--max-requests-per-conn",
            "2"
        ])
        .is_err());
        assert!(parse(&["http://127.0.0.1:9/", "--compare", "--no-keepalive"]).is_err());
        assert!(parse(&["http://127.0.0.1:9/", "--success", "2xx"]).is_err());
        let a =
            parse(&["http://127.0.0.1:9/", "--pipeline", "4", "--no-keepalive"]).expect("parses");
        assert!(a.config().expect_err("invalid").contains("pipeline"));
        let a = parse(&["https://127.0.0.1:9/"]).expect("parses");
        let e = a.config().expect_err("no trust chosen");
        assert!(e.contains("--cacert") && e.contains("--insecure"), "{e}");
        assert!(parse(&["https://127.0.0.1:9/", "--insecure", "--cacert", "x.pem"]).is_err());
        assert!(parse(&[
            "https://127.0.0.1:9/",
            "--insecure",
            "--tls-resume",
            "maybe"
        ])
        .is_err());
        let a =
            parse(&["https://127.0.0.1:9/", "--cacert", "/nonexistent/ca.pem"]).expect("parses");
        let e = a.config().expect_err("no file");
        assert!(
            e.contains("--cacert") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let a = parse(&["http://127.0.0.1:9/", "--body", "/nonexistent/file"]).expect("parses");
        assert!(a.config().expect_err("no file").contains("--body"));
    }
}
