//! The demo application of `tether serve`: fixed endpoints for trying and measuring the
//! engine. Every answer but `/echo` comes from static bytes, so serving it allocates nothing.

use std::io;

use tether::{Handler, Request, Response, Status};

/// The page at `/`: the endpoint list.
const INDEX: &[u8] = b"tether serve\n\
\n\
GET  /            this list\n\
GET  /plaintext   Hello, World! (text/plain)\n\
GET  /json        {\"message\":\"Hello, World!\"} (application/json)\n\
POST /echo        the request body back\n";

const PLAINTEXT: &[u8] = b"Hello, World!";
const JSON: &[u8] = br#"{"message":"Hello, World!"}"#;

/// The demo handler. It holds no state; each worker makes its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct App;

impl Handler for App {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        let get = matches!(req.method(), "GET" | "HEAD");
        match req.path() {
            "/" if get => static_body(res, "text/plain; charset=utf-8", INDEX),
            "/plaintext" if get => static_body(res, "text/plain", PLAINTEXT),
            "/json" if get => static_body(res, "application/json", JSON),
            "/echo" if req.method() == "POST" => return echo(req, res).await,
            "/" | "/plaintext" | "/json" => not_allowed(res, "GET, HEAD"),
            "/echo" => not_allowed(res, "POST"),
            _ => static_body(res.status(Status::NOT_FOUND), "text/plain", b"Not Found\n"),
        }
        Ok(())
    }
}

fn static_body(res: &mut Response<'_>, content_type: &str, body: &'static [u8]) {
    res.content_type(content_type).body_static(body);
}

fn not_allowed(res: &mut Response<'_>, allow: &str) {
    res.status(Status::METHOD_NOT_ALLOWED)
        .header("Allow", allow);
    static_body(res, "text/plain", b"Method Not Allowed\n");
}

/// Answers with the request body, under the request's `Content-Type`.
///
/// A body that fails to arrive (malformed chunked framing, too large, too slow) makes the
/// read fail; returning that error lets the engine replace this response with 400, 413 or
/// 408 and close, so a partial body is never sent as a 200.
async fn echo(req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
    match req.header("content-type") {
        Some(ct) => res.header("Content-Type", ct),
        None => res.content_type("application/octet-stream"),
    };
    req.body().read_to_end(res.body_buf()).await?;
    Ok(())
}
