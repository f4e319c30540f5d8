//! Parked connections: an idle keep-alive connection that has waited
//! [`crate::Config::park_after`] gives up its task, its timer and its runtime registration,
//! and waits as a bare socket in its worker's own epoll set, with a small record in the
//! registry. It resumes as a new task when the socket turns readable (a request, or the
//! client's close), when its idle deadline passes, or when the worker kicks it (eviction,
//! drain). The resumed task takes up the idle wait where it was, so every close still goes
//! through the connection state machine.
//!
//! Why: held in a task, an idle connection costs the task's future (about 1.2 KiB), a timer
//! and the runtime's readiness record, about 2 KiB in all; parked, it costs its [`Parked`]
//! record in the registry's slab and a deadline entry. Only connections idle for
//! `park_after` pay for the resumption: a task, a timer and a socket registration.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Poll, Waker};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{sleep_until, Instant, Sleep};

use crate::server::registry::{Parked, Registry};
use crate::server::stats::{bump, drop_one, Counters};

/// One worker's park: an epoll set of parked sockets and their idle deadlines.
pub(crate) struct Park {
    epoll: AsyncFd<OwnedFd>,
    /// `(idle deadline, registry key, connection id)` of parked connections, earliest first.
    /// An entry whose connection resumed meanwhile is skipped when it comes up, and swept
    /// out when such entries outnumber the parked connections.
    deadlines: RefCell<BinaryHeap<Reverse<(Instant, usize, u64)>>>,
    /// Set while the watcher runs: connections park only then.
    watched: Cell<bool>,
    /// The watcher's waker.
    watcher: Cell<Option<Waker>>,
}

/// How many readiness events the watcher takes per system call.
const BATCH: usize = 64;

impl Park {
    /// A park (within the worker's runtime), or `None` when the kernel refuses an epoll set:
    /// connections then stay in their tasks.
    pub fn new() -> Option<Park> {
        let epoll = Self::epoll().inspect_err(|e| {
            tracing::warn!(error = %e, "no epoll set: idle connections will not park");
        });
        Some(Park {
            epoll: epoll.ok()?,
            deadlines: RefCell::new(BinaryHeap::new()),
            watched: Cell::new(false),
            watcher: Cell::new(None),
        })
    }

    fn epoll() -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: epoll_create1 takes no pointer; a non-negative result is a new descriptor
        // that nothing else owns.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above; the descriptor is owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an `OwnedFd` names the same open descriptor for as long as it lives.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(Into::into)
    }

    /// True while parked connections are watched (and so may park).
    pub fn is_watched(&self) -> bool {
        self.watched.get()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, key: usize) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: key as u64,
        };
        // SAFETY: both descriptors are open (the socket's owner is the caller's), and the
        // event is a valid, initialised struct that the kernel only reads.
        let r = unsafe { libc::epoll_ctl(self.epoll.get_ref().as_raw_fd(), op, fd, &mut event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes the ready events without waiting; returns how many.
    fn ready(&self, events: &mut [libc::epoll_event; BATCH]) -> usize {
        // SAFETY: the buffer holds BATCH events and the kernel writes at most that many.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.get_ref().as_raw_fd(),
                events.as_mut_ptr(),
                BATCH as libc::c_int,
                0,
            )
        };
        n.max(0) as usize
    }
}

impl Park {
    /// Parks a connection whose task has ended: its socket joins the epoll set and its
    /// record stays in its registry entry. Gives the record back when the socket cannot
    /// join; the caller resumes the connection at once, and it tries again after its next
    /// idle period.
    pub fn park(
        &self,
        registry: &Registry,
        counters: &Counters,
        key: usize,
        p: Box<Parked>,
    ) -> Result<(), Box<Parked>> {
        if let Err(e) = self.ctl(libc::EPOLL_CTL_ADD, p.stream.socket.as_raw_fd(), key) {
            tracing::debug!(error = %e, "connection could not park");
            return Err(p);
        }
        bump(&counters.parked);
        if let Some(d) = p.conn.idle_deadline {
            let mut deadlines = self.deadlines.borrow_mut();
            let parked = counters.parked.load(std::sync::atomic::Ordering::Relaxed) as usize;
            if deadlines.len() > 2 * parked + 64 {
                deadlines.retain(|Reverse((_, key, id))| registry.parked_id(*key) == Some(*id));
            }
            let earliest = deadlines
                .peek()
                .is_none_or(|Reverse((first, ..))| d < *first);
            deadlines.push(Reverse((d, key, p.conn.id)));
            if earliest {
                if let Some(waker) = self.watcher.take() {
                    waker.wake();
                }
            }
        }
        registry.park(key, p);
        Ok(())
    }

    /// Takes a parked connection out of the park, for its task to resume.
    pub fn take(
        &self,
        registry: &Registry,
        counters: &Counters,
        key: usize,
    ) -> Option<Box<Parked>> {
        let p = registry.unpark(key)?;
        // Closing the socket would remove it from the set too; it lives on, so it must leave.
        let _ = self.ctl(libc::EPOLL_CTL_DEL, p.stream.socket.as_raw_fd(), key);
        drop_one(&counters.parked);
        Some(p)
    }

    /// Starts watching: from here on connections may park. The watcher waits in
    /// [`Park::due`], again and again.
    pub fn watcher(&self) -> Watcher {
        self.watched.set(true);
        let far = Instant::now() + std::time::Duration::from_secs(86400 * 365);
        Watcher {
            sleep: Box::pin(sleep_until(far)),
            events: [libc::epoll_event { events: 0, u64: 0 }; BATCH],
        }
    }

    /// Waits until parked connections are due to resume (their socket turned readable, their
    /// idle deadline passed, or the worker kicked them) and appends their keys to `keys`.
    pub async fn due(&self, registry: &Registry, watcher: &mut Watcher, keys: &mut Vec<usize>) {
        let Watcher { sleep, events } = watcher;
        poll_fn(|cx| {
            let _ = registry.poll_resumes(keys, cx);
            if let Poll::Ready(Ok(mut guard)) = self.epoll.poll_read_ready(cx) {
                let n = self.ready(events);
                keys.extend(events[..n].iter().map(|e| e.u64 as usize));
                if n < BATCH {
                    guard.clear_ready();
                    // Polled again so that the cleared readiness registers this waker.
                    cx.waker().wake_by_ref();
                }
            }
            let now = Instant::now();
            let mut deadlines = self.deadlines.borrow_mut();
            while let Some(&Reverse((d, key, id))) = deadlines.peek() {
                if d > now {
                    break;
                }
                deadlines.pop();
                if registry.parked_id(key) == Some(id) {
                    keys.push(key);
                }
            }
            // Woken by a park whose deadline comes before the one the timer is set for.
            self.watcher.set(Some(cx.waker().clone()));
            if let Some(&Reverse((d, ..))) = deadlines.peek() {
                if sleep.deadline() != d {
                    sleep.as_mut().reset(d);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
            }
            if keys.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// The state of the task that watches a park.
pub(crate) struct Watcher {
    sleep: Pin<Box<Sleep>>,
    events: [libc::epoll_event; BATCH],
}
