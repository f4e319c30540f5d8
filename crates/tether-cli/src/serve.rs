//! `tether serve`: flags, turning them into a [`Config`], and running the server until a
//! signal.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory};
use tether::{Config, Server};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::app::{App, Paths};
use crate::duration;

/// Flags of `tether serve`: one per setting of [`Config`] worth changing from the command
/// line. The defaults are the engine's (a unit test keeps them in step). Numbers may be
/// negative on the command line only so that `--backlog -1` is refused naming the flag.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the log tells which)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_addr)]
    pub listen: SocketAddr,

    /// Worker threads, each with its own runtime and listening socket [default: number of cores]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub workers: Option<usize>,

    /// Listen backlog
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4096,
        allow_negative_numbers = true
    )]
    pub backlog: u32,

    /// Idle time allowed between requests, advertised in Keep-Alive (0 = no limit)
    #[arg(long, value_name = "D", default_value = "75s", value_parser = duration::parse)]
    pub idle_timeout: Duration,

    /// Extra time after the idle timeout before an idle connection is really closed
    #[arg(long, value_name = "D", default_value = "1s", value_parser = duration::parse)]
    pub idle_grace: Duration,

    /// Time to receive a whole request head from its first byte (0 = no limit)
    #[arg(long, value_name = "D", default_value = "10s", value_parser = duration::parse)]
    pub header_timeout: Duration,

    /// Time allowed without progress while reading a request body (0 = no limit)
    #[arg(long, value_name = "D", default_value = "30s", value_parser = duration::parse)]
    pub body_timeout: Duration,

    /// Time allowed without progress while writing a response (0 = no limit)
    #[arg(long, value_name = "D", default_value = "30s", value_parser = duration::parse)]
    pub write_timeout: Duration,

    /// Requests served per connection before it closes (0 = unlimited)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub max_requests: u64,

    /// Age after which a connection closes at its next response (0 = off)
    #[arg(long, value_name = "D", default_value = "0", value_parser = duration::parse)]
    pub max_lifetime: Duration,

    /// Largest request head (request line and headers) in bytes
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 16_384,
        allow_negative_numbers = true
    )]
    pub max_head_size: usize,

    /// Most header fields in one request (at most 512)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        allow_negative_numbers = true
    )]
    pub max_headers: usize,

    /// Largest request body in bytes
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 1_048_576,
        allow_negative_numbers = true
    )]
    pub max_body_size: u64,

    /// Do not send `Keep-Alive: timeout=N, max=M` on persistent responses [default: sent]
    #[arg(long)]
    pub no_keep_alive_header: bool,

    /// Fraction (0 to 0.5) by which --max-requests and --max-lifetime are randomly lowered per connection
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub limit_jitter: f64,

    /// Connections over all workers; at the limit the least recently used idle connection is closed for a new one, else the new one gets 503 (0 = from the file descriptor limit)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub max_connections: usize,

    /// Connections per client IP address; beyond it a new one gets 429 (0 = off)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub max_connections_per_ip: usize,

    /// Idle time after which a keep-alive connection gives up its task and waits as a bare socket until its next request (0 = never)
    #[arg(long, value_name = "D", default_value = "1s", value_parser = duration::parse)]
    pub park_after: Duration,

    /// Idle connections a worker holds in tasks before the ones going idle park after 100 ms
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_idle_tasks: usize,

    /// Idle time before a connection may be evicted at the limit or closed by a drain
    #[arg(long, value_name = "D", default_value = "1s", value_parser = duration::parse)]
    pub min_idle_age: Duration,

    /// First phase of a shutdown: connections stay open, responses carry Connection: close, idle connections close once idle for --min-idle-age
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration::parse)]
    pub drain_window: Duration,

    /// Hard deadline of a shutdown, from its start: what remains is cut
    #[arg(long, value_name = "D", default_value = "30s", value_parser = duration::parse)]
    pub shutdown_timeout: Duration,

    /// Path of the counters: Prometheus text, or JSON with ?format=json or Accept: application/json
    #[arg(long, value_name = "PATH", default_value = "/metrics", value_parser = parse_path)]
    pub metrics_path: String,

    /// Path of the readiness probe: 200, or 503 from the start of a shutdown
    #[arg(long, value_name = "PATH", default_value = "/readyz", value_parser = parse_path)]
    pub ready_path: String,

    /// Path of the liveness probe: 200 while the process serves
    #[arg(long, value_name = "PATH", default_value = "/healthz", value_parser = parse_path)]
    pub live_path: String,
}

fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.contains(['?', '#']) && !s.chars().any(char::is_whitespace) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a path: it must start with / and hold no query, fragment or space"
        ))
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

impl ServeArgs {
    /// The engine settings these flags describe; settings without a flag keep their default.
    pub fn config(&self) -> Config {
        let default = Config::default();
        Config {
            workers: self.workers.unwrap_or(default.workers),
            backlog: self.backlog,
            idle_timeout: self.idle_timeout,
            idle_grace: self.idle_grace,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            write_timeout: self.write_timeout,
            max_requests: self.max_requests,
            max_lifetime: self.max_lifetime,
            limit_jitter: self.limit_jitter,
            max_head_size: self.max_head_size,
            max_headers: self.max_headers,
            max_body_size: self.max_body_size,
            keep_alive_header: !self.no_keep_alive_header,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            min_idle_age: self.min_idle_age,
            park_after: self.park_after,
            max_idle_tasks: self.max_idle_tasks,
            drain_window: self.drain_window,
            shutdown_timeout: self.shutdown_timeout,
            ..default
        }
    }

    /// Where the metrics and the probes answer.
    pub fn paths(&self) -> Paths {
        Paths {
            metrics: self.metrics_path.clone(),
            ready: self.ready_path.clone(),
            live: self.live_path.clone(),
        }
    }
}

/// Turns a [`Config::validate`] message (`max_headers must be 1..=512`) into a usage error
/// naming the flag (`--max-headers`), as clap does for values it parses itself.
fn invalid(message: &str) -> clap::Error {
    let mut cli = crate::Cli::command();
    cli.build();
    let cmd = cli
        .find_subcommand_mut("serve")
        .expect("the serve subcommand exists");
    let (field, rest) = message.split_once(' ').unwrap_or((message, ""));
    let flag = field.replace('_', "-");
    let known = cmd
        .get_arguments()
        .any(|a| a.get_long() == Some(flag.as_str()));
    let text = if known {
        format!("invalid value for '--{flag}': {rest}")
    } else {
        format!("invalid settings: {message}")
    };
    cmd.error(ErrorKind::ValueValidation, text)
}

/// Runs `tether serve`: validates, raises the descriptor limit, binds, serves until SIGTERM
/// or SIGINT, then drains in two phases (a second signal exits at once).
pub fn run(args: &ServeArgs) -> ExitCode {
    let config = args.config();
    if let Err(message) = config.validate() {
        invalid(&message).exit();
    }
    if let Some(path) = duplicate_path(args) {
        invalid_paths(path).exit();
    }
    match raise_nofile_limit() {
        Ok((before, after)) if after > before => {
            info!("file descriptor limit raised from {before} to {after}");
        }
        Ok((_, now)) => info!("file descriptor limit {now}"),
        Err(e) => warn!("file descriptor limit not raised: {e}"),
    }
    let workers = config.workers;
    let server = match Server::builder().config(config).bind(args.listen) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    let first_signal = match watch_signals() {
        Ok(rx) => Some(rx),
        Err(e) => {
            warn!("no signal can stop the server: {e}");
            None
        }
    };
    // Logged once the signal handlers are installed, so whoever waits for this line can stop
    // the server cleanly from then on.
    let handle = server.handle();
    info!(
        "listening on http://{addr} ({workers} workers, at most {} connections)",
        handle.max_connections()
    );
    let paths = Arc::new(args.paths());
    let make = move || App::new(handle.clone(), paths.clone());
    let signal = async move {
        let received = match first_signal {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        if !received {
            std::future::pending::<()>().await;
        }
    };
    match server.run_until(make, signal) {
        Ok(stopped) => {
            let d = stopped.drain;
            info!(
                accepted = stopped.stats.accepted,
                requests = stopped.stats.requests,
                open_at_shutdown = d.connections,
                requests_completed = d.requests_completed,
                connections_closed = d.connections_closed,
                connections_cut = d.connections_cut,
                requests_cut = d.requests_cut,
                "stopped"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first of the metrics, readiness and liveness paths given twice.
fn duplicate_path(args: &ServeArgs) -> Option<&str> {
    let (m, r, l) = (&args.metrics_path, &args.ready_path, &args.live_path);
    if m == r || m == l {
        Some(m)
    } else if r == l {
        Some(r)
    } else {
        None
    }
}

fn invalid_paths(path: &str) -> clap::Error {
    let mut cli = crate::Cli::command();
    cli.build();
    let cmd = cli
        .find_subcommand_mut("serve")
        .expect("the serve subcommand exists");
    cmd.error(
        ErrorKind::ArgumentConflict,
        format!(
            "'--metrics-path', '--ready-path' and '--live-path' must differ: {path} is given twice"
        ),
    )
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so that the connection limit derived
/// from it (and the descriptors left for accepting) is as high as the system allows.
/// Returns the soft limit before and after.
fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        // Linux refuses an infinite descriptor limit: the ceiling is fs.nr_open.
        target = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if before >= target {
        return Ok((before, before));
    }
    lim.rlim_cur = target;
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((before, target))
}

/// Installs the SIGTERM and SIGINT handlers on a thread of their own. The first signal
/// completes the returned receiver (which starts the drain); a second one, while the drain
/// runs, exits the process at once with status 1.
fn watch_signals() -> std::io::Result<oneshot::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Installed here, before the server is announced, so no early signal is missed.
    let (mut term, mut int) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                let name = next_signal(&mut term, &mut int).await;
                info!("{name} received; draining (a second signal exits at once)");
                let _ = tx.send(());
                let name = next_signal(&mut term, &mut int).await;
                warn!("{name} received during the drain; exiting at once");
                std::process::exit(1);
            })
        })?;
    Ok(rx)
}

