//! The response a handler builds, and its encoding into the connection's write buffer.
//!
//! A response is buffered until the handler returns, so that the connection can still
//! replace it (with 400, 408 or 413 when the body failed) and decide `Connection` at the last
//! moment; a handler that streams sends its head at once and chunks as it goes.

use std::io;

use bytes::Bytes;

use crate::conn::exchange::Exchange;
use crate::conn::keepalive::{self, Finish, Verdict};
use crate::conn::timed_io::{self, flush, write_all};
use crate::lifecycle::CloseReason;
use crate::proto::encode::{self, BodyLength, LAST_CHUNK};
use crate::proto::parse::Version;
use crate::proto::status::Status;

enum Out {
    Buffered,
    Static(&'static [u8]),
    Bytes(Bytes),
    /// The answer to a `HEAD` request: no bytes, only the length a `GET` would get.
    Length(u64),
}

impl Out {
    /// The body's bytes; `buffered` is the response's own buffer.
    fn bytes<'b>(&'b self, buffered: &'b [u8]) -> &'b [u8] {
        match self {
            Out::Buffered => buffered,
            Out::Static(b) => b,
            Out::Bytes(b) => b,
            Out::Length(_) => &[],
        }
    }

    /// The `Content-Length` the head announces.
    fn len(&self, buffered: &[u8]) -> u64 {
        match self {
            Out::Length(n) => *n,
            out => out.bytes(buffered).len() as u64,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Building,
    Streaming {
        framing: Framing,
        close: Option<CloseReason>,
    },
}

/// How the body of a streamed response is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Transfer-Encoding: chunked` (HTTP/1.1, length unknown).
    Chunked,
    /// By the close of the connection (HTTP/1.0, length unknown).
    UntilClose,
    /// By the `Content-Length` sent in the head ([`Response::start_sized`]).
    Sized,
}

/// A response under construction.
///
/// ```no_run
/// # fn f(res: &mut tether::Response<'_>) {
/// use tether::Status;
/// res.status(Status::OK)
///     .header("Content-Type", "text/plain")
///     .body_static(b"Hello, World!");
/// # }
/// ```
pub struct Response<'a> {
    out: &'a mut Vec<u8>,
    headers: &'a mut Vec<u8>,
    buffered: &'a mut Vec<u8>,
    status: Status,
    body: Out,
    close: bool,
    phase: Phase,
    cx: &'a Exchange<'a>,
    write_timeout: std::time::Duration,
    /// Why a write of the stream failed: the body on the wire is cut, so the connection
    /// closes, whatever the handler returns.
    failed: Option<CloseReason>,
    /// Bytes of a sized body ([`Response::start_sized`]) not sent yet.
    left: u64,
    /// The `Content-Length` announced by [`Response::start_sized`].
    sized: u64,
}

/// Headers the engine writes itself; a handler's copy is dropped. The length picks the one
/// name to compare: this runs for every field of every response.
fn engine_owned(name: &[u8]) -> bool {
    let is = |n: &[u8]| n.eq_ignore_ascii_case(name);
    match name.len() {
        4 => is(b"date"),
        10 => is(b"connection") || is(b"keep-alive"),
        14 => is(b"content-length"),
        17 => is(b"transfer-encoding"),
        _ => false,
    }
}

/// The bytes of a token (RFC 9110 `tchar`), as one bit each of a 256-bit set.
const TCHAR: [u64; 4] = {
    let mut set = [0u64; 4];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            )
        {
            set[b / 64] |= 1 << (b % 64);
        }
        b += 1;
    }
    set
};

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| TCHAR[usize::from(b >> 6)] >> (b & 63) & 1 == 1)
}

/// True for a field that cannot split the message; a field that could is dropped, with a
/// warning.
fn well_formed(name: &[u8], value: &[u8]) -> bool {
    let ok = valid_name(name) && valid_value(value);
    if !ok {
        tracing::warn!("invalid response field dropped");
    }
    ok
}

/// True when `v` holds no CR, LF or NUL, which could split the head. Eight bytes at a time
/// (the last eight overlapping the others): nearly every response sets a content type.
#[inline]
fn valid_value(v: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Exact: some byte of `w` is zero iff this has a bit set.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let bad = |c: &[u8; 8]| {
        let w = u64::from_ne_bytes(*c);
        zero(w) | zero(w ^ (ONES * u64::from(b'\r'))) | zero(w ^ (ONES * u64::from(b'\n'))) != 0
    };
    let Some(last) = v.last_chunk::<8>() else {
        return v.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0);
    };
    !bad(last) && !v.chunks_exact(8).any(|c| c.try_into().is_ok_and(&bad))
}

