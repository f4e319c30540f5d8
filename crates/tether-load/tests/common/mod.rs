//! Servers for the tests, all on 127.0.0.1 with a port the kernel picks: tether itself, and
//! small raw servers that misbehave on purpose, one thread per connection.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tether::{Handler, Request, Response, Running, Server};
use tether_load::{Config, Target};

/// A load config for `addr`: one thread, 300 ms, short timeout.
pub fn config(addr: SocketAddr, path: &str) -> Config {
    let mut c = Config::new(Target::parse(&format!("http://{addr}{path}")).expect("target"));
    c.threads = 1;
    c.connections = 4;
    c.bounds.duration = Duration::from_millis(300);
    c.timeout = Duration::from_secs(2);
    c
}

/// Runs `config` and returns its report.
pub fn run(config: &Config) -> tether_load::Report {
    tether_load::run(config, &mut |_| {}).expect("run")
}

/// Runs `config` and checks that its report accounts for every connection and request.
#[track_caller]
pub fn run_accounted(config: &Config) -> tether_load::Report {
    let r = run(config);
    assert_accounted(&r);
    r
}

/// Checks that every connection opened is accounted for by exactly one way of closing.
pub fn assert_accounted(r: &tether_load::Report) {
    let c = &r.connections;
    assert_eq!(
        c.opened,
        c.closed_by_server + c.reset_by_server + c.closed_by_client,
        "{c:?}"
    );
    assert_eq!(
        c.closed_by_server,
        c.closed_by_server_announced + c.closed_by_server_silently
    );
    assert_eq!(r.requests.total, r.requests.ok + r.requests.failed);
}

/// tether's demo-like handler: `/plaintext` 200, `/missing` 404, `/fail` 500,
/// `/chunked` a streamed (chunked) body.
pub struct App;

impl Handler for App {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> std::io::Result<()> {
        match req.path() {
            "/missing" => {
                res.status(tether::Status::NOT_FOUND).body_static(b"no");
            }
            "/fail" => {
                res.status(tether::Status::INTERNAL_SERVER_ERROR)
                    .body_static(b"fail");
            }
            _ => {
                res.content_type("text/plain").body_static(b"Hello, World!");
            }
        }
        Ok(())
    }
}

/// A running tether server with `App`.
pub fn tether(build: impl FnOnce(tether::Builder) -> tether::Builder) -> Running {
    let server = build(Server::builder().workers(1))
        .bind("127.0.0.1:0")
        .expect("bind tether");
    server.spawn(|| App).expect("spawn tether")
}

/// A raw server: `serve` runs on its own thread for each accepted connection, with the
/// connection's index. Stops accepting when dropped.
pub struct Raw {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub accepted: Arc<AtomicU64>,
}

impl Raw {
    pub fn start<F>(serve: F) -> Raw
    where
        F: Fn(TcpStream, u64) + Send + Sync + 'static,
    {
        Raw::with_listener(TcpListener::bind("127.0.0.1:0").expect("bind"), serve)
    }

    pub fn with_listener<F>(listener: TcpListener, serve: F) -> Raw
    where
        F: Fn(TcpStream, u64) + Send + Sync + 'static,
    {
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let serve = Arc::new(serve);
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let i = accepted2.fetch_add(1, Ordering::SeqCst);
                let serve = serve.clone();
                thread::spawn(move || serve(stream, i));
            }
        });
        Raw {
            addr,
            stop,
            accepted,
        }
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
