//! The stream a connection slot talks over: TCP, or TLS on TCP.
//!
//! One type for both, so that the slot's loop is compiled once and the plain path keeps the
//! shape it was tuned to; each call is one predictable branch.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::tls::TlsStream;

/// A connection's stream.
pub(crate) enum Stream {
    Tcp(TcpStream),
    /// Boxed: rustls's state is large, and every slot holds an `Option<Stream>`.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Reads what has arrived (decrypted, over TLS) into `buf`: none at the end of the
    /// server's stream.
    #[inline]
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => s.poll_read(cx, buf),
        }
    }

    /// Writes what the socket takes now, without waiting (`WouldBlock` when nothing).
    #[inline]
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Tls(s) => s.try_write(buf),
        }
    }

    /// Whether written bytes are still held back from the socket (only TLS records can be).
    #[inline]
    pub fn holds_unsent(&self) -> bool {
        match self {
            Stream::Tcp(_) => false,
            Stream::Tls(s) => s.holds_unsent(),
        }
    }

    /// Writes all of `rest` (and sends what was held back), waiting on the socket as needed.
    pub async fn write_all(&mut self, rest: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(rest).await,
            Stream::Tls(s) => s.write_all(rest).await,
        }
    }

    /// Forgets the socket's read readiness after a read that drained it, sparing the next
    /// wait a read that would only say `WouldBlock`. Over TLS a short read says nothing
    /// about the socket (rustls may have held the bytes), so nothing is forgotten.
    #[inline]
    pub fn drained(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.try_io(tokio::io::Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
    }

    /// Ends the stream from the client's side: over TLS with close_notify first.
    pub fn close(self) {
        if let Stream::Tls(mut s) = self {
            s.close_notify();
        }
    }
}
