//! Each error class, provoked by a server that misbehaves that way, and the bounds that stop
//! a run whatever the server does.

mod common;

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use tether_load::{Report, StatusSet};
use tether_test_support::raw::{drain, read_request, reset, split, Raw};

/// Runs 5 requests over one connection against a raw server that reads each connection's
/// first request and then hands the connection to `respond`.
fn five_requests_against(
    respond: impl Fn(BufReader<TcpStream>, TcpStream) + Send + Sync + 'static,
) -> Report {
    let server = Raw::start(move |stream, _| {
        let (mut r, w) = split(stream);
        if read_request(&mut r) {
            respond(r, w);
        }
    });
    let mut c = config(server.addr, "/");
    c.connections = 1;
    c.bounds.requests = Some(5);
    run_accounted(&c)
}

/// A raw server that reads each connection's first request and never answers it.
fn stalled() -> Raw {
    Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        if read_request(&mut r) {
            drain(&mut w);
        }
    })
}

/// Runs 4 requests over 2 connections against `addr` with a 150 ms timeout, and checks that
/// the timeouts end the run well before its 5 s duration.
fn run_timing_out(addr: SocketAddr) -> Report {
    let mut c = config(addr, "/");
    c.connections = 2;
    c.timeout = Duration::from_millis(150);
    c.bounds.requests = Some(4);
    c.bounds.duration = Duration::from_secs(5);
    let started = Instant::now();
    let r = run(&c);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_accounted(&r);
    r
}

#[test]
fn connect_refused() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    // The listener is gone: nothing listens on `addr` any more.
    let mut c = config(addr, "/");
    c.connections = 2;
    c.bounds.requests = Some(20);
    let r = run_accounted(&c);
    assert_eq!(r.errors.connect_refused, 20, "{:?}", r.errors);
    assert_eq!(r.requests.failed, 20);
    assert_eq!(r.connections.opened, 0);
}

#[test]
fn connect_timeout() {
    // A listener whose accept queue is full and never drained: further SYNs are dropped.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    socket.listen(0).expect("listen");
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr().expect("addr");
    let _fill: Vec<TcpStream> = (0..3)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok())
        .collect();
    let r = run_timing_out(addr);
    assert_eq!(r.errors.connect_timeout, 4, "{:?}", r.errors);
    drop(listener);
}

#[test]
fn reset_before_response() {
    let r = five_requests_against(|r, _w| reset(r.into_inner()));
    assert_eq!(r.errors.reset_before_response, 5, "{:?}", r.errors);
    assert_eq!(r.connections.reset_by_server, 5);
    assert_eq!(r.connections.requests_per_connection.max, 0);
}

#[test]
fn eof_mid_response() {
    let r = five_requests_against(|_r, mut w| {
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..");
        let _ = w.shutdown(Shutdown::Write);
        drain(&mut w);
    });
    assert_eq!(r.errors.eof_mid_response, 5, "{:?}", r.errors);
    assert_eq!(r.connections.closed_by_server_silently, 5);
}

#[test]
fn protocol_error() {
    let r = five_requests_against(|_r, mut w| {
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n");
        drain(&mut w);
    });
    assert_eq!(r.errors.protocol, 5, "{:?}", r.errors);
    assert_eq!(r.connections.closed_by_client, 5);
}

#[test]
fn a_stalled_server_times_out() {
    let server = stalled();
    let r = run_timing_out(server.addr);
    assert_eq!(r.errors.read_timeout, 4, "{:?}", r.errors);
    assert_eq!(r.connections.closed_by_client, 4);
}

#[test]
fn a_stalled_server_cannot_outlast_the_duration() {
    let server = stalled();
    let mut c = config(server.addr, "/");
    c.timeout = Duration::from_secs(30);
    c.bounds.duration = Duration::from_millis(300);
    let started = Instant::now();
    let r = run(&c);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_accounted(&r);
    assert_eq!(
        r.requests.total, 0,
        "requests cut by the end are not counted"
    );
    assert!(!r.warnings.is_empty());
}

#[test]
fn statuses_outside_the_success_set() {
    let server = tether(|b| b);
    let mut c = config(server.local_addr(), "/missing");
    c.bounds.requests = Some(20);
    let r = run_accounted(&c);
    assert_eq!(r.errors.status_4xx, 20, "{:?}", r.errors);
    assert_eq!(r.status_codes.get(&404), Some(&20));
    assert_eq!(
        r.latency_us.count, 20,
        "failed statuses still have a latency"
    );

    let failing = format!("http://{}/status?code=500", server.local_addr());
    c.target = tether_load::Target::parse(&failing).expect("target");
    let r = run(&c);
    assert_eq!(r.errors.status_5xx, 20, "{:?}", r.errors);

    c.success = StatusSet::parse("500").expect("codes");
    let r = run(&c);
    assert_eq!((r.requests.ok, r.requests.failed), (20, 0));

    c.target = tether_load::Target::parse(&format!("http://{}/plaintext", server.local_addr()))
        .expect("target");
    let r = run(&c);
    assert_eq!(r.errors.status_other, 20, "200 is outside the set now");
    server.shutdown().expect("shutdown");
}
