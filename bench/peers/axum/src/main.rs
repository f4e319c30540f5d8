//! The same axum router served two ways, to compare the servers under it:
//!
//!   axum-peer ADDR            `axum::serve` (hyper 1 through hyper-util) on one tokio
//!                             current_thread runtime, as the hyper peer
//!   axum-peer ADDR --tether   tether's tower adapter (`tether::tower::run_make_until` with
//!                             `into_make_service()`, as `axum::serve` takes it), one worker
//!   axum-peer --direct N      no server: N requests handed to the router itself, as a
//!                             server would build them (`GET /plaintext`, a Host field),
//!                             and each response body collected; what the router costs
//!                             alone (bench/axum.sh counts its instructions)
//!
//! Routes: `GET /` and `GET /plaintext` answer `Hello, World!` as text/plain (the harness's
//! contract), `POST /echo` answers the request body; no middleware. Both modes stop on
//! SIGINT or SIGTERM and return from main, so that valgrind (stopped with SIGINT by
//! bench/lib.sh) writes its results: axum with its graceful shutdown, tether with its drain.
use axum::body::Bytes;
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::{Listener, ListenerExt};
use axum::Router;

async fn hello() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        "Hello, World!",
    )
}

fn router() -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/plaintext", get(hello))
        .route("/echo", post(|body: Bytes| async move { body }))
}

/// Completes at SIGINT or SIGTERM.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        _ => return std::future::pending().await,
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Calls the router `n` times with the request a server would build for
/// `GET /plaintext HTTP/1.1` and `Host: bench`, reading each response body to its end.
fn direct(n: u64) -> std::io::Result<()> {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::{Service, ServiceExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut app = router().into_make_service();
        let mut served = 0u64;
        for _ in 0..n {
            let mut router = ServiceExt::<()>::ready(&mut app)
                .await
                .map_err(std::io::Error::other)?
                .call(())
                .await
                .map_err(std::io::Error::other)?;
            let request = Request::get("/plaintext")
                .header("host", "bench")
                .body(Body::empty())
                .map_err(std::io::Error::other)?;
            let response = ServiceExt::<Request<Body>>::ready(&mut router)
                .await
                .map_err(std::io::Error::other)?
                .call(request)
                .await
                .map_err(std::io::Error::other)?;
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(std::io::Error::other)?;
            served += body.to_bytes().len() as u64;
        }
        eprintln!("served {n} requests, {served} body bytes");
        Ok(())
    })
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:19011".to_string();
    let mut on_tether = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tether" => on_tether = true,
            "--direct" => {
                let n = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
                return direct(n);
            }
            _ => addr = arg,
        }
    }
    if on_tether {
        let server = tether::Server::builder().workers(1).bind(addr.as_str())?;
        eprintln!("listening on http://{} (tether)", server.local_addr());
        // `into_make_service()`, as axum::serve takes the router: the router's routes are
        // made once, not for each request.
        let app = router().into_make_service();
        let stopped = tether::tower::run_make_until(server, app, shutdown())?;
        eprintln!("stopped: {} requests", stopped.stats.requests);
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // TCP_NODELAY as the hyper peer and tether set it (axum 0.8 leaves it to the listener).
        let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        eprintln!(
            "listening on http://{} (axum::serve)",
            listener.local_addr()?
        );
        axum::serve(listener, router())
            .with_graceful_shutdown(shutdown())
            .await
    })
}
