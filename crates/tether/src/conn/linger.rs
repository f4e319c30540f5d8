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
    let _ = io.shutdown_write();
    while let Ok(Read::Data(1..)) = read_some(io, sink, timer, until).await {}
}
