//! Binding, worker threads, and running until a future completes.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::config::Config;
use crate::handler::Handler;
use crate::stats::{Snapshot, Stats};
use crate::worker::{self, Worker};

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
#[derive(Clone, Debug, Default)]
pub struct Builder {
    config: Config,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )*
    };
}

impl Builder {
    setters! {
        /// Worker threads (default: one per core).
        workers: usize;
        /// Listen backlog (default 4096).
        backlog: u32;
        /// Advertised idle timeout between requests (default 75 s; zero disables).
        idle_timeout: Duration;
        /// Grace added to the idle timeout before the real close (default 1 s).
        idle_grace: Duration;
        /// Time to receive a request head from its first byte (default 10 s; zero disables).
        header_timeout: Duration;
        /// Time without progress reading a body (default 30 s; zero disables).
        body_timeout: Duration;
        /// Time without progress writing a response (default 30 s; zero disables).
        write_timeout: Duration;
        /// Requests per connection (default 10,000; 0 = unlimited).
        max_requests: u64;
        /// Connection lifetime (default off: zero).
        max_lifetime: Duration;
        /// Random lowering of the two limits above, as a fraction (default 0.1).
        limit_jitter: f64;
        /// Largest request head (default 16 KiB).
        max_head_size: usize;
        /// Most header fields (default 100, at most 512).
        max_headers: usize;
        /// Longest request target (default 8 KiB).
        max_uri_len: usize;
        /// Largest request body (default 1 MiB).
        max_body_size: u64;
        /// Unread body bytes discarded to keep a connection (default 256 KiB).
        drain_bytes: u64;
        /// Time spent discarding an unread body (default 1 s).
        drain_time: Duration;
        /// Time spent reading input after shutting down the write side (default 2 s).
        linger_timeout: Duration;
        /// Send `Keep-Alive: timeout=, max=` (default on).
        keep_alive_header: bool;
        /// Initial read buffer size (default 8 KiB).
        read_buffer_size: usize;
        /// Buffers pooled per worker (default 256).
        buffer_pool: usize;
        /// Time in-flight requests get after shutdown starts (default 30 s).
        shutdown_timeout: Duration;
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
        Ok(Server {
            config: Arc::new(self.config),
            listeners,
            local_addr,
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
#[derive(Debug)]
pub struct Server {
    config: Arc<Config>,
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
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

    /// Starts the workers in the background; `make` builds each worker's handler on that
    /// worker's thread.
    pub fn spawn<M, H>(self, make: M) -> io::Result<Running>
    where
        M: Fn() -> H + Send + Sync + 'static,
        H: Handler,
    {
        let make = Arc::new(make);
        let stats = Stats::new(self.listeners.len());
        let (stop, _) = watch::channel(false);
        let mut threads = Vec::new();
        for (index, listener) in self.listeners.into_iter().enumerate() {
            let (make, stats, cfg, rx) = (
                make.clone(),
                stats.clone(),
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
                        let w = Rc::new(Worker::new(cfg, make(), stats, index));
                        // A task of its own: the future given to `block_on` is polled on every
                        // tick of the local set, the accept loop only when it has work.
                        tokio::task::spawn_local(worker::run(w, listener, rx))
                            .await
                            .map_err(|_| io::Error::other("the accept loop panicked"))
                    })
                })?;
            threads.push(thread);
        }
        Ok(Running {
            local_addr: self.local_addr,
            stats,
            stop,
            threads,
        })
    }

    /// Serves until `signal` completes, then stops accepting, lets in-flight requests end
    /// (within the shutdown timeout) and returns.
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
    pub fn run_until<M, H, F>(self, make: M, signal: F) -> io::Result<Snapshot>
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
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    stats: Stats,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters, summed over workers.
    pub fn stats(&self) -> Snapshot {
        self.stats.snapshot()
    }

    /// Stops accepting, lets connections finish within the shutdown timeout, and waits for
    /// the workers. Returns the final counters.
    pub fn shutdown(mut self) -> io::Result<Snapshot> {
        self.stop_and_join()?;
        Ok(self.stats.snapshot())
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        let _ = self.stop.send(true);
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("a worker thread panicked")),
            }
        }
        result
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
