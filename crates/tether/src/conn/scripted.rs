//! Unit tests that drive the connection state machine over a scripted transport: no socket,
//! paused time (timeouts are deterministic and instant), and the input split exactly where a
//! test says, down to every byte offset.

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::conn::buffers::Pool;
use crate::conn::host::{Host, Kick};
use crate::conn::transport::Transport;
use crate::conn::{serve, Start};
use crate::lifecycle::{CloseReason, ConnEvent, ConnState};
use crate::{Handler, Request, Response, Status};

// ---------------------------------------------------------------------------------------
// The scripted transport

/// What follows the last chunk of input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The client closes its side: reads give `Ok(0)`.
    Eof,
    /// Nothing more, ever: reads give `WouldBlock` and readiness stays pending.
    Silence,
}

/// What the test reads back after the run (shared with the transport, which `serve` owns).
#[derive(Default)]
struct Wire {
    out: RefCell<Vec<u8>>,
    shut: Cell<bool>,
    /// A write came after the write side was shut down.
    late_write: Cell<bool>,
    /// `WouldBlock`s given (reads and writes).
    stalls: Cell<usize>,
}

/// A [`Transport`] that plays a script of input chunks; a read never crosses into the next
/// chunk, so the test decides how the input is split.
struct Scripted {
    chunks: Vec<Vec<u8>>,
    end: End,
    /// The next chunk to deliver and the offset in it.
    at: Cell<(usize, usize)>,
    /// Before each chunk (and before the end) the first read gives `WouldBlock`, and every
    /// other write gives `WouldBlock`; readiness is then reported at once.
    stall: bool,
    /// The point whose `WouldBlock` was given.
    read_stalled: Cell<Option<usize>>,
    write_stalled: Cell<bool>,
    /// Most bytes one write takes.
    max_write: usize,
    wire: Rc<Wire>,
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl Scripted {
    fn new(chunks: &[&[u8]], end: End) -> Self {
        Scripted {
            chunks: chunks
                .iter()
                .filter(|c| !c.is_empty())
                .map(|c| c.to_vec())
                .collect(),
            end,
            at: Cell::new((0, 0)),
            stall: false,
            read_stalled: Cell::new(None),
            write_stalled: Cell::new(false),
            max_write: usize::MAX,
            wire: Rc::default(),
        }
    }

    /// Whole input in one chunk.
    fn whole(input: &[u8], end: End) -> Self {
        Scripted::new(&[input], end)
    }

    /// One chunk per byte.
    fn bytewise(input: &[u8], end: End) -> Self {
        Scripted::new(&input.chunks(1).collect::<Vec<_>>(), end)
    }

    /// Would-block at every point, and writes of at most `max_write` bytes.
    fn stalling(mut self, max_write: usize) -> Self {
        self.stall = true;
        self.max_write = max_write;
        self
    }

    fn silent(&self) -> bool {
        self.at.get().0 == self.chunks.len() && self.end == End::Silence
    }

    /// Gives `WouldBlock` once before each write that would otherwise take bytes.
    fn write_gate(&self) -> io::Result<()> {
        if self.wire.shut.get() {
            self.wire.late_write.set(true);
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if self.stall && !self.write_stalled.replace(true) {
            self.wire.stalls.set(self.wire.stalls.get() + 1);
            return Err(would_block());
        }
        self.write_stalled.set(false);
        Ok(())
    }
}

impl crate::conn::stream::Park for Scripted {
    fn park(&self) -> Option<crate::conn::stream::ParkedStream> {
        None
    }
}

impl Transport for Scripted {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.silent() {
            return Err(would_block());
        }
        let (i, off) = self.at.get();
        if self.stall && off == 0 && self.read_stalled.get() != Some(i) {
            self.read_stalled.set(Some(i));
            self.wire.stalls.set(self.wire.stalls.get() + 1);
            return Err(would_block());
        }
        let Some(chunk) = self.chunks.get(i) else {
            return Ok(0);
        };
        let n = buf.len().min(chunk.len() - off);
        buf[..n].copy_from_slice(&chunk[off..off + n]);
        self.at.set(if off + n == chunk.len() {
            (i + 1, 0)
        } else {
            (i, off + n)
        });
        Ok(n)
    }

    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Silence registers no waker: only the connection's timers can end the wait.
        if self.silent() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write_vectored(&[IoSlice::new(buf)])
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_gate()?;
        let mut out = self.wire.out.borrow_mut();
        let mut left = self.max_write;
        for b in bufs {
            let n = b.len().min(left);
            out.extend_from_slice(&b[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        Ok(self.max_write - left)
    }

    fn poll_write_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.wire.shut.set(true);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The host and its handler

struct Routes;

impl Handler for Routes {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        match (req.method(), req.path()) {
            ("GET", "/a") => {
                res.body_static(b"path /a");
            }
            ("GET", "/b") => {
                res.body_static(b"path /b");
            }
            ("POST", "/echo") => {
                let mut body = Vec::new();
                req.body().read_to_end(&mut body).await?;
                res.write(&body);
            }
            ("GET", "/stream") => {
                res.send_chunk(b"first,").await?;
                res.send_chunk(b"second").await?;
            }
            // A file as the whole body, as a sized body's middle part, and in a stream.
            ("GET", "/file") => {
                res.send_file(&body_file(), 0, FILE_BODY.len() as u64)
                    .await?;
            }
            ("GET", "/parts") => {
                res.start_sized(FILE_BODY.len() as u64 + 2);
                res.send_chunk(b"<").await?;
                res.send_file(&body_file(), 0, FILE_BODY.len() as u64)
                    .await?;
                res.send_chunk(b">").await?;
            }
            ("GET", "/file-stream") => {
                res.send_chunk(b"first,").await?;
                res.send_file(&body_file(), 5, 6).await?;
            }
            _ => {
                res.status(Status::NOT_FOUND);
            }
        }
        Ok(())
    }
}

/// The content of the file `/file` sends.
const FILE_BODY: &[u8] = b"from a file";

/// An open file holding [`FILE_BODY`], already unlinked.
fn body_file() -> std::fs::File {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tether-scripted-{}-{n}", std::process::id()));
    std::fs::write(&path, FILE_BODY).expect("write the body file");
    let file = std::fs::File::open(&path).expect("open the body file");
    let _ = std::fs::remove_file(&path);
    file
}

/// A recorded change of state: from, to, reason.
type Event = (ConnState, ConnState, Option<CloseReason>);

struct TestHost {
    cfg: Config,
    handler: Routes,
    pool: Pool,
    draining: Cell<bool>,
    events: RefCell<Vec<Event>>,
    requests: Cell<u64>,
}

const IDLE: Duration = Duration::from_secs(5);
const GRACE: Duration = Duration::from_secs(1);
const HEADER: Duration = Duration::from_secs(2);
const LINGER: Duration = Duration::from_secs(1);

fn host_with(f: impl FnOnce(&mut Config)) -> TestHost {
    let mut cfg = Config {
        idle_timeout: IDLE,
        idle_grace: GRACE,
        header_timeout: HEADER,
        body_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(2),
        linger_timeout: LINGER,
        max_requests: 0,
        limit_jitter: 0.0,
        park_after: Duration::ZERO,
        ..Config::default()
    };
    f(&mut cfg);
    TestHost {
        pool: Pool::new(4, cfg.read_buffer_size),
        cfg,
        handler: Routes,
        draining: Cell::new(false),
        events: RefCell::default(),
        requests: Cell::new(0),
    }
}

fn host() -> TestHost {
    host_with(|_| {})
}

impl Host for TestHost {
    type Handler = Routes;

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn handler(&self) -> &Routes {
        &self.handler
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn draining(&self) -> &Cell<bool> {
        &self.draining
    }

    fn register(&self, _now: Instant) -> (u64, usize) {
        (1, 0)
    }

    fn record(&self, _key: usize, from: ConnState, event: &ConnEvent, _idle_since: Instant) {
        self.events
            .borrow_mut()
            .push((from, event.state, event.reason));
    }

    fn request_done(&self) {
        self.requests.set(self.requests.get() + 1);
    }

    fn poll_kick(&self, _key: usize, _cx: &mut Context<'_>) -> Poll<Kick> {
        Poll::Pending
    }

    fn park_after(&self) -> Option<Duration> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Running a script and reading what came out

struct Run {
    out: Vec<u8>,
    /// The states entered, in order.
    states: Vec<ConnState>,
    /// The reason given with `Closed`.
    reason: Option<CloseReason>,
    shut: bool,
    requests: u64,
    /// Virtual time the connection lived.
    elapsed: Duration,
    stalls: usize,
}

fn run_on(host: &TestHost, t: Scripted) -> Run {
    let wire = Rc::clone(&t.wire);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let elapsed = rt.block_on(async {
        let started = Instant::now();
        let parked = serve(host, t, Start::New("127.0.0.1:4000".parse().expect("addr"))).await;
        assert!(parked.is_none(), "the connection parked");
        started.elapsed()
    });
    let events = host.events.take();
    // Each change starts from the state the last one entered; the first from `Closed` (a
    // new connection enters `New`).
    let mut prev = ConnState::Closed;
    for &(from, to, _) in &events {
        assert_eq!(from, prev, "{events:?}");
        assert_ne!(from, to, "{events:?}");
        prev = to;
    }
    assert_eq!(prev, ConnState::Closed, "{events:?}");
    let n = events.len();
    assert!(n >= 3, "{events:?}");
    // `Closing` and `Closed` carry the same reason.
    assert_eq!(events[n - 2].1, ConnState::Closing, "{events:?}");
    assert_eq!(events[n - 2].2, events[n - 1].2, "{events:?}");
    assert!(!wire.late_write.get(), "a write after the shutdown");
    Run {
        out: wire.out.take(),
        states: events.iter().map(|e| e.1).collect(),
        reason: events[n - 1].2,
        shut: wire.shut.get(),
        requests: host.requests.get(),
        elapsed,
        stalls: wire.stalls.get(),
    }
}

fn run(t: Scripted) -> Run {
    run_on(&host(), t)
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("Connection") == Some("close")
    }

    fn body(&self) -> &str {
        std::str::from_utf8(&self.body).expect("text body")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Splits a line off `b` at its CRLF.
fn line<'a>(b: &mut &'a [u8]) -> &'a [u8] {
    let i = find(b, b"\r\n").unwrap_or_else(|| panic!("no CRLF in {:?}", show(b)));
    let l = &b[..i];
    *b = &b[i + 2..];
    l
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses every response in `out`, strictly: each must be complete, and nothing may follow
/// the last.
fn responses(out: &[u8]) -> Vec<Resp> {
    let mut b = out;
    let mut all = Vec::new();
    while !b.is_empty() {
        let status_line = show(line(&mut b));
        let status: u16 = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?} in {:?}", show(out)));
        let mut headers = Vec::new();
        loop {
            let l = show(line(&mut b));
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(": ").expect("a header field");
            headers.push((n.to_owned(), v.to_owned()));
        }
        let mut r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if status >= 200 && status != 204 && status != 304 {
            if let Some(n) = r.header("Content-Length") {
                let n: usize = n.parse().expect("a length");
                r.body = b[..n].to_vec();
                b = &b[n..];
            } else if r.header("Transfer-Encoding") == Some("chunked") {
                loop {
                    let size = show(line(&mut b));
                    let n = usize::from_str_radix(&size, 16).expect("a chunk size");
                    if n == 0 {
                        assert_eq!(line(&mut b), b"", "no trailers, then the end");
                        break;
                    }
                    r.body.extend_from_slice(&b[..n]);
                    b = &b[n..];
                    assert_eq!(line(&mut b), b"", "CRLF after chunk data");
                }
            } else {
                r.body = std::mem::take(&mut b).to_vec();
            }
        }
        all.push(r);
    }
    all
}

/// The output without its `Date` lines, which change with the second.
fn dateless(out: &[u8]) -> Vec<u8> {
    out.split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"Date: "))
        .flatten()
        .copied()
        .collect()
}

/// Every split of `input` into two chunks, and one byte by byte.
fn splits(input: &[u8], end: End) -> impl Iterator<Item = Scripted> + '_ {
    (0..=input.len())
        .map(move |k| Scripted::new(&[&input[..k], &input[k..]], end))
        .chain(std::iter::once(Scripted::bytewise(input, end)))
}

const AB: &[u8] = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n";
const ECHO: &[u8] = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n";
const STREAM: &[u8] = b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";

// ---------------------------------------------------------------------------------------
// The tests

fn check_ab(r: &Run) {
    let res = responses(&r.out);
    let bodies: Vec<_> = res.iter().map(|r| (r.status, r.body())).collect();
    assert_eq!(
        bodies,
        [(200, "path /a"), (200, "path /b")],
        "{:?}",
        show(&r.out)
    );
    assert!(res.iter().all(|r| !r.closes()));
    assert_eq!(r.requests, 2);
    assert_eq!(r.reason, Some(CloseReason::PeerClosed));
    assert_eq!(r.states[0], ConnState::New);
    assert!(r.shut, "the write side is shut down after a clean end");
}

#[test]
fn pipelined_requests_survive_every_split() {
    for t in splits(AB, End::Eof) {
        check_ab(&run(t));
    }
}

#[test]
fn stalls_and_partial_writes_change_nothing_on_the_wire() {
    for input in [AB, ECHO, STREAM] {
        let plain = run(Scripted::whole(input, End::Eof));
        let want = dateless(&plain.out);
        assert!(!responses(&plain.out).is_empty());
        for max_write in [1, 2, 3, 7] {
            for t in [
                Scripted::whole(input, End::Eof),
                Scripted::bytewise(input, End::Eof),
            ] {
                let chunks = t.chunks.len();
                let r = run(t.stalling(max_write));
                // Each chunk and the end stalled once, and every write before it took bytes.
                let writes = plain.out.len().div_ceil(max_write);
                assert!(r.stalls > chunks + writes, "{} stalls", r.stalls);
                assert_eq!(
                    show(&dateless(&r.out)),
                    show(&want),
                    "max_write {max_write}"
                );
                assert_eq!(r.reason, plain.reason);
                assert_eq!(r.requests, plain.requests);
            }
        }
    }
    check_ab(&run(Scripted::bytewise(AB, End::Eof).stalling(1)));
}

#[test]
fn a_chunked_body_survives_every_split() {
    for t in splits(ECHO, End::Eof) {
        let r = run(t);
        let res = responses(&r.out);
        let bodies: Vec<_> = res.iter().map(|r| (r.status, r.body())).collect();
        assert_eq!(bodies, [(200, "hello world"), (200, "path /a")]);
        assert_eq!(r.reason, Some(CloseReason::PeerClosed));
    }
}

#[test]
fn continue_goes_out_once_before_the_response() {
    let head =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    for t in [
        Scripted::new(&[head, b"hel", b"lo"], End::Eof),
        Scripted::new(&[head, b"h", b"e", b"l", b"l", b"o"], End::Eof).stalling(3),
    ] {
        let r = run(t);
        assert!(
            r.out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
            "{}",
            show(&r.out)
        );
        assert_eq!(count(&r.out, b"100 Continue"), 1);
        let res = responses(&r.out);
        let got: Vec<_> = res.iter().map(|r| (r.status, r.body())).collect();
        assert_eq!(got, [(100, ""), (200, "hello")]);
        assert_eq!(r.reason, Some(CloseReason::PeerClosed));
    }
}

#[test]
fn silence_after_a_request_ends_in_the_idle_timeout() {
    let r = run(Scripted::whole(GET_A, End::Silence));
    use ConnState::*;
    assert_eq!(r.states, [New, Active, Idle, Closing, Closed]);
    assert_eq!(r.reason, Some(CloseReason::IdleTimeout));
    assert_eq!(responses(&r.out).len(), 1);
    // Closed at the idle timeout plus the grace (to the millisecond of the timer wheel),
    // without lingering.
    assert!(r.elapsed >= IDLE + GRACE, "{:?}", r.elapsed);
    assert!(
        r.elapsed < IDLE + GRACE + Duration::from_millis(5),
        "{:?}",
        r.elapsed
    );
    assert!(!r.shut);
}

#[test]
fn a_partial_head_then_silence_gets_408() {
    let r = run(Scripted::whole(b"GET /a HTTP/1.1\r\nHo", End::Silence));
    let res = responses(&r.out);
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].status, 408);
    assert!(res[0].closes());
    assert_eq!(r.reason, Some(CloseReason::HeaderTimeout));
    assert_eq!(r.requests, 0);
    // The header timeout, then a linger that runs out.
    assert!(r.elapsed >= HEADER + LINGER, "{:?}", r.elapsed);
    assert!(r.shut);
}

