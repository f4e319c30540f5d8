//! Connection lifecycle of the `tether serve` process: metrics in Prometheus text and JSON,
//! the probes through a drain, signals, the descriptor limit (raised at startup; accepting
//! that pauses without spinning when descriptors run out) and the connection limits.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tether_test_support::client::{assert_turns_to, Client};
use tether_test_support::process::{Cli, Tether, PROCESS_WAIT as WAIT};
use tether_test_support::wait::eventually_within;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

const MS: Duration = Duration::from_millis(1);

/// The value of the Prometheus sample `name` (with its labels, as written).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// An idle connection parks after --park-after, the metrics count it in both forms, and it
/// serves its next request.
#[test]
fn idle_connections_park_and_the_metrics_count_them() {
    let tether = CLI.serve(&["--workers", "1", "--park-after", "100ms"]);
    let mut idle = tether.connect();
    assert_eq!(idle.get("/plaintext").status, 200);
    let metrics = |path: &str| {
        let r = tether
            .connect()
            .exchange("GET", path, &["Connection: close"], None)
            .unwrap();
        String::from_utf8(r.body).unwrap()
    };
    let parked = || sample(&metrics("/metrics"), "tether_connections_parked");
    eventually_within(WAIT, "the idle connection to park", || {
        parked() == Some(1.0)
    });
    let v: serde_json::Value =
        serde_json::from_str(&metrics("/metrics?format=json")).expect("JSON");
    assert_eq!(
        (v["parked"].as_u64(), v["states"]["idle"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(idle.get("/plaintext").status, 200);
    assert_eq!(parked(), Some(0.0));
}

#[test]
fn metrics_in_prometheus_text_and_json() {
    let tether = CLI.serve(&["--workers", "2"]);
    // Three requests, then idle.
    let mut idle = tether.connect();
    for _ in 0..3 {
        assert_eq!(idle.get("/plaintext").status, 200);
    }
    // Two requests, the second with Connection: close.
    let mut twice = tether.connect();
    assert_eq!(twice.get("/json").status, 200);
    let r = twice
        .exchange("GET", "/json", &["Connection: close"], None)
        .unwrap();
    assert!(r.closes());
    twice.expect_closed();

    let mut m = tether.connect();
    // The connection asking is active; the request asking is not yet counted. A worker
    // marks a connection idle just after writing its response, so the client can be a
    // moment ahead of the gauges: read again until they settle (2 s at most).
    let expected = [
        ("tether_connections_accepted_total", 3.0),
        ("tether_connections_refused_total", 0.0),
        ("tether_requests_total", 5.0),
        ("tether_connections{state=\"new\"}", 0.0),
        ("tether_connections{state=\"active\"}", 1.0),
        ("tether_connections{state=\"idle\"}", 1.0),
        ("tether_connections{state=\"closing\"}", 0.0),
        (
            "tether_connections_closed_total{reason=\"client_close\"}",
            1.0,
        ),
        (
            "tether_connections_closed_total{reason=\"peer_closed\"}",
            0.0,
        ),
        ("tether_requests_per_connection_bucket{le=\"1\"}", 0.0),
        ("tether_requests_per_connection_bucket{le=\"2\"}", 1.0),
        ("tether_requests_per_connection_bucket{le=\"+Inf\"}", 1.0),
        ("tether_requests_per_connection_sum", 2.0),
        ("tether_requests_per_connection_count", 1.0),
    ];
    // Each earlier read of /metrics is one more request answered.
    let want = |name: &str, value: f64, reads: u32| {
        if name == "tether_requests_total" {
            value + f64::from(reads - 1)
        } else {
            value
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let (mut r, mut reads) = (m.get("/metrics"), 1u32);
    while expected
        .iter()
        .any(|&(name, value)| sample(r.text(), name) != Some(want(name, value, reads)))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        r = m.get("/metrics");
        reads += 1;
    }
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    for (name, value) in expected {
        let value = want(name, value, reads);
        assert_eq!(sample(text, name), Some(value), "{name} in\n{text}");
    }

    // JSON, asked for by the query and by Accept, on the same connection.
    let by_query = m.get("/metrics?format=json");
    let by_accept = m
        .exchange(
            "GET",
            "/metrics",
            &["Accept: text/html, application/json;q=0.9"],
            None,
        )
        .unwrap();
    for (r, requests) in [(by_query, 5 + reads), (by_accept, 6 + reads)] {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(v["accepted"], 3);
        assert_eq!(v["refused"], 0);
        assert_eq!(v["requests"], requests);
        assert_eq!(v["open"], 2);
        assert_eq!(v["closed"], 1);
        assert_eq!(v["draining"], false);
        assert_eq!(
            v["states"],
            serde_json::json!({"new": 0, "active": 1, "idle": 1, "closing": 0})
        );
        assert_eq!(v["closed_by"]["client_close"], 1);
        assert_eq!(v["closed_by"]["evicted"], 0);
        let h = &v["requests_per_connection"];
        assert_eq!(h["buckets"][2], serde_json::json!({"le": 2, "count": 1}));
        assert_eq!((h["sum"].as_u64(), h["count"].as_u64()), (Some(2), Some(1)));
    }
    // Prometheus text wins when asked for by name, whatever Accept says.
    let r = m
        .exchange(
            "GET",
            "/metrics?format=prometheus",
            &["Accept: application/json"],
            None,
        )
        .unwrap();
    assert!(r.text().starts_with("# HELP"));
    assert_eq!(
        m.exchange("HEAD", "/metrics", &[], None).unwrap().status,
        200
    );
    let r = m.exchange("POST", "/metrics", &[], Some(b"x")).unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

/// Each metric family is one group: its HELP and TYPE lines, then its samples.
#[test]
fn prometheus_families_are_grouped() {
    let tether = CLI.serve(&[]);
    let text = tether.connect().get("/metrics").text().to_owned();
    let mut family = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap();
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| *b == family))
                .unwrap_or(name);
            assert_eq!(
                base, family,
                "sample {line:?} outside its family in\n{text}"
            );
        }
    }
}

#[test]
fn probes_and_paths() {
    let tether = CLI.serve(&[
        "--metrics-path",
        "/_m",
        "--ready-path",
        "/_ready",
        "--live-path",
        "/_live",
    ]);
    let mut c = tether.connect();
    assert_eq!(c.get("/_ready").text(), "ready\n");
    assert_eq!(c.get("/_live").text(), "ok\n");
    assert!(c.get("/_m").text().contains("tether_requests_total 2"));
    // The defaults are free again: they belong to nobody.
    for path in ["/metrics", "/readyz", "/healthz"] {
        assert_eq!(c.get(path).status, 404, "{path}");
    }
    let index = c.get("/");
    for path in ["/_m", "/_ready", "/_live"] {
        assert!(index.text().contains(path), "{}", index.text());
    }
}

#[test]
fn sigterm_drains_readiness_turns_503_and_the_report_is_logged() {
    let mut tether = CLI.serve(&[
        "--workers",
        "1",
        "--drain-window",
        "3s",
        "--min-idle-age",
        "2s",
    ]);
    let mut probe = tether.connect();
    let mut live = tether.connect();
    assert_eq!(probe.get("/readyz").status, 200);
    assert_eq!(live.get("/healthz").status, 200);
    tether.signal(libc::SIGTERM);
    tether
        .log
        .wait_for("SIGTERM received; draining", WAIT)
        .expect("the signal is logged");
    // The probe keeps asking until the server closes its connection.
    assert_turns_to(&probe.get_until_close("/readyz", WAIT), 503);
    probe.expect_closed();
    drop(probe);
    // Liveness still answers during the drain (and closes, as every response now does).
    let r = live.get("/healthz");
    assert_eq!(r.status, 200);
    assert!(r.closes());
    live.expect_closed();
    drop(live);
    let status = tether.wait_exit(WAIT).expect("exit after the drain");
    assert!(status.success(), "{status:?}");
    let stopped = tether
        .log
        .wait_for(" stopped ", WAIT)
        .expect("stopped line");
    for field in [
        "open_at_shutdown=2",
        "connections_closed=2",
        "connections_cut=0",
        "requests_cut=0",
    ] {
        assert!(stopped.contains(field), "{field} not in {stopped}");
    }
}

/// Starts a request that stays in the handler: a body that never arrives.
fn stalled_request(tether: &Tether) -> Client {
    let mut c = tether.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc");
    c
}

#[test]
fn the_hard_deadline_cuts_a_request_that_never_finishes() {
    let mut tether = CLI.serve(&[
        "--workers",
        "1",
        "--drain-window",
        "200ms",
        "--shutdown-timeout",
        "600ms",
    ]);
    let mut stuck = stalled_request(&tether);
    let mut m = tether.connect();
    eventually_within(WAIT, "the stalled request to be read", || {
        let v: serde_json::Value =
            serde_json::from_slice(&m.get("/metrics?format=json").body).unwrap();
        v["states"]["active"] == 2 // the stalled request and this one
    });
    // Closed before the drain starts: the server closes before the client sees the end.
    let r = m
        .exchange("GET", "/healthz", &["Connection: close"], None)
        .unwrap();
    assert!(r.closes());
    m.expect_closed();
    let t0 = Instant::now();
    tether.signal(libc::SIGTERM);
    let status = tether.wait_exit(WAIT).expect("exit at the deadline");
    let took = t0.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= 500 * MS && took < Duration::from_secs(3),
        "exit after {took:?}"
    );
    assert!(
        stuck.read_reply(false).is_err(),
        "the cut request was answered"
    );
    let stopped = tether
        .log
        .wait_for(" stopped ", WAIT)
        .expect("stopped line");
    for field in ["open_at_shutdown=1", "connections_cut=1", "requests_cut=1"] {
        assert!(stopped.contains(field), "{field} not in {stopped}");
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut tether = CLI.serve(&["--drain-window", "20s", "--shutdown-timeout", "30s"]);
    let _stuck = stalled_request(&tether);
    let mut m = tether.connect();
    eventually_within(WAIT, "the stalled request to be read", || {
        m.get("/metrics")
            .text()
            .contains("tether_connections{state=\"active\"} 2")
    });
    drop(m);
    tether.signal(libc::SIGTERM);
    tether
        .log
        .wait_for("SIGTERM received; draining", WAIT)
        .expect("the first signal is logged");
    // Still draining: the stalled request holds the process.
    assert!(
        tether.wait_exit(200 * MS).is_none(),
        "exited on the first signal"
    );
    let t0 = Instant::now();
    tether.signal(libc::SIGINT);
    let status = tether.wait_exit(WAIT).expect("exit on the second signal");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(
        tether
            .log
            .wait_for("SIGINT received during the drain; exiting at once", WAIT)
            .is_some(),
        "{}",
        tether.log.text()
    );
}

fn nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    (lim.rlim_cur, lim.rlim_max)
}

