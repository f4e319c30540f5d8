//! Request head parsing (httparse) and the RFC 9112 checks that decide framing.
//!
//! The parsed head is kept as offsets into the connection's read buffer, in a [`Head`] that
//! the connection reuses, so parsing allocates nothing once the header table has grown.

use std::mem::MaybeUninit;
use std::ops::Range;

use crate::proto::status::Status;

/// Hard cap on `max_headers`: the parser keeps its header slots on the stack.
pub const MAX_HEADERS_CAP: usize = 512;

/// HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

/// How the request body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parse failure, with the status the server answers before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Status code sent to the client.
    pub status: Status,
    /// Short reason, for logs.
    pub why: &'static str,
}

const fn reject(status: Status, why: &'static str) -> Reject {
    Reject { status, why }
}

/// Offsets of one header field within the head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub name: (u32, u32),
    pub value: (u32, u32),
}

/// A parsed request head: offsets into the bytes it was parsed from, and the facts the
/// connection needs.
#[derive(Debug)]
pub struct Head {
    pub(crate) method: (u32, u32),
    pub(crate) target: (u32, u32),
    /// Where the path starts (after `scheme://authority` in absolute form).
    pub(crate) path_start: u32,
    /// Where the path ends (`?` or the end of the target).
    pub(crate) path_end: u32,
    pub(crate) fields: Vec<Field>,
    /// Request version.
    pub version: Version,
    /// Body framing.
    pub framing: BodyFraming,
    /// `Connection: close` was among the tokens.
    pub conn_close: bool,
    /// `Connection: keep-alive` was among the tokens.
    pub conn_keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The method is `HEAD`.
    pub is_head: bool,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            method: (0, 0),
            target: (0, 0),
            path_start: 0,
            path_end: 0,
            fields: Vec::new(),
            version: Version::Http11,
            framing: BodyFraming::Empty,
            conn_close: false,
            conn_keep_alive: false,
            expect_continue: false,
            is_head: false,
        }
    }
}

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest head in bytes.
    pub max_head_size: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Longest request target.
    pub max_uri_len: usize,
    /// Largest body.
    pub max_body_size: u64,
}

