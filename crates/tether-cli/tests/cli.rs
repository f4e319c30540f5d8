//! End-to-end tests of the `tether` binary: real processes on real loopback sockets.
//!
//! Every server listens on `127.0.0.1:0`; its address is read from the startup log line, so
//! no port is guessed. Every process started here is killed by its guard when the test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tether");
const WAIT: Duration = Duration::from_secs(10);

/// Kills the process (by its PID) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// Waits for the process to exit by itself, up to `WAIT`.
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < WAIT,
                "process did not exit within {WAIT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running `tether serve`.
struct Server {
    proc: Guard,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tether");
        let mut proc = Guard(child);
        let stderr = proc.0.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        // Keeps reading stderr for the whole life of the process, so it never blocks on a
        // full pipe, and reports the address from the startup line.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(WAIT) {
            Ok(addr) => addr.parse().expect("address in the startup line"),
            Err(_) => panic!("no startup line; log:\n{}", log.lock().expect("log lock")),
        };
        Server { proc, addr, log }
    }

    fn connect(&self) -> Client {
        Client::new(self.addr)
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    fn signal(&self, name: &str) {
        let pid = self.proc.0.id().to_string();
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -{name} {pid}")])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} {pid} failed");
    }
}

/// A response as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A raw HTTP/1.1 client on one connection.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let writer = TcpStream::connect(addr).expect("connect");
        writer
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let reader = BufReader::new(writer.try_clone().expect("clone stream"));
        Client { writer, reader }
    }

    fn send(&mut self, bytes: &[u8]) -> &mut Self {
        self.writer.write_all(bytes).expect("send");
        self
    }

    fn request(&mut self, method: &str, path: &str) -> Resp {
        self.send(format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.read(method == "HEAD")
    }

    fn read(&mut self, head: bool) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
        let status = status.unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header colon");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if !head {
            let len: usize = resp
                .header("content-length")
                .map_or(0, |v| v.parse().expect("length"));
            resp.body.resize(len, 0);
            self.reader.read_exact(&mut resp.body).expect("body");
        }
        resp
    }

    /// Asserts that the server closes the connection with nothing more to say.
    fn expect_close(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes before close: {rest:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

#[test]
fn endpoints_on_one_connection() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    let index = c.request("GET", "/");
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/plain")));
    for path in ["/plaintext", "/json", "/echo"] {
        assert!(
            index.text().contains(path),
            "index lacks {path}: {}",
            index.text()
        );
    }

    let plain = c.request("GET", "/plaintext");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some("text/plain"));
    assert_eq!(plain.text(), "Hello, World!");
    assert!(!plain.closes());
    assert!(plain
        .header("keep-alive")
        .is_some_and(|v| v.starts_with("timeout=75")));

    let json = c.request("GET", "/json");
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.text(), r#"{"message":"Hello, World!"}"#);

    let head = c.request("HEAD", "/json");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("27"));

    // The connection is still good after HEAD (no stray body bytes).
    assert_eq!(c.request("GET", "/plaintext").text(), "Hello, World!");
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    let missing = c.request("GET", "/nope");
    assert_eq!(missing.status, 404);
    assert!(!missing.closes());

    for path in ["/", "/plaintext", "/json"] {
        let r = c.request("POST", path);
        assert_eq!(r.status, 405, "POST {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let r = c.request("GET", "/echo");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(c.request("DELETE", "/echo").status, 405);

    // Errors answered by the application keep the connection.
    assert_eq!(c.request("GET", "/json").status, 200);
}

#[test]
fn echo_round_trip() {
    let server = Server::start(&[]);
    let mut c = server.connect();

    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\nContent-Length: 11\r\n\r\nhello world");
    let r = c.read(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/x-test"));
    assert_eq!(r.text(), "hello world");

    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.text(), "hello world");

    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // A body larger than the read buffer, sent in one go.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    );
    c.send(&big);
    let r = c.read(false);
    assert_eq!(r.status, 200);
    assert!(r.body == big, "large echo differs");

    // Pipelined: an echo and a GET in one write.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).text(), "abc");
    assert_eq!(c.read(false).text(), "Hello, World!");
}

#[test]
fn malformed_chunked_body_gets_400_and_close() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    // Good data first, so the handler has already buffered part of its answer.
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    );
    let r = c.read(false);
    assert_eq!(r.status, 400);
    assert!(r.closes());
    assert!(
        !r.text().contains("hello"),
        "partial echo leaked: {:?}",
        r.text()
    );
    c.expect_close();
}

#[test]
fn body_limits_and_timeouts() {
    let server = Server::start(&["--max-body-size", "16", "--body-timeout", "300ms"]);

    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.status, 413);
    assert!(r.closes());
    c.expect_close();

    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let started = Instant::now();
    let r = c.read(false);
    assert_eq!(r.status, 408);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "408 too early"
    );
    c.expect_close();
}

