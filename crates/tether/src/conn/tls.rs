//! TLS over a TCP socket as a [`Transport`]: rustls's server connection driven by the same
//! readiness as plain TCP, so that the connection's state machine, timeouts and limits are
//! the same code over both.
//!
//! rustls keeps the record state; this module moves ciphertext between it and the socket
//! without waiting. A read decrypts what the socket holds; a write encrypts into rustls's
//! buffer and sends what the socket takes, and reports `WouldBlock` while earlier
//! ciphertext is still unsent, so that the caller's readiness wait covers it and nothing
//! accepted is left behind in a buffer. Files go through the copy path: the bytes must be
//! encrypted, so there is no `sendfile`. An idle connection parks with its session, taken
//! out of the stream, and resumes with it.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::{ServerConfig, ServerConnection};
use tokio::net::TcpStream;

use crate::conn::transport::Transport;
use crate::lifecycle::HandshakeFailure;

/// A TCP connection with TLS on top.
pub struct TlsStream {
    tcp: TcpStream,
    /// The session; taken only when the connection parks, after which the stream is
    /// dropped unused.
    tls: RefCell<Option<Box<ServerConnection>>>,
}

/// The socket as `Read`/`Write` for rustls, never waiting: `WouldBlock` passes through.
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Transport::try_read(self.0, buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Transport::try_write(self.0, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Transport::try_write_vectored(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS protocol error as an I/O error of the connection.
fn protocol(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// The server side of a TLS connection over `tcp`, before its handshake.
    ///
    /// # Errors
    /// What rustls refuses in `config` for a new connection.
    pub fn new(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let tls = ServerConnection::new(config).map_err(protocol)?;
        Ok(TlsStream::resume(tcp, Box::new(tls)))
    }

    /// A stream over `tcp` continuing `session`, as [`TlsStream::park`] left it.
    pub(crate) fn resume(tcp: TcpStream, session: Box<ServerConnection>) -> TlsStream {
        TlsStream {
            tcp,
            tls: RefCell::new(Some(session)),
        }
    }

    /// Hands over a duplicate of the socket and the session, so that the idle connection
    /// waits without its task; `None` while records wait to be sent (it cannot wait for
    /// input alone) or when the socket cannot be duplicated.
    pub(crate) fn park(&self) -> Option<(std::net::TcpStream, Box<ServerConnection>)> {
        use std::os::fd::AsFd;
        if self.tls().wants_write() {
            return None;
        }
        let fd = self.tcp.as_fd().try_clone_to_owned().ok()?;
        let session = self.tls.borrow_mut().take()?;
        Some((std::net::TcpStream::from(fd), session))
    }

    /// The session. Every use of the stream comes before a park takes it.
    fn tls(&self) -> std::cell::RefMut<'_, ServerConnection> {
        std::cell::RefMut::map(self.tls.borrow_mut(), |t| {
            &mut **t.as_mut().expect("a parked stream is not used again")
        })
    }

    /// The protocol the client and the server agreed on with ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.tls().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// Sends what rustls holds for the socket, as far as it takes it: true when all of it
    /// went.
    fn send_pending(&self, tls: &mut ServerConnection) -> io::Result<bool> {
        while tls.wants_write() {
            match tls.write_tls(&mut Socket(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads what the socket holds into rustls and processes it: `Ok(false)` at the end of
    /// the socket's stream.
    fn receive(&self, tls: &mut ServerConnection) -> io::Result<bool> {
        match tls.read_tls(&mut Socket(&self.tcp)) {
            Ok(0) => Ok(false),
            Ok(_) => {
                let processed = tls.process_new_packets().map_err(protocol);
                // Alerts, tickets and key updates answer at once, as far as the socket takes.
                self.send_pending(tls)?;
                processed.map(|_| true)
            }
            Err(e) => Err(e),
        }
    }

    /// Drives the handshake as far as the socket allows: `Ready(Ok)` once it is complete
    /// and its last flight sent, `Pending` while waiting on the socket.
    ///
    /// # Errors
    /// A TLS error of the client's (its class is in the error's inner `rustls::Error`),
    /// the client closing, or a failed write.
    pub fn drive_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut tls = self.tls();
        loop {
            if !self.send_pending(&mut tls)? {
                match self.tcp.poll_write_ready(cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if !tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match self.receive(&mut tls) {
                Ok(true) => {}
                Ok(false) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.tcp.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The class of a failed handshake's error, as [`TlsStream::drive_handshake`] gave it.
pub(crate) fn classify(e: &io::Error) -> HandshakeFailure {
    use rustls::{Error, InvalidMessage};
    let tls = e.get_ref().and_then(|e| e.downcast_ref::<Error>());
    match tls {
        Some(Error::InvalidMessage(InvalidMessage::InvalidContentType))
        | Some(Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion)) => {
            HandshakeFailure::NotTls
        }
        Some(Error::NoApplicationProtocol) | Some(Error::PeerIncompatible(_)) => {
            HandshakeFailure::NoCommonProtocol
        }
        Some(Error::AlertReceived(_)) => HandshakeFailure::ClientAlert,
        Some(_) => HandshakeFailure::Malformed,
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => HandshakeFailure::Closed,
            _ => HandshakeFailure::Io,
        },
    }
}

impl Transport for TlsStream {
    fn poll_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.drive_handshake(cx)
    }

    fn handshaking(&self) -> bool {
        self.tls().is_handshaking()
    }

    fn resumed(&self) -> bool {
        matches!(
            self.tls().handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        )
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.tls();
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The client closed without close_notify: the end of its stream all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // A connection that failed stays failed: its error, not a wait for more input
            // (which readiness would report at once, again and again).
            tls.process_new_packets().map_err(protocol)?;
            if !self.receive(&mut tls)? {
                return Ok(0);
            }
        }
    }

    // No `clear_read_ready`: a short read of plaintext does not mean the socket is empty
    // (rustls returns once it has a whole record, and the next may be in the socket
    // already), so the readiness is cleared only by a socket read that would block.

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Plaintext rustls already holds is ready without the socket.
        let buffered = self
            .tls()
            .process_new_packets()
            .map(|state| state.plaintext_bytes_to_read() > 0 || state.peer_has_closed());
        match buffered {
            Ok(true) | Err(_) => Poll::Ready(Ok(())),
            Ok(false) => self.tcp.poll_read_ready(cx),
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut tls = self.tls();
        // Earlier ciphertext goes first; while it cannot, nothing more is taken.
        if !self.send_pending(&mut tls)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write(buf)?;
        self.send_pending(&mut tls)?;
        Ok(n)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut tls = self.tls();
        if !self.send_pending(&mut tls)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = tls.writer().write_vectored(bufs)?;
        self.send_pending(&mut tls)?;
        Ok(n)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Ciphertext waiting for the socket moves first: ready means all of it is sent.
        loop {
            if self.send_pending(&mut self.tls())? {
                return Poll::Ready(Ok(()));
            }
            match self.tcp.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
    }

    fn holds_unsent(&self) -> bool {
        self.tls().wants_write()
    }

    fn close_notify(&self) -> bool {
        self.tls().send_close_notify();
        true
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let mut tls = self.tls();
        tls.send_close_notify();
        // As much of close_notify as the socket takes now; a close follows either way.
        let _ = self.send_pending(&mut tls);
        Transport::shutdown_write(&self.tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::io::{Read, Write};

    /// A self-signed certificate for `localhost`, and the server and client configurations
    /// that use it.
    fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let mut server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let mut client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        (Arc::new(server), Arc::new(client))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn read_some(s: &TlsStream, buf: &mut [u8]) -> usize {
        loop {
            poll_fn(|cx| s.poll_read_ready(cx)).await.unwrap();
            match s.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => break r.unwrap(),
            }
        }
    }

    async fn write_all(s: &TlsStream, mut data: &[u8]) {
        while !data.is_empty() {
            match s.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll_fn(|cx| s.poll_write_ready(cx)).await.unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        poll_fn(|cx| s.poll_write_ready(cx)).await.unwrap();
        assert!(!s.holds_unsent());
    }

    /// A blocking rustls client on its own thread: sends `requests`, each answered by a
    /// line, and returns what it read.
    fn client(
        addr: std::net::SocketAddr,
        config: Arc<rustls::ClientConfig>,
        requests: Vec<Vec<u8>>,
        expect: usize,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(config, name).unwrap();
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut got = Vec::new();
            for r in requests {
                tls.write_all(&r).unwrap();
            }
            let mut buf = [0u8; 65536];
            while got.len() < expect {
                let n = tls.read(&mut buf).unwrap();
                assert!(n > 0, "closed after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            got
        })
    }

    #[test]
    fn a_handshake_then_bytes_both_ways_and_a_large_answer() {
        let (server_cfg, client_cfg) = configs();
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let big = 3 << 20;
            let peer = client(addr, client_cfg, vec![b"ping".to_vec()], 4 + big);
            let (tcp, _) = listener.accept().await.unwrap();
            let s = TlsStream::new(tcp, server_cfg).unwrap();
            poll_fn(|cx| s.drive_handshake(cx)).await.unwrap();
            assert_eq!(s.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
            let mut buf = [0u8; 16];
            let n = read_some(&s, &mut buf).await;
            assert_eq!(&buf[..n], b"ping");
            write_all(&s, b"pong").await;
            // Far more than the socket buffers: writes wait on readiness, nothing is lost.
            let body: Vec<u8> = (0..big).map(|i| (i % 251) as u8).collect();
            write_all(&s, &body).await;
            let got = tokio::task::spawn_blocking(move || peer.join().unwrap())
                .await
                .unwrap();
            assert_eq!(&got[..4], b"pong");
            assert!(got[4..] == body[..], "the large answer differs");
        });
    }

    #[test]
    fn a_returning_client_resumes_its_session() {
        let (server_cfg, client_cfg) = configs();
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            for visit in 0..2 {
                let peer = client(addr, client_cfg.clone(), vec![b"hi".to_vec()], 2);
                let (tcp, _) = listener.accept().await.unwrap();
                let s = TlsStream::new(tcp, server_cfg.clone()).unwrap();
                poll_fn(|cx| s.drive_handshake(cx)).await.unwrap();
                let mut buf = [0u8; 2];
                assert_eq!(read_some(&s, &mut buf).await, 2);
                write_all(&s, b"ok").await;
                tokio::task::spawn_blocking(move || peer.join().unwrap())
                    .await
                    .unwrap();
                assert_eq!(Transport::resumed(&s), visit == 1, "visit {visit}");
            }
        });
    }

    #[test]
    fn plain_http_on_the_tls_port_fails_the_handshake() {
        let (server_cfg, _) = configs();
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || {
                let mut tcp = std::net::TcpStream::connect(addr).unwrap();
                tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut rest = Vec::new();
                let _ = tcp.read_to_end(&mut rest);
                rest
            });
            let (tcp, _) = listener.accept().await.unwrap();
            let s = TlsStream::new(tcp, server_cfg).unwrap();
            let e = poll_fn(|cx| s.drive_handshake(cx)).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            drop(s);
            let rest = tokio::task::spawn_blocking(move || peer.join().unwrap())
                .await
                .unwrap();
            // No HTTP answer: at most a TLS alert record (content type 21).
            assert!(rest.is_empty() || rest[0] == 21, "{rest:?}");
        });
    }

    #[test]
    fn a_client_that_closes_mid_handshake_is_an_end_of_stream() {
        let (server_cfg, _) = configs();
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || drop(std::net::TcpStream::connect(addr)));
            let (tcp, _) = listener.accept().await.unwrap();
            let s = TlsStream::new(tcp, server_cfg).unwrap();
            let e = poll_fn(|cx| s.drive_handshake(cx)).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            peer.join().unwrap();
        });
    }
}
