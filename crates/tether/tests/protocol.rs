//! Protocol behaviour of tether over real loopback sockets: persistence, pipelining, framing,
//! rejections, timeouts and limits, observed by a raw client.

use std::time::{Duration, Instant};

use tether::{Builder, CloseReason, ConnState, Running};
use tether_test_support::client::{send_buffer_max, Client, Reply, Writer};
use tether_test_support::events::Events;
use tether_test_support::handler::{big_body, PLAINTEXT, STREAM_PARTS};
use tether_test_support::request::*;
use tether_test_support::server::{builder, start};

const MS: Duration = Duration::from_millis(1);

/// Slack allowed on top of a configured timeout before a close or a 408 counts as late.
const LATE: Duration = Duration::from_secs(1);

fn connect(srv: &Running) -> Client {
    Client::connect(srv.local_addr())
}

/// Asserts a successful, persistent `/plaintext` exchange.
fn assert_plaintext(c: &mut Client) {
    let r = c.request(&get("/plaintext"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PLAINTEXT);
    assert!(!r.closes(), "unexpected close: {r:?}");
}

/// Asserts that `elapsed` is at least `min` and at most `max + LATE`.
fn assert_within(elapsed: Duration, min: Duration, max: Duration) {
    assert!(elapsed >= min, "too early: {elapsed:?} < {min:?}");
    assert!(
        elapsed <= max + LATE,
        "too late: {elapsed:?} > {max:?} + {LATE:?}"
    );
}

/// Sends `request` on a new connection and asserts a 200 with `Connection: close`, then EOF.
fn assert_closes_after(builder: Builder, request: &[u8]) -> Reply {
    let srv = start(builder);
    let mut c = connect(&srv);
    let r = c.request(request);
    assert_eq!(r.status, 200);
    assert!(r.closes(), "no Connection: close: {r:?}");
    c.expect_closed();
    r
}

// ---------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------

#[test]
fn one_connection_serves_many_requests() {
    let srv = start(builder());
    let mut c = connect(&srv);
    for i in 0..20 {
        if i % 2 == 0 {
            assert_plaintext(&mut c);
        } else {
            let body = format!("request {i}");
            let r = c.request(&post("/echo", body.as_bytes()));
            assert_eq!((r.status, r.text()), (200, body.as_str()));
            assert!(!r.closes());
        }
    }
    let stats = srv.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.requests, 20);
}

#[test]
fn http10_without_keep_alive_closes() {
    let r = assert_closes_after(builder(), &get10("/plaintext", &[]));
    assert_eq!(r.body, PLAINTEXT);
    assert_eq!(r.header("content-length"), Some("13"));
    assert!(!r.is_chunked());
}

#[test]
fn http10_keep_alive_is_echoed_and_honoured() {
    let srv = start(builder());
    let mut c = connect(&srv);
    for _ in 0..2 {
        let r = c.request(&get10("/plaintext", &["Connection: keep-alive"]));
        assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT));
        assert!(
            r.has_token("connection", "keep-alive"),
            "keep-alive not echoed: {r:?}"
        );
        assert!(!r.closes());
    }
    // Without the token, the next HTTP/1.0 request ends the connection.
    let r = c.request(&get10("/plaintext", &[]));
    assert!(r.closes());
    c.expect_closed();
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn client_connection_close_closes() {
    assert_closes_after(builder(), &get_with("/plaintext", &["Connection: close"]));
}

#[test]
fn connection_token_list_with_close_closes() {
    assert_closes_after(
        builder(),
        &get_with("/plaintext", &["Connection: TE, CLOSE", "TE: trailers"]),
    );
}

#[test]
fn handler_close_closes() {
    let r = assert_closes_after(builder(), &get("/close"));
    assert_eq!(r.body, b"bye");
}

