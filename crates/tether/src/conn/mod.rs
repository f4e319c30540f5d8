//! The connection state machine: the one place that decides whether a connection lives on.
//!
//! ```text
//!  New ──first byte──▶ Active ──response, keep-alive──▶ Idle ──first byte──▶ Active …
//!   │                    │                               │
//!   └──timeout/EOF───────┴──close decided──▶ Closing ◀───┘ idle timeout, drain
//!                                              │ flush, shut down write, drain input
//!                                              ▼
//!                                            Closed
//! ```
//!
//! A connection reads into its read buffer, parses a head, hands the request to the handler,
//! encodes the response into its write buffer and loops. Responses to pipelined requests
//! accumulate and go out in one write when no further complete request is buffered.
//!
//! A connection idle for [`crate::Config::park_after`] leaves its task (see [`crate::server::park`]);
//! it stays `Idle`, and resumes here as a new task that takes up the idle wait where it was.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub(crate) mod buffers;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod timed_io;

use crate::config::PARK_AFTER_UNDER_PRESSURE;
use crate::conn::buffers::Buffers;
use crate::conn::request::{Body, BodyState, Request};
use crate::conn::response::{error_response, Exchange, Finish, Response};
use crate::conn::timed_io::{deadline, flush, read_some, try_read, Read, Timer};
use crate::handler::Handler;
use crate::lifecycle::{CloseReason, ConnEvent, ConnState};
use crate::proto::parse::{parse_head, BodyFraming, Head, Limits, Version};
use crate::proto::status::Status;
use crate::server::registry::Kick;
use crate::server::stats::bump;
use crate::server::worker::Worker;

/// What is known before the handler runs about how this exchange may end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Already decided to close after this response.
    pub close: Option<CloseReason>,
    /// Echo `Connection: keep-alive` (HTTP/1.0).
    pub http10_keep_alive: bool,
    /// Send a `Keep-Alive` header on persistent responses.
    pub keep_alive_header: bool,
    /// The idle timeout to advertise, in whole seconds.
    pub keep_alive_timeout: Option<u64>,
    /// Requests this connection may still serve after this one (`Keep-Alive: max=`).
    pub remaining: Option<u64>,
    /// Unread body bytes the connection is willing to discard.
    pub drain_bytes: u64,
}

/// Decides, when a response head is written, whether the connection closes after it.
pub(crate) fn decide(
    cx: &Exchange,
    handler_close: bool,
    close_delimited: bool,
) -> Option<CloseReason> {
    if let Some(r) = cx.plan.close {
        return Some(r);
    }
    if handler_close {
        return Some(CloseReason::HandlerClose);
    }
    if close_delimited {
        return Some(CloseReason::CloseDelimited);
    }
    let body = &cx.body;
    if !body.done.get() {
        // A client still waiting for 100 Continue may or may not send the body: the only
        // safe ending is a close. A known remainder beyond the budget is not worth reading.
        if body.awaiting_continue.get() || body.error.get().is_some() {
            return Some(CloseReason::UnreadBody);
        }
        if body
            .remaining
            .get()
            .is_some_and(|n| n > cx.plan.drain_bytes)
        {
            return Some(CloseReason::UnreadBody);
        }
    }
    None
}

/// What ends an idle wait.
enum Wake {
    Readable(io::Result<()>),
    Kick(Kick),
    TimedOut,
}

/// How a connection's task ends.
enum Outcome {
    Close(CloseReason),
    /// Idle long enough to park: the socket, duplicated (the task's registration of the
    /// original goes with the task).
    Park(std::net::TcpStream),
}

impl From<CloseReason> for Outcome {
    fn from(r: CloseReason) -> Self {
        Outcome::Close(r)
    }
}

/// What a connection carries across a park, to resume where it was.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resume {
    pub id: u64,
    pub peer: SocketAddr,
    pub served: u64,
    pub max_requests: u64,
    pub expires: Option<Instant>,
    pub idle_since: Instant,
    pub idle_deadline: Option<Instant>,
}

