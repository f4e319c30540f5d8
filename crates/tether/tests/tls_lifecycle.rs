//! The engine's connection lifecycle over TLS, on real loopback sockets: the idle, header,
//! body and write timeouts, the request and lifetime limits, eviction at the connection
//! limit, the per-address limit, the two-phase drain, the lingering close, the states and
//! close reasons the hook reports, the statuses of bad requests, and clients that close or
//! reset in the middle of a request. Each behaviour is the one `lifecycle.rs` and
//! `protocol.rs` check over plain TCP; `tls.rs` covers the handshake itself.
//!
//! Over TLS a close can end with the server's `close_notify` or with a bare TCP close, and
//! each test says which it gets: every close that ends cleanly sends `close_notify` (those
//! that linger, and those that do not but could still write: the idle timeout, the client's
//! own close); a write timeout does not (nothing more can be written), nor a reset.
//!
//! Waits are on events (the hook, a reply, a close) with a deadline; the only sleeps wait for
//! a span of time the test is about (a lifetime, a minimum idle age).
#![cfg(feature = "tls")]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tether::rustls;
use tether::{Builder, CloseReason, ConnState, Running, Snapshot};
use tether_test_support::client::{send_buffer_max, Client, Reply};
use tether_test_support::events::{trail, Events};
use tether_test_support::handler::{big_body, PLAINTEXT, STREAM_PARTS};
use tether_test_support::request::{get, get10, get_with, head_bytes, post_head, HOST};
use tether_test_support::server::{builder, start};
use tether_test_support::tls::{client_config, TestCert};
use tether_test_support::wait::eventually;

use ConnState::{Active, Closed, Closing, Idle, New};

const MS: Duration = Duration::from_millis(1);

/// Slack on top of a configured timeout before a close counts as late (generous: the tests
/// also run many at a time on a busy machine).
const LATE: Duration = Duration::from_millis(700);

/// A server with TLS on, and the client configuration that trusts its certificate.
struct Tls {
    srv: Running,
    client: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// Starts `builder` with TLS (rustls's defaults, ALPN `http/1.1`).
    fn start(builder: Builder) -> Tls {
        let cert = TestCert::localhost();
        Tls {
            srv: start(builder.tls(cert.server_config())),
            client: client_config(&cert),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.srv.local_addr()
    }

    /// A new connection, its handshake completed.
    fn connect(&self) -> Client {
        Client::connect_tls(self.addr(), self.client.clone())
    }
}

/// Asserts a successful, persistent `/plaintext` exchange.
fn plaintext(c: &mut Client) {
    let r = c.request(&get("/plaintext"));
    assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT), "{r:?}");
    assert!(!r.closes(), "unexpected close: {r:?}");
}

/// Reads until the server ends the connection (nothing more may come), and says whether it
/// ended TLS with `close_notify`. The client then closes its side: a lingering close waits
/// for it.
fn ends(mut c: Client) -> bool {
    c.expect_closed();
    c.got_close_notify()
}

/// TLS handshakes the server completed, full or resumed (the tests' client configuration
/// keeps its sessions, so a second connection resumes).
fn handshakes(s: &Snapshot) -> u64 {
    s.tls_full + s.tls_resumed
}