#[test]
fn a_malformed_request_gets_400_and_a_lingering_close() {
    for t in splits(
        b"GET /a HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
        End::Eof,
    ) {
        let r = run(t);
        let res = responses(&r.out);
        assert_eq!(res.len(), 1, "{}", show(&r.out));
        assert_eq!(res[0].status, 400);
        assert!(res[0].closes());
        assert_eq!(r.reason, Some(CloseReason::ProtocolError));
        assert!(r.shut, "lingering close shuts down the write side");
    }
}

#[test]
fn a_client_close_is_honoured() {
    let input = b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n";
    for end in [End::Eof, End::Silence] {
        let r = run(Scripted::whole(input, end));
        let res = responses(&r.out);
        assert_eq!(res.len(), 1, "nothing after the close is served");
        assert_eq!(res[0].body(), "path /a");
        assert!(res[0].closes());
        assert_eq!(r.reason, Some(CloseReason::ClientClose));
        assert_eq!(r.requests, 1);
    }
}

#[test]
fn the_last_allowed_request_closes() {
    let h = host_with(|c| c.max_requests = 2);
    let input = [AB, GET_A].concat();
    let r = run_on(&h, Scripted::whole(&input, End::Eof));
    let res = responses(&r.out);
    assert_eq!(res.len(), 2);
    assert!(!res[0].closes());
    assert_eq!(res[0].header("Keep-Alive"), Some("timeout=5, max=1"));
    assert!(res[1].closes());
    assert_eq!(res[1].body(), "path /b");
    assert_eq!(r.reason, Some(CloseReason::MaxRequests));
    assert_eq!(r.requests, 2);
}

