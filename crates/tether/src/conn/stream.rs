//! The stream a served connection runs over: TCP, or TLS on TCP.
//!
//! One type for both, so that the connection's code is compiled once: a second copy of
//! the state machine for TLS would change how the compiler inlines the plain path. Each
//! call is one predictable branch.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::conn::tls::TlsStream;
use crate::conn::transport::Transport;

/// A served connection's stream.
pub(crate) enum Stream {
    Tcp(TcpStream),
    /// Boxed: rustls's state is large, and every connection's future holds a `Stream`.
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream>),
}

/// Calls the same method on whichever stream it is (named through the trait: tokio's
/// inherent methods of the same names do not count the traffic).
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            #[cfg(feature = "tls")]
            Stream::Tls(b) => {
                let $s: &TlsStream = b;
                $e
            }
        }
    };
}

impl Transport for Stream {
    #[inline]
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => Transport::try_read(s, buf))
    }

    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Transport::poll_read_ready(s, cx))
    }

    #[inline]
    fn clear_read_ready(&self) {
        each!(self, s => Transport::clear_read_ready(s))
    }

    #[inline]
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => Transport::try_write(s, buf))
    }

    #[inline]
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        each!(self, s => Transport::try_write_vectored(s, bufs))
    }

    #[inline]
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Transport::poll_write_ready(s, cx))
    }

    fn poll_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Transport::poll_handshake(s, cx))
    }

    #[inline]
    fn handshaking(&self) -> bool {
        each!(self, s => Transport::handshaking(s))
    }

    fn resumed(&self) -> bool {
        each!(self, s => Transport::resumed(s))
    }

    #[inline]
    fn holds_unsent(&self) -> bool {
        each!(self, s => Transport::holds_unsent(s))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        each!(self, s => Transport::shutdown_write(s))
    }

    fn sendfile(&self, file: &std::fs::File, offset: u64, len: usize) -> Option<io::Result<usize>> {
        each!(self, s => Transport::sendfile(s, file, offset, len))
    }

    fn set_cork(&self, on: bool) -> bool {
        each!(self, s => Transport::set_cork(s, on))
    }

    fn park_socket(&self) -> Option<std::net::TcpStream> {
        each!(self, s => Transport::park_socket(s))
    }
}
