//! Real TLS clients against `tether serve --tls-cert --tls-key`, each making many requests over
//! the few connections it opens: curl with several URLs, Python (`urllib3`'s pool, or
//! `http.client`), `openssl s_client` resuming its session (TLS 1.3 tickets, TLS 1.2 tickets,
//! TLS 1.2 from the server's session cache), and nginx proxying to tether over TLS with an
//! upstream keep-alive pool and `proxy_ssl_session_reuse`. What each client did is shown by the
//! server's own counters, read in plain HTTP on `--admin-listen`: connections accepted, TLS
//! handshakes (full, resumed, failed) and requests. A last test asks of every close after an
//! exchange that it begin with the server's `close_notify`, as OpenSSL clients require.
//!
//! The certificate is made for each test (`TestCert::localhost`), trusted by the clients
//! alone and verified by them against the name `localhost`. Every program runs bounded
//! ([`LIMIT`]) and is stopped by its PID when its test ends. A missing program fails its test
//! with the package to install, unless `TETHER_SKIP_EXTERNAL=1` is set (`.ci/run` installs
//! them).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use tether_test_support::client::Client;
use tether_test_support::external::program;
use tether_test_support::nginx::Nginx;
use tether_test_support::process::{Cli, Proc, Tether, PROCESS_WAIT as WAIT};
use tether_test_support::temp::TempDir;
use tether_test_support::tls::TestCert;
use tether_test_support::wait::eventually_within;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

/// Longest any client program may run.
const LIMIT: Duration = Duration::from_secs(20);

const HELLO: &str = "Hello, World!";

// ---------------------------------------------------------------------------------------
// The server and its counters
// ---------------------------------------------------------------------------------------

/// `tether serve` over TLS with a certificate for `localhost` made for the test, two workers,
/// and its counters on an admin address of their own.
struct Server {
    tether: Tether,
    /// Where the counters answer, in plain HTTP.
    admin: SocketAddr,
    /// The certificate the clients trust (PEM).
    cert: PathBuf,
    dir: TempDir,
}

impl Server {
    /// Starts it with `flags` added.
    fn start(flags: &[&str]) -> Server {
        let dir = TempDir::new("tether-tls-clients");
        let (cert, key) = TestCert::localhost().write_pem(dir.path());
        let mut all = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ];
        all.extend_from_slice(flags);
        let tether = CLI.serve(&all);
        assert!(
            tether.log.text().contains("listening on https://"),
            "{}",
            tether.log.text()
        );
        let admin = tether.admin_addr();
        Server {
            tether,
            admin,
            cert,
            dir,
        }
    }

    fn port(&self) -> u16 {
        self.tether.addr.port()
    }

    fn cert(&self) -> &str {
        self.cert.to_str().unwrap()
    }

    /// The counters once `requests` requests were counted (the handshake and the accept of
    /// a connection are counted before its requests).
    fn counts_after(&self, requests: u64) -> Counts {
        let mut last = Counts::default();
        eventually_within(WAIT, &format!("{requests} requests counted"), || {
            last = counts(self.admin);
            last.requests >= requests
        });
        println!("server: {last:?}");
        last
    }
}

/// The server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    accepted: u64,
    full: u64,
    resumed: u64,
    failed: u64,
    requests: u64,
}

impl Counts {
    fn handshakes(&self) -> u64 {
        self.full + self.resumed
    }
}

/// The counters of the server behind `admin`, from its Prometheus text.
fn counts(admin: SocketAddr) -> Counts {
    let reply = Client::connect(admin).get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    Counts {
        accepted: value("tether_connections_accepted_total"),
        full: value("tether_tls_handshakes_total{result=\"full\"}"),
        resumed: value("tether_tls_handshakes_total{result=\"resumed\"}"),
        failed: value("tether_tls_handshakes_total{result=\"failed\"}"),
        requests: value("tether_requests_total"),
    }
}

// ---------------------------------------------------------------------------------------
// Running a client program
// ---------------------------------------------------------------------------------------

/// What a program did.
#[derive(Debug)]
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn assert_success(&self, what: &str) {
        assert!(self.status.success(), "{what} failed: {self:#?}");
    }
}

