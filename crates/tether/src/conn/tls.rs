//! TLS over a TCP socket as a [`Transport`]: rustls's server connection driven by the same
//! readiness as plain TCP, so that the connection's state machine, timeouts and limits are
//! the same code over both.
//!
//! rustls's unbuffered API keeps the protocol state; this module owns the bytes. Ciphertext
//! is read from the socket into a buffer that rustls decrypts from, and encrypted into a
//! buffer this module sends: both are taken from a per-thread pool when needed and given
//! back as soon as they are empty, so an idle connection holds no buffer (half the memory
//! of rustls's buffered connection, which keeps its own). rustls 0.23 still allocates once
//! per record each way: a received record's plaintext is copied into a vector of its own,
//! and a record is encrypted into one before it is copied into this module's buffer.
//!
//! A write reports `WouldBlock` while earlier ciphertext is unsent, so that the caller's
//! readiness wait covers it and nothing accepted is left behind. Files go through the copy
//! path: the bytes must be encrypted, so there is no `sendfile`. An idle connection parks
//! with its session, taken out of the stream, and resumes with it.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;
use tokio::net::TcpStream;

use crate::conn::transport::Transport;
use crate::lifecycle::HandshakeFailure;

/// Bytes of one buffer: a whole record on the wire (16 KiB of data and its overhead).
const BUF: usize = 16 * 1024 + 2048 + 512;

/// Most plaintext encrypted at once: one record's worth.
const MAX_PLAIN: usize = 16 * 1024;

/// Room kept in the output buffer for a record's header, tag and padding.
const OVERHEAD: usize = 256;

/// Spare buffers kept per thread (beyond them, empty buffers are freed).
const SPARE: usize = 64;

thread_local! {
    /// This worker's spare buffers, shared by its TLS connections.
    static SPARES: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take_buf() -> Box<[u8]> {
    SPARES
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; BUF].into_boxed_slice())
}

fn give_buf(b: Box<[u8]>) {
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE && b.len() == BUF {
            s.push(b);
        }
    });
}

/// A TCP connection with TLS on top.
pub struct TlsStream {
    tcp: TcpStream,
    io: RefCell<Io>,
}

/// What a TLS connection holds besides its socket.
struct Io {
    /// The session; taken only when the connection parks, after which the stream is
    /// dropped unused.
    conn: Option<Box<UnbufferedServerConnection>>,
    /// Ciphertext read: `inc[start..end]` is not yet processed.
    inc: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    /// Ciphertext to send: `out[sent..filled]`.
    out: Option<Box<[u8]>>,
    sent: usize,
    filled: usize,
    /// Plaintext decrypted but not yet read (records that did not fit the reader's buffer,
    /// or that came while writing): `plain[taken..]`.
    plain: Vec<u8>,
    taken: usize,
    peer_closed: bool,
    notified: bool,
    /// The last read of the socket took less than it could: the socket was empty then.
    drained: bool,
    /// Set at a protocol error: rustls then only gives out the alert it queued, and no
    /// input is processed again.
    failed: bool,
}

