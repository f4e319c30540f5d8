//! An axum application served by tether: the router is ordinary axum code, and the one line
//! that differs from `axum::serve` is `tether::tower::run_make_until` (or `run_until`, for a
//! router that does not use `ConnectInfo`).
//!
//! ```sh
//! cargo run --release --example axum -- 127.0.0.1:3000
//! curl http://127.0.0.1:3000/plaintext
//! curl -d 'hello' http://127.0.0.1:3000/echo
//! curl http://127.0.0.1:3000/users/7?greeting=hi
//! curl -H 'content-type: application/json' -d '{"a":1,"b":2}' http://127.0.0.1:3000/sum
//! curl http://127.0.0.1:3000/count
//! curl http://127.0.0.1:3000/stream
//! curl http://127.0.0.1:3000/whoami
//! ```
//!
//! SIGTERM or Ctrl-C starts tether's two-phase drain: responses carry `Connection: close`,
//! idle connections close, requests in flight finish until the hard deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Shared across workers: a request counter.
#[derive(Clone, Default)]
struct AppState {
    hits: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct Greeting {
    greeting: Option<String>,
}

#[derive(Deserialize)]
struct Terms {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct Sum {
    sum: i64,
}

fn router() -> Router {
    Router::new()
        .route("/plaintext", get(|| async { "Hello, World!" }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/users/{id}",
            get(
                |Path(id): Path<u32>, Query(q): Query<Greeting>| async move {
                    format!("{}, user {id}\n", q.greeting.as_deref().unwrap_or("hello"))
                },
            ),
        )
        .route(
            "/sum",
            post(|Json(t): Json<Terms>| async move { Json(Sum { sum: t.a + t.b }) }),
        )
        .route(
            "/count",
            get(|State(s): State<AppState>| async move {
                format!("{}\n", s.hits.fetch_add(1, Ordering::Relaxed) + 1)
            }),
        )
        .route("/stream", get(stream))
        .route(
            "/whoami",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { format!("{peer}\n") }),
        )
        .with_state(AppState::default())
        .layer(TraceLayer::new_for_http())
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(1024 * 1024))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
}

/// A body sent in pieces as they are produced.
async fn stream() -> Body {
    let parts = futures_util::stream::iter(
        ["one\n", "two\n", "three\n"]
            .map(|s| Ok::<_, std::io::Error>(Bytes::from_static(s.as_bytes()))),
    );
    Body::from_stream(parts)
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let server = tether::Server::builder().bind(addr.as_str())?;
    eprintln!("listening on http://{}", server.local_addr());
    // Instead of `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())`:
    let app = router().into_make_service_with_connect_info::<SocketAddr>();
    let stopped = tether::tower::run_make_until(server, app, shutdown_signal())?;
    eprintln!(
        "stopped: {} requests; drain completed {} and cut {}",
        stopped.stats.requests, stopped.drain.requests_completed, stopped.drain.requests_cut
    );
    Ok(())
}

/// Completes at SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
