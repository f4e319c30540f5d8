//! https: a tether server with TLS in the same process, on loopback, under the load
//! generator's TLS client: handshakes counted as full or resumed, the trust settings, the
//! failures a handshake can end in, the JSON and `--compare` over TLS.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tether::{Running, Server};
use tether_load::{Config, ConnMode, Report, StatusSet, Target, TlsTrust};
use tether_test_support::raw::{drain, Raw};
use tether_test_support::temp::TempDir;
use tether_test_support::tls::TestCert;

/// A tether server (one worker, no limit on a connection's requests) serving TLS with `cert`.
fn tls_server(cert: &TestCert) -> Running {
    let builder = Server::builder()
        .workers(1)
        .max_requests(0)
        .limit_jitter(0.0)
        .shutdown_timeout(Duration::from_secs(2))
        .tls(cert.server_config());
    tether_test_support::server::start(builder)
}

/// A blocking rustls server, one thread per connection, whose sockets take 4 KiB at a
/// time: it reads each request and its body whole, and answers `200` with the body's
/// length when the body is all `x`, `400` otherwise.
fn body_counting_server(cert: &TestCert) -> Raw {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    // Set before listen, so that every accepted socket inherits it: a client's large
    // write cannot go out at once and has to wait for the socket.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    socket.listen(16).expect("listen");
    let config = cert.server_config();
    Raw::with_listener(TcpListener::from(socket), move |stream, _| {
        let tls = rustls::ServerConnection::new(Arc::clone(&config)).expect("a connection");
        let mut r = BufReader::new(rustls::StreamOwned::new(tls, stream));
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if !matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().expect("a length");
                }
            }
            let mut body = vec![0u8; length];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            let count = length.to_string();
            let status = if body.iter().all(|&b| b == b'x') {
                200
            } else {
                400
            };
            let answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{count}",
                count.len()
            );
            let w = r.get_mut();
            if w.write_all(answer.as_bytes())
                .and_then(|()| w.flush())
                .is_err()
            {
                return;
            }
        }
    })
}

/// The trust of a CA file holding `cert`, read as `--cacert` reads it.
fn ca_file(cert: &TestCert) -> TlsTrust {
    let dir = TempDir::new("tether-load-tls");
    let path = dir.write("ca.pem", &cert.cert_pem);
    TlsTrust::ca_file(&path).expect("a CA file")
}

/// `requests` requests to `https://addr/path` over 4 connections, one thread; the 10 s
/// duration is only a backstop.
fn https(addr: SocketAddr, path: &str, trust: TlsTrust, requests: u64) -> Config {
    let mut c = config(addr, path);
    c.target = Target::parse(&format!("https://{addr}{path}")).expect("target");
    c.tls_trust = trust;
    c.bounds.requests = Some(requests);
    c.bounds.duration = Duration::from_secs(10);
    c
}

/// The handshake figures of an https report.
fn handshakes(r: &Report) -> tether_load::Handshakes {
    r.tls.expect("an https report has handshake figures")
}

#[test]
fn keep_alive_over_https_makes_one_full_handshake_per_connection() {
    let cert = TestCert::localhost();
    let server = tls_server(&cert);
    let c = https(server.local_addr(), "/plaintext", ca_file(&cert), 200);
    let r = run_accounted(&c);
    assert_eq!(
        (r.requests.total, r.requests.ok),
        (200, 200),
        "{:?}",
        r.errors
    );
    assert_eq!(r.status_codes.get(&200), Some(&200));
    assert_eq!(r.connections.opened, 4);
    assert_eq!(r.connections.requests_per_connection.min, 50);
    let h = handshakes(&r);
    assert_eq!((h.handshakes_full, h.handshakes_resumed), (4, 0), "{h:?}");
    assert_eq!(h.handshakes_failed, 0);
    assert_eq!(h.handshake_full_us.count, 4);
    assert!(
        h.handshake_full_us.min > 0.0 && h.handshake_full_us.max < 2e6,
        "{h:?}"
    );
    assert_eq!(r.errors.tls_handshake, Some(0));
    assert!(r.url.starts_with("https://"), "{}", r.url);
    let text = r.to_string();
    assert!(
        text.contains("full hs") && !text.contains("resumed hs"),
        "{text}"
    );
    assert!(
        text.contains("tls: 4 full handshakes (hs), 0 resumed, 0 failed; resumption on"),
        "{text}"
    );
    server.shutdown().expect("shutdown");
}

