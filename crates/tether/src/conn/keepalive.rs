//! The keep-alive policy: the one module that decides whether a connection lives on after a
//! response, and how it closes when it does not (as nginx's `ngx_http_finalize_connection`
//! chooses keep-alive, lingering close or close).
//!
//! The decision is taken in steps, each a function here, each from plain facts:
//! - [`limits`], at accept: the connection's request and lifetime limits, with jitter;
//! - [`plan`], before the handler runs: what is already known from the client's
//!   `Connection` header and version, the limits and the lifetime;
//! - [`at_head`], when the response head is written: a drain (whenever it started), the
//!   plan, the handler's request to close, a close-delimited body, and a body left unread beyond the drain budget or
//!   with a client still waiting for `100 Continue`;
//! - [`when_buffered`] and [`when_streamed`], when the handler returned: a body that failed,
//!   a handler error, a stream whose write failed, a sized body left short;
//! - [`after_discard`], when an unread body rest was discarded (or not) within the budget;
//! - [`lingers`], at the close: whether to drain the client's input before closing.

use std::io;

use tokio::time::Instant;

use crate::config::Config;
use crate::conn::exchange::{BodyError, BodyState, Plan};
use crate::lifecycle::CloseReason;
use crate::proto::encode::Persistence;
use crate::proto::parse::{Head, Version};
use crate::proto::status::Status;

/// How the connection goes on after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Persistent: read the next request.
    KeepAlive,
    /// Flush, then close for this reason.
    Close(CloseReason),
}

impl From<Option<CloseReason>> for Finish {
    fn from(close: Option<CloseReason>) -> Self {
        close.map_or(Finish::KeepAlive, Finish::Close)
    }
}

/// A connection's own limits, fixed at accept: requests it may serve (0 = unlimited) and
/// when it expires. Both are lowered at random by up to `limit_jitter`, so that
/// connections opened together do not reconnect together.
pub(crate) fn limits(cfg: &Config, now: Instant) -> (u64, Option<Instant>) {
    let jitter = |x: f64| x * (1.0 - cfg.limit_jitter * fastrand::f64());
    let max_requests = match cfg.max_requests {
        0 => 0,
        n => (jitter(n as f64) as u64).clamp(1, n),
    };
    let expires =
        (!cfg.max_lifetime.is_zero()).then(|| now + cfg.max_lifetime.mul_f64(jitter(1.0)));
    (max_requests, expires)
}

/// Where a connection stands when a request arrives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Standing {
    /// Requests answered before this one.
    pub served: u64,
    /// The connection's request limit (0 = unlimited).
    pub max_requests: u64,
    pub expires: Option<Instant>,
}

/// What can be decided before the handler runs.
#[inline]
pub(crate) fn plan(cfg: &Config, head: &Head, s: Standing) -> Plan {
    let last = s.max_requests > 0 && s.served + 1 >= s.max_requests;
    let close = if head.conn_close || (head.version == Version::Http10 && !head.conn_keep_alive) {
        Some(CloseReason::ClientClose)
    } else if last {
        Some(CloseReason::MaxRequests)
    } else if s.expires.is_some_and(|e| Instant::now() >= e) {
        Some(CloseReason::MaxLifetime)
    } else {
        None
    };
    Plan {
        close,
        persist: Persistence {
            http10_keep_alive: head.version == Version::Http10 && head.conn_keep_alive,
            keep_alive_header: cfg.keep_alive_header,
            // Whole seconds, rounded down: the advertised timeout must never be longer than
            // the real one.
            // (and saturated: no idle timeout is longer than 136 years).
            timeout: Some(u32::try_from(cfg.idle_timeout.as_secs()).unwrap_or(u32::MAX))
                .filter(|&t| t > 0),
            max: (s.max_requests > 0).then(|| s.max_requests - s.served - 1),
        },
        drain_bytes: cfg.drain_bytes,
    }
}

/// Decides, when a response head is written, whether the connection closes after it.
#[inline]
pub(crate) fn at_head(
    plan: &Plan,
    body: &BodyState,
    draining: bool,
    handler_close: bool,
    close_delimited: bool,
) -> Option<CloseReason> {
    // Read here rather than in the plan: a drain that started while the handler ran counts.
    if draining {
        return Some(CloseReason::Shutdown);
    }
    if let Some(r) = plan.close {
        return Some(r);
    }
    if handler_close {
        return Some(CloseReason::HandlerClose);
    }
    if close_delimited {
        return Some(CloseReason::CloseDelimited);
    }
    if !body.done.get() {
        // A client still waiting for 100 Continue may or may not send the body: the only
        // safe ending is a close. A known remainder beyond the budget is not worth reading.
        if body.awaiting_continue.get() || body.error.get().is_some() {
            return Some(CloseReason::UnreadBody);
        }
        if body.remaining.get().is_some_and(|n| n > plan.drain_bytes) {
            return Some(CloseReason::UnreadBody);
        }
    }
    None
}