impl<'a> Response<'a> {
    pub(crate) fn new(
        out: &'a mut Vec<u8>,
        scratch: (&'a mut Vec<u8>, &'a mut Vec<u8>),
        cx: &'a Exchange<'a>,
        write_timeout: std::time::Duration,
    ) -> Self {
        scratch.0.clear();
        scratch.1.clear();
        Response {
            out,
            headers: scratch.0,
            buffered: scratch.1,
            status: Status::OK,
            body: Out::Buffered,
            close: false,
            phase: Phase::Building,
            cx,
            write_timeout,
            failed: None,
            left: 0,
            sized: 0,
        }
    }

    /// Sets the status (default 200).
    pub fn status(&mut self, status: Status) -> &mut Self {
        self.status = status;
        self
    }

    /// The status set so far (200 until [`Response::status`] is called). The connection
    /// may still replace a buffered response (400, 408 or 413 when the request body failed).
    #[inline]
    pub fn status_code(&self) -> Status {
        self.status
    }

    /// The length of the body as set so far, when it is known before sending: the buffered,
    /// static or shared body, the length given to [`Response::head_length`] or to
    /// [`Response::start_sized`] (also for `HEAD`, 204 and 304, which send no body bytes).
    /// `None` for a chunked or close-delimited stream.
    #[inline]
    pub fn body_len(&self) -> Option<u64> {
        match self.phase {
            Phase::Building => Some(self.body.len(self.buffered)),
            Phase::Streaming {
                framing: Framing::Sized,
                ..
            } => Some(self.sized),
            Phase::Streaming { .. } => None,
        }
    }

