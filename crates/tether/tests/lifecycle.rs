//! Connection lifecycle over real loopback sockets: the states the hook reports and the close
//! reasons it gives, the counters, the connection limits (eviction of the least recently used
//! idle connection, 503 and 429), and the two-phase drain with a second instance on the port.
//!
//! Waits are on events (the hook, a reply, a close) with a deadline; the only sleeps wait for
//! a span of time the test is about (a minimum idle age, a timeout).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tether::{
    Builder, CloseReason, ConnState, Handle, Handler, Request, Response, Running, Status,
};
use tether_test_support::client::{assert_turns_to, Client};
use tether_test_support::events::{trail, Events};
use tether_test_support::request::{get, get10, get_with, post_head};
use tether_test_support::server::{builder, start};
use tether_test_support::wait::{eventually, WAIT};

const MS: Duration = Duration::from_millis(1);

use ConnState::{Active, Closed, Closing, Idle, New};

// ---------------------------------------------------------------------------------------
// States and the hook
// ---------------------------------------------------------------------------------------

#[test]
fn hook_follows_a_connection_through_its_states() {
    let events = Events::default();
    let srv = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    events.wait_state(me, New);
    for _ in 0..2 {
        assert_eq!(c.request(&get("/plaintext")).status, 200);
    }
    events.wait_state_after(me, Idle, 2);
    let r = c.request(&get_with("/plaintext", &["Connection: close"]));
    assert!(r.closes());
    c.expect_closed();
    let last = events.closed(me);
    assert_eq!(last.reason, Some(CloseReason::ClientClose));

    let mine = events.of(me);
    assert_eq!(
        trail(&mine),
        [
            (New, 0, None),
            (Active, 0, None),
            (Idle, 1, None),
            (Active, 1, None),
            (Idle, 2, None),
            (Active, 2, None),
            (Closing, 3, Some(CloseReason::ClientClose)),
            (Closed, 3, Some(CloseReason::ClientClose)),
        ]
    );
    let id = mine[0].id;
    assert!(mine.iter().all(|e| e.id == id && e.peer == me));

    // A second connection has an id of its own.
    let mut other = Client::connect(srv.local_addr());
    let them = other.peer();
    assert_eq!(other.request(&get("/plaintext")).status, 200);
    events.wait_state_after(them, Idle, 1);
    assert_ne!(events.of(them)[0].id, id);
}

/// A client that closes between requests: the connection goes from Idle to Closing, never
/// through Active (no request was being read).
#[test]
fn peer_close_between_requests_goes_from_idle_to_closing() {
    let events = Events::default();
    let srv = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    assert_eq!(c.request(&get("/plaintext")).status, 200);
    events.wait_state_after(me, Idle, 1);
    drop(c);
    events.closed(me);
    assert_eq!(
        trail(&events.of(me)),
        [
            (New, 0, None),
            (Active, 0, None),
            (Idle, 1, None),
            (Closing, 1, Some(CloseReason::PeerClosed)),
            (Closed, 1, Some(CloseReason::PeerClosed)),
        ]
    );
}

#[test]
fn a_pipelined_request_keeps_the_connection_active() {
    let events = Events::default();
    let srv = start(events.on(builder()));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    c.send(&[get("/plaintext"), get("/plaintext"), get("/plaintext")].concat());
    for _ in 0..3 {
        assert_eq!(c.reply().status, 200);
    }
    events.wait_state_after(me, Idle, 3);
    // The second and third requests were buffered when the first was answered: no Idle
    // before the last.
    assert_eq!(
        trail(&events.of(me)),
        [(New, 0, None), (Active, 0, None), (Idle, 3, None)]
    );
}

#[test]
fn a_half_read_body_keeps_the_connection_active() {
    let events = Events::default();
    let srv = start(events.on(builder().drain_time(WAIT)));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    // The handler answers without reading the body; the engine then waits for the rest of
    // it to keep the connection.
    c.send(&post_head("/ignore-body", 10, &[]));
    c.send(b"abc");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "ignored"));
    assert!(!r.closes());
    // Answered, but 7 body bytes are owed: not idle.
    thread::sleep(50 * MS);
    let s = srv.stats();
    assert_eq!(
        (s.in_state(Active), s.in_state(Idle)),
        (1, 0),
        "{:?}",
        events.of(me)
    );
    assert!(!events.of(me).iter().any(|e| e.state == Idle));
    c.send(b"defghij");
    events.wait_state_after(me, Idle, 1);
    let s = srv.stats();
    assert_eq!((s.in_state(Active), s.in_state(Idle)), (0, 1));
    assert_eq!(c.request(&get("/plaintext")).status, 200);
}

// ---------------------------------------------------------------------------------------
// Close reasons
// ---------------------------------------------------------------------------------------

/// A server with short timeouts, so that every timeout can be seen.
fn short_timeouts(events: &Events) -> Running {
    start(
        events.on(builder()
            .header_timeout(300 * MS)
            .idle_timeout(300 * MS)
            .idle_grace(Duration::ZERO)
            .body_timeout(300 * MS)
            .max_requests(3)
            .limit_jitter(0.0)),
    )
}

/// A script run on a new connection; it returns the client if it is to stay open until the
/// server closes the connection.
type Script = Box<dyn FnOnce(Client) -> Option<Client>>;