/// What becomes of a buffered response once the handler returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It goes out as built; [`at_head`] decides the connection.
    Send,
    /// It is replaced by this error response, and the connection closes.
    Replace(Status, CloseReason),
    /// Nothing is sent (nobody is left to answer), and the connection closes.
    Drop(CloseReason),
}

/// Decides the fate of a buffered response: a failed body replaces it with its status
/// (400, 408, 413), a handler error with 500.
#[inline]
pub(crate) fn when_buffered(body: &BodyState, handler_ok: bool) -> Verdict {
    if let Some(e) = body.error.get() {
        return match e {
            BodyError::Malformed => Verdict::Replace(Status::BAD_REQUEST, body_reason(e)),
            BodyError::Timeout => Verdict::Replace(Status::REQUEST_TIMEOUT, body_reason(e)),
            BodyError::TooLarge => Verdict::Replace(Status::PAYLOAD_TOO_LARGE, body_reason(e)),
            BodyError::Closed => Verdict::Drop(body_reason(e)),
        };
    }
    if !handler_ok {
        return Verdict::Replace(Status::INTERNAL_SERVER_ERROR, CloseReason::HandlerError);
    }
    Verdict::Send
}

/// Decides the end of a streamed response, whose head (with its own decision, `at_head`)
/// is already out: a failed write or a handler error leaves the body incomplete, and only
/// a close says so.
#[inline]
pub(crate) fn when_streamed(
    failed: Option<CloseReason>,
    handler_ok: bool,
    short: bool,
    body: &BodyState,
    at_head: Option<CloseReason>,
) -> Finish {
    if let Some(r) = failed {
        return Finish::Close(r);
    }
    // A sized body left short: only the close tells the client it ends there.
    if !handler_ok || short {
        return Finish::Close(CloseReason::HandlerError);
    }
    if let Some(e) = body.error.get() {
        return Finish::Close(body_reason(e));
    }
    at_head.into()
}

/// Decides after the answer went out with a request body left unread: the connection lives
/// on only if the rest was discarded within the drain budget.
#[inline]
pub(crate) fn after_discard(discarded: bool) -> Finish {
    if discarded {
        Finish::KeepAlive
    } else {
        Finish::Close(CloseReason::UnreadBody)
    }
}

/// The close reason of a failed read or write.
pub(crate) fn io_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => CloseReason::PeerReset,
        io::ErrorKind::TimedOut => CloseReason::WriteTimeout,
        _ => CloseReason::IoError,
    }
}

fn body_reason(e: BodyError) -> CloseReason {
    match e {
        BodyError::Timeout => CloseReason::BodyTimeout,
        BodyError::Closed => CloseReason::ClosedMidRequest,
        BodyError::Malformed | BodyError::TooLarge => CloseReason::ProtocolError,
    }
}

/// How a connection closes for `reason`: with a lingering close (flush what is owed, shut
/// down the write side, read and discard what the client still sends for a bounded time,
/// so that it sees the response rather than a reset), or at once, when the peer is gone or
/// the response could not be written anyway.
pub(crate) fn lingers(reason: CloseReason) -> bool {
    !matches!(
        reason,
        CloseReason::PeerReset
            | CloseReason::IoError
            | CloseReason::WriteTimeout
            | CloseReason::IdleTimeout
            // No HTTP was spoken: there is no answer a reset could destroy.
            | CloseReason::HandshakeTimeout
            | CloseReason::HandshakeFailed
    )
}

/// Whether a close for `reason` leaves the transport in a state to end its stream cleanly
/// (TLS `close_notify`): every close that lingers, and the idle timeout, which does not
/// linger only because no answer is owed; not after a reset, a failed write or a failed
/// handshake.
pub(crate) fn ends_cleanly(reason: CloseReason) -> bool {
    lingers(reason) || reason == CloseReason::IdleTimeout
}