#[test]
fn pipelining_and_large_bodies_over_https() {
    let cert = TestCert::localhost();
    let server = tls_server(&cert);
    let mut c = https(server.local_addr(), "/plaintext", TlsTrust::Insecure, 400);
    c.connections = 2;
    c.pipeline = 8;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 400, "{:?}", r.errors);
    assert_eq!(r.latency_us.count, 400);
    assert_eq!(r.connections.opened, 2);

    server.shutdown().expect("shutdown");

    // Bodies far larger than rustls's buffer (64 KiB) and than the sockets hold (the
    // client's send buffer grows to 4 MiB by default, the server's takes 4 KiB at a time):
    // the writes wait on the socket, and every record goes out before the response is
    // awaited.
    let counting = body_counting_server(&cert);
    let mut c = https(counting.addr, "/", TlsTrust::Insecure, 4);
    c.connections = 2;
    c.method = "POST".into();
    c.body = vec![b'x'; 6 << 20];
    c.success = StatusSet::parse("200").expect("codes");
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 4, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 2);
}

#[test]
fn new_connections_resume_sessions_when_resumption_is_on() {
    let cert = TestCert::localhost();
    let server = tls_server(&cert);
    let mut c = https(server.local_addr(), "/plaintext", ca_file(&cert), 100);
    c.connections = 2;
    c.mode = ConnMode::PerRequest;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 100, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 100);
    let h = handshakes(&r);
    assert!(h.resumption);
    // Each slot's first connection has no session to resume; later ones resume the
    // session a finished connection left in the shared store.
    assert!(h.handshakes_full >= 1 && h.handshakes_full <= 2, "{h:?}");
    assert_eq!(h.handshakes_full + h.handshakes_resumed, 100, "{h:?}");
    assert_eq!(h.handshake_resumed_us.count, h.handshakes_resumed);
    assert!(r.to_string().contains("resumed hs"));
    server.shutdown().expect("shutdown");
}

#[test]
fn without_resumption_every_handshake_is_full() {
    let cert = TestCert::localhost();
    let server = tls_server(&cert);
    let mut c = https(server.local_addr(), "/plaintext", ca_file(&cert), 60);
    c.connections = 2;
    c.mode = ConnMode::PerRequest;
    c.tls_resume = false;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 60, "{:?}", r.errors);
    let h = handshakes(&r);
    assert!(!h.resumption);
    assert_eq!((h.handshakes_full, h.handshakes_resumed), (60, 0), "{h:?}");
    assert!(r.to_string().contains("resumption off"));
    server.shutdown().expect("shutdown");
}

#[test]
fn the_cacert_decides_which_certificates_are_trusted() {
    let cert = TestCert::localhost();
    let server = tls_server(&cert);
    let addr = server.local_addr();

    let r = run_accounted(&https(addr, "/plaintext", ca_file(&cert), 20));
    assert_eq!(r.requests.ok, 20, "{:?}", r.errors);

    // Another certificate as the CA: every handshake fails, and each request with it.
    let other = TestCert::localhost();
    let r = run_accounted(&https(addr, "/plaintext", ca_file(&other), 20));
    assert_eq!(r.requests.ok, 0);
    assert_eq!(r.errors.tls_handshake, Some(20), "{:?}", r.errors);
    assert_eq!(r.requests.failed, 20);
    let h = handshakes(&r);
    assert_eq!(h.handshakes_failed, 20, "{h:?}");
    assert_eq!(h.handshakes_full + h.handshakes_resumed, 0);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("20 TLS handshakes failed") && w.contains("certificate")),
        "{:?}",
        r.warnings
    );
    assert!(r.to_string().contains("TLS handshake failed 20"));

    // The right CA, but the certificate names another host.
    let misnamed = TestCert::for_names(&["example.com"]);
    let server2 = tls_server(&misnamed);
    let r = run_accounted(&https(
        server2.local_addr(),
        "/plaintext",
        ca_file(&misnamed),
        10,
    ));
    assert_eq!(r.errors.tls_handshake, Some(10), "{:?}", r.errors);
    assert!(
        r.warnings.iter().any(|w| w.contains("not valid for name")),
        "{:?}",
        r.warnings
    );

    // The right CA and name, but out of date.
    let expired = TestCert::expired();
    let server3 = tls_server(&expired);
    let mut c = https(server3.local_addr(), "/plaintext", ca_file(&expired), 10);
    c.target.server_name = "localhost".into();
    let r = run_accounted(&c);
    assert_eq!(r.errors.tls_handshake, Some(10), "{:?}", r.errors);
    assert!(
        r.warnings.iter().any(|w| w.contains("expired")),
        "{:?}",
        r.warnings
    );
    server.shutdown().expect("shutdown");
    server2.shutdown().expect("shutdown");
    server3.shutdown().expect("shutdown");
}

