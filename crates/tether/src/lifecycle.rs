//! The vocabulary of a connection's life: its states, why it closed, and the event the
//! application's hook receives. It imports nothing of the crate, so every layer can use it.

use std::net::SocketAddr;

/// The life stage of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Accepted; no byte received yet.
    New,
    /// A request is being read, handled or answered.
    Active,
    /// Between requests, with nothing buffered.
    Idle,
    /// Flushing, shutting down and draining input before the close.
    Closing,
    /// Closed.
    Closed,
}

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the connection between requests.
    PeerClosed,
    /// The client reset the connection.
    PeerReset,
    /// No request within the idle timeout (plus grace).
    IdleTimeout,
    /// A request head did not arrive in full within the header timeout.
    HeaderTimeout,
    /// A request body made no progress within the body timeout.
    BodyTimeout,
    /// A response made no progress within the write timeout.
    WriteTimeout,
    /// The connection served its maximum number of requests.
    MaxRequests,
    /// The connection reached its maximum lifetime.
    MaxLifetime,
    /// The server is shutting down.
    Shutdown,
    /// The request was malformed or over a limit.
    ProtocolError,
    /// A socket error.
    IoError,
    /// The client closed while it was still sending a request.
    ClosedMidRequest,
    /// The client asked to close (`Connection: close`, or HTTP/1.0 without keep-alive).
    ClientClose,
    /// The handler asked to close.
    HandlerClose,
    /// The handler failed.
    HandlerError,
    /// The request body was left unread beyond the drain budget.
    UnreadBody,
    /// The response body was delimited by the close (HTTP/1.0 streaming).
    CloseDelimited,
    /// Closed while idle to admit a new connection at the connection limit.
    Evicted,
    /// A TLS handshake did not complete within the handshake timeout.
    HandshakeTimeout,
    /// A TLS handshake failed: the client's bytes were not TLS, or it refused ours.
    HandshakeFailed,
}

impl CloseReason {
    /// Every reason, in the order of their discriminants (the index of counters).
    pub const ALL: [CloseReason; 20] = [
        CloseReason::PeerClosed,
        CloseReason::PeerReset,
        CloseReason::IdleTimeout,
        CloseReason::HeaderTimeout,
        CloseReason::BodyTimeout,
        CloseReason::WriteTimeout,
        CloseReason::MaxRequests,
        CloseReason::MaxLifetime,
        CloseReason::Shutdown,
        CloseReason::ProtocolError,
        CloseReason::IoError,
        CloseReason::ClosedMidRequest,
        CloseReason::ClientClose,
        CloseReason::HandlerClose,
        CloseReason::HandlerError,
        CloseReason::UnreadBody,
        CloseReason::CloseDelimited,
        CloseReason::Evicted,
        CloseReason::HandshakeTimeout,
        CloseReason::HandshakeFailed,
    ];

    /// A stable snake_case name, for metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::PeerReset => "peer_reset",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::BodyTimeout => "body_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::MaxRequests => "max_requests",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::Shutdown => "shutdown",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::IoError => "io_error",
            CloseReason::ClosedMidRequest => "closed_mid_request",
            CloseReason::ClientClose => "client_close",
            CloseReason::HandlerClose => "handler_close",
            CloseReason::HandlerError => "handler_error",
            CloseReason::UnreadBody => "unread_body",
            CloseReason::CloseDelimited => "close_delimited",
            CloseReason::Evicted => "evicted",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::HandshakeFailed => "handshake_failed",
        }
    }
}

impl ConnState {
    /// A stable lowercase name, for metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::New => "new",
            ConnState::Active => "active",
            ConnState::Idle => "idle",
            ConnState::Closing => "closing",
            ConnState::Closed => "closed",
        }
    }
}

/// How a TLS handshake ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handshake {
    /// A new session: the client had none to resume, or the server did not know it.
    Full,
    /// A returning client's session, by ticket or session ID: no key exchange, no
    /// certificate.
    Resumed,
    /// No session: the connection closed (as `handshake_timeout`, `handshake_failed` or
    /// `peer_closed`).
    Failed(HandshakeFailure),
}

/// Why a TLS handshake failed, by class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeFailure {
    /// It took longer than `handshake_timeout`.
    Timeout,
    /// The client closed or reset the connection before it completed.
    Closed,
    /// The client's first bytes were not a TLS record: plain HTTP to the TLS port, or a
    /// scanner's garbage.
    NotTls,
    /// Nothing in common: no protocol version, cipher suite or ALPN protocol both support
    /// (a client offering only `h2`, say).
    NoCommonProtocol,
    /// The client sent an alert: typically it refused the server's certificate (expired,
    /// another name, an unknown issuer).
    ClientAlert,
    /// The client broke the protocol otherwise (malformed or unexpected messages).
    Malformed,
    /// The socket failed.
    Io,
}

impl HandshakeFailure {
    /// Every class, in the order of their discriminants (the index of counters).
    pub const ALL: [HandshakeFailure; 7] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Closed,
        HandshakeFailure::NotTls,
        HandshakeFailure::NoCommonProtocol,
        HandshakeFailure::ClientAlert,
        HandshakeFailure::Malformed,
        HandshakeFailure::Io,
    ];

    /// A stable snake_case name, for metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::NoCommonProtocol => "no_common_protocol",
            HandshakeFailure::ClientAlert => "client_alert",
            HandshakeFailure::Malformed => "malformed",
            HandshakeFailure::Io => "io",
        }
    }

    /// The close reason of a connection whose handshake failed so.
    pub const fn close_reason(self) -> CloseReason {
        match self {
            HandshakeFailure::Timeout => CloseReason::HandshakeTimeout,
            HandshakeFailure::Closed => CloseReason::PeerClosed,
            _ => CloseReason::HandshakeFailed,
        }
    }
}

/// A connection's change of state, as given to the hook set with
/// [`crate::Builder::on_conn_state`].
#[derive(Clone, Copy, Debug)]
pub struct ConnEvent {
    /// Unique per server.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The state entered.
    pub state: ConnState,
    /// Requests answered on this connection so far.
    pub requests: u64,
    /// Why it closed, with `Closed` (and with `Closing`, once known; a last response that
    /// then fails to go out gives `Closed` its own reason, such as `WriteTimeout`).
    pub reason: Option<CloseReason>,
}