#[test]
fn connection_closed_token_is_not_close() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let r = c.request(&get_with("/plaintext", &["Connection: closed"]));
    assert_eq!(r.status, 200);
    assert!(!r.closes(), "`closed` taken for `close`: {r:?}");
    assert_plaintext(&mut c);
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn keep_alive_header_advertises_timeout_and_remaining_requests() {
    let srv = start(
        builder()
            .idle_timeout(Duration::from_secs(2))
            .max_requests(5)
            .limit_jitter(0.0),
    );
    let mut c = connect(&srv);
    for remaining in (1..=4).rev() {
        let r = c.request(&get("/plaintext"));
        assert_eq!(
            r.header("keep-alive"),
            Some(format!("timeout=2, max={remaining}").as_str())
        );
        assert!(!r.closes());
    }
    let last = c.request(&get("/plaintext"));
    assert_eq!(last.status, 200);
    assert!(last.closes(), "fifth response does not close: {last:?}");
    assert_eq!(last.header("keep-alive"), None);
    c.expect_closed();
}

#[test]
fn limit_jitter_spreads_the_request_limit_of_connections() {
    let srv = start(builder().max_requests(20).limit_jitter(0.5));
    let mut limits = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let mut c = connect(&srv);
        let r = c.request(&get("/plaintext"));
        let max: u64 = r
            .header("keep-alive")
            .and_then(|v| {
                v.split(", ")
                    .find_map(|p| p.strip_prefix("max=")?.parse().ok())
            })
            .expect("Keep-Alive: max=");
        // The first response leaves limit - 1 requests.
        limits.insert(max + 1);
    }
    let (lo, hi) = (limits.first().copied(), limits.last().copied());
    assert!(
        lo >= Some(10) && hi <= Some(20),
        "limits out of range: {limits:?}"
    );
    assert!(
        limits.len() > 1,
        "every connection got the same limit: {limits:?}"
    );
}

#[test]
fn keep_alive_header_can_be_disabled() {
    let srv = start(builder().keep_alive_header(false).max_requests(5));
    let mut c = connect(&srv);
    for _ in 0..2 {
        let r = c.request(&get("/plaintext"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("keep-alive"), None);
        assert_eq!(r.header("connection"), None);
    }
    assert_eq!(srv.stats().accepted, 1);
}

// ---------------------------------------------------------------------------------------
// Pipelining
// ---------------------------------------------------------------------------------------

/// Six requests of mixed paths, statuses and body framings; the first is the slowest.
fn pipeline() -> Vec<u8> {
    [
        get("/sleep?ms=50"),
        get("/missing"),
        post("/echo", b"abc"),
        get("/status?code=204"),
        chunked_post("/echo", &[b"de", b"f"]),
        get("/plaintext"),
    ]
    .concat()
}

fn assert_pipeline_replies(c: &mut Client) {
    let expected: [(u16, &[u8]); 6] = [
        (200, b"slept"),
        (404, b"not found"),
        (200, b"abc"),
        (204, b""),
        (200, b"def"),
        (200, PLAINTEXT),
    ];
    for (i, (status, body)) in expected.into_iter().enumerate() {
        let r = c.reply();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (status, body),
            "response {i}"
        );
        assert!(!r.closes());
    }
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send(&pipeline());
    assert_pipeline_replies(&mut c);
    assert_plaintext(&mut c);
    let stats = srv.stats();
    assert_eq!((stats.accepted, stats.requests), (1, 7));
}

#[test]
fn pipelined_requests_sent_bytewise_are_answered_in_order() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send_bytewise(&pipeline());
    assert_pipeline_replies(&mut c);
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn requests_pipelined_after_close_are_not_answered() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send(
        &[
            get_with("/plaintext", &["Connection: close"]),
            get("/plaintext"),
            post("/echo", b"x"),
        ]
        .concat(),
    );
    let r = c.reply();
    assert_eq!(r.body, PLAINTEXT);
    assert!(r.closes());
    c.expect_closed();
    assert_eq!(srv.stats().requests, 1);
}

