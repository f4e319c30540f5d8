//! Connection modes, pipelining, schedules and the protocol-following client, against tether
//! and against raw servers that close, limit or frame responses in their own ways.

mod common;

use std::io::{BufRead, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tether_load::{Config, ConnMode};
use tether_test_support::raw::{drain, ok, read_request, send, split, Raw};

/// A config for `addr` that ends after `requests` requests; the 10 s duration is only a
/// backstop, so that the count, not the clock, ends the run.
fn counted(addr: SocketAddr, path: &str, requests: u64) -> Config {
    let mut c = config(addr, path);
    c.bounds.requests = Some(requests);
    c.bounds.duration = Duration::from_secs(10);
    c
}

#[test]
fn persistent_connections_carry_every_request() {
    let server = tether(|b| b);
    let c = counted(server.local_addr(), "/plaintext", 400);
    let r = run_accounted(&c);
    assert_eq!((r.requests.total, r.requests.ok), (400, 400));
    assert_eq!(r.connections.opened, 4);
    assert_eq!(r.connections.closed_by_client, 4);
    let per = r.connections.requests_per_connection;
    assert_eq!((per.min, per.max), (100, 100));
    assert_eq!(r.latency_us.count, 400);
    assert_eq!(r.connect_us.count, 4);
    assert_eq!(r.status_codes.get(&200), Some(&400));
    assert!(r.bytes_per_sec > 0.0 && r.requests_per_sec > 0.0);
    assert!(r.target_rate.is_none() && r.client_lag_us.is_none());
    server.shutdown().expect("shutdown");
}

#[test]
fn a_new_connection_per_request() {
    let server = tether(|b| b);
    let mut c = counted(server.local_addr(), "/plaintext", 200);
    c.mode = ConnMode::PerRequest;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 200);
    assert_eq!(r.connections.opened, 200);
    assert_eq!(
        r.connections.closed_by_server_announced, 200,
        "{:?}",
        r.connections
    );
    assert_eq!(r.connections.requests_per_connection.max, 1);
    assert_eq!(r.connect_us.count, 200);
    server.shutdown().expect("shutdown");
}

#[test]
fn n_requests_per_connection_then_reconnect() {
    let server = tether(|b| b);
    let mut c = counted(server.local_addr(), "/plaintext", 200);
    c.mode = ConnMode::PerConnection(10);
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 200);
    assert_eq!(r.connections.opened, 20);
    assert_eq!(r.connections.closed_by_client, 20);
    let per = r.connections.requests_per_connection;
    assert_eq!((per.min, per.max), (10, 10));
    server.shutdown().expect("shutdown");
}

#[test]
fn http10_keep_alive_and_http10_close() {
    let server = tether(|b| b);
    let mut c = counted(server.local_addr(), "/plaintext", 100);
    c.http10 = true;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 100);
    assert_eq!(
        r.connections.opened, 4,
        "HTTP/1.0 with Connection: keep-alive reuses"
    );

    c.mode = ConnMode::PerRequest;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 100);
    assert_eq!(r.connections.opened, 100);
    assert_eq!(r.connections.closed_by_server_announced, 100);
    server.shutdown().expect("shutdown");
}

#[test]
fn the_servers_connection_close_is_followed() {
    let server = tether(|b| b.max_requests(10).limit_jitter(0.0));
    let mut c = counted(server.local_addr(), "/plaintext", 200);
    c.connections = 2;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 200, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 20);
    assert_eq!(r.connections.closed_by_server_announced, 20);
    assert_eq!(r.connections.requests_per_connection.max, 10);
    server.shutdown().expect("shutdown");
}

#[test]
fn keep_alive_max_is_honoured_before_the_server_closes() {
    // Counts `max` down to 0 on the fifth response and never says `Connection: close`; a
    // sixth request on the connection would find it closed.
    let server = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        for left in (0..5).rev() {
            if !read_request(&mut r) || !send(&mut w, &ok(&format!("Keep-Alive: max={left}\r\n"))) {
                return;
            }
        }
        let _ = w.shutdown(Shutdown::Both);
    });
    let mut c = counted(server.addr, "/", 50);
    c.connections = 2;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 50, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 10);
    // The last connection of each slot ends with the run, not with `max`.
    assert_eq!(r.connections.keepalive_max_reached, 8);
    assert_eq!(r.connections.stale_retries, 0);
}

#[test]
fn pipelined_requests_each_get_their_latency() {
    let server = tether(|b| b);
    let mut c = counted(server.local_addr(), "/plaintext", 800);
    c.connections = 2;
    c.pipeline = 8;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 800);
    assert_eq!(r.latency_us.count, 800);
    assert_eq!(r.connections.opened, 2);
    server.shutdown().expect("shutdown");
}