fn range(base: &[u8], part: &[u8]) -> (u32, u32) {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

pub(crate) fn slice(buf: &[u8], r: (u32, u32)) -> &[u8] {
    &buf[r.0 as usize..r.1 as usize]
}

/// Parses a request head from `buf`. Returns `Ok(Some(len))` with the head's length when it is
/// complete, `Ok(None)` when more bytes are needed, or the status to reject it with.
///
/// ```
/// use tether::parse::{parse_head, BodyFraming, Head, Limits};
/// let limits = Limits { max_head_size: 8192, max_headers: 32, max_uri_len: 2048, max_body_size: 1 << 20 };
/// let mut head = Head::default();
/// let buf = b"POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
/// let len = parse_head(buf, &limits, &mut head).unwrap().unwrap();
/// assert_eq!(&buf[len..], b"hello");
/// assert_eq!(head.framing, BodyFraming::Length(5));
/// ```
pub fn parse_head(buf: &[u8], limits: &Limits, head: &mut Head) -> Result<Option<usize>, Reject> {
    // Leading empty lines before a request line are ignored (RFC 9112 section 2.2).
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut slots[..max_headers]);
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return match too_long(buf, limits) {
                Some(r) => Err(r),
                None => Ok(None),
            };
        }
        Err(e) => return Err(map_error(e, buf, limits)),
    };
    if len > limits.max_head_size {
        return Err(too_long(buf, limits)
            .unwrap_or(reject(Status::HEADER_FIELDS_TOO_LARGE, "head too large")));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(reject(Status::BAD_REQUEST, "incomplete request line"));
    };
    if target.len() > limits.max_uri_len {
        return Err(reject(Status::URI_TOO_LONG, "request target too long"));
    }
    if target.is_empty() {
        return Err(reject(Status::BAD_REQUEST, "empty request target"));
    }
    head.method = range(buf, method.as_bytes());
    head.target = range(buf, target.as_bytes());
    let t = target.as_bytes();
    head.path_end = head.target.0 + t.iter().position(|&b| b == b'?').unwrap_or(t.len()) as u32;
    // Origin form (`/path`), the usual case, needs no search for a scheme.
    head.path_start = head.target.0
        + if t[0] == b'/' {
            0
        } else {
            absolute_form_path(t) as u32
        };
    head.version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    head.is_head = method == "HEAD";
    head.conn_close = false;
    head.conn_keep_alive = false;
    head.expect_continue = false;
    head.fields.clear();

    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_chunked_last = false;
    let mut te_chunked_count = 0u32;
    let mut te_other = false;
    let mut hosts = 0u32;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        head.fields.push(Field {
            name: range(buf, name),
            value: range(buf, h.value),
        });
        let value = h.value;
        if name.eq_ignore_ascii_case(b"content-length") {
            // A list of identical values is one value; differing or invalid values are fatal.
            for item in value.split(|&b| b == b',') {
                let n = parse_content_length(trim(item))
                    .ok_or(reject(Status::BAD_REQUEST, "invalid Content-Length"))?;
                match content_length {
                    Some(prev) if prev != n => {
                        return Err(reject(Status::BAD_REQUEST, "conflicting Content-Length"))
                    }
                    _ => content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            for coding in tokens(value) {
                if coding.is_empty() {
                    continue;
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    te_chunked_count += 1;
                    te_chunked_last = true;
                } else {
                    te_other = true;
                    te_chunked_last = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    head.conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if trim(value).eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = true;
            } else {
                return Err(reject(
                    Status::EXPECTATION_FAILED,
                    "unsupported expectation",
                ));
            }
        }
    }

    if head.version == Version::Http11 && hosts == 0 {
        return Err(reject(Status::BAD_REQUEST, "HTTP/1.1 request without Host"));
    }
    if hosts > 1 {
        return Err(reject(Status::BAD_REQUEST, "more than one Host"));
    }
    head.framing = if te_seen {
        if head.version == Version::Http10 {
            return Err(reject(Status::BAD_REQUEST, "Transfer-Encoding in HTTP/1.0"));
        }
        if content_length.is_some() {
            return Err(reject(
                Status::BAD_REQUEST,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if te_chunked_count == 0 && te_other {
            return Err(reject(
                Status::NOT_IMPLEMENTED,
                "unsupported transfer coding",
            ));
        }
        if te_chunked_count != 1 || !te_chunked_last {
            return Err(reject(
                Status::BAD_REQUEST,
                "chunked is not the last transfer coding",
            ));
        }
        if te_other {
            return Err(reject(
                Status::NOT_IMPLEMENTED,
                "unsupported transfer coding",
            ));
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(n) if n > limits.max_body_size => {
                return Err(reject(
                    Status::PAYLOAD_TOO_LARGE,
                    "Content-Length above the limit",
                ))
            }
            Some(0) | None => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        }
    };
    if head.framing == BodyFraming::Empty {
        head.expect_continue = false;
    }
    Ok(Some(len))
}

/// The status for an incomplete head that is already too long: 414 while the request line
/// itself has not ended, 431 otherwise.
fn too_long(buf: &[u8], limits: &Limits) -> Option<Reject> {
    let line_end = buf.iter().position(|&b| b == b'\n');
    match line_end {
        None if buf.len() > limits.max_uri_len + 64 || buf.len() >= limits.max_head_size => {
            Some(reject(Status::URI_TOO_LONG, "request line too long"))
        }
        _ if buf.len() >= limits.max_head_size => {
            Some(reject(Status::HEADER_FIELDS_TOO_LARGE, "head too large"))
        }
        _ => None,
    }
}

fn map_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> Reject {
    match e {
        httparse::Error::TooManyHeaders => {
            reject(Status::HEADER_FIELDS_TOO_LARGE, "too many headers")
        }
        httparse::Error::Version => {
            // "HTTP/2.0" or "HTTP/1.2" are versions we do not speak; anything else is garbage.
            if looks_like_http_version(buf) {
                reject(Status::VERSION_NOT_SUPPORTED, "unsupported HTTP version")
            } else {
                reject(Status::BAD_REQUEST, "malformed request line")
            }
        }
        _ => too_long(buf, limits).unwrap_or(reject(Status::BAD_REQUEST, "malformed request head")),
    }
}

/// True when the request line ends in `HTTP/<digit>.<digit>`.
fn looks_like_http_version(buf: &[u8]) -> bool {
    let line = match buf.iter().position(|&b| b == b'\n') {
        Some(end) => &buf[..end],
        None => buf,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.iter().rposition(|&b| b == b' ') {
        Some(sp) => {
            let v = &line[sp + 1..];
            v.len() == 8
                && v.starts_with(b"HTTP/")
                && v[5].is_ascii_digit()
                && v[6] == b'.'
                && v[7].is_ascii_digit()
        }
        None => false,
    }
}

/// Offset of the path in an absolute-form target (`http://host/path`, RFC 9112 section
/// 3.2.2); 0 for every other form.
fn absolute_form_path(target: &[u8]) -> usize {
    let scheme_end = match target.iter().position(|&b| b == b':') {
        Some(i)
            if target[i..].starts_with(b"://")
                && target[..i].iter().all(u8::is_ascii_alphabetic) =>
        {
            i + 3
        }
        _ => return 0,
    };
    let rest = &target[scheme_end..];
    scheme_end
        + rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len())
}

/// Content-Length is 1*DIGIT: no sign, no spaces inside, no overflow.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Comma-separated tokens, trimmed (RFC 9110 section 5.6.1).
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim)
}

impl Head {
    pub(crate) fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        slice(buf, self.method)
    }
    pub(crate) fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        slice(buf, self.target)
    }
    pub(crate) fn path<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        slice(buf, (self.path_start.min(self.path_end), self.path_end))
    }
    pub(crate) fn query<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        (self.path_end < self.target.1).then(|| slice(buf, (self.path_end + 1, self.target.1)))
    }
    pub(crate) fn field<'b>(&self, buf: &'b [u8], i: usize) -> (&'b [u8], &'b [u8]) {
        let f = self.fields[i];
        (slice(buf, f.name), slice(buf, f.value))
    }
    /// Byte range of the request target, for callers that keep offsets.
    pub fn target_range(&self) -> Range<usize> {
        self.target.0 as usize..self.target.1 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_size: 1024,
        max_headers: 8,
        max_uri_len: 256,
        max_body_size: 1000,
    };

    fn parse(buf: &[u8]) -> Result<Option<usize>, Reject> {
        parse_head(buf, &LIMITS, &mut Head::default())
    }
    fn status(buf: &[u8]) -> u16 {
        parse(buf).unwrap_err().status.0
    }

    #[test]
    fn complete_and_partial() {
        let buf = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nConnection: TE, Close\r\n\r\n";
        let mut head = Head::default();
        assert_eq!(
            parse_head(buf, &LIMITS, &mut head).unwrap(),
            Some(buf.len())
        );
        assert_eq!(head.path(buf), b"/a");
        assert_eq!(head.query(buf), Some(&b"b=c"[..]));
        assert!(head.conn_close);
        assert_eq!(parse(&buf[..20]).unwrap(), None);
    }

    #[test]
    fn absolute_form_targets() {
        let buf = b"GET http://example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let mut head = Head::default();
        parse_head(buf, &LIMITS, &mut head).unwrap();
        assert_eq!(head.path(buf), b"/a/b");
        assert_eq!(head.query(buf), Some(&b"q=1"[..]));
        let buf = b"OPTIONS http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n";
        parse_head(buf, &LIMITS, &mut head).unwrap();
        assert_eq!(head.path(buf), b"");
        let buf = b"GET /x:y://z HTTP/1.1\r\nHost: a\r\n\r\n";
        parse_head(buf, &LIMITS, &mut head).unwrap();
        assert_eq!(head.path(buf), b"/x:y://z");
    }

    #[test]
    fn connection_tokens_are_not_substrings() {
        let buf = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: closed, keep-alive-ish\r\n\r\n";
        let mut head = Head::default();
        parse_head(buf, &LIMITS, &mut head).unwrap();
        assert!(!head.conn_close && !head.conn_keep_alive);
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert!(parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n").is_ok());
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"),
            413
        );
        let mut head = Head::default();
        let buf = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        parse_head(buf, &LIMITS, &mut head).unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
    }

    #[test]
    fn request_line_and_headers() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"GET /\r\n\r\n"), 400);
        assert_eq!(status(b"\x16\x03\x01\x02\x00\x01\x00garbage\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n"),
            417
        );
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").is_ok());
    }

    #[test]
    fn limits() {
        let long_uri = [
            b"GET /".as_slice(),
            &[b'a'; 300],
            b" HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .concat();
        assert_eq!(status(&long_uri), 414);
        let unfinished_line = [b"GET /".as_slice(), &[b'a'; 400]].concat();
        assert_eq!(status(&unfinished_line), 414);
        let big = [
            b"GET / HTTP/1.1\r\nHost: a\r\nX: ".as_slice(),
            &[b'a'; 1100],
        ]
        .concat();
        assert_eq!(status(&big), 431);
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..10 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 431);
    }
}
