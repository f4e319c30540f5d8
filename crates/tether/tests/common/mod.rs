//! Shared helpers for tether's integration tests: a server running the test handler, a raw
//! blocking HTTP/1.1 client over a real loopback socket, and request builders.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tether::{Builder, Handler, Request, Response, Running, Server, Status};

/// Every blocking socket operation of the client gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Body of `/plaintext`.
pub const PLAINTEXT: &[u8] = b"Hello, World!";

/// Pieces `/stream` sends, one `send_chunk` each.
pub const STREAM_PARTS: [&[u8]; 3] = [b"hello", b", ", b"stream"];

/// A builder with one worker and a bounded shutdown, so that a failing test cannot hang on
/// dropping its server.
pub fn builder() -> Builder {
    Server::builder()
        .workers(1)
        .shutdown_timeout(Duration::from_secs(2))
}

/// Binds to an ephemeral loopback port and runs [`TestHandler`].
pub fn start(builder: Builder) -> Running {
    builder
        .bind("127.0.0.1:0")
        .unwrap()
        .spawn(|| TestHandler)
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------

/// Routes:
///
/// | path | behaviour |
/// |---|---|
/// | `/plaintext` | `Hello, World!` |
/// | `/echo` | reads the whole body and sends it back |
/// | `/ignore-body` | answers `ignored` without touching the body |
/// | `/read-some` | reads at most 3 body bytes and sends them back |
/// | `/slow-body?ms=N` | sleeps N ms, then behaves as `/echo` |
/// | `/sleep?ms=N` | sleeps N ms, then answers `slept` |
/// | `/status?code=N` | empty response with status N |
/// | `/big?len=N` | N bytes of [`big_body`] |
/// | `/big?len=N&chunk=M` | the same, streamed in pieces of M bytes with `send_chunk` |
/// | `/stream` | streams [`STREAM_PARTS`] with `send_chunk` |
/// | `/stream-fail` | streams one part, then fails |
/// | `/close` | answers `bye` and asks to close the connection |
/// | `/fail` | returns an error before responding |
/// | anything else | 404 `not found` |
pub struct TestHandler;

fn query_num(req: &Request<'_>, key: &str) -> u64 {
    req.query()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        })
        .unwrap_or(0)
}

/// The body of `/big?len=N`: bytes counting up modulo 251, a prime, so that a piece lost,
/// repeated or moved shows.
pub fn big_body(len: usize) -> Vec<u8> {
    let period: [u8; 251] = std::array::from_fn(|i| i as u8);
    let mut body = Vec::with_capacity(len);
    while body.len() < len {
        let n = (len - body.len()).min(period.len());
        body.extend_from_slice(&period[..n]);
    }
    body
}