#[test]
fn connection_flags_reach_the_engine() {
    let server = Server::start(&[
        "--idle-timeout",
        "1s",
        "--idle-grace",
        "0",
        "--max-requests",
        "2",
        "--limit-jitter",
        "0",
    ]);

    let mut c = server.connect();
    let first = c.request("GET", "/plaintext");
    assert_eq!(first.header("keep-alive"), Some("timeout=1, max=1"));
    let last = c.request("GET", "/plaintext");
    assert!(
        last.closes(),
        "the last allowed request must close: {last:?}"
    );
    c.expect_close();

    let mut c = server.connect();
    c.request("GET", "/plaintext");
    let idle = Instant::now();
    c.expect_close();
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "idle close after {waited:?}"
    );

    let quiet = Server::start(&["--no-keep-alive-header"]);
    let r = quiet.connect().request("GET", "/plaintext");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("keep-alive"), None);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start(&[]);
    let mut idle = server.connect();
    assert_eq!(idle.request("GET", "/plaintext").status, 200);

    server.signal("TERM");
    let status = server.proc.wait();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    idle.expect_close();
    thread::sleep(Duration::from_millis(100)); // let the log reader catch up
    let log = server.log();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn sigint_stops_the_server_cleanly() {
    let mut server = Server::start(&[]);
    server.signal("INT");
    let status = server.proc.wait();
    assert!(status.success(), "exit after SIGINT: {status:?}");
}

fn help() -> String {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("run --help");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let help = help();
    let flags = [
        ("--listen <ADDR>", "127.0.0.1:8080"),
        ("--workers <N>", "number of cores"),
        ("--backlog <N>", "4096"),
        ("--idle-timeout <D>", "75s"),
        ("--idle-grace <D>", "1s"),
        ("--header-timeout <D>", "10s"),
        ("--body-timeout <D>", "30s"),
        ("--write-timeout <D>", "30s"),
        ("--max-requests <N>", "10000"),
        ("--max-lifetime <D>", "0"),
        ("--max-head-size <BYTES>", "16384"),
        ("--max-headers <N>", "100"),
        ("--max-body-size <BYTES>", "1048576"),
        ("--no-keep-alive-header", "sent"),
        ("--limit-jitter <FRACTION>", "0.1"),
        ("--max-connections <N>", "0"),
        ("--max-connections-per-ip <N>", "0"),
        ("--min-idle-age <D>", "1s"),
        ("--park-after <D>", "1s"),
        ("--max-idle-tasks <N>", "256"),
        ("--drain-window <D>", "5s"),
        ("--shutdown-timeout <D>", "30s"),
        ("--metrics-path <PATH>", "/metrics"),
        ("--ready-path <PATH>", "/readyz"),
        ("--live-path <PATH>", "/healthz"),
    ];
    for (flag, default) in flags {
        let line = help.lines().find(|l| l.trim_start().starts_with(flag));
        let line = line.unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        assert!(
            line.contains(&format!("[default: {default}]")),
            "{flag}: {line}"
        );
    }
    assert!(help.contains("0 = unlimited") && help.contains("0 = off"));
}

/// Runs `tether serve` with `flags` on a port this test holds, and returns its exit status
/// and stderr. A process that got as far as binding would fail with "cannot listen" instead.
fn refused(flags: &[&str]) -> (ExitStatus, String) {
    let held = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let listen = held.local_addr().expect("held address").to_string();
    let mut proc = Guard(
        Command::new(BIN)
            .args(["serve", "--listen", &listen])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tether"),
    );
    let status = proc.wait();
    let mut err = String::new();
    if let Some(mut stderr) = proc.0.stderr.take() {
        stderr.read_to_string(&mut err).expect("read stderr");
    }
    (status, err)
}

#[test]
fn invalid_values_are_refused_before_binding() {
    let cases: &[(&[&str], &str)] = &[
        (&["--idle-timeout", "5parsecs"], "--idle-timeout"),
        (&["--header-timeout", "10"], "--header-timeout"),
        (&["--workers", "0"], "--workers"),
        (&["--max-headers", "100000"], "--max-headers"),
        (&["--max-head-size", "10"], "--max-head-size"),
        (&["--max-requests", "-1"], "--max-requests"),
        (&["--limit-jitter", "0.9"], "--limit-jitter"),
        (&["--backlog", "many"], "--backlog"),
        (&["--listen", "not-an-address"], "--listen"),
        (&["--max-connections", "-1"], "--max-connections"),
        (&["--drain-window", "5"], "--drain-window"),
        (&["--metrics-path", "metrics"], "--metrics-path"),
        (&["--ready-path", "/healthz"], "--ready-path"),
    ];
    for (flags, name) in cases {
        let (status, err) = refused(flags);
        assert_eq!(status.code(), Some(2), "{flags:?}: {status:?}\n{err}");
        assert!(
            err.contains(&format!("'{name}")),
            "{flags:?} does not name {name}:\n{err}"
        );
        assert!(
            !err.contains("cannot listen") && !err.contains("listening"),
            "{flags:?} bound:\n{err}"
        );
    }
}

#[test]
fn a_taken_address_is_reported() {
    let (status, err) = refused(&[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
}