/// Asserts that `elapsed` is at least `min` and at most `min + LATE`.
fn assert_after(elapsed: Duration, min: Duration) {
    assert!(elapsed >= min, "too early: {elapsed:?} < {min:?}");
    assert!(
        elapsed <= min + LATE,
        "too late: {elapsed:?} > {min:?} + {LATE:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

/// A kept-alive TLS connection left idle closes after the idle timeout plus the grace, for
/// `idle_timeout`. The close does not linger, but it still ends TLS with `close_notify`
/// before the TCP close, so that the client sees a clean end rather than a truncation.
#[test]
fn an_idle_tls_connection_closes_after_the_idle_timeout_and_grace() {
    let events = Events::default();
    let (idle, grace) = (300 * MS, 100 * MS);
    let tls = Tls::start(events.on(builder().idle_timeout(idle).idle_grace(grace)));
    let mut c = tls.connect();
    let me = c.peer();
    plaintext(&mut c);
    assert!(ends(c), "the idle close sent no close_notify");
    events.assert_closed(me, CloseReason::IdleTimeout, 1);
    assert_after(
        events.entered(me, Closing) - events.entered(me, Idle),
        idle + grace,
    );
    assert_eq!(tls.srv.stats().closed_for(CloseReason::IdleTimeout), 1);
}

/// Half a head after the handshake, then silence: `408` over TLS with `Connection: close`,
/// then `close_notify`; no request counted. A connection that sends nothing at all after
/// its handshake closes for the same timeout (the wait for a first request).
#[test]
fn a_head_cut_short_over_tls_gets_408_at_the_header_timeout() {
    let events = Events::default();
    let timeout = 300 * MS;
    let tls = Tls::start(events.on(builder().header_timeout(timeout)));
    let mut c = tls.connect();
    let me = c.peer();
    let since = Instant::now();
    c.send(b"GET /plaintext HTTP/1.1\r\nHost");
    let r = c.reply();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.closes(), "{r:?}");
    assert_after(since.elapsed(), timeout);
    assert!(ends(c), "no close_notify after the 408");
    events.assert_closed(me, CloseReason::HeaderTimeout, 0);

    let since = Instant::now();
    let silent = tls.connect();
    let me = silent.peer();
    assert!(ends(silent), "no close_notify for a silent connection");
    events.assert_closed(me, CloseReason::HeaderTimeout, 0);
    assert_after(events.entered(me, Closing) - since, timeout);
    assert_eq!(trail(&events.of(me))[0], (New, 0, None));
    assert_eq!(tls.srv.stats().closed_for(CloseReason::HeaderTimeout), 2);
}

/// A body that stalls: `408` (counted as the answer to the request), `Connection: close`,
/// `close_notify`.
#[test]
fn a_stalled_body_over_tls_gets_408_at_the_body_timeout() {
    let events = Events::default();
    let timeout = 300 * MS;
    let tls = Tls::start(events.on(builder().body_timeout(timeout)));
    let mut c = tls.connect();
    let me = c.peer();
    let since = Instant::now();
    c.send(&[post_head("/echo", 10, &[]), b"abc".to_vec()].concat());
    let r = c.reply();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.closes(), "{r:?}");
    assert_after(since.elapsed(), timeout);
    assert!(ends(c), "no close_notify after the 408");
    events.assert_closed(me, CloseReason::BodyTimeout, 1);
}

/// A TLS client with a small receive window that reads nothing of a large response: the
/// records back up behind the full socket and the connection is cut at the write timeout,
/// without `close_notify` (nothing more could be written). Reading at last, the client gets
/// the response cut short.
#[test]
fn a_tls_client_that_stops_reading_is_cut_at_the_write_timeout() {
    let events = Events::default();
    let timeout = 300 * MS;
    let tls = Tls::start(events.on(builder().write_timeout(timeout)));
    let mut c = Client::connect_with_recv_buffer(tls.addr(), 4096);
    c.start_tls(tls.client.clone()).unwrap();
    let me = c.peer();
    let since = Instant::now();
    c.send(&get(&format!("/big?len={}", 2 * send_buffer_max())));
    let (at, closed) = events.first_in(Closed);
    assert_eq!(
        (closed.peer, closed.reason),
        (me, Some(CloseReason::WriteTimeout))
    );
    assert_after(at - since, timeout);
    let cut = c.read_reply(false).map(|r| (r.status, r.body.len()));
    assert!(cut.is_err(), "whole response after the close: {cut:?}");
    assert!(!c.got_close_notify(), "close_notify after a write timeout");
    events.assert_closed(me, CloseReason::WriteTimeout, 1);
    assert_eq!(tls.srv.stats().closed_for(CloseReason::WriteTimeout), 1);
}

// ---------------------------------------------------------------------------------------
// Limits of a connection
// ---------------------------------------------------------------------------------------

/// The last request a connection may serve is answered with `Connection: close` (the
/// `Keep-Alive` header counting down to it), then `close_notify`.
#[test]
fn the_last_request_allowed_over_tls_closes() {
    let events = Events::default();
    let tls = Tls::start(events.on(builder().max_requests(3).limit_jitter(0.0)));
    let mut c = tls.connect();
    let me = c.peer();
    for left in [2, 1] {
        let r = c.request(&get("/plaintext"));
        assert_eq!(r.status, 200);
        assert!(!r.closes(), "{r:?}");
        let keep_alive = r.header("keep-alive").unwrap_or_default();
        assert!(keep_alive.ends_with(&format!("max={left}")), "{r:?}");
    }
    let r = c.request(&get("/plaintext"));
    assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT));
    assert!(r.closes(), "the last response does not close: {r:?}");
    assert!(ends(c), "no close_notify after the last response");
    events.assert_closed(me, CloseReason::MaxRequests, 3);
    assert_eq!(tls.srv.stats().requests, 3);
}

