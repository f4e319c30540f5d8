//! One connection's life: the state machine that reads, parses, runs the handler, writes,
//! waits between requests, parks, and closes.
//!
//! ```text
//!  New ──first byte──▶ Active ──response, keep-alive──▶ Idle ──first byte──▶ Active …
//!   │                    │                               │  ▲
//!   │                    │                    park_after │  │ readable, deadline, kick
//!   │                    │                               ▼  │
//!   │                    │                         Idle, parked (no task)
//!   └──timeout/EOF───────┴──close decided──▶ Closing ◀───┘ idle timeout, drain, eviction
//!                                              │ flush, shut down write, drain input
//!                                              ▼
//!                                            Closed
//! ```
//!
//! A connection reads into its read buffer, parses a head ([`head`]), hands the request to
//! the handler ([`exchange`], [`request`], [`body`], [`response`]), encodes the response into
//! its write buffer and loops. Responses to pipelined requests accumulate and go out in one
//! write when no further complete request is buffered. Whether it lives on after a response
//! is decided by [`keepalive`] alone. Between requests it waits without buffers ([`idle`]);
//! idle for [`crate::Config::park_after`] it leaves its task to be parked by its worker,
//! stays `Idle`, and resumes here as a new task that takes up the idle wait where it was.
//!
//! It runs over any [`transport::Transport`] and reaches its worker only through
//! [`host::Host`].

pub(crate) mod body;
pub(crate) mod buffers;
pub(crate) mod exchange;
pub(crate) mod handler;
mod head;
pub(crate) mod host;
mod idle;
pub(crate) mod keepalive;
pub(crate) mod linger;
pub(crate) mod request;
pub(crate) mod response;
#[cfg(test)]
mod scripted;
pub(crate) mod stream;
pub(crate) mod timed_io;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod transport;

use std::io;
use std::net::SocketAddr;

use tokio::time::Instant;

use crate::conn::body::Body;
use crate::conn::buffers::{compact, Buffers};
use crate::conn::exchange::{BodyState, Exchange};
use crate::conn::handler::Handler;
use crate::conn::host::Host;
use crate::conn::keepalive::{Finish, Standing};
use crate::conn::request::Request;
use crate::conn::response::Response;
use crate::conn::stream::{Park, ParkedStream};
use crate::conn::timed_io::{deadline, flush, Timer};
use crate::conn::transport::Transport;
use crate::lifecycle::{CloseReason, ConnEvent, ConnState, Handshake, HandshakeFailure};
use crate::proto::parse::{BodyFraming, Head};

/// How a connection's task ends.
enum Outcome {
    Close(CloseReason),
    /// Idle long enough to park: what the stream leaves to the park.
    Park(ParkedStream),
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
    /// Resumed from a park, at its key (boxed: the task's future keeps its start for its
    /// whole life).
    Resumed(usize, Box<Resume>),
}

/// A connection's task, parking: its socket, key and state.
pub(crate) type Parking = (ParkedStream, usize, Resume);

/// Space kept free after a head for the body.
const BODY_WINDOW: usize = 4096;

