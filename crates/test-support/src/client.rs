//! A raw HTTP/1.1 client on a blocking loopback socket: it sends whatever bytes a test gives
//! it and reads responses one at a time, the head parsed and the body framed by
//! Content-Length, chunked coding or the close. Every read and write gives up after
//! [`IO_TIMEOUT`] (or what [`Client::set_read_timeout`] says).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::request;

/// Every blocking socket operation of the client gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed response.
#[derive(Debug)]
pub struct Reply {
    /// The status line, without its CRLF.
    pub status_line: String,
    /// The status code.
    pub status: u16,
    /// The header fields, in order, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
    /// Sizes of the chunks of a chunked body, in order.
    pub chunks: Vec<usize>,
    /// The body was delimited by the end of the connection.
    pub close_delimited: bool,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when any field `name` lists `token` (case-insensitive, comma-separated).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// `Connection: close`.
    pub fn closes(&self) -> bool {
        self.has_token("connection", "close")
    }

    /// `Transfer-Encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }

    /// The body as UTF-8 (panics when it is not).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-response",
    )
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Whether a response with `status` to a request that was not HEAD has a body.
fn has_body(status: u16) -> bool {
    status >= 200 && status != 204 && status != 304
}

/// A raw HTTP/1.1 client on one connection, with bounded reads and writes.
pub struct Client {
    stream: TcpStream,
    /// TLS over the stream, for a client made by [`Client::connect_tls`].
    tls: Option<Box<rustls::ClientConnection>>,
    /// Set when TLS ended with the server's `close_notify`.
    close_notify: bool,
    /// Received bytes not yet consumed.
    buf: Vec<u8>,
    /// For a slow reader: most bytes per read, and the pause before each read.
    pace: Option<(usize, Duration)>,
}

