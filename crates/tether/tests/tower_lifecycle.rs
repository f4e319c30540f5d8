//! Every lifecycle feature of the engine behind `tether::tower`: an axum router with
//! ordinary handlers, over real loopback sockets, meets the same timeouts, close reasons,
//! parking, eviction, per-address limit and two-phase drain as a native handler
//! (`lifecycle.rs`, `protocol.rs`), plus axum's `DefaultBodyLimit`, a tower
//! `ConcurrencyLimitLayer` and `Expect: 100-continue`.
//!
//! Waits are on events (the hook, a reply, a close, the handlers' log) with a deadline; the
//! only sleeps wait for a span of time the test is about (a lifetime, a minimum idle age).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use axum::Router;
use tether::{Builder, CloseReason, ConnState, Running};
use tether_test_support::client::{send_buffer_max, Client};
use tether_test_support::events::{trail, Events};
use tether_test_support::request as rq;
use tether_test_support::server::builder;
use tether_test_support::wait::{eventually, Watched, WAIT};
use tower::limit::ConcurrencyLimitLayer;
use tower::Layer;

const MS: Duration = Duration::from_millis(1);

use ConnState::{Active, Closed, Closing, Idle, New};

/// What the handlers did, in order; the tests wait on it.
type Log = Arc<Watched<Vec<&'static str>>>;

fn mark(log: &Log, what: &'static str) {
    log.update(|l| l.push(what));
}

/// Waits until the handlers have logged `what`.
fn wait_logged(log: &Log, what: &'static str) {
    let seen = log.wait_for(WAIT, |l| l.contains(&what).then_some(()));
    assert!(
        seen.is_some(),
        "{what:?} never logged: {:?}",
        log.read(Vec::clone)
    );
}

/// The application: ordinary axum handlers.
///
/// | route | behaviour |
/// |---|---|
/// | `GET /plaintext` | `Hello, World!` (logs `plaintext`) |
/// | `POST /echo` | the body, read whole (`Bytes`) |
/// | `POST /ignore` | `ignored`, the body never read |
/// | `GET /slow/{ms}` | sleeps, then `slept` (logs `slow start`, `slow end`) |
/// | `GET /endless` | a body that never ends, a piece every 10 ms |
/// | `GET /big/{len}` | `len` bytes, in one frame with its length |
/// | `POST /limited` | the body's length, under `DefaultBodyLimit::max(16)` |
/// | `POST /late-echo/{ms}` | sleeps, then reads the body and echoes it (logs `reading`) |
fn app(log: Log) -> Router {
    Router::new()
        .route(
            "/plaintext",
            get(|State(log): State<Log>| async move {
                mark(&log, "plaintext");
                "Hello, World!"
            }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/ignore", post(|| async { "ignored" }))
        .route(
            "/slow/{ms}",
            get(|State(log): State<Log>, Path(ms): Path<u64>| async move {
                mark(&log, "slow start");
                tokio::time::sleep(Duration::from_millis(ms)).await;
                mark(&log, "slow end");
                "slept"
            }),
        )
        .route(
            "/endless",
            get(|| async {
                let pieces = futures_util::stream::unfold(0u64, |n| async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(format!("{n}\n"))),
                        n + 1,
                    ))
                });
                Body::from_stream(pieces)
            }),
        )
        .route(
            "/big/{len}",
            get(|Path(len): Path<usize>| async move { vec![b'x'; len] }),
        )
        .route(
            "/limited",
            post(|body: Bytes| async move { body.len().to_string() })
                .layer(DefaultBodyLimit::max(16)),
        )
        .route(
            "/late-echo/{ms}",
            post(
                |State(log): State<Log>, Path(ms): Path<u64>, body: Body| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    mark(&log, "reading");
                    axum::body::to_bytes(body, 1024).await.unwrap_or_default()
                },
            ),
        )
        .with_state(log)
}