/// How a connection's task starts.
pub(crate) enum Start {
    /// Just accepted, from this peer.
    New(SocketAddr),
    /// Resumed from a park, at its registry key (boxed: the task's future keeps its start
    /// for its whole life).
    Resumed(usize, Box<Resume>),
}

/// A connection's task, parking: its socket, registry key and state.
pub(crate) type Parking = (std::net::TcpStream, usize, Resume);

/// Space kept free after a head for the body.
const BODY_WINDOW: usize = 4096;

struct Conn<'w, H: Handler> {
    w: &'w Worker<H>,
    stream: TcpStream,
    peer: SocketAddr,
    state: ConnState,
    bufs: Option<Box<Buffers>>,
    /// Unread input is `bufs.read[start..end]`.
    start: usize,
    end: usize,
    head: Head,
    served: u64,
    /// This connection's request limit after jitter (0 = unlimited).
    max_requests: u64,
    expires: Option<Instant>,
    /// When the wait for the next request ends.
    idle_deadline: Option<Instant>,
    /// When the connection was accepted or last became idle.
    idle_since: Instant,
    timer: Timer,
    /// This connection's slot in the worker's registry.
    key: usize,
    id: u64,
    /// Why it is closing, once decided.
    reason: Option<CloseReason>,
    /// Resumed from a park and not yet through its first idle wait.
    resumed: bool,
    /// Parked: the task ends, the connection does not.
    parked: bool,
}

/// Serves a connection, just accepted or resumed from a park, until it closes (`None`) or
/// parks (what it leaves to the park).
pub(crate) async fn serve<H: Handler>(
    w: &Worker<H>,
    stream: TcpStream,
    start: Start,
) -> Option<Parking> {
    let mut c = match start {
        Start::New(peer) => Conn::accepted(w, stream, peer),
        Start::Resumed(key, r) => Conn::resumed(w, stream, key, *r),
    };
    match c.run().await {
        Outcome::Close(reason) => {
            c.close(reason).await;
            None
        }
        Outcome::Park(socket) => {
            c.parked = true;
            Some((socket, c.key, c.resume_state()))
        }
    }
}

/// Accounts for a parked connection that could not resume (its socket, already closed,
/// could not rejoin the runtime).
pub(crate) fn lost<H: Handler>(w: &Worker<H>, key: usize, r: &Resume) {
    let event = |state| ConnEvent {
        id: r.id,
        peer: r.peer,
        state,
        requests: r.served,
        reason: Some(CloseReason::IoError),
    };
    record(
        w,
        key,
        ConnState::Idle,
        &event(ConnState::Closing),
        r.idle_since,
    );
    record(
        w,
        key,
        ConnState::Closing,
        &event(ConnState::Closed),
        r.idle_since,
    );
}

/// Records a change of state: gauges, the registry (and its idle order), the hook.
#[inline(always)]
fn record<H: Handler>(
    w: &Worker<H>,
    key: usize,
    from: ConnState,
    e: &ConnEvent,
    idle_since: Instant,
) {
    w.counters().transition(from, e.state);
    let lru_changed = match e.state {
        ConnState::Closed => {
            w.counters()
                .closed(e.reason.unwrap_or(CloseReason::IoError), e.requests);
            w.registry.remove(key)
        }
        _ => w.registry.set_state(key, e.state, idle_since),
    };
    if lru_changed {
        w.publish_oldest_idle();
    }
    if let Some(hook) = &w.hook {
        hook(e);
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn io_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => CloseReason::PeerReset,
        io::ErrorKind::TimedOut => CloseReason::WriteTimeout,
        _ => CloseReason::IoError,
    }
}