    /// Adds a header field. `Content-Length`, `Transfer-Encoding`, `Date`, `Keep-Alive` and
    /// `Connection` belong to the engine and are ignored (`Connection: close` is honoured).
    /// A name or value that could split the head (CR, LF) is dropped.
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let (name, value) = (name.as_bytes(), value.as_ref());
        if !valid_name(name) {
            tracing::warn!("invalid response field dropped");
            return self;
        }
        self.token_field(name, value)
    }

    /// [`Response::header`] for a name already known to be a token (an `http::HeaderName`
    /// is one by construction): only the value is checked.
    pub(crate) fn token_field(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        if !valid_value(value) {
            tracing::warn!("invalid response field dropped");
            return self;
        }
        if engine_owned(name) {
            if name.eq_ignore_ascii_case(b"connection")
                && crate::proto::parse::tokens(value).any(|t| t.eq_ignore_ascii_case(b"close"))
            {
                self.close = true;
            }
            return self;
        }
        self.push_field(name, value)
    }

    // Always inlined: with a constant name (`content_type`) the copies become moves.
    #[inline(always)]
    fn push_field(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        // One reservation for the line: this runs for almost every response.
        let h = &mut *self.headers;
        h.reserve(name.len() + value.len() + 4);
        h.extend_from_slice(name);
        h.extend_from_slice(b": ");
        h.extend_from_slice(value);
        h.extend_from_slice(b"\r\n");
        self
    }

    /// Shorthand for the `Content-Type` header.
    pub fn content_type(&mut self, value: &str) -> &mut Self {
        // The name is known good and not the engine's: only the value needs checking.
        if !valid_value(value.as_bytes()) {
            tracing::warn!("invalid Content-Type dropped");
            return self;
        }
        self.push_field(b"Content-Type", value.as_bytes())
    }

    /// Sets a static body: nothing is copied until the response is written.
    pub fn body_static(&mut self, body: &'static [u8]) -> &mut Self {
        self.body = Out::Static(body);
        self
    }

    /// Sets a shared body.
    pub fn body_bytes(&mut self, body: Bytes) -> &mut Self {
        self.body = Out::Bytes(body);
        self
    }

    /// For a `HEAD` request, announces the `Content-Length` of the body a `GET` would get,
    /// without the body (replacing a body set before). Ignored for other methods, whose
    /// length always comes from the body sent.
    pub fn head_length(&mut self, len: u64) -> &mut Self {
        if self.cx.is_head {
            self.body = Out::Length(len);
        }
        self
    }

    /// Appends to the buffered body (replacing a static or shared body set before).
    pub fn write(&mut self, data: &[u8]) -> &mut Self {
        self.body_buf().extend_from_slice(data);
        self
    }

    /// The buffered body, for writers such as `std::io::Write` users.
    pub fn body_buf(&mut self) -> &mut Vec<u8> {
        if !matches!(self.body, Out::Buffered) {
            self.body = Out::Buffered;
            self.buffered.clear();
        }
        self.buffered
    }

    /// Closes the connection after this response (`Connection: close`).
    pub fn close(&mut self) -> &mut Self {
        self.close = true;
        self
    }

    /// True once the body streams ([`Response::start_stream`], [`Response::start_sized`] or
    /// [`Response::send_file`]): the head is fixed.
    pub fn is_streaming(&self) -> bool {
        matches!(self.phase, Phase::Streaming { .. })
    }

    /// True when this response carries body bytes (not the answer to `HEAD`, not a 1xx,
    /// 204 or 304).
    fn sends_body(&self) -> bool {
        !self.cx.is_head && self.status.allows_body()
    }

    /// Sends the head now and streams the body: chunked on HTTP/1.1, delimited by the close
    /// of the connection on HTTP/1.0. Headers set after this are ignored.
    pub async fn start_stream(&mut self) -> io::Result<()> {
        if self.is_streaming() {
            return Ok(());
        }
        let chunked = self.cx.version == Version::Http11;
        let close = keepalive::at_head(
            &self.cx.plan,
            &self.cx.body,
            self.cx.draining.get(),
            self.close,
            !chunked,
        );
        self.encode_streamed_head(
            if chunked {
                BodyLength::Chunked
            } else {
                BodyLength::UntilClose
            },
            close,
        );
        let framing = if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
        self.phase = Phase::Streaming { framing, close };
        // The header lines are out; the buffer now collects trailer lines, if any.
        self.headers.clear();
        let result = flush(self.cx.io, self.out, self.write_timeout).await;
        self.check(result)
    }

    /// Adds a trailer field, sent after the last chunk of a chunked stream (HTTP/1.1, once
    /// [`Response::start_stream`] has run). Ignored otherwise, and for the fields the engine
    /// owns or that could split the message (as [`Response::header`] drops them). Send
    /// trailers only to a client that asked for them (`TE: trailers`).
    pub fn trailer(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let (name, value) = (name.as_bytes(), value.as_ref());
        let chunked = matches!(
            self.phase,
            Phase::Streaming {
                framing: Framing::Chunked,
                ..
            }
        );
        if chunked && well_formed(name, value) && !engine_owned(name) {
            self.push_field(name, value);
        }
        self
    }

    /// Fixes the head with `Content-Length: len`; the handler then sends the body with
    /// [`Response::send_chunk`] and [`Response::send_file`], `len` bytes in all. The head
    /// leaves with the first of them, in the same write. A piece that would go beyond `len`
    /// is refused; a body left short when the handler returns closes the connection, so
    /// that the client sees it incomplete rather than waiting. For `HEAD` (and statuses
    /// without a body) only the head goes out. Ignored once the body streams.
    pub fn start_sized(&mut self, len: u64) -> &mut Self {
        if self.is_streaming() {
            return self;
        }
        let cx = self.cx;
        let close = keepalive::at_head(&cx.plan, &cx.body, cx.draining.get(), self.close, false);
        self.encode_streamed_head(BodyLength::Known(len), close);
        self.phase = Phase::Streaming {
            framing: Framing::Sized,
            close,
        };
        self.left = if self.sends_body() { len } else { 0 };
        self.sized = len;
        self.headers.clear();
        self
    }

    /// Sends one piece of a streamed body (starting a chunked or close-delimited stream if
    /// none started).
    ///
    /// # Errors
    /// A failed write (the connection then closes), or a piece beyond the length given to
    /// [`Response::start_sized`] (`InvalidInput`, nothing sent).
    pub async fn send_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.start_stream().await?;
        if data.is_empty() || !self.sends_body() {
            return Ok(());
        }
        let Phase::Streaming { framing, .. } = self.phase else {
            return Ok(());
        };
        let (io, timeout) = (self.cx.io, self.write_timeout);
        // `out` holds the head of a sized body not sent yet (else it is empty).
        let out = &*self.out;
        let result = match framing {
            Framing::Chunked => {
                let mut size = [0u8; 18];
                let n = encode::chunk_size_line(data.len(), &mut size);
                write_all(io, &mut [&size[..n], data, b"\r\n"], timeout).await
            }
            Framing::UntilClose => write_all(io, &mut [data], timeout).await,
            Framing::Sized => {
                self.left = self
                    .left
                    .checked_sub(data.len() as u64)
                    .ok_or_else(too_long)?;
                write_all(io, &mut [out, data], timeout).await
            }
        };
        self.out.clear();
        self.check(result)
    }

    /// Sends `len` bytes of `file` from `offset` as the body, or as the next piece of it
    /// when the body already streams (a part of a multipart answer, say). Without a body
    /// started it starts a sized one of `len` bytes ([`Response::start_sized`]).
    ///
    /// On plain TCP the bytes go with `sendfile(2)`, never through user space, at most a
    /// few MiB per call so that one fast reader does not hold the worker; the head leaves
    /// in the same segment as the first bytes (the socket is corked meanwhile, as nginx's
    /// `tcp_nopush`). Other transports copy through a buffer. Each wait for the client to
    /// read is bounded by the write timeout, counted from the last progress. Reading the
    /// file blocks the worker while the kernel fetches pages that are not cached.
    ///
    /// # Errors
    /// A failed write or read (the connection then closes; a file shorter than
    /// `offset + len` is `UnexpectedEof`), or more bytes than the length given to
    /// [`Response::start_sized`] (`InvalidInput`, nothing sent).
    pub async fn send_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        if !self.is_streaming() {
            self.start_sized(len);
        }
        if len == 0 || !self.sends_body() {
            return Ok(());
        }
        let Phase::Streaming { framing, .. } = self.phase else {
            return Ok(());
        };
        match framing {
            Framing::Sized => self.left = self.left.checked_sub(len).ok_or_else(too_long)?,
            Framing::Chunked => {
                let mut size = [0u8; 18];
                let n =
                    encode::chunk_size_line(usize::try_from(len).unwrap_or(usize::MAX), &mut size);
                self.out.extend_from_slice(&size[..n]);
            }
            Framing::UntilClose => {}
        }
        let (io, timeout) = (self.cx.io, self.write_timeout);
        let corked = !self.out.is_empty() && io.set_cork(true);
        let mut result = flush(io, self.out, timeout).await;
        if result.is_ok() {
            result = timed_io::send_file(io, file, offset, len, timeout).await;
        }
        if result.is_ok() && framing == Framing::Chunked {
            result = write_all(io, &mut [b"\r\n"], timeout).await;
        }
        if corked {
            io.set_cork(false);
        }
        self.check(result)
    }

    /// Remembers the first failed write of the stream.
    fn check(&mut self, result: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &result {
            self.failed.get_or_insert(keepalive::io_reason(e));
        }
        result
    }

    /// Completes the exchange after the handler returned: encodes a buffered response (or
    /// the error response that replaces it) into the write buffer, or ends a stream. The
    /// keep-alive policy decides what happens; this only carries it out.
    pub(crate) fn finish(&mut self, result: io::Result<()>) -> Finish {
        let (cx, handler_ok) = (self.cx, result.is_ok());
        let sends_body = !cx.is_head && self.status.allows_body();
        if let Phase::Streaming { framing, close } = self.phase {
            let short = self.left > 0;
            let finish = keepalive::when_streamed(self.failed, handler_ok, short, &cx.body, close);
            if framing == Framing::Chunked
                && sends_body
                && self.failed.is_none()
                && handler_ok
                && cx.body.error.get().is_none()
            {
                if self.headers.is_empty() {
                    self.out.extend_from_slice(LAST_CHUNK);
                } else {
                    self.out.extend_from_slice(b"0\r\n");
                    self.out.extend_from_slice(self.headers);
                    self.out.extend_from_slice(b"\r\n");
                }
            }
            return finish;
        }
        match keepalive::when_buffered(&cx.body, handler_ok) {
            Verdict::Send => {}
            Verdict::Replace(status, reason) => {
                encode::error_response(self.out, status, cx.is_head);
                return Finish::Close(reason);
            }
            Verdict::Drop(reason) => return Finish::Close(reason),
        }
        let close = keepalive::at_head(&cx.plan, &cx.body, cx.draining.get(), self.close, false);
        let len = self.body.len(self.buffered);
        self.encode_head(BodyLength::Known(len), close);
        if sends_body {
            self.out.extend_from_slice(self.body.bytes(self.buffered));
        }
        close.into()
    }

    /// The head of a streamed body: out of line, so that the head of the common, buffered
    /// response stays inlined in `finish`.
    #[inline(never)]
    fn encode_streamed_head(&mut self, length: BodyLength, close: Option<CloseReason>) {
        self.encode_head(length, close);
    }

    #[inline(always)]
    fn encode_head(&mut self, length: BodyLength, close: Option<CloseReason>) {
        let plan = &self.cx.plan;
        encode::head(
            self.out,
            self.status,
            self.headers,
            length,
            close.is_some(),
            &plan.persist,
        );
    }
}