/// Runs [`app`] through `tether::tower::serve` on `builder` (one worker); returns the server
/// and the handlers' log.
fn start(builder: Builder) -> (Running, Log) {
    let log = Log::default();
    let server = builder.bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let srv = tether::tower::serve(server, app(log.clone())).expect("serve");
    (srv, log)
}

fn plaintext(c: &mut Client) {
    let r = c.request(&rq::get("/plaintext"));
    assert_eq!((r.status, r.text()), (200, "Hello, World!"));
}

/// Drops the client `c` (after the server closed its connection: a lingering close waits
/// for the client's end), then asserts the close as [`Events::assert_closed`].
fn assert_closed(events: &Events, c: Client, reason: CloseReason, requests: u64) {
    let peer = c.peer();
    drop(c);
    events.assert_closed(peer, reason, requests);
}

// ---------------------------------------------------------------------------------------
// Close reasons
// ---------------------------------------------------------------------------------------

/// Idle past the idle timeout, parked in the meantime: the connection closes silently for
/// the idle timeout, at its deadline. (tower.rs checks a plain idle timeout; here the
/// deadline is kept across parking.)
#[test]
fn idle_timeout_closes_a_parked_connection_at_its_deadline() {
    let events = Events::default();
    let idle = 300 * MS;
    let (srv, _) = start(
        events.on(builder()
            .idle_timeout(idle)
            .idle_grace(Duration::ZERO)
            .park_after(50 * MS)),
    );
    let mut c = Client::connect(srv.local_addr());
    plaintext(&mut c);
    eventually("the connection to park", || srv.stats().parked == 1);
    c.expect_closed();
    let me = c.peer();
    assert_closed(&events, c, CloseReason::IdleTimeout, 1);
    let waited = events.entered(me, Closing) - events.entered(me, Idle);
    assert!(
        waited >= idle && waited < idle + 300 * MS,
        "closed after {waited:?} idle"
    );
    assert_eq!(srv.stats().parked, 0);
}

/// A head cut short, then silence: `408` and a close, no request counted, the service
/// never called.
#[test]
fn header_timeout_is_408_and_a_close() {
    let events = Events::default();
    let timeout = 200 * MS;
    let (srv, log) = start(events.on(builder().header_timeout(timeout)));
    let mut c = Client::connect(srv.local_addr());
    let since = Instant::now();
    c.send(b"GET /plaintext HTTP/1.1\r\nHost");
    let r = c.reply();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.closes());
    assert!(since.elapsed() >= timeout, "{:?}", since.elapsed());
    c.expect_closed();
    assert_closed(&events, c, CloseReason::HeaderTimeout, 0);
    assert!(log.read(Vec::is_empty), "the service was called");
}

/// A body that stalls while the service reads it (axum's `Bytes` extractor): the engine's
/// `408` replaces whatever axum made of the failed body, and the connection closes.
#[test]
fn body_timeout_is_408_and_a_close() {
    let events = Events::default();
    let timeout = 200 * MS;
    let (srv, _) = start(events.on(builder().body_timeout(timeout)));
    let mut c = Client::connect(srv.local_addr());
    let since = Instant::now();
    c.send(&[rq::post_head("/echo", 10, &[]), b"abc".to_vec()].concat());
    let r = c.reply();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.closes());
    assert!(since.elapsed() >= timeout, "{:?}", since.elapsed());
    c.expect_closed();
    assert_closed(&events, c, CloseReason::BodyTimeout, 1);
}

/// A client that stops reading a large response (a small receive window, nothing read):
/// the connection closes for the write timeout, and the client gets the response cut.
#[test]
fn write_timeout_closes_a_client_that_stops_reading() {
    let events = Events::default();
    let timeout = 300 * MS;
    let (srv, _) = start(events.on(builder().write_timeout(timeout)));
    let mut c = Client::connect_with_recv_buffer(srv.local_addr(), 4096);
    let since = Instant::now();
    c.send(&rq::get(&format!("/big/{}", 2 * send_buffer_max())));
    let (at, closed) = events.first_in(Closed);
    assert_eq!(closed.peer, c.peer());
    assert!(at - since >= timeout, "closed after {:?}", at - since);
    // Reading at last, the client gets the response cut short.
    let cut = c.read_reply(false).map(|r| (r.status, r.body.len()));
    assert!(cut.is_err(), "whole response after the close: {cut:?}");
    assert_closed(&events, c, CloseReason::WriteTimeout, 1);
    assert_eq!(srv.stats().closed_for(CloseReason::WriteTimeout), 1);
}

