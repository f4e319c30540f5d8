//! # tether
//!
//! An HTTP/1.1 server engine on tokio whose strength is persistent connections: RFC 9112
//! keep-alive, pipelining, separate idle, header, body and write timeouts, per-connection
//! request and lifetime limits, and no heap allocation per request on a reused connection.
//!
//! ```no_run
//! use tether::{Handler, Request, Response, Server};
//!
//! struct Hello;
//! impl Handler for Hello {
//!     async fn call(&self, _req: &mut Request<'_>, res: &mut Response<'_>) -> std::io::Result<()> {
//!         res.content_type("text/plain").body_static(b"Hello, World!");
//!         Ok(())
//!     }
//! }
//!
//! let server = Server::builder().bind("127.0.0.1:8080")?;
//! let running = server.spawn(|| Hello)?;
//! // ... later
//! running.shutdown()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Data flows one way: socket → read buffer → [`parse`] → [`Handler`] → write buffer →
//! socket. The engine is three layers whose imports run one way (ARCHITECTURE.md is the
//! map): `proto` (bytes only), `conn` (one connection's life, over a [`Transport`]; its
//! `keepalive` module alone decides whether a connection lives on) and `server` (workers,
//! admission, parking, counters, drain).
//!
//! ## Memory of an idle connection
//! Between requests a connection gives its read and write buffers back to its worker's pool
//! (at most `buffer_pool` buffers are kept per worker), so an idle keep-alive connection costs
//! its socket, its tokio task and its small state machine. Once idle for
//! [`Config::park_after`] (1 s by default) it gives up its task as well and waits as a bare
//! socket in its worker's epoll set, with a record of a few hundred bytes; see BENCHMARKS.md
//! for the measure.

mod config;
mod conn;
mod lifecycle;
mod proto;
mod server;
#[cfg(feature = "tower")]
pub mod tower;

pub use config::{parse_duration, Config, Kind, Setting, PARK_AFTER_UNDER_PRESSURE};
pub use conn::body::Body;
pub use conn::exchange::BodyError;
pub use conn::handler::Handler;
pub use conn::request::Request;
pub use conn::response::Response;
pub use conn::transport::Transport;
pub use lifecycle::{CloseReason, ConnEvent, ConnState, Handshake, HandshakeFailure};
pub use proto::parse::Version;
pub use proto::status::Status;
pub use proto::{framing, parse};
/// rustls, whose types [`Builder::tls`] and [`TlsCertificate`] take.
#[cfg(feature = "tls")]
pub use rustls;
pub use server::builder::{Builder, Handle, Running, Server, Stopped};
pub use server::drain::DrainReport;
pub use server::stats::{Snapshot, HANDSHAKE_MICROS_BUCKETS, REQUESTS_PER_CONN_BUCKETS};
#[cfg(feature = "tls")]
pub use server::tls::TlsCertificate;