impl<'w, H: Handler> Conn<'w, H> {
    fn accepted(w: &'w Worker<H>, stream: TcpStream, peer: SocketAddr) -> Self {
        let cfg = &*w.cfg;
        let jitter = |x: f64| x * (1.0 - cfg.limit_jitter * fastrand::f64());
        let max_requests = match cfg.max_requests {
            0 => 0,
            n => (jitter(n as f64) as u64).clamp(1, n),
        };
        let now = Instant::now();
        let expires =
            (!cfg.max_lifetime.is_zero()).then(|| now + cfg.max_lifetime.mul_f64(jitter(1.0)));
        let fresh = Resume {
            id: w.next_id(),
            peer,
            served: 0,
            max_requests,
            expires,
            idle_since: now,
            idle_deadline: None,
        };
        let mut c = Conn::resumed(w, stream, w.registry.insert(now), fresh);
        (c.state, c.resumed) = (ConnState::New, false);
        record(w, c.key, ConnState::Closed, &c.event(), now);
        c
    }

    /// Takes up a parked connection where it was: `Idle`, in its idle wait.
    fn resumed(w: &'w Worker<H>, stream: TcpStream, key: usize, r: Resume) -> Self {
        Conn {
            w,
            id: r.id,
            reason: None,
            stream,
            peer: r.peer,
            state: ConnState::Idle,
            bufs: None,
            start: 0,
            end: 0,
            head: Head::default(),
            served: r.served,
            max_requests: r.max_requests,
            expires: r.expires,
            idle_deadline: r.idle_deadline,
            idle_since: r.idle_since,
            timer: Timer::new(),
            key,
            resumed: true,
            parked: false,
        }
    }

    /// What the connection carries across a park (the inverse of [`Conn::resumed`]).
    fn resume_state(&self) -> Resume {
        Resume {
            id: self.id,
            peer: self.peer,
            served: self.served,
            max_requests: self.max_requests,
            expires: self.expires,
            idle_since: self.idle_since,
            idle_deadline: self.idle_deadline,
        }
    }

    fn event(&self) -> ConnEvent {
        ConnEvent {
            id: self.id,
            peer: self.peer,
            state: self.state,
            requests: self.served,
            reason: self.reason,
        }
    }

    /// The single place where a connection changes state: gauges, the registry (and its
    /// idle order) and the hook all follow from here.
    fn set_state(&mut self, next: ConnState) {
        if self.state == next {
            return;
        }
        let from = std::mem::replace(&mut self.state, next);
        record(self.w, self.key, from, &self.event(), self.idle_since);
    }

    /// How long the wait for the next request may last: a new connection must start its
    /// first request within the header timeout; a persistent one gets the advertised idle
    /// timeout plus the grace period.
    fn idle_timeout(&self) -> std::time::Duration {
        let cfg = &*self.w.cfg;
        if self.served == 0 {
            cfg.header_timeout
        } else if cfg.idle_timeout.is_zero() {
            cfg.idle_timeout
        } else {
            cfg.idle_timeout + cfg.idle_grace
        }
    }

    fn bufs(&mut self) -> &mut Buffers {
        let pool = &self.w.pool;
        let head = &mut self.head;
        self.bufs.get_or_insert_with(|| {
            let mut b = pool.take();
            std::mem::swap(&mut head.fields, &mut b.fields);
            b
        })
    }

    /// Gives the buffers back to the worker's pool (only with nothing buffered).
    fn release(&mut self) {
        if let Some(mut b) = self.bufs.take() {
            std::mem::swap(&mut self.head.fields, &mut b.fields);
            self.w.pool.give(b);
        }
        self.start = 0;
        self.end = 0;
    }

    async fn flush(&mut self) -> Result<(), CloseReason> {
        let timeout = self.w.cfg.write_timeout;
        match &mut self.bufs {
            Some(b) if !b.write.is_empty() => flush(&self.stream, &mut b.write, timeout)
                .await
                .map_err(|e| io_reason(&e)),
            _ => Ok(()),
        }
    }

