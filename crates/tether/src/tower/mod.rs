//! Run tower services (axum routers, tower-http stacks) on the engine, with every lifecycle
//! feature of the engine: timeouts, limits, eviction, parking, the two-phase drain, states,
//! close reasons, counters and the hook are the engine's, not a second code path.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//!
//! let app = Router::new().route("/", get(|| async { "Hello, World!" }));
//! // Instead of `axum::serve(listener, app)`:
//! let server = tether::Server::builder().bind("127.0.0.1:8080")?;
//! tether::tower::run_until(server, app, std::future::pending::<()>())?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! With axum, hand over the router as `axum::serve` does: `app.into_make_service()` (or
//! `into_make_service_with_connect_info`) to [`run_make_until`] or [`serve_make`], or
//! `app.with_state(())` to [`run_until`] or [`serve`]. Either turns the routes into services
//! once; a router that has not been through `with_state` rebuilds the route of every request
//! (a clone of its handler and an allocation, each time).
//!
//! Each worker runs the service as a [`Handler`]: per request it clones the service, waits
//! for `poll_ready` and calls it (as hyper-util's `TowerToHyperService` does). A connection
//! keeps no service state between requests, so a parked connection is as small as with any
//! other handler.
//!
//! The request is built from the parsed head: method, URI, version and headers, the header
//! values sliced from one shared copy of the head rather than allocated one by one; the
//! client's address reaches the service as axum's idiom has it: with [`run_make_until`] or
//! [`serve_make`] and `router.into_make_service_with_connect_info::<SocketAddr>()`, axum's
//! `ConnectInfo` extractor works as on `axum::serve`. The bytes handed to the service (the
//! head, body pieces) come from a per-worker arena, so that the adapter allocates nothing of
//! its own per request beyond the request's header map. The body is a [`Body`] that
//! reads lazily through the engine (see its documentation).
//!
//! The trailer fields of a chunked request reach the service as the body's trailers frame.
//!
//! The response: a body of one frame whose size is known goes out with `Content-Length`;
//! any other streams, chunked on HTTP/1.1 and delimited by the close on HTTP/1.0. Its
//! trailers frame is sent after the last chunk when the request asked for trailers
//! (`TE: trailers`), and dropped otherwise. A service error, or a body error before the head
//! is out, is `500` and a close; after the head, the connection closes so that the client
//! sees an incomplete body.
//!
//! Upgrades (WebSocket) are not supported: axum's `WebSocketUpgrade` needs hyper's private
//! upgrade type, finds none, and answers with its own `426 Upgrade Required`.

mod body;
mod request;
mod response;
mod scratch;

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tower_service::Service;

pub use body::{Body, BoxError};

use crate::conn::handler::Handler;
use crate::conn::request::Request;
use crate::conn::response::Response;
use crate::server::builder::{Running, Server, Stopped};
use crate::tower::scratch::Scratch;

/// A tower service as a [`Handler`]: what each worker runs.
#[derive(Debug)]
pub struct TowerHandler<S> {
    service: S,
    scratch: Scratch,
}

impl<S> TowerHandler<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        TowerHandler {
            service,
            scratch: Scratch::default(),
        }
    }
}

/// Starts `server` with `service` on every worker (each worker gets a clone), in the
/// background, as [`Server::spawn`] does.
///
/// # Errors
/// As [`Server::spawn`]: a worker thread or runtime that cannot start.
pub fn serve<S, B>(server: Server, service: S) -> io::Result<Running>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    server.spawn(move || TowerHandler::new(service.clone()))
}

/// Serves `service` until `shutdown` completes, then drains as [`Running::shutdown`] does
/// (the two phases, with `Connection: close` on responses during the drain window).
///
/// # Errors
/// As [`Server::run_until`].
pub fn run_until<S, B, F>(server: Server, service: S, shutdown: F) -> io::Result<Stopped>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    server.run_until(move || TowerHandler::new(service.clone()), shutdown)
}

/// Starts `server` with a service made on each worker's thread by `make`: for services
/// that are not `Send` (they never leave their worker).
///
/// # Errors
/// As [`Server::spawn`].
pub fn serve_with<M, S, B>(server: Server, make: M) -> io::Result<Running>
where
    M: Fn() -> S + Send + Sync + 'static,
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    server.spawn(move || TowerHandler::new(make()))
}

