//! `tether serve`: flags, turning them into a [`Config`], and running the server until a
//! signal.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches};
use tether::{Config, Server};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::access_log::AccessLog;
use crate::app::{App, Paths, Site};
use crate::tls::TlsArgs;

/// Flags of `tether serve`: the folder to serve, the listening address, one flag per setting
/// of [`Config`] (generated from [`Config::SETTINGS`], see [`EngineArgs`]), where the
/// operational endpoints answer, and how files are served.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Folder to serve at / (without it: the demo endpoints /plaintext, /json and /echo)
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Settings from a TOML file, its keys the names of these flags (`idle-timeout = "5s"`,
    /// `dir = "public"`); flags given here override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective settings, defaults included, as a TOML configuration file, and exit
    #[arg(long)]
    pub print_config: bool,

    /// Address to listen on (port 0 picks a free port; the log tells which)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_addr)]
    pub listen: SocketAddr,

    // The engine's settings, one flag each.
    #[command(flatten)]
    pub engine: EngineArgs,

    /// Path of the counters, without DIR: Prometheus text, or JSON with ?format=json or Accept: application/json
    #[arg(long, value_name = "PATH", default_value = "/metrics", value_parser = parse_path)]
    pub metrics_path: String,

    /// Path of the readiness probe, without DIR: 200, or 503 from the start of a shutdown
    #[arg(long, value_name = "PATH", default_value = "/readyz", value_parser = parse_path)]
    pub ready_path: String,

    /// Path of the liveness probe, without DIR: 200 while the process serves
    #[arg(long, value_name = "PATH", default_value = "/healthz", value_parser = parse_path)]
    pub live_path: String,

    /// With DIR: where the live page (at the prefix), metrics, metrics.json, readyz and healthz answer
    #[arg(long, value_name = "PREFIX", default_value = "/_tether/", value_parser = parse_prefix)]
    pub admin_prefix: String,

    /// Serve the live page, metrics and probes on this address instead, not on --listen
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub admin_listen: Option<SocketAddr>,

    /// Log each request in the combined log format to this file (appended), or to stdout with - [default: none]
    #[arg(long, value_name = "PATH|-")]
    pub access_log: Option<String>,

    // How files are served.
    #[command(flatten)]
    pub files: FilesArgs,

    // TLS on --listen.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How `tether serve DIR` serves its files.
#[derive(Args, Debug, Default)]
pub struct FilesArgs {
    /// Serve dotfiles and dot-folders (404 otherwise)
    #[arg(long)]
    pub dotfiles: bool,

    /// Cache-Control of every file response [default: none]
    #[arg(long, value_name = "VALUE", value_parser = parse_field_value)]
    pub cache_control: Option<String>,

    /// File (in DIR) answered with 200 for paths that name nothing: a single-page application's fallback [default: off]
    #[arg(long, value_name = "FILE")]
    pub spa: Option<PathBuf>,
}

impl FilesArgs {
    fn options(&self) -> tether_files::Options {
        tether_files::Options {
            dotfiles: self.dotfiles,
            cache_control: self.cache_control.clone(),
            spa: self.spa.clone(),
            ..tether_files::Options::default()
        }
    }
}

fn parse_prefix(s: &str) -> Result<String, String> {
    let path = parse_path(s)?;
    if path.ends_with('/') {
        Ok(path)
    } else {
        Err(format!("{s:?} must end with /"))
    }
}

fn parse_field_value(s: &str) -> Result<String, String> {
    if s.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
        Err(format!("{s:?} holds a control character"))
    } else {
        Ok(s.to_owned())
    }
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

/// The engine's settings as flags: one per entry of [`Config::SETTINGS`], built at run time
/// from that table, so that each flag has the name (in kebab-case), help line and default of
/// its setting. A value is checked by [`Config::set`] as clap parses it (so an error names the
/// flag) and applied to the [`Config`] this holds; a switch (`--no-keep-alive-header`) sets
/// the opposite of its setting's default. Ranges are checked later, by [`Config::validate`].
#[derive(Clone, Debug, Default)]
pub struct EngineArgs(pub Config);

/// The long flags of the settings, in the order of [`Config::SETTINGS`], kept for the life of
/// the process: clap takes names as `&'static str`.
fn flags() -> &'static [String] {
    static FLAGS: OnceLock<Vec<String>> = OnceLock::new();
    FLAGS.get_or_init(|| Config::SETTINGS.iter().map(|s| s.flag()).collect())
}

impl Args for EngineArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Config::SETTINGS
            .iter()
            .zip(flags())
            .fold(cmd, |cmd, (setting, flag)| {
                let name = setting.name();
                let help = format!(
                    "{} [default: {}]",
                    help_line(setting.flag_help()),
                    setting.flag_default()
                );
                let arg = Arg::new(name).long(flag.as_str()).help(help);
                let arg = if setting.is_switch() {
                    arg.action(ArgAction::SetTrue)
                } else {
                    // Negative numbers reach the parser, so that `--backlog -1` is refused
                    // naming the flag rather than taken for a flag `-1`.
                    arg.value_name(setting.value_name())
                        .action(ArgAction::Set)
                        .allow_negative_numbers(true)
                        .value_parser(move |value: &str| {
                            Config::default()
                                .set(name, value)
                                .map(|()| value.to_owned())
                        })
                };
                cmd.arg(arg)
            })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// A setting's help line with the settings it names in code spans (`max_requests`) written