    async fn run(&mut self) -> Outcome {
        loop {
            if self.start == self.end {
                // A resumed connection is already idle, since `idle_since`.
                if !std::mem::take(&mut self.resumed) {
                    if let Err(r) = self.flush().await {
                        return r.into();
                    }
                    self.idle_since = Instant::now();
                    let timeout = self.idle_timeout();
                    self.idle_deadline = (!timeout.is_zero()).then(|| self.idle_since + timeout);
                    self.set_state(if self.served == 0 {
                        ConnState::New
                    } else {
                        ConnState::Idle
                    });
                    self.release();
                    if let Err(o) = self.wait_for_request(true).await {
                        return o;
                    }
                } else if let Err(o) = self.wait_for_request(false).await {
                    return o;
                }
            }
            self.set_state(ConnState::Active);
            let head_len = match self.read_head().await {
                Ok(n) => n,
                Err(r) => return r.into(),
            };
            if let Finish::Close(r) = self.exchange(head_len).await {
                return r.into();
            }
            if self
                .bufs
                .as_ref()
                .is_some_and(|b| b.write.len() >= 64 * 1024)
            {
                if let Err(r) = self.flush().await {
                    return r.into();
                }
            }
        }
    }

    /// When this idle wait hands the connection to the park, if it may.
    fn park_at(&self) -> Option<Instant> {
        let cfg = &*self.w.cfg;
        let mut after = cfg.park_after;
        if self.w.counters().idle_tasks() > cfg.max_idle_tasks as u64 {
            after = after.min(PARK_AFTER_UNDER_PRESSURE);
        }
        let at = self.idle_since + after;
        let may = self.served > 0
            && !after.is_zero()
            && !self.w.draining.get()
            && self.w.park.as_ref().is_some_and(|p| p.is_watched())
            && self.idle_deadline.is_none_or(|d| at < d);
        may.then_some(at)
    }

    /// The socket, duplicated, for the park; `None` when no descriptor is left for it.
    fn park_socket(&self) -> Option<std::net::TcpStream> {
        use std::os::fd::AsFd;
        let fd = self.stream.as_fd().try_clone_to_owned().ok()?;
        Some(std::net::TcpStream::from(fd))
    }

    /// Waits, holding no buffer, until the next request starts to arrive (or, when `park`
    /// allows it and the connection stays idle for `park_after`, until it parks).
    async fn wait_for_request(&mut self, park: bool) -> Result<(), Outcome> {
        let park_at = park.then(|| self.park_at()).flatten();
        let mut until = earliest(self.idle_deadline, park_at);
        // Set while draining: when this connection has been idle for the minimum age.
        let mut drain_at = None;
        loop {
            if let Some(d) = until {
                self.timer.arm(d);
            }
            let (registry, key, stream, timer) =
                (&self.w.registry, self.key, &self.stream, &mut self.timer);
            let event = poll_fn(|cx| {
                if let Poll::Ready(r) = stream.poll_read_ready(cx) {
                    return Poll::Ready(Wake::Readable(r));
                }
                if let Poll::Ready(k) = registry.poll_kick(key, cx) {
                    return Poll::Ready(Wake::Kick(k));
                }
                match until {
                    Some(d) => timer.poll_expired(d, cx).map(|()| Wake::TimedOut),
                    None => Poll::Pending,
                }
            })
            .await;
            match event {
                Wake::Readable(Ok(())) => {
                    // Readiness can be stale (a new socket is reported readable before any
                    // byte): only bytes make the connection active. This read is the one
                    // the head would start with, so it costs no extra system call.
                    self.bufs();
                    let Some(b) = self.bufs.as_mut() else {
                        return Err(CloseReason::IoError.into());
                    };
                    match try_read(&self.stream, &mut b.read) {
                        Ok(0) => return Err(CloseReason::PeerClosed.into()),
                        Ok(n) => {
                            (self.start, self.end) = (0, n);
                            return Ok(());
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.release(),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_reason(&e).into()),
                    }
                }
                Wake::Readable(Err(e)) => return Err(io_reason(&e).into()),
                Wake::TimedOut if drain_at.is_some_and(|at| Instant::now() >= at) => {
                    return Err(CloseReason::Shutdown.into())
                }
                // A new connection that sent nothing within the header timeout.
                Wake::TimedOut if self.served == 0 => return Err(CloseReason::HeaderTimeout.into()),
                Wake::TimedOut if self.idle_deadline.is_none_or(|d| Instant::now() < d) => {
                    // Only the park's time can have come (the drain clears it).
                    if let Some(socket) = self.park_socket() {
                        return Err(Outcome::Park(socket));
                    }
                    until = self.idle_deadline;
                }
                Wake::TimedOut => return Err(CloseReason::IdleTimeout.into()),
                Wake::Kick(Kick::Close) if self.w.draining.get() => {
                    return Err(CloseReason::Shutdown.into())
                }
                Wake::Kick(Kick::Close) => return Err(CloseReason::Evicted.into()),
                Wake::Kick(Kick::Drain) => {
                    // A request may be on its way on a connection that just went idle:
                    // give it the minimum idle age before closing.
                    let at = self.idle_since + self.w.cfg.min_idle_age;
                    if Instant::now() >= at {
                        return Err(CloseReason::Shutdown.into());
                    }
                    drain_at = Some(at);
                    until = earliest(self.idle_deadline, Some(at));
                }
            }
        }
    }

