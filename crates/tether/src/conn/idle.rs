//! The wait between requests: holding no buffer, until the next request starts to arrive,
//! the idle deadline, a kick from the worker (eviction, drain), or the time to park.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use tokio::time::Instant;

use crate::conn::host::{Host, Kick};
use crate::conn::keepalive;
use crate::conn::stream::Park;
use crate::conn::timed_io::try_read;
use crate::conn::transport::Transport;
use crate::conn::{Conn, Outcome};
use crate::lifecycle::CloseReason;

/// What ends an idle wait.
enum Wake {
    Readable(io::Result<()>),
    Kick(Kick),
    TimedOut,
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<W: Host, T: Transport + Park> Conn<'_, W, T> {
    /// How long the wait for the next request may last: a new connection must start its
    /// first request within the header timeout; a persistent one gets the advertised idle
    /// timeout plus the grace period.
    pub(super) fn idle_timeout(&self) -> std::time::Duration {
        let cfg = self.w.config();
        if self.served == 0 {
            cfg.header_timeout
        } else if cfg.idle_timeout.is_zero() {
            cfg.idle_timeout
        } else {
            cfg.idle_timeout + cfg.idle_grace
        }
    }

    /// When this idle wait hands the connection to the park, if it may.
    fn park_at(&self) -> Option<Instant> {
        if self.served == 0 {
            return None;
        }
        let at = self.idle_since + self.w.park_after()?;
        self.idle_deadline.is_none_or(|d| at < d).then_some(at)
    }

    /// Waits, holding no buffer, until the next request starts to arrive (or, when `park`
    /// allows it and the connection stays idle for `park_after`, until it parks).
    pub(super) async fn wait_for_request(&mut self, park: bool) -> Result<(), Outcome> {
        let park_at = park.then(|| self.park_at()).flatten();
        let mut until = earliest(self.idle_deadline, park_at);
        // Set while draining: when this connection has been idle for the minimum age.
        let mut drain_at = None;
        loop {
            if let Some(d) = until {
                self.timer.arm(d);
            }
            let (w, key, stream, timer) = (self.w, self.key, &self.stream, &mut self.timer);
            let event = poll_fn(|cx| {
                if let Poll::Ready(r) = stream.poll_read_ready(cx) {
                    return Poll::Ready(Wake::Readable(r));
                }
                if let Poll::Ready(k) = w.poll_kick(key, cx) {
                    return Poll::Ready(Wake::Kick(k));
                }
                match until {
                    Some(d) => timer.poll_expired(d, cx).map(|()| Wake::TimedOut),
                    None => Poll::Pending,
                }
            })
            .await;
            match event {
                Wake::Readable(Ok(())) => {
                    // Readiness can be stale (a new socket is reported readable before any
                    // byte): only bytes make the connection active. This read is the one
                    // the head would start with, so it costs no extra system call.
                    self.bufs();
                    let Some(b) = self.bufs.as_mut() else {
                        return Err(CloseReason::IoError.into());
                    };
                    match try_read(&self.stream, &mut b.read) {
                        Ok(0) => return Err(CloseReason::PeerClosed.into()),
                        Ok(n) => {
                            (self.start, self.end) = (0, n);
                            return Ok(());
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.release(),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(keepalive::io_reason(&e).into()),
                    }
                }
                Wake::Readable(Err(e)) => return Err(keepalive::io_reason(&e).into()),
                Wake::TimedOut if drain_at.is_some_and(|at| Instant::now() >= at) => {
                    return Err(CloseReason::Shutdown.into())
                }
                // A new connection that sent nothing within the header timeout.
                Wake::TimedOut if self.served == 0 => return Err(CloseReason::HeaderTimeout.into()),
                Wake::TimedOut if self.idle_deadline.is_none_or(|d| Instant::now() < d) => {
                    // Only the park's time can have come (the drain clears it).
                    if let Some(stream) = self.stream.park() {
                        return Err(Outcome::Park(stream));
                    }
                    until = self.idle_deadline;
                }
                Wake::TimedOut => return Err(CloseReason::IdleTimeout.into()),
                Wake::Kick(Kick::Close) if self.w.draining().get() => {
                    return Err(CloseReason::Shutdown.into())
                }
                Wake::Kick(Kick::Close) => return Err(CloseReason::Evicted.into()),
                Wake::Kick(Kick::Drain) => {
                    // A request may be on its way on a connection that just went idle:
                    // give it the minimum idle age before closing.
                    let at = self.idle_since + self.w.config().min_idle_age;
                    if Instant::now() >= at {
                        return Err(CloseReason::Shutdown.into());
                    }
                    drain_at = Some(at);
                    until = earliest(self.idle_deadline, Some(at));
                }
            }
        }
    }
}
