//! https: the run's rustls client configuration, and a TLS connection driven by hand over
//! the same readiness-based socket as plain TCP.
//!
//! rustls keeps the record state; this module moves ciphertext between it and the socket
//! without waiting, and waits on the socket's readiness only when rustls needs it. A write
//! is finished only once its records are on the socket: a response cannot come back to a
//! request still sitting in rustls's buffer, and nothing else would send it.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};
use rustls::{HandshakeKind, SignatureScheme};
use tokio::io::ReadBuf;
use tokio::net::TcpStream;

use crate::config::Config;

/// Which server certificates an https run accepts.
#[derive(Clone, Debug, Default)]
pub enum TlsTrust {
    /// None chosen: an https run is refused until one is (there is no built-in root list:
    /// a server under load test usually has a private or self-signed certificate).
    #[default]
    Unset,
    /// Certificates whose chain ends at one of these roots (read by [`TlsTrust::ca_file`]
    /// or [`TlsTrust::ca_pem`]), for the URL's host.
    Roots(Arc<RootCertStore>),
    /// Any certificate, for any name, but the handshake's signatures are still checked
    /// against the certificate sent, with the provider's algorithms: the server must hold
    /// the key of the certificate it presents.
    Insecure,
}

impl TlsTrust {
    /// Trusts the certificates of a PEM file (one or more `CERTIFICATE` sections; other
    /// sections, such as a key, are skipped).
    ///
    /// # Errors
    /// The file cannot be read, is not PEM, or holds no usable certificate.
    pub fn ca_file(path: &Path) -> Result<TlsTrust, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        TlsTrust::ca_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Trusts the certificates of PEM text, as [`TlsTrust::ca_file`] does.
    ///
    /// # Errors
    /// The text is not PEM, or holds no usable certificate.
    pub fn ca_pem(pem: &[u8]) -> Result<TlsTrust, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("not a PEM file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("a certificate that cannot be a root: {e}"))?;
        }
        if roots.is_empty() {
            return Err("no CERTIFICATE in it".into());
        }
        Ok(TlsTrust::Roots(Arc::new(roots)))
    }
}

/// What every TLS connection of a run shares: one client configuration (and so one session
/// store, when resumption is on) and the server's name.
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .field("resumption", &self.config.resumption)
            .finish_non_exhaustive()
    }
}

/// The ALPN protocol offered: the only one this client speaks.
const HTTP11: &[u8] = b"http/1.1";

impl TlsClient {
    /// The client for an https `config`, or `None` for http.
    ///
    /// # Errors
    /// `InvalidInput` when no trust was chosen or the host cannot be a TLS server name.
    pub fn new(config: &Config) -> io::Result<Option<TlsClient>> {
        if !config.target.tls {
            return Ok(None);
        }
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        // The provider is named, not taken from the process default, so that another crate
        // enabling a second provider cannot make this ambiguous.
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?;
        let mut tls = match &config.tls_trust {
            TlsTrust::Unset => return Err(invalid(crate::config::NO_TRUST.into())),
            TlsTrust::Roots(roots) => builder.with_root_certificates(Arc::clone(roots)),
            TlsTrust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms))),
        }
        .with_no_client_auth();
        tls.alpn_protocols = vec![HTTP11.to_vec()];
        if !config.tls_resume {
            tls.resumption = Resumption::disabled();
        }
        let name = server_name(&config.target.server_name).map_err(invalid)?;
        Ok(Some(TlsClient {
            config: Arc::new(tls),
            name,
        }))
    }

    /// TLS over a connected socket, before its handshake.
    pub fn start(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        let tls =
            ClientConnection::new(Arc::clone(&self.config), self.name.clone()).map_err(protocol)?;
        Ok(TlsStream { tcp, tls })
    }
}

/// The TLS server name of a host: a DNS name or an IP address (sent without SNI, and
/// matched against the certificate's IP addresses).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address"))
}