#[test]
fn draining_closes_after_the_response() {
    let h = host();
    h.draining.set(true);
    let r = run_on(&h, Scripted::whole(AB, End::Eof));
    let res = responses(&r.out);
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].body(), "path /a");
    assert!(res[0].closes());
    assert_eq!(r.reason, Some(CloseReason::Shutdown));
    assert!(r.shut);
}

#[test]
fn a_stream_keeps_its_framing_under_partial_writes() {
    let input = [STREAM, GET_A].concat();
    for max_write in [1, 2, 3, 7] {
        for t in [
            Scripted::whole(&input, End::Eof),
            Scripted::bytewise(&input, End::Eof),
        ] {
            let r = run(t.stalling(max_write));
            let res = responses(&r.out);
            assert_eq!(res.len(), 2, "{}", show(&r.out));
            assert_eq!(res[0].header("Transfer-Encoding"), Some("chunked"));
            assert_eq!(res[0].body(), "first,second");
            assert_eq!(res[1].body(), "path /a");
            let at = find(&r.out, b"6\r\nfirst,\r\n").expect("the first chunk");
            let tail = b"6\r\nfirst,\r\n6\r\nsecond\r\n0\r\n\r\nHTTP/1.1 200";
            assert_eq!(&r.out[at..at + tail.len()], tail);
            assert_eq!(r.reason, Some(CloseReason::PeerClosed));
        }
        let r = run(Scripted::whole(STREAM, End::Eof).stalling(max_write));
        assert!(r.out.ends_with(b"0\r\n\r\n"), "{}", show(&r.out));
    }
}

