//! Running a load: one thread per share of the connections, each with its own
//! single-threaded runtime, then the merge of what they measured.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::conn::{per_conn_limit, Conn, Shared};
use crate::limits;
use crate::report::Report;
use crate::request::RequestBytes;
use crate::stats::{Live, Stats};
use crate::timer::Timer;
use crate::tls::TlsClient;

/// How often the progress callback is called.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Descriptors kept for everything that is not a connection.
const SPARE_FDS: u64 = 64;
/// With `-n` and no `-d`, the run still stops after this.
pub const DEFAULT_CAP: Duration = Duration::from_secs(600);

/// A glimpse of a run in progress.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time since the start (warm-up included).
    pub elapsed: Duration,
    /// Whether the warm-up is still running.
    pub warming_up: bool,
    /// Measured requests finished so far.
    pub requests: u64,
    /// Of those, failed.
    pub errors: u64,
    /// The measured requests in all, when the run is bounded by a count.
    pub total: Option<u64>,
    /// Warm-up plus measurement.
    pub length: Duration,
}

/// Runs the load `config` describes and reports it. `progress` is called about four times
/// a second while it runs.
pub fn run(config: &Config, progress: &mut dyn FnMut(&Progress)) -> io::Result<Report> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let threads = config.threads.min(config.connections).max(1);
    let limit = limits::raise_nofile(config.connections as u64 + SPARE_FDS);
    if let Some(limit) = limit {
        if limit < config.connections as u64 + SPARE_FDS {
            return Err(io::Error::other(format!(
                "{} connections need more open files than allowed ({limit}); raise the hard \
                 limit (ulimit -Hn)",
                config.connections
            )));
        }
    }
    // One client configuration for the run: over https every connection resumes from its
    // session store (when resumption is on), whichever thread opened the earlier one.
    let tls = TlsClient::new(config)?;
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let shared = Arc::new(Shared {
        request: RequestBytes::new(config),
        start,
        measure_from,
        end: measure_from + config.bounds.duration,
        per_conn: per_conn_limit(config.mode),
        config: config.clone(),
        tls,
    });

    let lives: Vec<Arc<Live>> = (0..threads).map(|_| Arc::new(Live::default())).collect();
    let (done_tx, done_rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for (t, live) in lives.iter().enumerate() {
        let slots: Vec<(usize, Option<u64>)> = (t..config.connections)
            .step_by(threads)
            .map(|i| (i, budget(config, i)))
            .filter(|(_, b)| *b != Some(0))
            .collect();
        let shared = Arc::clone(&shared);
        let live = Arc::clone(live);
        let done = done_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || {
                let result = run_thread(shared, live, slots);
                let _ = done.send(());
                result
            })?;
        handles.push(handle);
    }
    drop(done_tx);

    let length = config.warmup + config.bounds.duration;
    let mut finished = 0;
    while finished < threads {
        match done_rx.recv_timeout(PROGRESS_EVERY) {
            Ok(()) => finished += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        progress(&Progress {
            elapsed: now - start,
            warming_up: now < measure_from,
            requests: lives
                .iter()
                .map(|l| l.requests.load(Ordering::Relaxed))
                .sum(),
            errors: lives.iter().map(|l| l.errors.load(Ordering::Relaxed)).sum(),
            total: config.bounds.requests,
            length,
        });
    }

    let mut stats = Stats::default();
    let mut last = measure_from;
    for h in handles {
        let (s, finished_at) = h
            .join()
            .map_err(|_| io::Error::other("a load thread panicked"))??;
        stats.merge(&s);
        last = last.max(finished_at);
    }
    let elapsed = last.min(shared.end).saturating_duration_since(measure_from);
    Ok(Report::new(config, &stats, elapsed))
}

/// Connection `index`'s share of the request count.
fn budget(config: &Config, index: usize) -> Option<u64> {
    let n = config.bounds.requests?;
    let c = config.connections as u64;
    let i = index as u64;
    Some(n / c + u64::from(i < n % c))
}

/// One thread: its runtime, its connections, its stats; returns them with the time its
/// last connection finished.
fn run_thread(
    shared: Arc<Shared>,
    live: Arc<Live>,
    slots: Vec<(usize, Option<u64>)>,
) -> io::Result<(Stats, Instant)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let stats = Rc::new(RefCell::new(Stats::new(shared.tls.is_some())));
    let last = local.block_on(&rt, async {
        let timer = Timer::new()?;
        tokio::task::spawn_local(timer.clone().drive());
        let tasks: Vec<_> = slots
            .into_iter()
            .map(|(index, budget)| {
                let conn = Conn::new(
                    Arc::clone(&shared),
                    Rc::clone(&stats),
                    Arc::clone(&live),
                    timer.clone(),
                    index,
                    budget,
                );
                tokio::task::spawn_local(conn.run())
            })
            .collect();
        let mut last = shared.measure_from;
        for t in tasks {
            if let Ok(at) = t.await {
                last = last.max(at);
            }
        }
        Ok::<_, io::Error>(last)
    })?;
    drop(local);
    let stats = Rc::try_unwrap(stats)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| rc.borrow().clone());
    Ok((stats, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;

    #[test]
    fn budgets_add_up() {
        let mut c = Config::new(Target::parse("http://127.0.0.1:1/").expect("target"));
        c.connections = 7;
        c.bounds.requests = Some(100);
        let total: u64 = (0..7).map(|i| budget(&c, i).expect("counted")).sum();
        assert_eq!(total, 100);
        assert_eq!(budget(&c, 0), Some(15));
        assert_eq!(budget(&c, 6), Some(14));
        c.bounds.requests = None;
        assert_eq!(budget(&c, 0), None);
    }
}