#[test]
fn long_pipeline_in_one_write() {
    // 2,000 requests (78 KB) overflow the read buffer and the 64 KiB response batch.
    let srv = start(builder());
    let mut c = connect(&srv);
    let n = 2000;
    c.send(&get("/plaintext").repeat(n));
    for i in 0..n {
        let r = c.reply();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, PLAINTEXT),
            "response {i}"
        );
    }
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn pipelined_head_straddling_a_full_read_buffer() {
    const BUF: usize = 8192;
    let srv = start(builder().read_buffer_size(BUF));
    let mut c = connect(&srv);
    // A padded request, ten plain ones and the first 20 bytes of another fill the read
    // buffer exactly: the server must move the partial head to the front to read the rest.
    let plain = get("/plaintext");
    let (count, split) = (10, 20);
    let pad = BUF - split - count * plain.len() - get_with("/plaintext", &["X-Pad: "]).len();
    let padded = get_with("/plaintext", &[&format!("X-Pad: {}", "a".repeat(pad))]);
    let data = [padded, plain.repeat(count), plain[..split].to_vec()].concat();
    assert_eq!(data.len(), BUF);
    c.send(&data);
    for _ in 0..=count {
        assert_eq!(c.reply().body, PLAINTEXT);
    }
    c.send(&plain[split..]);
    assert_eq!(c.reply().body, PLAINTEXT);
}

// ---------------------------------------------------------------------------------------
// Unread request bodies
// ---------------------------------------------------------------------------------------

#[test]
fn unread_bodies_are_discarded_and_connection_kept() {
    let srv = start(builder());
    let bodies = [
        post("/ignore-body", b"hello"),
        chunked_post("/ignore-body", &[b"hel", b"lo"]),
    ];
    for first in bodies {
        let mut c = connect(&srv);
        c.send(&[first, get("/plaintext")].concat());
        let r = c.reply();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ignored"[..]));
        assert!(!r.closes());
        let r = c.reply();
        assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT));
    }
    assert_eq!(srv.stats().accepted, 2);
}

#[test]
fn unread_body_sent_after_the_response_is_discarded() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let r = c.request(&post_head("/ignore-body", 5, &[]));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ignored"[..]));
    assert!(!r.closes());
    let r = c.request(&[&b"hello"[..], &get("/plaintext")].concat());
    assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT));
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn partly_read_body_is_discarded() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let r = c.request(&post("/read-some", b"0123456789"));
    assert_eq!((r.status, r.text()), (200, "012"));
    assert!(!r.closes());
    assert_plaintext(&mut c);
}

#[test]
fn body_beyond_drain_budget_closes() {
    let srv = start(builder().drain_bytes(1024));
    let body = vec![b'x'; 100_000];
    let mut c = connect(&srv);
    c.send(&post("/ignore-body", &body));
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(
        r.closes(),
        "a body beyond the drain budget must close: {r:?}"
    );
    c.expect_closed();
}

#[test]
fn chunked_body_beyond_drain_budget_closes_after_response() {
    // The length is unknown when the response goes out, so only the close can tell.
    let srv = start(builder().drain_bytes(1024));
    let mut c = connect(&srv);
    c.send(&chunked_post("/ignore-body", &[&[b'x'; 100_000]]));
    assert_eq!(c.reply().status, 200);
    c.expect_closed();
}

// ---------------------------------------------------------------------------------------
// Rejections: status, then the close
// ---------------------------------------------------------------------------------------

/// Small limits so that rejections need small requests.
fn limited() -> Builder {
    builder()
        .max_uri_len(256)
        .max_head_size(1024)
        .max_headers(8)
        .max_body_size(1000)
}

fn assert_rejected(request: &[u8], status: u16) {
    let srv = start(limited());
    let mut c = connect(&srv);
    c.send(request);
    let r = c.reply();
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.closes(), "rejection without Connection: close: {r:?}");
    c.expect_closed();
}