async fn echo(req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
    let mut body = Vec::new();
    req.body().read_to_end(&mut body).await?;
    res.write(&body);
    Ok(())
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl Handler for TestHandler {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        match req.path() {
            "/plaintext" => {
                res.content_type("text/plain").body_static(PLAINTEXT);
            }
            "/echo" => echo(req, res).await?,
            "/ignore-body" => {
                res.body_static(b"ignored");
            }
            "/read-some" => {
                let mut buf = [0u8; 3];
                let n = req.body().read(&mut buf).await?;
                res.write(&buf[..n]);
            }
            "/slow-body" => {
                sleep_ms(query_num(req, "ms")).await;
                echo(req, res).await?;
            }
            "/sleep" => {
                sleep_ms(query_num(req, "ms")).await;
                res.body_static(b"slept");
            }
            "/status" => {
                res.status(Status(u16::try_from(query_num(req, "code")).unwrap()));
            }
            "/big" => {
                let len = usize::try_from(query_num(req, "len")).unwrap();
                match usize::try_from(query_num(req, "chunk")).unwrap() {
                    0 => {
                        res.write(&big_body(len));
                    }
                    chunk => {
                        for piece in big_body(len).chunks(chunk) {
                            res.send_chunk(piece).await?;
                        }
                    }
                }
            }
            "/stream" => {
                res.content_type("text/plain");
                for part in STREAM_PARTS {
                    res.send_chunk(part).await?;
                }
            }
            "/stream-fail" => {
                res.send_chunk(STREAM_PARTS[0]).await?;
                return Err(io::Error::other("failed mid-stream"));
            }
            "/close" => {
                res.close().body_static(b"bye");
            }
            "/fail" => return Err(io::Error::other("handler failed")),
            _ => {
                res.status(Status::NOT_FOUND).body_static(b"not found");
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------------------

pub const HOST: &str = "Host: test";

/// A request head: `line`, each of `headers`, and the empty line.
pub fn head_bytes(line: &str, headers: &[&str]) -> Vec<u8> {
    let mut head = format!("{line}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// `GET path HTTP/1.1` with a Host.
pub fn get(path: &str) -> Vec<u8> {
    get_with(path, &[])
}

/// `GET path HTTP/1.1` with a Host and `headers`.
pub fn get_with(path: &str, headers: &[&str]) -> Vec<u8> {
    head_bytes(
        &format!("GET {path} HTTP/1.1"),
        &[&[HOST], headers].concat(),
    )
}

/// `HEAD path HTTP/1.1` with a Host.
pub fn head(path: &str) -> Vec<u8> {
    head_bytes(&format!("HEAD {path} HTTP/1.1"), &[HOST])
}

/// `GET path HTTP/1.0` with `headers` (no Host).
pub fn get10(path: &str, headers: &[&str]) -> Vec<u8> {
    head_bytes(&format!("GET {path} HTTP/1.0"), headers)
}

/// The head of `POST path HTTP/1.1` with a Host, `Content-Length: len` and `headers`.
pub fn post_head(path: &str, len: usize, headers: &[&str]) -> Vec<u8> {
    let length = format!("Content-Length: {len}");
    head_bytes(
        &format!("POST {path} HTTP/1.1"),
        &[&[HOST, length.as_str()], headers].concat(),
    )
}

/// `POST path HTTP/1.1` with `body` delimited by Content-Length.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    [post_head(path, body.len(), &[]), body.to_vec()].concat()
}

/// The head of `POST path HTTP/1.1` with `Transfer-Encoding: chunked`.
pub fn chunked_head(path: &str) -> Vec<u8> {
    head_bytes(
        &format!("POST {path} HTTP/1.1"),
        &[HOST, "Transfer-Encoding: chunked"],
    )
}

/// `POST path HTTP/1.1` with a chunked body made of `chunks`.
pub fn chunked_post(path: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = chunked_head(path);
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/// One parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
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

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-response",
    )
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A raw HTTP/1.1 client on a blocking socket, with bounded reads and writes.
pub struct Client {
    stream: TcpStream,
    /// Received bytes not yet consumed.
    buf: Vec<u8>,
    /// For a slow reader: most bytes per read, and the pause before each read.
    pace: Option<(usize, Duration)>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::with_stream(TcpStream::connect(addr).unwrap())
    }

    /// Connects with a receive buffer of `bytes` (which the kernel doubles), set before the
    /// handshake so that the window the client advertises stays that small.
    pub fn connect_with_recv_buffer(addr: SocketAddr, bytes: usize) -> Client {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::with_stream(socket.into())
    }

    fn with_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            pace: None,
        }
    }

    /// From now on, pauses `gap` before each read and reads at most `piece` bytes.
    pub fn pace_reads(&mut self, piece: usize, gap: Duration) {
        self.pace = Some((piece, gap));
    }

    /// Another handle on the socket, for writing from a background thread.
    pub fn stream(&self) -> TcpStream {
        self.stream.try_clone().unwrap()
    }

    pub fn send(&mut self, data: &[u8]) {
        self.stream.write_all(data).unwrap();
    }

    /// Sends `data` one byte per write.
    pub fn send_bytewise(&mut self, data: &[u8]) {
        for byte in data.chunks(1) {
            self.send(byte);
        }
    }

    /// Shuts down the client's sending side (half-close).
    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Sends `data` and reads one response.
    pub fn request(&mut self, data: &[u8]) -> Reply {
        self.send(data);
        self.reply()
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
        let line = self.line()?;
        let status = line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(&format!("bad status line {line:?}")))?;
        let mut reply = Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            chunks: Vec::new(),
            close_delimited: false,
        };
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(&format!("bad header {line:?}")))?;
            reply
                .headers
                .push((name.to_string(), value.trim().to_string()));
        }
        if head || status < 200 || status == 204 || status == 304 {
            return Ok(reply);
        }
        if reply.is_chunked() {
            self.chunked_body(&mut reply)?;
        } else if let Some(len) = reply.header("content-length") {
            let len = len.parse().map_err(|_| invalid("bad Content-Length"))?;
            reply.body = self.take(len)?;
        } else {
            reply.body = self.read_to_close()?;
            reply.close_delimited = true;
        }
        Ok(reply)
    }

    fn chunked_body(&mut self, reply: &mut Reply) -> io::Result<()> {
        loop {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(&format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                while !self.line()?.is_empty() {}
                return Ok(());
            }
            reply.body.extend_from_slice(&self.take(size)?);
            reply.chunks.push(size);
            if !self.line()?.is_empty() {
                return Err(invalid("chunk data not followed by CRLF"));
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
                std::thread::sleep(gap);
                paced = vec![0; piece];
                &mut paced
            }
        };
        match self.stream.read(tmp)? {
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
                return String::from_utf8(line).map_err(|_| invalid("non-UTF-8 line"));
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
    /// reset or when the connection stays open beyond [`IO_TIMEOUT`].
    pub fn read_to_close(&mut self) -> io::Result<Vec<u8>> {
        self.stream.read_to_end(&mut self.buf)?;
        Ok(std::mem::take(&mut self.buf))
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
}

/// Writes `data` on a socket from a background thread, `piece` bytes at a time with `gap`
/// between pieces, until it is all written, a write fails, or the writer is dropped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Writer {
    pub fn spawn(mut stream: TcpStream, data: Vec<u8>, piece: usize, gap: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for part in data.chunks(piece) {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                stream.write_all(part)?;
                std::thread::sleep(gap);
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
