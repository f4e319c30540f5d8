//! `tether serve` behind nginx with an upstream keep-alive pool, under a steady load of GET
//! and POST requests: tether closing idle upstream connections at its idle timeout, nginx
//! closing them first, and a restart with the two-phase drain and a second instance on the
//! same port. Every response the clients get is counted: no 502, no 504, no reset.
//!
//! A last test shows, with a stand-in upstream, what nginx does when a server closes a
//! keep-alive connection just as a request arrives on it (the race that the timeout ordering
//! of the README avoids): it retries a GET on another connection, but answers a POST with
//! 502.
//!
//! nginx is Debian's (`nginx-light`; `.ci/run` installs it). A missing nginx fails these
//! tests unless `TETHER_SKIP_EXTERNAL=1` is set. Each nginx runs from a configuration in a
//! temporary directory and is stopped by the PID in its pid file when the test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tether_test_support::client::Client;
use tether_test_support::nginx::Nginx;
use tether_test_support::process::{Cli, Tether, PROCESS_WAIT as WAIT};
use tether_test_support::raw::Raw;
use tether_test_support::wait::eventually_within;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------

/// An nginx reverse proxy in front of `upstream`, with an upstream keep-alive pool whose
/// idle connections close after `keepalive_timeout`; its access log has the upstream status
/// of every attempt of each request.
fn proxy(bin: &Path, upstream: SocketAddr, keepalive_timeout: &str) -> Nginx {
    let http = format!(
        "    log_format upstream '$status $upstream_status $upstream_addr $request_method';
    access_log {{dir}}/access.log upstream;
    upstream tether {{
        server {upstream} max_fails=0;
        keepalive 32;
        keepalive_timeout {keepalive_timeout};
        keepalive_requests 100000;
    }}
    server {{
        listen {{listen}};
        keepalive_timeout 60s;
        keepalive_requests 100000;
        location / {{
            proxy_pass http://tether;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}"
    );
    Nginx::start(bin, &http)
}

/// Error-log lines about the upstream: failures nginx met, whether or not a retry hid them
/// from the client.
fn upstream_errors(nginx: &Nginx) -> Vec<String> {
    nginx
        .error_log()
        .lines()
        .filter(|l| l.contains("[error]") && l.contains("upstream"))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Load through the proxy
// ---------------------------------------------------------------------------------------

/// What the clients saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    /// Every failure: a status other than 200, a wrong body, a reset or an early close.
    errors: Vec<String>,
}

/// Client threads, each with a keep-alive connection to nginx, alternating GET /plaintext
/// and POST /echo. Only clients with an index below `active` send; the others wait (their
/// upstream connections go idle in nginx's pool).
struct Load {
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<Tally>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(clients));
        let sent = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|i| {
                let (stop, active, sent) = (stop.clone(), active.clone(), sent.clone());
                thread::spawn(move || client(addr, i, &stop, &active, &sent))
            })
            .collect();
        Load {
            stop,
            active,
            sent,
            threads,
        }
    }

    fn set_active(&self, n: usize) {
        self.active.store(n, Ordering::Relaxed);
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits for `n` more requests to be answered.
    fn wait_more(&self, n: usize) {
        let target = self.sent() + n;
        eventually_within(WAIT, &format!("{n} more requests"), || {
            self.sent() >= target
        });
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for t in self.threads {
            let tally = t.join().unwrap();
            total.ok += tally.ok;
            total.errors.extend(tally.errors);
        }
        total
    }
}

fn client(
    addr: SocketAddr,
    index: usize,
    stop: &AtomicBool,
    active: &AtomicUsize,
    sent: &AtomicUsize,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<Client> = None;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if index >= active.load(Ordering::Relaxed) {
            thread::sleep(2 * MS);
            continue;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => match Client::try_connect(addr) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tally.errors.push(format!("connect: {e}"));
                    thread::sleep(10 * MS);
                    continue;
                }
            },
        };
        n += 1;
        let body = format!("client {index} request {n}");
        let (result, expect) = if n % 2 == 0 {
            (
                c.exchange("POST", "/echo", &[], Some(body.as_bytes())),
                body.as_str(),
            )
        } else {
            (c.exchange("GET", "/plaintext", &[], None), "Hello, World!")
        };
        sent.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(r) if r.status == 200 && r.body == expect.as_bytes() => {
                tally.ok += 1;
                if r.closes() {
                    conn = None;
                }
            }
            Ok(r) => {
                tally.errors.push(format!("{} {}", r.status, r.text()));
                conn = None;
            }
            Err(e) => {
                tally.errors.push(format!("{e}"));
                conn = None;
            }
        }
    }
    tally
}

