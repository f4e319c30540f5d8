//! The request a handler receives: a view of the parsed head, and the body as a reader.
//!
//! Both borrow the connection's read buffer: the head is the part already parsed, the body
//! reader (see [`crate::conn::body`]) owns the rest of the buffer.

use std::net::SocketAddr;

use crate::conn::body::Body;
use crate::proto::parse::{Head, Version};

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