/// Pipelined beyond the request limit: the last allowed response says `Connection: close`,
/// the request after it is not answered. (tower.rs checks the limit request by request.)
#[test]
fn max_requests_closes_on_the_last_of_a_pipeline() {
    let events = Events::default();
    let (srv, log) = start(events.on(builder().max_requests(3).limit_jitter(0.0)));
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::get("/plaintext").repeat(4));
    for i in 1..=3 {
        let r = c.reply();
        assert_eq!(r.status, 200);
        assert_eq!(r.closes(), i == 3, "response {i}: {r:?}");
    }
    c.expect_closed();
    assert_closed(&events, c, CloseReason::MaxRequests, 3);
    assert_eq!(
        log.read(Vec::len),
        3,
        "the fourth request reached the service"
    );
}

#[test]
fn max_lifetime_closes_at_the_next_response() {
    let events = Events::default();
    let lifetime = 200 * MS;
    let (srv, _) = start(events.on(builder().max_lifetime(lifetime).limit_jitter(0.0)));
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::get("/plaintext"));
    assert!(!r.closes(), "{r:?}");
    thread::sleep(lifetime + 50 * MS); // the lifetime passes
    let r = c.request(&rq::get("/plaintext"));
    assert_eq!(r.status, 200);
    assert!(r.closes(), "{r:?}");
    c.expect_closed();
    assert_closed(&events, c, CloseReason::MaxLifetime, 2);
}

/// `Connection: close` on a request whose body the service reads.
#[test]
fn connection_close_from_the_client_is_client_close() {
    let events = Events::default();
    let (srv, _) = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::build(
        "POST",
        "/echo",
        &["Connection: close"],
        Some(b"bye"),
    ));
    assert_eq!((r.status, r.text()), (200, "bye"));
    assert!(r.closes());
    c.expect_closed();
    assert_closed(&events, c, CloseReason::ClientClose, 1);
}

#[test]
fn a_client_closing_between_requests_is_peer_closed() {
    let events = Events::default();
    let (srv, _) = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    plaintext(&mut c);
    events.wait_state_after(c.peer(), Idle, 1);
    c.shutdown_write();
    c.expect_closed();
    assert_closed(&events, c, CloseReason::PeerClosed, 1);
}

/// An idle connection is closed by the drain once idle for the minimum age, well within the
/// drain window.
#[test]
fn the_drain_closes_an_idle_connection_for_shutdown() {
    let events = Events::default();
    let (srv, _) = start(
        events.on(builder()
            .min_idle_age(50 * MS)
            .drain_window(Duration::from_secs(2))
            .shutdown_timeout(Duration::from_secs(3))),
    );
    let mut c = Client::connect(srv.local_addr());
    plaintext(&mut c);
    let t0 = Instant::now();
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    c.expect_closed();
    assert_closed(&events, c, CloseReason::Shutdown, 1);
    let stopped = shutdown.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let d = stopped.drain;
    assert_eq!(
        (d.connections, d.connections_closed, d.connections_cut),
        (1, 1, 0),
        "{d:?}"
    );
}

/// A body the service never reads, longer than the drain budget: the answer says
/// `Connection: close`, and the connection closes for the unread body.
#[test]
fn a_body_left_unread_beyond_the_drain_budget_is_unread_body() {
    let events = Events::default();
    let (srv, _) = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    // A megabyte announced (under the 1 MiB body limit), none of it sent.
    c.send(&rq::post_head("/ignore", 1_000_000, &[]));
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "ignored"));
    assert!(r.closes(), "{r:?}");
    c.expect_closed();
    assert_closed(&events, c, CloseReason::UnreadBody, 1);
}