/// A counter of `tether serve`, read from its JSON metrics on a connection of its own.
fn closed_for(tether: &Tether, reason: &str) -> u64 {
    let r = tether.connect().get("/metrics?format=json");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["closed_by"][reason].as_u64().unwrap()
}

fn requests(tether: &Tether) -> u64 {
    let r = tether.connect().get("/metrics?format=json");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["requests"].as_u64().unwrap()
}

/// Bursts of `clients` separated by quiet spells of one client, each `quiet` long, so that
/// most of nginx's upstream connections sit idle in its pool for that long.
fn bursts(load: &Load, clients: usize, quiet: Duration) {
    for _ in 0..2 {
        load.set_active(clients);
        load.wait_more(200);
        load.set_active(1);
        thread::sleep(quiet); // the idle spell the test is about
    }
    load.set_active(clients);
    load.wait_more(200);
}

const CLIENTS: usize = 8;

/// tether with a 1 s idle timeout (and no grace) behind nginx with an upstream keep-alive
/// timeout of `nginx_keepalive`, under bursts with quiet spells of 1.2 s: long enough for
/// the shorter of the two timeouts to close idle upstream connections. Returns the tally of
/// the finished load; `None` when nginx is missing and skipping was asked for.
fn idle_spells_behind_nginx(nginx_keepalive: &str) -> Option<(Tether, Nginx, Tally)> {
    let bin = Nginx::find()?;
    let tether = CLI.serve(&[
        "--workers",
        "2",
        "--idle-timeout",
        "1s",
        "--idle-grace",
        "0",
    ]);
    let nginx = proxy(&bin, tether.addr, nginx_keepalive);
    let load = Load::start(nginx.addr, CLIENTS);
    bursts(&load, CLIENTS, 1200 * MS);
    let tally = load.finish();
    Some((tether, nginx, tally))
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// tether's idle timeout (1 s) shorter than nginx's upstream keep-alive timeout (60 s):
/// tether closes the idle upstream connections, nginx sees the FIN while they sit in its
/// pool and drops them. Nothing fails here; the race this ordering leaves open is shown by
/// `a_close_that_crosses_a_request_costs_a_post_a_502`.
#[test]
fn tether_closes_idle_upstream_connections_at_its_idle_timeout() {
    let Some((tether, nginx, tally)) = idle_spells_behind_nginx("60s") else {
        return;
    };
    let idle_closed = closed_for(&tether, "idle_timeout");
    println!(
        "{} responses, {} errors; tether closed {idle_closed} idle upstream connections; \
         nginx logged {} upstream errors",
        tally.ok,
        tally.errors.len(),
        upstream_errors(&nginx).len()
    );
    assert!(tally.errors.is_empty(), "{:#?}", tally.errors);
    assert!(idle_closed > 0, "tether closed no idle connection");
}

/// The safe ordering: nginx's upstream keep-alive timeout (500 ms) shorter than tether's
/// idle timeout (1 s). nginx closes its idle connections itself, so it never sends a request
/// on a connection the server is closing.
#[test]
fn nginx_closes_first_when_its_keepalive_timeout_is_shorter() {
    let Some((tether, nginx, tally)) = idle_spells_behind_nginx("500ms") else {
        return;
    };
    let (idle_closed, peer_closed) = (
        closed_for(&tether, "idle_timeout"),
        closed_for(&tether, "peer_closed"),
    );
    println!(
        "{} responses, {} errors; tether closed {idle_closed} at its idle timeout, nginx \
         closed {peer_closed}",
        tally.ok,
        tally.errors.len()
    );
    assert!(tally.errors.is_empty(), "{:#?}", tally.errors);
    assert_eq!(idle_closed, 0, "tether closed an idle upstream connection");
    assert!(peer_closed > 0, "nginx closed no idle connection");
    let upstream_errors = upstream_errors(&nginx);
    assert!(upstream_errors.is_empty(), "{upstream_errors:#?}");
}

/// A restart behind nginx: a second instance binds the same port (SO_REUSEPORT), the first
/// gets SIGTERM and drains in two phases while the load goes on. nginx's pooled connections
/// to the first close after a response with `Connection: close`, or once idle for the
/// minimum idle age; new ones go to the second. No client sees an error.
#[test]
fn restart_behind_nginx_with_the_two_phase_drain() {
    let Some(bin) = Nginx::find() else { return };
    let flags = [
        "--workers",
        "2",
        "--drain-window",
        "2s",
        "--min-idle-age",
        "300ms",
    ];
    let mut old = CLI.serve(&flags);
    let nginx = proxy(&bin, old.addr, "60s");
    let load = Load::start(nginx.addr, CLIENTS);
    load.wait_more(500);
    let listen = old.addr.to_string();
    let new = CLI.serve(&[&flags[..], &["--listen", &listen]].concat());
    assert_eq!(new.addr, old.addr);
    // Fewer clients for a moment: most of nginx's connections to the old instance sit idle
    // in its pool when the drain starts, the others are busy.
    load.set_active(3);
    load.wait_more(300);
    old.signal(libc::SIGTERM);
    load.set_active(CLIENTS);
    let status = old.wait_exit(WAIT).expect("the old instance exits");
    assert!(status.success(), "{status:?}");
    // The new instance alone.
    let served_by_new = requests(&new);
    load.wait_more(500);
    let tally = load.finish();
    let stopped = old.log.wait_for(" stopped ", WAIT).expect("stopped line");
    println!(
        "{} responses, {} errors; nginx logged {} upstream errors; old instance: {}",
        tally.ok,
        tally.errors.len(),
        upstream_errors(&nginx).len(),
        stopped.split(" stopped ").nth(1).unwrap_or("")
    );
    assert!(tally.errors.is_empty(), "{:#?}", tally.errors);
    assert!(
        requests(&new) > served_by_new,
        "the new instance served nothing"
    );
    assert!(stopped.contains("connections_cut=0"), "{stopped}");
}

/// What the race between a server's idle close and a request costs behind nginx: a
/// stand-in upstream answers the first request on a connection and then closes that
/// connection as the next request arrives (as a server whose idle timeout expires at that
/// moment does). nginx retries the GET on a new connection, but a POST is not idempotent
/// and gets 502. Hence the ordering in the README: the server's idle timeout longer than the
/// proxy's, so that the proxy, the only side that sends requests, is the one that closes.
#[test]
fn a_close_that_crosses_a_request_costs_a_post_a_502() {
    let Some(bin) = Nginx::find() else { return };
    let upstream = Raw::start(|stream, _| serve_once_then_drop(stream));
    let nginx = proxy(&bin, upstream.addr, "60s");
    let mut c = Client::connect(nginx.addr);

    // Each request after the first on a pooled connection meets a close.
    let mut statuses = Vec::new();
    for (method, body) in [
        ("GET", None),
        ("GET", None),
        ("POST", Some(&b"payload"[..])),
        ("GET", None),
        ("POST", Some(&b"payload"[..])),
    ] {
        let r = c.exchange(method, "/", &[], body).unwrap();
        statuses.push((method, r.status));
        if r.closes() {
            c = Client::connect(nginx.addr);
        }
    }
    assert_eq!(
        statuses,
        [
            ("GET", 200),
            ("GET", 200),
            ("POST", 502),
            ("GET", 200),
            ("POST", 502)
        ],
        "access log: {:#?}",
        nginx.access_log()
    );
    // The retried GETs show in the access log as a failed attempt and a good one.
    let retried = nginx
        .access_log()
        .iter()
        .filter(|l| l.starts_with("200 502, 200"))
        .count();
    assert!(retried >= 1, "{:#?}", nginx.access_log());
}

/// Answers one request with a keep-alive response, then reads the next request and closes
/// without answering.
fn serve_once_then_drop(stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    for answered in [true, false] {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if answered {
            let _ = writer.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok",
            );
        }
    }
    // Dropping both halves closes the connection under the request just read.
}