#[test]
fn pipelined_requests_lost_to_a_close() {
    // Answers three requests of each connection, the third with `Connection: close`.
    let server = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        for i in 0..3 {
            if !read_request(&mut r) {
                return;
            }
            let extra = if i == 2 { "Connection: close\r\n" } else { "" };
            if !send(&mut w, &ok(extra)) {
                return;
            }
        }
        let _ = w.shutdown(Shutdown::Write);
        drain(&mut w);
    });
    let mut c = counted(server.addr, "/", 16);
    c.connections = 1;
    c.pipeline = 8;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 6);
    assert_eq!(r.errors.pipeline_lost, 10, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 2);
    assert_eq!(r.connections.closed_by_server_announced, 2);
}

#[test]
fn chunked_and_close_delimited_bodies() {
    let chunked = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        while read_request(&mut r) {
            let res = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
            if !send(&mut w, res) {
                return;
            }
        }
    });
    let c = counted(chunked.addr, "/", 100);
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 100, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 4);

    let until_close = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        if read_request(&mut r) {
            let _ = w.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body ends at the close",
            );
        }
    });
    let c = counted(until_close.addr, "/", 40);
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 40, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 40);
    assert_eq!(r.connections.closed_by_server_announced, 40);
}

#[test]
fn a_server_that_closes_after_each_response_without_saying_so() {
    let server = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        if read_request(&mut r) {
            let _ = w.write_all(&ok(""));
        }
    });
    let mut c = counted(server.addr, "/", 60);
    c.connections = 2;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 60, "{:?}", r.errors);
    let conns = r.connections;
    assert_eq!(conns.requests_per_connection.max, 1);
    // Every connection after the first response is found closed: while idle, or as the next
    // request went out (then the request is sent again on a new connection). The last one
    // of each slot may end with the run first.
    assert_eq!(
        conns.closed_by_server_silently + conns.reset_by_server + conns.closed_by_client,
        conns.opened,
        "{conns:?}"
    );
    assert!(conns.closed_by_client <= 2, "{conns:?}");
    assert!(conns.opened >= 60);
}

#[test]
fn a_server_that_closes_idle_connections_early() {
    // Closes a connection that stays idle for 30 ms; the client pauses 150 ms.
    let server = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        let _ = r
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(30)));
        while read_request(&mut r) {
            if !send(&mut w, &ok("")) {
                return;
            }
        }
    });
    let mut c = counted(server.addr, "/", 8);
    c.connections = 2;
    c.interval = Duration::from_millis(150);
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 8, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 8);
    assert!(r.connections.idle_closed >= 6, "{:?}", r.connections);
    assert_eq!(r.connections.stale_retries, 0);
}

/// Answers the first request of a connection, then closes as the second one arrives: the
/// race of an idle close and a new request, every time.
fn closes_as_the_second_request_arrives() -> Raw {
    Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        if !read_request(&mut r) || !send(&mut w, &ok("")) {
            return;
        }
        let _ = r.fill_buf();
        let _ = w.shutdown(Shutdown::Write);
        drain(&mut w);
    })
}

#[test]
fn an_idle_close_racing_a_request_is_retried_not_counted_as_an_error() {
    let server = closes_as_the_second_request_arrives();
    let mut c = counted(server.addr, "/", 10);
    c.connections = 1;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 10, "{:?}", r.errors);
    assert_eq!(r.requests.failed, 0);
    assert!(r.connections.stale_retries >= 9, "{:?}", r.connections);
}

#[test]
fn a_post_is_not_sent_twice() {
    let server = closes_as_the_second_request_arrives();
    let mut c = counted(server.addr, "/", 10);
    c.connections = 1;
    c.method = "POST".into();
    let r = run_accounted(&c);
    assert_eq!(r.connections.stale_retries, 0);
    assert_eq!(r.requests.ok, 5);
    assert_eq!(r.errors.reset_before_response, 5, "{:?}", r.errors);
}

#[test]
fn constant_rate_reaches_its_target() {
    let server = tether(|b| b);
    let mut c = config(server.local_addr(), "/plaintext");
    c.rate = Some(1000.0);
    c.bounds.duration = Duration::from_millis(500);
    let r = run_accounted(&c);
    // 500 are due; a loaded machine may finish fewer before the end, never more.
    assert!(
        (300..=520).contains(&r.requests.ok),
        "{} requests at 1000/s for 0.5 s",
        r.requests.ok
    );
    assert_eq!(r.target_rate, Some(1000.0));
    let lag = r.client_lag_us.expect("client lag in constant-rate mode");
    assert!(
        lag.count >= r.requests.total,
        "every measured send has its lag"
    );
    server.shutdown().expect("shutdown");
}