    fn limits(&self) -> Limits {
        let cfg = &*self.w.cfg;
        Limits {
            max_head_size: cfg.max_head_size,
            max_headers: cfg.max_headers,
            max_uri_len: cfg.max_uri_len,
            max_body_size: cfg.max_body_size,
        }
    }

    /// Queues an error response; the close that follows flushes it.
    fn reject(&mut self, status: Status) {
        let (start, end) = (self.start, self.end);
        let b = self.bufs();
        // The head may not have parsed, but a HEAD request line is enough to omit the body.
        let is_head = b.read[start..end].starts_with(b"HEAD ");
        error_response(&mut b.write, status, is_head);
    }

    /// Reads until `bufs.read[start..]` holds a complete head; returns its length.
    async fn read_head(&mut self) -> Result<usize, CloseReason> {
        let limits = self.limits();
        let cfg = &*self.w.cfg;
        let mut head_deadline = None;
        // How many bytes from `start` hold no line end that could complete the head (an
        // offset from `start`, which moving the input to the front keeps valid); none are
        // known at first, so that a head that came in one read is parsed at once.
        let mut scanned = None;
        self.bufs();
        loop {
            if self.start < self.end {
                let b = self.bufs.as_mut().expect("buffers taken above");
                let new = &b.read[self.start + scanned.unwrap_or(0)..self.end];
                if scanned.is_none()
                    || new.contains(&b'\n')
                    || self.end - self.start >= limits.max_head_size
                {
                    match parse_head(&b.read[self.start..self.end], &limits, &mut self.head) {
                        Ok(Some(n)) => return Ok(n),
                        Ok(None) => {}
                        Err(rej) => {
                            tracing::debug!(peer = %self.peer, why = rej.why, "request rejected");
                            self.reject(rej.status);
                            return Err(CloseReason::ProtocolError);
                        }
                    }
                }
                scanned = Some(self.end - self.start);
                if head_deadline.is_none() {
                    // Armed when the first bytes of a head turn out to be incomplete: the
                    // time from the first byte to here is one parse.
                    head_deadline = Some(deadline(cfg.header_timeout));
                }
            }
            self.make_room(limits.max_head_size + BODY_WINDOW);
            if self.end == self.bufs().read.len() {
                self.reject(Status::HEADER_FIELDS_TOO_LARGE);
                return Err(CloseReason::ProtocolError);
            }
            self.flush().await?;
            let dl = if self.start < self.end {
                head_deadline.flatten()
            } else {
                self.idle_deadline
            };
            let b = self.bufs.as_mut().expect("buffers taken above");
            match read_some(&self.stream, &mut b.read[self.end..], &mut self.timer, dl).await {
                Ok(Read::Data(0)) => {
                    return Err(if self.start < self.end {
                        CloseReason::ClosedMidRequest
                    } else {
                        CloseReason::PeerClosed
                    })
                }
                Ok(Read::Data(n)) => self.end += n,
                Ok(Read::TimedOut) if self.start < self.end => {
                    self.reject(Status::REQUEST_TIMEOUT);
                    return Err(CloseReason::HeaderTimeout);
                }
                Ok(Read::TimedOut) => return Err(CloseReason::IdleTimeout),
                Err(e) => return Err(io_reason(&e)),
            }
        }
    }

