//! What a connection runs over: a byte stream that can be read and written without waiting
//! and polled for readiness, as a non-blocking socket is.
//!
//! Plain TCP implements it today; a TLS stream and the scripted stream of the unit tests
//! implement the same trait. Readiness-based rather than `AsyncRead`/`AsyncWrite`: the
//! connection reads straight into its pooled buffer and never holds a pending read future
//! across an idle wait, which keeps an idle connection small. Every method takes `&self`,
//! because the body reader and the response of one exchange use the stream side by side.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;

thread_local! {
    /// Bytes read and written by the sockets of this thread since it started. A worker owns
    /// its thread, so these are its connections' traffic, counted in the one place every
    /// byte passes; the worker publishes them with its other counters ([`traffic`]).
    static TRAFFIC: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Bytes read and written by this thread's sockets so far.
pub(crate) fn traffic() -> (u64, u64) {
    TRAFFIC.with(Cell::get)
}

#[inline(always)]
fn count(result: io::Result<usize>, read: bool) -> io::Result<usize> {
    if let Ok(n) = result {
        TRAFFIC.with(|t| {
            let (r, w) = t.get();
            t.set(if read {
                (r + n as u64, w)
            } else {
                (r, w + n as u64)
            });
        });
    }
    result
}

/// A non-blocking byte stream under one connection.
pub trait Transport {
    /// Reads what is available into `buf` without waiting: `Ok(0)` at the end of the
    /// stream, `WouldBlock` when nothing is available yet. A `WouldBlock` clears the read
    /// readiness, so that [`Transport::poll_read_ready`] then waits for new input (as
    /// tokio's sockets do); otherwise a reader would poll in a loop.
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

    /// Ready once the transport's own handshake is done (TLS); plain TCP has none.
    fn poll_handshake(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Whether [`Transport::poll_handshake`] has work to do.
    fn handshaking(&self) -> bool {
        false
    }

    /// Whether the completed handshake resumed an earlier session (TLS).
    fn resumed(&self) -> bool {
        false
    }

    /// Whether the transport holds bytes it accepted that are not on the socket yet (TLS
    /// records encrypted after the socket filled; plain TCP holds none). Such bytes move
    /// on while [`Transport::poll_write_ready`] is polled.
    fn holds_unsent(&self) -> bool {
        false
    }

    /// Queues the transport's own end-of-stream message (TLS `close_notify`), which
    /// [`Transport::holds_unsent`] then reports until it is on the socket; false when it
    /// has none (plain TCP).
    fn close_notify(&self) -> bool {
        false
    }

    /// Ends the sending side (TCP `shutdown(SHUT_WR)`; TLS queues `close_notify` first and
    /// sends as much of it as the socket takes now).
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

    /// Holds back partial segments while `on` (TCP_CORK), so that a head and the file
    /// bytes that follow it leave together; false when the transport cannot.
    fn set_cork(&self, _on: bool) -> bool {
        false
    }
}

impl Transport for TcpStream {
    #[inline]
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        count(TcpStream::try_read(self, buf), true)
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
        count(TcpStream::try_write(self, buf), false)
    }

    #[inline]
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        count(TcpStream::try_write_vectored(self, bufs), false)
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
        Some(count(result, false))
    }

    fn set_cork(&self, on: bool) -> bool {
        socket2::SockRef::from(self).set_cork(on).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A connected pair over loopback: the server side as tokio's stream, the client side
    /// blocking.
    async fn pair() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (TcpStream::from_std(server).unwrap(), client)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn tcp_sends_a_file_range_without_copying() {
        let path = std::env::temp_dir().join(format!("tether-sendfile-{}", std::process::id()));
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&content)
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let (offset, len) = (1_000usize, 250_000usize);
        runtime().block_on(async {
            let (server, mut client) = pair().await;
            let reader = std::thread::spawn(move || {
                let mut got = vec![0; len];
                client.read_exact(&mut got).unwrap();
                got
            });
            let mut sent = 0;
            while sent < len {
                match Transport::sendfile(&server, &file, (offset + sent) as u64, len - sent) {
                    Some(Ok(n)) => sent += n,
                    Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        server.writable().await.unwrap()
                    }
                    other => panic!("sendfile: {other:?}"),
                }
            }
            assert_eq!(reader.join().unwrap(), content[offset..offset + len]);
        });
        std::fs::remove_file(&path).unwrap();
    }

    /// Waits for input on `stream` and reads it into `buf`.
    async fn read_when_ready(stream: &TcpStream, buf: &mut [u8]) -> usize {
        loop {
            std::future::poll_fn(|cx| Transport::poll_read_ready(stream, cx))
                .await
                .unwrap();
            match Transport::try_read(stream, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => break r.unwrap(),
            }
        }
    }

    #[test]
    fn shutdown_ends_the_sending_side_only() {
        runtime().block_on(async {
            let (server, mut client) = pair().await;
            server.writable().await.unwrap();
            Transport::try_write(&server, b"last").unwrap();
            server.shutdown_write().unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"last");
            client.write_all(b"x").unwrap();
            // The receiving side still works: the client's byte arrives.
            let mut buf = [0u8; 4];
            let n = read_when_ready(&server, &mut buf).await;
            assert_eq!(&buf[..n], b"x");
        });
    }

    #[test]
    fn tcp_corks_and_uncorks_and_counts_its_traffic() {
        runtime().block_on(async {
            let (server, mut client) = pair().await;
            let cork = || socket2::SockRef::from(&server).cork().unwrap();
            assert!(!cork());
            assert!(Transport::set_cork(&server, true));
            assert!(cork());
            assert!(Transport::set_cork(&server, false));
            assert!(!cork());
            // This thread's sockets count what they write and read.
            let (read, written) = traffic();
            server.writable().await.unwrap();
            assert_eq!(Transport::try_write(&server, b"12345").unwrap(), 5);
            let mut got = [0u8; 5];
            client.read_exact(&mut got).unwrap();
            client.write_all(b"abc").unwrap();
            let mut buf = [0u8; 8];
            let n = read_when_ready(&server, &mut buf).await;
            assert_eq!(n, 3);
            assert_eq!(traffic(), (read + 3, written + 5));
        });
    }
}
