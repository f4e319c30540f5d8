//! [`TestHandler`]: the routes the engine's tests call.

use std::io;
use std::time::Duration;

use tether::{Handler, Request, Response, Status};

/// Body of `/plaintext`.
pub const PLAINTEXT: &[u8] = b"Hello, World!";

/// Pieces `/stream` sends, one `send_chunk` each.
pub const STREAM_PARTS: [&[u8]; 3] = [b"hello", b", ", b"stream"];

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
/// | `/big?len=N&file=1` | the same from a file, with `send_file` (Content-Length) |
/// | `/big?len=N&file=1&chunk=M` | from the file in a chunked stream, M bytes per `send_file` |
/// | `/big?len=N&file=1&split=1` | a sized body: 10 bytes by `send_chunk`, the file's middle, 10 bytes |
/// | `/big?len=N&file=1&short=K` | announces N bytes from the file and sends K fewer |
/// | `/stream` | streams [`STREAM_PARTS`] with `send_chunk` |
/// | `/stream-fail` | streams one part, then fails |
/// | `/close` | answers `bye` and asks to close the connection |
/// | `/fail` | returns an error before responding |
/// | anything else | 404 `not found` |
pub struct TestHandler;

/// The number `key=N` of the query, or 0.
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

async fn read_some(req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
    let mut buf = [0u8; 3];
    let n = req.body().read(&mut buf).await?;
    res.write(&buf[..n]);
    Ok(())
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// An open, already unlinked file holding `big_body(len)`.
pub fn big_file(len: usize) -> std::fs::File {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tether-big-{}-{n}", std::process::id()));
    std::fs::write(&path, big_body(len)).expect("write the body file");
    let file = std::fs::File::open(&path).expect("open the body file");
    let _ = std::fs::remove_file(&path);
    file
}

async fn big_from_file(req: &Request<'_>, res: &mut Response<'_>, len: u64) -> io::Result<()> {
    let file = big_file(usize::try_from(len).unwrap());
    let (chunk, short) = (query_num(req, "chunk"), query_num(req, "short"));
    if query_num(req, "split") == 1 {
        let body = big_body(usize::try_from(len).unwrap());
        res.start_sized(len);
        res.send_chunk(&body[..10]).await?;
        res.send_file(&file, 10, len - 20).await?;
        return res.send_chunk(&body[body.len() - 10..]).await;
    }
    if chunk == 0 {
        res.start_sized(len);
        return res.send_file(&file, 0, len - short).await;
    }
    let mut at = 0;
    while at < len {
        let n = chunk.min(len - at);
        res.send_chunk(b"").await?;
        res.send_file(&file, at, n).await?;
        at += n;
    }
    Ok(())
}

async fn big(req: &Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
    if query_num(req, "file") == 1 {
        return big_from_file(req, res, query_num(req, "len")).await;
    }
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
    Ok(())
}

async fn stream(res: &mut Response<'_>) -> io::Result<()> {
    res.content_type("text/plain");
    for part in STREAM_PARTS {
        res.send_chunk(part).await?;
    }
    Ok(())
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
            "/read-some" => read_some(req, res).await?,
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
            "/big" => big(req, res).await?,
            "/stream" => stream(res).await?,
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
