//! Response framing: the head (httparse, headers on the stack), then the body by
//! `Content-Length`, chunked coding or the close of the connection. Nothing is allocated and
//! body bytes are skipped, not kept.

use crate::chunked::Chunked;

/// Most header fields accepted in one response head.
const MAX_HEADERS: usize = 100;

/// A complete response, as far as the connection needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// The status code.
    pub status: u16,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
    /// Whether the response said `Connection: close`.
    pub close_header: bool,
    /// `Keep-Alive: max=N`: the requests the server will still take on this connection.
    pub max: Option<u64>,
}

/// A response that does not follow HTTP/1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

/// What a call to [`Reader::next`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// More input is needed; `usize` bytes were consumed (body bytes) and can be dropped.
    More(usize),
    /// A response ended after `usize` bytes.
    Done(usize, Done),
}

/// The body still to come.
#[derive(Clone, Copy, Debug)]
enum Body {
    Length(u64),
    Chunked(Chunked),
    /// Until the server closes the connection.
    Close,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Head,
    Body(Body, Done),
}

/// Reads one response after another from a connection's input.
#[derive(Clone, Copy, Debug)]
pub struct Reader {
    state: State,
    /// The request method was HEAD: responses have no body.
    head_method: bool,
}

impl Reader {
    /// A reader for responses to `HEAD` requests (no bodies) or to other methods.
    pub fn new(head_method: bool) -> Reader {
        Reader {
            state: State::Head,
            head_method,
        }
    }