    /// Makes free space after `end`: moves unread input to the front, or grows the buffer
    /// up to `max`.
    fn make_room(&mut self, max: usize) {
        let (start, end) = (self.start, self.end);
        let b = self.bufs();
        if end < b.read.len() {
            return;
        }
        if start > 0 {
            b.read.copy_within(start..end, 0);
            self.end -= start;
            self.start = 0;
        } else if b.read.len() < max {
            let len = (b.read.len() * 2).min(max);
            b.read.resize(len, 0);
        }
    }

    fn plan(&self) -> Plan {
        let cfg = &*self.w.cfg;
        let h = &self.head;
        let last = self.max_requests > 0 && self.served + 1 >= self.max_requests;
        let close = if self.w.draining.get() {
            Some(CloseReason::Shutdown)
        } else if h.conn_close || (h.version == Version::Http10 && !h.conn_keep_alive) {
            Some(CloseReason::ClientClose)
        } else if last {
            Some(CloseReason::MaxRequests)
        } else if self.expires.is_some_and(|e| Instant::now() >= e) {
            Some(CloseReason::MaxLifetime)
        } else {
            None
        };
        Plan {
            close,
            http10_keep_alive: h.version == Version::Http10 && h.conn_keep_alive,
            keep_alive_header: cfg.keep_alive_header,
            // Whole seconds, rounded down: the advertised timeout must never be longer than
            // the real one.
            keep_alive_timeout: Some(cfg.idle_timeout.as_secs()).filter(|&t| t > 0),
            remaining: (self.max_requests > 0).then(|| self.max_requests - self.served - 1),
            drain_bytes: cfg.drain_bytes,
        }
    }

    /// Runs one request through the handler and encodes its response.
    async fn exchange(&mut self, head_len: usize) -> Finish {
        let cfg = &*self.w.cfg;
        let framing = self.head.framing;
        let cx = Exchange {
            plan: self.plan(),
            is_head: self.head.is_head,
            version: self.head.version,
            body: BodyState::default(),
        };
        if framing != BodyFraming::Empty {
            // Keep a window after the head for the body, and send what earlier pipelined
            // requests produced before waiting on the client for more.
            let room = self.bufs().read.len() - (self.start + head_len);
            if room < BODY_WINDOW {
                let (start, end) = (self.start, self.end);
                let b = self.bufs();
                b.read.copy_within(start..end, 0);
                if b.read.len() < head_len + BODY_WINDOW {
                    b.read.resize(head_len + BODY_WINDOW, 0);
                }
                self.end -= start;
                self.start = 0;
            }
            if let Err(r) = self.flush().await {
                return Finish::Close(r);
            }
        }
        self.bufs();
        let Conn {
            w,
            stream,
            peer,
            bufs,
            head,
            start,
            end,
            timer,
            ..
        } = self;
        let Some(b) = bufs.as_mut() else {
            return Finish::Close(CloseReason::IoError);
        };
        let head_end = *start + head_len;
        let (head_area, window) = b.read.split_at_mut(head_end);
        let body = Body::new(
            stream,
            window,
            *end - head_end,
            framing,
            head.expect_continue,
            (cfg.max_body_size, cfg.max_head_size),
            (cfg.body_timeout, cfg.write_timeout),
            &cx.body,
            timer,
        );
        let mut req = Request {
            head,
            bytes: &head_area[*start..],
            peer: *peer,
            body,
        };
        let mut res = Response::new(
            stream,
            &mut b.write,
            (&mut b.headers, &mut b.body),
            &cx,
            cfg.write_timeout,
        );
        let result = w.handler.call(&mut req, &mut res).await;
        let mut finish = res.finish(result);
        if finish == Finish::KeepAlive && !req.body.discard_buffered() {
            // Answer first, then discard the rest of the body within the budget.
            if let Err(e) = flush(stream, &mut b.write, cfg.write_timeout).await {
                finish = Finish::Close(io_reason(&e));
            } else if !req
                .body
                .discard(cfg.drain_bytes, Instant::now() + cfg.drain_time)
                .await
            {
                finish = Finish::Close(CloseReason::UnreadBody);
            }
        }
        *start = head_end + req.body.pos;
        *end = head_end + req.body.filled;
        self.served += 1;
        bump(&self.w.counters().requests);
        finish
    }

