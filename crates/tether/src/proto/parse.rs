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
        Err(e) => return map_error(e, buf, limits),
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
            if !valid_host(value) {
                return Err(reject(Status::BAD_REQUEST, "malformed Host"));
            }
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

/// The answer to an httparse error: a rejection, or `Ok(None)` for a request line that is not
/// complete yet but may still turn out well-formed.
#[cold]
fn map_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> Result<Option<usize>, Reject> {
    match e {
        httparse::Error::TooManyHeaders => {
            Err(reject(Status::HEADER_FIELDS_TOO_LARGE, "too many headers"))
        }
        // httparse accepts only `HTTP/1.0` and `HTTP/1.1`, and says `Version` as soon as the
        // version does not start like one of them: a well-formed `HTTP/x.y` that we do not
        // speak is 505, anything else in its place is 400.
        httparse::Error::Version => match version_token(buf) {
            VersionToken::WellFormed => Err(reject(
                Status::VERSION_NOT_SUPPORTED,
                "unsupported HTTP version",
            )),
            VersionToken::Malformed => Err(reject(Status::BAD_REQUEST, "malformed request line")),
            VersionToken::Incomplete => too_long(buf, limits).map_or(Ok(None), Err),
        },
        _ => {
            Err(too_long(buf, limits)
                .unwrap_or(reject(Status::BAD_REQUEST, "malformed request head")))
        }
    }
}

/// What follows the request target in a request line httparse refused for its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VersionToken {
    /// Exactly `HTTP/DIGIT.DIGIT`, then the line end (RFC 9112 section 2.3).
    WellFormed,
    /// Anything else: a space inside the target, a second space, lowercase `http`, two-digit
    /// versions, junk before the line end.
    Malformed,
    /// A prefix of a well-formed version: the line has not arrived whole.
    Incomplete,
}

/// Classifies the version of the first request line in `buf`. httparse has already checked
/// what comes before it (empty lines, a method token, one SP, a target without SP, one SP)
/// when it fails with `Error::Version`, so the version starts after the second SP.
fn version_token(buf: &[u8]) -> VersionToken {
    // Empty lines before the request line, skipped as httparse does.
    let mut at = 0;
    loop {
        match &buf[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            _ => break,
        }
    }
    let line = &buf[at..];
    let mut spaces = line
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b' ')
        .map(|(i, _)| i);
    let (Some(_), Some(sp)) = (spaces.next(), spaces.next()) else {
        return VersionToken::Malformed;
    };
    let rest = &line[sp + 1..];
    let n = rest.len().min(8);
    let shape = rest[..n].iter().zip(b"HTTP/#.#").all(|(&b, &p)| {
        if p == b'#' {
            b.is_ascii_digit()
        } else {
            b == p
        }
    });
    if !shape {
        return VersionToken::Malformed;
    }
    match &rest[n..] {
        [] | [b'\r'] => VersionToken::Incomplete,
        [b'\n', ..] | [b'\r', b'\n', ..] => VersionToken::WellFormed,
        _ => VersionToken::Malformed,
    }
}

/// Byte classes of a `Host` value (RFC 3986 section 3.2.2).
const HOST_REG: u8 = 1; // unreserved / sub-delims: a reg-name (or IPv4address) byte
const HOST_DIGIT: u8 = 2; // DIGIT, in a port
const HOST_HEX: u8 = 4; // HEXDIG, in pct-encoded
const HOST_OTHER: u8 = 8; // not HOST_REG

static HOST_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
        {
            class |= HOST_REG;
        }
        if b.is_ascii_digit() {
            class |= HOST_DIGIT;
        }
        if b.is_ascii_hexdigit() {
            class |= HOST_HEX;
        }
        if class & HOST_REG == 0 {
            class |= HOST_OTHER;
        }
        table[i] = class;
        i += 1;
    }
    table
};

/// `Host = uri-host [ ":" port ]` (RFC 9112 section 3.2, RFC 3986 section 3.2.2), where
/// `uri-host` is a reg-name (which covers IPv4address) or a bracketed IP-literal, and
/// `port = *DIGIT`. An empty value is allowed (a target without authority); an empty host
/// before a port is not (RFC 9110 section 4.2.1). httparse has trimmed the value's ends.
///
/// This runs on every request, so the usual value (a reg-name or IPv4address of a few bytes,
/// maybe a port) takes a fast path: the port is split off at the last non-digit, then the
/// classes of the host's bytes are ORed together, four at a time. Anything else (an empty
/// value, pct-encoding, an IP-literal, an invalid byte) goes through the whole grammar.
#[inline]
fn valid_host(v: &[u8]) -> bool {
    let host = match v.get(..port_start(v)) {
        Some([host @ .., b':']) => host,
        _ => v,
    };
    if !host.is_empty() && host_classes(host) & HOST_OTHER == 0 {
        return true;
    }
    valid_host_general(v)
}