    /// Whether part of a response has been consumed (a head, or some of a body).
    pub fn mid_response(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// Back to the start of a response, for a new connection.
    pub fn reset(&mut self) {
        self.state = State::Head;
    }

    /// Advances over `input` (the unconsumed bytes of the read buffer).
    pub fn next(&mut self, input: &[u8]) -> Result<Step, ProtocolError> {
        let State::Head = self.state else {
            return self.body(input);
        };
        let Some((len, done, body)) = self.head(input)? else {
            return Ok(Step::More(0));
        };
        let rest = match body {
            // An interim response: the real one follows.
            None if done.status < 200 => self.next(&input[len..])?,
            None => return Ok(Step::Done(len, done)),
            Some(body) => {
                self.state = State::Body(body, done);
                self.body(&input[len..])?
            }
        };
        Ok(match rest {
            Step::More(n) => Step::More(len + n),
            Step::Done(n, d) => Step::Done(len + n, d),
        })
    }

    fn body(&mut self, input: &[u8]) -> Result<Step, ProtocolError> {
        let State::Body(body, done) = &mut self.state else {
            return Ok(Step::More(0));
        };
        let done = *done;
        let (used, end) = match body {
            Body::Length(left) => {
                let take = (*left).min(input.len() as u64);
                *left -= take;
                (take as usize, *left == 0)
            }
            Body::Chunked(c) => c.feed(input).map_err(|e| ProtocolError(e.0))?,
            Body::Close => (input.len(), false),
        };
        if end {
            self.state = State::Head;
            return Ok(Step::Done(used, done));
        }
        Ok(Step::More(used))
    }

    /// The connection reached end of input: a close-delimited body ends here. Returns the
    /// response it completed, if any; `Err` means a response was cut short.
    pub fn eof(&mut self) -> Result<Option<Done>, ()> {
        match self.state {
            State::Body(Body::Close, done) => {
                self.state = State::Head;
                Ok(Some(done))
            }
            State::Body(..) => Err(()),
            State::Head => Ok(None),
        }
    }

    /// Parses a head at the start of `input`: its length, what it says, and the body to
    /// expect (`None` for none). `Ok(None)` when the head is not complete yet.
    fn head(&self, input: &[u8]) -> Result<Option<(usize, Done, Option<Body>)>, ProtocolError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let len = match res.parse(input) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ProtocolError("too many header fields"))
            }
            Err(_) => return Err(ProtocolError("malformed response head")),
        };
        let status = res.code.unwrap_or(0);
        let http11 = res.version == Some(1);
        let mut close = false;
        let mut keep_alive_token = false;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut other_coding = false;
        let mut max = None;
        for h in res.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = parse_length(h.value)?;
                if length.is_some_and(|l| l != n) {
                    return Err(ProtocolError("conflicting Content-Length"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                for coding in tokens(h.value) {
                    // Only the last coding decides the framing.
                    chunked = coding.eq_ignore_ascii_case(b"chunked");
                    other_coding = !chunked;
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for t in tokens(h.value) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case(b"keep-alive") {
                max = keep_alive_max(h.value).or(max);
            }
        }
        if status == 101 {
            return Err(ProtocolError("unexpected protocol switch"));
        }
        let no_body = self.head_method || status < 200 || status == 204 || status == 304;
        let body = if no_body {
            None
        } else if chunked {
            Some(Body::Chunked(Chunked::default()))
        } else if other_coding {
            Some(Body::Close)
        } else {
            match length {
                Some(0) => None,
                Some(n) => Some(Body::Length(n)),
                None => Some(Body::Close),
            }
        };
        let persistent = if http11 {
            !close
        } else {
            keep_alive_token && !close
        };
        let done = Done {
            status,
            keep_alive: persistent && !matches!(body, Some(Body::Close)),
            close_header: close,
            max,
        };
        Ok(Some((len, done, body)))
    }
}

fn parse_length(value: &[u8]) -> Result<u64, ProtocolError> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError("malformed Content-Length"));
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// `max=N` in a `Keep-Alive` header value (`timeout=5, max=100`).
fn keep_alive_max(value: &[u8]) -> Option<u64> {
    tokens(value).find_map(|t| {
        let (k, v) = t.split_at(t.iter().position(|&b| b == b'=')?);
        if !k.trim_ascii().eq_ignore_ascii_case(b"max") {
            return None;
        }
        let v = v[1..].trim_ascii();
        if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `input` through a reader in pieces of `step`; returns the responses and whether
    /// the reader ended mid-response.
    fn read_all(input: &[u8], step: usize, head: bool) -> (Vec<Done>, bool) {
        let mut r = Reader::new(head);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match r.next(&buf).expect("valid") {
                    Step::More(n) => {
                        buf.drain(..n);
                        break;
                    }
                    Step::Done(n, d) => {
                        buf.drain(..n);
                        out.push(d);
                    }
                }
            }
        }
        let mid = r.mid_response() || !buf.is_empty();
        if let Ok(Some(d)) = r.eof() {
            out.push(d);
        }
        (out, mid)
    }

    const TWO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5, max=7\r\n\r\nhello\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";

    #[test]
    fn length_and_chunked_in_any_pieces() {
        for step in 1..TWO.len() {
            let (out, mid) = read_all(TWO, step, false);
            assert!(!mid, "step {step}");
            assert_eq!(out.len(), 2, "step {step}");
            assert_eq!(
                out[0],
                Done {
                    status: 200,
                    keep_alive: true,
                    close_header: false,
                    max: Some(7)
                }
            );
            assert_eq!(
                (out[1].status, out[1].keep_alive, out[1].close_header),
                (404, false, true)
            );
        }
    }

    #[test]
    fn close_delimited_and_no_body() {
        let (out, _) = read_all(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", 4, false);
        assert_eq!(out.len(), 1);
        assert!(!out[0].keep_alive);
        let (out, mid) = read_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            7,
            false,
        );
        assert_eq!(out.iter().map(|d| d.status).collect::<Vec<_>>(), [204, 304]);
        assert!(!mid);
        let (out, mid) = read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 7, true);
        assert_eq!(out.len(), 1, "HEAD: no body");
        assert!(!mid);
    }

    #[test]
    fn http10_persistence() {
        let (out, _) = read_all(
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n",
            100,
            false,
        );
        assert!(out[0].keep_alive);
        let (out, _) = read_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 100, false);
        assert!(!out[0].keep_alive);
    }

    #[test]
    fn truncated_and_malformed() {
        let mut r = Reader::new(false);
        let step = r
            .next(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
            .expect("valid");
        assert!(matches!(step, Step::More(_)));
        assert!(r.mid_response());
        assert_eq!(r.eof(), Err(()));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTZ/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 101 Switching\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                Reader::new(false).next(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(keep_alive_max(b"timeout=5, max=100"), Some(100));
        assert_eq!(keep_alive_max(b"max = x"), None);
    }
}