/// A piece beyond the announced `Content-Length`.
fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "body longer than its Content-Length",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_checked() {
        assert!(valid_name(b"X-Custom"));
        assert!(!valid_name(b"X Custom"));
        assert!(!valid_value(b"a\r\nInjected: 1"));
        for bad in [b'\r', b'\n', 0] {
            for len in 1..20 {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    assert!(valid_value(&v));
                    v[at] = bad;
                    assert!(!valid_value(&v), "{bad} at {at} of {len}");
                }
            }
        }
        assert!(valid_value("text/plain; charset=utf-8 \u{e9}\t".as_bytes()));
        assert!(engine_owned(b"Content-Length"));
    }

    #[test]
    fn token_bytes_are_rfc_9110_tchar() {
        let tchar = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || tchar.contains(&b);
            assert_eq!(valid_name(&[b]), want, "byte {b:#04x}");
        }
        assert!(!valid_name(b""));
    }

    #[test]
    fn engine_fields_are_found_in_any_case() {
        for name in [
            "date",
            "Connection",
            "KEEP-ALIVE",
            "content-length",
            "Transfer-Encoding",
        ] {
            assert!(engine_owned(name.as_bytes()), "{name}");
        }
        for name in ["dates", "content-type", "connectio", "x-content-length", ""] {
            assert!(!engine_owned(name.as_bytes()), "{name}");
        }
    }

    /// A transport that takes every write and never has input.
    struct Sink;

    impl crate::conn::transport::Transport for Sink {
        fn try_read(&self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
        fn poll_read_ready(
            &self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Pending
        }
        fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn poll_write_ready(
            &self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Builds a response to a request of `version` (`HEAD` when `head`) and runs `f` on it.
    fn with_response(version: Version, head: bool, f: impl FnOnce(&mut Response<'_>)) {
        let draining = std::cell::Cell::new(false);
        let cx = Exchange {
            io: &Sink,
            draining: &draining,
            plan: crate::conn::exchange::Plan {
                close: None,
                persist: encode::Persistence {
                    http10_keep_alive: false,
                    keep_alive_header: false,
                    timeout: None,
                    max: None,
                },
                drain_bytes: 0,
            },
            is_head: head,
            version,
            body: Default::default(),
        };
        let (mut out, mut headers, mut buffered) = (Vec::new(), Vec::new(), Vec::new());
        let mut res = Response::new(
            &mut out,
            (&mut headers, &mut buffered),
            &cx,
            std::time::Duration::from_secs(1),
        );
        f(&mut res);
    }

    #[test]
    fn status_and_body_length_read_back() {
        with_response(Version::Http11, false, |res| {
            assert_eq!(res.status_code(), Status::OK);
            assert_eq!(res.body_len(), Some(0));
            res.status(Status(404)).body_static(b"not here");
            assert_eq!(res.status_code().0, 404);
            assert_eq!(res.body_len(), Some(8));
            res.write(b"abc").write(b"de");
            assert_eq!(res.body_len(), Some(5));
            res.body_bytes(Bytes::from_static(b"xyz"));
            assert_eq!(res.body_len(), Some(3));
            // Not a HEAD request: ignored.
            res.head_length(100);
            assert_eq!(res.body_len(), Some(3));
            res.start_sized(1234);
            assert_eq!(res.body_len(), Some(1234));
        });
        with_response(Version::Http10, true, |res| {
            res.head_length(77);
            assert_eq!(res.body_len(), Some(77));
            res.start_sized(99);
            assert_eq!(res.body_len(), Some(99));
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for version in [Version::Http11, Version::Http10] {
            with_response(version, false, |res| {
                res.write(b"dropped");
                rt.block_on(res.start_stream()).unwrap();
                assert_eq!(res.body_len(), None);
                assert_eq!(res.status_code(), Status::OK);
            });
        }
    }
}
