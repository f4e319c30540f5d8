//! Binding, worker threads, and running until a future completes.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::config::Config;
use crate::conn::handler::Handler;
use crate::lifecycle::ConnEvent;
use crate::server::admission::{default_max_connections, Hook, Shared};
use crate::server::drain::DrainReport;
use crate::server::stats::{Snapshot, Stats};
use crate::server::worker::{self, Worker};

/// Builds a [`Server`]: every setting of [`Config`], then [`Builder::bind`].
///
/// ```no_run
/// use std::time::Duration;
/// let server = tether::Server::builder()
///     .workers(2)
///     .idle_timeout(Duration::from_secs(30))
///     .max_requests(1000)
///     .bind("127.0.0.1:8080")?;
/// println!("listening on {}", server.local_addr());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Builder {
    config: Config,
    hook: Option<Hook>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

/// Where a server's TLS configuration comes from.
#[cfg(feature = "tls")]
#[derive(Clone)]
enum Tls {
    /// The caller's own rustls configuration.
    Config(Arc<rustls::ServerConfig>),
    /// A certificate, with ALPN and resumption from the settings.
    Certificate(Arc<crate::server::tls::TlsCertificate>),
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Builder {
    // One setter per setting of `Config`, with its doc, generated from the definition of
    // the setting in config.rs.
    crate::config::builder_setters!();

    /// Calls `hook` on every change of a connection's state (on the worker thread that
    /// owns the connection; keep it short).
    ///
    /// ```
    /// let builder = tether::Server::builder().on_conn_state(|e| {
    ///     if let Some(reason) = e.reason {
    ///         eprintln!("connection {} from {}: {:?} ({:?})", e.id, e.peer, e.state, reason);
    ///     }
    /// });
    /// ```
    pub fn on_conn_state(mut self, hook: impl Fn(&ConnEvent) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Speaks TLS on every connection, with `config` (its certificates, ALPN and session
    /// resumption are rustls's). The handshake is bounded by `handshake_timeout`; a client
    /// that stalls in it closes as `handshake_timeout`, one whose bytes are not TLS as
    /// `handshake_failed`. Everything after it (keep-alive, timeouts, limits, the drain)
    /// is the same as over TCP; an idle connection parks with its session.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(Tls::Config(config));
        self
    }

    /// Speaks TLS on every connection, presenting `cert` (which can be replaced while the
    /// server runs: [`crate::TlsCertificate::reload`]), with TLS 1.2 and 1.3, ALPN
    /// `http/1.1` and the session resumption of the settings `tls_tickets` and
    /// `tls_session_cache`. Otherwise as [`Builder::tls`].
    #[cfg(feature = "tls")]
    pub fn tls_certificate(mut self, cert: Arc<crate::server::tls::TlsCertificate>) -> Self {
        self.tls = Some(Tls::Certificate(cert));
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Checks the settings and binds one listening socket per worker (SO_REUSEPORT).
    pub fn bind(self, addr: impl ToSocketAddrs) -> io::Result<Server> {
        self.config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let first = listen(addr, self.config.backlog)?;
        // With port 0 the first socket picked the port; the others join it.
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..self.config.workers {
            listeners.push(listen(local_addr, self.config.backlog)?);
        }
        let max_connections = match self.config.max_connections {
            0 => default_max_connections(),
            n => n,
        };
        #[allow(unused_mut)]
        let mut shared = Shared::new(
            Stats::new(listeners.len()),
            self.hook,
            max_connections,
            self.config.max_connections_per_ip,
        );
        #[cfg(feature = "tls")]
        {
            shared.tls = match self.tls {
                Some(Tls::Config(config)) => Some(config),
                Some(Tls::Certificate(cert)) => Some(Arc::new(crate::server::tls::server_config(
                    cert,
                    &self.config,
                )?)),
                None => None,
            };
            if let Some(config) = &shared.tls {
                // What rustls would refuse for every connection is refused here, once.
                rustls::ServerConnection::new(config.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            }
        }
        let shared = Arc::new(shared);
        Ok(Server {
            config: Arc::new(self.config),
            listeners,
            local_addr,
            shared,
        })
    }
}

fn listen(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// A bound server, ready to run.
pub struct Server {
    config: Arc<Config>,
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// A view of a server for the application: its counters and whether it is draining. Cheap
/// to clone and to move into handlers (a readiness probe answers 503 once draining).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// The counters, summed over workers.
    pub fn stats(&self) -> Snapshot {
        self.shared.stats.snapshot()
    }

    /// The server-wide connection limit in force (derived from `RLIMIT_NOFILE` when the
    /// configuration left it at 0).
    pub fn max_connections(&self) -> usize {
        self.shared.max_connections()
    }

    /// True from the start of a shutdown.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("draining", &self.is_draining())
            .finish()
    }
}

/// What a server did, returned when it has stopped.
#[derive(Clone, Debug)]
pub struct Stopped {
    /// The final counters.
    pub stats: Snapshot,
    /// What the shutdown completed and cut.
    pub drain: DrainReport,
}

impl Server {
    /// A builder with every default.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle on the counters and the drain state, for the application.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Starts the workers in the background; `make` builds each worker's handler on that
    /// worker's thread.
    pub fn spawn<M, H>(self, make: M) -> io::Result<Running>
    where
        M: Fn() -> H + Send + Sync + 'static,
        H: Handler,
    {
        let make = Arc::new(make);
        let (stop, _) = watch::channel(false);
        let mut threads = Vec::new();
        for (index, listener) in self.listeners.into_iter().enumerate() {
            let (make, shared, cfg, rx) = (
                make.clone(),
                self.shared.clone(),
                self.config.clone(),
                stop.subscribe(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("tether-{index}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        let w = Rc::new(Worker::new(cfg, make(), shared, index));
                        // A task of its own: the future given to `block_on` is polled on every
                        // tick of the local set, the accept loop only when it has work. Its
                        // result comes back through a oneshot channel, cheaper to poll on every
                        // tick than a join handle; a panic drops the sender.
                        let (done, report) = tokio::sync::oneshot::channel();
                        tokio::task::spawn_local(async move {
                            let _ = done.send(worker::run(w, listener, rx).await);
                        });
                        report
                            .await
                            .map_err(|_| io::Error::other("the accept loop panicked"))
                    })
                })?;
            threads.push(thread);
        }
        Ok(Running {
            local_addr: self.local_addr,
            shared: self.shared,
            stop,
            threads,
        })
    }

    /// Serves until `signal` completes, then shuts down as [`Running::shutdown`] does.
    ///
    /// ```no_run
    /// # struct App;
    /// # impl tether::Handler for App {
    /// #     async fn call(&self, _: &mut tether::Request<'_>, _: &mut tether::Response<'_>) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// let server = tether::Server::builder().bind("127.0.0.1:8080")?;
    /// server.run_until(|| App, std::future::pending::<()>())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_until<M, H, F>(self, make: M, signal: F) -> io::Result<Stopped>
    where
        M: Fn() -> H + Send + Sync + 'static,
        H: Handler,
        F: Future<Output = ()>,
    {
        let running = self.spawn(make)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(signal);
        running.shutdown()
    }
}

/// A server whose workers are running.
pub struct Running {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<io::Result<DrainReport>>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters, summed over workers.
    pub fn stats(&self) -> Snapshot {
        self.shared.stats.snapshot()
    }

    /// A handle on the counters and the drain state.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Shuts down in two phases and waits for the workers.
    ///
    /// At once the listeners close (a new instance bound to the same port with
    /// SO_REUSEPORT takes the new connections) and [`Handle::is_draining`] turns true.
    /// Phase 1, the drain window (`drain_window`, 5 s): connections stay open, every
    /// response carries `Connection: close`, requests pipelined behind it are not started,
    /// and idle connections are closed once idle for `min_idle_age` (lingering close).
    /// Phase 2, until the hard deadline (`shutdown_timeout`, 30 s from the start): idle
    /// connections close at once and requests in flight may finish; whatever remains at the
    /// deadline is cut. The counts of what completed and what was cut are logged and
    /// returned.
    pub fn shutdown(mut self) -> io::Result<Stopped> {
        let drain = self.stop_and_join()?;
        let stats = self.shared.stats.snapshot();
        tracing::info!(
            connections = drain.connections,
            requests_completed = drain.requests_completed,
            connections_closed = drain.connections_closed,
            connections_cut = drain.connections_cut,
            requests_cut = drain.requests_cut,
            "shutdown complete"
        );
        Ok(Stopped { stats, drain })
    }

    fn stop_and_join(&mut self) -> io::Result<DrainReport> {
        self.shared.draining.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let mut report = DrainReport::default();
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(r)) => report += r,
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a worker thread panicked")),
            }
        }
        result.map(|()| report)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
