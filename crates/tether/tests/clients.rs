//! Connection reuse with real clients: curl, Python's `http.client` and `urllib3`, ApacheBench
//! and wrk, each against an in-process server with one worker. The server's own counters
//! (`stats().accepted`) prove that many requests went over few connections.
//!
//! A missing tool fails its test with the package to install, unless `TETHER_SKIP_EXTERNAL=1`
//! is set, in which case the test prints a note and passes. Every subprocess runs under
//! coreutils' `timeout`, so no test can hang.

use std::process::{Command, Output};
use tether::Running;
use tether_test_support::external::{on_path, require};
use tether_test_support::handler::PLAINTEXT;
use tether_test_support::server::{self, unlimited};

/// Longest any one tool may run, in seconds.
const TOOL_TIMEOUT: &str = "60";

/// A server with one worker and no request limit, answering `/plaintext` with
/// [`PLAINTEXT`].
fn start() -> Running {
    server::start(unlimited())
}

fn require_tool(tool: &str, install: &str) -> bool {
    require(&format!("`{tool}`"), on_path(tool), install)
        && require(
            "`timeout` (coreutils)",
            on_path("timeout"),
            "apt-get install coreutils",
        )
}

/// Runs `program args` bounded by `timeout`, returning its output; fails the test when it
/// timed out or exited unsuccessfully.
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .args(["--kill-after=5", TOOL_TIMEOUT, program])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"));
    let code = out.status.code();
    assert!(
        code != Some(124) && code != Some(137),
        "{program} timed out after {TOOL_TIMEOUT} s\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn python_has(module: &str) -> bool {
    Command::new("timeout")
        .args(["30", "python3", "-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The number after `label` on the line that starts with it (leading spaces ignored).
fn field(text: &str, label: &str) -> Option<u64> {
    text.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[test]
fn curl_reuses_one_connection_for_many_urls() {
    if !require_tool("curl", "apt-get install curl") {
        return;
    }
    let server = start();
    let url = format!("http://{}/plaintext", server.local_addr());
    const N: usize = 20;
    // After each transfer: a marker line with the status and the connections it opened.
    let mut args = vec![
        "--silent".to_string(),
        "--show-error".to_string(),
        "--max-time".to_string(),
        "30".to_string(),
        "--write-out".to_string(),
        "\n@@ %{http_code} %{num_connects}\n".to_string(),
    ];
    args.extend(std::iter::repeat_n(url, N));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("curl", &args);
    let stdout = String::from_utf8(out.stdout).expect("utf-8 from curl");

    let mut bodies = 0;
    let mut connects = 0;
    let mut rest = stdout.as_str();
    while let Some(at) = rest.find("\n@@ ") {
        let body = &rest[..at];
        let line_end = rest[at + 1..].find('\n').map_or(rest.len(), |e| at + 1 + e);
        let marker: Vec<&str> = rest[at + 4..line_end].split_whitespace().collect();
        assert_eq!(body.as_bytes(), PLAINTEXT, "transfer {bodies}: wrong body");
        assert_eq!(
            marker.first(),
            Some(&"200"),
            "transfer {bodies}: {marker:?}"
        );
        connects += marker
            .get(1)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(99);
        bodies += 1;
        rest = rest.get(line_end + 1..).unwrap_or("");
    }
    assert_eq!(bodies, N, "curl output:\n{stdout}");
    assert_eq!(rest, "", "trailing curl output");
    assert_eq!(connects, 1, "curl reports {connects} connects");

    let stats = server.shutdown().expect("shutdown").stats;
    println!("server: {stats:?}");
    assert_eq!(stats.accepted, 1, "{stats:?}");
    assert_eq!(stats.requests, N as u64, "{stats:?}");
}

#[test]
fn python_http_client_200_requests_on_one_connection() {
    if !require_tool("python3", "apt-get install python3") {
        return;
    }
    let server = start();
    let port = server.local_addr().port().to_string();
    let script = r#"
import http.client, sys
port = int(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for i in range(200):
    conn.request("GET", "/plaintext")
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (i, r.status)
    assert body == b"Hello, World!", (i, body)
    assert r.getheader("Connection") is None, (i, r.getheader("Connection"))
    assert not r.will_close, i
conn.close()
print("ok", 200)
"#;
    let out = run("python3", &["-c", script, &port]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 200");

    let stats = server.shutdown().expect("shutdown").stats;
    println!("server: {stats:?}");
    assert_eq!(stats.accepted, 1, "{stats:?}");
    assert_eq!(stats.requests, 200, "{stats:?}");
}

#[test]
fn python_urllib3_pool_500_requests_from_4_threads() {
    if !require_tool("python3", "apt-get install python3")
        || !require(
            "Python module `urllib3`",
            python_has("urllib3"),
            "apt-get install python3-urllib3, or pip install urllib3",
        )
    {
        return;
    }
    let server = start();
    let url = format!("http://{}/plaintext", server.local_addr());
    let script = r#"
import sys, threading, urllib3
url = sys.argv[1]
# No retries: a connection the server dropped must show, not be papered over.
pool = urllib3.PoolManager(maxsize=4, block=True, retries=False, timeout=10.0)
errors = []
done = [0] * 4
def worker(k):
    try:
        for i in range(125):
            r = pool.request("GET", url)
            assert r.status == 200, (k, i, r.status)
            assert r.data == b"Hello, World!", (k, i, r.data)
            done[k] += 1
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit("errors: " + "; ".join(errors))
print("ok", sum(done))
"#;
    let out = run("python3", &["-c", script, &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 500");

    let stats = server.shutdown().expect("shutdown").stats;
    println!("server: {stats:?}");
    assert!(
        (1..=4).contains(&stats.accepted),
        "500 requests over {} connections: {stats:?}",
        stats.accepted
    );
    assert_eq!(stats.requests, 500, "{stats:?}");
}

#[test]
fn ab_keep_alive_5000_requests_10_concurrent() {
    if !require_tool("ab", "apt-get install apache2-utils") {
        return;
    }
    let server = start();
    let url = format!("http://{}/plaintext", server.local_addr());
    let out = run(
        "ab",
        &["-q", "-k", "-s", "10", "-n", "5000", "-c", "10", &url],
    );
    let text = String::from_utf8_lossy(&out.stdout);

    assert_eq!(
        field(&text, "Complete requests:"),
        Some(5000),
        "ab output:\n{text}"
    );
    assert_eq!(
        field(&text, "Failed requests:"),
        Some(0),
        "ab output:\n{text}"
    );
    assert_eq!(
        field(&text, "Keep-Alive requests:"),
        Some(5000),
        "ab output:\n{text}"
    );
    assert_eq!(
        field(&text, "Document Length:"),
        Some(PLAINTEXT.len() as u64),
        "ab output:\n{text}"
    );
    assert_eq!(
        field(&text, "Non-2xx responses:"),
        None,
        "ab output:\n{text}"
    );

    let stats = server.shutdown().expect("shutdown").stats;
    println!("server: {stats:?}");
    // ab opens one connection per concurrent slot; allow a little slack for its reconnects.
    assert!(
        (1..=12).contains(&stats.accepted),
        "5000 requests over {} connections: {stats:?}\n{text}",
        stats.accepted
    );
    assert_eq!(stats.requests, 5000, "{stats:?}");
}

#[test]
fn wrk_10_connections_for_one_second() {
    if !require_tool("wrk", "apt-get install wrk") {
        return;
    }
    let server = start();
    let url = format!("http://{}/plaintext", server.local_addr());
    // wrk's default `wrk.resolve` opens and closes a probe connection to the address before
    // the run (`wrk.connect` in its wrk.lua); without this override the server would count
    // that 11th, request-less connection too.
    let script = std::env::temp_dir().join(format!(
        "tether-wrk-noprobe-{}-{}.lua",
        std::process::id(),
        server.local_addr().port()
    ));
    std::fs::write(
        &script,
        "function wrk.resolve(host, service)\n  wrk.addrs = wrk.lookup(host, service)\nend\n",
    )
    .expect("write wrk script");
    let script_arg = script.to_str().expect("utf-8 temp path").to_string();
    let out = run(
        "wrk",
        &[
            "-t1",
            "-c10",
            "-d1s",
            "--timeout",
            "5s",
            "-s",
            &script_arg,
            &url,
        ],
    );
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);

    let reported = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no request count in wrk output:\n{text}"));
    assert!(
        !text.contains("Non-2xx or 3xx responses"),
        "wrk output:\n{text}"
    );
    assert!(!text.contains("Socket errors"), "wrk output:\n{text}");

    let stats = server.shutdown().expect("shutdown").stats;
    println!("server: {stats:?}");
    assert_eq!(stats.accepted, 10, "{stats:?}\n{text}");
    // wrk may stop with requests in flight: the server can have answered a few more.
    assert!(
        stats.requests >= reported && stats.requests <= reported + 10,
        "server answered {} requests, wrk counted {reported}",
        stats.requests
    );
    assert!(
        stats.requests >= 2000,
        "only {} requests in one second over 10 connections",
        stats.requests
    );
}
