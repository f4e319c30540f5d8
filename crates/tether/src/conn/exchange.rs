//! One request and its response: the facts the connection, the body reader and the
//! response builder share while the handler runs.

use std::cell::Cell;
use std::io;

use crate::conn::transport::Transport;
use crate::lifecycle::CloseReason;
use crate::proto::encode::Persistence;
use crate::proto::parse::Version;

/// Per-request facts shared by the connection, the body reader and the response.
pub(crate) struct Exchange<'a> {
    /// The connection's transport, for the body reader (`100 Continue`, reads) and a
    /// streaming response. Behind a reference to a trait object so that the handler's types
    /// ([`crate::Request`], [`crate::Response`]) do not depend on the transport.
    pub io: &'a dyn Transport,
    /// The server's drain flag: a drain that starts while the handler runs still closes the
    /// connection after this response.
    pub draining: &'a Cell<bool>,
    /// What the keep-alive policy settled before the handler ran.
    pub plan: Plan,
    /// A `HEAD` request: responses carry no body.
    pub is_head: bool,
    pub version: Version,
    pub body: BodyState,
}

/// What is known before the handler runs about how this exchange may end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Already decided to close after this response.
    pub close: Option<CloseReason>,
    /// What a persistent response says: `Connection: keep-alive` for an HTTP/1.0 client,
    /// `Keep-Alive: timeout=, max=` (the requests it may still serve after this one).
    pub persist: Persistence,
    /// Unread body bytes the connection is willing to discard.
    pub drain_bytes: u64,
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
    pub(crate) fn io(self) -> io::Error {
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
