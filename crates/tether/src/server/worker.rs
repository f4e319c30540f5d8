//! One worker: a thread with a current-thread runtime, its own listening socket and the
//! connections it accepted, which never leave it.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Config, PARK_AFTER_UNDER_PRESSURE};
use crate::conn::buffers::Pool;
use crate::conn::handler::Handler;
use crate::conn::host::{Host, Kick};
use crate::conn::stream::Stream;
use crate::conn::timed_io::Timer;
#[cfg(feature = "tls")]
use crate::conn::tls::TlsStream;
use crate::conn::{self, linger, Parking, Start};
use crate::lifecycle::{CloseReason, ConnEvent, ConnState, Handshake};
use crate::proto::status::Status;
use crate::proto::{date, encode};
use crate::server::admission::{Hook, Shared, Ticket};
use crate::server::drain::{self, DrainReport, Live};
use crate::server::park::Park;
use crate::server::registry::{Parked, Registry};
use crate::server::stats::{bump, Counters};

pub(crate) struct Worker<H> {
    pub cfg: Arc<Config>,
    pub handler: H,
    pub pool: Pool,
    pub shared: Arc<Shared>,
    index: usize,
    /// Set once shutdown starts: responses close, idle connections go.
    pub draining: Cell<bool>,
    /// Live connections, reachable while they wait idle.
    pub registry: Registry,
    /// Hook for state changes, if the application set one.
    pub hook: Option<Hook>,
    /// Where idle connections park, unless parking is off.
    pub park: Option<Park>,
    next_id: Cell<u64>,
    /// Connections admitted and not yet closed (parked ones included).
    pub live: Live,
}