// ---------------------------------------------------------------------------------------
// Parking
// ---------------------------------------------------------------------------------------

/// Idle past `park_after`, the connection parks (it gives up its task); its next requests,
/// one with a body the service reads, are answered on the same connection.
#[test]
fn an_idle_connection_parks_and_its_next_request_is_answered() {
    let events = Events::default();
    let (srv, _) = start(events.on(builder().park_after(50 * MS)));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    plaintext(&mut c);
    eventually("the connection to park", || srv.stats().parked == 1);
    let s = srv.stats();
    assert_eq!((s.in_state(Idle), s.open()), (1, 1));
    let r = c.request(&rq::post("/echo", b"after the park"));
    assert_eq!((r.status, r.text()), (200, "after the park"));
    assert!(!r.closes());
    eventually("the connection to park again", || srv.stats().parked == 1);
    plaintext(&mut c);
    events.wait_state_after(me, Idle, 3);
    let mine = events.of(me);
    // Parking is not a change of state; one connection, one id, no close.
    assert_eq!(
        trail(&mine),
        [
            (New, 0, None),
            (Active, 0, None),
            (Idle, 1, None),
            (Active, 1, None),
            (Idle, 2, None),
            (Active, 2, None),
            (Idle, 3, None),
        ]
    );
    assert!(mine.iter().all(|e| e.id == mine[0].id));
    let s = srv.stats();
    assert_eq!((s.accepted, s.requests, s.closed), (1, 3, 0));
}

// ---------------------------------------------------------------------------------------
// Connection limits
// ---------------------------------------------------------------------------------------

#[test]
fn at_the_connection_limit_the_oldest_idle_connection_is_evicted() {
    let events = Events::default();
    let (srv, _) = start(events.on(builder().max_connections(1).min_idle_age(50 * MS)));
    let addr = srv.local_addr();
    let mut a = Client::connect(addr);
    plaintext(&mut a);
    events.wait_state_after(a.peer(), Idle, 1);
    thread::sleep(80 * MS); // a is past the minimum idle age
    let mut b = Client::connect(addr);
    plaintext(&mut b);
    a.expect_closed();
    assert_closed(&events, a, CloseReason::Evicted, 1);
    plaintext(&mut b);
    let s = srv.stats();
    assert_eq!(
        (s.accepted, s.refused, s.closed_for(CloseReason::Evicted)),
        (2, 0, 1)
    );
}

#[test]
fn over_the_per_address_limit_a_second_connection_gets_429() {
    let (srv, log) = start(builder().max_connections_per_ip(1));
    let addr = srv.local_addr();
    let mut a = Client::connect(addr);
    plaintext(&mut a);
    let mut b = Client::connect(addr);
    let r = b.request(&rq::get("/plaintext"));
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.closes());
    b.expect_closed();
    // Refused by the engine: the service never saw the request.
    assert_eq!(log.read(Vec::len), 1);
    // Another address has its own count; the first connection goes on.
    let mut other = Client::connect_from([127, 0, 0, 2].into(), addr);
    plaintext(&mut other);
    plaintext(&mut a);
    let s = srv.stats();
    assert_eq!((s.accepted, s.refused), (2, 1));
}

// ---------------------------------------------------------------------------------------
// The two-phase drain
// ---------------------------------------------------------------------------------------

