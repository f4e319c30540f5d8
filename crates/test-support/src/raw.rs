//! Raw servers, one thread per connection, for tests of clients against servers that close,
//! limit or frame responses in their own ways.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A raw server: `serve` runs on its own thread for each accepted connection, with the
/// connection's index. Stops accepting when dropped.
pub struct Raw {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
}

impl Raw {
    /// Listens on `127.0.0.1:0`.
    pub fn start<F>(serve: F) -> Raw
    where
        F: Fn(TcpStream, u64) + Send + Sync + 'static,
    {
        Raw::with_listener(TcpListener::bind("127.0.0.1:0").expect("bind"), serve)
    }

    /// Accepts on `listener`.
    pub fn with_listener<F>(listener: TcpListener, serve: F) -> Raw
    where
        F: Fn(TcpStream, u64) + Send + Sync + 'static,
    {
        let raw = Raw {
            addr: listener.local_addr().expect("addr"),
            stop: Arc::default(),
            accepted: Arc::default(),
        };
        let (stop, accepted) = (raw.stop.clone(), raw.accepted.clone());
        let serve = Arc::new(serve);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let i = accepted.fetch_add(1, Ordering::SeqCst);
                let serve = serve.clone();
                thread::spawn(move || serve(stream, i));
            }
        });
        raw
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request head (and no body); `false` at the end of input or on an error.
pub fn read_request(r: &mut BufReader<TcpStream>) -> bool {
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if line == "\r\n" && !first {
            return true;
        }
        first = false;
    }
}

/// A reader and a writer on `stream`.
pub fn split(stream: TcpStream) -> (BufReader<TcpStream>, TcpStream) {
    let w = stream.try_clone().expect("clone");
    (BufReader::new(stream), w)
}

/// `200 OK` with a 5-byte body and the given extra header lines.
pub fn ok(extra: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n{extra}\r\nhello").into_bytes()
}

/// Closes `stream` with a reset (SO_LINGER 0).
pub fn reset(stream: TcpStream) {
    let s = socket2::Socket::from(stream);
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Drains whatever the client still sends, until it closes (bounded by a timeout).
pub fn drain(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let mut buf = [0u8; 1024];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// Writes all of `bytes`, ignoring a client that went away.
pub fn send(w: &mut TcpStream, bytes: &[u8]) -> bool {
    w.write_all(bytes).is_ok()
}
