//! Per-worker pool of connection buffers.
//!
//! A connection holds buffers only while it has a request in progress; between requests it
//! gives them back, so an idle keep-alive connection costs its socket and a small state, and
//! a busy connection reuses warm buffers without allocating.

use std::cell::RefCell;

use crate::proto::parse::Field;

/// The buffers one exchange needs.
#[derive(Default)]
pub(crate) struct Buffers {
    /// Read buffer; its length is its usable size (zero-filled once).
    pub read: Vec<u8>,
    /// Encoded responses waiting to be written.
    pub write: Vec<u8>,
    /// Header fields a handler added.
    pub headers: Vec<u8>,
    /// A handler's buffered body.
    pub body: Vec<u8>,
    /// Offsets of the parsed header fields.
    pub fields: Vec<Field>,
}

pub(crate) struct Pool {
    // Boxed so that handing a set between the pool and a connection moves one pointer.
    #[allow(clippy::vec_box)]
    free: RefCell<Vec<Box<Buffers>>>,
    keep: usize,
    read_size: usize,
}

/// Buffers that grew past this are dropped rather than pooled.
const MAX_POOLED: usize = 64 * 1024;

impl Pool {
    pub fn new(keep: usize, read_size: usize) -> Self {
        Pool {
            free: RefCell::new(Vec::with_capacity(keep)),
            keep,
            read_size,
        }
    }

    pub fn take(&self) -> Box<Buffers> {
        self.free.borrow_mut().pop().unwrap_or_else(|| {
            Box::new(Buffers {
                read: vec![0; self.read_size],
                write: Vec::with_capacity(4096),
                ..Buffers::default()
            })
        })
    }

    pub fn give(&self, mut b: Box<Buffers>) {
        let mut free = self.free.borrow_mut();
        if free.len() >= self.keep
            || b.read.len() > MAX_POOLED
            || b.write.capacity() > MAX_POOLED
            || b.body.capacity() > MAX_POOLED
        {
            return;
        }
        if b.read.len() < self.read_size {
            b.read.resize(self.read_size, 0);
        }
        b.write.clear();
        b.headers.clear();
        b.body.clear();
        b.fields.clear();
        free.push(b);
    }
}

/// Moves the unread input `buf[*start..*end]` to the front of `buf`, making room after it:
/// the one compaction of a read buffer (the head reader, the body window and the body
/// reader all use it).
#[inline]
pub(crate) fn compact(buf: &mut [u8], start: &mut usize, end: &mut usize) {
    if *start > 0 {
        buf.copy_within(*start..*end, 0);
        *end -= *start;
        *start = 0;
    }
}
