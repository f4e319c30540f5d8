//! Helpers for the process-level tests: a `tether serve` child with its log, and a raw
//! HTTP/1.1 client whose every failure is a value (so load tests can count them).

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tether");
/// Longest wait for anything a server is expected to do.
pub const WAIT: Duration = Duration::from_secs(10);

/// The log of a process, appended line by line, with a condition variable to wait on.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<String>, Condvar)>);

impl Log {
    fn push(&self, line: &str) {
        let (text, cv) = &*self.0;
        let mut text = text.lock().unwrap();
        text.push_str(line);
        text.push('\n');
        cv.notify_all();
    }

    pub fn text(&self) -> String {
        self.0 .0.lock().unwrap().clone()
    }

    /// Waits until the log has a line containing `needle`; returns that line.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let (text, cv) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut guard = text.lock().unwrap();
        loop {
            if let Some(line) = guard.lines().find(|l| l.contains(needle)) {
                return Some(line.to_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            guard = cv.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}

/// A running `tether serve`, killed (by its PID) when dropped.
pub struct Tether {
    child: Child,
    pub addr: SocketAddr,
    pub log: Log,
}

impl Tether {
    /// `tether serve` with `flags`, on `127.0.0.1:0` unless they hold a `--listen`.
    pub fn start(flags: &[&str]) -> Tether {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        if !flags.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        Tether::spawn(cmd.args(flags))
    }

    /// `tether serve` with `flags` under `sh -c` after the shell command `prelude` (such as
    /// `ulimit -n 64`); the shell execs tether, so the PID is tether's.
    pub fn start_after(prelude: &str, flags: &[&str]) -> Tether {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prelude} && exec \"$0\" serve \"$@\""))
            .arg(BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags);
        Tether::spawn(&mut cmd)
    }

    fn spawn(cmd: &mut Command) -> Tether {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tether");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Log::default();
        let sink = log.clone();
        // Reads stderr for the whole life of the process, so it never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.push(&line);
            }
        });
        let mut t = Tether {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let line = t
            .log
            .wait_for("listening on http://", WAIT)
            .unwrap_or_else(|| panic!("no startup line; log:\n{}", t.log.text()));
        let addr = line.split("listening on http://").nth(1).unwrap();
        t.addr = addr.split_whitespace().next().unwrap().parse().unwrap();
        t
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
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
            if let Some(status) = self.child.try_wait().unwrap() {
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

    pub fn connect(&self) -> Client {
        Client::connect(self.addr).expect("connect")
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A raw HTTP/1.1 client on one connection; reads and writes give up after 5 s.
pub struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let writer = TcpStream::connect(addr)?;
        writer.set_read_timeout(Some(Duration::from_secs(5)))?;
        writer.set_write_timeout(Some(Duration::from_secs(5)))?;
        writer.set_nodelay(true)?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(Client { writer, reader })
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.writer.set_read_timeout(Some(timeout)).unwrap();
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Sends `method path` with `headers` (and `body` with its length, if any), reads the
    /// response.
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> io::Result<Resp> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if let Some(body) = body {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.send(&bytes)?;
        self.read(method == "HEAD")
    }

    /// `GET path`, panicking on any failure.
    pub fn get(&mut self, path: &str) -> Resp {
        self.exchange("GET", path, &[], None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a complete response",
            ));
        }
        Ok(line.trim_end().to_owned())
    }

    /// Reads one response (no body for HEAD). Bodies are delimited by `Content-Length` or
    /// chunked framing.
    pub fn read(&mut self, head: bool) -> io::Result<Resp> {
        let line = self.line()?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header {line:?}")))?;
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let size = self.line()?;
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| bad(format!("bad chunk size {size:?}")))?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                let at = resp.body.len();
                resp.body.resize(at + size, 0);
                self.reader.read_exact(&mut resp.body[at..])?;
                self.line()?;
            }
        } else {
            let len: usize = match resp.header("content-length") {
                Some(v) => v.parse().map_err(|_| bad(format!("bad length {v:?}")))?,
                None => 0,
            };
            resp.body.resize(len, 0);
            self.reader.read_exact(&mut resp.body)?;
        }
        Ok(resp)
    }

    /// Reads until the server closes; errors on a reset or a timeout. Returns what came.
    pub fn read_to_close(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }

    /// Asserts that the server closes the connection with nothing more to say.
    pub fn expect_close(&mut self) {
        match self.read_to_close() {
            Ok(rest) => assert!(rest.is_empty(), "bytes before the close: {rest:?}"),
            Err(e) => panic!("connection not closed cleanly: {e}"),
        }
    }
}

/// Polls `check` until it holds or [`WAIT`] passes (for state that has no event).
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}
