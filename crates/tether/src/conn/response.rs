//! The response a handler builds, and its encoding into the connection's write buffer.
//!
//! A response is buffered until the handler returns, so that the connection can still
//! replace it (with 400, 408 or 413 when the body failed) and decide `Connection` at the last
//! moment; a handler that streams sends its head at once and chunks as it goes.

use std::io;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::conn::request::{BodyError, BodyState};
use crate::conn::timed_io::{flush, write_all};
use crate::conn::{self, CloseReason, Plan};
use crate::proto::date::write_date_line;
use crate::proto::parse::Version;
use crate::proto::status::Status;

/// Per-request facts shared by the connection, the body reader and the response.
pub(crate) struct Exchange {
    pub plan: Plan,
    pub is_head: bool,
    pub version: Version,
    pub body: BodyState,
}

enum Out {
    Buffered,
    Static(&'static [u8]),
    Bytes(Bytes),
}

impl Out {
    /// The body's bytes; `buffered` is the response's own buffer.
    fn bytes<'b>(&'b self, buffered: &'b [u8]) -> &'b [u8] {
        match self {
            Out::Buffered => buffered,
            Out::Static(b) => b,
            Out::Bytes(b) => b,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Building,
    Streaming {
        chunked: bool,
        close: Option<CloseReason>,
    },
}

/// How the connection goes on after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Persistent: read the next request.
    KeepAlive,
    /// Flush, then close for this reason.
    Close(CloseReason),
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
    io: &'a TcpStream,
    out: &'a mut Vec<u8>,
    headers: &'a mut Vec<u8>,
    buffered: &'a mut Vec<u8>,
    status: Status,
    body: Out,
    close: bool,
    phase: Phase,
    cx: &'a Exchange,
    write_timeout: std::time::Duration,
    /// Why a write of the stream failed: the body on the wire is cut, so the connection
    /// closes, whatever the handler returns.
    failed: Option<CloseReason>,
}

/// Headers the engine writes itself; a handler's copy is dropped.
fn engine_owned(name: &[u8]) -> bool {
    [
        &b"content-length"[..],
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"date",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0)
}

impl<'a> Response<'a> {
    pub(crate) fn new(
        io: &'a TcpStream,
        out: &'a mut Vec<u8>,
        scratch: (&'a mut Vec<u8>, &'a mut Vec<u8>),
        cx: &'a Exchange,
        write_timeout: std::time::Duration,
    ) -> Self {
        scratch.0.clear();
        scratch.1.clear();
        Response {
            io,
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
        }
    }

    /// Sets the status (default 200).
    pub fn status(&mut self, status: Status) -> &mut Self {
        self.status = status;
        self
    }

    /// Adds a header field. `Content-Length`, `Transfer-Encoding`, `Date`, `Keep-Alive` and
    /// `Connection` belong to the engine and are ignored (`Connection: close` is honoured).
    /// A name or value that could split the head (CR, LF) is dropped.
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let (name, value) = (name.as_bytes(), value.as_ref());
        if !valid_name(name) || !valid_value(value) {
            tracing::warn!("invalid response header dropped");
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

    #[inline]
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

    /// True once the head has been sent by [`Response::start_stream`].
    pub fn is_streaming(&self) -> bool {
        matches!(self.phase, Phase::Streaming { .. })
    }

    /// Sends the head now and streams the body: chunked on HTTP/1.1, delimited by the close
    /// of the connection on HTTP/1.0. Headers set after this are ignored.
    pub async fn start_stream(&mut self) -> io::Result<()> {
        if self.is_streaming() {
            return Ok(());
        }
        let chunked = self.cx.version == Version::Http11;
        let close = conn::decide(self.cx, self.close, !chunked);
        self.encode_head(
            if chunked {
                Framing::Chunked
            } else {
                Framing::None
            },
            close,
        );
        self.phase = Phase::Streaming { chunked, close };
        let result = flush(self.io, self.out, self.write_timeout).await;
        self.check(result)
    }

    /// Sends one piece of a streamed body (starting the stream if needed).
    pub async fn send_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.start_stream().await?;
        if data.is_empty() || self.cx.is_head || !self.status.allows_body() {
            return Ok(());
        }
        let Phase::Streaming { chunked, .. } = self.phase else {
            return Ok(());
        };
        let result = if chunked {
            let mut size = [0u8; 18];
            let n = hex_line(data.len(), &mut size);
            write_all(
                self.io,
                &mut [&size[..n], data, b"\r\n"],
                self.write_timeout,
            )
            .await
        } else {
            write_all(self.io, &mut [data], self.write_timeout).await
        };
        self.check(result)
    }

    /// Remembers the first failed write of the stream.
    fn check(&mut self, result: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &result {
            self.failed.get_or_insert(conn::io_reason(e));
        }
        result
    }

