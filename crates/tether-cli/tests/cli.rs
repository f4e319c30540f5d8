//! End-to-end tests of the `tether` binary: real processes on real loopback sockets.
//!
//! Every server listens on `127.0.0.1:0`; its address is read from the startup log line, so
//! no port is guessed. Every process started here is killed by its guard when the test ends.

use std::net::TcpListener;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tether_test_support::process::{Cli, Tether, PROCESS_WAIT as WAIT};

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

/// `tether serve` with two workers and `flags`.
fn serve(flags: &[&str]) -> Tether {
    CLI.serve(&[&["--workers", "2"], flags].concat())
}

/// Waits for the server to exit by itself, up to `WAIT`.
fn exited(server: &mut Tether) -> ExitStatus {
    server
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("process did not exit within {WAIT:?}"))
}

#[test]
fn endpoints_on_one_connection() {
    let server = serve(&[]);
    let mut c = server.connect();

    let index = c.get("/");
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/html")));
    for path in ["/plaintext", "/json", "/echo"] {
        assert!(
            index.text().contains(path),
            "index lacks {path}: {}",
            index.text()
        );
    }

    let plain = c.get("/plaintext");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-type"), Some("text/plain"));
    assert_eq!(plain.text(), "Hello, World!");
    assert!(!plain.closes());
    assert!(plain
        .header("keep-alive")
        .is_some_and(|v| v.starts_with("timeout=75")));

    let json = c.get("/json");
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.text(), r#"{"message":"Hello, World!"}"#);

    let head = c.call("HEAD", "/json");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("27"));

    // The connection is still good after HEAD (no stray body bytes).
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let server = serve(&[]);
    let mut c = server.connect();

    let missing = c.get("/nope");
    assert_eq!(missing.status, 404);
    assert!(!missing.closes());

    for path in ["/", "/plaintext", "/json"] {
        let r = c.call("POST", path);
        assert_eq!(r.status, 405, "POST {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let r = c.get("/echo");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(c.call("DELETE", "/echo").status, 405);

    // Errors answered by the application keep the connection.
    assert_eq!(c.get("/json").status, 200);
}

#[test]
fn echo_round_trip() {
    let server = serve(&[]);
    let mut c = server.connect();

    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\nContent-Length: 11\r\n\r\nhello world");
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/x-test"));
    assert_eq!(r.text(), "hello world");

    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.text(), "hello world");

    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let r = c.reply();
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
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(r.body == big, "large echo differs");

    // Pipelined: an echo and a GET in one write.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.reply().text(), "abc");
    assert_eq!(c.reply().text(), "Hello, World!");
}

#[test]
fn malformed_chunked_body_gets_400_and_close() {
    let server = serve(&[]);
    let mut c = server.connect();
    // Good data first, so the handler has already buffered part of its answer.
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    );
    let r = c.reply();
    assert_eq!(r.status, 400);
    assert!(r.closes());
    assert!(
        !r.text().contains("hello"),
        "partial echo leaked: {:?}",
        r.text()
    );
    c.expect_closed_or_reset();
}

#[test]
fn body_limits_and_timeouts() {
    let server = serve(&["--max-body-size", "16", "--body-timeout", "300ms"]);

    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 413);
    assert!(r.closes());
    c.expect_closed_or_reset();

    let mut c = server.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let started = Instant::now();
    let r = c.reply();
    assert_eq!(r.status, 408);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "408 too early"
    );
    c.expect_closed_or_reset();
}

#[test]
fn connection_flags_reach_the_engine() {
    let server = serve(&[
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
    let first = c.get("/plaintext");
    assert_eq!(first.header("keep-alive"), Some("timeout=1, max=1"));
    let last = c.get("/plaintext");
    assert!(
        last.closes(),
        "the last allowed request must close: {last:?}"
    );
    c.expect_closed_or_reset();

    let mut c = server.connect();
    c.get("/plaintext");
    let idle = Instant::now();
    c.expect_closed_or_reset();
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "idle close after {waited:?}"
    );

    let quiet = serve(&["--no-keep-alive-header"]);
    let r = quiet.connect().get("/plaintext");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("keep-alive"), None);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = serve(&[]);
    let mut idle = server.connect();
    assert_eq!(idle.get("/plaintext").status, 200);

    server.signal(libc::SIGTERM);
    let status = exited(&mut server);
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    idle.expect_closed_or_reset();
    for line in ["SIGTERM received", "stopped"] {
        let logged = server.log.wait_for(line, WAIT);
        assert!(logged.is_some(), "{}", server.log.text());
    }
}

#[test]
fn sigint_stops_the_server_cleanly() {
    let mut server = serve(&[]);
    server.signal(libc::SIGINT);
    let status = exited(&mut server);
    assert!(status.success(), "exit after SIGINT: {status:?}");
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let help = CLI.help("serve");
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
    CLI.serve_to_exit(&[&["--listen", listen.as_str()], flags].concat())
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
