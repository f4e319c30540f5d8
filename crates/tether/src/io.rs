//! Socket reads and writes with deadlines, on a shared `&TcpStream`.
//!
//! Every wait is bounded: reads by a deadline the caller picks (idle, header or body), writes
//! by the write timeout counted from the last progress.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout_at, Instant, Sleep};

/// One timer per connection, re-armed lazily: a later deadline leaves the registered timer
/// alone (when it fires early the wait re-arms it), so steady keep-alive traffic, which
/// pushes the deadline forward on every request, touches the timer wheel about once per
/// timeout period rather than once per request.
pub(crate) struct Timer {
    sleep: Pin<Box<Sleep>>,
}

impl Timer {
    pub fn new() -> Self {
        Timer {
            sleep: Box::pin(sleep_until(
                Instant::now() + Duration::from_secs(86400 * 365),
            )),
        }
    }

    /// Runs `fut` until it completes (`Some`) or `deadline` passes (`None`).
    pub async fn run<F: Future>(&mut self, deadline: Option<Instant>, fut: F) -> Option<F::Output> {
        let Some(deadline) = deadline else {
            return Some(fut.await);
        };
        tokio::pin!(fut);
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = self.sleep.as_mut() => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// Outcome of a bounded read.
pub(crate) enum Read {
    /// `n` bytes read; 0 means the peer closed its side.
    Data(usize),
    /// The deadline passed first.
    TimedOut,
}

/// Reads what is available into `buf`, waiting until `deadline` (if any) for data.
pub(crate) async fn read_some(
    stream: &TcpStream,
    buf: &mut [u8],
    timer: &mut Timer,
    deadline: Option<Instant>,
) -> io::Result<Read> {
    loop {
        match stream.try_read(buf) {
            Ok(n) => {
                if n > 0 && n < buf.len() {
                    // A short read drained the socket: forget the readiness now rather than
                    // learn it from a read that fails with EAGAIN (edge-triggered epoll
                    // reports data that arrives later as a new event).
                    let _ = stream.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                return Ok(Read::Data(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        match timer.run(deadline, stream.readable()).await {
            Some(r) => r?,
            None => return Ok(Read::TimedOut),
        }
    }
}

/// The deadline `timeout` from now, or none when the timeout is disabled (zero).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    (!timeout.is_zero()).then(|| Instant::now() + timeout)
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "write timed out")
}

/// Writes all of `bufs` (in order), failing with `TimedOut` when no byte could be written for
/// `timeout`. One `writev` per round, so a head and a body go out in one system call.
pub(crate) async fn write_all(
    stream: &TcpStream,
    bufs: &mut [&[u8]],
    timeout: Duration,
) -> io::Result<()> {
    let mut first = 0;
    while first < bufs.len() {
        if bufs[first].is_empty() {
            first += 1;
            continue;
        }
        let result = if bufs.len() - first == 1 {
            stream.try_write(bufs[first])
        } else {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = (bufs.len() - first).min(4);
            for (s, b) in slices.iter_mut().zip(&bufs[first..first + n]) {
                *s = IoSlice::new(b);
            }
            stream.try_write_vectored(&slices[..n])
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while n > 0 {
                    let take = n.min(bufs[first].len());
                    bufs[first] = &bufs[first][take..];
                    n -= take;
                    if bufs[first].is_empty() {
                        first += 1;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match deadline(timeout) {
                Some(d) => timeout_at(d, stream.writable())
                    .await
                    .map_err(|_| timed_out())??,
                None => stream.writable().await?,
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `buf` and empties it.
pub(crate) async fn flush(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let result = write_all(stream, &mut [buf.as_slice()], timeout).await;
    buf.clear();
    result
}
