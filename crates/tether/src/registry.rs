//! Per-worker registry of live connections.
//!
//! Each connection has a slot holding the waker of its idle wait, so that the worker can
//! reach idle connections (to close them when draining) without a broadcast primitive that
//! every request would have to subscribe to and unsubscribe from.

use std::cell::RefCell;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
struct Entry {
    waker: Option<Waker>,
    kicked: bool,
}

#[derive(Default)]
pub(crate) struct Registry {
    entries: RefCell<Slab<Entry>>,
}

impl Registry {
    /// Adds a connection; returns its key.
    pub fn insert(&self) -> usize {
        self.entries.borrow_mut().insert(Entry::default())
    }

    pub fn remove(&self, key: usize) {
        let mut entries = self.entries.borrow_mut();
        if entries.contains(key) {
            entries.remove(key);
        }
    }

    /// Ready once the connection has been kicked; otherwise remembers the waker.
    pub fn poll_kicked(&self, key: usize, cx: &mut Context<'_>) -> Poll<()> {
        let mut entries = self.entries.borrow_mut();
        let Some(e) = entries.get_mut(key) else {
            return Poll::Ready(());
        };
        if e.kicked {
            return Poll::Ready(());
        }
        match &e.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => e.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Kicks every connection: those waiting idle wake up and see why.
    pub fn kick_all(&self) {
        let wakers: Vec<Waker> = self
            .entries
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, e)| {
                e.kicked = true;
                e.waker.take()
            })
            .collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}