/// One past the last non-digit byte of `v` (0 when there is none): where a port would start.
/// The last eight bytes are looked at together (SWAR).
#[inline(always)]
fn port_start(v: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    let Some(tail) = v.last_chunk::<8>() else {
        let digits = v.iter().rev().take_while(|b| b.is_ascii_digit()).count();
        return v.len() - digits;
    };
    // `y` has a byte below 10 exactly where the input has a digit; adding 0x76 to each byte
    // (no carry crosses a byte) sets its top bit when it is 10 or more.
    let y = u64::from_le_bytes(*tail) ^ (ONES * u64::from(b'0'));
    let non_digits = (((y & (ONES * 0x7f)) + ONES * 0x76) | y) & (ONES * 0x80);
    if non_digits == 0 {
        // Eight digits or more at the end: not a port of a usual value.
        return 0;
    }
    v.len() - (non_digits.leading_zeros() / 8) as usize
}

/// The OR of the classes of the bytes of `v`, four at a time (the last four overlapping the
/// others when the length is not a multiple of four).
#[inline(always)]
fn host_classes(v: &[u8]) -> u8 {
    let class = |b: &u8| HOST_CLASS[usize::from(*b)];
    let four = |q: &[u8; 4]| class(&q[0]) | class(&q[1]) | class(&q[2]) | class(&q[3]);
    let Some(last) = v.last_chunk::<4>() else {
        return v.iter().fold(0, |acc, b| acc | class(b));
    };
    let mut acc = four(last);
    let mut rest = v;
    while let [a, b, c, d, tail @ ..] = rest {
        acc |= class(a) | class(b) | class(c) | class(d);
        rest = tail;
    }
    acc
}

/// [`valid_host`] by the whole grammar, one byte at a time.
#[cold]
fn valid_host_general(v: &[u8]) -> bool {
    let mut i = 0;
    if let [b'[', inner @ ..] = v {
        let Some(end) = inner.iter().position(|&b| b == b']') else {
            return false;
        };
        if !ip_literal(&inner[..end]) {
            return false;
        }
        i = end + 2;
    } else {
        while let Some(&b) = v.get(i) {
            if HOST_CLASS[usize::from(b)] & HOST_REG != 0 {
                i += 1;
            } else if b == b'%'
                && v.get(i + 1..i + 3).is_some_and(|h| {
                    HOST_CLASS[usize::from(h[0])] & HOST_CLASS[usize::from(h[1])] & HOST_HEX != 0
                })
            {
                i += 3;
            } else {
                break;
            }
        }
        if i == 0 {
            return v.is_empty();
        }
    }
    match v.get(i..) {
        Some([]) => true,
        Some([b':', port @ ..]) => port
            .iter()
            .all(|&b| HOST_CLASS[usize::from(b)] & HOST_DIGIT != 0),
        _ => false,
    }
}

