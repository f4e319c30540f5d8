//! One connection slot: a task that opens connections, writes requests when they are due,
//! reads responses and accounts for every request and every connection it opened.
//!
//! The loop is: send what is due (opening a connection first if there is none), then wait
//! for the first of input, the next due time, or the guard timer (the run's end or the
//! oldest request's timeout). Nothing is allocated per request: requests are slices of
//! pre-built bytes, responses are parsed in place in the slot's read buffer, and the
//! requests in flight sit in a queue sized to the pipeline depth.
//!
//! Over https the same loop runs on a TLS stream (`stream`); a new connection's handshake
//! is part of opening it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::config::{Config, ConnMode};
use crate::request::RequestBytes;
use crate::response::{Done, Reader, Step};
use crate::schedule::Schedule;
use crate::stats::{nanos, Closed, ErrorKind, Live, Stats};
use crate::stream::Stream;
use crate::timer::Timer;
use crate::tls::TlsClient;

/// Initial read buffer per connection slot.
const READ_BUF: usize = 4096;
/// The read buffer grows (only while a response head does not fit) up to this.
const MAX_READ_BUF: usize = 1 << 20;

/// What every connection of a run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The run's settings.
    pub config: Config,
    /// The request bytes, repeated to the pipeline depth.
    pub request: RequestBytes,
    /// When the run (and the warm-up) started.
    pub start: Instant,
    /// When the measurement starts (after the warm-up).
    pub measure_from: Instant,
    /// When the run stops, whatever is left.
    pub end: Instant,
    /// Requests per connection before the client closes it (`None`: no limit).
    pub per_conn: Option<u64>,
    /// https: the client configuration and session store every connection shares.
    pub tls: Option<TlsClient>,
}

/// A request written and waiting for its response.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Latency is counted from here.
    origin: Instant,
    /// When it was written (its timeout counts from here).
    sent: Instant,
    /// Whether it is part of the measurement (due after the warm-up).
    measured: bool,
}

/// Why the loop stops.
enum Stop {
    /// The run's end time came.
    End,
}

/// What a wait ended with.
enum Event {
    Read(io::Result<usize>),
    Due,
    Guard,
}

/// One connection slot's state.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    stats: Rc<RefCell<Stats>>,
    live: Arc<Live>,
    stream: Option<Stream>,
    reader: Reader,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    in_flight: VecDeque<Pending>,
    /// Requests at the front of `in_flight` to write again on a new connection.
    resend: usize,
    /// Responses completed on the current connection.
    served: u64,
    /// Requests written on the current connection.
    sent: u64,
    /// Requests the server still takes on this connection (`Keep-Alive: max`).
    ka_left: Option<u64>,
    /// The connection was reused, idle when last written to, and nothing came back since:
    /// a close now is the race of an idle close, and the requests can be sent again.
    stale_ok: bool,
    schedule: Schedule,
    /// Measured requests still to start (`None`: until the end time).
    budget: Option<u64>,
    /// When a pipeline slot last became free after the connection was full.
    slot_free_at: Instant,
    /// The thread's precise timer, for due times.
    timer: Timer,
    /// The due time a wake-up is registered for.
    due_registered: Option<Instant>,
    guard_timer: Pin<Box<Sleep>>,
    guard_at: Instant,
}

impl Conn {
    /// Slot `index` of the run, with `budget` measured requests (or none: until the end).
    pub fn new(
        shared: Arc<Shared>,
        stats: Rc<RefCell<Stats>>,
        live: Arc<Live>,
        timer: Timer,
        index: usize,
        budget: Option<u64>,
    ) -> Conn {
        let c = &shared.config;
        let schedule = match c.rate {
            Some(rate) => Schedule::open(shared.start, rate, c.connections, index),
            None => Schedule::closed(shared.start, c.interval),
        };
        let guard_at = shared.end.min(shared.start + c.timeout);
        Conn {
            reader: Reader::new(c.method == "HEAD"),
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            in_flight: VecDeque::with_capacity(c.pipeline),
            resend: 0,
            served: 0,
            sent: 0,
            ka_left: None,
            stale_ok: false,
            schedule,
            budget,
            slot_free_at: shared.start,
            timer,
            due_registered: None,
            guard_timer: Box::pin(tokio::time::sleep_until(guard_at.into())),
            guard_at,
            stream: None,
            stats,
            live,
            shared,
        }
    }

