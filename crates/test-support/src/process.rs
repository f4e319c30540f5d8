//! The `tether` binary as a child process: `tether serve` on `127.0.0.1:0` with its address
//! read from the startup line, its log collected line by line, signals, and the kill when the
//! test ends.
//!
//! The path of the binary is known only to the tests of its package (`CARGO_BIN_EXE_tether`),
//! so they name it: `const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));`.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::wait::Watched;

/// Longest wait for anything a server process is expected to do.
pub const PROCESS_WAIT: Duration = Duration::from_secs(10);

/// What `tether serve` logs once it listens, before `http://` or `https://` and the
/// address.
const LISTENING: &str = "listening on ";

/// The `tether` binary at this path.
#[derive(Clone, Copy, Debug)]
pub struct Cli(pub &'static str);

impl Cli {
    /// `tether sub`, to add arguments to.
    pub fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(self.0);
        cmd.arg(sub);
        cmd
    }

    /// The `--help` of `tether sub` (which must succeed).
    pub fn help(&self, sub: &str) -> String {
        let out = self
            .command(sub)
            .arg("--help")
            .output()
            .expect("run --help");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("UTF-8 help")
    }

    /// `tether serve` with `flags`, on `127.0.0.1:0` unless they hold a `--listen`.
    fn serve_command(&self, flags: &[&str]) -> Command {
        let mut cmd = self.command("serve");
        if !flags.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(flags);
        cmd
    }

    /// Starts `tether serve` with `flags` (on `127.0.0.1:0` unless they hold a `--listen`)
    /// and waits for its startup line.
    pub fn serve(&self, flags: &[&str]) -> Tether {
        Tether::spawn(&mut self.serve_command(flags))
    }

    /// Runs `tether serve` with `flags` (as [`Cli::serve`]) until it exits by itself, within
    /// [`PROCESS_WAIT`]; returns its exit status and what it wrote on stderr.
    pub fn serve_to_exit(&self, flags: &[&str]) -> (ExitStatus, String) {
        let mut proc = Proc::spawn(
            self.serve_command(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let status = proc
            .wait_exit(PROCESS_WAIT)
            .unwrap_or_else(|| panic!("tether serve did not exit within {PROCESS_WAIT:?}"));
        let mut err = String::new();
        let mut stderr = proc.child().stderr.take().expect("piped stderr");
        stderr.read_to_string(&mut err).expect("read stderr");
        (status, err)
    }

    /// `tether serve` with `flags` under `sh -c` after the shell command `prelude` (such as
    /// `ulimit -n 64`); the shell execs tether, so the PID is tether's.
    pub fn serve_after(&self, prelude: &str, flags: &[&str]) -> Tether {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prelude} && exec \"$0\" serve \"$@\""))
            .arg(self.0)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags);
        Tether::spawn(&mut cmd)
    }
}

/// A child process, killed (by its PID) and reaped when dropped.
pub struct Proc(Child);

impl Proc {
    /// Starts `cmd` (panics when it cannot).
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc(cmd.spawn().expect("start the process"))
    }

    /// The child, for its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }

    /// The process ID.
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Sends `signal` (such as `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of a child this value owns and has not reaped.
        let r = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(r, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// CPU time (user and system) the process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The command name may hold spaces; the fields after it are space-separated.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Open file descriptors of the process numbered below `limit`.
    pub fn fds_below(&self, limit: usize) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
            .filter(|&fd| fd < limit)
            .count()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The log of a process, appended line by line; waiters wake at each line.
#[derive(Clone, Default)]
pub struct Log(Arc<Watched<String>>);

impl Log {
    /// Appends every line of `stderr` until it closes, on a thread of its own (so that the
    /// process never blocks on a full pipe).
    fn collect(&self, stderr: ChildStderr) {
        let sink = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.0.update(|text| {
                    text.push_str(&line);
                    text.push('\n');
                });
            }
        });
    }

    /// The whole log so far.
    pub fn text(&self) -> String {
        self.0.read(String::clone)
    }

    /// Waits up to `timeout` for a line containing `needle`; returns that line.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.0.wait_for(timeout, |text| {
            text.lines().find(|l| l.contains(needle)).map(str::to_owned)
        })
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0
            .read(|text| text.lines().filter(|l| l.contains(needle)).count())
    }
}

/// A running `tether serve`, killed when dropped. Dereferences to its [`Proc`].
pub struct Tether {
    proc: Proc,
    /// The address it listens on, from its startup line.
    pub addr: SocketAddr,
    /// What it logs (`RUST_LOG=info`).
    pub log: Log,
}

impl Tether {
    /// Starts `cmd` (a `tether serve`) and waits for its startup line.
    fn spawn(cmd: &mut Command) -> Tether {
        let mut proc = Proc::spawn(
            cmd.env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let log = Log::default();
        log.collect(proc.child().stderr.take().expect("piped stderr"));
        let line = log
            .wait_for(LISTENING, PROCESS_WAIT)
            .unwrap_or_else(|| panic!("no startup line; log:\n{}", log.text()));
        let url = line.split(LISTENING).nth(1).unwrap();
        let addr = url.split("://").nth(1).unwrap();
        let addr = addr.split_whitespace().next().unwrap().parse().unwrap();
        Tether { proc, addr, log }
    }

    /// A new connection to the server.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The address of the operational endpoints started with `--admin-listen`, from their
    /// startup line (waited for).
    pub fn admin_addr(&self) -> SocketAddr {
        const ADMIN: &str = "admin on http://";
        let line = self
            .log
            .wait_for(ADMIN, PROCESS_WAIT)
            .unwrap_or_else(|| panic!("no admin line; log:\n{}", self.log.text()));
        line.split(ADMIN)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }
}

impl Deref for Tether {
    type Target = Proc;

    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl DerefMut for Tether {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}
