//! Waiting with a deadline: polling for state that has no event, and a value whose changes
//! wake its waiters.

use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for anything an in-process server is expected to do.
pub const WAIT: Duration = Duration::from_secs(5);

/// Pause between two looks of [`eventually`].
const POLL: Duration = Duration::from_millis(1);

/// Polls `check` until it holds; panics naming `what` after [`WAIT`]. For state that has no
/// event to wait on, such as counters.
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(WAIT, what, check);
}

/// Polls `check` until it holds; panics naming `what` after `limit`.
pub fn eventually_within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(POLL);
    }
}

/// A value behind a mutex whose every change wakes those waiting on it.
#[derive(Debug, Default)]
pub struct Watched<T> {
    value: Mutex<T>,
    changed: Condvar,
}

impl<T> Watched<T> {
    /// Changes the value with `change` and wakes the waiters.
    pub fn update(&self, change: impl FnOnce(&mut T)) {
        change(&mut self.value.lock().unwrap());
        self.changed.notify_all();
    }

    /// What `look` makes of the value now.
    pub fn read<R>(&self, look: impl FnOnce(&T) -> R) -> R {
        look(&self.value.lock().unwrap())
    }

    /// Waits up to `limit` for `find` to make something of the value; `None` when it did not
    /// within the limit.
    pub fn wait_for<R>(&self, limit: Duration, mut find: impl FnMut(&T) -> Option<R>) -> Option<R> {
        let deadline = Instant::now() + limit;
        let mut value = self.value.lock().unwrap();
        loop {
            if let Some(found) = find(&value) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            value = self.changed.wait_timeout(value, left).unwrap().0;
        }
    }
}
