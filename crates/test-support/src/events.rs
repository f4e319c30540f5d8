//! A recorder of the connection events tether reports through `Builder::on_conn_state`, on
//! which a test waits for a condition (a state reached, a close and its reason) without
//! sleeping: every event wakes the waiters, and every wait has a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether::{Builder, CloseReason, ConnEvent, ConnState};

use crate::wait::{Watched, WAIT};

/// An event the hook saw, with when it saw it.
pub type Timed = (Instant, ConnEvent);

/// Every event the hook saw, in order. Clones share the record.
#[derive(Clone)]
pub struct Events {
    list: Arc<Watched<Vec<Timed>>>,
    limit: Duration,
}

impl Default for Events {
    /// A recorder whose waits give up after [`WAIT`].
    fn default() -> Events {
        Events::within(WAIT)
    }
}

impl Events {
    /// A recorder whose waits give up after `limit`.
    pub fn within(limit: Duration) -> Events {
        Events {
            list: Arc::default(),
            limit,
        }
    }

    /// `builder` with a hook recording into these events.
    pub fn on(&self, builder: Builder) -> Builder {
        let list = self.list.clone();
        builder.on_conn_state(move |e| list.update(|l| l.push((Instant::now(), *e))))
    }

    /// Waits until `pred` holds over the events so far; panics with them after the limit.
    pub fn wait(&self, what: &str, pred: impl Fn(&[Timed]) -> bool) {
        self.find(what, |l| pred(l).then_some(()));
    }

    /// Waits for the first event (of any connection) that matches `pred`.
    pub fn first(&self, what: &str, pred: impl Fn(&ConnEvent) -> bool) -> Timed {
        self.find(what, |l| l.iter().find(|(_, e)| pred(e)).copied())
    }

    /// Waits for the first event (of any connection) entering `state`.
    pub fn first_in(&self, state: ConnState) -> Timed {
        self.first(&format!("a {state:?} event"), |e| e.state == state)
    }

    /// Waits until the connection from `peer` has reported `state`.
    pub fn wait_state(&self, peer: SocketAddr, state: ConnState) {
        self.first(&format!("{peer} to be {state:?}"), |e| {
            e.peer == peer && e.state == state
        });
    }

    /// Waits until the connection from `peer` has reported `state` with `requests` served.
    pub fn wait_state_after(&self, peer: SocketAddr, state: ConnState, requests: u64) {
        let what = format!("{peer} to be {state:?} after {requests} requests");
        self.first(&what, |e| {
            e.peer == peer && e.state == state && e.requests == requests
        });
    }

    /// Waits for the close of the connection from `peer`; returns its last event.
    pub fn closed(&self, peer: SocketAddr) -> ConnEvent {
        self.wait_state(peer, ConnState::Closed);
        *self.of(peer).last().unwrap()
    }

    /// Waits for the close of the connection from `peer` and asserts its reason.
    pub fn closed_for(&self, peer: SocketAddr, reason: CloseReason) -> ConnEvent {
        let last = self.closed(peer);
        assert_eq!(last.reason, Some(reason), "{peer}: {:?}", self.of(peer));
        last
    }

    /// Waits for the close of the connection from `peer` and asserts its reason and its
    /// count of requests, and that its `Closing` said the same.
    pub fn assert_closed(&self, peer: SocketAddr, reason: CloseReason, requests: u64) {
        let last = self.closed(peer);
        let mine = self.of(peer);
        assert_eq!(
            (last.reason, last.requests),
            (Some(reason), requests),
            "{:?}",
            trail(&mine)
        );
        let closing = mine.iter().find(|e| e.state == ConnState::Closing);
        assert_eq!(
            closing.map(|e| e.reason),
            Some(Some(reason)),
            "{:?}",
            trail(&mine)
        );
    }

    /// When the connection from `peer` first entered `state` (which it must have).
    pub fn entered(&self, peer: SocketAddr, state: ConnState) -> Instant {
        self.timed(peer)
            .iter()
            .find(|(_, e)| e.state == state)
            .unwrap_or_else(|| panic!("{peer} never {state:?}: {:?}", self.of(peer)))
            .0
    }

    /// The events of the connection from `peer`, in order.
    pub fn of(&self, peer: SocketAddr) -> Vec<ConnEvent> {
        self.timed(peer).into_iter().map(|(_, e)| e).collect()
    }

    /// The events of the connection from `peer`, in order, with when each was seen.
    pub fn timed(&self, peer: SocketAddr) -> Vec<Timed> {
        self.list
            .read(|l| l.iter().filter(|(_, e)| e.peer == peer).copied().collect())
    }

    /// What `find` makes of the events, waited for; panics with them after the limit.
    fn find<R>(&self, what: &str, find: impl FnMut(&Vec<Timed>) -> Option<R>) -> R {
        match self.list.wait_for(self.limit, find) {
            Some(found) => found,
            None => {
                let seen = self.list.read(Vec::clone);
                panic!("timed out waiting for {what}: {seen:#?}")
            }
        }
    }
}

/// (state, requests, reason) of each event: a connection's path, in short.
pub fn trail(events: &[ConnEvent]) -> Vec<(ConnState, u64, Option<CloseReason>)> {
    events
        .iter()
        .map(|e| (e.state, e.requests, e.reason))
        .collect()
}
