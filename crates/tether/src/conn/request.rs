//! The request a handler receives: a view of the parsed head, and the body as a reader.
//!
//! Both borrow the connection's read buffer: the head is the part already parsed, the body
//! reader owns the rest of the buffer and refills it from the socket as the handler reads.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::conn::timed_io::{deadline, read_some, write_all, Read, Timer};
use crate::proto::framing::{ChunkError, ChunkedDecoder};
use crate::proto::parse::{BodyFraming, Head, Version};

/// A request head and its body.
///
/// ```no_run
/// # async fn f(req: &mut tether::Request<'_>) -> std::io::Result<()> {
/// if req.method() == "POST" && req.path() == "/upload" {
///     let mut total = 0;
///     while let Some(chunk) = req.body().chunk().await? {
///         total += chunk.len();
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Request<'a> {
    pub(crate) head: &'a Head,
    pub(crate) bytes: &'a [u8],
    pub(crate) peer: SocketAddr,
    pub(crate) body: Body<'a>,
}

fn text(b: &[u8]) -> &str {
    // SAFETY: every range the head records was taken from a `&str` that httparse returned
    // (method, target, header name), cut only at an ASCII `?`, so it is valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(b) }
}

impl<'a> Request<'a> {
    /// The method, such as `GET`.
    pub fn method(&self) -> &str {
        text(self.head.method(self.bytes))
    }

    /// The request target as sent (`/path?query`).
    pub fn target(&self) -> &str {
        text(self.head.target(self.bytes))
    }

    /// The path part of the target, without the query (`/` for an absolute-form target
    /// without a path).
    pub fn path(&self) -> &str {
        match text(self.head.path(self.bytes)) {
            "" => "/",
            path => path,
        }
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.head.query(self.bytes).map(text)
    }

    /// The HTTP version of the request.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// All header fields, in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        (0..self.head.fields.len()).map(move |i| {
            let (n, v) = self.head.field(self.bytes, i);
            (text(n), v)
        })
    }

    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        (0..self.head.fields.len())
            .map(|i| self.head.field(self.bytes, i))
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The request body.
    pub fn body(&mut self) -> &mut Body<'a> {
        &mut self.body
    }
}

/// Why reading a request body failed. The connection answers with the matching status
/// (400, 408 or 413) when the handler has not yet sent a response, and then closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Malformed chunked framing (400).
    Malformed,
    /// No progress within the body timeout (408).
    Timeout,
    /// More than the configured maximum (413).
    TooLarge,
    /// The client closed or reset the connection mid-body.
    Closed,
}

impl BodyError {
    fn io(self) -> io::Error {
        let (kind, msg) = match self {
            BodyError::Malformed => (io::ErrorKind::InvalidData, "malformed request body"),
            BodyError::Timeout => (io::ErrorKind::TimedOut, "request body timed out"),
            BodyError::TooLarge => (io::ErrorKind::InvalidData, "request body too large"),
            BodyError::Closed => (io::ErrorKind::UnexpectedEof, "client closed mid-body"),
        };
        io::Error::new(kind, msg)
    }
}

/// What the response side needs to know about the body: shared by the body reader and the
/// response of one exchange.
#[derive(Debug, Default)]
pub(crate) struct BodyState {
    /// The whole body has been read (or there was none).
    pub done: Cell<bool>,
    /// Bytes still due, when the framing tells (Content-Length).
    pub remaining: Cell<Option<u64>>,
    pub error: Cell<Option<BodyError>>,
    /// The client waits for `100 Continue`, which has not been sent.
    pub awaiting_continue: Cell<bool>,
}

enum Decode {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The body of a request, read incrementally.
///
/// Reading sends `100 Continue` first when the client asked for it. Errors are also recorded
/// for the connection, which answers 400, 408 or 413 in place of the handler's response.
pub struct Body<'a> {
    io: &'a TcpStream,
    /// The read buffer after the head: `[pos, filled)` is unread input.
    buf: &'a mut [u8],
    pub(crate) pos: usize,
    pub(crate) filled: usize,
    decode: Decode,
    received: u64,
    max: u64,
    timeout: Duration,
    write_timeout: Duration,
    state: &'a BodyState,
    timer: &'a mut Timer,
}

