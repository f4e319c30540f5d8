//! `tether serve`: flags, turning them into a [`Config`], and running the server until a
//! signal.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory};
use tether::{Config, Server};
use tracing::{info, warn};

use crate::app::App;
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
            ..default
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

/// Runs `tether serve`: validates, binds, serves until SIGTERM or SIGINT, then drains.
pub fn run(args: &ServeArgs) -> ExitCode {
    let config = args.config();
    if let Err(message) = config.validate() {
        invalid(&message).exit();
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
    match server.run_until(|| App, shutdown_signal(addr, workers)) {
        Ok(stopped) => {
            info!(
                accepted = stopped.stats.accepted,
                requests = stopped.stats.requests,
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

/// Completes at SIGTERM or SIGINT. The startup line is logged here, once both handlers are
/// installed, so whoever waits for it can stop the server cleanly from then on.
async fn shutdown_signal(addr: SocketAddr, workers: usize) {
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = signal(SignalKind::terminate())
        .inspect_err(|e| warn!("no SIGTERM handler: {e}"))
        .ok();
    let mut int = signal(SignalKind::interrupt())
        .inspect_err(|e| warn!("no SIGINT handler: {e}"))
        .ok();
    info!("listening on http://{addr} ({workers} workers)");
    let name = tokio::select! {
        Some(_) = recv(term.as_mut()) => "SIGTERM",
        Some(_) = recv(int.as_mut()) => "SIGINT",
        else => {
            warn!("no signal can stop the server");
            std::future::pending::<&str>().await
        }
    };
    info!("{name} received; shutting down");
}

async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) -> Option<()> {
    signal?.recv().await
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
    fn validation_errors_name_the_flag() {
        let c = parse(&["--max-headers=100000"]).expect("parses").config();
        let message = c.validate().expect_err("out of range");
        let e = invalid(&message).to_string();
        assert!(e.contains("'--max-headers'"), "{e}");
        let e = invalid("something odd").to_string();
        assert!(e.contains("invalid settings: something odd"), "{e}");
    }
}
