//! Response encoding: the status line, the engine's own header lines, complete error
//! responses (including the refusals of a full server) and chunk-size lines.
//!
//! Everything appends to a `Vec<u8>`; the connection decides what to write and when.

use crate::proto::date::write_date_line;
use crate::proto::status::Status;

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The last chunk of a chunked body, without trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// `Content-Length: n`.
    Known(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Delimited by the close of the connection (HTTP/1.0 streaming).
    UntilClose,
}

/// What the head of a persistent response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// `Connection: keep-alive` (an HTTP/1.0 client asked for it).
    pub http10_keep_alive: bool,
    /// Send `Keep-Alive: timeout=, max=` on a persistent response.
    pub keep_alive_header: bool,
    /// The idle timeout to advertise, in whole seconds.
    pub timeout: Option<u32>,
    /// Requests the connection may still serve.
    pub max: Option<u64>,
}

/// Appends a response head: status line, `Date`, the handler's header lines (`fields`,
/// already encoded), framing, `Connection: close` when `close`, else what `persistence`
/// says, and the blank line.
#[inline(always)]
pub fn head(
    out: &mut Vec<u8>,
    status: Status,
    fields: &[u8],
    length: BodyLength,
    close: bool,
    persistence: &Persistence,
) {
    status_line(out, status);
    write_date_line(out);
    out.extend_from_slice(fields);
    if status.allows_body() {
        match length {
            BodyLength::Known(n) => {
                out.extend_from_slice(b"Content-Length: ");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            BodyLength::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            BodyLength::UntilClose => {}
        }
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else {
        if persistence.http10_keep_alive {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        if persistence.keep_alive_header {
            keep_alive_line(out, persistence.timeout, persistence.max);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `Keep-Alive: timeout=N, max=M`, with whichever parameters apply.
#[inline(always)]
pub fn keep_alive_line(out: &mut Vec<u8>, timeout: Option<u32>, max: Option<u64>) {
    let params = [(&b"timeout="[..], timeout.map(u64::from)), (b"max=", max)];
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

/// Appends the status line (`HTTP/1.1 200 OK`).
#[inline(always)]
pub fn status_line(out: &mut Vec<u8>, status: Status) {
    match status.line() {
        Some(line) => out.extend_from_slice(line),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(itoa::Buffer::new().format(status.0).as_bytes());
            out.extend_from_slice(b" \r\n");
        }
    }
}

/// Appends a complete error response that closes the connection: the reason phrase as a
/// plain-text body (none for a `HEAD` request).
pub fn error_response(out: &mut Vec<u8>, status: Status, is_head: bool) {
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

/// The whole response to a connection refused at a limit (`429` per address, `503` for the
/// server), with `Retry-After: 1`: made without the clock, so refusing costs nothing.
pub fn refusal(status: Status) -> &'static [u8] {
    if status == Status::TOO_MANY_REQUESTS {
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    } else {
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    }
}

/// Writes `len` as a chunk-size line (`1f\r\n`) into `buf`; returns its length.
pub fn chunk_size_line(len: usize, buf: &mut [u8; 18]) -> usize {
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
        let n = chunk_size_line(0x1f, &mut buf);
        assert_eq!(&buf[..n], b"1f\r\n");
        let n = chunk_size_line(0, &mut buf);
        assert_eq!(&buf[..n], b"0\r\n");
        let n = chunk_size_line(4096, &mut buf);
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
    fn refusals_are_complete_responses() {
        for status in [Status::TOO_MANY_REQUESTS, Status::SERVICE_UNAVAILABLE] {
            let r = std::str::from_utf8(refusal(status)).unwrap();
            assert!(r.starts_with(&format!("HTTP/1.1 {} ", status.0)), "{r}");
            assert!(r.ends_with("Connection: close\r\n\r\n"), "{r}");
        }
    }

    #[test]
    fn heads_say_how_the_connection_goes_on() {
        let mut out = Vec::new();
        let keep = Persistence {
            http10_keep_alive: true,
            keep_alive_header: true,
            timeout: Some(75),
            max: Some(9),
        };
        head(
            &mut out,
            Status::OK,
            b"X: 1\r\n",
            BodyLength::Known(5),
            false,
            &keep,
        );
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{s}");
        assert!(s.ends_with(
            "X: 1\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=75, max=9\r\n\r\n"
        ));
        let mut out = Vec::new();
        head(
            &mut out,
            Status::NO_CONTENT,
            b"",
            BodyLength::Chunked,
            true,
            &keep,
        );
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with("GMT\r\nConnection: close\r\n\r\n"), "{s}");
    }
}