#[test]
fn insecure_accepts_any_certificate() {
    // Trusted by nothing, and for another name.
    let cert = TestCert::for_names(&["example.com"]);
    let server = tls_server(&cert);
    let r = run_accounted(&https(
        server.local_addr(),
        "/plaintext",
        TlsTrust::Insecure,
        40,
    ));
    assert_eq!(r.requests.ok, 40, "{:?}", r.errors);
    assert_eq!(handshakes(&r).handshakes_full, 4);
    server.shutdown().expect("shutdown");
}

#[test]
fn ca_files_that_hold_no_certificate_are_refused() {
    let dir = TempDir::new("tether-load-tls-bad");
    let cert = TestCert::localhost();
    for (name, text) in [
        ("empty.pem", String::new()),
        ("key.pem", cert.key_pem.clone()),
        ("text.pem", "not PEM at all\n".to_owned()),
    ] {
        let path = dir.write(name, text);
        assert!(TlsTrust::ca_file(&path).is_err(), "{name}");
    }
    let missing = dir.path().join("missing.pem");
    let e = TlsTrust::ca_file(&missing).expect_err("no file");
    assert!(e.contains("missing.pem"), "{e}");
    // Two certificates (and a key between them) in one file: both trusted.
    let other = TestCert::localhost();
    let both = format!("{}{}{}", cert.cert_pem, cert.key_pem, other.cert_pem);
    match TlsTrust::ca_file(&dir.write("both.pem", both)).expect("two certificates") {
        TlsTrust::Roots(roots) => assert_eq!(roots.len(), 2),
        t => panic!("{t:?}"),
    }
}

#[test]
fn a_handshake_that_fails_or_stalls_is_a_counted_error() {
    // Accepts, reads the ClientHello, and closes.
    let closing = Raw::start(|mut stream, _| {
        let mut hello = [0u8; 512];
        let _ = std::io::Read::read(&mut stream, &mut hello);
    });
    let mut c = https(closing.addr, "/", TlsTrust::Insecure, 6);
    c.connections = 2;
    let r = run_accounted(&c);
    assert_eq!(r.errors.tls_handshake, Some(6), "{:?}", r.errors);
    assert_eq!(r.connections.opened, 6);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("the server closed the connection")),
        "{:?}",
        r.warnings
    );

    // Accepts and never answers: the timeout ends each handshake, as a connect timeout.
    let stalled = Raw::start(|mut stream, _| drain(&mut stream));
    let mut c = https(stalled.addr, "/", TlsTrust::Insecure, 4);
    c.connections = 2;
    c.timeout = Duration::from_millis(150);
    let started = Instant::now();
    let r = run_accounted(&c);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.errors.connect_timeout, 4, "{:?}", r.errors);
    assert_eq!(handshakes(&r).handshakes_failed, 4);
    assert_eq!(r.connections.closed_by_client, 4);
}