impl<S, B> Handler for TowerHandler<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        exchange(self.service.clone(), &self.scratch, req, res).await
    }
}

/// A service that makes the request's service from the client's address, such as axum's
/// `Router::into_make_service_with_connect_info::<SocketAddr>()`, as a [`Handler`]: it is
/// called for each request (no state is kept per connection), and the service it makes
/// answers it.
#[derive(Debug)]
pub struct MakeHandler<M> {
    make: M,
    scratch: Scratch,
}

impl<M> MakeHandler<M> {
    /// Wraps `make`.
    pub fn new(make: M) -> Self {
        MakeHandler {
            make,
            scratch: Scratch::default(),
        }
    }
}

impl<M, S, B> Handler for MakeHandler<M>
where
    M: Service<SocketAddr, Response = S> + Clone + 'static,
    M::Error: Into<BoxError>,
    S: Service<http::Request<Body>, Response = http::Response<B>> + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        let mut make = self.make.clone();
        poll_fn(|cx| make.poll_ready(cx)).await.map_err(other)?;
        let service = make.call(req.peer_addr()).await.map_err(other)?;
        exchange(service, &self.scratch, req, res).await
    }
}

/// Like [`run_until`], for a service made per client address: the axum idiom
/// `router.into_make_service_with_connect_info::<SocketAddr>()` (axum's `ConnectInfo`
/// extractor then works as on `axum::serve`).
///
/// # Errors
/// As [`Server::run_until`].
pub fn run_make_until<M, S, B, F>(server: Server, make: M, shutdown: F) -> io::Result<Stopped>
where
    M: Service<SocketAddr, Response = S> + Clone + Send + Sync + 'static,
    M::Error: Into<BoxError>,
    S: Service<http::Request<Body>, Response = http::Response<B>> + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    server.run_until(move || MakeHandler::new(make.clone()), shutdown)
}

/// Like [`serve`], for a service made per client address (see [`run_make_until`]).
///
/// # Errors
/// As [`Server::spawn`].
pub fn serve_make<M, S, B>(server: Server, make: M) -> io::Result<Running>
where
    M: Service<SocketAddr, Response = S> + Clone + Send + Sync + 'static,
    M::Error: Into<BoxError>,
    S: Service<http::Request<Body>, Response = http::Response<B>> + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    server.spawn(move || MakeHandler::new(make.clone()))
}

fn other(e: impl Into<BoxError>) -> io::Error {
    io::Error::other(e.into())
}

/// One request through `service`: build the `http::Request`, wait until the service is
/// ready, call it while feeding it the body it asks for, write its response.
async fn exchange<S, B>(
    mut service: S,
    scratch: &Scratch,
    req: &mut Request<'_>,
    res: &mut Response<'_>,
) -> io::Result<()>
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let is_head = req.method() == "HEAD";
    let te_trailers = req.header("te").is_some_and(|te| {
        crate::proto::parse::tokens(te).any(|t| t.eq_ignore_ascii_case(b"trailers"))
    });
    let (request, feed) = match request::build(req, scratch) {
        Ok(built) => built,
        Err(status) => {
            res.status(status).close();
            return Ok(());
        }
    };
    poll_fn(|cx| service.poll_ready(cx)).await.map_err(other)?;
    let call = service.call(request);
    let response = match feed {
        None => call.await,
        Some(feed) => {
            let response = feeding(call, &feed, scratch, req).await;
            scratch.give_back(feed);
            response
        }
    }
    .map_err(other)?;
    response::write(response, res, is_head, te_trailers).await
}

/// Runs the service's future, reading the request body whenever the service asks for more.
async fn feeding<F: Future>(
    call: F,
    feed: &Arc<body::Feed>,
    scratch: &Scratch,
    req: &mut Request<'_>,
) -> F::Output {
    let mut call = std::pin::pin!(call);
    loop {
        tokio::select! {
            biased;
            out = &mut call => return out,
            () = feed.wanted() => {
                let next = req
                    .body()
                    .chunk()
                    .await
                    .map(|c| c.map(|c| scratch.copy(c)));
                let trailers = match next {
                    Ok(None) => req.body().trailers().and_then(request::trailers),
                    _ => None,
                };
                feed.put(next, trailers);
            }
        }
    }
}