#[test]
fn file_bodies_keep_their_framing_under_partial_writes() {
    // The scripted transport has no zero-copy path: the file goes through the copy path.
    let input = [
        &b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"GET /parts HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /file-stream HTTP/1.1\r\nHost: t\r\n\r\n",
        GET_A,
    ]
    .concat();
    for max_write in [1, 2, 3, 7, 1 << 20] {
        for t in [
            Scripted::whole(&input, End::Eof),
            Scripted::bytewise(&input, End::Eof),
        ] {
            let r = run(t.stalling(max_write));
            let res = responses(&r.out);
            assert_eq!(res.len(), 4, "{}", show(&r.out));
            assert_eq!(res[0].header("Content-Length"), Some("11"));
            assert_eq!(res[0].body(), "from a file");
            assert_eq!(res[1].header("Content-Length"), Some("13"));
            assert_eq!(res[1].body(), "<from a file>");
            assert_eq!(res[2].header("Transfer-Encoding"), Some("chunked"));
            assert_eq!(res[2].body(), "first,a file");
            assert_eq!(res[3].body(), "path /a");
            assert_eq!(r.reason, Some(CloseReason::PeerClosed));
            assert_eq!(r.requests, 4);
        }
    }
}

#[test]
fn unread_bodies_are_skipped_for_the_next_request() {
    let inputs: [&[u8]; 2] = [
        b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
5\r\nhello\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
    ];
    for input in inputs {
        for t in splits(input, End::Eof) {
            check_ab(&run(t));
        }
    }
}

#[test]
fn bodies_and_heads_larger_than_the_read_buffer() {
    // A body more than twice the read buffer, in pieces that straddle its size.
    let body: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    input.extend_from_slice(&body);
    input.extend_from_slice(GET_A);
    for size in [7, 4095, 4097, 8191, 8193, input.len()] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        let r = run(Scripted::new(&chunks, End::Eof).stalling(1000));
        let res = responses(&r.out);
        assert_eq!(res.len(), 2, "pieces of {size}");
        assert!(res[0].body == body, "pieces of {size}");
        assert_eq!(res[1].body(), "path /a");
    }
    // A head of 12 kB (the buffer grows), split around the buffer's size.
    let mut input = b"GET /a HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    input.resize(input.len() + 12_000, b'x');
    input.extend_from_slice(b"\r\n\r\n");
    input.extend_from_slice(&AB[GET_A.len()..]);
    for k in [1, 8191, 8192, 8193, 12_040] {
        check_ab(&run(Scripted::new(&[&input[..k], &input[k..]], End::Eof)));
    }
}