async fn next_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["tether", "serve"], args].concat())?;
        match cli.command {
            Command::Serve(args) => Ok(args),
            Command::Load(_) => panic!("parsed as load"),
        }
    }

    #[test]
    fn defaults_are_the_engines() {
        let args = parse(&[]).expect("no flags parse");
        assert_eq!(
            format!("{:?}", args.config()),
            format!("{:?}", Config::default())
        );
        assert_eq!(args.listen, "127.0.0.1:8080".parse().expect("an address"));
    }

    #[test]
    fn flags_reach_the_config() {
        let args = parse(&[
            "--workers=3",
            "--idle-timeout=500ms",
            "--idle-grace=0",
            "--max-lifetime=1m",
            "--max-requests=0",
            "--no-keep-alive-header",
            "--limit-jitter=0",
        ])
        .expect("valid flags");
        let c = args.config();
        assert_eq!(c.workers, 3);
        assert_eq!(c.idle_timeout, Duration::from_millis(500));
        assert_eq!(c.idle_grace, Duration::ZERO);
        assert_eq!(c.max_lifetime, Duration::from_secs(60));
        assert_eq!(c.max_requests, 0);
        assert!(!c.keep_alive_header);
        assert_eq!(c.limit_jitter, 0.0);
    }

    #[test]
    fn lifecycle_flags_reach_the_config() {
        let args = parse(&[
            "--max-connections=3",
            "--max-connections-per-ip=2",
            "--min-idle-age=100ms",
            "--park-after=0",
            "--max-idle-tasks=7",
            "--drain-window=2s",
            "--shutdown-timeout=10s",
            "--metrics-path=/m",
            "--ready-path=/r",
            "--live-path=/l",
        ])
        .expect("valid flags");
        let c = args.config();
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.max_connections_per_ip, 2);
        assert_eq!(c.min_idle_age, Duration::from_millis(100));
        assert_eq!(c.park_after, Duration::ZERO);
        assert_eq!(c.max_idle_tasks, 7);
        assert_eq!(c.drain_window, Duration::from_secs(2));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        let p = args.paths();
        assert_eq!((&*p.metrics, &*p.ready, &*p.live), ("/m", "/r", "/l"));
        assert_eq!(duplicate_path(&args), None);

        let defaults = parse(&[]).expect("no flags parse");
        let p = defaults.paths();
        assert_eq!(
            (&*p.metrics, &*p.ready, &*p.live),
            ("/metrics", "/readyz", "/healthz")
        );
        let same = parse(&["--ready-path=/metrics"]).expect("parses");
        assert_eq!(duplicate_path(&same), Some("/metrics"));
        let e = invalid_paths("/metrics").to_string();
        assert!(e.contains("'--ready-path'"), "{e}");
    }

    #[test]
    fn paths_must_be_paths() {
        for bad in ["metrics", "/m?x=1", "/a b", ""] {
            let e = parse(&["--metrics-path", bad]).expect_err(bad).to_string();
            assert!(e.contains("'--metrics-path"), "{bad}: {e}");
        }
    }

    #[test]
    fn validation_errors_name_the_flag() {
        let c = parse(&["--max-headers=100000"]).expect("parses").config();
        let message = c.validate().expect_err("out of range");
        let e = invalid(&message).to_string();
        assert!(e.contains("'--max-headers'"), "{e}");
        let e = invalid("something odd").to_string();
        assert!(e.contains("invalid settings: something odd"), "{e}");
    }
}