/// Runs `cmd` with `input` on its standard input (then closed), within [`LIMIT`]: past it
/// the program is killed by its PID and the test fails with what it wrote.
fn run(cmd: &mut Command, input: &[u8]) -> Ran {
    let what = format!("{cmd:?}");
    let mut proc = Proc::spawn(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let child = proc.child();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let (stdout, stderr) = (
        child.stdout.take().expect("piped stdout"),
        child.stderr.take().expect("piped stderr"),
    );
    let input = input.to_vec();
    // A program that exits without reading all of it closes the pipe: not an error here.
    let writer = thread::spawn(move || drop(stdin.write_all(&input)));
    let (stdout, stderr) = (drain(stdout), drain(stderr));
    let status = proc.wait_exit(LIMIT);
    if status.is_none() {
        let _ = proc.child().kill();
        let _ = proc.child().wait();
    }
    let _ = writer.join();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!("{what} did not finish within {LIMIT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    Ran {
        status,
        stdout,
        stderr,
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ---------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------

#[test]
fn curl_fetches_five_urls_over_one_connection_and_one_handshake() {
    let Some(curl) = program("curl", &[], "apt-get install curl") else {
        return;
    };
    let srv = Server::start(&[]);
    let port = srv.port();
    let url = format!("https://localhost:{port}/plaintext");
    const N: usize = 5;
    let mut cmd = Command::new(curl);
    cmd.args(["--silent", "--show-error", "--max-time", "10"])
        .args(["--cacert", srv.cert()])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        // After each transfer: its status, the connections it opened, the verification.
        .args([
            "--write-out",
            "\n## %{http_code} %{num_connects} %{ssl_verify_result}\n",
        ]);
    for _ in 0..N {
        cmd.arg(&url);
    }
    let ran = run(&mut cmd, b"");
    ran.assert_success("curl");
    let transfers: Vec<&str> = ran.stdout.split("\n## ").skip(1).collect();
    assert_eq!(transfers.len(), N, "{ran:#?}");
    let mut connects = 0;
    for (i, t) in transfers.iter().enumerate() {
        let fields: Vec<&str> = t.split_whitespace().collect();
        assert_eq!(
            (fields[0], fields[2]),
            ("200", "0"),
            "transfer {i}: {ran:#?}"
        );
        connects += fields[1].parse::<u32>().unwrap();
    }
    assert_eq!(ran.stdout.matches(HELLO).count(), N, "{ran:#?}");
    assert_eq!(connects, 1, "curl says it connected {connects} times");

    let c = srv.counts_after(N as u64);
    let expected = Counts {
        accepted: 1,
        full: 1,
        resumed: 0,
        failed: 0,
        requests: N as u64,
    };
    assert_eq!(c, expected);
}

// ---------------------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------------------

/// `urllib3`'s pool of at most two connections, shared by two threads of 25 requests each,
/// verifying the certificate against `localhost`.
const URLLIB3: &str = r#"
import sys, threading, urllib3
port, cafile, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
# No retries: a connection the server dropped must show, not be papered over.
pool = urllib3.HTTPSConnectionPool(
    "localhost", port, maxsize=2, block=True, ca_certs=cafile,
    cert_reqs="CERT_REQUIRED", retries=False, timeout=10.0)
answers, errors = [], []
def worker(n):
    try:
        for _ in range(n):
            r = pool.request("GET", "/plaintext")
            answers.append((r.status, r.data))
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(total // 2,)) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit("errors: " + "; ".join(errors))
wrong = [a for a in answers if a != (200, b"Hello, World!")]
if wrong:
    sys.exit("wrong answers: %r" % wrong[:3])
print("ok", len(answers))
"#;

/// `http.client` with one `ssl` context: one connection for every request.
const HTTP_CLIENT: &str = r#"
import http.client, ssl, sys
port, cafile, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
context = ssl.create_default_context(cafile=cafile)
conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
ok = 0
for i in range(total):
    conn.request("GET", "/plaintext")
    r = conn.getresponse()
    body = r.read()
    assert (r.status, body) == (200, b"Hello, World!"), (i, r.status, body)
    assert not r.will_close, i
    ok += 1
conn.close()
print("ok", ok)
"#;

#[test]
fn python_makes_fifty_requests_over_at_most_two_connections() {
    let Some(python) = program("python3", &[], "apt-get install python3") else {
        return;
    };
    let has_urllib3 = Command::new(&python)
        .args(["-c", "import urllib3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_urllib3 {
        println!(
            "note: Python's urllib3 is missing (apt-get install python3-urllib3): \
             http.client alone"
        );
    }
    let srv = Server::start(&[]);
    const N: u64 = 50;
    let script = if has_urllib3 { URLLIB3 } else { HTTP_CLIENT };
    let ran = run(
        Command::new(&python)
            .args(["-c", script])
            .arg(srv.port().to_string())
            .arg(srv.cert())
            .arg(N.to_string()),
        b"",
    );
    ran.assert_success("python3");
    assert_eq!(ran.stdout.trim(), format!("ok {N}"), "{ran:#?}");

    let c = srv.counts_after(N);
    assert_eq!((c.requests, c.failed), (N, 0), "{c:?}");
    // Every connection made its handshake, and no more connections than the pool holds.
    assert_eq!(c.handshakes(), c.accepted, "{c:?}");
    if has_urllib3 {
        assert!((1..=2).contains(&c.accepted), "{c:?}");
    } else {
        assert_eq!((c.accepted, c.full), (1, 1), "{c:?}");
    }
}

// ---------------------------------------------------------------------------------------
// openssl s_client
// ---------------------------------------------------------------------------------------

const GET: &str = "GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
const GET_CLOSE: &str = "GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// `openssl s_client` to `srv`, verifying its certificate against `localhost`, with
/// `flags`; `input` is sent, and the client goes on reading until the server closes.
fn s_client(openssl: &Path, srv: &Server, flags: &[&str], input: &str) -> Ran {
    run(
        Command::new(openssl)
            .arg("s_client")
            .args(["-connect", &format!("127.0.0.1:{}", srv.port())])
            .args(["-servername", "localhost", "-verify_hostname", "localhost"])
            .args(["-CAfile", srv.cert(), "-verify_return_error", "-ign_eof"])
            .args(flags),
        input.as_bytes(),
    )
}

/// The line of s_client's report that says whether the session is new or resumed.
fn session_line(ran: &Ran) -> &str {
    ran.stdout
        .lines()
        .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
        .unwrap_or_else(|| panic!("no session line: {ran:#?}"))
}

/// A first s_client connection, two pipelined requests the last of which asks for the
/// close, saving its session; a second that resumes it: s_client says `Reused`, and the
/// server counted one full handshake and one resumed. `version` is s_client's protocol flag
/// (`-tls1_3`, `-tls1_2`) and `protocol` what it reports; `extra` more flags of both
/// connections; `ticket` whether the saved session must hold a ticket (resumption by
/// ticket) or not (resumption by session ID, from the server's cache).
fn s_client_resumes(version: &str, protocol: &str, extra: &[&str], ticket: bool) {
    let Some(openssl) = program("openssl", &[], "apt-get install openssl") else {
        return;
    };
    let srv = Server::start(&[]);
    let sess = srv.dir.path().join("sess.pem");
    let sess = sess.to_str().unwrap();
    let flags = |io: &'static str| [&[version, io, sess][..], extra].concat();

    // The first: both answers read, so the session (and, in TLS 1.3, the tickets sent
    // after the handshake) arrived before s_client ends. Its exit status is not looked at
    // here: how the server ends the connection is the subject of the last test.
    let first = s_client(
        &openssl,
        &srv,
        &flags("-sess_out"),
        &(GET.to_owned() + GET_CLOSE),
    );
    assert!(
        session_line(&first).starts_with(&format!("New, {protocol},")),
        "{first:#?}"
    );
    assert_eq!(
        first.stdout.matches("HTTP/1.1 200 OK").count(),
        2,
        "{first:#?}"
    );
    assert_eq!(first.stdout.matches(HELLO).count(), 2, "{first:#?}");
    let c = srv.counts_after(2);
    assert_eq!(
        (c.accepted, c.full, c.resumed, c.requests),
        (1, 1, 0, 2),
        "{c:?}"
    );

    // The session saved: with or without a ticket, as the mechanism under test needs.
    let saved = run(
        Command::new(&openssl).args(["sess_id", "-noout", "-text", "-in", sess]),
        b"",
    );
    saved.assert_success("openssl sess_id");
    assert!(saved.stdout.contains(protocol), "{saved:#?}");
    assert_eq!(
        saved.stdout.contains("TLS session ticket:"),
        ticket,
        "{saved:#?}"
    );

    let second = s_client(&openssl, &srv, &flags("-sess_in"), GET_CLOSE);
    assert!(
        session_line(&second).starts_with(&format!("Reused, {protocol},")),
        "{second:#?}"
    );
    assert_eq!(
        second.stdout.matches("HTTP/1.1 200 OK").count(),
        1,
        "{second:#?}"
    );
    assert_eq!(second.stdout.matches(HELLO).count(), 1, "{second:#?}");
    let c = srv.counts_after(3);
    let expected = Counts {
        accepted: 2,
        full: 1,
        resumed: 1,
        failed: 0,
        requests: 3,
    };
    assert_eq!(c, expected);
}

#[test]
fn s_client_resumes_a_tls13_session_from_its_ticket() {
    s_client_resumes("-tls1_3", "TLSv1.3", &[], true);
}

#[test]
fn s_client_resumes_a_tls12_session_from_its_ticket() {
    s_client_resumes("-tls1_2", "TLSv1.2", &[], true);
}

#[test]
fn s_client_resumes_a_tls12_session_from_the_server_cache() {
    // Without tickets the session stays with the server, found again by its ID.
    s_client_resumes("-tls1_2", "TLSv1.2", &["-no_ticket"], false);
}

// ---------------------------------------------------------------------------------------
// nginx in front, talking TLS to tether
// ---------------------------------------------------------------------------------------

/// nginx (one worker) listening in plain HTTP on loopback, proxying to tether over TLS with
/// an upstream keep-alive pool of 8, verifying tether's certificate against `localhost` and
/// reusing TLS sessions; with `protocols` (`proxy_ssl_protocols`), or nginx's default ones.
fn nginx_in_front(bin: &Path, upstream: &Server, protocols: Option<&str>) -> Nginx {
    let protocols = protocols
        .map(|p| format!("proxy_ssl_protocols {p};"))
        .unwrap_or_default();
    let http = format!(
        "    access_log {{dir}}/access.log;
    upstream tether_upstream {{
        server 127.0.0.1:{upstream} max_fails=0;
        keepalive 8;
    }}
    server {{
        listen {{listen}};
        keepalive_requests 100000;
        location / {{
            proxy_pass https://tether_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_ssl_session_reuse on;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_trusted_certificate {cert};
            proxy_ssl_verify on;
            {protocols}
        }}
    }}",
        upstream = upstream.port(),
        cert = upstream.cert(),
    );
    Nginx::start(bin, &http)
}

/// Sends `n` GET requests through `nginx` on one keep-alive connection; every one must be
/// answered 200 with tether's body.
fn through(nginx: &Nginx, n: usize) {
    let mut c = Client::connect(nginx.addr);
    for i in 0..n {
        let r = c.get("/plaintext");
        assert_eq!(
            (r.status, r.text()),
            (200, HELLO),
            "request {i}; nginx error log:\n{}",
            nginx.error_log()
        );
    }
}

/// nginx's upstream errors (a failed handshake, a verification refused, a reset).
fn upstream_errors(nginx: &Nginx) -> Vec<String> {
    nginx
        .error_log()
        .lines()
        .filter(|l| l.contains("[error]") || l.contains("[crit]") || l.contains("[alert]"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn nginx_keeps_its_tls_upstream_connections_alive() {
    let Some(bin) = Nginx::find() else {
        return;
    };
    let srv = Server::start(&[]);
    let nginx = nginx_in_front(&bin, &srv, None);
    const N: u64 = 200;
    through(&nginx, N as usize);

    let c = srv.counts_after(N);
    assert_eq!((c.requests, c.failed), (N, 0), "{c:?}");
    // One nginx worker keeps at most 8 idle upstream connections.
    assert!((1..=8).contains(&c.accepted), "{c:?}");
    assert!(c.handshakes() <= c.accepted, "{c:?}");
    assert_eq!(upstream_errors(&nginx), Vec::<String>::new());
}

/// 200 requests through nginx speaking `protocols` to a tether that closes every tenth
/// response's connection (`tether_flags` added), so that nginx opens 20 upstream connections
/// one after the other, each offering the session it saved: the server's counts.
fn nginx_reconnecting(protocols: &str, tether_flags: &[&str]) -> Option<Counts> {
    let bin = Nginx::find()?;
    let flags = [
        &["--max-requests", "10", "--limit-jitter", "0"][..],
        tether_flags,
    ]
    .concat();
    let srv = Server::start(&flags);
    let nginx = nginx_in_front(&bin, &srv, Some(protocols));
    through(&nginx, 200);
    let c = srv.counts_after(200);
    assert_eq!((c.requests, c.failed), (200, 0), "{c:?}");
    assert_eq!(c.accepted, 20, "{c:?}");
    assert_eq!(c.handshakes(), c.accepted, "{c:?}");
    assert_eq!(upstream_errors(&nginx), Vec::<String>::new());
    Some(c)
}

#[test]
fn nginx_resumes_its_tls13_upstream_session_on_every_new_connection() {
    // OpenSSL hands nginx each ticket as it arrives, on resumed connections too: the first
    // connection makes the session, every later one resumes.
    let Some(c) = nginx_reconnecting("TLSv1.2 TLSv1.3", &[]) else {
        return;
    };
    assert_eq!((c.full, c.resumed), (1, 19), "{c:?}");
}

#[test]
fn nginx_resumes_its_tls12_upstream_session_from_the_server_cache_on_every_new_connection() {
    // Without tickets a TLS 1.2 session stays in the server's cache under its ID, and the
    // client's copy stays valid however often it resumes.
    let Some(c) = nginx_reconnecting("TLSv1.2", &["--no-tls-tickets"]) else {
        return;
    };
    assert_eq!((c.full, c.resumed), (1, 19), "{c:?}");
}

#[test]
fn nginx_resumes_its_tls12_upstream_session_by_ticket_every_other_connection() {
    // With TLS 1.2 tickets rustls sends a new ticket on every resumption (RFC 5077 allows
    // it). OpenSSL then marks the session it resumed from as not resumable and, the
    // handshake being a resumed one, does not hand the new session to nginx: nginx offers
    // the spent session to the next connection, which makes a full handshake and a session
    // that the one after it resumes. Half the new connections resume.
    let Some(c) = nginx_reconnecting("TLSv1.2", &[]) else {
        return;
    };
    assert!(c.resumed > 0, "no handshake resumed: {c:?}");
    assert!(c.resumed >= (c.accepted - 1) / 2, "{c:?}");
}

// ---------------------------------------------------------------------------------------
// How tether ends a TLS connection
// ---------------------------------------------------------------------------------------

/// Every close of an established TLS connection that follows a complete exchange should
/// begin with the server's `close_notify` (RFC 8446, 6.1): without it OpenSSL 3 clients
/// report the end as an error (`unexpected eof while reading`), and s_client exits with 1.
/// Three closes: the server's request limit, the client's `Connection: close`, and the idle
/// timeout.
#[test]
fn s_client_sees_close_notify_at_every_close_after_an_exchange() {
    let Some(openssl) = program("openssl", &[], "apt-get install openssl") else {
        return;
    };
    let srv = Server::start(&[
        "--max-requests",
        "2",
        "--limit-jitter",
        "0",
        "--idle-timeout",
        "1s",
        "--idle-grace",
        "0s",
    ]);
    let cases = [
        ("the request limit", GET.repeat(2)),
        ("the client's Connection: close", GET_CLOSE.to_owned()),
        ("the idle timeout", GET.to_owned()),
    ];
    let mut unclean = Vec::new();
    for (close, input) in &cases {
        let ran = s_client(&openssl, &srv, &[], input);
        let answers = input.matches("GET ").count();
        assert_eq!(
            ran.stdout.matches("HTTP/1.1 200 OK").count(),
            answers,
            "{close}: {ran:#?}"
        );
        if !ran.status.success() || ran.stderr.contains("unexpected eof") {
            unclean.push(format!(
                "{close}: s_client {}, {}",
                ran.status,
                ran.stderr.trim()
            ));
        }
    }
    assert!(
        unclean.is_empty(),
        "closes without close_notify:\n{}",
        unclean.join("\n")
    );
}
