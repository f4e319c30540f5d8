//! # tether-load
//!
//! An HTTP/1.1 load generator that measures what keep-alive is worth: persistent
//! connections, a new connection per request, N requests per connection, HTTP/1.0
//! keep-alive; closed loop (with an optional pause) or a constant total rate with latency
//! counted from each request's due time; pipelining with per-request latency; connection
//! accounting (who closed, requests per connection) and an error taxonomy. Over `https://`
//! (rustls, ALPN `http/1.1`) each new connection's handshake is timed and counted as full or
//! resumed, with session resumption on or off ([`Config::tls_resume`]) and the server's
//! certificate checked against [`TlsTrust`].
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_load::{run, Config, Target};
//!
//! let mut config = Config::new(Target::parse("http://127.0.0.1:8080/plaintext").map_err(std::io::Error::other)?);
//! config.connections = 100;
//! config.bounds.duration = Duration::from_secs(5);
//! let report = run(&config, &mut |_progress| {})?;
//! println!("{report}");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Each thread runs a single-threaded tokio runtime with its share of the connection slots;
//! each slot is a task (`conn`) that writes pre-built request bytes (`request`) and parses
//! responses in place (`response`, `chunked`) on a schedule (`schedule`), counting into its
//! thread's `stats`, which are merged into a [`Report`] at the end. A slot's `stream` is TCP
//! or TLS on TCP (`tls`, rustls driven by hand on the same socket readiness).

#![warn(missing_docs)]

mod chunked;
mod compare;
mod config;
mod conn;
mod limits;
mod report;
mod request;
mod response;
mod runner;
mod schedule;
mod stats;
mod stream;
mod target;
mod timer;
mod tls;

pub use compare::{compare, Comparison};
pub use config::{Bounds, Config, ConnMode, StatusSet, MAX_DURATION, MIN_RATE};
pub use limits::raise_nofile;
pub use report::{Connections, Errors, Handshakes, PerConnection, Report, Requests, Summary};
pub use runner::{run, Progress, DEFAULT_CAP};
pub use stats::ErrorKind;
pub use target::Target;
pub use tls::TlsTrust;