impl<'a> Body<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        io: &'a TcpStream,
        buf: &'a mut [u8],
        filled: usize,
        framing: BodyFraming,
        expect_continue: bool,
        limits: (u64, usize),
        timeouts: (Duration, Duration),
        state: &'a BodyState,
        timer: &'a mut Timer,
    ) -> Self {
        let decode = match framing {
            BodyFraming::Empty => Decode::Length(0),
            BodyFraming::Length(n) => Decode::Length(n),
            BodyFraming::Chunked => Decode::Chunked(ChunkedDecoder::new(limits.1)),
        };
        let body = Body {
            io,
            buf,
            pos: 0,
            filled,
            decode,
            received: 0,
            max: limits.0,
            timeout: timeouts.0,
            write_timeout: timeouts.1,
            state,
            timer,
        };
        state.error.set(None);
        body.update_state();
        state
            .awaiting_continue
            .set(expect_continue && !body.is_done() && filled == 0);
        body
    }

    fn update_state(&self) {
        let (done, remaining) = match &self.decode {
            Decode::Length(n) => (*n == 0, Some(*n)),
            Decode::Chunked(d) => (d.is_done(), None),
        };
        self.state.done.set(done);
        self.state.remaining.set(remaining);
    }

    /// True once the whole body has been read.
    pub fn is_done(&self) -> bool {
        match &self.decode {
            Decode::Length(n) => *n == 0,
            Decode::Chunked(d) => d.is_done(),
        }
    }

    /// The declared length (`Content-Length`), if any.
    pub fn remaining_hint(&self) -> Option<u64> {
        match &self.decode {
            Decode::Length(n) => Some(*n),
            Decode::Chunked(_) => None,
        }
    }

    fn fail(&self, e: BodyError) -> io::Error {
        self.state.error.set(Some(e));
        e.io()
    }

    /// The next piece of the body, borrowed from the read buffer, or `None` at the end.
    pub async fn chunk(&mut self) -> io::Result<Option<&[u8]>> {
        if let Some(e) = self.state.error.get() {
            return Err(e.io());
        }
        let range = loop {
            if self.is_done() {
                self.update_state();
                return Ok(None);
            }
            if self.pos < self.filled {
                let avail = &self.buf[self.pos..self.filled];
                match &mut self.decode {
                    Decode::Length(remaining) => {
                        let n = avail
                            .len()
                            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                        *remaining -= n as u64;
                        let start = self.pos;
                        self.pos += n;
                        break start..start + n;
                    }
                    Decode::Chunked(d) => {
                        let step = d.step(avail).map_err(|e| {
                            self.fail(match e {
                                ChunkError::TooLong => BodyError::TooLarge,
                                _ => BodyError::Malformed,
                            })
                        })?;
                        let start = self.pos;
                        self.pos += step.consumed;
                        if let Some(r) = step.data {
                            break start + r.start..start + r.end;
                        }
                        continue;
                    }
                }
            }
            self.fill().await?;
        };
        self.received += range.len() as u64;
        if self.received > self.max {
            return Err(self.fail(BodyError::TooLarge));
        }
        self.update_state();
        Ok(Some(&self.buf[range]))
    }

    /// Reads more input into the buffer, sending `100 Continue` first if it is owed.
    async fn fill(&mut self) -> io::Result<()> {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
        } else if self.filled == self.buf.len() {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        if self.filled == self.buf.len() {
            // Cannot happen: the decoder consumes all framing it is shown, and the window
            // after the head is never empty. Refuse rather than read into nothing.
            return Err(self.fail(BodyError::Malformed));
        }
        if self.state.awaiting_continue.get() {
            self.state.awaiting_continue.set(false);
            write_all(
                self.io,
                &mut [b"HTTP/1.1 100 Continue\r\n\r\n"],
                self.write_timeout,
            )
            .await?;
        }
        match read_some(
            self.io,
            &mut self.buf[self.filled..],
            self.timer,
            deadline(self.timeout),
        )
        .await
        {
            Ok(Read::Data(0)) => Err(self.fail(BodyError::Closed)),
            Ok(Read::Data(n)) => {
                self.filled += n;
                Ok(())
            }
            Ok(Read::TimedOut) => Err(self.fail(BodyError::Timeout)),
            Err(e) => {
                self.state.error.set(Some(BodyError::Closed));
                Err(e)
            }
        }
    }

    /// Copies body bytes into `out`; returns 0 at the end of the body.
    pub async fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // Read at most what fits: take a chunk view and leave the rest buffered.
        if out.is_empty() {
            return Ok(0);
        }
        let want = out.len();
        let Some(chunk) = self.chunk().await? else {
            return Ok(0);
        };
        let n = chunk.len().min(want);
        out[..n].copy_from_slice(&chunk[..n]);
        let extra = chunk.len() - n;
        if extra > 0 {
            // Give back what did not fit: the data is still in the buffer at the end of the
            // chunk, so step back over it.
            self.unread(extra);
        }
        Ok(n)
    }

    fn unread(&mut self, extra: usize) {
        self.pos -= extra;
        self.received -= extra as u64;
        match &mut self.decode {
            Decode::Length(n) => *n += extra as u64,
            Decode::Chunked(d) => d.unread(extra as u64),
        }
        self.update_state();
    }

    /// Appends the rest of the body to `out`.
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut total = 0;
        while let Some(chunk) = self.chunk().await? {
            out.extend_from_slice(chunk);
            total += chunk.len();
        }
        Ok(total)
    }

    /// Reads and drops the rest of the body, up to `max_bytes` and until `until`. Returns
    /// true when the body ended within the budget.
    pub(crate) async fn discard(&mut self, max_bytes: u64, until: tokio::time::Instant) -> bool {
        let mut dropped = 0u64;
        // The handler may have left the body without reading: no 100 Continue was sent, so
        // the client may not send it at all.
        if self.state.awaiting_continue.get() {
            return false;
        }
        // Every wait below ends by `until` at the latest: the body timeout is lowered to it.
        let (limit, timeout) = (self.max, self.timeout);
        self.max = u64::MAX;
        let ok = loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break false;
            }
            self.timeout = if timeout.is_zero() {
                left
            } else {
                timeout.min(left)
            };
            match self.chunk().await {
                Ok(None) => break true,
                Ok(Some(c)) => {
                    dropped += c.len() as u64;
                    if dropped > max_bytes {
                        break false;
                    }
                }
                Err(_) => break false,
            }
        };
        (self.max, self.timeout) = (limit, timeout);
        ok
    }

    /// Consumes what is already buffered without waiting; true when the body is complete.
    pub(crate) fn discard_buffered(&mut self) -> bool {
        while !self.is_done() && self.pos < self.filled && self.state.error.get().is_none() {
            let avail = &self.buf[self.pos..self.filled];
            match &mut self.decode {
                Decode::Length(remaining) => {
                    let n = avail
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= n as u64;
                    self.pos += n;
                }
                Decode::Chunked(d) => match d.step(avail) {
                    Ok(step) => self.pos += step.consumed,
                    Err(_) => {
                        self.state.error.set(Some(BodyError::Malformed));
                        break;
                    }
                },
            }
        }
        self.update_state();
        self.is_done()
    }
}