impl<H: Handler> Worker<H> {
    pub fn new(cfg: Arc<Config>, handler: H, shared: Arc<Shared>, index: usize) -> Self {
        let pool = Pool::new(cfg.buffer_pool, cfg.read_buffer_size);
        Worker {
            park: (!cfg.park_after.is_zero()).then(Park::new).flatten(),
            hook: shared.hook.clone(),
            cfg,
            handler,
            pool,
            shared,
            index,
            draining: Cell::new(false),
            registry: Registry::default(),
            next_id: Cell::new(0),
            live: Live::default(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.stats.workers[self.index]
    }

    /// An id unique across the workers of a server.
    pub fn next_id(&self) -> u64 {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        n * self.shared.stats.workers.len() as u64 + self.index as u64
    }

    /// Admits a connection within the limits, evicting the least recently used idle
    /// connection of the server when it is full.
    fn admit(&self, peer: SocketAddr) -> Result<Ticket, Status> {
        self.shared.admit(peer.ip(), || self.evict_lru())
    }

    /// Closes the least recently used idle connection of all workers (idle for at least
    /// `min_idle_age`): here at once, or by asking the worker that holds it.
    fn evict_lru(&self) -> bool {
        let now = Instant::now();
        match self.shared.lru_worker(now, self.cfg.min_idle_age) {
            Some(i) if i != self.index => {
                let slot = &self.shared.slots[i];
                slot.requested.fetch_add(1, Ordering::Relaxed);
                slot.wake.notify_one();
                true
            }
            _ => self.registry.evict_oldest_idle(now, self.cfg.min_idle_age),
        }
    }

    /// Shows the other workers when this worker's oldest idle connection became idle.
    pub fn publish_oldest_idle(&self) {
        if self.shared.slots.len() > 1 {
            let t = self
                .registry
                .oldest_idle_since()
                .map_or(u64::MAX, |t| self.shared.nanos(t));
            self.shared.slots[self.index]
                .oldest_idle
                .store(t, Ordering::Relaxed);
        }
    }
}

/// What a connection needs of its worker.
impl<H: Handler> Host for Worker<H> {
    type Handler = H;

    #[inline]
    fn config(&self) -> &Config {
        &self.cfg
    }

    #[inline]
    fn handler(&self) -> &H {
        &self.handler
    }

    #[inline]
    fn pool(&self) -> &Pool {
        &self.pool
    }

    #[inline]
    fn draining(&self) -> &Cell<bool> {
        &self.draining
    }

    fn register(&self, now: Instant) -> (u64, usize) {
        (self.next_id(), self.registry.insert(now))
    }

    #[inline(always)]
    fn record(&self, key: usize, from: ConnState, e: &ConnEvent, idle_since: Instant) {
        self.counters().transition(from, e.state);
        // Published when a connection goes idle or closes, after its last write: fresh
        // enough for a reader once a second, and not on every change of state.
        if matches!(e.state, ConnState::Idle | ConnState::Closed) {
            self.counters().traffic(crate::conn::transport::traffic());
        }
        let lru_changed = match e.state {
            ConnState::Closed => {
                self.counters()
                    .closed(e.reason.unwrap_or(CloseReason::IoError), e.requests);
                self.registry.remove(key)
            }
            _ => self.registry.set_state(key, e.state, idle_since),
        };
        if lru_changed {
            self.publish_oldest_idle();
        }
        if let Some(hook) = &self.hook {
            hook(e);
        }
    }

    fn handshake(&self, outcome: Handshake, took: Duration) {
        self.counters().handshake(outcome, took);
    }

    #[inline]
    fn request_done(&self) {
        bump(&self.counters().requests);
    }

    #[inline]
    fn poll_kick(&self, key: usize, cx: &mut std::task::Context<'_>) -> std::task::Poll<Kick> {
        self.registry.poll_kick(key, cx)
    }

    fn park_after(&self) -> Option<Duration> {
        let cfg = &*self.cfg;
        let mut after = cfg.park_after;
        if self.counters().idle_tasks() > cfg.max_idle_tasks as u64 {
            after = after.min(PARK_AFTER_UNDER_PRESSURE);
        }
        let may = !after.is_zero()
            && !self.draining.get()
            && self.park.as_ref().is_some_and(|p| p.is_watched());
        may.then_some(after)
    }
}

impl<H> Worker<H> {
    /// Takes a connection out of the live count.
    pub fn connection_ended(&self) {
        self.live.remove();
    }
}

/// Holds a connection's place in the live count (and its admission ticket) even if a
/// handler panics and the task is torn down. A parking connection takes the ticket along
/// and keeps its place.
struct Held<H: Handler> {
    w: Rc<Worker<H>>,
    ticket: Option<Ticket>,
}

impl<H: Handler> Drop for Held<H> {
    fn drop(&mut self) {
        if self.ticket.is_some() {
            self.w.connection_ended();
        }
    }
}

/// Runs a connection's task (counted live already): a new one, or one resumed from a park.
pub(crate) fn spawn_conn<H: Handler>(
    w: &Rc<Worker<H>>,
    ticket: Ticket,
    stream: Stream,
    start: Start,
) {
    let live = Held {
        w: w.clone(),
        ticket: Some(ticket),
    };
    tokio::task::spawn_local(async move {
        let mut live = live;
        let mut serve = std::pin::pin!(conn::serve(&*live.w, stream, start));
        let parking = std::future::poll_fn(|cx| {
            date::invalidate();
            serve.as_mut().poll(cx)
        })
        .await;
        if let Some(parking) = parking {
            if let Some(ticket) = live.ticket.take() {
                park(&live.w, parking, ticket);
            }
        }
    });
}

/// Hands a connection whose task ended idle to the worker's park; if it cannot park, it
/// resumes at once.
fn park<H: Handler>(w: &Rc<Worker<H>>, (stream, key, conn): Parking, ticket: Ticket) {
    let p = Box::new(Parked {
        conn,
        stream,
        ticket,
    });
    let refused = match &w.park {
        Some(park) => park.park(&w.registry, w.counters(), key, p).err(),
        // Not reached: a connection parks only where there is a park.
        None => Some(p),
    };
    if let Some(p) = refused {
        restart(w, key, *p);
    }
}

/// Gives a parked connection a task again.
fn restart<H: Handler>(w: &Rc<Worker<H>>, key: usize, p: Parked) {
    let Parked {
        conn,
        stream,
        ticket,
    } = p;
    match stream.resume() {
        Ok(stream) => spawn_conn(w, ticket, stream, Start::Resumed(key, Box::new(conn))),
        Err(e) => {
            tracing::warn!(error = %e, "a parked connection could not resume");
            conn::lost(&**w, key, &conn);
            drop(ticket);
            w.connection_ended();
        }
    }
}

/// Watches the worker's parked connections and resumes each when it is due.
async fn watch_parked<H: Handler>(w: Rc<Worker<H>>) {
    let Some(park) = &w.park else {
        return;
    };
    let mut watcher = park.watcher();
    let mut keys = Vec::new();
    loop {
        park.due(&w.registry, &mut watcher, &mut keys).await;
        for key in keys.drain(..) {
            if let Some(p) = park.take(&w.registry, w.counters(), key) {
                restart(&w, key, *p);
            }
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

/// Accepts until `stop` fires, then drains this worker's connections in two phases.
/// Carries out the evictions other workers ask of this one.
async fn evictor<H: Handler>(w: Rc<Worker<H>>) {
    let slot = &w.shared.slots[w.index];
    loop {
        slot.wake.notified().await;
        for _ in 0..slot.requested.swap(0, Ordering::Relaxed) {
            // The oldest may have woken meanwhile: the next oldest goes (or none, and the
            // server holds one connection over its limit until one closes).
            w.registry
                .evict_oldest_idle(Instant::now(), w.cfg.min_idle_age);
        }
    }
}

pub(crate) async fn run<H: Handler>(
    w: Rc<Worker<H>>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> DrainReport {
    let evictor = (w.shared.slots.len() > 1).then(|| tokio::task::spawn_local(evictor(w.clone())));
    if w.park.is_some() {
        tokio::task::spawn_local(watch_parked(w.clone()));
    }
    let heartbeat = tokio::task::spawn_local(heartbeat());
    let mut last_warning: Option<Instant> = None;
    // One wait for the stop, not a new one per accepted connection.
    let mut stopped = std::pin::pin!(stop.changed());
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => accept(&w, stream, peer),
                Err(e) if per_connection(&e) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin; the
                    // condition clears as connections close. One warning a second at most.
                    let now = Instant::now();
                    if last_warning.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "accept failed; backing off");
                        last_warning = Some(now);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let start = Instant::now();
    // Connections the kernel already completed are ours: take them before closing the
    // listener, which would reset them. They are served with `Connection: close`.
    w.draining.set(true);
    // accept(2) itself, not the runtime's cached readiness, which may not have seen them.
    if let Ok(listener) = listener.into_std() {
        while let Ok((stream, peer)) = listener.accept() {
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                accept(&w, stream, peer);
            }
        }
    }
    if let Some(e) = evictor {
        e.abort();
    }
    heartbeat.abort();
    let requests = || w.counters().requests.load(Ordering::Relaxed);
    drain::drain(&w.cfg, &w.registry, &w.live, requests, start).await
}

/// Keeps the runtime's timer driver due to wake within a second. tokio wakes its driver
/// through an eventfd whenever a timer is armed before the driver's next wake-up; without
/// an earlier timer, every new connection arming its header timeout (seconds away) would
/// cost that write and an extra turn of the driver.
async fn heartbeat() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

fn accept<H: Handler>(w: &Rc<Worker<H>>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    match w.admit(peer) {
        Ok(ticket) => {
            #[cfg(feature = "tls")]
            let stream = match &w.shared.tls {
                Some(config) => match TlsStream::new(stream, config.clone()) {
                    Ok(tls) => Stream::Tls(Box::new(tls)),
                    Err(e) => {
                        // rustls refuses the configuration itself: no connection can be served.
                        tracing::error!(error = %e, "TLS refused the server configuration");
                        return;
                    }
                },
                None => Stream::Tcp(stream),
            };
            #[cfg(not(feature = "tls"))]
            let stream = Stream::Tcp(stream);
            bump(&w.counters().accepted);
            w.live.add();
            spawn_conn(w, ticket, stream, Start::New(peer));
        }
        Err(status) => {
            bump(&w.counters().refused);
            let status = (!w.shared.speaks_tls()).then_some(status);
            tokio::task::spawn_local(refuse(stream, status));
        }
    }
}

/// Answers a connection over a limit with a canned response and closes it, lingering
/// briefly so that the client sees the answer rather than a reset.
///
/// Over TLS (`status` none) nothing is answered: an answer would cost the handshake the
/// limit is there to spare, and one in clear text is no answer to a TLS client.
async fn refuse(stream: TcpStream, status: Option<Status>) {
    // The socket's send buffer is empty: the write completes at once or not at all.
    if let Some(status) = status {
        if stream.try_write(encode::refusal(status)).is_err() {
            return;
        }
    }
    let mut sink = [0u8; 512];
    let until = Instant::now() + Duration::from_millis(500);
    linger::linger(&stream, &mut sink, &mut Timer::new(), Some(until)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::body::Body;
    use crate::conn::exchange::Exchange;
    use crate::conn::request::Request;
    use crate::conn::response::Response;
    use crate::proto::parse::Head;
    use crate::server::stats::Stats;

    struct Hello;
    impl Handler for Hello {
        async fn call(&self, _: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
            res.body_static(b"Hello, World!");
            Ok(())
        }
    }

    /// The connection future is what a connection costs in user space, besides its socket
    /// registration, until it parks: a guard against growth (1,200 bytes when this was
    /// written).
    #[test]
    fn connection_future_is_small() {
        fn size<F: std::future::Future>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let stream = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let peer = stream.local_addr().unwrap();
            let shared = Shared::new(Stats::new(1), None, 16, 0);
            let w = Worker::new(Default::default(), Hello, Arc::new(shared), 0);
            let fut = conn::serve(&w, Stream::Tcp(stream), Start::New(peer));
            let n = size(&fut);
            println!(
                "connection future: {n} bytes; exchange {}, body {}, response {}, head {}",
                std::mem::size_of::<Exchange>(),
                std::mem::size_of::<Body>(),
                std::mem::size_of::<Response>(),
                std::mem::size_of::<Head>()
            );
            assert!(n <= 1232, "connection future grew to {n} bytes");
        });
    }
}