/// A slow handler in flight when the shutdown starts completes; the connection then closes
/// for the shutdown, nothing cut.
#[test]
fn a_slow_handler_in_flight_at_shutdown_completes() {
    let events = Events::default();
    let (srv, log) = start(
        events.on(builder()
            .min_idle_age(50 * MS)
            .drain_window(Duration::from_secs(2))
            .shutdown_timeout(Duration::from_secs(3))),
    );
    let handle = srv.handle();
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::get("/slow/300"));
    wait_logged(&log, "slow start");
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    eventually("the drain", || handle.is_draining());
    assert!(
        !log.read(|l| l.contains(&"slow end")),
        "the handler ended before the drain"
    );
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "slept"));
    // The response was planned before the drain, so (as with a native handler, see
    // lifecycle.rs) it may lack `Connection: close`; the drain then closes the connection
    // once idle for the minimum age, with no further request.
    c.expect_closed();
    assert_closed(&events, c, CloseReason::Shutdown, 1);
    let stopped = shutdown.join().unwrap();
    let d = stopped.drain;
    assert_eq!(
        (
            d.connections,
            d.requests_completed,
            d.connections_closed,
            d.connections_cut
        ),
        (1, 1, 1, 0),
        "{d:?}"
    );
}

/// carries `Connection: close`.
#[test]
fn a_slow_handler_in_flight_at_shutdown_answers_with_close() {
    let (srv, log) = start(
        builder()
            .min_idle_age(Duration::from_secs(1))
            .drain_window(Duration::from_secs(2))
            .shutdown_timeout(Duration::from_secs(3)),
    );
    let handle = srv.handle();
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::get("/slow/300"));
    wait_logged(&log, "slow start");
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    eventually("the drain", || handle.is_draining());
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "slept"));
    assert!(r.closes(), "{r:?}");
    c.expect_closed();
    shutdown.join().unwrap();
}

/// An endless streaming response is cut at the hard deadline, and the drain report counts
/// it; the client sees a chunked body without its last chunk.
#[test]
fn an_endless_stream_is_cut_at_the_hard_deadline() {
    use std::io::Read;
    let events = Events::default();
    let deadline = 400 * MS;
    let (srv, _) = start(
        events.on(builder()
            .min_idle_age(50 * MS)
            .drain_window(100 * MS)
            .shutdown_timeout(deadline)),
    );
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::get("/endless"));
    // The head and the first pieces are out.
    let mut first = [0u8; 512];
    let n = c
        .stream()
        .read(&mut first)
        .expect("the start of the stream");
    let head = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    let t0 = Instant::now();
    let stopped = srv.shutdown().unwrap();
    let took = t0.elapsed();
    assert!(
        took >= deadline - 50 * MS && took < Duration::from_secs(2),
        "shutdown took {took:?}"
    );
    let d = stopped.drain;
    assert_eq!(
        (d.connections, d.connections_cut, d.requests_cut),
        (1, 1, 1),
        "{d:?}"
    );
    // Whatever the client reads after the head ends without the last chunk.
    let rest = c.read_to_close().unwrap_or_default();
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.ends_with("0\r\n\r\n"), "a cut body looks complete");
    let last = events.closed(c.peer());
    assert_eq!(last.reason, Some(CloseReason::Shutdown), "{last:?}");
}

// ---------------------------------------------------------------------------------------
// axum's DefaultBodyLimit
// ---------------------------------------------------------------------------------------

/// Over axum's limit the service answers its own `413`. What becomes of the connection is
/// the engine's unread-body decision: axum's `Limited` body fails on the first piece that
/// crosses the limit, so with a small body (read whole in that piece, or discarded within
/// the drain budget) the connection lives on; with a body far beyond the drain budget the
/// `413` says `Connection: close` and the connection closes for the unread body.
#[test]
fn default_body_limit_is_axums_413_and_the_engine_decides_the_connection() {
    let events = Events::default();
    let (srv, _) = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&rq::post("/limited", &[b'x'; 10]));
    assert_eq!((r.status, r.text()), (200, "10"));
    let r = c.request(&rq::post("/limited", &[b'x'; 100]));
    assert_eq!(r.status, 413, "{r:?}");
    assert!(!r.closes(), "a small body over the limit closed: {r:?}");
    plaintext(&mut c);
    assert_eq!(srv.stats().accepted, 1);

    // A megabyte announced, a kilobyte sent: far beyond the drain budget.
    let mut c = Client::connect(srv.local_addr());
    c.send(&[rq::post_head("/limited", 1_000_000, &[]), vec![b'x'; 1000]].concat());
    let r = c.reply();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.closes(), "{r:?}");
    c.expect_closed_or_reset();
    assert_closed(&events, c, CloseReason::UnreadBody, 1);
}