    /// True when the client asked for the close and has sent nothing since: it expects the
    /// close and will not send more, so a plain close cannot reset anything it waits for.
    /// Closes the server decides on its own always linger: the client may have requests in
    /// flight.
    fn quiet_client_close(&mut self, reason: CloseReason) -> bool {
        if reason != CloseReason::ClientClose || self.start < self.end {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Flushes what is owed, shuts down the write side and reads what the client still
    /// sends for a bounded time, so that it sees the response rather than a reset.
    async fn close(&mut self, reason: CloseReason) {
        self.reason = Some(reason);
        self.set_state(ConnState::Closing);
        let lingers = !matches!(
            reason,
            CloseReason::PeerReset
                | CloseReason::IoError
                | CloseReason::WriteTimeout
                | CloseReason::IdleTimeout
        );
        let flushed = if lingers { self.flush().await } else { Ok(()) };
        if let Err(r) = flushed {
            // The last response did not go out (a write timeout, a reset): that ends the
            // connection, whatever decided to close it.
            self.reason = Some(r);
        } else if lingers && !self.quiet_client_close(reason) {
            let _ = SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
            if reason != CloseReason::PeerClosed {
                let until = deadline(self.w.cfg.linger_timeout);
                self.start = 0;
                self.end = 0;
                self.bufs();
                if let Some(b) = self.bufs.as_mut() {
                    let timer = &mut self.timer;
                    while let Ok(Read::Data(1..)) =
                        read_some(&self.stream, &mut b.read, timer, until).await
                    {
                    }
                }
            }
        }
        self.release();
        self.set_state(ConnState::Closed);
    }
}

impl<H: Handler> Drop for Conn<'_, H> {
    /// Accounts for a connection whose task ended without its close: cut at the end of a
    /// shutdown, or unwound by a panicking handler.
    fn drop(&mut self) {
        if self.state != ConnState::Closed && !self.parked {
            self.reason.get_or_insert(CloseReason::Shutdown);
            self.set_state(ConnState::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Hello;
    impl Handler for Hello {
        async fn call(&self, _: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
            res.body_static(b"Hello, World!");
            Ok(())
        }
    }

    /// The connection future is what a connection costs in user space, besides its socket
    /// registration, until it parks: a guard against growth (1,256 bytes when this was
    /// written).
    #[test]
    fn connection_future_is_small() {
        fn size<F: std::future::Future>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let stream = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let peer = stream.local_addr().unwrap();
            let shared = crate::server::admission::Shared::new(
                crate::server::stats::Stats::new(1),
                None,
                16,
                0,
            );
            let w = Worker::new(Default::default(), Hello, std::sync::Arc::new(shared), 0);
            let fut = serve(&w, stream, Start::New(peer));
            let n = size(&fut);
            println!(
                "connection future: {n} bytes; conn {}, exchange {}, body {}, response {}, head {}",
                std::mem::size_of::<Conn<Hello>>(),
                std::mem::size_of::<Exchange>(),
                std::mem::size_of::<Body>(),
                std::mem::size_of::<Response>(),
                std::mem::size_of::<Head>()
            );
            assert!(n <= 1280, "connection future grew to {n} bytes");
        });
    }
}
