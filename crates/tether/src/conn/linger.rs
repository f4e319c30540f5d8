//! The lingering close: after the last response, shut down the write side and read (and
//! drop) what the client still sends for a bounded time, so that the client reads the
//! response rather than a reset caused by unread input. Both the connection's close and
//! the refusal of a connection over a limit end this way.

use tokio::time::Instant;

use crate::conn::timed_io::{read_some, Read, Timer};
use crate::conn::transport::Transport;

/// Shuts down the write side of `io`, then reads into `sink` until the client closes, an
/// error, or `until`.
pub(crate) async fn linger<T: Transport + ?Sized>(
    io: &T,
    sink: &mut [u8],
    timer: &mut Timer,
    until: Option<Instant>,
) {
    shut_down_write(io, until).await;
    while let Ok(Read::Data(1..)) = read_some(io, sink, timer, until).await {}
}

/// Ends the sending side cleanly: the transport's end-of-stream message (TLS
/// `close_notify`) goes out first, waiting for the socket until `until` if it must (a
/// resumed connection's socket, say, whose readiness the runtime has not seen yet).
pub(crate) async fn shut_down_write<T: Transport + ?Sized>(io: &T, until: Option<Instant>) {
    let _ = io.close_notify();
    if io.holds_unsent() {
        Box::pin(send_held(io, until)).await;
    }
    let _ = io.shutdown_write();
}

async fn send_held<T: Transport + ?Sized>(io: &T, until: Option<Instant>) {
    let sent = std::future::poll_fn(|cx| io.poll_write_ready(cx));
    let _ = match until {
        Some(at) => tokio::time::timeout_at(at, sent).await.ok(),
        None => Some(sent.await),
    };
}