    /// Completes the exchange after the handler returned: encodes a buffered response (or
    /// the error response that replaces it) into the write buffer, or ends a stream.
    pub(crate) fn finish(&mut self, result: io::Result<()>) -> Finish {
        if let Phase::Streaming { chunked, close } = self.phase {
            if let Some(r) = self.failed {
                return Finish::Close(r);
            }
            if result.is_err() {
                // The head is out: the only honest signal left is an incomplete body.
                return Finish::Close(CloseReason::HandlerError);
            }
            if let Some(e) = self.cx.body.error.get() {
                return Finish::Close(body_reason(e));
            }
            if chunked && !self.cx.is_head && self.status.allows_body() {
                self.out.extend_from_slice(b"0\r\n\r\n");
            }
            return close.map_or(Finish::KeepAlive, Finish::Close);
        }
        if let Some(e) = self.cx.body.error.get() {
            let status = match e {
                BodyError::Malformed => Status::BAD_REQUEST,
                BodyError::Timeout => Status::REQUEST_TIMEOUT,
                BodyError::TooLarge => Status::PAYLOAD_TOO_LARGE,
                // Nobody is left to answer.
                BodyError::Closed => return Finish::Close(CloseReason::ClosedMidRequest),
            };
            error_response(self.out, status, self.cx.is_head);
            return Finish::Close(body_reason(e));
        }
        if result.is_err() {
            error_response(self.out, Status::INTERNAL_SERVER_ERROR, self.cx.is_head);
            return Finish::Close(CloseReason::HandlerError);
        }
        let close = conn::decide(self.cx, self.close, false);
        let len = self.body.bytes(self.buffered).len();
        self.encode_head(Framing::Length(len), close);
        if !self.cx.is_head && self.status.allows_body() {
            self.out.extend_from_slice(self.body.bytes(self.buffered));
        }
        close.map_or(Finish::KeepAlive, Finish::Close)
    }

    fn encode_head(&mut self, framing: Framing, close: Option<CloseReason>) {
        let out = &mut *self.out;
        status_line(out, self.status);
        write_date_line(out);
        out.extend_from_slice(self.headers);
        if self.status.allows_body() {
            match framing {
                Framing::Length(n) => {
                    out.extend_from_slice(b"Content-Length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
                Framing::None => {}
            }
        }
        let plan = &self.cx.plan;
        if close.is_some() {
            out.extend_from_slice(b"Connection: close\r\n");
        } else {
            if plan.http10_keep_alive {
                out.extend_from_slice(b"Connection: keep-alive\r\n");
            }
            if plan.keep_alive_header {
                keep_alive_line(out, plan.keep_alive_timeout, plan.remaining);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `Keep-Alive: timeout=N, max=M`, with whichever parameters apply.
fn keep_alive_line(out: &mut Vec<u8>, timeout: Option<u64>, max: Option<u64>) {
    let params = [(&b"timeout="[..], timeout), (b"max=", max)];
    let mut sep: &[u8] = b"Keep-Alive: ";
    for (name, value) in params {
        if let Some(v) = value {
            out.extend_from_slice(sep);
            out.extend_from_slice(name);
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            sep = b", ";
        }
    }
    if timeout.is_some() || max.is_some() {
        out.extend_from_slice(b"\r\n");
    }
}

enum Framing {
    Length(usize),
    Chunked,
    None,
}

fn body_reason(e: BodyError) -> CloseReason {
    match e {
        BodyError::Timeout => CloseReason::BodyTimeout,
        BodyError::Closed => CloseReason::ClosedMidRequest,
        BodyError::Malformed | BodyError::TooLarge => CloseReason::ProtocolError,
    }
}

fn status_line(out: &mut Vec<u8>, status: Status) {
    match status.line() {
        Some(line) => out.extend_from_slice(line),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(itoa::Buffer::new().format(status.0).as_bytes());
            out.extend_from_slice(b" \r\n");
        }
    }
}

/// Appends a complete error response that closes the connection.
pub(crate) fn error_response(out: &mut Vec<u8>, status: Status, is_head: bool) {
    status_line(out, status);
    write_date_line(out);
    let reason = status.reason().as_bytes();
    out.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(reason.len() + 1).as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    if !is_head {
        out.extend_from_slice(reason);
        out.extend_from_slice(b"\n");
    }
}

/// Writes `len` as a chunk-size line (`1f\r\n`) into `buf`; returns its length.
fn hex_line(len: usize, buf: &mut [u8; 18]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - len.leading_zeros()).div_ceil(4)).max(1) as usize;
    for i in 0..digits {
        buf[digits - 1 - i] = HEX[(len >> (4 * i)) & 0xf];
    }
    buf[digits] = b'\r';
    buf[digits + 1] = b'\n';
    digits + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        let mut buf = [0u8; 18];
        let n = hex_line(0x1f, &mut buf);
        assert_eq!(&buf[..n], b"1f\r\n");
        let n = hex_line(0, &mut buf);
        assert_eq!(&buf[..n], b"0\r\n");
        let n = hex_line(4096, &mut buf);
        assert_eq!(&buf[..n], b"1000\r\n");
    }

    #[test]
    fn error_responses_close() {
        let mut out = Vec::new();
        error_response(&mut out, Status::URI_TOO_LONG, false);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(s.contains("\r\nConnection: close\r\n"));
        assert!(s.ends_with("\r\n\r\nURI Too Long\n"));
    }

    #[test]
    fn keep_alive_lines() {
        let line = |t, m| {
            let mut out = Vec::new();
            keep_alive_line(&mut out, t, m);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line(Some(75), Some(9)), "Keep-Alive: timeout=75, max=9\r\n");
        assert_eq!(line(Some(75), None), "Keep-Alive: timeout=75\r\n");
        assert_eq!(line(None, Some(3)), "Keep-Alive: max=3\r\n");
        assert_eq!(line(None, None), "");
    }

    #[test]
    fn header_names_are_checked() {
        assert!(valid_name(b"X-Custom"));
        assert!(!valid_name(b"X Custom"));
        assert!(!valid_value(b"a\r\nInjected: 1"));
        assert!(engine_owned(b"Content-Length"));
    }
}