fn many_headers(n: usize) -> Vec<u8> {
    let fields: Vec<String> = (0..n).map(|i| format!("X-{i}: v")).collect();
    get_with(
        "/plaintext",
        &fields.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

macro_rules! rejections {
    ($($(#[$attr:meta])* $name:ident: $request:expr => $status:expr;)*) => {$(
        $(#[$attr])*
        #[test]
        fn $name() {
            assert_rejected(&$request, $status);
        }
    )*};
}

rejections! {
    reject_content_length_with_transfer_encoding:
        post_head("/echo", 5, &["Transfer-Encoding: chunked"]) => 400;
    reject_conflicting_content_length:
        post_head("/echo", 5, &["Content-Length: 6"]) => 400;
    reject_invalid_content_length:
        head_bytes("POST /echo HTTP/1.1", &[HOST, "Content-Length: 5x"]) => 400;
    reject_transfer_encoding_in_http10:
        head_bytes("POST /echo HTTP/1.0", &["Transfer-Encoding: chunked"]) => 400;
    reject_unknown_transfer_coding:
        head_bytes("POST /echo HTTP/1.1", &[HOST, "Transfer-Encoding: gzip"]) => 501;
    reject_chunked_not_last:
        head_bytes("POST /echo HTTP/1.1", &[HOST, "Transfer-Encoding: chunked, gzip"]) => 400;
    reject_missing_host:
        head_bytes("GET /plaintext HTTP/1.1", &[]) => 400;
    reject_duplicate_host:
        get_with("/plaintext", &["Host: other"]) => 400;
    reject_whitespace_before_colon:
        get_with("/plaintext", &["X-A : 1"]) => 400;
    reject_http2_request_line:
        head_bytes("GET /plaintext HTTP/2.0", &[HOST]) => 505;
    reject_garbage:
        b"\x16\x03\x01\x02\x00\x01\x00\xfc\x03\x03garbage\r\n\r\n".as_slice() => 400;
    reject_too_long_uri:
        get(&format!("/{}", "a".repeat(300))) => 414;
    reject_too_large_head:
        get_with("/plaintext", &[&format!("X-Big: {}", "a".repeat(1100))]) => 431;
    reject_too_many_headers:
        many_headers(10) => 431;
    reject_unsupported_expectation:
        get_with("/plaintext", &["Expect: magic"]) => 417;
    reject_content_length_above_max_body:
        post_head("/echo", 1001, &[]) => 413;
    reject_chunked_body_above_max_body:
        chunked_post("/echo", &[&[b'x'; 600], &[b'y'; 600]]) => 413;
    reject_malformed_chunked_body:
        [chunked_head("/echo"), b"zz\r\nhello\r\n0\r\n\r\n".to_vec()].concat() => 400;
}

#[test]
fn rejected_head_request_gets_no_content() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send(&head_bytes("HEAD /plaintext HTTP/1.1", &[])); // no Host: 400
    let r = c.head_reply();
    assert_eq!(r.status, 400);
    assert!(r.closes());
    c.expect_closed();
}

#[test]
fn handler_error_answers_500_and_closes() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let r = c.request(&[get("/fail"), get("/plaintext")].concat());
    assert_eq!(r.status, 500);
    assert!(r.closes());
    c.expect_closed();
}

#[test]
fn handler_error_mid_stream_truncates_the_body() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send(&get("/stream-fail"));
    let err = c.read_reply(false).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

#[test]
fn idle_connection_is_closed_silently_after_timeout_and_grace() {
    let (idle, grace) = (300 * MS, 1000 * MS);
    let srv = start(builder().idle_timeout(idle).idle_grace(grace));
    let mut c = connect(&srv);
    assert_plaintext(&mut c);
    // Past the advertised timeout but within the grace: still served.
    std::thread::sleep(idle + grace / 2);
    assert_plaintext(&mut c);
    let since = Instant::now();
    c.expect_closed();
    assert_within(since.elapsed(), idle, idle + grace);
}

#[test]
fn advertised_idle_timeout_is_honoured() {
    let srv = start(builder().idle_timeout(300 * MS).idle_grace(200 * MS));
    let mut c = connect(&srv);
    let r = c.request(&get("/plaintext"));
    let since = Instant::now();
    let advertised = r.header("keep-alive").and_then(|v| {
        v.split(',')
            .find_map(|p| p.trim().strip_prefix("timeout=")?.parse().ok())
    });
    c.expect_closed();
    if let Some(secs) = advertised {
        let elapsed = since.elapsed();
        assert!(
            elapsed >= Duration::from_secs(secs),
            "advertised timeout={secs} but closed after {elapsed:?}"
        );
    }
}

#[test]
fn header_timeout_is_armed_at_the_first_byte_of_every_request() {
    let timeout = 300 * MS;
    let srv = start(builder().header_timeout(timeout));
    let mut c = connect(&srv);
    assert_plaintext(&mut c);
    // Idle time between requests does not count against the header timeout...
    std::thread::sleep(timeout * 2);
    assert_plaintext(&mut c);
    // ...but a head still arriving `timeout` after its first byte is too slow.
    let slow = get_with("/plaintext", &[&format!("X-Pad: {}", "a".repeat(100))]);
    let since = Instant::now();
    let _writer = Writer::spawn(c.stream(), slow, 1, 20 * MS);
    let r = c.reply();
    assert_eq!(r.status, 408);
    assert!(r.closes());
    assert_within(since.elapsed(), timeout, timeout);
    c.expect_closed();
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn silent_new_connection_is_closed_after_header_timeout() {
    let timeout = 300 * MS;
    let srv = start(builder().header_timeout(timeout));
    let since = Instant::now();
    let mut c = connect(&srv);
    c.expect_closed();
    assert_within(since.elapsed(), timeout, timeout);
}

#[test]
fn stalled_body_gets_408() {
    let timeout = 300 * MS;
    let srv = start(builder().body_timeout(timeout));
    let mut c = connect(&srv);
    let since = Instant::now();
    c.send(&[post_head("/echo", 10, &[]), b"abc".to_vec()].concat());
    let r = c.reply();
    assert_eq!(r.status, 408);
    assert!(r.closes());
    assert_within(since.elapsed(), timeout, timeout);
    c.expect_closed();
}

#[test]
fn body_timeout_counts_time_without_progress() {
    // Six bytes, one every 100 ms: longer than the body timeout in all, never stalled that long.
    let srv = start(builder().body_timeout(300 * MS));
    let mut c = connect(&srv);
    c.send(&post_head("/echo", 6, &[]));
    let writer = Writer::spawn(c.stream(), b"abcdef".to_vec(), 1, 100 * MS);
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "abcdef"));
    writer.join().unwrap();
    assert_plaintext(&mut c);
}

/// A large response: twice what the server's kernel may buffer of it.
fn big_path() -> String {
    format!("/big?len={}", 2 * send_buffer_max())
}

/// Sends `request` (for a large response) on a connection that then reads nothing, and asserts
/// the close for the write timeout: its reason, its time, the counter, and that the client
/// gets the response cut short.
fn assert_closed_for_write_timeout(request: &[u8]) {
    let timeout = 300 * MS;
    let events = Events::default();
    let srv = start(events.on(builder().write_timeout(timeout)));
    // With a small receive window, the response backs up once the server's send buffer is full.
    let mut c = Client::connect_with_recv_buffer(srv.local_addr(), 4096);
    let since = Instant::now();
    c.send(request);
    let (at, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::WriteTimeout));
    assert_within(at - since, timeout, timeout);
    assert_eq!(srv.stats().closed_for(CloseReason::WriteTimeout), 1);
    // Reading at last, the client gets the response cut short.
    let cut = c.read_reply(false).map(|r| (r.status, r.body.len()));
    assert!(cut.is_err(), "whole response after the close: {cut:?}");
}

