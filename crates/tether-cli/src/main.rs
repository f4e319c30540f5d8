//! `tether`: the command-line front end of the tether HTTP/1.1 engine.
//!
//! `tether serve DIR` serves a folder (see `tether_files`), and without one a small demo
//! application (see [`app`]), on the engine, with every limit and timeout of
//! [`tether::Config`] as a flag. `tether load` (see [`load`]) is a load
//! generator that measures what keep-alive is worth.

mod access_log;
mod app;
mod config_file;
mod load;
mod serve;
mod tls;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Serve and measure HTTP/1.1 keep-alive.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once at start-up: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a folder (DIR), or the demo endpoints without one, with a live page of the
    /// connections, until SIGTERM or SIGINT.
    // A flag given twice takes its last value: the command line overrides --config.
    #[command(args_override_self = true)]
    Serve(serve::ServeArgs),
    /// Load a URL: keep-alive or a new connection per request, closed loop or constant rate.
    Load(load::LoadArgs),
}

fn main() -> ExitCode {
    let (argv, dir) = match config_file::with_config_file(std::env::args_os().collect()) {
        Ok(spliced) => spliced,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let mut cli = Cli::parse_from(argv);
    if let Command::Serve(args) = &mut cli.command {
        if args.dir.is_none() {
            args.dir = dir;
        }
    }
    init_logging();
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Load(args) => load::run(&args),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