impl Client {
    /// Connects to `addr` (panics when it cannot).
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// Connects to `addr`.
    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        Client::with_stream(TcpStream::connect(addr)?)
    }

    /// Connects to `addr` with TLS (server name `localhost`) and completes the handshake
    /// (panics when it cannot).
    pub fn connect_tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Client {
        Client::try_connect_tls(addr, config).unwrap_or_else(|e| panic!("TLS to {addr}: {e}"))
    }

    /// Connects to `addr` with TLS (server name `localhost`) and completes the handshake.
    pub fn try_connect_tls(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> io::Result<Client> {
        let mut c = Client::try_connect(addr)?;
        c.start_tls(config)?;
        Ok(c)
    }

    /// Starts TLS on this connection and completes the handshake.
    pub fn start_tls(&mut self, config: Arc<rustls::ClientConfig>) -> io::Result<()> {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a valid name");
        let mut tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut self.stream)?;
        }
        self.tls = Some(Box::new(tls));
        Ok(())
    }

    /// The TLS connection, for a client made by [`Client::connect_tls`].
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        self.tls.as_deref()
    }

    /// Connects with a receive buffer of `bytes` (which the kernel doubles), set before the
    /// handshake so that the window the client advertises stays that small.
    pub fn connect_with_recv_buffer(addr: SocketAddr, bytes: usize) -> Client {
        let socket = socket(addr);
        socket.set_recv_buffer_size(bytes).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::with_stream(socket.into()).unwrap()
    }

    /// Connects from `ip` (such as any address of 127.0.0.0/8) to `addr`.
    pub fn connect_from(ip: IpAddr, addr: SocketAddr) -> Client {
        let socket = socket(addr);
        socket.bind(&SocketAddr::new(ip, 0).into()).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::with_stream(socket.into()).unwrap()
    }

    fn with_stream(stream: TcpStream) -> io::Result<Client> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            tls: None,
            close_notify: false,
            buf: Vec::new(),
            pace: None,
        })
    }

    /// The client's local address: the peer address the server sees (and reports in its
    /// connection events).
    pub fn peer(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Reads give up after `timeout` from now on.
    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// From now on, pauses `gap` before each read and reads at most `piece` bytes.
    pub fn pace_reads(&mut self, piece: usize, gap: Duration) {
        self.pace = Some((piece, gap));
    }

    /// Another handle on the socket, for writing from a background thread.
    pub fn stream(&self) -> TcpStream {
        self.stream.try_clone().unwrap()
    }

    /// Sends `data` (panics when it cannot).
    pub fn send(&mut self, data: &[u8]) {
        self.try_send(data).unwrap();
    }

    /// Sends `data`.
    pub fn try_send(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(&mut **tls, &mut self.stream).write_all(data),
            None => self.stream.write_all(data),
        }
    }

    /// Sends `data` one byte per write.
    pub fn send_bytewise(&mut self, data: &[u8]) {
        for byte in data.chunks(1) {
            self.send(byte);
        }
    }

    /// Shuts down the client's sending side (half-close).
    pub fn shutdown_write(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            while tls.wants_write() {
                tls.write_tls(&mut self.stream).unwrap();
            }
        }
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Reads what the connection gives: plaintext over TLS, where the server's end of the
    /// stream with or without `close_notify` reads as 0.
    fn read_some(&mut self, tmp: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(tls) => match rustls::Stream::new(&mut **tls, &mut self.stream).read(tmp) {
                Ok(0) => {
                    self.close_notify = true;
                    Ok(0)
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            None => self.stream.read(tmp),
        }
    }

    /// Sends `data` and reads one response.
    pub fn request(&mut self, data: &[u8]) -> Reply {
        self.send(data);
        self.reply()
    }

    /// Sends `method path` with a Host, `headers` and `body` (with its length, if any), and
    /// reads the response (without a body for HEAD).
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> io::Result<Reply> {
        self.try_send(&request::build(method, path, headers, body))?;
        self.read_reply(method == "HEAD")
    }

    /// `method path` with no body, panicking on any failure.
    pub fn call(&mut self, method: &str, path: &str) -> Reply {
        self.exchange(method, path, &[], None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET path`, panicking on any failure.
    pub fn get(&mut self, path: &str) -> Reply {
        self.call("GET", path)
    }

    /// Sends `GET path` again and again until a response says `Connection: close`; returns
    /// every response. Panics when none has closed within `limit`.
    pub fn get_until_close(&mut self, path: &str, limit: Duration) -> Vec<Reply> {
        let deadline = Instant::now() + limit;
        let mut replies = Vec::new();
        loop {
            let r = self.get(path);
            let closes = r.closes();
            replies.push(r);
            if closes {
                return replies;
            }
            let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
            assert!(Instant::now() < deadline, "never closed: {statuses:?}");
        }
    }

    /// Reads one response (panics when there is none).
    pub fn reply(&mut self) -> Reply {
        self.read_reply(false)
            .unwrap_or_else(|e| panic!("no complete response: {e}"))
    }

    /// Reads one response to a HEAD request: never a body.
    pub fn head_reply(&mut self) -> Reply {
        self.read_reply(true)
            .unwrap_or_else(|e| panic!("no complete response: {e}"))
    }

    /// Reads one response; `head` says the request was HEAD.
    pub fn read_reply(&mut self, head: bool) -> io::Result<Reply> {
        let (status_line, status) = self.status_line()?;
        let mut reply = Reply {
            status_line,
            status,
            headers: self.header_fields()?,
            body: Vec::new(),
            chunks: Vec::new(),
            close_delimited: false,
        };
        if !head && has_body(reply.status) {
            self.body(&mut reply)?;
        }
        Ok(reply)
    }

    /// The status line, and the code in it.
    fn status_line(&mut self) -> io::Result<(String, u16)> {
        let line = self.line()?;
        let status = line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
        Ok((line, status))
    }

    fn header_fields(&mut self) -> io::Result<Vec<(String, String)>> {
        let mut fields = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                return Ok(fields);
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header {line:?}")))?;
            fields.push((name.to_string(), value.trim().to_string()));
        }
    }

    fn body(&mut self, reply: &mut Reply) -> io::Result<()> {
        if reply.is_chunked() {
            return self.chunked_body(reply);
        }
        match reply.header("content-length") {
            Some(len) => {
                let len = len
                    .parse()
                    .map_err(|_| invalid(format!("bad length {len:?}")))?;
                reply.body = self.take(len)?;
            }
            None => {
                reply.body = self.read_to_close()?;
                reply.close_delimited = true;
            }
        }
        Ok(())
    }

    fn chunked_body(&mut self, reply: &mut Reply) -> io::Result<()> {
        loop {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                while !self.line()?.is_empty() {}
                return Ok(());
            }
            reply.body.extend_from_slice(&self.take(size)?);
            reply.chunks.push(size);
            if !self.line()?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF".into()));
            }
        }
    }

    /// Reads more input; EOF is an error here.
    fn fill(&mut self) -> io::Result<()> {
        let mut small = [0u8; 16 * 1024];
        let mut paced;
        let tmp: &mut [u8] = match self.pace {
            None => &mut small,
            Some((piece, gap)) => {
                thread::sleep(gap);
                paced = vec![0; piece];
                &mut paced
            }
        };
        match self.read_some(tmp)? {
            0 => Err(eof()),
            n => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..at + 2).take(at).collect();
                return String::from_utf8(line).map_err(|_| invalid("non-UTF-8 line".into()));
            }
            self.fill()?;
        }
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Everything until the server closes: the unconsumed input and what follows. Fails on a
    /// reset or when the connection stays open beyond the read timeout.
    pub fn read_to_close(&mut self) -> io::Result<Vec<u8>> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.read_some(&mut tmp) {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server ended TLS with `close_notify` (read as the end of the stream).
    pub fn got_close_notify(&self) -> bool {
        self.close_notify
    }

    /// Asserts that the server closes the connection cleanly without sending anything more.
    pub fn expect_closed(&mut self) {
        match self.read_to_close() {
            Ok(rest) => assert!(
                rest.is_empty(),
                "unexpected bytes before EOF: {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) => panic!("connection not closed cleanly: {e}"),
        }
    }

    /// Asserts that the server ends the connection, by a close with nothing more to say or
    /// by a reset.
    pub fn expect_closed_or_reset(&mut self) {
        match self.read_to_close() {
            Ok(rest) => assert!(rest.is_empty(), "unexpected bytes before close: {rest:?}"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

/// Asserts that the statuses of `replies` turn to `status` at some point and stay so (as
/// readiness does during a drain).
pub fn assert_turns_to(replies: &[Reply], status: u16) {
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    let first = statuses.iter().position(|&s| s == status);
    assert!(
        first.is_some_and(|i| statuses[i..].iter().all(|&s| s == status)),
        "not {status} from some point on: {statuses:?}"
    );
}

/// A TCP socket for `addr`'s family, not yet connected.
fn socket(addr: SocketAddr) -> Socket {
    Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap()
}

/// Writes `data` on a socket from a background thread, `piece` bytes at a time with `gap`
/// between pieces, until it is all written, a write fails, or the writer is dropped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Writer {
    /// Starts writing `data` on `stream`.
    pub fn spawn(mut stream: TcpStream, data: Vec<u8>, piece: usize, gap: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            for part in data.chunks(piece) {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                stream.write_all(part)?;
                thread::sleep(gap);
            }
            Ok(())
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until everything is written (or a write failed).
    pub fn join(mut self) -> io::Result<()> {
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The size a TCP send buffer may grow to (the maximum of `tcp_wmem`, 4 MiB by default): what
/// the server's kernel may take of a response that its client does not read.
pub fn send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}