    /// Runs the slot until its budget is spent or the run ends; returns when it finished.
    pub async fn run(mut self) -> Instant {
        let _ = self.drive().await;
        // Requests still in flight at the end are neither ok nor failed: the run stopped
        // before they could finish.
        self.in_flight.clear();
        self.resend = 0;
        self.close(Closed::ByClient);
        Instant::now().min(self.shared.end)
    }

    async fn drive(&mut self) -> Result<(), Stop> {
        loop {
            let now = Instant::now();
            if now >= self.shared.end {
                return Err(Stop::End);
            }
            if self.budget == Some(0) && self.in_flight.is_empty() && self.resend == 0 {
                return Ok(());
            }
            if self.stream.is_some() && self.in_flight.is_empty() {
                if self.shared.per_conn.is_some_and(|n| self.sent >= n) {
                    self.close(Closed::ByClient);
                } else if self.ka_left == Some(0) {
                    self.stats.borrow_mut().conns.keepalive_max += 1;
                    self.close(Closed::ByClient);
                }
            }
            if self.resend > 0 || (self.room() && self.schedule.due() <= now) {
                self.send(now).await?;
                continue;
            }
            let due = self.room().then(|| self.schedule.due());
            match self.wait(due).await {
                Event::Read(Ok(0)) => self.on_close(Closed::ByServerSilently),
                Event::Read(Ok(n)) => self.on_bytes(n),
                Event::Read(Err(e)) => self.on_close(close_kind(&e)),
                Event::Due => {}
                Event::Guard => self.on_guard(),
            }
        }
    }

    /// Whether another new request may be written now (ignoring its due time).
    fn room(&self) -> bool {
        self.budget != Some(0)
            && self.in_flight.len() < self.shared.config.pipeline
            && (self.stream.is_none()
                || (self.ka_left != Some(0) && self.shared.per_conn.is_none_or(|n| self.sent < n)))
    }