/// The soft and hard "Max open files" of a process.
fn limits_of(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut f = line["Max open files".len()..].split_whitespace();
    (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
    let (_, hard) = nofile();
    if hard <= 256 {
        println!("note: hard descriptor limit {hard}; nothing to raise");
        return;
    }
    let tether = CLI.serve_after("ulimit -S -n 256", &["--workers", "1"]);
    let (soft, hard_now) = limits_of(tether.pid());
    assert_eq!(soft, hard_now, "soft limit not raised");
    assert!(
        tether
            .log
            .wait_for(&format!("raised from 256 to {soft}"), WAIT)
            .is_some(),
        "{}",
        tether.log.text()
    );
}

/// One client thread per connection: connects, sends a request, reports when the answer
/// came, then holds the connection until told to close it.
struct Held {
    close: Vec<mpsc::Sender<()>>,
    served: mpsc::Receiver<(usize, u16)>,
}

fn hold_connections(tether: &Tether, n: usize) -> Held {
    let (served_tx, served) = mpsc::channel();
    let close = (0..n)
        .map(|i| {
            let (tx, rx) = mpsc::channel::<()>();
            let mut c = tether.connect();
            let served = served_tx.clone();
            thread::spawn(move || {
                c.set_read_timeout(Duration::from_secs(20));
                let status = match c.exchange("GET", "/plaintext", &[], None) {
                    Ok(r) => r.status,
                    Err(_) => 0,
                };
                let _ = served.send((i, status));
                let _ = rx.recv();
            });
            tx
        })
        .collect();
    Held { close, served }
}

impl Held {
    /// Waits for `n` more answers; returns the connections answered, with the status.
    fn answers(&self, n: usize) -> Vec<(usize, u16)> {
        (0..n)
            .map(|k| {
                self.served
                    .recv_timeout(WAIT)
                    .unwrap_or_else(|_| panic!("only {k} of {n} answers"))
            })
            .collect()
    }
}

#[test]
fn out_of_descriptors_accepting_pauses_without_spinning_and_resumes() {
    const LIMIT: usize = 64;
    const CLIENTS: usize = 100;
    let tether = CLI.serve_after(
        &format!("ulimit -n {LIMIT}"),
        &["--workers", "1", "--max-connections", "1000"],
    );
    // Once the server has answered (its workers are up), every descriptor number below the
    // limit not yet open can hold one connection. (Descriptors inherited with higher numbers
    // do not count against the limit.)
    let mut warm = tether.connect();
    assert_eq!(warm.get("/plaintext").status, 200);
    let room = LIMIT - tether.fds_below(LIMIT);
    let held = hold_connections(&tether, CLIENTS);
    let first = held.answers(room);
    assert!(first.iter().all(|&(_, s)| s == 200), "{first:?}");

    // The rest wait in the accept queue; the server must not spin on EMFILE meanwhile.
    let cpu0 = tether.cpu_time();
    let warned0 = tether.log.count("accept failed");
    thread::sleep(Duration::from_secs(1));
    let cpu = tether.cpu_time() - cpu0;
    let warnings = tether.log.count("accept failed") - warned0;
    assert!(cpu < 300 * MS, "{cpu:?} of CPU in 1 s out of descriptors");
    assert!(warnings <= 40, "{warnings} warnings in 1 s");
    let extra: Vec<_> = held.served.try_iter().collect();
    assert!(
        extra.is_empty(),
        "served beyond the descriptor limit ({room} places): {extra:?}"
    );
    println!("out of descriptors: {cpu:?} CPU and {warnings} warnings in 1 s");

    // Closing some lets as many waiting ones in.
    drop(warm);
    for &(i, _) in &first[..19] {
        held.close[i].send(()).unwrap();
    }
    let second = held.answers(20);
    assert!(second.iter().all(|&(_, s)| s == 200), "{second:?}");
    // Closing the rest lets every other one in.
    for &(i, _) in first[19..].iter().chain(&second) {
        held.close[i].send(()).unwrap();
    }
    let rest = held.answers(CLIENTS - room - 20);
    assert!(rest.iter().all(|&(_, s)| s == 200), "{rest:?}");
}

#[test]
fn the_default_limit_leaves_descriptors_to_refuse_with_503() {
    const LIMIT: u64 = 64;
    const CLIENTS: usize = 40;
    // The default limit: nine tenths of the descriptors, less 32, and at least 16.
    let max = ((LIMIT / 10 * 9).saturating_sub(32)).max(16) as usize;
    let tether = CLI.serve_after(&format!("ulimit -n {LIMIT}"), &["--workers", "1"]);
    let held = hold_connections(&tether, CLIENTS);
    let answers = held.answers(CLIENTS);
    let ok = answers.iter().filter(|&&(_, s)| s == 200).count();
    let refused = answers.iter().filter(|&&(_, s)| s == 503).count();
    assert_eq!((ok, refused), (max, CLIENTS - max), "{answers:?}");
    assert_eq!(
        tether.log.count("accept failed"),
        0,
        "{}",
        tether.log.text()
    );
}

#[test]
fn connection_limit_flags_reach_the_engine() {
    let tether = CLI.serve(&["--workers", "1", "--max-connections-per-ip", "1"]);
    let mut first = tether.connect();
    assert_eq!(first.get("/plaintext").status, 200);
    let mut second = tether.connect();
    let r = second.get("/plaintext");
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    assert!(r.closes());
    second.expect_closed();

    let tether = CLI.serve(&[
        "--workers",
        "1",
        "--max-connections",
        "1",
        "--min-idle-age",
        "1m",
    ]);
    let mut first = tether.connect();
    assert_eq!(first.get("/plaintext").status, 200);
    let r = tether.connect().get("/plaintext");
    assert_eq!(r.status, 503);
    assert_eq!(first.get("/plaintext").status, 200);
}