/// What to do when rustls allows application data.
enum Want<'a> {
    /// Decrypt into this buffer (what does not fit goes to `plain`).
    Read(&'a mut [u8]),
    /// Encrypt (a prefix of) these bytes.
    Write(&'a [u8]),
    /// Encrypt close_notify.
    CloseNotify,
    /// Only move the protocol on (the handshake, tickets, alerts).
    Nothing,
}

/// Where [`Io::run`] stopped.
enum Stop {
    /// It needs more ciphertext from the socket.
    NeedInput,
    /// Application data may be written: this many bytes were (of `Want::Write`).
    Wrote(usize),
    /// Both sides have closed.
    Closed,
}

/// A TLS protocol error as an I/O error of the connection.
fn protocol(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Whether `b` begins with a whole TLS record.
fn has_record(b: &[u8]) -> bool {
    b.len() >= 5 && b.len() >= 5 + usize::from(u16::from_be_bytes([b[3], b[4]]))
}

impl Io {
    fn conn(&mut self) -> &mut UnbufferedServerConnection {
        self.conn
            .as_mut()
            .expect("a parked stream is not used again")
    }

    /// Whether a read can make progress without the socket: plaintext or a whole record
    /// held, or the client's close_notify seen.
    fn readable_without_socket(&self) -> bool {
        let record = self
            .inc
            .as_ref()
            .is_some_and(|b| has_record(&b[self.start..self.end]));
        self.held_plain() > 0 || self.peer_closed || record
    }

    fn held_plain(&self) -> usize {
        self.plain.len() - self.taken
    }

    /// Copies held plaintext into `buf`.
    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let n = self.held_plain().min(buf.len());
        buf[..n].copy_from_slice(&self.plain[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.plain.len() {
            self.plain.clear();
            self.taken = 0;
        }
        n
    }

    /// Runs rustls over the ciphertext held until it needs the socket or, when it allows
    /// application data, does what `want` says. Handshake and post-handshake messages
    /// (tickets, alerts) go into `out`; records read go into the reader's buffer, then
    /// into `plain`. Returns the bytes decrypted into a `Want::Read` buffer too.
    fn run(&mut self, mut want: Want<'_>) -> io::Result<(Stop, usize)> {
        let mut delivered = 0;
        loop {
            let Io {
                conn,
                inc,
                start,
                end,
                out,
                filled,
                plain,
                peer_closed,
                notified,
                failed,
                ..
            } = self;
            let conn = conn.as_mut().expect("a parked stream is not used again");
            let incoming: &mut [u8] = match inc {
                Some(b) if !*failed => &mut b[*start..*end],
                _ => &mut [],
            };
            let UnbufferedStatus { discard, state } = conn.process_tls_records(incoming);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    *failed = true;
                    return Err(protocol(e));
                }
            };
            let stop = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let payload = match record {
                            Ok(record) => record.payload,
                            Err(e) => {
                                *failed = true;
                                return Err(protocol(e));
                            }
                        };
                        let into = match &mut want {
                            // In order: held plaintext goes first, so records go straight
                            // to the reader only when none is held.
                            Want::Read(buf) if plain.is_empty() => {
                                let n = payload.len().min(buf.len() - delivered);
                                buf[delivered..delivered + n].copy_from_slice(&payload[..n]);
                                delivered += n;
                                n
                            }
                            _ => 0,
                        };
                        plain.extend_from_slice(&payload[into..]);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut message) => {
                    let buf = out.get_or_insert_with(take_buf);
                    match message.encode(&mut buf[*filled..]) {
                        Ok(n) => *filled += n,
                        Err(EncodeError::InsufficientSize(_)) => {
                            return Err(io::Error::other("a TLS handshake message too large"))
                        }
                        Err(e) => return Err(io::Error::other(e.to_string())),
                    }
                    None
                }
                // What was encoded is in `out`, which every path sends before anything new.
                ConnectionState::TransmitTlsData(flight) => {
                    flight.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Stop::NeedInput),
                ConnectionState::PeerClosed => {
                    *peer_closed = true;
                    None
                }
                ConnectionState::Closed => Some(Stop::Closed),
                ConnectionState::WriteTraffic(mut traffic) => match &want {
                    Want::Write(data) if !data.is_empty() => {
                        let buf = out.get_or_insert_with(take_buf);
                        let room = (buf.len() - *filled).saturating_sub(OVERHEAD);
                        let n = data.len().min(room).min(MAX_PLAIN);
                        if n == 0 {
                            Some(Stop::Wrote(0))
                        } else {
                            match traffic.encrypt(&data[..n], &mut buf[*filled..]) {
                                Ok(len) => *filled += len,
                                Err(EncryptError::InsufficientSize(e)) => {
                                    return Err(io::Error::other(format!(
                                        "TLS record of {} bytes over the buffer",
                                        e.required_size
                                    )))
                                }
                                Err(e) => return Err(io::Error::other(e.to_string())),
                            }
                            Some(Stop::Wrote(n))
                        }
                    }
                    Want::CloseNotify if !*notified => {
                        let buf = out.get_or_insert_with(take_buf);
                        if let Ok(len) = traffic.queue_close_notify(&mut buf[*filled..]) {
                            *filled += len;
                        }
                        *notified = true;
                        Some(Stop::Wrote(0))
                    }
                    _ if waits_for_input(&want) => Some(Stop::NeedInput),
                    _ => Some(Stop::Wrote(0)),
                },
                // Early data is not accepted: nothing arrives this way.
                _ => Some(Stop::NeedInput),
            };
            *start += discard;
            if *start == *end {
                (*start, *end) = (0, 0);
            }
            if let Some(stop) = stop {
                return Ok((stop, delivered));
            }
        }
    }

    /// Sends what `out` holds, as far as the socket takes it: true when all of it went.
    fn send(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while self.sent < self.filled {
            let Some(out) = &self.out else { break };
            match Transport::try_write(tcp, &out[self.sent..self.filled]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        (self.sent, self.filled) = (0, 0);
        if let Some(out) = self.out.take() {
            give_buf(out);
        }
        Ok(true)
    }

    /// Reads from the socket into `inc`: `Ok(false)` at its end.
    fn receive(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        let inc = self.inc.get_or_insert_with(take_buf);
        if self.end == inc.len() {
            // A record begun at the end of the buffer: move it to the front.
            inc.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let room = inc.len() - self.end;
        match Transport::try_read(tcp, &mut inc[self.end..]) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.end += n;
                self.drained = n < room;
                Ok(true)
            }
            Err(e) => {
                if self.start == self.end {
                    self.release_input();
                }
                Err(e)
            }
        }
    }

    fn release_input(&mut self) {
        (self.start, self.end) = (0, 0);
        if let Some(inc) = self.inc.take() {
            give_buf(inc);
        }
        if self.plain.is_empty() && self.plain.capacity() > 0 {
            self.plain = Vec::new();
        }
    }

    /// After an error, the alert rustls queued for the client, as far as the socket takes
    /// it now.
    fn send_alert(&mut self, tcp: &TcpStream) {
        let _ = self.run(Want::Nothing);
        let _ = self.send(tcp);
    }
}

