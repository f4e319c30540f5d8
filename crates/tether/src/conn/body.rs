//! The request body reader: decodes `Content-Length` or chunked framing in place from the
//! read buffer after the head, and refills it from the transport as the handler reads.

use std::io;
use std::time::Duration;

use crate::config::Config;
use crate::conn::buffers::compact;
use crate::conn::exchange::{BodyError, Exchange};
use crate::conn::timed_io::{deadline, read_some, write_all, Read, Timer};
use crate::proto::encode::CONTINUE;
use crate::proto::framing::{ChunkError, ChunkedDecoder};
use crate::proto::parse::BodyFraming;

/// Takes up to `avail` bytes of a `Content-Length` body with `remaining` bytes to come;
/// returns how many.
#[inline]
fn take(remaining: &mut u64, avail: usize) -> usize {
    let n = avail.min(usize::try_from(*remaining).unwrap_or(usize::MAX));
    *remaining -= n as u64;
    n
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
    /// The exchange: its transport and the body state the response side reads.
    cx: &'a Exchange<'a>,
    /// The read buffer after the head: `[pos, filled)` is unread input.
    buf: &'a mut [u8],
    pub(crate) pos: usize,
    pub(crate) filled: usize,
    decode: Decode,
    received: u64,
    max: u64,
    timeout: Duration,
    write_timeout: Duration,
    timer: &'a mut Timer,
    /// The trailer section of a chunked body, as it arrives (boxed: most bodies have none,
    /// and every connection's future carries this field, one word rather than three).
    #[allow(clippy::box_collection)]
    trailers: Option<Box<Vec<u8>>>,
}

impl<'a> Body<'a> {
    pub(crate) fn new(
        cx: &'a Exchange<'a>,
        buf: &'a mut [u8],
        filled: usize,
        framing: BodyFraming,
        expect_continue: bool,
        cfg: &Config,
        timer: &'a mut Timer,
    ) -> Self {
        let decode = match framing {
            BodyFraming::Empty => Decode::Length(0),
            BodyFraming::Length(n) => Decode::Length(n),
            BodyFraming::Chunked => Decode::Chunked(ChunkedDecoder::new(cfg.max_head_size)),
        };
        let state = &cx.body;
        let body = Body {
            cx,
            buf,
            pos: 0,
            filled,
            decode,
            received: 0,
            max: cfg.max_body_size,
            timeout: cfg.body_timeout,
            write_timeout: cfg.write_timeout,
            timer,
            trailers: None,
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
        self.cx.body.done.set(done);
        self.cx.body.remaining.set(remaining);
    }

    /// True once the whole body has been read.
    pub fn is_done(&self) -> bool {
        match &self.decode {
            Decode::Length(n) => *n == 0,
            Decode::Chunked(d) => d.is_done(),
        }
    }

    /// The trailer section of a chunked body once it has been read whole: its field lines,
    /// each ending in CRLF (parse them with `httparse::parse_headers`, after adding the final
    /// CRLF). `None` when the body had no trailers or is not read to its end.
    pub fn trailers(&self) -> Option<&[u8]> {
        self.trailers
            .as_deref()
            .map(Vec::as_slice)
            .filter(|_| self.is_done())
    }

    /// The declared length (`Content-Length`), if any.
    pub fn remaining_hint(&self) -> Option<u64> {
        match &self.decode {
            Decode::Length(n) => Some(*n),
            Decode::Chunked(_) => None,
        }
    }

    fn fail(&self, e: BodyError) -> io::Error {
        self.cx.body.error.set(Some(e));
        e.io()
    }

    /// The next piece of the body, borrowed from the read buffer, or `None` at the end.
    pub async fn chunk(&mut self) -> io::Result<Option<&[u8]>> {
        if let Some(e) = self.cx.body.error.get() {
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
                        let n = take(remaining, avail.len());
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
                        if let Some(t) = step.trailer {
                            self.trailers
                                .get_or_insert_with(Default::default)
                                .extend_from_slice(&self.buf[start + t.start..start + t.end]);
                        }
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
        if self.pos == self.filled || self.filled == self.buf.len() {
            compact(self.buf, &mut self.pos, &mut self.filled);
        }
        if self.filled == self.buf.len() {
            // Cannot happen: the decoder consumes all framing it is shown, and the window
            // after the head is never empty. Refuse rather than read into nothing.
            return Err(self.fail(BodyError::Malformed));
        }
        if self.cx.body.awaiting_continue.get() {
            self.cx.body.awaiting_continue.set(false);
            write_all(self.cx.io, &mut [CONTINUE], self.write_timeout).await?;
        }
        match read_some(
            self.cx.io,
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
                self.cx.body.error.set(Some(BodyError::Closed));
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
        if self.cx.body.awaiting_continue.get() {
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
        while !self.is_done() && self.pos < self.filled && self.cx.body.error.get().is_none() {
            let avail = &self.buf[self.pos..self.filled];
            match &mut self.decode {
                Decode::Length(remaining) => self.pos += take(remaining, avail.len()),
                Decode::Chunked(d) => match d.step(avail) {
                    Ok(step) => self.pos += step.consumed,
                    Err(_) => {
                        self.cx.body.error.set(Some(BodyError::Malformed));
                        break;
                    }
                },
            }
        }
        self.update_state();
        self.is_done()
    }
}