#[test]
fn reader_that_stops_is_closed_after_write_timeout() {
    assert_closed_for_write_timeout(&get(&big_path()));
}

#[test]
fn write_timeout_on_the_last_response_is_the_close_reason() {
    // Already closing (the client asked to), the connection still owes the response.
    assert_closed_for_write_timeout(&get_with(&big_path(), &["Connection: close"]));
}

#[test]
fn write_timeout_while_streaming_is_the_close_reason() {
    // The handler returns the failed send_chunk's error, as handlers do.
    assert_closed_for_write_timeout(&get(&format!("{}&chunk=65536", big_path())));
}

/// A reader that takes a piece every 100 ms, for longer than the write timeout in all, gets
/// the whole of `/big?len=...` plus `suffix`. The server sees progress when its send buffer
/// has room again, which the kernel reports once about a third of it is free: hence pieces
/// of a quarter of the largest buffer.
fn assert_write_timeout_counts_progress(suffix: &str) {
    let timeout = 300 * MS;
    let events = Events::default();
    let srv = start(events.on(builder().write_timeout(timeout)));
    let (piece, len) = (send_buffer_max() / 4, 4 * send_buffer_max());
    let mut c = Client::connect_with_recv_buffer(srv.local_addr(), piece);
    c.pace_reads(piece, 100 * MS);
    let since = Instant::now();
    let r = c.request(&get(&format!("/big?len={len}{suffix}")));
    assert_eq!(r.status, 200);
    assert!(r.body == big_body(len), "response body differs");
    assert!(!r.closes());
    // The last bytes went into the socket long after one write timeout.
    let (sent, _) = events.first_in(ConnState::Idle);
    let took = sent - since;
    assert!(
        took > 2 * timeout,
        "sent in {took:?}: the server never waited"
    );
    assert_plaintext(&mut c);
    assert_eq!(srv.stats().closed_for(CloseReason::WriteTimeout), 0);
}

