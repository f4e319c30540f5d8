//! One worker: a thread with a current-thread runtime, its own listening socket and the
//! connections it accepted, which never leave it.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::registry::Registry;

use crate::config::Config;
use crate::conn;
use crate::handler::Handler;
use crate::pool::Pool;
use crate::stats::{bump, Counters, Stats};

pub(crate) struct Worker<H> {
    pub cfg: Arc<Config>,
    pub handler: H,
    pub pool: Pool,
    stats: Stats,
    index: usize,
    /// Set once shutdown starts: responses close, idle connections go.
    pub draining: Cell<bool>,
    /// Live connections, reachable while they wait idle.
    pub registry: Registry,
    live: Cell<usize>,
    all_closed: Notify,
}

impl<H: Handler> Worker<H> {
    pub fn new(cfg: Arc<Config>, handler: H, stats: Stats, index: usize) -> Self {
        let pool = Pool::new(cfg.buffer_pool, cfg.read_buffer_size);
        Worker {
            cfg,
            handler,
            pool,
            stats,
            index,
            draining: Cell::new(false),
            registry: Registry::default(),
            live: Cell::new(0),
            all_closed: Notify::new(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.stats.workers[self.index]
    }
}

/// Decrements the live count even if a handler panics and its task is torn down.
struct Live<H: Handler>(Rc<Worker<H>>);

impl<H: Handler> Drop for Live<H> {
    fn drop(&mut self) {
        let w = &self.0;
        w.live.set(w.live.get() - 1);
        bump(&w.counters().closed);
        if w.live.get() == 0 {
            w.all_closed.notify_one();
        }
    }
}

/// Errors that say nothing about the listener: the connection died in the queue.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Accepts until `stop` fires, then drains this worker's connections.
pub(crate) async fn run<H: Handler>(
    w: Rc<Worker<H>>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    bump(&w.counters().accepted);
                    w.live.set(w.live.get() + 1);
                    let live = Live(w.clone());
                    tokio::task::spawn_local(async move {
                        conn::serve(&live.0, stream, peer).await;
                        drop(live);
                    });
                }
                Err(e) if per_connection(&e) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin; the
                    // condition clears as connections close.
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    w.draining.set(true);
    w.registry.kick_all();
    if w.live.get() > 0 {
        let _ = tokio::time::timeout(w.cfg.shutdown_timeout, w.all_closed.notified()).await;
    }
}