/// `IP-literal` without its brackets: `IPv6address / IPvFuture` (RFC 3986 section 3.2.2).
/// Rare, so not tuned.
fn ip_literal(v: &[u8]) -> bool {
    match v {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        [b'v' | b'V', rest @ ..] => {
            let digits = rest
                .iter()
                .take_while(|&&b| HOST_CLASS[usize::from(b)] & HOST_HEX != 0)
                .count();
            match &rest[digits..] {
                [b'.', tail @ ..] => {
                    digits > 0
                        && !tail.is_empty()
                        && tail
                            .iter()
                            .all(|&b| b == b':' || HOST_CLASS[usize::from(b)] & HOST_REG != 0)
                }
                _ => false,
            }
        }
        _ => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some(),
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

    /// The status for request line `line` followed by a Host and the end of the head.
    fn line_status(line: &[u8]) -> u16 {
        status(&[line, b"\r\nHost: a\r\n\r\n"].concat())
    }

    #[test]
    fn malformed_request_lines_are_400() {
        for line in [
            &b"GET /a b HTTP/1.1"[..],
            b"GET /a b HTTP/2.0",
            b"GET  / HTTP/1.1",
            b"GET /  HTTP/1.1",
            b"GET /  HTTP/2.0",
            b" GET / HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b"GET / HTTP/2.0 ",
            b"GET / HTTP/1.1x",
            b"GET / HTTP/2.0x",
            b"GET /HTTP/1.1",
            b"GET / ",
            b"GET\t/ HTTP/1.1",
            b"GET /\tHTTP/1.1",
            b"GET / http/1.1",
            b"GET / Http/1.1",
            b"GET / HTTP/1.10",
            b"GET / HTTP/11.1",
            b"GET / HTTP/2",
            b"GET / HTTP/2.",
            b"GET / HTTP/2.0.1",
            b"GET / HTTP/a.b",
            b"GET / HTTP/1,1",
            b"GET / HTTP/2.0\rx",
            b"GET / HTTP",
            b"GET / 1.1",
        ] {
            assert_eq!(
                line_status(line),
                400,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn well_formed_other_versions_are_505() {
        for line in [
            &b"GET / HTTP/2.0"[..],
            b"GET / HTTP/3.0",
            b"GET / HTTP/0.9",
            b"GET / HTTP/9.9",
            b"POST /a?b HTTP/2.0",
            b"GET / HTTP/1.2",
        ] {
            assert_eq!(
                line_status(line),
                505,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        // Bare LF ends, and empty lines before the request line, as httparse reads them.
        assert_eq!(status(b"GET / HTTP/2.0\nHost: a\n\n"), 505);
        assert_eq!(status(b"\r\n\nGET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert!(parse(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
    }

    #[test]
    fn other_version_waits_for_the_end_of_its_line() {
        let full = b"GET / HTTP/2.0\r\nHost: a\r\n\r\n";
        for end in 7..16 {
            assert_eq!(parse(&full[..end]), Ok(None), "{end} bytes");
        }
        assert_eq!(status(&full[..16]), 505);
        // Not a version in the making: rejected at once.
        assert_eq!(status(b"GET / http"), 400);
        assert_eq!(status(b"GET / HTTP/2.0x"), 400);
        assert_eq!(status(b"GET /a b HTTP"), 400);
        // Waiting stays bounded by the head size.
        let padded = [b"\r\n".repeat(600).as_slice(), b"GET / HTTP/2"].concat();
        assert_eq!(status(&padded), 431);
    }

    /// The outcome of a GET with Host `value`, which must be the same on HTTP/1.1 and 1.0.
    fn host_status(value: &[u8]) -> Result<(), u16> {
        let outcome = |version: &[u8]| {
            let buf = [
                b"GET / HTTP/".as_slice(),
                version,
                b"\r\nHost: ",
                value,
                b"\r\n\r\n",
            ]
            .concat();
            parse(&buf).map(|_| ()).map_err(|r| r.status.0)
        };
        let got = outcome(b"1.1");
        assert_eq!(got, outcome(b"1.0"), "1.1 and 1.0 differ on {value:?}");
        got
    }

    #[test]
    fn valid_hosts_are_accepted() {
        for host in [
            &b"127.0.0.1:8080"[..],
            b"127.0.0.1",
            b"example.com",
            b"EXAMPLE.com:80",
            b"localhost:",
            b"a",
            b"xn--bcher-kva.example",
            b"my_host~-.!$&'()*+,;=",
            b"ex%41mple.com",
            b"%2f%2F",
            b"999.999.999.999",
            b"[::1]",
            b"[::1]:8080",
            b"[::1]:",
            b"[2001:db8::a:b]:443",
            b"[::ffff:192.0.2.1]",
            b"[1:2:3:4:5:6:7:8]",
            b"[v1.fe80::a+en1]",
            b"[V7.x]:1",
            b"example.com:65536999",
            b"",
        ] {
            assert_eq!(
                host_status(host),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(host)
            );
        }
    }

    #[test]
    fn malformed_hosts_are_400() {
        for host in [
            &b"exa mple.com"[..],
            b"example.com\t:80",
            b"a\tb",
            b"user@example.com",
            b"example.com/path",
            b"example.com?q",
            b"example.com#f",
            b"example.com:8x",
            b"example.com:80:80",
            b"example.com: 80",
            b"example.com:-1",
            b"1::2",
            b":80",
            b":",
            b"[::1",
            b"::1]",
            b"[::1]]",
            b"[[::1]]",
            b"[::1]x",
            b"[::1]80",
            b"[::1]:8x",
            b"[]",
            b"[:::1]",
            b"[1.2.3.4]",
            b"[fe80::1%25eth0]",
            b"[::1 ]",
            b"[v1]",
            b"[v.x]",
            b"[v1.]",
            b"[v1.a b]",
            b"ex%4mple",
            b"ex%",
            b"ex%zz",
            b"a\"b",
            b"a<b>",
            b"a\\b",
            b"a[b",
            b"a]b",
            b"a{b}",
            b"a|b",
            b"caf\xc3\xa9.example",
            b"a\x7fb",
        ] {
            assert_eq!(
                host_status(host),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(host)
            );
        }
        // Control characters never reach the check: httparse refuses them in any value.
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost: a\x00b\r\n\r\n"), 400);
    }

    #[test]
    fn host_is_checked_on_every_version_and_once() {
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
        // Leading and trailing whitespace is not part of the value.
        assert!(parse(b"GET / HTTP/1.1\r\nHost:   a:1  \r\n\r\n").is_ok());
        assert!(parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").is_ok());
        assert!(parse(b"GET / HTTP/1.1\r\nhOsT: [::1]:8080\r\n\r\n").is_ok());
    }
}
