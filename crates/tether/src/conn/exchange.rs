//! One request and its response: the facts the connection, the body reader and the
//! response builder share while the handler runs.

use crate::conn::body::BodyState;
use crate::conn::keepalive::Plan;
use crate::conn::transport::Transport;
use crate::proto::parse::Version;

/// Per-request facts shared by the connection, the body reader and the response.
pub(crate) struct Exchange<'a> {
    /// The connection's transport, for the body reader (`100 Continue`, reads) and a
    /// streaming response. Behind a reference to a trait object so that the handler's types
    /// ([`crate::Request`], [`crate::Response`]) do not depend on the transport.
    pub io: &'a dyn Transport,
    /// What the keep-alive policy settled before the handler ran.
    pub plan: Plan,
    /// A `HEAD` request: responses carry no body.
    pub is_head: bool,
    pub version: Version,
    pub body: BodyState,
}