#[test]
fn write_timeout_counts_time_without_progress() {
    assert_write_timeout_counts_progress("");
}

// ---------------------------------------------------------------------------------------
// File bodies (send_file: sendfile(2) on TCP)
// ---------------------------------------------------------------------------------------

#[test]
fn traffic_counts_the_bytes_both_ways_files_included() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let (small, file) = (get("/plaintext"), get("/big?len=300000&file=1"));
    let a = c.request(&small);
    let b = c.request(&file);
    assert_eq!((a.status, b.body.len()), (200, 300_000));
    // Published at the connection's next change of state, which follows the last write.
    let sent = (small.len() + file.len()) as u64;
    tether_test_support::wait::eventually("traffic published", || {
        let s = srv.stats();
        s.bytes_read == sent && s.bytes_written > 300_000
    });
    let s = srv.stats();
    // Two heads of some hundred bytes and the bodies: nothing counted twice.
    assert!(s.bytes_written < 300_000 + 1_000, "{}", s.bytes_written);
}

#[test]
fn a_file_goes_out_whole_with_its_length_and_the_connection_lives_on() {
    let srv = start(builder());
    let mut c = connect(&srv);
    // One byte, a small file, and one longer than three sendfile pieces of 2 MiB.
    for len in [1, 100_000, 3 * (2 << 20) + 5] {
        let r = c.request(&get(&format!("/big?len={len}&file=1")));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
        assert!(!r.is_chunked());
        assert!(r.body == big_body(len), "body of {len} bytes differs");
        assert!(!r.closes());
    }
    assert_plaintext(&mut c);
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn head_of_a_file_announces_its_length_without_the_body() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send(b"HEAD /big?len=5000&file=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.head_reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5000"));
    assert!(r.body.is_empty());
    // Nothing of the body follows: the next answer is the next request's.
    assert_plaintext(&mut c);
}

#[test]
fn pipelined_file_requests_are_answered_in_order() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let lens = [70_000, 1, 300_000, 2 << 20];
    let mut batch = Vec::new();
    for len in lens {
        batch.extend_from_slice(&get(&format!("/big?len={len}&file=1")));
        batch.extend_from_slice(&get("/plaintext"));
    }
    c.send(&batch);
    for len in lens {
        let r = c.reply();
        assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
        assert!(r.body == big_body(len), "body of {len} bytes differs");
        let r = c.reply();
        assert_eq!(r.body, PLAINTEXT);
    }
    assert_plaintext(&mut c);
}