/// The response after the connection's lifetime carries `Connection: close`.
#[test]
fn the_response_after_the_lifetime_over_tls_closes() {
    let events = Events::default();
    let lifetime = 200 * MS;
    let tls = Tls::start(events.on(builder().max_lifetime(lifetime).limit_jitter(0.0)));
    let mut c = tls.connect();
    let me = c.peer();
    plaintext(&mut c);
    thread::sleep(lifetime + 50 * MS); // the lifetime passes
    let r = c.request(&get("/plaintext"));
    assert_eq!(r.status, 200);
    assert!(
        r.closes(),
        "response after the lifetime does not close: {r:?}"
    );
    assert!(ends(c), "no close_notify after the last response");
    events.assert_closed(me, CloseReason::MaxLifetime, 2);
}

// ---------------------------------------------------------------------------------------
// Connection limits
// ---------------------------------------------------------------------------------------

/// At the connection limit a new TLS connection evicts the least recently used idle one
/// (at its accept, before its handshake) and is served; the evicted one ends with
/// `close_notify`, the other lives on.
#[test]
fn at_the_limit_a_new_tls_connection_evicts_the_oldest_idle_one() {
    let events = Events::default();
    let tls = Tls::start(events.on(builder().max_connections(2).min_idle_age(100 * MS)));
    let mut a = tls.connect();
    let mut b = tls.connect();
    plaintext(&mut a);
    plaintext(&mut b);
    events.wait_state_after(b.peer(), Idle, 1);
    thread::sleep(150 * MS); // both are past the minimum idle age; a is the older
    let mut c = tls.connect();
    plaintext(&mut c);
    let a_peer = a.peer();
    assert!(ends(a), "the evicted connection ended without close_notify");
    events.assert_closed(a_peer, CloseReason::Evicted, 1);
    plaintext(&mut b);
    plaintext(&mut c);
    let s = tls.srv.stats();
    assert_eq!(
        (s.accepted, s.refused, s.closed_for(CloseReason::Evicted)),
        (3, 0, 1)
    );
    assert_eq!((handshakes(&s), s.tls_failed()), (3, 0));
    assert_eq!(s.open(), 2);
}

/// A TLS connection parked (its task gone, its session kept by the worker) is evicted like
/// any: it resumes to close, and its `close_notify` still goes out before the TCP close.
#[test]
fn a_parked_tls_connection_is_evicted_with_close_notify() {
    let events = Events::default();
    let tls = Tls::start(
        events.on(builder()
            .park_after(50 * MS)
            .max_connections(1)
            .min_idle_age(50 * MS)),
    );
    let mut a = tls.connect();
    plaintext(&mut a);
    eventually("the connection to park", || tls.srv.stats().parked == 1);
    let mut b = tls.connect();
    plaintext(&mut b);
    let a_peer = a.peer();
    assert!(ends(a), "the evicted connection ended without close_notify");
    events.assert_closed(a_peer, CloseReason::Evicted, 1);
    plaintext(&mut b);
    let s = tls.srv.stats();
    assert_eq!((s.accepted, s.refused, s.parked, s.open()), (2, 0, 0, 1));
}