#[test]
fn the_json_report_has_a_tls_object_only_over_https() {
    let cert = TestCert::localhost();
    let server = tls_server(&cert);
    let mut c = https(server.local_addr(), "/plaintext", ca_file(&cert), 30);
    c.connections = 3;
    c.mode = ConnMode::PerConnection(5);
    let r = run_accounted(&c);
    let v: Value = serde_json::from_str(&r.to_json()).expect("JSON");
    let tls = &v["tls"];
    let h = handshakes(&r);
    assert_eq!(tls["handshakes_full"], h.handshakes_full, "{tls}");
    assert_eq!(tls["handshakes_resumed"], h.handshakes_resumed, "{tls}");
    assert_eq!(h.handshakes_full + h.handshakes_resumed, 6);
    assert_eq!(v["connections"]["opened"], 6);
    assert_eq!(tls["handshakes_failed"], 0);
    assert_eq!(tls["resumption"], true);
    for (key, count) in [
        ("handshake_full_us", h.handshakes_full),
        ("handshake_resumed_us", h.handshakes_resumed),
    ] {
        assert_eq!(tls[key]["count"], count, "{tls}");
        for p in ["min", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(tls[key][p].is_number(), "{key}.{p}: {tls}");
        }
    }
    assert_eq!(v["errors"]["tls_handshake"], 0);

    let plain = tether(|b| b);
    let r = run_accounted(&config(plain.local_addr(), "/plaintext"));
    let v: Value = serde_json::from_str(&r.to_json()).expect("JSON");
    assert!(v.get("tls").is_none(), "{v}");
    assert!(v["errors"].get("tls_handshake").is_none(), "{v}");
    assert!(!r.to_string().contains("tls"), "{r}");
    let mut c = config(plain.local_addr(), "/plaintext");
    c.bounds.requests = Some(20);
    let cmp = tether_load::compare(&c, &mut |_, _| {}).expect("compare");
    let v = serde_json::to_value(&cmp).expect("JSON");
    let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
    assert_eq!(
        keys,
        ["keep_alive", "new_connection"],
        "plain --compare keeps its shape"
    );
    server.shutdown().expect("shutdown");
    plain.shutdown().expect("shutdown");
}

#[test]
fn compare_over_https_runs_with_and_without_resumption() {
    let cert = TestCert::localhost();
    let server = tls_server(&cert);
    let mut c = https(server.local_addr(), "/plaintext", ca_file(&cert), 40);
    c.connections = 2;
    let mut labels = Vec::new();
    let cmp = tether_load::compare(&c, &mut |label, _| {
        if labels.last().is_none_or(|l| l != label) {
            labels.push(label.to_owned());
        }
    })
    .expect("compare");
    assert_eq!(cmp.keep_alive.connections.opened, 2);
    assert_eq!(handshakes(&cmp.keep_alive).handshakes_full, 2);
    let resumed = handshakes(&cmp.new_connection);
    assert_eq!(cmp.new_connection.connections.opened, 40);
    assert!(
        resumed.resumption && resumed.handshakes_resumed > 0,
        "{resumed:?}"
    );
    let full_run = cmp
        .new_connection_no_resumption
        .as_ref()
        .expect("a third run");
    let full = handshakes(full_run);
    assert_eq!((full.handshakes_full, full.handshakes_resumed), (40, 0));
    for r in [&cmp.keep_alive, &cmp.new_connection, full_run] {
        assert_eq!(r.requests.ok, 40, "{:?}", r.errors);
    }
    let saving = cmp.keep_alive_saving.expect("ratios over https");
    for s in [saving.new_connection, saving.new_connection_no_resumption] {
        assert!(s.requests_per_sec.is_some_and(|x| x > 0.0), "{s:?}");
        assert!(s.latency_mean.is_some_and(|x| x > 0.0), "{s:?}");
    }

    let text = cmp.to_string();
    let header = text.lines().nth(2).expect("the header row");
    for column in [
        "keep-alive",
        "new, resumption",
        "new, no resumption",
        "vs resumed",
        "vs full",
    ] {
        assert!(header.contains(column), "{column:?} in {header:?}");
    }
    let row = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} row in\n{text}"))
            .to_owned()
    };
    let opened = row("connections opened");
    let cells: Vec<&str> = opened.split_whitespace().collect();
    assert_eq!(
        &cells[2..7],
        ["2", "40", "40", "20.00x", "20.00x"],
        "{opened}"
    );
    assert_eq!(row("full handshakes").split_whitespace().nth(2), Some("2"));
    assert_eq!(
        row("resumed handshakes").split_whitespace().nth(2),
        Some("0")
    );
    assert!(row("throughput (req/s)").ends_with('x'));

    let v: Value = serde_json::to_value(&cmp).expect("JSON");
    for key in [
        "keep_alive",
        "new_connection",
        "new_connection_no_resumption",
    ] {
        assert!(v[key]["tls"].is_object(), "{key}: {v}");
    }
    for key in ["new_connection", "new_connection_no_resumption"] {
        for ratio in ["requests_per_sec", "latency_mean", "latency_p99"] {
            assert!(
                v["keep_alive_saving"][key][ratio].is_number(),
                "{key}.{ratio}"
            );
        }
    }
    assert_eq!(
        labels,
        [
            "keep-alive",
            "new connection, resumption",
            "new connection, no resumption"
        ]
    );
    server.shutdown().expect("shutdown");
}
