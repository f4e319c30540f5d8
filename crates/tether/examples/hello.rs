//! A minimal server: `cargo run --example hello -- 127.0.0.1:8080`.

use tether::{Handler, Request, Response, Server, Status};

struct Hello;

impl Handler for Hello {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> std::io::Result<()> {
        match req.path() {
            "/" | "/plaintext" => {
                res.content_type("text/plain").body_static(b"Hello, World!");
            }
            "/echo" => {
                let mut body = std::mem::take(res.body_buf());
                req.body().read_to_end(&mut body).await?;
                *res.body_buf() = body;
            }
            _ => {
                res.status(Status::NOT_FOUND).body_static(b"not found\n");
            }
        }
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = Server::builder().bind(addr)?;
    eprintln!("listening on {}", server.local_addr());
    server.run_until(|| Hello, std::future::pending::<()>())?;
    Ok(())
}