/// Whether, when rustls allows application data, this want is done until more input
/// comes: a read, or only moving the protocol on.
fn waits_for_input(want: &Want<'_>) -> bool {
    matches!(want, Want::Read(_) | Want::Nothing)
}

impl TlsStream {
    /// The server side of a TLS connection over `tcp`, before its handshake.
    ///
    /// # Errors
    /// What rustls refuses in `config` for a new connection.
    pub fn new(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let conn = UnbufferedServerConnection::new(config).map_err(protocol)?;
        Ok(TlsStream::resume(tcp, Box::new(conn)))
    }

    /// A stream over `tcp` continuing `session`, as [`TlsStream::park`] left it.
    pub(crate) fn resume(tcp: TcpStream, session: Box<UnbufferedServerConnection>) -> TlsStream {
        TlsStream {
            tcp,
            io: RefCell::new(Io {
                conn: Some(session),
                inc: None,
                start: 0,
                end: 0,
                out: None,
                sent: 0,
                filled: 0,
                plain: Vec::new(),
                taken: 0,
                peer_closed: false,
                notified: false,
                drained: false,
                failed: false,
            }),
        }
    }

    /// Hands over a duplicate of the socket and the session, so that the idle connection
    /// waits without its task; `None` while it holds bytes (unsent, unread or a partial
    /// record), or when the socket cannot be duplicated.
    pub(crate) fn park(&self) -> Option<(std::net::TcpStream, Box<UnbufferedServerConnection>)> {
        use std::os::fd::AsFd;
        let mut io = self.io.borrow_mut();
        if io.filled > io.sent || io.held_plain() > 0 || io.end > io.start || io.peer_closed {
            return None;
        }
        let fd = self.tcp.as_fd().try_clone_to_owned().ok()?;
        let session = io.conn.take()?;
        io.release_input();
        Some((std::net::TcpStream::from(fd), session))
    }

