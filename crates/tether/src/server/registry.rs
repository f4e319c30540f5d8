//! Per-worker registry of live connections: their state, the idle ones in least recently
//! used order, and the waker of each idle wait.
//!
//! The worker reaches connections through it (to evict the oldest idle one when the
//! connection limit is reached, to close idle ones when draining) without a broadcast that
//! every request would subscribe to. A parked connection (see [`crate::server::park`]) lives here
//! alone, without a task: a kick addressed to it queues it for resumption.

use std::cell::RefCell;
use std::task::{Context, Poll, Waker};

use slab::Slab;
use tokio::time::Instant;

use crate::conn::host::Kick;
use crate::conn::stream::ParkedStream;
use crate::conn::Resume;
use crate::lifecycle::ConnState;
use crate::server::admission::Ticket;

const NIL: usize = usize::MAX;

/// A parked connection (see [`crate::server::park`]), kept in its registry entry.
pub(crate) struct Parked {
    /// What the connection's task resumes with.
    pub conn: Resume,
    /// Its socket, which the park watches, and its TLS session if any.
    pub stream: ParkedStream,
    /// Its place within the connection limits, held while it is parked.
    pub ticket: Ticket,
}

struct Entry {
    state: ConnState,
    /// When the connection last became idle.
    idle_since: Instant,
    /// Neighbours in the idle list (oldest first), when idle.
    prev: usize,
    next: usize,
    waker: Option<Waker>,
    kick: Option<Kick>,
    /// The connection itself, while parked (boxed: most entries are not parked, and the
    /// entry of every connection would carry its size).
    parked: Option<Box<Parked>>,
}

struct Inner {
    entries: Slab<Entry>,
    /// Oldest and newest idle connection.
    head: usize,
    tail: usize,
    /// Parked connections kicked since the parking watcher last looked, and its waker.
    resume: Vec<usize>,
    watcher: Option<Waker>,
}

pub(crate) struct Registry {
    inner: RefCell<Inner>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            inner: RefCell::new(Inner {
                entries: Slab::new(),
                head: NIL,
                tail: NIL,
                resume: Vec::new(),
                watcher: None,
            }),
        }
    }
}

impl Inner {
    fn unlink(&mut self, key: usize) {
        let (prev, next) = (self.entries[key].prev, self.entries[key].next);
        match prev {
            NIL => self.head = next,
            p => self.entries[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n].prev = prev,
        }
        let e = &mut self.entries[key];
        (e.prev, e.next) = (NIL, NIL);
    }

    fn push_idle(&mut self, key: usize) {
        let tail = self.tail;
        {
            let e = &mut self.entries[key];
            (e.prev, e.next) = (tail, NIL);
        }
        match tail {
            NIL => self.head = key,
            t => self.entries[t].next = key,
        }
        self.tail = key;
    }

    fn kick(&mut self, key: usize, kick: Kick) {
        if self.entries[key].kick(kick) {
            self.resume.push(key);
            if let Some(w) = self.watcher.take() {
                w.wake();
            }
        }
    }
}

impl Entry {
    /// Records the kick and wakes the connection's wait; true when the connection is
    /// parked and was not yet queued for resumption.
    fn kick(&mut self, kick: Kick) -> bool {
        let queued = self.kick.is_some();
        // A close order is never weakened into a drain.
        if self.kick != Some(Kick::Close) {
            self.kick = Some(kick);
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        self.parked.is_some() && !queued
    }
}

impl Registry {
    /// Adds a new connection; returns its key.
    pub fn insert(&self, now: Instant) -> usize {
        self.inner.borrow_mut().entries.insert(Entry {
            state: ConnState::New,
            idle_since: now,
            prev: NIL,
            next: NIL,
            waker: None,
            kick: None,
            parked: None,
        })
    }

    /// Keeps a parked connection (which stays `Idle`, in its place in the idle order).
    pub fn park(&self, key: usize, parked: Box<Parked>) {
        let mut inner = self.inner.borrow_mut();
        let Some(e) = inner.entries.get_mut(key) else {
            return;
        };
        e.waker = None;
        e.parked = Some(parked);
        if e.kick.is_some() {
            inner.resume.push(key);
            if let Some(w) = inner.watcher.take() {
                w.wake();
            }
        }
    }

    /// Takes a parked connection back for resumption.
    pub fn unpark(&self, key: usize) -> Option<Box<Parked>> {
        self.inner
            .borrow_mut()
            .entries
            .get_mut(key)
            .and_then(|e| e.parked.take())
    }

    /// The id of the connection parked at `key`, if one is.
    pub fn parked_id(&self, key: usize) -> Option<u64> {
        let inner = self.inner.borrow();
        inner.entries.get(key)?.parked.as_ref().map(|p| p.conn.id)
    }