/// as their flags (--max-requests).
fn help_line(mut help: String) -> String {
    for (setting, flag) in Config::SETTINGS.iter().zip(flags()) {
        help = help.replace(&format!("`{}`", setting.name()), &format!("--{flag}"));
    }
    help
}

impl FromArgMatches for EngineArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = EngineArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for (setting, flag) in Config::SETTINGS.iter().zip(flags()) {
            let name = setting.name();
            let value = if setting.is_switch() {
                matches
                    .get_flag(name)
                    .then(|| setting.switch_value().to_owned())
            } else {
                matches.get_one::<String>(name).cloned()
            };
            if let Some(value) = value {
                self.0.set(name, &value).map_err(|e| {
                    clap::Error::raw(
                        ErrorKind::ValueValidation,
                        format!("invalid value '{value}' for '--{flag}': {e}\n"),
                    )
                })?;
            }
        }
        Ok(())
    }
}

impl ServeArgs {
    /// The engine settings these flags describe; settings without a flag given keep their
    /// default.
    pub fn config(&self) -> Config {
        self.engine.0.clone()
    }

    /// Where the live page, the metrics and the probes answer: under the prefix with a
    /// folder; at the root (the paths of their flags) with the demo.
    pub fn paths(&self) -> Paths {
        if self.dir.is_some() {
            return Paths::under(&self.admin_prefix);
        }
        Paths {
            page: "/".to_owned(),
            metrics: self.metrics_path.clone(),
            metrics_json: "/metrics.json".to_owned(),
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
    let flag = Config::SETTINGS
        .iter()
        .find(|s| s.name() == field)
        .map_or_else(|| field.replace('_', "-"), |s| s.flag());
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
    if args.print_config {
        if let Err(message) = config.validate() {
            invalid(&message).exit();
        }
        print!("{}", args.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Err(message) = config.validate() {
        invalid(&message).exit();
    }
    if let Some(path) = duplicate_path(args) {
        invalid_paths(path).exit();
    }
    // The folder is checked before anything binds.
    let root = match &args.dir {
        Some(dir) => match tether_files::Root::new(dir) {
            Ok(root) if root.path().is_dir() => Some(root),
            Ok(_) => {
                eprintln!("error: {} is not a folder", dir.display());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot serve {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // So is the access log: a file that cannot be opened stops the start.
    let (log, log_writer) = match &args.access_log {
        Some(target) => match AccessLog::open(target) {
            Ok((log, writer)) => (Some(log), Some(writer)),
            Err(e) => {
                eprintln!("error: cannot open the access log {target}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => (None, None),
    };
    // And the certificate.
    let cert = match args.tls.certificate() {
        Ok(cert) => cert,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    match raise_nofile_limit() {
        Ok((before, after)) if after > before => {
            info!("file descriptor limit raised from {before} to {after}");
        }
        Ok((_, now)) => info!("file descriptor limit {now}"),
        Err(e) => warn!("file descriptor limit not raised: {e}"),
    }
    let workers = config.workers;
    let mut builder = Server::builder().config(config);
    if let Some(cert) = &cert {
        builder = builder.tls_certificate(cert.clone());
    }
    let server = match builder.bind(args.listen) {
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
    if let Some(cert) = cert.clone().filter(|_| args.tls.tls_cert.is_some()) {
        if let Err(e) = crate::tls::reload_on_sighup(cert) {
            warn!("no signal can reload the certificate: {e}");
        }
    }
    // Logged once the signal handlers are installed, so whoever waits for this line can stop
    // the server cleanly from then on.
    let handle = server.handle();
    let scheme = if cert.is_some() { "https" } else { "http" };
    info!(
        "listening on {scheme}://{addr} ({workers} workers, at most {} connections)",
        handle.max_connections()
    );
    let paths = Arc::new(args.paths());
    // With --admin-listen the operational endpoints answer there, about this server.
    let admin = match args.admin_listen {
        Some(at) => match serve_admin(at, handle.clone(), paths.clone()) {
            Ok(running) => Some(running),
            Err(e) => {
                eprintln!("error: cannot listen on {at}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let public_admin = admin.is_none().then(|| paths.clone());
    if let Some(root) = &root {
        info!("serving {}", root.path().display());
    }
    let options = Arc::new(args.files.options());
    let make = move || {
        let site = match &root {
            Some(root) => Site::Files(tether_files::Files::new(root.clone(), options.clone())),
            None => Site::Demo,
        };
        App::new(handle.clone(), public_admin.clone(), site, log.clone())
    };
    let signal = async move {
        let received = match first_signal {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        if !received {
            std::future::pending::<()>().await;
        }
    };
    let stopped = server.run_until(make, signal);
    // The handlers, and their clones of the log, are gone with the server: every line
    // accepted is written before the process ends.
    if let Some(writer) = log_writer {
        if let Err(e) = writer.finish() {
            warn!("the access log failed: {e}");
        }
    }
    if let Some(admin) = admin {
        if let Err(e) = admin.shutdown() {
            warn!("the admin listener did not stop cleanly: {e}");
        }
    }
    match stopped {
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

/// The listener of `--admin-listen`: one worker answering the live page, metrics and probes
/// of the main server (its `handle`), and 404 to anything else.
fn serve_admin(
    at: SocketAddr,
    handle: tether::Handle,
    paths: Arc<Paths>,
) -> std::io::Result<tether::Running> {
    let server = Server::builder().workers(1).bind(at)?;
    info!("admin on http://{}", server.local_addr());
    server.spawn(move || App::new(handle.clone(), Some(paths.clone()), Site::Nothing, None))
}

/// The first of the metrics, readiness and liveness paths given twice, or taken by the
/// page (`/`, `/metrics.json`) or the demo.
fn duplicate_path(args: &ServeArgs) -> Option<&str> {
    let (m, r, l) = (&args.metrics_path, &args.ready_path, &args.live_path);
    let taken =
        |p: &str| ["/", "/metrics.json"].contains(&p) || crate::app::DEMO_PATHS.contains(&p);
    if m == r || m == l || taken(m) {
        Some(m)
    } else if r == l || taken(r) {
        Some(r)
    } else if taken(l) {
        Some(l)
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
            "'--metrics-path', '--ready-path' and '--live-path' must differ, from each other and from /, /metrics.json, /plaintext, /json and /echo: {path} is taken"
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
    use std::time::Duration;

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

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every setting is a flag of `tether serve`, with its value name, help line and default.
    #[test]
    fn every_setting_is_a_flag() {
        let mut cli = Cli::command();
        cli.build();
        let serve = cli.find_subcommand("serve").expect("serve");
        for s in Config::SETTINGS {
            let flag = s.flag();
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(flag.as_str()))
                .unwrap_or_else(|| panic!("no --{flag}"));
            let help = arg.get_help().expect("help").to_string();
            assert!(
                help.ends_with(&format!("[default: {}]", s.flag_default())),
                "--{flag}: {help}"
            );
            assert!(!help.contains(&format!("`{}`", s.name())), "{help}");
            let names = arg.get_value_names().unwrap_or_default();
            if s.is_switch() {
                assert!(names.is_empty(), "--{flag} takes no value");
            } else {
                assert_eq!(names, [s.value_name()], "--{flag}");
            }
        }
        let jitter = serve
            .get_arguments()
            .find(|a| a.get_long() == Some("limit-jitter"))
            .expect("--limit-jitter");
        let help = jitter.get_help().expect("help").to_string();
        assert!(help.contains("--max-requests and --max-lifetime"), "{help}");
    }

    /// Each flag given sets its setting and leaves the others at their defaults.
    #[test]
    fn each_flag_sets_its_setting() {
        let default = Config::default();
        for s in Config::SETTINGS {
            let flag = format!("--{}", s.flag());
            let (args, expected) = if s.is_switch() {
                (vec![flag], s.switch_value().to_owned())
            } else {
                let value = match s.value_name() {
                    "D" => "7s",
                    "FRACTION" => "0.25",
                    _ => "12345",
                };
                (vec![flag, value.to_owned()], value.to_owned())
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let c = parse(&args).expect("valid flag").config();
            for other in Config::SETTINGS {
                let want = if other.name() == s.name() {
                    Some(expected.clone())
                } else {
                    default.get(other.name())
                };
                assert_eq!(c.get(other.name()), want, "{args:?}: {}", other.name());
            }
        }
    }

    #[test]
    fn new_flags_reach_the_config() {
        let c = parse(&[
            "--max-uri-len=100",
            "--drain-bytes=5",
            "--drain-time=0",
            "--linger-timeout=3s",
            "--read-buffer-size=1024",
            "--buffer-pool=2",
        ])
        .expect("valid flags")
        .config();
        assert_eq!(c.max_uri_len, 100);
        assert_eq!(c.drain_bytes, 5);
        assert_eq!(c.drain_time, Duration::ZERO);
        assert_eq!(c.linger_timeout, Duration::from_secs(3));
        assert_eq!(c.read_buffer_size, 1024);
        assert_eq!(c.buffer_pool, 2);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (flag, bad) in [
            ("--backlog", "-1"),
            ("--max-requests", "-1"),
            ("--idle-timeout", "5parsecs"),
            ("--header-timeout", "10"),
            ("--limit-jitter", "much"),
            ("--max-head-size", "16KiB"),
        ] {
            let e = parse(&[flag, bad]).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{flag} {bad}: {e}");
            let e = e.to_string();
            assert!(e.contains(&format!("'{flag} <")), "{flag} {bad}: {e}");
        }
        let e = parse(&["--no-keep-alive-header=yes"]).expect_err("a switch");
        assert!(e.to_string().contains("--no-keep-alive-header"), "{e}");
    }
}
