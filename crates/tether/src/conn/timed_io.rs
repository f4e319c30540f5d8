//! Reads and writes on a [`Transport`] with deadlines, and the per-connection timer.
//!
//! Every wait is bounded: reads by a deadline the caller picks (idle, header or body), writes
//! by the write timeout counted from the last progress.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{sleep_until, timeout_at, Instant, Sleep};

use crate::conn::transport::Transport;

/// One timer per connection, re-armed lazily: a later deadline leaves the registered timer
/// alone (when it fires early the wait re-arms it), so steady keep-alive traffic, which
/// pushes the deadline forward on every request, touches the timer wheel about once per
/// timeout period rather than once per request.
pub(crate) struct Timer {
    /// Made at the first deadline: a connection whose requests always arrive whole, and
    /// which closes without lingering, never needs one.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The sleep holds this task's waker from a poll since it was last reset: until it
    /// fires, polling it again would only register the same waker again.
    registered: bool,
}

impl Timer {
    pub fn new() -> Self {
        Timer {
            sleep: None,
            registered: false,
        }
    }

    /// Arms the timer for `deadline` unless it already fires earlier.
    pub fn arm(&mut self, deadline: Instant) {
        match &mut self.sleep {
            Some(sleep) if sleep.deadline() > deadline => {
                sleep.as_mut().reset(deadline);
                self.registered = false;
            }
            Some(_) => {}
            None => self.sleep = Some(Box::pin(sleep_until(deadline))),
        }
    }

    /// Ready once `deadline` (armed before) has passed; an early firing re-arms the timer.
    ///
    /// A connection's timer is only ever polled from its own task, whose waker does not
    /// change: once registered, the sleep is polled again only after it fired.
    pub fn poll_expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = &mut self.sleep else {
            // Never armed: nothing to wait for.
            return Poll::Pending;
        };
        if self.registered && !sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                self.registered = true;
                return Poll::Pending;
            }
            self.registered = false;
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            sleep.as_mut().reset(deadline);
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

/// Reads what the socket holds into `buf`, without waiting.
#[inline]
pub(crate) fn try_read<T: Transport + ?Sized>(stream: &T, buf: &mut [u8]) -> io::Result<usize> {
    let n = stream.try_read(buf)?;
    if n > 0 && n < buf.len() {
        // A short read drained the socket: forget the readiness now rather than learn it
        // from a read that fails with EAGAIN (edge-triggered epoll reports data that
        // arrives later as a new event).
        stream.clear_read_ready();
    }
    Ok(n)
}

/// Reads what is available into `buf`, waiting until `deadline` (if any) for data.
pub(crate) async fn read_some<T: Transport + ?Sized>(
    stream: &T,
    buf: &mut [u8],
    timer: &mut Timer,
    deadline: Option<Instant>,
) -> io::Result<Read> {
    if let Some(d) = deadline {
        timer.arm(d);
    }
    // One poll function rather than nested futures: this wait sits inside the connection's
    // future (reading a head, a body, lingering), whose size every connection pays.
    poll_fn(|cx| loop {
        match try_read(stream, buf) {
            Ok(n) => return Poll::Ready(Ok(Read::Data(n))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
        // Readiness may be stale: the read above then failed and cleared it, so this polls
        // again at most once before it registers the waker.
        match stream.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => continue,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        return match deadline {
            Some(d) => timer.poll_expired(d, cx).map(|()| Ok(Read::TimedOut)),
            None => Poll::Pending,
        };
    })
    .await
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
pub(crate) async fn write_all<T: Transport + ?Sized>(
    stream: &T,
    bufs: &mut [&[u8]],
    timeout: Duration,
) -> io::Result<()> {
    // Done when every byte is on the socket, including those the transport holds (TLS).
    while write_some(stream, bufs)? || stream.holds_unsent() {
        // The send buffer is full, which is rare: the wait lives in its own allocation so
        // that every connection's future does not carry a timer for it.
        Box::pin(writable(stream, timeout)).await?;
    }
    Ok(())
}

/// Most bytes one `sendfile(2)` call may send: a fast reader on loopback could otherwise
/// keep the worker from its other connections for a whole large file.
const FILE_CHUNK: u64 = 2 << 20;

/// Bytes read from a file per write on a transport without a zero-copy path.
const COPY_CHUNK: usize = 64 << 10;

/// Sends `len` bytes of `file` from `offset`: by the transport's zero-copy path when it has
/// one, else read into a buffer and written. Each wait for the client is bounded by
/// `timeout` from the last progress; the task yields between pieces when its budget is
/// spent, so that the worker's other connections go on.
///
/// # Errors
/// A failed write or read; `UnexpectedEof` when the file ends before `offset + len`.
pub(crate) async fn send_file<T: Transport + ?Sized>(
    stream: &T,
    file: &std::fs::File,
    mut offset: u64,
    len: u64,
    timeout: Duration,
) -> io::Result<()> {
    let end = offset.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
    while offset < end {
        let n = usize::try_from((end - offset).min(FILE_CHUNK)).unwrap_or(usize::MAX);
        match stream.sendfile(file, offset, n) {
            None => return copy_file(stream, file, offset, end, timeout).await,
            Some(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Some(Ok(sent)) => {
                offset += sent as u64;
                tokio::task::consume_budget().await;
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                Box::pin(writable(stream, timeout)).await?;
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(())
}

/// The buffered path of [`send_file`], for transports that must see the bytes (TLS).
async fn copy_file<T: Transport + ?Sized>(
    stream: &T,
    file: &std::fs::File,
    mut offset: u64,
    end: u64,
    timeout: Duration,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; COPY_CHUNK.min(usize::try_from(end - offset).unwrap_or(COPY_CHUNK))];
    while offset < end {
        let want = usize::try_from(end - offset).map_or(buf.len(), |n| n.min(buf.len()));
        let n = file.read_at(&mut buf[..want], offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        write_all(stream, &mut [&buf[..n]], timeout).await?;
        offset += n as u64;
        tokio::task::consume_budget().await;
    }
    Ok(())
}

/// Writes what the socket takes now; true when it would block with data left.
fn write_some<T: Transport + ?Sized>(stream: &T, bufs: &mut [&[u8]]) -> io::Result<bool> {
    loop {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Ok(false);
        };
        let rest = &bufs[first..];
        let result = if rest.len() == 1 {
            stream.try_write(rest[0])
        } else {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = rest.len().min(4);
            for (s, b) in slices.iter_mut().zip(rest) {
                *s = IoSlice::new(b);
            }
            stream.try_write_vectored(&slices[..n])
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                for b in bufs[first..].iter_mut() {
                    let take = n.min(b.len());
                    *b = &b[take..];
                    n -= take;
                    if n == 0 {
                        break;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

async fn writable<T: Transport + ?Sized>(stream: &T, timeout: Duration) -> io::Result<()> {
    let ready = poll_fn(|cx| stream.poll_write_ready(cx));
    match deadline(timeout) {
        Some(d) => timeout_at(d, ready).await.map_err(|_| timed_out())?,
        None => ready.await,
    }
}

/// Writes `buf` and empties it.
pub(crate) async fn flush<T: Transport + ?Sized>(
    stream: &T,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    // Nearly always the socket takes the whole buffer at once: one send, no write loop.
    let result = match stream.try_write(buf) {
        Ok(n) if n == buf.len() && !stream.holds_unsent() => Ok(()),
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        Ok(n) => write_all(stream, &mut [&buf[n..]], timeout).await,
        Err(e) => match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {
                write_all(stream, &mut [buf.as_slice()], timeout).await
            }
            _ => Err(e),
        },
    };
    buf.clear();
    result
}