// ---------------------------------------------------------------------------------------
// tower's ConcurrencyLimitLayer
// ---------------------------------------------------------------------------------------

/// `ConcurrencyLimitLayer::new(1)` around the router: the second connection's request
/// waits in `poll_ready` until the first one's handler is done, then is answered.
#[test]
fn a_concurrency_limit_makes_the_second_request_wait_in_poll_ready() {
    let log = Log::default();
    let service = ConcurrencyLimitLayer::new(1).layer(app(log.clone()));
    let server = builder().bind("127.0.0.1:0").expect("bind");
    let srv = tether::tower::serve(server, service).expect("serve");
    let mut a = Client::connect(srv.local_addr());
    let mut b = Client::connect(srv.local_addr());
    a.send(&rq::get("/slow/300"));
    wait_logged(&log, "slow start");
    b.send(&rq::get("/plaintext"));
    let r = b.reply();
    assert_eq!((r.status, r.text()), (200, "Hello, World!"));
    let r = a.reply();
    assert_eq!((r.status, r.text()), (200, "slept"));
    // b's handler ran only once a's had finished (its permit released).
    assert_eq!(
        log.read(Vec::clone),
        ["slow start", "slow end", "plaintext"]
    );
    // Both connections go on.
    plaintext(&mut a);
    plaintext(&mut b);
    assert_eq!(srv.stats().accepted, 2);
}

// ---------------------------------------------------------------------------------------
// Expect: 100-continue (tower.rs has the basic read and unread cases)
// ---------------------------------------------------------------------------------------

/// `100 Continue` goes out when the service polls the body, not with the head: after the
/// handler's 200 ms. The connection stays persistent.
#[test]
fn continue_waits_until_the_service_polls_the_body() {
    let delay = 200 * MS;
    let (srv, log) = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let since = Instant::now();
    c.send(&rq::post_head(
        &format!("/late-echo/{}", delay.as_millis()),
        5,
        &["Expect: 100-continue"],
    ));
    let interim = c.reply();
    assert_eq!(interim.status, 100);
    assert!(since.elapsed() >= delay, "100 before the service read");
    assert_eq!(log.read(Vec::clone), ["reading"]);
    let r = c.request(b"hello");
    assert_eq!((r.status, r.text()), (200, "hello"));
    assert!(!r.closes(), "{r:?}");
    plaintext(&mut c);
}

/// A chunked body behind `Expect: 100-continue`, read by the service.
#[test]
fn continue_then_a_chunked_body() {
    let (srv, _) = start(builder());
    let mut c = Client::connect(srv.local_addr());
    let mut head = rq::chunked_head("/echo");
    head.truncate(head.len() - 2);
    head.extend_from_slice(b"Expect: 100-continue\r\n\r\n");
    c.send(&head);
    assert_eq!(c.reply().status, 100);
    let chunked = rq::chunked_post("/echo", &[b"chunked ", b"after 100"]);
    c.send(&chunked[rq::chunked_head("/echo").len()..]);
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "chunked after 100"));
    assert!(!r.closes(), "{r:?}");
    plaintext(&mut c);
}

/// A service that never reads a body the client holds back for `100 Continue`: no 100, and
/// a close whose reason is the unread body, even a tiny one (the client may or may not send
/// it, so no amount of draining helps; without `Expect` such a body is discarded and the
/// connection kept, as tower.rs checks).
#[test]
fn an_unread_body_awaiting_continue_closes_for_unread_body() {
    let events = Events::default();
    let (srv, _) = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    c.send(&rq::post_head("/ignore", 5, &["Expect: 100-continue"]));
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "ignored"), "no 100 first");
    assert!(r.closes());
    c.expect_closed();
    assert_closed(&events, c, CloseReason::UnreadBody, 1);
}
