//! What a connection needs from the worker that runs it: a narrow interface, defined here
//! and implemented by the server, so that the connection knows nothing of workers,
//! registries, counters or parking (and the unit tests can run it on a host of their own).

use std::cell::Cell;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::conn::buffers::Pool;
use crate::conn::handler::Handler;
use crate::lifecycle::{ConnEvent, ConnState, Handshake};

/// Why the worker woke an idle connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kick {
    /// Draining: close once idle for the minimum idle age.
    Drain,
    /// Close now: evicted for a new connection, or the drain window is over.
    Close,
}

/// The worker, as one of its connections sees it.
pub(crate) trait Host {
    /// The application's handler.
    type Handler: Handler;

    fn config(&self) -> &Config;

    fn handler(&self) -> &Self::Handler;

    /// The worker's pool of buffer sets.
    fn pool(&self) -> &Pool;

    /// Set once the server is shutting down: from then on every response closes. A cell,
    /// so that an exchange can read it when its response head is written.
    fn draining(&self) -> &Cell<bool>;

    /// Gives a new connection its id (unique per server) and its key among the worker's
    /// live connections.
    fn register(&self, now: Instant) -> (u64, usize);

    /// Records a change of state of the connection at `key`, from `from` to `event.state`:
    /// gauges, the idle order (`idle_since` is when an idle period started), the
    /// application's hook, and at `Closed` the close reason and the key's release.
    fn record(&self, key: usize, from: ConnState, event: &ConnEvent, idle_since: Instant);

    /// Counts an answered request.
    fn request_done(&self);

    /// Counts a TLS handshake by how it ended, and the time a completed one took.
    fn handshake(&self, _outcome: Handshake, _took: Duration) {}

    /// Takes the kick addressed to the connection at `key`, or registers the waker of its
    /// idle wait.
    fn poll_kick(&self, key: usize, cx: &mut Context<'_>) -> Poll<Kick>;

    /// How long a connection that has just gone idle stays in its task before it parks;
    /// `None` when it may not park now (no park, draining).
    fn park_after(&self) -> Option<Duration>;
}
