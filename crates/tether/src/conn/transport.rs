//! What a connection runs over: a byte stream that can be read and written without waiting
//! and polled for readiness, as a non-blocking socket is.
//!
//! Plain TCP implements it today; a TLS stream and the scripted stream of the unit tests
//! implement the same trait. Readiness-based rather than `AsyncRead`/`AsyncWrite`: the
//! connection reads straight into its pooled buffer and never holds a pending read future
//! across an idle wait, which keeps an idle connection small. Every method takes `&self`,
//! because the body reader and the response of one exchange use the stream side by side.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// A non-blocking byte stream under one connection.
pub trait Transport {
    /// Reads what is available into `buf` without waiting: `Ok(0)` at the end of the
    /// stream, `WouldBlock` when nothing is available yet.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Ready when a read may make progress (data, end of stream or an error).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Forgets the read readiness after a short read drained the stream, so that the next
    /// wait learns of new data from the reactor rather than from a read that fails.
    fn clear_read_ready(&self) {}

    /// Writes what the stream takes now; `WouldBlock` when it takes nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;

    /// Writes what the stream takes now from several buffers, in order.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Ready when a write may make progress.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Ends the sending side (TCP `shutdown(SHUT_WR)`; TLS adds `close_notify` first).
    fn shutdown_write(&self) -> io::Result<()>;

    /// Sends up to `len` bytes of `file` from `offset` without copying them through user
    /// space, when the transport can (`sendfile(2)` on plain TCP). `None` means it cannot,
    /// and the caller writes buffered bytes instead; `Some(Err(WouldBlock))` means it can
    /// but the socket is full.
    fn sendfile(
        &self,
        _file: &std::fs::File,
        _offset: u64,
        _len: usize,
    ) -> Option<io::Result<usize>> {
        None
    }

    /// A duplicate of the underlying socket, so that an idle connection can wait without
    /// its task (parking); `None` when the transport cannot be resumed from a bare socket.
    fn park_socket(&self) -> Option<std::net::TcpStream> {
        None
    }
}

impl Transport for TcpStream {
    #[inline]
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }

    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    #[inline]
    fn clear_read_ready(&self) {
        let _ = self.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }

    #[inline]
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }

    #[inline]
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }

    fn sendfile(&self, file: &std::fs::File, offset: u64, len: usize) -> Option<io::Result<usize>> {
        use std::os::fd::AsRawFd;
        let Ok(mut off) = libc::off_t::try_from(offset) else {
            return Some(Err(io::ErrorKind::InvalidInput.into()));
        };
        let result = self.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (the file and
            // the stream are borrowed), and `off` is a valid, initialised offset the kernel
            // updates in place.
            let n = unsafe { libc::sendfile(self.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        Some(result)
    }

    fn park_socket(&self) -> Option<std::net::TcpStream> {
        use std::os::fd::AsFd;
        let fd = self.as_fd().try_clone_to_owned().ok()?;
        Some(std::net::TcpStream::from(fd))
    }
}