/// Whether a lingering close may skip the linger: the client asked for the close and has
/// sent nothing since (`quiet`), so it expects the close and a plain one cannot reset
/// anything it waits for. Closes the server decides on its own always linger: the client
/// may have requests in flight.
pub(crate) fn skips_linger(reason: CloseReason, quiet: impl FnOnce() -> bool) -> bool {
    reason == CloseReason::ClientClose && quiet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn head(version: Version, close: bool, keep_alive: bool) -> Head {
        Head {
            version,
            conn_close: close,
            conn_keep_alive: keep_alive,
            ..Head::default()
        }
    }

    fn standing() -> Standing {
        Standing {
            served: 0,
            max_requests: 0,
            expires: None,
        }
    }

    #[test]
    fn the_plan_names_each_early_close() {
        let cfg = Config::default();
        let h11 = head(Version::Http11, false, false);
        assert_eq!(plan(&cfg, &h11, standing()).close, None);
        let close = head(Version::Http11, true, false);
        assert_eq!(
            plan(&cfg, &close, standing()).close,
            Some(CloseReason::ClientClose)
        );
        let h10 = head(Version::Http10, false, false);
        assert_eq!(
            plan(&cfg, &h10, standing()).close,
            Some(CloseReason::ClientClose)
        );
        let h10_ka = head(Version::Http10, false, true);
        let p = plan(&cfg, &h10_ka, standing());
        assert_eq!(p.close, None);
        assert!(p.persist.http10_keep_alive);
        let last = Standing {
            served: 4,
            max_requests: 5,
            ..standing()
        };
        let p = plan(&cfg, &h11, last);
        assert_eq!(p.close, Some(CloseReason::MaxRequests));
        assert_eq!(p.persist.max, Some(0));
        let expired = Standing {
            expires: Some(Instant::now() - Duration::from_millis(1)),
            ..standing()
        };
        assert_eq!(
            plan(&cfg, &h11, expired).close,
            Some(CloseReason::MaxLifetime)
        );
    }

    #[test]
    fn the_head_decision_weighs_the_handler_and_the_body() {
        let cfg = Config::default();
        let p = plan(&cfg, &head(Version::Http11, false, false), standing());
        let body = BodyState::default();
        body.done.set(true);
        assert_eq!(at_head(&p, &body, false, false, false), None);
        assert_eq!(
            at_head(&p, &body, true, false, false),
            Some(CloseReason::Shutdown)
        );
        // A drain outranks what the plan says (here, the client's own close).
        let client_close = plan(&cfg, &head(Version::Http11, true, false), standing());
        assert_eq!(
            at_head(&client_close, &body, true, false, false),
            Some(CloseReason::Shutdown)
        );
        assert_eq!(
            at_head(&p, &body, false, true, false),
            Some(CloseReason::HandlerClose)
        );
        assert_eq!(
            at_head(&p, &body, false, false, true),
            Some(CloseReason::CloseDelimited)
        );
        body.done.set(false);
        body.remaining.set(Some(p.drain_bytes));
        assert_eq!(at_head(&p, &body, false, false, false), None);
        body.remaining.set(Some(p.drain_bytes + 1));
        assert_eq!(
            at_head(&p, &body, false, false, false),
            Some(CloseReason::UnreadBody)
        );
        body.remaining.set(Some(1));
        body.awaiting_continue.set(true);
        assert_eq!(
            at_head(&p, &body, false, false, false),
            Some(CloseReason::UnreadBody)
        );
    }

    #[test]
    fn failures_replace_or_cut_the_response() {
        let body = BodyState::default();
        assert_eq!(when_buffered(&body, true), Verdict::Send);
        assert_eq!(
            when_buffered(&body, false),
            Verdict::Replace(Status::INTERNAL_SERVER_ERROR, CloseReason::HandlerError)
        );
        body.error.set(Some(BodyError::TooLarge));
        assert_eq!(
            when_buffered(&body, true),
            Verdict::Replace(Status::PAYLOAD_TOO_LARGE, CloseReason::ProtocolError)
        );
        body.error.set(Some(BodyError::Closed));
        assert_eq!(
            when_buffered(&body, true),
            Verdict::Drop(CloseReason::ClosedMidRequest)
        );
        body.error.set(None);
        assert_eq!(
            when_streamed(None, true, false, &body, None),
            Finish::KeepAlive
        );
        assert_eq!(
            when_streamed(None, true, true, &body, None),
            Finish::Close(CloseReason::HandlerError)
        );
        assert_eq!(
            when_streamed(Some(CloseReason::WriteTimeout), true, false, &body, None),
            Finish::Close(CloseReason::WriteTimeout)
        );
        assert_eq!(
            when_streamed(None, false, false, &body, None),
            Finish::Close(CloseReason::HandlerError)
        );
        assert_eq!(after_discard(false), Finish::Close(CloseReason::UnreadBody));
    }

    #[test]
    fn closes_linger_unless_the_peer_is_gone() {
        assert!(lingers(CloseReason::ProtocolError));
        assert!(!lingers(CloseReason::PeerReset));
        assert!(!lingers(CloseReason::WriteTimeout));
        assert!(skips_linger(CloseReason::ClientClose, || true));
        assert!(!skips_linger(CloseReason::ClientClose, || false));
        assert!(!skips_linger(CloseReason::MaxRequests, || true));
    }

    #[test]
    fn limits_jitter_downwards_only() {
        let cfg = Config {
            max_requests: 100,
            max_lifetime: Duration::from_secs(10),
            ..Config::default()
        };
        let now = Instant::now();
        for _ in 0..100 {
            let (n, expires) = limits(&cfg, now);
            assert!((90..=100).contains(&n), "{n}");
            let e = expires.unwrap() - now;
            assert!(
                e <= Duration::from_secs(10) && e >= Duration::from_secs(9),
                "{e:?}"
            );
        }
    }
}
