//! End-to-end tests of `tether load` against a real `tether serve`, both processes on
//! loopback. The server listens on `127.0.0.1:0`; its address is read from its startup line.

use std::process::{Output, Stdio};

use serde_json::Value;
use tether_test_support::process::{Cli, Tether};
use tether_test_support::temp::TempDir;
use tether_test_support::tls::TestCert;

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

/// `tether serve` with one worker.
fn serve() -> Tether {
    CLI.serve(&["--workers", "1"])
}

fn load(args: &[&str]) -> Output {
    CLI.command("load")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tether load")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Asserts that `v[key]` is an object with exactly-named numeric fields `fields`.
fn numbers(v: &Value, key: &str, fields: &[&str]) {
    let obj = v[key]
        .as_object()
        .unwrap_or_else(|| panic!("{key} missing: {v}"));
    for f in fields {
        assert!(obj.get(*f).is_some_and(Value::is_number), "{key}.{f}: {v}");
    }
}

#[test]
fn json_report_has_the_documented_fields() {
    let server = serve();
    let url = format!("http://{}/plaintext", server.addr);
    let out = load(&[&url, "-c", "4", "-n", "200", "--threads", "1", "--json"]);
    assert!(out.stderr.is_empty(), "no progress line off a terminal");
    let v = json(&out);
    for top in ["requests_per_sec", "bytes_per_sec"] {
        assert!(v[top].is_number(), "{top}: {v}");
    }
    numbers(&v, "requests", &["total", "ok", "failed"]);
    assert_eq!(v["requests"]["total"], 200);
    assert_eq!(v["requests"]["ok"], 200);
    let summary = ["min", "mean", "p50", "p90", "p99", "p999", "max"];
    numbers(&v, "latency_us", &summary);
    numbers(&v, "connect_us", &summary);
    numbers(
        &v,
        "errors",
        &[
            "connect_refused",
            "connect_timeout",
            "reset_before_response",
            "eof_mid_response",
            "protocol",
            "read_timeout",
            "pipeline_lost",
            "status_4xx",
            "status_5xx",
        ],
    );
    numbers(
        &v,
        "connections",
        &[
            "opened",
            "closed_by_server",
            "reset_by_server",
            "closed_by_client",
        ],
    );
    numbers(
        &v["connections"],
        "requests_per_connection",
        &["min", "mean", "max"],
    );
    assert_eq!(v["connections"]["opened"], 4);
    assert!(v.get("target_rate").is_none() && v.get("client_lag_us").is_none());

    let out = load(&[&url, "-c", "2", "-d", "300ms", "--rate", "500", "--json"]);
    let v = json(&out);
    assert_eq!(v["target_rate"], 500.0);
    numbers(&v, "client_lag_us", &summary);
}

#[test]
fn a_posted_body_over_http10_keep_alive() {
    let server = serve();
    let body = std::env::temp_dir().join(format!("tether-load-body-{}", std::process::id()));
    std::fs::write(&body, b"0123456789").expect("write body file");
    let url = format!("http://{}/echo", server.addr);
    let body_arg = body.to_string_lossy().into_owned();
    let out = load(&[
        &url,
        "-c",
        "2",
        "-n",
        "50",
        "-m",
        "POST",
        "--body",
        &body_arg,
        "-H",
        "Content-Type: text/plain",
        "--http1.0",
        "--json",
    ]);
    let _ = std::fs::remove_file(&body);
    let v = json(&out);
    assert_eq!(v["requests"]["ok"], 50, "{v}");
    assert_eq!(v["connections"]["opened"], 2, "HTTP/1.0 keep-alive: {v}");
    assert!(v["mode"].as_str().is_some_and(|m| m.contains("HTTP/1.0")));
}

#[test]
fn compare_prints_the_side_by_side_table() {
    let server = serve();
    let url = format!("http://{}/plaintext", server.addr);
    let out = load(&[&url, "-c", "4", "-n", "100", "--interval", "1", "--compare"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "keep-alive",
        "new connection",
        "success rate",
        "avg latency",
        "p99 latency",
        "throughput",
        "connections opened",
        "connect time",
        "ratio",
    ] {
        assert!(text.contains(row), "no {row:?} in\n{text}");
    }
    let opened = text
        .lines()
        .find(|l| l.contains("connections opened"))
        .expect("row");
    let cells: Vec<&str> = opened.split_whitespace().collect();
    assert_eq!(&cells[2..5], ["4", "100", "25.00x"], "{opened}");

    let out = load(&[&url, "-c", "2", "-n", "20", "--compare", "--json"]);
    let v = json(&out);
    assert_eq!(v["keep_alive"]["connections"]["opened"], 2);
    assert_eq!(v["new_connection"]["connections"]["opened"], 20);
}

#[test]
fn text_report_and_errors_without_a_server() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    // Nothing listens there any more: every request is refused, and the run still ends.
    let out = load(&[&format!("http://{addr}/"), "-c", "2", "-n", "10"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("connect refused 10"), "{text}");
    assert!(text.contains("0 opened"), "{text}");
}

#[test]
fn invalid_flags_are_refused() {
    for args in [
        &["http://127.0.0.1:9/", "--rate", "10", "--interval", "5"][..],
        &["http://127.0.0.1:9/", "--pipeline", "2", "--no-keepalive"],
        &["https://127.0.0.1:9/"],
        &["http://127.0.0.1:9/", "-H", "no colon"],
        &["http://127.0.0.1:9/", "--success", "2xx"],
        &["http://127.0.0.1:9/", "-c", "0"],
    ] {
        let out = load(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn https_with_its_handshakes_in_the_report() {
    let dir = TempDir::new("tether-load-https");
    let (cert, key) = TestCert::localhost().write_pem(dir.path());
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let server = CLI.serve(&["--workers", "1", "--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("https://{}/plaintext", server.addr);

    let v = json(&load(&[
        &url, "-c", "2", "-n", "40", "--cacert", &cert, "--json",
    ]));
    assert_eq!(v["requests"]["ok"], 40, "{v}");
    assert_eq!(v["tls"]["handshakes_full"], 2, "{v}");
    assert_eq!(v["tls"]["handshakes_resumed"], 0, "{v}");
    assert_eq!(v["errors"]["tls_handshake"], 0, "{v}");

    // A new connection per request: sessions resume, or with --tls-resume off never do.
    let per_request = [&url[..], "-c", "2", "-n", "40", "--no-keepalive", "--json"];
    let v = json(&load(&[&per_request[..], &["--cacert", &cert]].concat()));
    let (full, resumed) = (
        &v["tls"]["handshakes_full"],
        &v["tls"]["handshakes_resumed"],
    );
    assert!(resumed.as_u64().is_some_and(|n| n > 0), "{v}");
    assert_eq!(
        full.as_u64().zip(resumed.as_u64()).map(|(f, r)| f + r),
        Some(40)
    );
    let v = json(&load(
        &[&per_request[..], &["--insecure", "--tls-resume", "off"]].concat(),
    ));
    assert_eq!(v["tls"]["handshakes_full"], 40, "{v}");
    assert_eq!(v["tls"]["resumption"], false, "{v}");

    // A certificate the server does not have: every request fails, and the run says why.
    let other = dir.write("other.pem", TestCert::localhost().cert_pem);
    let out = load(&[
        &url,
        "-c",
        "2",
        "-n",
        "10",
        "--cacert",
        &other.to_string_lossy(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLS handshake failed 10"), "{text}");
    assert!(text.contains("warning: 10 TLS handshakes failed"), "{text}");

    let out = load(&[&url, "-c", "2", "-n", "20", "--insecure", "--compare"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for column in [
        "keep-alive",
        "new, resumption",
        "new, no resumption",
        "vs resumed",
        "vs full",
    ] {
        assert!(text.contains(column), "no {column:?} in\n{text}");
    }

    // No trust chosen: refused before running, naming both ways.
    let out = load(&[&url, "-n", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cacert") && err.contains("--insecure"),
        "{err}"
    );
}