#[test]
fn constant_rate_latency_counts_from_the_due_time() {
    // Takes 40 ms per request on one connection that should carry 100 requests/s: requests
    // queue up behind each other, and their latency must show the queue, not 40 ms.
    let server = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        while read_request(&mut r) {
            thread::sleep(Duration::from_millis(40));
            if !send(&mut w, &ok("")) {
                return;
            }
        }
    });
    let mut c = config(server.addr, "/");
    c.connections = 1;
    c.rate = Some(100.0);
    c.bounds.duration = Duration::from_millis(500);
    let r = run_accounted(&c);
    assert!(r.requests.ok >= 8, "{:?}", r.requests);
    assert!(
        r.latency_us.max > 150_000.0,
        "latency max {} µs: the queue is hidden",
        r.latency_us.max
    );
    assert!(r.latency_us.min >= 39_000.0);
    let lag = r.client_lag_us.expect("lag");
    assert!(lag.p50 < 5_000.0, "the client was not late: {lag:?}");
    assert!(
        r.warnings.iter().any(|w| w.contains("achieved")),
        "{:?}",
        r.warnings
    );

    // The same server in a closed loop: every request takes its 40 ms.
    c.rate = None;
    let r = run(&c);
    assert!(r.latency_us.max < 100_000.0, "{:?}", r.latency_us);
}

#[test]
fn the_warm_up_is_not_measured() {
    let server = tether(|b| b);
    let mut c = config(server.local_addr(), "/plaintext");
    c.connections = 2;
    c.interval = Duration::from_millis(2);
    c.warmup = Duration::from_millis(200);
    c.bounds.duration = Duration::from_millis(200);
    let started = Instant::now();
    let r = run(&c);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_accounted(&r);
    let served = server.stats().requests;
    assert!(r.requests.ok > 0);
    assert!(
        served > r.requests.total + r.requests.total / 2,
        "server saw {served}, report {}",
        r.requests.total
    );
    assert!((r.duration_secs - 0.2).abs() < 0.05, "{}", r.duration_secs);
    server.shutdown().expect("shutdown");
}

#[test]
fn the_interval_is_a_pause_after_each_response() {
    let server = tether(|b| b);
    let mut c = counted(server.local_addr(), "/plaintext", 20);
    c.connections = 1;
    c.interval = Duration::from_millis(5);
    let r = run(&c);
    assert_eq!(r.requests.ok, 20);
    // 19 pauses of 5 ms between 20 requests; due times have microsecond precision, so the
    // pauses do not stretch to the next millisecond.
    assert!(r.duration_secs >= 0.095, "{}", r.duration_secs);
    assert!(r.duration_secs < 0.5, "{}", r.duration_secs);
    server.shutdown().expect("shutdown");
}

#[test]
fn a_thousand_connections_from_one_thread() {
    // The server and the load share this process's descriptors.
    let limit = tether_load::raise_nofile(4096).unwrap_or(0);
    if limit < 2_500 {
        eprintln!("skipped: the open-file limit is {limit}");
        return;
    }
    let server = tether(|b| b);
    let mut c = config(server.local_addr(), "/plaintext");
    c.connections = 1_000;
    c.rate = Some(4_000.0);
    c.warmup = Duration::from_millis(300);
    c.bounds.duration = Duration::from_millis(500);
    let r = run_accounted(&c);
    assert_eq!(r.connections.opened, 1_000);
    assert_eq!(r.requests.failed, 0, "{:?}", r.errors);
    assert!(r.requests.ok >= 1_000, "{:?}", r.requests);
    server.shutdown().expect("shutdown");
}

#[test]
fn large_heads_and_bodies() {
    // A 10 KB header field (more than the read buffer holds at first) and a 1 MB body.
    let server = Raw::start(|stream, _| {
        let (mut r, mut w) = split(stream);
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: {}\r\n\r\n",
            "x".repeat(10_000),
            1 << 20
        );
        let body = vec![b'b'; 1 << 20];
        while read_request(&mut r) {
            if !send(&mut w, head.as_bytes()) || !send(&mut w, &body) {
                return;
            }
        }
    });
    let mut c = counted(server.addr, "/", 20);
    c.connections = 2;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 20, "{:?}", r.errors);
    assert_eq!(r.connections.opened, 2);
    assert!(r.bytes_per_sec * r.duration_secs >= 20.0 * (1 << 20) as f64);
}

#[test]
fn pipelining_stops_at_the_servers_keep_alive_max() {
    // tether says `Keep-Alive: max=N` and closes after 10 requests; a client that pipelined
    // past the limit would lose requests to the close.
    let server = tether(|b| b.max_requests(10).limit_jitter(0.0));
    let mut c = counted(server.local_addr(), "/plaintext", 400);
    c.connections = 2;
    c.pipeline = 8;
    let r = run_accounted(&c);
    assert_eq!(r.requests.ok, 400, "{:?}", r.errors);
    assert_eq!(r.errors.pipeline_lost, 0);
    assert_eq!(r.connections.opened, 40);
    let per = r.connections.requests_per_connection;
    assert_eq!((per.min, per.max), (10, 10));
    server.shutdown().expect("shutdown");
}
