//! An in-process tether server on an ephemeral loopback port.

use std::time::Duration;

use tether::{Builder, Handler, Running, Server};

use crate::handler::TestHandler;

/// A builder with one worker and a bounded shutdown, so that a failing test cannot hang on
/// dropping its server.
pub fn builder() -> Builder {
    Server::builder()
        .workers(1)
        .shutdown_timeout(Duration::from_secs(2))
}

/// A builder with one worker and no limit on the requests of a connection (nor jitter), for
/// counting many requests over few connections.
pub fn unlimited() -> Builder {
    Server::builder()
        .workers(1)
        .max_requests(0)
        .limit_jitter(0.0)
        .shutdown_timeout(Duration::from_secs(5))
}

/// Binds `builder` to `127.0.0.1:0` and runs [`TestHandler`].
pub fn start(builder: Builder) -> Running {
    spawn(builder, || TestHandler)
}

/// Binds `builder` to `127.0.0.1:0` and runs the handlers `make` builds (one per worker).
pub fn spawn<H: Handler>(
    builder: Builder,
    make: impl Fn() -> H + Send + Sync + 'static,
) -> Running {
    builder
        .bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .spawn(make)
        .expect("spawn the server")
}