#[test]
fn file_pieces_go_inside_a_sized_body_and_inside_a_stream() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let len = 200_000;
    let r = c.request(&get(&format!("/big?len={len}&file=1&split=1")));
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    assert!(r.body == big_body(len), "sized body differs");
    let r = c.request(&get(&format!("/big?len={len}&file=1&chunk=65536")));
    assert!(r.is_chunked());
    assert!(r.body == big_body(len), "chunked body differs");
    assert_plaintext(&mut c);
}

#[test]
fn a_sized_body_left_short_ends_in_a_close() {
    let events = Events::default();
    let srv = start(events.on(builder()));
    let mut c = connect(&srv);
    c.send(&get("/big?len=1000&file=1&short=10"));
    let raw = c.read_to_close().expect("read to the close");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    assert!(head.contains("Content-Length: 1000"), "{head}");
    assert!(raw[head_end..] == big_body(990)[..], "the 990 bytes sent");
    assert_eq!(
        events.closed(c.peer()).reason,
        Some(CloseReason::HandlerError)
    );
}

#[test]
fn reader_that_stops_mid_file_is_closed_after_write_timeout() {
    assert_closed_for_write_timeout(&get(&format!("{}&file=1", big_path())));
}

#[test]
fn write_timeout_counts_progress_of_a_file() {
    assert_write_timeout_counts_progress("&file=1");
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

#[test]
fn max_requests_closes_on_the_last_exactly() {
    let srv = start(builder().max_requests(3).limit_jitter(0.0));
    let mut c = connect(&srv);
    c.send(&get("/plaintext").repeat(4));
    for i in 1..=3 {
        let r = c.reply();
        assert_eq!(r.status, 200);
        assert_eq!(r.closes(), i == 3, "response {i}: {r:?}");
    }
    c.expect_closed();
    assert_eq!(srv.stats().requests, 3);
}

#[test]
fn max_lifetime_closes_at_the_next_response() {
    let lifetime = 300 * MS;
    let srv = start(builder().max_lifetime(lifetime).limit_jitter(0.0));
    let mut c = connect(&srv);
    assert_plaintext(&mut c);
    std::thread::sleep(lifetime + 100 * MS);
    let r = c.request(&get("/plaintext"));
    assert_eq!(r.status, 200);
    assert!(
        r.closes(),
        "response after the lifetime does not close: {r:?}"
    );
    c.expect_closed();
}

// ---------------------------------------------------------------------------------------
// Expect: 100-continue
// ---------------------------------------------------------------------------------------

#[test]
fn continue_is_sent_when_the_handler_reads_the_body() {
    let delay = 200 * MS;
    let srv = start(builder());
    let mut c = connect(&srv);
    let path = format!("/slow-body?ms={}", delay.as_millis());
    let since = Instant::now();
    c.send(&post_head(&path, 5, &["Expect: 100-continue"]));
    let interim = c.reply();
    assert_eq!(interim.status, 100);
    // Sent when the handler starts reading, not with the head.
    assert!(
        since.elapsed() >= delay,
        "100 Continue sent before the handler read"
    );
    let r = c.request(b"hello");
    assert_eq!((r.status, r.text()), (200, "hello"));
    assert!(!r.closes());
    assert_plaintext(&mut c);
}

#[test]
fn no_continue_when_the_body_is_not_read() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let r = c.request(&post_head("/plaintext", 5, &["Expect: 100-continue"]));
    assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT));
    assert!(
        r.closes(),
        "the client may or may not send the body: only a close is safe"
    );
    c.expect_closed();
}