    /// Writes the requests due now (and any to resend), opening a connection if needed.
    async fn send(&mut self, now: Instant) -> Result<(), Stop> {
        if self.stream.is_none() {
            if let Err(kind) = self.connect(now).await? {
                self.connect_failed(kind);
                return Ok(());
            }
        }
        let pipeline = self.shared.config.pipeline;
        let per_conn = self.shared.per_conn;
        let measure_from = self.shared.measure_from;
        let was_idle = self.in_flight.is_empty();
        let sent_at = Instant::now();
        for p in self.in_flight.iter_mut().take(self.resend) {
            p.sent = sent_at;
        }
        let mut count = self.resend;
        self.resend = 0;
        let open = self.schedule.is_open();
        while self.in_flight.len() < pipeline
            && self.budget != Some(0)
            && self.ka_left.is_none_or(|left| (count as u64) < left)
            && per_conn.is_none_or(|n| self.sent + (count as u64) < n)
        {
            let due = self.schedule.due();
            if due > now {
                break;
            }
            let measured = due >= measure_from;
            if measured {
                self.budget = self.budget.map(|b| b - 1);
            }
            let origin = if open {
                // The server is charged for the time the slot was busy past the due time
                // (coordinated omission); the client's own lateness is reported apart.
                let lag = now.saturating_duration_since(due.max(self.slot_free_at));
                if measured {
                    self.stats.borrow_mut().lag.saturating_record(nanos(lag));
                }
                due + lag
            } else {
                now
            };
            self.in_flight.push_back(Pending {
                origin,
                sent: sent_at,
                measured,
            });
            self.schedule.advance();
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        self.sent += count as u64;
        if let Some(left) = &mut self.ka_left {
            *left = left.saturating_sub(count as u64);
        }
        self.stale_ok = was_idle && self.served > 0;
        if let Err(e) = self.write(count).await? {
            self.on_close(close_kind(&e));
        }
        Ok(())
    }

    /// Opens a connection (over https with its handshake, within the same timeout);
    /// `Ok(Err(kind))` when it failed, `Err(End)` at the run's end.
    async fn connect(&mut self, now: Instant) -> Result<Result<(), ErrorKind>, Stop> {
        let deadline = self.shared.end.min(now + self.shared.config.timeout);
        let began = Instant::now();
        let attempt = TcpStream::connect(self.shared.config.target.addr);
        let tcp = match tokio::time::timeout_at(deadline.into(), attempt).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Ok(Err(ErrorKind::ConnectRefused))
            }
            Ok(Err(_)) => return Ok(Err(ErrorKind::ConnectOther)),
            Err(_) if Instant::now() >= self.shared.end => return Err(Stop::End),
            Err(_) => return Ok(Err(ErrorKind::ConnectTimeout)),
        };
        let connected = Instant::now();
        let _ = tcp.set_nodelay(true);
        {
            let mut stats = self.stats.borrow_mut();
            stats.conns.opened += 1;
            stats.connect.saturating_record(nanos(connected - began));
        }
        let Some(client) = &self.shared.tls else {
            self.stream = Some(Stream::Tcp(tcp));
            return Ok(Ok(()));
        };
        let mut tls = match client.start(tcp) {
            Ok(tls) => Box::new(tls),
            Err(e) => return Ok(Err(self.handshake_failed(&e, Closed::ByClient))),
        };
        let handshake = poll_fn(|cx| tls.poll_handshake(cx));
        match tokio::time::timeout_at(deadline.into(), handshake).await {
            Ok(Ok(())) => {
                if let Some(t) = &mut self.stats.borrow_mut().tls {
                    t.handshake(tls.resumed(), connected.elapsed());
                }
                self.stream = Some(Stream::Tls(tls));
                Ok(Ok(()))
            }
            // A TLS error (the certificate refused, or the server's alert) is the client's
            // close; an end of stream or a reset, the server's.
            Ok(Err(e)) => Ok(Err(self.handshake_failed(&e, close_kind(&e)))),
            Err(_) if Instant::now() >= self.shared.end => {
                self.stats.borrow_mut().closed(Closed::ByClient, 0);
                Err(Stop::End)
            }
            // Counted as a failed handshake, but the request's class is the connect timeout
            // (the connection was not ready within it).
            Err(_) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "no handshake within the timeout");
                self.handshake_failed(&e, Closed::ByClient);
                Ok(Err(ErrorKind::ConnectTimeout))
            }
        }
    }

    /// Counts a handshake that failed (keeping the reason of the run's first) and the close
    /// of its connection; returns the class of the request it fails.
    fn handshake_failed(&mut self, e: &io::Error, how: Closed) -> ErrorKind {
        let mut stats = self.stats.borrow_mut();
        stats.closed(how, 0);
        if let Some(t) = &mut stats.tls {
            t.failure(|| match e.kind() {
                io::ErrorKind::UnexpectedEof => "the server closed the connection".into(),
                _ => e.to_string(),
            });
        }
        ErrorKind::TlsHandshake
    }

    /// A connection could not be opened: the requests waiting to be resent fail, or else the
    /// next due request does.
    fn connect_failed(&mut self, kind: ErrorKind) {
        if self.resend > 0 {
            self.resend = 0;
            self.fail_all(kind, kind);
            return;
        }
        let measured = self.schedule.due() >= self.shared.measure_from;
        self.schedule.advance();
        self.schedule.response(Instant::now());
        if measured {
            self.budget = self.budget.map(|b| b.saturating_sub(1));
            self.stats.borrow_mut().error(kind);
            self.live.finished(false);
        }
    }

    /// Writes `count` requests in one write; `Ok(Err(e))` when the connection failed.
    async fn write(&mut self, count: usize) -> Result<io::Result<()>, Stop> {
        let bytes = self.shared.request.first(count);
        let Some(stream) = self.stream.as_mut() else {
            return Ok(Err(io::ErrorKind::NotConnected.into()));
        };
        let mut off = 0;
        while off < bytes.len() {
            match stream.try_write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Ok(Err(e)),
            }
        }
        if off == bytes.len() && !stream.holds_unsent() {
            return Ok(Ok(()));
        }
        // The socket buffer is full (or TLS records wait for it): wait, but not past the
        // timeout or the end.
        let end = self.shared.end;
        let deadline = end.min(Instant::now() + self.shared.config.timeout);
        match tokio::time::timeout_at(deadline.into(), stream.write_all(&bytes[off..])).await {
            Ok(r) => Ok(r),
            Err(_) if Instant::now() >= end => Err(Stop::End),
            Err(_) => {
                self.fail_all(ErrorKind::ReadTimeout, ErrorKind::ReadTimeout);
                self.close(Closed::ByClient);
                Ok(Ok(()))
            }
        }
    }

    /// Waits for input (when a response is awaited, or to notice a close while idle), for
    /// `due` (when another request could be sent then), or for the guard timer.
    async fn wait(&mut self, due: Option<Instant>) -> Event {
        let Conn {
            stream,
            buf,
            end,
            timer,
            due_registered,
            guard_timer,
            ..
        } = self;
        let space = &mut buf[*end..];
        poll_fn(|cx| {
            if let Some(stream) = stream.as_mut() {
                let mut rb = ReadBuf::new(space);
                if let Poll::Ready(r) = stream.poll_read(cx, &mut rb) {
                    return Poll::Ready(Event::Read(r.map(|()| rb.filled().len())));
                }
            }
            if let Some(due) = due {
                if Instant::now() >= due {
                    return Poll::Ready(Event::Due);
                }
                if *due_registered != Some(due) {
                    timer.register(due, cx.waker());
                    *due_registered = Some(due);
                }
            }
            if guard_timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Guard);
            }
            Poll::Pending
        })
        .await
    }

    /// The guard timer fired: the end (handled by the loop), a request's timeout, or
    /// neither yet (it is re-armed lazily, so it fires at most once per timeout period).
    fn on_guard(&mut self) {
        let now = Instant::now();
        let timeout = self.shared.config.timeout;
        if let Some(oldest) = self.in_flight.get(self.resend) {
            if oldest.sent + timeout <= now {
                self.fail_all(ErrorKind::ReadTimeout, ErrorKind::ReadTimeout);
                self.close(Closed::ByClient);
            }
        }
        let next = match self.in_flight.get(self.resend) {
            Some(p) => p.sent + timeout,
            None => now + timeout,
        };
        self.guard_at = self.shared.end.min(next);
        self.guard_timer.as_mut().reset(self.guard_at.into());
    }

    /// `n` bytes arrived at the end of the buffer.
    fn on_bytes(&mut self, n: usize) {
        let now = Instant::now();
        let space = self.buf.len() - self.end;
        self.end += n;
        self.stale_ok = false;
        if now >= self.shared.measure_from {
            self.stats.borrow_mut().bytes += n as u64;
        }
        if n < space {
            // A short read drained the socket: forget the readiness without another read
            // that would only return EAGAIN.
            if let Some(s) = &self.stream {
                s.drained();
            }
        }
        while self.start < self.end {
            match self.reader.next(&self.buf[self.start..self.end]) {
                Ok(Step::More(k)) => {
                    self.start += k;
                    break;
                }
                Ok(Step::Done(k, done)) => {
                    self.start += k;
                    if !self.on_response(done, now) {
                        return;
                    }
                }
                Err(_) => {
                    self.fail_all(ErrorKind::Protocol, ErrorKind::PipelineLost);
                    self.close(Closed::ByClient);
                    return;
                }
            }
        }
        self.compact();
    }

    /// Makes room at the end of the buffer for the next read.
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_READ_BUF {
                self.buf.resize(self.buf.len() * 2, 0);
            } else {
                self.fail_all(ErrorKind::Protocol, ErrorKind::PipelineLost);
                self.close(Closed::ByClient);
            }
        }
    }

    /// A complete response; returns whether the connection stays open.
    fn on_response(&mut self, done: Done, now: Instant) -> bool {
        let Some(p) = self.in_flight.pop_front() else {
            // A response nobody asked for (a server may send one as it drops an idle
            // connection): the connection cannot be trusted any more.
            self.close(Closed::ByClient);
            return false;
        };
        self.served += 1;
        let depth = self.shared.config.pipeline;
        if self.in_flight.len() + 1 == depth {
            self.slot_free_at = now;
        }
        self.schedule.response(now);
        if p.measured {
            let ok = self.shared.config.success.contains(done.status);
            self.stats.borrow_mut().response(
                done.status,
                ok,
                now.saturating_duration_since(p.origin),
            );
            self.live.finished(ok);
        }
        if let Some(max) = done.max {
            self.ka_left = Some(max.saturating_sub(self.in_flight.len() as u64));
        }
        if !done.keep_alive {
            self.fail_all(ErrorKind::PipelineLost, ErrorKind::PipelineLost);
            self.close(Closed::ByServerAnnounced);
            return false;
        }
        true
    }

    /// The server closed (`how` tells whether with a FIN or a reset).
    fn on_close(&mut self, how: Closed) {
        let partial = self.reader.mid_response() || self.start < self.end;
        match self.reader.eof() {
            Ok(Some(done)) if how == Closed::ByServerSilently => {
                // A body delimited by the close ended: a complete response.
                self.on_response(done, Instant::now());
                self.close(Closed::ByServerAnnounced);
                return;
            }
            _ => {}
        }
        if self.in_flight.is_empty() {
            if !partial {
                self.stats.borrow_mut().conns.idle_closed += 1;
            }
        } else if partial {
            self.fail_all(ErrorKind::EofMidResponse, ErrorKind::PipelineLost);
        } else if self.stale_ok && self.shared.config.idempotent() {
            self.resend = self.in_flight.len();
            self.stats.borrow_mut().conns.stale_retries += self.resend as u64;
        } else {
            self.fail_all(ErrorKind::ResetBeforeResponse, ErrorKind::PipelineLost);
        }
        self.close(how);
    }

    /// Fails every request in flight: the first with `first`, the rest with `rest`.
    fn fail_all(&mut self, first: ErrorKind, rest: ErrorKind) {
        let mut kind = first;
        let mut stats = self.stats.borrow_mut();
        while let Some(p) = self.in_flight.pop_front() {
            if p.measured {
                stats.error(kind);
                self.live.finished(false);
            }
            kind = rest;
        }
    }

    /// Forgets the current connection (if any) and counts how it ended.
    fn close(&mut self, how: Closed) {
        if let Some(stream) = self.stream.take() {
            if how == Closed::ByClient {
                stream.close();
            }
            self.stats.borrow_mut().closed(how, self.served);
        }
        self.served = 0;
        self.sent = 0;
        self.ka_left = None;
        self.stale_ok = false;
        self.reader.reset();
        self.start = 0;
        self.end = 0;
    }
}

/// How a failed read or write says the server ended the connection.
fn close_kind(e: &io::Error) -> Closed {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Closed::ResetByServer,
        io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => Closed::ByServerSilently,
        // A TLS error on an open connection: the client drops it.
        io::ErrorKind::InvalidData => Closed::ByClient,
        _ => Closed::ResetByServer,
    }
}

/// The limit on requests per connection that a connection mode sets.
pub(crate) fn per_conn_limit(mode: ConnMode) -> Option<u64> {
    match mode {
        ConnMode::Persistent => None,
        ConnMode::PerRequest => Some(1),
        ConnMode::PerConnection(n) => Some(n),
    }
}