/// Over the per-address limit the engine refuses the connection at its accept, before any
/// TLS: it writes its `429` refusal in clear text and closes. A TLS client reads that as a
/// record that is not TLS, so its handshake fails; no handshake is counted on the server,
/// the refusal is, and nothing is left open.
#[test]
fn over_the_per_address_limit_a_tls_client_is_refused_before_its_handshake() {
    let events = Events::default();
    let tls = Tls::start(events.on(builder().max_connections_per_ip(1)));
    let mut a = tls.connect();
    plaintext(&mut a);

    let refused = Client::try_connect_tls(tls.addr(), tls.client.clone());
    assert!(refused.is_err(), "the handshake over the limit succeeded");
    // What the refused client was sent: nothing, not the refusal of plain TCP in clear
    // text, which a TLS client could not read.
    let mut raw = Client::connect(tls.addr());
    let rest = raw.read_to_close().unwrap_or_default();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    eventually("the refusals counted", || tls.srv.stats().refused == 2);

    // Another address is not limited by this one's connection.
    let mut other = Client::connect_from([127, 0, 0, 2].into(), tls.addr());
    other.start_tls(tls.client.clone()).unwrap();
    plaintext(&mut other);
    plaintext(&mut a);
    let s = tls.srv.stats();
    assert_eq!((s.accepted, s.refused, s.open()), (2, 2, 2));
    assert_eq!((handshakes(&s), s.tls_failed()), (2, 0));

    // A place freed is a place taken, and everything closes.
    let (a_peer, other_peer) = (a.peer(), other.peer());
    drop(a);
    events.closed(a_peer);
    plaintext(&mut tls.connect());
    drop(other);
    events.closed(other_peer);
    eventually("every connection to close", || tls.srv.stats().open() == 0);
    let s = tls.srv.stats();
    assert_eq!((s.accepted, s.refused, s.closed), (3, 2, 3));
}

// ---------------------------------------------------------------------------------------
// The two-phase drain
// ---------------------------------------------------------------------------------------

/// At shutdown an idle TLS connection is closed in phase 1 (once idle for the minimum
/// age) with `close_notify` before the TCP close, and a request in flight in a slow handler
/// completes with `Connection: close`, then `close_notify`; nothing is cut.
#[test]
fn the_drain_closes_idle_tls_connections_with_close_notify_and_finishes_requests() {
    let events = Events::default();
    let (min_idle_age, window) = (100 * MS, Duration::from_secs(2));
    let tls = Tls::start(
        events.on(builder()
            .min_idle_age(min_idle_age)
            .drain_window(window)
            .shutdown_timeout(Duration::from_secs(3))),
    );
    let mut idle = tls.connect();
    plaintext(&mut idle);
    let idle_peer = idle.peer();
    events.wait_state_after(idle_peer, Idle, 1);
    let mut busy = tls.connect();
    let busy_peer = busy.peer();
    busy.send(&get("/sleep?ms=400"));
    events.wait_state(busy_peer, Active);

    let handle = tls.srv.handle();
    let srv = tls.srv;
    let t0 = Instant::now();
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    eventually("the drain", || handle.is_draining());
    // The idle connection goes first, with close_notify then the end of the stream.
    let idle_closed = thread::spawn(move || ends(idle));
    let r = busy.reply();
    assert_eq!((r.status, r.text()), (200, "slept"));
    assert!(
        r.closes(),
        "the response during the drain does not close: {r:?}"
    );
    assert!(ends(busy), "no close_notify after the last response");
    assert!(
        idle_closed.join().unwrap(),
        "the idle connection closed without close_notify"
    );
    let stopped = shutdown.join().unwrap();
    // Both closed in phase 1, well within the drain window.
    assert!(t0.elapsed() < window, "{:?}", t0.elapsed());
    events.assert_closed(idle_peer, CloseReason::Shutdown, 1);
    events.assert_closed(busy_peer, CloseReason::Shutdown, 1);
    let idle_for = events.entered(idle_peer, Closing) - events.entered(idle_peer, Idle);
    assert!(idle_for >= min_idle_age, "closed after {idle_for:?} idle");
    assert!(
        events.entered(idle_peer, Closing) < events.entered(busy_peer, Closing),
        "the idle connection closed after the busy one"
    );
    let d = stopped.drain;
    assert_eq!(
        (
            d.connections,
            d.requests_completed,
            d.connections_closed,
            d.connections_cut
        ),
        (2, 1, 2, 0),
        "{d:?}"
    );
    assert_eq!(stopped.stats.closed_for(CloseReason::Shutdown), 2);
}

// ---------------------------------------------------------------------------------------
// The lingering close
// ---------------------------------------------------------------------------------------

