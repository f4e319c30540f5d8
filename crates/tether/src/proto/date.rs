//! The `Date` header line, formatted at most once a second per worker thread.
//!
//! The clock is read at most once per poll of a connection's task (the worker calls
//! [`invalidate`] before each poll), when the first response of that poll is written, not for
//! every response: the responses to a batch of pipelined requests share one reading, as
//! nginx's share the time of an event loop iteration, and a handler that waited is polled
//! again, so it answers with a fresh date.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`
const LINE_LEN: usize = 6 + 29 + 2;

struct Cached {
    second: u64,
    line: [u8; LINE_LEN],
    /// The clock must be read before the next line is written.
    stale: bool,
}

thread_local! {
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached { second: u64::MAX, line: [0; LINE_LEN], stale: true })
    };
}

/// Marks the cached second stale: the next `Date` line reads the clock.
pub(crate) fn invalidate() {
    CACHE.with(|c| c.borrow_mut().stale = true);
}

/// Seconds since the epoch from the coarse clock: a header with whole seconds needs no
/// finer reading, and the coarse one is a load from memory shared with the kernel.
fn coarse_second() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write into.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
        ts.tv_sec as u64
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

fn refresh_cache(c: &mut Cached) {
    c.stale = false;
    let second = coarse_second();
    if second != c.second {
        c.second = second;
        let now = UNIX_EPOCH + std::time::Duration::from_secs(second);
        let mut line: &mut [u8] = &mut c.line;
        // Display of HttpDate writes into the fixed buffer without allocating.
        let _ = write!(line, "Date: {}\r\n", httpdate::HttpDate::from(now));
    }
}

/// Appends the current `Date` header line to `out` (reading the clock if it is stale).
pub(crate) fn write_date_line(out: &mut Vec<u8>) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.stale {
            refresh_cache(&mut c);
        }
        out.extend_from_slice(&c.line);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_a_full_line() {
        let mut out = Vec::new();
        super::write_date_line(&mut out);
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.starts_with("Date: ") && s.ends_with(" GMT\r\n"), "{s:?}");
        assert_eq!(out.len(), super::LINE_LEN);
    }
}
