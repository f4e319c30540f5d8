//! Due times with microsecond precision: one `timerfd` per thread armed to the earliest due
//! time of its connections, and a heap of wakers. tokio's own timers round up to whole
//! milliseconds, which would stretch a 1 ms `--interval` to nearly 2 ms and make every
//! constant-rate request up to a millisecond late.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A waker due at a time.
struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that the `BinaryHeap` (a max-heap) pops the earliest entry first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Inner {
    fd: AsyncFd<OwnedFd>,
    heap: RefCell<BinaryHeap<Entry>>,
    /// The time the timerfd is armed for, if armed.
    armed: Cell<Option<Instant>>,
    seq: Cell<u64>,
}

/// One thread's precise timer. Cloning shares it.
#[derive(Clone)]
pub(crate) struct Timer {
    inner: Rc<Inner>,
}

impl Timer {
    /// A timer on a new non-blocking `timerfd`; must be created inside a tokio runtime.
    pub fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `fd` is open, and owned by the AsyncFd from here on, so it stays the same
        // descriptor for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Timer {
            inner: Rc::new(Inner {
                fd,
                heap: RefCell::new(BinaryHeap::new()),
                armed: Cell::new(None),
                seq: Cell::new(0),
            }),
        })
    }

    /// Wakes `waker` at `at` (or soon after). A waker registered for a wait that ended
    /// otherwise is woken anyway, which only makes its task look again.
    pub fn register(&self, at: Instant, waker: &Waker) {
        let inner = &self.inner;
        let seq = inner.seq.get();
        inner.seq.set(seq + 1);
        inner.heap.borrow_mut().push(Entry {
            at,
            seq,
            waker: waker.clone(),
        });
        if inner.armed.get().is_none_or(|armed| at < armed) {
            self.arm(at);
        }
    }

    fn arm(&self, at: Instant) {
        let left = at.saturating_duration_since(Instant::now());
        // A zero it_value would disarm the timer: fire after a nanosecond instead.
        let left = left.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the descriptor is a timerfd owned by `self`; `spec` lives on this stack
        // and the old value is not asked for.
        let rc = unsafe {
            libc::timerfd_settime(self.inner.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        };
        self.inner.armed.set((rc == 0).then_some(at));
    }

    /// Fires due entries as the timerfd expires, for as long as the runtime runs it.
    pub async fn drive(self) {
        loop {
            let Ok(mut guard) = self.inner.fd.readable().await else {
                return;
            };
            let mut expirations = [0u8; 8];
            // Reading consumes the expiry, after which the timerfd is not readable until it
            // is re-armed: forget the readiness so the next wait really waits.
            let read = guard.try_io(|fd| {
                // SAFETY: reads at most 8 bytes into an 8-byte buffer on this stack.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            if let Ok(Ok(())) = read {
                guard.clear_ready();
            }
            self.inner.armed.set(None);
            self.fire();
        }
    }

    /// Wakes every entry that is due and re-arms for the earliest one left.
    fn fire(&self) {
        let now = Instant::now();
        let next = {
            let mut heap = self.inner.heap.borrow_mut();
            while heap.peek().is_some_and(|e| e.at <= now) {
                if let Some(e) = heap.pop() {
                    e.waker.wake();
                }
            }
            heap.peek().map(|e| e.at)
        };
        if let Some(at) = next {
            self.arm(at);
        }
    }
}