struct Conn<'w, W: Host, T: Transport + Park> {
    w: &'w W,
    stream: T,
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
    /// This connection's key among its worker's live connections.
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
pub(crate) async fn serve<W: Host, T: Transport + Park>(
    w: &W,
    stream: T,
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
pub(crate) fn lost<W: Host>(w: &W, key: usize, r: &Resume) {
    let event = |state| ConnEvent {
        id: r.id,
        peer: r.peer,
        state,
        requests: r.served,
        reason: Some(CloseReason::IoError),
    };
    w.record(
        key,
        ConnState::Idle,
        &event(ConnState::Closing),
        r.idle_since,
    );
    w.record(
        key,
        ConnState::Closing,
        &event(ConnState::Closed),
        r.idle_since,
    );
}

impl<'w, W: Host, T: Transport + Park> Conn<'w, W, T> {
    fn accepted(w: &'w W, stream: T, peer: SocketAddr) -> Self {
        let now = Instant::now();
        let (max_requests, expires) = keepalive::limits(w.config(), now);
        let (id, key) = w.register(now);
        let fresh = Resume {
            id,
            peer,
            served: 0,
            max_requests,
            expires,
            idle_since: now,
            idle_deadline: None,
        };
        let mut c = Conn::resumed(w, stream, key, fresh);
        (c.state, c.resumed) = (ConnState::New, false);
        w.record(c.key, ConnState::Closed, &c.event(), now);
        c
    }

    /// Takes up a parked connection where it was: `Idle`, in its idle wait.
    fn resumed(w: &'w W, stream: T, key: usize, r: Resume) -> Self {
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

    /// The single place where a connection changes state: gauges, the idle order and the
    /// hook all follow from the host's record of it.
    fn set_state(&mut self, next: ConnState) {
        if self.state == next {
            return;
        }
        let from = std::mem::replace(&mut self.state, next);
        self.w
            .record(self.key, from, &self.event(), self.idle_since);
    }

    fn bufs(&mut self) -> &mut Buffers {
        let pool = self.w.pool();
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
            self.w.pool().give(b);
        }
        self.start = 0;
        self.end = 0;
    }

    async fn flush(&mut self) -> Result<(), CloseReason> {
        let timeout = self.w.config().write_timeout;
        match &mut self.bufs {
            Some(b) if !b.write.is_empty() => flush(&self.stream, &mut b.write, timeout)
                .await
                .map_err(|e| keepalive::io_reason(&e)),
            _ => Ok(()),
        }
    }

    /// Waits for the transport's handshake (TLS), bounded by the handshake timeout.
    async fn handshake(stream: &T, limit: std::time::Duration) -> Result<(), HandshakeFailure> {
        let done = std::future::poll_fn(|cx| stream.poll_handshake(cx));
        let result = if limit.is_zero() {
            done.await
        } else {
            match tokio::time::timeout(limit, done).await {
                Ok(r) => r,
                Err(_) => return Err(HandshakeFailure::Timeout),
            }
        };
        #[cfg(feature = "tls")]
        return result.map_err(|e| tls::classify(&e));
        #[cfg(not(feature = "tls"))]
        return result.map_err(|_| HandshakeFailure::Io);
    }

    async fn run(&mut self) -> Outcome {
        if self.stream.handshaking() {
            // Only TLS connections wait here: the wait lives in its own allocation so that
            // every connection's future does not carry it.
            let (limit, started) = (self.w.config().handshake_timeout, Instant::now());
            let outcome = match Box::pin(Self::handshake(&self.stream, limit)).await {
                Ok(()) if self.stream.resumed() => Handshake::Resumed,
                Ok(()) => Handshake::Full,
                Err(failure) => Handshake::Failed(failure),
            };
            self.w.handshake(outcome, started.elapsed());
            if let Handshake::Failed(failure) = outcome {
                return failure.close_reason().into();
            }
        }
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

    /// Runs one request through the handler and encodes its response.
    async fn exchange(&mut self, head_len: usize) -> Finish {
        let cfg = self.w.config();
        let framing = self.head.framing;
        let standing = Standing {
            served: self.served,
            max_requests: self.max_requests,
            expires: self.expires,
        };
        let cx = Exchange {
            io: &self.stream,
            draining: self.w.draining(),
            plan: keepalive::plan(cfg, &self.head, standing),
            is_head: self.head.is_head,
            version: self.head.version,
            body: BodyState::default(),
        };
        if framing != BodyFraming::Empty {
            // Keep a window after the head for the body, and send what earlier pipelined
            // requests produced before waiting on the client for more.
            // The head was read into the buffers: they are here.
            let Some(b) = self.bufs.as_mut() else {
                return Finish::Close(CloseReason::IoError);
            };
            if b.read.len() - (self.start + head_len) < BODY_WINDOW {
                compact(&mut b.read, &mut self.start, &mut self.end);
                if b.read.len() < head_len + BODY_WINDOW {
                    b.read.resize(head_len + BODY_WINDOW, 0);
                }
            }
            if !b.write.is_empty() {
                if let Err(e) = flush(&self.stream, &mut b.write, cfg.write_timeout).await {
                    return Finish::Close(keepalive::io_reason(&e));
                }
            }
        }
        let Conn {
            w,
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
            &cx,
            window,
            *end - head_end,
            framing,
            head.expect_continue,
            cfg,
            timer,
        );
        let mut req = Request {
            head,
            bytes: &head_area[*start..],
            peer: *peer,
            body,
        };
        let mut res = Response::new(
            &mut b.write,
            (&mut b.headers, &mut b.body),
            &cx,
            cfg.write_timeout,
        );
        let result = w.handler().call(&mut req, &mut res).await;
        let mut finish = res.finish(result);
        if finish == Finish::KeepAlive && !req.body.discard_buffered() {
            // Answer first, then discard the rest of the body within the budget.
            // Rare (a body left unread): through the exchange's trait object, so that the
            // exchange does not keep the stream's reference across the handler.
            finish = match flush(cx.io, &mut b.write, cfg.write_timeout).await {
                Err(e) => Finish::Close(keepalive::io_reason(&e)),
                Ok(()) => keepalive::after_discard(
                    req.body
                        .discard(cfg.drain_bytes, Instant::now() + cfg.drain_time)
                        .await,
                ),
            };
        }
        *start = head_end + req.body.pos;
        *end = head_end + req.body.filled;
        self.served += 1;
        self.w.request_done();
        finish
    }

    /// True when nothing is buffered and the client has sent nothing since.
    fn quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        self.start == self.end
            && matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Flushes what is owed and closes as the keep-alive policy says: lingering (shut down
    /// the write side, then read what the client still sends for a bounded time, so that
    /// it sees the response rather than a reset) or at once.
    async fn close(&mut self, reason: CloseReason) {
        self.reason = Some(reason);
        self.set_state(ConnState::Closing);
        let lingers = keepalive::lingers(reason);
        let flushed = if lingers { self.flush().await } else { Ok(()) };
        if let Err(r) = flushed {
            // The last response did not go out (a write timeout, a reset): that ends the
            // connection, whatever decided to close it.
            self.reason = Some(r);
        } else if lingers && !keepalive::skips_linger(reason, || self.quiet()) {
            if reason == CloseReason::PeerClosed {
                // Nothing more will come: the shutdown alone ends it cleanly.
                let until = deadline(self.w.config().linger_timeout);
                linger::shut_down_write(&self.stream, until).await;
            } else {
                let until = deadline(self.w.config().linger_timeout);
                self.start = 0;
                self.end = 0;
                self.bufs();
                if let Some(b) = self.bufs.as_mut() {
                    linger::linger(&self.stream, &mut b.read, &mut self.timer, until).await;
                }
            }
        } else if keepalive::ends_cleanly(reason) && self.stream.close_notify() {
            // No linger, but a transport with an end-of-stream message of its own (TLS
            // close_notify) still says it, so that the client can tell this close from a
            // truncation.
            let until = deadline(self.w.config().linger_timeout);
            linger::shut_down_write(&self.stream, until).await;
        }
        self.release();
        self.set_state(ConnState::Closed);
    }
}

impl<W: Host, T: Transport + Park> Drop for Conn<'_, W, T> {
    /// Accounts for a connection whose task ended without its close: cut at the end of a
    /// shutdown, or unwound by a panicking handler.
    fn drop(&mut self) {
        if self.state != ConnState::Closed && !self.parked {
            self.reason.get_or_insert(CloseReason::Shutdown);
            self.set_state(ConnState::Closed);
        }
    }
}