    /// Moves the parked connections kicked since the last call into `out`; when there are
    /// none, remembers the watcher's waker.
    pub fn poll_resumes(&self, out: &mut Vec<usize>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.inner.borrow_mut();
        if inner.resume.is_empty() {
            inner.watcher = Some(cx.waker().clone());
            return Poll::Pending;
        }
        out.append(&mut inner.resume);
        Poll::Ready(())
    }

    /// Forgets a connection; returns true when the least recently used idle connection
    /// changed.
    pub fn remove(&self, key: usize) -> bool {
        let mut inner = self.inner.borrow_mut();
        if !inner.entries.contains(key) {
            return false;
        }
        let head = inner.head;
        if inner.entries[key].state == ConnState::Idle {
            inner.unlink(key);
        }
        inner.entries.remove(key);
        inner.head != head
    }

    /// Records a state change; `now` is when an idle period starts. Returns true when the
    /// least recently used idle connection changed.
    #[inline]
    pub fn set_state(&self, key: usize, state: ConnState, now: Instant) -> bool {
        let mut inner = self.inner.borrow_mut();
        let head = inner.head;
        let Some(e) = inner.entries.get_mut(key) else {
            return false;
        };
        let was = std::mem::replace(&mut e.state, state);
        if was == ConnState::Idle {
            inner.unlink(key);
        }
        if state == ConnState::Idle {
            inner.entries[key].idle_since = now;
            inner.push_idle(key);
        }
        inner.head != head
    }

    /// When the least recently used idle connection became idle, if there is one.
    pub fn oldest_idle_since(&self) -> Option<Instant> {
        let inner = self.inner.borrow();
        (inner.head != NIL).then(|| inner.entries[inner.head].idle_since)
    }

    /// Takes the kick addressed to this connection, or remembers the waker of its wait.
    pub fn poll_kick(&self, key: usize, cx: &mut Context<'_>) -> Poll<Kick> {
        let mut inner = self.inner.borrow_mut();
        let Some(e) = inner.entries.get_mut(key) else {
            return Poll::Ready(Kick::Close);
        };
        if let Some(k) = e.kick.take() {
            return Poll::Ready(k);
        }
        match &e.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => e.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Closes the least recently used idle connection if it has been idle for `min_age`;
    /// returns whether one was chosen.
    pub fn evict_oldest_idle(&self, now: Instant, min_age: std::time::Duration) -> bool {
        let mut inner = self.inner.borrow_mut();
        let mut key = inner.head;
        // Entries already told to close are on their way out: look past them.
        while key != NIL && inner.entries[key].kick == Some(Kick::Close) {
            key = inner.entries[key].next;
        }
        if key == NIL || now.saturating_duration_since(inner.entries[key].idle_since) < min_age {
            return false;
        }
        inner.kick(key, Kick::Close);
        true
    }

    /// Kicks every connection (idle ones wake; the others see it at their next idle wait).
    pub fn kick_all(&self, kick: Kick) {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        for (key, e) in inner.entries.iter_mut() {
            if e.kick(kick) {
                inner.resume.push(key);
            }
        }
        if !inner.resume.is_empty() {
            if let Some(w) = inner.watcher.take() {
                w.wake();
            }
        }
    }

    /// Connections in the middle of a request.
    pub fn active_count(&self) -> usize {
        self.inner
            .borrow()
            .entries
            .iter()
            .filter(|(_, e)| e.state == ConnState::Active)
            .count()
    }

    /// Live connections.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.borrow().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn evicts_the_least_recently_idle_after_the_minimum_age() {
        let r = Registry::default();
        let t0 = Instant::now();
        let a = r.insert(t0);
        let b = r.insert(t0);
        let c = r.insert(t0);
        r.set_state(a, ConnState::Idle, t0);
        r.set_state(b, ConnState::Idle, t0 + Duration::from_secs(1));
        r.set_state(c, ConnState::Idle, t0 + Duration::from_secs(2));
        // a becomes active again: b is now the oldest idle connection.
        r.set_state(a, ConnState::Active, t0 + Duration::from_secs(3));
        let min = Duration::from_secs(1);
        assert!(!r.evict_oldest_idle(t0 + Duration::from_millis(1500), min));
        assert!(r.evict_oldest_idle(t0 + Duration::from_secs(3), min));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(r.poll_kick(b, &mut cx), Poll::Ready(Kick::Close));
        assert_eq!(r.poll_kick(c, &mut cx), Poll::Pending);
        // b closes; c is next.
        r.set_state(b, ConnState::Closing, t0);
        assert!(r.evict_oldest_idle(t0 + Duration::from_secs(4), min));
        // c is still listed idle but already told to close: nothing else to evict.
        assert!(!r.evict_oldest_idle(t0 + Duration::from_secs(5), min));
        assert_eq!(r.poll_kick(c, &mut cx), Poll::Ready(Kick::Close));
        r.remove(b);
        r.remove(c);
        assert!(!r.evict_oldest_idle(t0 + Duration::from_secs(9), min));
        assert_eq!(r.len(), 1);
    }
}