/// `--insecure`: any certificate chain is accepted, but the signatures that prove the server
/// holds the certificate's key are verified as usual.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A TLS protocol error as an I/O error of the connection (`InvalidData`, the rustls error
/// inside).
fn protocol(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The socket as `Read`/`Write` for rustls, never waiting: `WouldBlock` passes through (and
/// tokio clears the readiness it had, so that the next poll registers for the next event).
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A client's TLS connection over TCP.
pub(crate) struct TlsStream {
    tcp: TcpStream,
    tls: ClientConnection,
}

impl TlsStream {
    /// Sends what rustls holds for the socket, as far as the socket takes it: true when all
    /// of it went.
    fn send_pending(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut Socket(&self.tcp)) {
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
    /// the socket's stream, `WouldBlock` when it holds nothing.
    fn receive(&mut self) -> io::Result<bool> {
        if self.tls.read_tls(&mut Socket(&self.tcp))? == 0 {
            return Ok(false);
        }
        let processed = self.tls.process_new_packets().map_err(protocol);
        // An alert for an error, or a key update, goes out at once as far as the socket
        // takes it; the error (if any) is what the caller hears about.
        let sent = self.send_pending();
        processed?;
        sent.map(|_| true)
    }

    /// Drives the handshake as far as the socket allows: `Ready(Ok)` once it is complete and
    /// its last flight sent.
    ///
    /// # Errors
    /// The server's certificate refused or another TLS error (`InvalidData`, the rustls error
    /// inside), the server closing (`UnexpectedEof`), or a failed socket.
    pub fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.send_pending()? {
                ready!(self.tcp.poll_write_ready(cx))?;
                continue;
            }
            if !self.tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match self.receive() {
                Ok(true) => {}
                Ok(false) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Whether the completed handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.tls.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// Reads decrypted bytes into `buf`: none at the end of the server's stream.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.tls.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Closed without close_notify: the end of the stream all the same (HTTP's
                // framing tells a response cut short, as over TCP).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Nothing decrypted is waiting: more records from the socket. At its end the
            // reader above reports it, so the loop ends either way.
            match self.receive() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Encrypts what rustls takes of `buf` and sends what the socket takes; `WouldBlock`
    /// while earlier records are still unsent, so that nothing piles up in rustls.
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.send_pending()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        self.send_pending()?;
        if n == 0 && !buf.is_empty() {
            // rustls's buffer is empty here, so this does not happen; a zero would make
            // the caller spin.
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(n)
    }

    /// Whether records are still waiting for the socket.
    pub fn holds_unsent(&self) -> bool {
        self.tls.wants_write()
    }

    /// Writes all of `rest` and sends every record of it, waiting on the socket as needed.
    pub async fn write_all(&mut self, mut rest: &[u8]) -> io::Result<()> {
        std::future::poll_fn(|cx| loop {
            if !self.send_pending()? {
                ready!(self.tcp.poll_write_ready(cx))?;
                continue;
            }
            if rest.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let n = self.tls.writer().write(rest)?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            rest = &rest[n..];
        })
        .await
    }

    /// Says close_notify as the client closes, as far as the socket takes it now (a server
    /// may otherwise log the close as a truncation).
    pub fn close_notify(&mut self) {
        self.tls.send_close_notify();
        let _ = self.send_pending();
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::mpsc;

    use tether_test_support::tls::TestCert;

    use super::*;
    use crate::target::Target;

    /// A blocking rustls server for one connection: completes the handshake, waits for
    /// `go`, then reads up to close_notify and returns how many bytes came.
    fn server(go: mpsc::Receiver<()>) -> (std::net::SocketAddr, std::thread::JoinHandle<usize>) {
        let config = TestCert::localhost().server_config();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let peer = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().expect("accept");
            let mut tls = rustls::ServerConnection::new(config).expect("connection");
            while tls.is_handshaking() {
                tls.complete_io(&mut tcp).expect("handshake");
            }
            let _ = go.recv();
            let mut stream = rustls::StreamOwned::new(tls, tcp);
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0;
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                total += n;
            }
            total
        });
        (addr, peer)
    }

    #[test]
    fn accepted_bytes_wait_in_rustls_until_the_socket_takes_them() {
        let (go, wait) = mpsc::channel();
        let (addr, peer) = server(wait);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (sent, tls) = rt.block_on(async {
            let mut config = Config::new(Target::parse(&format!("https://{addr}/")).expect("url"));
            config.tls_trust = TlsTrust::Insecure;
            let client = TlsClient::new(&config).expect("valid").expect("https");
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let mut tls = client.start(tcp).expect("start");
            poll_fn(|cx| tls.poll_handshake(cx))
                .await
                .expect("handshake");
            assert!(!tls.resumed());
            // The server reads nothing yet: write until the socket is full.
            let chunk = vec![7u8; 1 << 16];
            let mut sent = 0;
            loop {
                match tls.try_write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            // The last accepted bytes are records the socket did not take: a write is not
            // finished until they go, which is what the slot's write waits for.
            assert!(sent > 0 && tls.holds_unsent());
            go.send(()).expect("the server waits");
            tls.write_all(&[]).await.expect("the rest goes out");
            assert!(!tls.holds_unsent());
            tls.close_notify();
            tls.write_all(&[]).await.expect("close_notify goes out");
            (sent, tls)
        });
        // The socket stays open until the server has read all: closing it with the
        // server's session tickets unread would reset the connection.
        assert_eq!(peer.join().expect("server"), sent);
        drop(tls);
    }

    #[test]
    fn ca_pem_needs_a_certificate() {
        assert!(TlsTrust::ca_pem(b"").is_err());
        assert!(TlsTrust::ca_pem(b"-----BEGIN CERTIFICATE-----\nnot base64!\n").is_err());
        let cert = TestCert::localhost();
        match TlsTrust::ca_pem(cert.cert_pem.as_bytes()) {
            Ok(TlsTrust::Roots(roots)) => assert_eq!(roots.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(server_name("127.0.0.1").is_ok() && server_name("a b").is_err());
    }
}