// ---------------------------------------------------------------------------------------
// HEAD and streaming
// ---------------------------------------------------------------------------------------

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let got = c.request(&get("/plaintext"));
    c.send(&head("/plaintext"));
    let headed = c.head_reply();
    assert_eq!(headed.status, 200);
    for name in ["content-length", "content-type"] {
        assert_eq!(headed.header(name), got.header(name), "{name}");
    }
    assert!(!headed.closes());
    // A stray body would corrupt the next response.
    assert_plaintext(&mut c);
}

#[test]
fn head_of_a_stream_has_no_body() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send(&head("/stream"));
    let r = c.head_reply();
    assert_eq!(r.status, 200);
    assert!(r.is_chunked());
    assert!(!r.closes());
    assert_plaintext(&mut c);
}

#[test]
fn http11_stream_is_chunked() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let r = c.request(&get("/stream"));
    assert_eq!(r.status, 200);
    assert!(r.is_chunked());
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.chunks, STREAM_PARTS.map(<[u8]>::len));
    assert_eq!(r.body, STREAM_PARTS.concat());
    assert!(!r.closes());
    assert_plaintext(&mut c);
}

#[test]
fn http10_stream_is_delimited_by_the_close() {
    for headers in [&["Connection: keep-alive"][..], &[]] {
        let r = assert_closes_after(builder(), &get10("/stream", headers));
        assert!(!r.is_chunked(), "chunked to HTTP/1.0: {r:?}");
        assert_eq!(r.header("content-length"), None);
        assert!(r.close_delimited);
        assert_eq!(r.body, STREAM_PARTS.concat());
    }
}

// ---------------------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------------------

#[test]
fn lingering_close_delivers_the_response_despite_unread_input() {
    // A response larger than the socket buffers is still in the server's send queue when it
    // closes; closing with unread input would reset the connection and discard it.
    let srv = start(builder().max_body_size(4 << 20));
    let mut c = connect(&srv);
    let body: Vec<u8> = (0..4 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    let junk = vec![b'j'; 256 * 1024];
    let data = [
        post_head("/echo", body.len(), &["Connection: close"]),
        body.clone(),
        junk,
    ]
    .concat();
    let writer = Writer::spawn(c.stream(), data, 64 * 1024, Duration::ZERO);
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "response body differs");
    assert!(r.closes());
    c.expect_closed();
    writer
        .join()
        .expect("input after the request was not read: the server reset");
}

#[test]
fn half_closed_client_is_still_answered() {
    let srv = start(builder());
    let mut c = connect(&srv);
    c.send(&[post("/echo", b"first"), get("/plaintext")].concat());
    c.shutdown_write();
    assert_eq!(c.reply().body, b"first");
    assert_eq!(c.reply().body, PLAINTEXT);
    c.expect_closed();
}

#[test]
fn shutdown_closes_idle_connections() {
    let srv = start(builder());
    let mut c = connect(&srv);
    assert_plaintext(&mut c);
    let stopping = std::thread::spawn(move || srv.shutdown());
    c.expect_closed();
    drop(c);
    let stats = stopping.join().unwrap().unwrap().stats;
    assert_eq!((stats.accepted, stats.closed, stats.requests), (1, 1, 1));
}

/// The `Date` of each response: pipelined responses share one reading of the clock, but a
/// handler that waited answers with the time it answers, not the time its request was read.
#[test]
fn date_is_the_time_of_the_answer() {
    let srv = start(builder());
    let mut c = connect(&srv);
    let date = |r: &Reply| {
        let d = r.header("date").expect("a Date header");
        httpdate::parse_http_date(d).expect("an HTTP date")
    };
    let before = std::time::SystemTime::now();
    let r = c.request(&get("/plaintext"));
    let first = date(&r);
    // The header has whole seconds: it may be up to a second earlier than `before`.
    assert!(
        first + Duration::from_secs(1) >= before,
        "{first:?} before {before:?}"
    );
    let r = c.request(&get("/sleep?ms=1500"));
    assert_eq!(r.text(), "slept");
    let later = date(&r);
    assert!(
        later >= first + Duration::from_secs(1),
        "a response sent 1.5 s later is dated {later:?}, the first {first:?}"
    );
}
