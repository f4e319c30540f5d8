//! Every limit and timeout of the server, each with its documented default.
//!
//! A [`Config`] is built with [`crate::Builder`]; zero durations disable a timeout.

use std::time::Duration;

/// Server settings. Construct it through [`crate::Server::builder`].
///
/// | setting | default | on breach |
/// |---|---|---|
/// | `workers` | one per core | |
/// | `backlog` | 4096 | kernel refuses SYNs |
/// | `idle_timeout` | 75 s (advertised) | close, silently |
/// | `idle_grace` | 1 s (added to `idle_timeout` before the real close) | |
/// | `header_timeout` | 10 s from the first byte of each head | `408`, close |
/// | `body_timeout` | 30 s without progress | `408`, close |
/// | `write_timeout` | 30 s without progress | close |
/// | `max_requests` | 10,000 per connection (0 = unlimited) | `Connection: close` on the last |
/// | `max_lifetime` | off | `Connection: close` at the next response |
/// | `limit_jitter` | 0.1 (up to 10% earlier) | |
/// | `max_head_size` | 16 KiB | `431` (`414` while in the request line) |
/// | `max_headers` | 100 | `431` |
/// | `max_uri_len` | 8 KiB | `414` |
/// | `max_body_size` | 1 MiB | `413` |
/// | `drain_budget` | 256 KiB and 1 s | `Connection: close` |
/// | `linger_timeout` | 2 s | |
/// | `keep_alive_header` | on | |
/// | `park_after` | 1 s idle (0 = never) | the connection gives up its task until its next request |
/// | `max_idle_tasks` | 256 per worker | idle connections beyond it park after 100 ms |
/// | `max_connections` | from `RLIMIT_NOFILE` | evict the oldest idle, else `503` |
/// | `max_connections_per_ip` | off | `429` |
/// | `min_idle_age` | 1 s | not evicted or drained before |
/// | `drain_window` | 5 s | idle connections close (phase 1 of a shutdown) |
/// | `shutdown_timeout` | 30 s | what remains is cut (phase 2) |
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker threads, each with its own current-thread runtime and listening socket.
    pub workers: usize,
    /// Listen backlog passed to `listen(2)`.
    pub backlog: u32,
    /// Idle time between requests advertised in `Keep-Alive: timeout=`.
    pub idle_timeout: Duration,
    /// Extra time after `idle_timeout` before an idle connection is really closed, so that a
    /// client honouring the advertised timeout never races the close.
    pub idle_grace: Duration,
    /// Time allowed to receive a whole request head, counted from its first byte; a new
    /// connection must also send its first byte within this time.
    pub header_timeout: Duration,
    /// Time allowed without progress while reading a request body.
    pub body_timeout: Duration,
    /// Time allowed without progress while writing a response. Progress is the socket taking
    /// more of the response: with a full send buffer, Linux reports it writable again only
    /// once about a third of the buffer has drained, so a client must read that much within
    /// the timeout (like nginx's `send_timeout`). On loopback, where the buffer grows to
    /// 4 MiB, that is about 1.4 MB; on a slow network link the buffer stays far smaller.
    pub write_timeout: Duration,
    /// Requests served per connection before it is closed (0 = unlimited).
    pub max_requests: u64,
    /// Age after which a connection is closed at its next response (zero = off).
    pub max_lifetime: Duration,
    /// Fraction (0.0..=0.5) by which `max_requests` and `max_lifetime` are randomly lowered
    /// per connection, so that connections opened together do not reconnect together.
    pub limit_jitter: f64,
    /// Largest request head (request line and headers) in bytes.
    pub max_head_size: usize,
    /// Most header fields in one request head.
    pub max_headers: usize,
    /// Longest request target in bytes.
    pub max_uri_len: usize,
    /// Largest request body in bytes.
    pub max_body_size: u64,
    /// Bytes of an unread request body the server discards to keep the connection.
    pub drain_bytes: u64,
    /// Time the server spends discarding an unread request body to keep the connection.
    pub drain_time: Duration,
    /// Longest time spent reading and discarding input after the server shut down its side.
    pub linger_timeout: Duration,
    /// Send `Keep-Alive: timeout=N, max=M` on every persistent response.
    pub keep_alive_header: bool,
    /// Initial size of a connection's read buffer.
    pub read_buffer_size: usize,
    /// Buffers each worker keeps for reuse; idle connections hold none of their own.
    pub buffer_pool: usize,
    /// Idle time after which a keep-alive connection gives up its task, timer and runtime
    /// registration and waits as a bare socket in its worker's own epoll set, resuming as a
    /// new task at its next request, its idle deadline or a drain or eviction (zero keeps
    /// every connection in its task). Only connections idle this long pay the resumption (a
    /// task and a socket registration), and an idle connection then costs a few hundred
    /// bytes instead of a task.
    pub park_after: Duration,
    /// Idle connections a worker holds in tasks before the ones going idle park sooner: after
    /// [`PARK_AFTER_UNDER_PRESSURE`] (or `park_after`, if shorter). This bounds the memory of
    /// a crowd of connections that have just gone idle (a reconnect storm, a wave of clients)
    /// without parking the connections of a busy client between its requests.
    pub max_idle_tasks: usize,
    /// Hard deadline of a shutdown, counted from its start: what remains is cut.
    pub shutdown_timeout: Duration,
    /// First phase of a shutdown: idle connections close once idle for `min_idle_age`.
    pub drain_window: Duration,
    /// Idle time before a connection may be evicted or closed by a drain, so that a request
    /// already on its way is not met by a close (like nginx's `keepalive_min_timeout`).
    pub min_idle_age: Duration,
    /// Connections over all workers; 0 derives it from `RLIMIT_NOFILE` (nine tenths of the
    /// soft limit, less 32). At the limit the least recently used idle connection of the
    /// server (idle for at least `min_idle_age`, on whichever worker holds it) is closed for
    /// the new one; when there is none the new connection gets `503` with `Retry-After: 1`
    /// and is closed.
    pub max_connections: usize,
    /// Connections per client IP address (0 = no limit); beyond it `429`.
    pub max_connections_per_ip: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backlog: 4096,
            idle_timeout: Duration::from_secs(75),
            idle_grace: Duration::from_secs(1),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_requests: 10_000,
            max_lifetime: Duration::ZERO,
            limit_jitter: 0.1,
            max_head_size: 16 * 1024,
            max_headers: 100,
            max_uri_len: 8 * 1024,
            max_body_size: 1024 * 1024,
            drain_bytes: 256 * 1024,
            drain_time: Duration::from_secs(1),
            linger_timeout: Duration::from_secs(2),
            keep_alive_header: true,
            read_buffer_size: 8 * 1024,
            buffer_pool: 256,
            park_after: Duration::from_secs(1),
            max_idle_tasks: 256,
            shutdown_timeout: Duration::from_secs(30),
            drain_window: Duration::from_secs(5),
            min_idle_age: Duration::from_secs(1),
            max_connections: 0,
            max_connections_per_ip: 0,
        }
    }
}

/// How long a connection stays idle in its task before it parks when its worker already holds
/// [`Config::max_idle_tasks`] idle tasks: longer than the gap between the requests of a
/// client in a request loop, so that such a client does not pay a resumption per request.
pub const PARK_AFTER_UNDER_PRESSURE: Duration = Duration::from_millis(100);

pub use crate::proto::parse::MAX_HEADERS_CAP;

impl Config {
    /// Checks ranges; the builder calls this before binding.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 {
            return Err("workers must be at least 1".into());
        }
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_CAP {
            return Err(format!("max_headers must be 1..={MAX_HEADERS_CAP}"));
        }
        if self.max_head_size < 64 {
            return Err("max_head_size must be at least 64 bytes".into());
        }
        if !(0.0..=0.5).contains(&self.limit_jitter) {
            return Err("limit_jitter must be within 0.0..=0.5".into());
        }
        if self.read_buffer_size < 512 {
            return Err("read_buffer_size must be at least 512 bytes".into());
        }
        Ok(())
    }
}