/// Runs `script` on a new connection and returns the reason and request count of its close.
fn close_of(srv: &Running, events: &Events, script: Script) -> (CloseReason, u64) {
    let c = Client::connect(srv.local_addr());
    let me = c.peer();
    let _kept = script(c);
    let last = events.closed(me);
    let closing = events
        .of(me)
        .into_iter()
        .find(|e| e.state == Closing)
        .expect("Closing before Closed");
    assert_eq!(closing.reason, last.reason, "Closing and Closed disagree");
    (last.reason.expect("Closed carries a reason"), last.requests)
}

fn plaintext(c: &mut Client) {
    let r = c.request(&get("/plaintext"));
    assert_eq!(r.status, 200);
}

#[test]
fn close_reasons_are_typed() {
    let events = Events::default();
    let srv = short_timeouts(&events);
    use CloseReason::*;
    let cases: Vec<(&str, CloseReason, u64, Script)> = vec![
        (
            "client closes between requests",
            PeerClosed,
            1,
            Box::new(|mut c| {
                plaintext(&mut c);
                c.shutdown_write();
                Some(c)
            }),
        ),
        (
            "client resets between requests",
            PeerReset,
            1,
            Box::new(|mut c| {
                plaintext(&mut c);
                socket2::SockRef::from(&c.stream())
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                None // closed with a zero linger time: a reset
            }),
        ),
        (
            "nothing within the idle timeout",
            IdleTimeout,
            1,
            Box::new(|mut c| {
                plaintext(&mut c);
                c.expect_closed();
                None
            }),
        ),
        (
            "a head cut short by the header timeout",
            HeaderTimeout,
            0,
            Box::new(|mut c| {
                c.send(b"GET /plaintext HTTP/1.1\r\nHost");
                assert_eq!(c.reply().status, 408);
                c.expect_closed();
                None
            }),
        ),
        (
            "a body stalled past the body timeout (its 408 counts as an answer)",
            BodyTimeout,
            1,
            Box::new(|mut c| {
                c.send(&post_head("/echo", 10, &[]));
                c.send(b"abc");
                assert_eq!(c.reply().status, 408);
                c.expect_closed();
                None
            }),
        ),
        (
            "the last request allowed",
            MaxRequests,
            3,
            Box::new(|mut c| {
                plaintext(&mut c);
                plaintext(&mut c);
                assert!(c.request(&get("/plaintext")).closes());
                c.expect_closed();
                None
            }),
        ),
        (
            "Connection: close",
            ClientClose,
            1,
            Box::new(|mut c| {
                assert!(c
                    .request(&get_with("/plaintext", &["Connection: close"]))
                    .closes());
                c.expect_closed();
                None
            }),
        ),
        (
            "a malformed request",
            ProtocolError,
            0,
            Box::new(|mut c| {
                assert_eq!(c.request(b"NOT HTTP AT ALL\r\n\r\n").status, 400);
                c.expect_closed();
                None
            }),
        ),
        (
            "the client closes in the middle of a head",
            ClosedMidRequest,
            0,
            Box::new(|mut c| {
                c.send(b"GET /plaintext HTTP/1.1\r\n");
                c.shutdown_write();
                Some(c)
            }),
        ),
        (
            "the handler asks to close",
            HandlerClose,
            1,
            Box::new(|mut c| {
                assert!(c.request(&get("/close")).closes());
                c.expect_closed();
                None
            }),
        ),
        (
            "the handler fails",
            HandlerError,
            1,
            Box::new(|mut c| {
                assert_eq!(c.request(&get("/fail")).status, 500);
                c.expect_closed();
                None
            }),
        ),
        (
            "a body left unread beyond the drain budget",
            UnreadBody,
            1,
            Box::new(|mut c| {
                c.send(&post_head("/ignore-body", 1_000_000, &[]));
                let r = c.reply();
                assert!(r.closes(), "{r:?}");
                c.expect_closed();
                None
            }),
        ),
        (
            "a streamed body to an HTTP/1.0 client, delimited by the close",
            CloseDelimited,
            1,
            Box::new(|mut c| {
                let r = c.request(&get10("/stream", &["Connection: keep-alive"]));
                assert!(r.close_delimited, "{r:?}");
                None
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (what, reason, requests, script) in cases {
        let got = close_of(&srv, &events, script);
        if got != (reason, requests) {
            failures.push(format!(
                "{what}: expected {:?}, got {got:?}",
                (reason, requests)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let s = srv.stats();
    for reason in [
        PeerClosed,
        IdleTimeout,
        HeaderTimeout,
        MaxRequests,
        ProtocolError,
    ] {
        assert_eq!(s.closed_for(reason), 1, "{reason:?}");
    }
}

/// A connection that never sends a byte is closed by the header timeout, and the reason
/// says so.
#[test]
fn silent_new_connection_closes_for_the_header_timeout() {
    let events = Events::default();
    let srv = short_timeouts(&events);
    let (reason, requests) = close_of(
        &srv,
        &events,
        Box::new(|mut c| {
            c.expect_closed();
            Some(c)
        }),
    );
    assert_eq!((reason, requests), (CloseReason::HeaderTimeout, 0));
}

#[test]
fn max_lifetime_is_a_close_reason() {
    let events = Events::default();
    let srv = start(events.on(builder().max_lifetime(200 * MS).limit_jitter(0.0)));
    let (reason, requests) = close_of(
        &srv,
        &events,
        Box::new(|mut c| {
            plaintext(&mut c);
            thread::sleep(250 * MS); // the lifetime passes
            assert!(c.request(&get("/plaintext")).closes());
            c.expect_closed();
            None
        }),
    );
    assert_eq!((reason, requests), (CloseReason::MaxLifetime, 2));
}

// ---------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------

#[test]
fn counters_by_state_reason_and_requests_per_connection() {
    let events = Events::default();
    let srv = start(events.on(builder()));
    let addr = srv.local_addr();

    // Three requests, then idle.
    let mut idle = Client::connect(addr);
    for _ in 0..3 {
        plaintext(&mut idle);
    }
    events.wait_state_after(idle.peer(), Idle, 3);
    // One request with Connection: close.
    let mut once = Client::connect(addr);
    assert!(once
        .request(&get_with("/plaintext", &["Connection: close"]))
        .closes());
    once.expect_closed();
    events.closed(once.peer());
    // Five requests, then the client closes.
    let mut five = Client::connect(addr);
    for _ in 0..5 {
        plaintext(&mut five);
    }
    let five_peer = five.peer();
    drop(five);
    events.closed(five_peer);

    let s = srv.stats();
    assert_eq!(s.accepted, 3);
    assert_eq!(s.refused, 0);
    assert_eq!(s.requests, 9);
    assert_eq!(
        (
            s.in_state(New),
            s.in_state(Active),
            s.in_state(Idle),
            s.in_state(Closing)
        ),
        (0, 0, 1, 0)
    );
    assert_eq!(s.open(), 1);
    assert_eq!(s.closed, 2);
    assert_eq!(s.closed_for(CloseReason::ClientClose), 1);
    assert_eq!(s.closed_for(CloseReason::PeerClosed), 1);
    let bucket = |le: u64| {
        let i = tether::REQUESTS_PER_CONN_BUCKETS
            .iter()
            .position(|&b| b == le)
            .unwrap();
        s.requests_per_conn[i]
    };
    assert_eq!((bucket(1), bucket(8)), (1, 1));
    assert_eq!(s.requests_per_conn.iter().sum::<u64>(), 2);
    assert_eq!(s.requests_per_conn_sum, 6);

    let text = s.to_prometheus();
    for line in [
        "tether_connections_accepted_total 3",
        "tether_requests_total 9",
        "tether_connections{state=\"active\"} 0",
        "tether_connections{state=\"idle\"} 1",
        "tether_connections_closed_total{reason=\"client_close\"} 1",
        "tether_connections_closed_total{reason=\"peer_closed\"} 1",
        "tether_requests_per_connection_bucket{le=\"1\"} 1",
        "tether_requests_per_connection_bucket{le=\"4\"} 1",
        "tether_requests_per_connection_bucket{le=\"8\"} 2",
        "tether_requests_per_connection_bucket{le=\"+Inf\"} 2",
        "tether_requests_per_connection_sum 6",
        "tether_requests_per_connection_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

/// A connection that has sent nothing is New in the gauges (and in the hook), not Active.
#[test]
fn a_silent_connection_is_new() {
    let events = Events::default();
    let srv = start(events.on(builder()));
    let silent = Client::connect(srv.local_addr());
    events.wait_state(silent.peer(), New);
    thread::sleep(50 * MS); // time for a spurious change of state to show
    let s = srv.stats();
    assert_eq!((s.in_state(New), s.in_state(Active), s.open()), (1, 0, 1));
    assert_eq!(trail(&events.of(silent.peer())), [(New, 0, None)]);
}

// ---------------------------------------------------------------------------------------
// Connection limits
// ---------------------------------------------------------------------------------------

/// Reads the one response a refused connection gets, then its close.
fn refused_with(c: &mut Client, status: u16) {
    let r = c.request(&get("/plaintext"));
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.closes());
    c.expect_closed();
}

#[test]
fn at_the_limit_the_least_recently_used_idle_connection_is_evicted() {
    let events = Events::default();
    let srv = start(events.on(builder().max_connections(3).min_idle_age(100 * MS)));
    let addr = srv.local_addr();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    let mut c = Client::connect(addr);
    for x in [&mut a, &mut b, &mut c] {
        plaintext(x);
    }
    plaintext(&mut a);
    events.wait_state_after(a.peer(), Idle, 2);
    // Least recently used first: b, c, a.
    thread::sleep(150 * MS); // all three are past the minimum idle age
    let mut d = Client::connect(addr);
    plaintext(&mut d);
    b.expect_closed();
    let evicted = events.closed(b.peer());
    assert_eq!(
        (evicted.reason, evicted.requests),
        (Some(CloseReason::Evicted), 1)
    );
    for x in [&mut c, &mut a] {
        plaintext(x);
    }
    // Now d is the least recently used.
    events.wait_state_after(a.peer(), Idle, 3);
    thread::sleep(150 * MS);
    let mut e = Client::connect(addr);
    plaintext(&mut e);
    d.expect_closed();
    events.closed_for(d.peer(), CloseReason::Evicted);
    for x in [&mut a, &mut c, &mut e] {
        plaintext(x);
    }
    let s = srv.stats();
    assert_eq!(
        (s.accepted, s.refused, s.closed_for(CloseReason::Evicted)),
        (5, 0, 2)
    );
}

#[test]
fn at_the_limit_young_or_busy_connections_are_not_evicted() {
    let srv = start(
        builder()
            .max_connections(2)
            .min_idle_age(Duration::from_secs(10)),
    );
    let addr = srv.local_addr();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    plaintext(&mut a);
    plaintext(&mut b);
    // Both idle, but younger than the minimum idle age: the newcomer is refused.
    refused_with(&mut Client::connect(addr), 503);
    plaintext(&mut a);
    plaintext(&mut b);

    // Busy connections are never evicted, whatever their age.
    let srv = start(builder().max_connections(1).min_idle_age(Duration::ZERO));
    let mut busy = Client::connect(srv.local_addr());
    busy.send(&get("/sleep?ms=500"));
    eventually("the request to start", || {
        srv.stats().in_state(ConnState::Active) == 1
    });
    refused_with(&mut Client::connect(srv.local_addr()), 503);
    let r = busy.reply();
    assert_eq!((r.status, r.text()), (200, "slept"));
    assert_eq!(srv.stats().refused, 1);
}

/// Sends `GET /plaintext` from `ip` (any address of 127.0.0.0/8) on a new connection and
/// returns the status of the response.
fn status_from(ip: [u8; 4], addr: SocketAddr) -> u16 {
    let mut c = Client::connect_from(ip.into(), addr);
    c.request(&get("/plaintext")).status
}

#[test]
fn over_the_per_address_limit_a_client_gets_429() {
    let events = Events::default();
    let srv = start(events.on(builder().max_connections_per_ip(2)));
    let addr = srv.local_addr();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    plaintext(&mut a);
    plaintext(&mut b);
    refused_with(&mut Client::connect(addr), 429);
    // Another address is not limited by this one's connections.
    assert_eq!(status_from([127, 0, 0, 2], addr), 200);
    // A place freed is a place taken.
    let a_peer = a.peer();
    drop(a);
    events.closed(a_peer);
    plaintext(&mut Client::connect(addr));
    let s = srv.stats();
    assert_eq!((s.accepted, s.refused), (4, 1));
}

/// The limit is server-wide, so the least recently used idle connection is found over every
/// worker: a newcomer on a worker that holds no idle connection still evicts one held by
/// another worker rather than being refused.
#[test]
fn eviction_looks_at_every_worker() {
    let events = Events::default();
    let workers = 2;
    let srv = start(
        events.on(builder()
            .workers(workers)
            .max_connections(2)
            .min_idle_age(20 * MS)),
    );
    let addr = srv.local_addr();
    // The worker of a connection is its id modulo the number of workers.
    let worker_of = |c: &Client| {
        let me = c.peer();
        events.wait_state(me, New);
        events.of(me)[0].id % workers as u64
    };
    let mut held: Vec<Client> = Vec::new();
    for _ in 0..40 {
        let mut c = Client::connect(addr);
        let r = c.request(&get("/plaintext"));
        if r.status == 503 {
            panic!(
                "refused while {} idle connections could be evicted",
                held.len()
            );
        }
        let w = worker_of(&c);
        if w == 0 {
            // Keep the connections of worker 0 that are still open (others were evicted).
            held.retain_mut(|h| {
                h.send(&get("/plaintext"));
                h.read_reply(false).is_ok_and(|r| r.status == 200)
            });
            held.push(c);
        } else if held.len() == 2 {
            // A newcomer on worker 1 evicted one of worker 0's: the right outcome.
            return;
        }
        thread::sleep(30 * MS); // past the minimum idle age
    }
    panic!("no connection landed on worker 1 with worker 0 full");
}

// ---------------------------------------------------------------------------------------
// Draining
// ---------------------------------------------------------------------------------------

/// The handler of the drain tests: names its instance in `X-Instance`.
///
/// | path | behaviour |
/// |---|---|
/// | `/work?ms=N` | sleeps N ms (asynchronously), answers `done` |
/// | `/block?ms=N` | blocks the worker thread N ms, answers `done` |
/// | `/readyz` | 200, or 503 once the server drains |
struct Instance {
    name: &'static str,
    handle: Handle,
    /// Requests that reached the handler.
    started: Arc<AtomicU64>,
}

impl Handler for Instance {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> std::io::Result<()> {
        let ms = req
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        self.started.fetch_add(1, Ordering::Relaxed);
        res.header("X-Instance", self.name);
        match req.path() {
            "/work" => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                res.body_static(b"done");
            }
            "/block" => {
                thread::sleep(Duration::from_millis(ms));
                res.body_static(b"done");
            }
            "/readyz" if self.handle.is_draining() => {
                res.status(Status::SERVICE_UNAVAILABLE)
                    .body_static(b"draining");
            }
            "/readyz" => {
                res.body_static(b"ready");
            }
            _ => {
                res.status(Status::NOT_FOUND);
            }
        }
        Ok(())
    }
}

/// Runs [`Instance`] `name` on `addr`; returns the server and its count of requests that
/// reached the handler.
fn run_instance(
    builder: Builder,
    addr: SocketAddr,
    name: &'static str,
) -> (Running, Arc<AtomicU64>) {
    let server = builder.bind(addr).unwrap();
    let handle = server.handle();
    let started = Arc::new(AtomicU64::new(0));
    let count = started.clone();
    let running = server
        .spawn(move || Instance {
            name,
            handle: handle.clone(),
            started: count.clone(),
        })
        .unwrap();
    (running, started)
}

fn any_addr() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What one client saw of one request.
#[derive(Debug)]
struct Seen {
    sent: Instant,
    /// Which connection of this client (0, 1, ...).
    conn: usize,
    instance: String,
    closes: bool,
}

/// A client thread keeping one persistent connection busy, reconnecting when told to close.
struct Busy {
    seen: Vec<Seen>,
    errors: Vec<String>,
}

fn busy_client(addr: SocketAddr, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> Busy {
    let mut out = Busy {
        seen: Vec::new(),
        errors: Vec::new(),
    };
    let mut conn = 0;
    let mut c = Client::connect(addr);
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        c.send(&get("/work?ms=2"));
        match c.read_reply(false) {
            Ok(r) if r.status == 200 && r.body == b"done" => {
                let closes = r.closes();
                out.seen.push(Seen {
                    sent,
                    conn,
                    instance: r.header("x-instance").unwrap_or("?").to_owned(),
                    closes,
                });
                done.fetch_add(1, Ordering::Relaxed);
                if closes {
                    if let Err(e) = c.read_to_close() {
                        out.errors.push(format!("conn {conn}: after close: {e}"));
                    }
                    conn += 1;
                    c = Client::connect(addr);
                }
            }
            Ok(r) => out.errors.push(format!("conn {conn}: {r:?}")),
            Err(e) => {
                out.errors.push(format!("conn {conn}: {e}"));
                conn += 1;
                c = Client::connect(addr);
            }
        }
    }
    out
}

#[test]
fn drain_under_load_loses_no_request_and_hands_over_to_a_second_instance() {
    const CLIENTS: usize = 50;
    let (a, _) = run_instance(
        builder()
            .workers(2)
            .drain_window(Duration::from_secs(2))
            .shutdown_timeout(Duration::from_secs(4))
            .min_idle_age(500 * MS),
        any_addr(),
        "a",
    );
    let addr = a.local_addr();
    let a_handle = a.handle();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    // The readiness probe has its own connection to a.
    let mut probe = Client::connect(addr);
    let r = probe.request(&get("/readyz"));
    assert_eq!((r.status, r.header("x-instance")), (200, Some("a")));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            thread::spawn(move || busy_client(addr, stop, done))
        })
        .collect();
    // b binds once every client holds a connection to a.
    eventually("every client to be connected to a", || {
        a.stats().accepted == CLIENTS as u64 + 1
    });
    let (b, _) = run_instance(builder().workers(1), addr, "b");
    eventually("some load", || {
        done.load(Ordering::Relaxed) >= 5 * CLIENTS as u64
    });

    let drain_start = Instant::now();
    let shutdown = thread::spawn(move || a.shutdown().unwrap());
    eventually("a to drain", || a_handle.is_draining());
    // Readiness turns 503 at the start of the drain (on a connection that stays busy) and
    // stays so until a's worker closes the connection.
    let probed = probe.get_until_close("/readyz", WAIT);
    for r in &probed {
        assert_eq!(r.header("x-instance"), Some("a"));
    }
    let probes = 1 + probed.len() as u64;
    assert_turns_to(&probed, 503);
    probe.expect_closed();
    drop(probe);

    let stopped = shutdown.join().unwrap();
    let drained = drain_start.elapsed();
    // Keep the load on b for a moment after a has gone.
    let after = done.load(Ordering::Relaxed);
    eventually("requests served by b alone", || {
        done.load(Ordering::Relaxed) >= after + 2 * CLIENTS as u64
    });
    stop.store(true, Ordering::Relaxed);
    let results: Vec<Busy> = clients.into_iter().map(|t| t.join().unwrap()).collect();

    let errors: Vec<&String> = results.iter().flat_map(|r| &r.errors).collect();
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    let mut from_a = probes;
    let mut a_closes = 1;
    for (i, r) in results.iter().enumerate() {
        let on_a: Vec<&Seen> = r.seen.iter().filter(|s| s.instance == "a").collect();
        from_a += on_a.len() as u64;
        a_closes += on_a.iter().filter(|s| s.closes).count() as u64;
        // Every connection to a ended with one response that said so, and none other did.
        let last_conn_on_a = on_a.last().map(|s| s.conn).unwrap();
        for conn in 0..=last_conn_on_a {
            let mine: Vec<&&Seen> = on_a.iter().filter(|s| s.conn == conn).collect();
            assert!(
                mine.last().is_some_and(|s| s.closes),
                "client {i}: connection {conn} to a ended without Connection: close"
            );
            assert_eq!(mine.iter().filter(|s| s.closes).count(), 1);
        }
        // a answered nothing sent after it finished draining; b answered everything after.
        assert!(on_a.iter().all(|s| s.sent < drain_start + drained));
        let handed_over: Vec<&Seen> = r.seen.iter().filter(|s| s.conn > last_conn_on_a).collect();
        assert!(
            !handed_over.is_empty() && handed_over.iter().all(|s| s.instance == "b"),
            "client {i}: nothing served by b after a"
        );
    }
    // The drain report agrees with what the clients saw.
    let d = stopped.drain;
    assert_eq!(stopped.stats.requests, from_a, "{d:?}");
    // No connection to a closed before the drain.
    assert_eq!(stopped.stats.accepted, d.connections, "{d:?}");
    assert_eq!((d.connections_cut, d.requests_cut), (0, 0), "{d:?}");
    assert_eq!(d.connections_closed, d.connections, "{d:?}");
    assert_eq!(
        stopped.stats.closed_for(CloseReason::Shutdown),
        d.connections,
        "{:?}",
        stopped.stats
    );
    // Requests answered during the drain: at least those answered with a close, at most one
    // more per connection (a request begun before the drain, answered after it started).
    assert!(
        d.requests_completed >= a_closes && d.requests_completed <= a_closes + d.connections,
        "{d:?}, {a_closes} responses with Connection: close"
    );
    let b_stats = b.stats();
    let from_b: u64 = results
        .iter()
        .map(|r| r.seen.iter().filter(|s| s.instance == "b").count() as u64)
        .sum();
    assert_eq!(b_stats.requests, from_b);
    assert!(drained < Duration::from_secs(2), "drain took {drained:?}");
}

#[test]
fn a_request_arriving_on_an_idle_connection_during_the_drain_is_served_with_close() {
    let events = Events::default();
    let srv = start(
        events.on(builder()
            .min_idle_age(Duration::from_secs(2))
            .drain_window(Duration::from_secs(3))
            .shutdown_timeout(Duration::from_secs(4))),
    );
    let handle = srv.handle();
    let mut c = Client::connect(srv.local_addr());
    plaintext(&mut c);
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    eventually("the drain", || handle.is_draining());
    thread::sleep(100 * MS); // the worker has seen the drain
                             // Two pipelined requests: the first is answered with a close, the second not started.
    c.send(&[get("/plaintext"), get("/plaintext")].concat());
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(r.closes(), "{r:?}");
    c.expect_closed();
    let stopped = shutdown.join().unwrap();
    assert_eq!(stopped.stats.requests, 2);
    assert_eq!(stopped.drain.requests_completed, 1);
    assert_eq!(stopped.drain.connections_closed, 1);
}

#[test]
fn idle_connections_close_once_idle_for_the_minimum_age() {
    let events = Events::default();
    let min_idle_age = 300 * MS;
    let srv = start(
        events.on(builder()
            .min_idle_age(min_idle_age)
            .drain_window(Duration::from_secs(3))
            .shutdown_timeout(Duration::from_secs(4))),
    );
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    plaintext(&mut c);
    events.wait_state_after(me, Idle, 1);
    let idle_since = events.timed(me).last().unwrap().0;
    let t0 = Instant::now();
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    c.expect_closed();
    drop(c);
    let stopped = shutdown.join().unwrap();
    let took = t0.elapsed();
    let closing_at = events
        .timed(me)
        .iter()
        .find(|(_, e)| e.state == Closing)
        .unwrap()
        .0;
    let idle_for = closing_at - idle_since;
    assert!(
        idle_for >= min_idle_age && idle_for < min_idle_age + 500 * MS,
        "closed after {idle_for:?} idle"
    );
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert_eq!(
        events.of(me).last().unwrap().reason,
        Some(CloseReason::Shutdown)
    );
    let d = stopped.drain;
    assert_eq!(
        (d.connections, d.connections_closed, d.connections_cut),
        (1, 1, 0)
    );
}

/// A connection whose response left before the drain began (so it carried no close) and
/// whose client sends its next request at once is not closed under that request.
#[test]
fn a_connection_answered_just_before_the_drain_serves_its_next_request() {
    let srv = start(
        builder()
            .min_idle_age(Duration::from_secs(2))
            .drain_window(Duration::from_secs(3))
            .shutdown_timeout(Duration::from_secs(4)),
    );
    let handle = srv.handle();
    let mut c = Client::connect(srv.local_addr());
    // The request is in the handler when the drain starts.
    c.send(&get("/sleep?ms=300"));
    eventually("the request to start", || {
        srv.stats().in_state(ConnState::Active) == 1
    });
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    eventually("the drain", || handle.is_draining());
    let r = c.reply();
    assert_eq!(r.status, 200);
    if !r.closes() {
        // The response was planned before the drain: the client may go on.
        let r = c.request(&get("/plaintext"));
        assert_eq!(r.status, 200);
        assert!(r.closes(), "{r:?}");
    }
    c.expect_closed();
    shutdown.join().unwrap();
}

/// Connections the kernel completed before the listener closed are accepted and served
/// (with `Connection: close`), not reset.
#[test]
fn connections_queued_when_the_drain_starts_are_served() {
    let (srv, started) = run_instance(
        builder().workers(1).min_idle_age(Duration::from_secs(1)),
        any_addr(),
        "a",
    );
    let addr = srv.local_addr();
    let handle = srv.handle();
    // Block the only worker so that new connections wait in the accept queue.
    let mut blocker = Client::connect(addr);
    blocker.send(&get("/block?ms=400"));
    eventually("the worker to block", || {
        started.load(Ordering::Relaxed) == 1
    });
    let mut queued: Vec<Client> = (0..5)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.send(&get("/work"));
            c
        })
        .collect();
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    eventually("the drain", || handle.is_draining());
    assert_eq!(blocker.reply().status, 200);
    for (i, c) in queued.iter_mut().enumerate() {
        let r = c
            .read_reply(false)
            .unwrap_or_else(|e| panic!("queued connection {i}: {e}"));
        assert_eq!(r.status, 200);
        assert!(r.closes());
    }
    let stopped = shutdown.join().unwrap();
    assert_eq!(stopped.stats.accepted, 6);
}

#[test]
fn the_hard_deadline_cuts_what_remains() {
    let events = Events::default();
    let (srv, started) = run_instance(
        events.on(builder()
            .min_idle_age(50 * MS)
            .drain_window(200 * MS)
            .shutdown_timeout(500 * MS)),
        any_addr(),
        "a",
    );
    let mut idle = Client::connect(srv.local_addr());
    assert_eq!(idle.request(&get("/work")).status, 200);
    // Closes its side once the server has closed its own, as clients do.
    let idle_peer = idle.peer();
    let idle = thread::spawn(move || idle.expect_closed());
    let mut stuck = Client::connect(srv.local_addr());
    stuck.send(&get("/work?ms=10000"));
    eventually("the request to start", || {
        started.load(Ordering::Relaxed) == 2
    });
    let t0 = Instant::now();
    let stopped = srv.shutdown().unwrap();
    let took = t0.elapsed();
    assert!(
        took >= 450 * MS && took < Duration::from_secs(2),
        "shutdown took {took:?}"
    );
    let d = stopped.drain;
    assert_eq!(
        (
            d.connections,
            d.connections_closed,
            d.connections_cut,
            d.requests_cut,
            d.requests_completed
        ),
        (2, 1, 1, 1, 0),
        "{d:?}"
    );
    idle.join().unwrap();
    events.closed_for(idle_peer, CloseReason::Shutdown);
    assert!(
        stuck.read_reply(false).is_err(),
        "the cut request was answered"
    );
    let stuck_end = events.closed(stuck.peer());
    assert_eq!(
        (stuck_end.reason, stuck_end.requests),
        (Some(CloseReason::Shutdown), 0)
    );
    assert_eq!(stopped.stats.closed_for(CloseReason::Shutdown), 2);
}

// ---------------------------------------------------------------------------------------
// Parked connections
// ---------------------------------------------------------------------------------------

/// Waits until `n` connections are parked.
fn wait_parked(srv: &Running, n: u64) {
    eventually(&format!("{n} parked connections"), || {
        srv.stats().parked == n
    });
}

/// A builder whose idle connections park after 50 ms.
fn parking() -> Builder {
    builder().park_after(50 * MS)
}

#[test]
fn an_idle_connection_parks_and_resumes_where_it_was() {
    let events = Events::default();
    let srv = start(events.on(parking().max_requests(5).limit_jitter(0.0)));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    for left in [4, 3, 2] {
        let r = c.request(&get("/plaintext"));
        assert_eq!((r.status, r.text()), (200, "Hello, World!"));
        // The request count carries across each park: the advertised remainder goes down.
        assert_eq!(
            r.header("keep-alive"),
            Some(&*format!("timeout=75, max={left}"))
        );
        wait_parked(&srv, 1);
        // Parked, the connection is still idle; it is still counted open.
        let s = srv.stats();
        assert_eq!((s.in_state(Idle), s.open()), (1, 1));
    }
    // A request split around a pause resumes the connection at its first byte.
    let req = get("/plaintext");
    c.send(&req[..5]);
    eventually("the resumption", || srv.stats().parked == 0);
    c.send(&req[5..]);
    assert_eq!(c.reply().header("keep-alive"), Some("timeout=75, max=1"));
    events.wait_state_after(me, Idle, 4);
    let mine = events.of(me);
    // Parking is not a change of state, and the connection keeps its id.
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
            (Active, 3, None),
            (Idle, 4, None),
        ]
    );
    assert!(mine.iter().all(|e| e.id == mine[0].id));
    assert_eq!(srv.stats().accepted, 1);
}

#[test]
fn a_parked_connection_closes_at_its_idle_deadline() {
    let events = Events::default();
    let idle = Duration::from_secs(1);
    let srv = start(events.on(parking().idle_timeout(idle).idle_grace(Duration::ZERO)));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    plaintext(&mut c);
    wait_parked(&srv, 1);
    c.expect_closed();
    let last = events.closed(me);
    assert_eq!(last.reason, Some(CloseReason::IdleTimeout));
    let timed = events.timed(me);
    let idle_at = timed.iter().find(|(_, e)| e.state == Idle).unwrap().0;
    let closing_at = timed.iter().find(|(_, e)| e.state == Closing).unwrap().0;
    let waited = closing_at - idle_at;
    assert!(
        waited >= idle && waited < idle + 300 * MS,
        "closed after {waited:?} idle"
    );
    assert_eq!(srv.stats().parked, 0);
}

#[test]
fn a_client_closing_a_parked_connection_is_seen_at_once() {
    let events = Events::default();
    let srv = start(events.on(parking()));
    let mut c = Client::connect(srv.local_addr());
    let me = c.peer();
    plaintext(&mut c);
    wait_parked(&srv, 1);
    let t0 = Instant::now();
    drop(c);
    events.closed_for(me, CloseReason::PeerClosed);
    // Against an idle timeout of 75 s: the close was read, not timed out.
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(srv.stats().parked, 0);
}

#[test]
fn a_parked_connection_is_evicted_at_the_limit() {
    let events = Events::default();
    let srv = start(events.on(parking().max_connections(1).min_idle_age(50 * MS)));
    let addr = srv.local_addr();
    let mut a = Client::connect(addr);
    plaintext(&mut a);
    wait_parked(&srv, 1);
    let mut b = Client::connect(addr);
    plaintext(&mut b);
    a.expect_closed();
    events.closed_for(a.peer(), CloseReason::Evicted);
    let s = srv.stats();
    assert_eq!((s.accepted, s.refused), (2, 0));
}

#[test]
fn the_drain_closes_parked_connections() {
    let events = Events::default();
    let srv = start(
        events.on(parking()
            .min_idle_age(50 * MS)
            .drain_window(Duration::from_secs(2))
            .shutdown_timeout(Duration::from_secs(3))),
    );
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(srv.local_addr())).collect();
    let peers: Vec<SocketAddr> = clients.iter().map(Client::peer).collect();
    for c in &mut clients {
        plaintext(c);
    }
    wait_parked(&srv, 3);
    let t0 = Instant::now();
    let shutdown = thread::spawn(move || srv.shutdown().unwrap());
    for mut c in clients {
        c.expect_closed();
    }
    let stopped = shutdown.join().unwrap();
    // Well within the drain window: the parked connections were closed as idle ones.
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    for p in peers {
        events.closed_for(p, CloseReason::Shutdown);
    }
    let d = stopped.drain;
    assert_eq!(
        (d.connections, d.connections_closed, d.connections_cut),
        (3, 3, 0)
    );
    assert_eq!(stopped.stats.parked, 0);
}

#[test]
fn parking_can_be_turned_off() {
    let srv = start(builder().park_after(Duration::ZERO));
    let mut c = Client::connect(srv.local_addr());
    plaintext(&mut c);
    thread::sleep(200 * MS); // four times the park delay of the tests above
    assert_eq!(srv.stats().parked, 0);
    plaintext(&mut c);
}

#[test]
fn beyond_the_idle_tasks_of_a_worker_connections_park_sooner() {
    let srv = start(
        builder()
            .park_after(Duration::from_secs(30))
            .max_idle_tasks(1),
    );
    let mut a = Client::connect(srv.local_addr());
    plaintext(&mut a);
    eventually("a to be idle", || srv.stats().in_state(Idle) == 1);
    let mut b = Client::connect(srv.local_addr());
    plaintext(&mut b);
    let t0 = Instant::now();
    wait_parked(&srv, 1);
    // After PARK_AFTER_UNDER_PRESSURE, not the 30 s of park_after.
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    thread::sleep(2 * tether::PARK_AFTER_UNDER_PRESSURE); // a, idle first, stays in its task
    assert_eq!(srv.stats().parked, 1);
    plaintext(&mut a);
    plaintext(&mut b);
    assert_eq!(srv.stats().accepted, 2);
}

/// Connections park in another order than their idle deadlines (one parked early, under
/// pressure, after going idle later): each still closes at its own deadline.
#[test]
fn parked_connections_close_at_their_own_deadlines_whatever_order_they_parked_in() {
    let events = Events::default();
    let idle = Duration::from_secs(2);
    let srv = start(
        events.on(builder()
            .idle_timeout(idle)
            .idle_grace(Duration::ZERO)
            .park_after(900 * MS)
            .max_idle_tasks(1)),
    );
    let mut a = Client::connect(srv.local_addr());
    plaintext(&mut a);
    events.wait_state_after(a.peer(), Idle, 1);
    thread::sleep(500 * MS); // b goes idle half a second after a, and parks first
    let mut b = Client::connect(srv.local_addr());
    plaintext(&mut b);
    for c in [&mut a, &mut b] {
        c.expect_closed();
        let timed = events.timed(c.peer());
        let idle_at = timed.iter().find(|(_, e)| e.state == Idle).unwrap().0;
        events.wait_state(c.peer(), Closing);
        let closing_at = events
            .timed(c.peer())
            .iter()
            .find(|(_, e)| e.state == Closing)
            .unwrap()
            .0;
        let waited = closing_at - idle_at;
        assert!(
            waited >= idle && waited < idle + 300 * MS,
            "closed after {waited:?} idle"
        );
    }
}

/// Clients coming and going on two workers, with pauses that park their connections, idle
/// timeouts, and evictions and refusals at a connection limit below the number of clients
/// (in a run: about 170 connections, 90 evicted, 150 refused, 5 parked at once): every request
/// the server answered reached its client, and once the clients are gone every gauge is
/// back to zero.
#[test]
fn parking_under_churn_answers_every_request_it_takes() {
    let srv = start(
        builder()
            .workers(2)
            .park_after(20 * MS)
            .max_idle_tasks(2)
            .idle_timeout(Duration::from_millis(300))
            .idle_grace(Duration::ZERO)
            .max_connections(12)
            .min_idle_age(10 * MS)
            .linger_timeout(200 * MS),
    );
    let addr = srv.local_addr();
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(2);
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let answered = answered.clone();
            thread::spawn(move || {
                while Instant::now() < stop {
                    let mut c = Client::connect(addr);
                    for _ in 0..fastrand::u32(1..6) {
                        let pause = [0, 0, 5, 30, 60, 350][fastrand::usize(..6)];
                        thread::sleep(pause * MS);
                        // The server may have closed the connection meanwhile (idle timeout,
                        // eviction): the request then fails, unanswered.
                        if c.try_send(&get("/plaintext")).is_err() {
                            break;
                        }
                        match c.read_reply(false) {
                            Ok(r) if r.status == 200 => {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                assert_eq!(r.status, 503, "refused at the limit");
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
            })
        })
        .collect();
    let mut most_parked = 0;
    while clients.iter().any(|t| !t.is_finished()) {
        most_parked = most_parked.max(srv.stats().parked);
        thread::sleep(5 * MS);
    }
    for t in clients {
        t.join().unwrap();
    }
    eventually("every connection to close", || srv.stats().open() == 0);
    let s = srv.stats();
    assert_eq!(s.requests, answered.load(Ordering::Relaxed), "{s:?}");
    assert_eq!((s.parked, s.accepted), (0, s.closed), "{s:?}");
    assert!(most_parked > 0, "no connection parked");
    assert!(s.closed_for(CloseReason::Evicted) > 0, "{s:?}");
}