/// A body over the limit gets `413` and a close with the body unread. The server lingers
/// (`close_notify`, then it reads and drops the rest) so that the client can write all of it
/// and read the whole answer; closing at once with the body unread would reset the
/// connection under both. Likewise a response larger than the socket buffers, written with
/// more input unread behind its request, reaches the client whole.
#[test]
fn lingering_close_over_tls_delivers_the_answer_despite_unread_input() {
    let events = Events::default();
    let tls = Tls::start(events.on(builder().max_body_size(1000)));
    let mut c = tls.connect();
    let me = c.peer();
    let body = vec![b'x'; 256 * 1024];
    // Far more than the server reads before answering: all of it is written before the
    // client reads anything.
    c.send(&[post_head("/echo", body.len(), &[]), body].concat());
    let r = c.reply();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.closes(), "{r:?}");
    assert!(ends(c), "no close_notify after the 413");
    events.assert_closed(me, CloseReason::ProtocolError, 0);

    let len = 2 * send_buffer_max();
    let mut c = tls.connect();
    let me = c.peer();
    let request = get_with(&format!("/big?len={len}"), &["Connection: close"]);
    c.send(&[request, vec![b'j'; 32 * 1024]].concat());
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(r.closes(), "{r:?}");
    assert!(r.body == big_body(len), "response body differs");
    assert!(ends(c), "no close_notify after the response");
    events.assert_closed(me, CloseReason::ClientClose, 1);
}

// ---------------------------------------------------------------------------------------
// close_notify where the linger is skipped
// ---------------------------------------------------------------------------------------

/// A client that asked for the close and sent nothing more gets no lingering close; over
/// TLS the connection still ends with `close_notify` (RFC 8446, section 6.1). Above all
/// for a body delimited by the close (an HTTP/1.0 client without keep-alive, a streamed
/// response): without `close_notify` the client could not tell the end of the body from a
/// truncation, and RFC 9112, section 9.8, has it treat the response as incomplete.
#[test]
fn a_close_the_client_asked_for_ends_tls_with_close_notify() {
    let events = Events::default();
    let tls = Tls::start(events.on(builder()));

    let mut c = tls.connect();
    let me = c.peer();
    let r = c.request(&get10("/stream", &[]));
    assert!(r.close_delimited, "{r:?}");
    assert_eq!(r.body, STREAM_PARTS.concat());
    assert!(
        c.got_close_notify(),
        "a close-delimited body ended without close_notify"
    );
    drop(c);
    events.assert_closed(me, CloseReason::ClientClose, 1);

    let mut c = tls.connect();
    let me = c.peer();
    let r = c.request(&get_with("/plaintext", &["Connection: close"]));
    assert!(r.closes(), "{r:?}");
    assert!(
        ends(c),
        "the close after Connection: close sent no close_notify"
    );
    events.assert_closed(me, CloseReason::ClientClose, 1);
}

// ---------------------------------------------------------------------------------------
// States and close reasons
// ---------------------------------------------------------------------------------------