    /// The protocol the client and the server agreed on with ALPN, if any (the tests'
    /// check that the handshake offered `http/1.1`).
    #[cfg(test)]
    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.io
            .borrow_mut()
            .conn()
            .alpn_protocol()
            .map(<[u8]>::to_vec)
    }

    /// Drives the handshake as far as the socket allows: `Ready(Ok)` once it is complete
    /// and its last flight sent, `Pending` while waiting on the socket.
    ///
    /// # Errors
    /// A TLS error of the client's (its class is in the error's inner `rustls::Error`),
    /// the client closing, or a failed write.
    pub fn drive_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut io = self.io.borrow_mut();
        loop {
            if !io.send(&self.tcp)? {
                match self.tcp.poll_write_ready(cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if !io.conn().is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match io.run(Want::Nothing) {
                Ok((Stop::Closed, _)) => {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                }
                Ok(_) => {}
                Err(e) => {
                    io.send_alert(&self.tcp);
                    return Poll::Ready(Err(e));
                }
            }
            if io.filled > io.sent || !io.conn().is_handshaking() {
                continue;
            }
            if io.peer_closed {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            // The client's next flight is read once the reactor reports it, and the
            // readiness is forgotten after a read that emptied the socket: no read that
            // would block (a new socket, or the wait for the client's Finished).
            match self.tcp.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match io.receive(&self.tcp) {
                Ok(true) if io.drained => Transport::clear_read_ready(&self.tcp),
                Ok(true) => {}
                Ok(false) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                // Stale readiness, cleared by the read itself: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn write(&self, data: &[u8]) -> io::Result<usize> {
        let mut io = self.io.borrow_mut();
        // Earlier ciphertext goes first; while it cannot, nothing more is taken.
        if !io.send(&self.tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = match io.run(Want::Write(data)) {
            Ok((Stop::Wrote(n), _)) => n,
            Ok((Stop::Closed, _)) => return Err(io::ErrorKind::BrokenPipe.into()),
            Ok((Stop::NeedInput, _)) => 0,
            Err(e) => {
                io.send_alert(&self.tcp);
                return Err(e);
            }
        };
        io.send(&self.tcp)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
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

thread_local! {
    /// Where the pieces of a vectored write are gathered, to go out as one record.
    static GATHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Transport for TlsStream {
    fn poll_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.drive_handshake(cx)
    }

    fn handshaking(&self) -> bool {
        self.io.borrow_mut().conn().is_handshaking()
    }

    fn resumed(&self) -> bool {
        matches!(
            self.io.borrow_mut().conn().handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        )
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut io = self.io.borrow_mut();
        loop {
            if io.held_plain() > 0 {
                return Ok(io.take_plain(buf));
            }
            if io.peer_closed {
                return Ok(0);
            }
            match io.run(Want::Read(buf)) {
                Ok((_, n)) if n > 0 => {
                    // Every record read: the buffer goes back to the pool now, not when
                    // the next read finds the socket empty (an idle connection may wait
                    // for readiness without reading).
                    if io.start == io.end {
                        io.release_input();
                    }
                    return Ok(n);
                }
                Ok((Stop::Closed, _)) => return Ok(0),
                Ok(_) => {}
                Err(e) => {
                    io.send_alert(&self.tcp);
                    return Err(e);
                }
            }
            if io.held_plain() > 0 || io.peer_closed {
                continue;
            }
            // Tickets or a key update may have been queued: on their way, as far as the
            // socket takes them.
            if io.filled > io.sent {
                io.send(&self.tcp)?;
            }
            if !io.receive(&self.tcp)? {
                return Ok(0);
            }
        }
    }

    /// A short read of plaintext does not mean the socket is empty (a read returns once a
    /// whole record is decrypted, and the next may be in the socket already): the
    /// readiness is forgotten only when the last socket read was short too and no whole
    /// record or plaintext is held, so that the next wait learns of new input from the
    /// reactor and the idle wait spends no read that would block.
    fn clear_read_ready(&self) {
        let io = self.io.borrow();
        if io.drained && !io.readable_without_socket() {
            Transport::clear_read_ready(&self.tcp);
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.io.borrow().readable_without_socket() {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // Small pieces (a head and its body) go out as one record: gathered first.
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if first.len() >= MAX_PLAIN || bufs.len() < 2 {
            return self.write(first);
        }
        GATHER.with(|g| {
            let mut g = g.borrow_mut();
            g.clear();
            for b in bufs {
                let room = MAX_PLAIN - g.len();
                if room == 0 {
                    break;
                }
                g.extend_from_slice(&b[..b.len().min(room)]);
            }
            self.write(&g)
        })
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Ciphertext waiting for the socket moves first: ready means all of it is sent.
        loop {
            if self.io.borrow_mut().send(&self.tcp)? {
                return Poll::Ready(Ok(()));
            }
            match self.tcp.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
    }

    fn holds_unsent(&self) -> bool {
        let io = self.io.borrow();
        io.filled > io.sent
    }

    fn close_notify(&self) -> bool {
        let mut io = self.io.borrow_mut();
        if io.conn().is_handshaking() {
            return false;
        }
        let _ = io.run(Want::CloseNotify);
        true
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.close_notify();
        // As much of close_notify as the socket takes now; a close follows either way.
        let _ = self.io.borrow_mut().send(&self.tcp);
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
