//! What a worker's adapter reuses from request to request, so that the adapter itself
//! allocates nothing per request in the steady state: an arena for the bytes handed to the
//! service (the head, body pieces) and a spare body feed.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::tower::body::Feed;

/// Room the arena makes at a time.
const ARENA: usize = 16 * 1024;

/// One per worker (a handler value lives on one thread).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Bytes given out are frozen splits of this buffer: once every split of a region is
    /// dropped, the buffer reclaims it without allocating.
    arena: RefCell<BytesMut>,
    /// A feed no body holds any more, for the next request with a body.
    spare: RefCell<Option<Arc<Feed>>>,
}

impl Scratch {
    /// A shared copy of `data`.
    pub fn copy(&self, data: &[u8]) -> Bytes {
        let mut arena = self.arena.borrow_mut();
        if arena.capacity() < data.len() {
            arena.reserve(data.len().max(ARENA));
        }
        arena.extend_from_slice(data);
        arena.split().freeze()
    }

    /// A fresh feed: the spare one when no body holds it any more.
    pub fn feed(&self) -> Arc<Feed> {
        if let Some(mut feed) = self.spare.borrow_mut().take() {
            if let Some(f) = Arc::get_mut(&mut feed) {
                f.reset();
                return feed;
            }
        }
        Arc::new(Feed::default())
    }

    /// Keeps `feed` for a later request (it is reused only once no body holds it).
    pub fn give_back(&self, feed: Arc<Feed>) {
        *self.spare.borrow_mut() = Some(feed);
    }
}
