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

    fn close_notify(&self) -> bool {
        each!(self, s => Transport::close_notify(s))
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
}

/// What an idle connection's stream leaves to the park: a duplicate of its socket (which
/// the park watches; the task's registration goes with the task) and, over TLS, the
/// session, so that the connection resumes where it was.
pub(crate) struct ParkedStream {
    pub socket: std::net::TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::server::UnbufferedServerConnection>>,
}

impl ParkedStream {
    /// The stream again, its socket back in the runtime (on the worker's thread).
    ///
    /// # Errors
    /// The runtime refused the socket.
    pub(crate) fn resume(self) -> io::Result<Stream> {
        let tcp = TcpStream::from_std(self.socket)?;
        #[cfg(feature = "tls")]
        if let Some(session) = self.tls {
            return Ok(Stream::Tls(Box::new(TlsStream::resume(tcp, session))));
        }
        Ok(Stream::Tcp(tcp))
    }
}

/// A stream an idle connection can leave to the park.
pub(crate) trait Park {
    /// What the park keeps; `None` when the stream cannot wait without its task now.
    fn park(&self) -> Option<ParkedStream>;
}

impl Park for Stream {
    fn park(&self) -> Option<ParkedStream> {
        match self {
            Stream::Tcp(tcp) => {
                use std::os::fd::AsFd;
                let fd = tcp.as_fd().try_clone_to_owned().ok()?;
                Some(ParkedStream {
                    socket: std::net::TcpStream::from(fd),
                    #[cfg(feature = "tls")]
                    tls: None,
                })
            }
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => {
                let (socket, session) = tls.park()?;
                Some(ParkedStream {
                    socket,
                    tls: Some(session),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn tcp_parks_a_duplicate_of_its_socket_and_resumes_from_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            let server = Stream::Tcp(TcpStream::from_std(server).unwrap());
            let parked = server.park().expect("a duplicate descriptor");
            drop(server);
            // The connection lives on in the duplicate.
            let resumed = parked.resume().unwrap();
            client.write_all(b"ping").unwrap();
            let mut got = [0u8; 4];
            loop {
                std::future::poll_fn(|cx| resumed.poll_read_ready(cx))
                    .await
                    .unwrap();
                match Transport::try_read(&resumed, &mut got) {
                    Ok(n) => {
                        assert_eq!(&got[..n], b"ping");
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(Transport::try_write(&resumed, b"pong").unwrap(), 4);
            client.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"pong");
        });
    }
}