/// Keep-alive, then `Connection: close`; a client that closes between requests; a
/// malformed request: the same trail of states, request counts and reasons over TLS as
/// over plain TCP, run side by side. Over TLS the handshake happens while the connection
/// is New (no state of its own), and each of these closes ends with `close_notify`.
#[test]
fn tls_connections_go_through_the_same_states_as_tcp() {
    let events = Events::default();
    let tcp = start(events.on(builder()));
    let tls = Tls::start(events.on(builder()));

    type Script = fn(&mut Client);
    let scripts: [(&str, Script); 3] = [
        ("keep-alive then Connection: close", |c| {
            plaintext(c);
            plaintext(c);
            let r = c.request(&get_with("/plaintext", &["Connection: close"]));
            assert!(r.closes(), "{r:?}");
        }),
        ("the client closes between requests", |c| {
            plaintext(c);
            c.shutdown_write();
        }),
        ("a malformed request", |c| {
            let r = c.request(b"NOT HTTP AT ALL\r\n\r\n");
            assert_eq!(r.status, 400, "{r:?}");
        }),
    ];
    let mut tls_trails = Vec::new();
    for (what, script) in scripts {
        let mut trails = Vec::new();
        for secure in [false, true] {
            let mut c = if secure {
                tls.connect()
            } else {
                Client::connect(tcp.local_addr())
            };
            let me = c.peer();
            events.wait_state(me, New);
            script(&mut c);
            let rest = c.read_to_close();
            assert!(rest.as_ref().is_ok_and(Vec::is_empty), "{what}: {rest:?}");
            if secure {
                assert!(c.got_close_notify(), "{what}: no close_notify");
            }
            drop(c);
            events.closed(me);
            let mine = events.of(me);
            assert!(mine.iter().all(|e| e.id == mine[0].id), "{mine:?}");
            trails.push(trail(&mine));
        }
        assert_eq!(trails[0], trails[1], "{what}: TCP, then TLS");
        tls_trails.push(trails.pop().unwrap());
    }

    // The trails themselves, as lifecycle.rs has them over TCP.
    use CloseReason::{ClientClose, PeerClosed, ProtocolError};
    assert_eq!(
        tls_trails,
        [
            vec![
                (New, 0, None),
                (Active, 0, None),
                (Idle, 1, None),
                (Active, 1, None),
                (Idle, 2, None),
                (Active, 2, None),
                (Closing, 3, Some(ClientClose)),
                (Closed, 3, Some(ClientClose)),
            ],
            vec![
                (New, 0, None),
                (Active, 0, None),
                (Idle, 1, None),
                (Closing, 1, Some(PeerClosed)),
                (Closed, 1, Some(PeerClosed)),
            ],
            vec![
                (New, 0, None),
                (Active, 0, None),
                (Closing, 0, Some(ProtocolError)),
                (Closed, 0, Some(ProtocolError)),
            ],
        ]
    );
    let s = tls.srv.stats();
    assert_eq!((s.accepted, s.closed, s.open()), (3, 3, 0));
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

/// A malformed request line, a head over `max_head_size` and an unsupported version get the
/// same status over TLS as over TCP (400, 431, 505), each with `Connection: close`, then the
/// close (with `close_notify` over TLS), for `protocol_error`.
#[test]
fn bad_requests_over_tls_get_the_statuses_they_get_over_tcp() {
    let events = Events::default();
    let limited = || events.on(builder().max_head_size(1024));
    let tcp = start(limited());
    let tls = Tls::start(limited());
    let cases: [(&str, Vec<u8>, u16); 3] = [
        (
            "a malformed request line",
            b"GET /plaintext HTTP/1.1 extra\r\nHost: test\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a head over the limit",
            get_with("/plaintext", &[&format!("X-Big: {}", "a".repeat(1100))]),
            431,
        ),
        (
            "another major version",
            head_bytes("GET /plaintext HTTP/2.0", &[HOST]),
            505,
        ),
    ];
    for (what, request, status) in cases {
        let mut seen: Vec<(u16, bool, Option<String>)> = Vec::new();
        for secure in [false, true] {
            let mut c = if secure {
                tls.connect()
            } else {
                Client::connect(tcp.local_addr())
            };
            let me = c.peer();
            let r: Reply = c.request(&request);
            assert!(r.closes(), "{what}: {r:?}");
            seen.push((
                r.status,
                r.closes(),
                r.header("content-length").map(String::from),
            ));
            let close_notify = ends(c);
            if secure {
                assert!(close_notify, "{what}: no close_notify");
            }
            events.assert_closed(me, CloseReason::ProtocolError, 0);
        }
        assert_eq!(seen[0].0, status, "{what}: {seen:?}");
        assert_eq!(seen[0], seen[1], "{what}: TCP, then TLS");
    }
    assert_eq!(tls.srv.stats().closed_for(CloseReason::ProtocolError), 3);
    assert_eq!(tls.srv.stats().requests, 0);
}

// ---------------------------------------------------------------------------------------
// Clients that go away
// ---------------------------------------------------------------------------------------

/// Sets a zero linger time on the client's socket and drops it: the kernel resets the
/// connection.
fn reset(c: Client) {
    socket2::SockRef::from(&c.stream())
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// Clients that close in the middle of a head (with `close_notify`, or with a bare TCP close
/// once they have read what the server sent), that close in the middle of a body, or that
/// reset after the handshake or mid-request: each connection closes for its reason and is
/// counted, nothing stays open, and the server goes on serving.
#[test]
fn tls_clients_that_close_or_reset_mid_request_are_closed_and_counted() {
    let events = Events::default();
    let tls = Tls::start(events.on(builder()));
    use CloseReason::{ClosedMidRequest, PeerReset};

    // Half a head, then close_notify and the TCP half-close.
    let mut c = tls.connect();
    let me = c.peer();
    c.send(b"GET /plaintext HTTP/1.1\r\n");
    c.shutdown_write();
    assert!(ends(c), "no close_notify in answer");
    events.assert_closed(me, ClosedMidRequest, 0);

    // One request (the client has read everything the server sent), half a head, then a
    // TCP close without close_notify.
    let mut c = tls.connect();
    let me = c.peer();
    plaintext(&mut c);
    c.send(b"GET /plaintext HTTP/1.1\r\nHo");
    drop(c);
    events.assert_closed(me, ClosedMidRequest, 1);

    // Part of a body, then close_notify and the TCP half-close.
    let mut c = tls.connect();
    let me = c.peer();
    c.send(&[post_head("/echo", 10, &[]), b"abc".to_vec()].concat());
    c.shutdown_write();
    let rest = c.read_to_close();
    assert!(rest.as_ref().is_ok_and(Vec::is_empty), "{rest:?}");
    drop(c);
    events.assert_closed(me, ClosedMidRequest, 1);

    // A reset right after the handshake (the server's side of it done: a reset before
    // that is a failed handshake, class `closed`).
    let c = tls.connect();
    let me = c.peer();
    eventually("the handshake", || handshakes(&tls.srv.stats()) == 4);
    reset(c);
    events.assert_closed(me, PeerReset, 0);

    // A reset in the middle of a head.
    let mut c = tls.connect();
    let me = c.peer();
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: te");
    events.wait_state(me, Active);
    reset(c);
    events.assert_closed(me, PeerReset, 0);

    eventually("every connection to close", || tls.srv.stats().open() == 0);
    let s = tls.srv.stats();
    assert_eq!((s.accepted, s.closed), (5, 5), "{s:?}");
    assert_eq!(
        (s.closed_for(ClosedMidRequest), s.closed_for(PeerReset)),
        (3, 2)
    );
    assert_eq!((handshakes(&s), s.tls_failed()), (5, 0));
    plaintext(&mut tls.connect());
}

// ---------------------------------------------------------------------------------------
// Pipelined requests in separate records
// ---------------------------------------------------------------------------------------

/// A rustls client over a blocking socket, for what `Client` cannot do: queue several TLS
/// records and write them to the socket in one system call.
struct RawTls {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
}

impl RawTls {
    fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> RawTls {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(config, name).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        RawTls { tcp, tls }
    }

    /// Each of `requests` in a record of its own, all the records in one write.
    fn send_records(&mut self, requests: &[Vec<u8>]) {
        for r in requests {
            self.tls.writer().write_all(r).unwrap();
        }
        self.tls.write_tls(&mut self.tcp).unwrap();
        assert!(
            !self.tls.wants_write(),
            "the records took more than one write"
        );
    }

    /// Reads until `n` `/plaintext` bodies have arrived; the error says what came before.
    fn read_plaintexts(&mut self, n: usize) -> Result<(), String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let count = |got: &[u8]| {
            got.windows(PLAINTEXT.len())
                .filter(|w| *w == PLAINTEXT)
                .count()
        };
        while count(&got) < n {
            match rustls::Stream::new(&mut self.tls, &mut self.tcp).read(&mut buf) {
                Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!("{e} after {:?}", String::from_utf8_lossy(&got)));
                }
            }
        }
        Ok(())
    }
}

/// Two pipelined requests, each in a TLS record of its own, arriving together (as when a
/// client writes each request as it goes and the server reads later): both are answered at
/// once. The first read of the socket takes the first record and only part of the second,
/// so the rest of it is still in the socket when the first request has been answered and
/// the connection waits, idle, for more.
#[test]
fn pipelined_requests_in_separate_tls_records_are_answered_at_once() {
    let idle = Duration::from_secs(2);
    let tls = Tls::start(builder().idle_timeout(idle).idle_grace(Duration::ZERO));
    let mut c = RawTls::connect(tls.addr(), tls.client.clone());
    // A first exchange: the handshake and its tickets are done with.
    c.send_records(&[get("/plaintext")]);
    c.read_plaintexts(1).unwrap();
    let pad = format!("X-Pad: {}", "a".repeat(3000));
    let request = get_with("/plaintext", &[&pad]);
    let since = Instant::now();
    c.send_records(&[request.clone(), request]);
    let answered = c.read_plaintexts(2);
    let took = since.elapsed();
    assert!(answered.is_ok(), "after {took:?}: {answered:?}");
    assert!(took < 300 * MS, "answered after {took:?}");
    assert_eq!(tls.srv.stats().requests, 3);
}
