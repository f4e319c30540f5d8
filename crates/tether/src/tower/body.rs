//! The request body a tower service receives: `Send + 'static`, as services require, while
//! the bytes stay in the connection's read buffer until the service asks for them.
//!
//! The body is a handle on a small shared slot. When the service polls it and the slot is
//! empty, it asks the connection (which runs the service's future) for the next piece; the
//! connection reads it with its own body reader (sending `100 Continue` first if the client
//! waits for it, under the body timeout and the body size limit) and puts it in the slot.
//! A body nobody polls is never read: the engine's unread-body policy decides what becomes
//! of it (discarded within the drain budget, or the connection closes).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;

/// The error type of the adapter's bodies and services: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request served through [`crate::tower`].
///
/// It implements [`http_body::Body`] with `Bytes` frames; its size hint is exact when the
/// request has a `Content-Length`. Reading past `max_body_size` yields an error, and the
/// response becomes `413` (unless the service already started to stream its own).
#[derive(Debug)]
pub struct Body {
    feed: Option<Arc<Feed>>,
    /// Bytes still to come, when the request said (`Content-Length`).
    remaining: Option<u64>,
}

/// What the connection and the body share.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    slot: Mutex<Slot>,
    /// Signalled when the body wants its next piece.
    wanted: Notify,
}

#[derive(Debug, Default)]
struct Slot {
    /// The next piece: data, the end (`None`), or the reader's error.
    next: Option<Result<Option<Bytes>, std::io::Error>>,
    /// The request's trailer fields, yielded as a frame before the end.
    trailers: Option<http::HeaderMap>,
    /// The end was taken: nothing more will come.
    ended: bool,
    /// A piece was asked for and not yet delivered.
    asked: bool,
    waker: Option<Waker>,
}

impl Body {
    /// A body with nothing in it.
    pub fn empty() -> Self {
        Body {
            feed: None,
            remaining: Some(0),
        }
    }

    /// A body fed by the connection; `length` is the declared `Content-Length`.
    pub(crate) fn fed(feed: Arc<Feed>, length: Option<u64>) -> Self {
        Body {
            feed: Some(feed),
            remaining: length,
        }
    }
}

impl Feed {
    /// Forgets the last request's state, for the next one.
    pub fn reset(&mut self) {
        *self.slot.get_mut().unwrap_or_else(|e| e.into_inner()) = Slot::default();
        self.wanted = Notify::new();
    }

    /// Waits until the body asks for its next piece.
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }

    /// Delivers the next piece (data, `None` at the end with the trailer fields if the
    /// request had any, or the reader's error).
    pub fn put(
        &self,
        next: Result<Option<Bytes>, std::io::Error>,
        trailers: Option<http::HeaderMap>,
    ) {
        let waker = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.next = Some(next);
            slot.trailers = trailers;
            slot.asked = false;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(feed) = &self.feed else {
            return Poll::Ready(None);
        };
        let mut slot = feed.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.next.take() {
            Some(Ok(Some(data))) => {
                drop(slot);
                if let Some(n) = &mut self.remaining {
                    *n = n.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Ok(None)) => {
                if let Some(trailers) = slot.trailers.take() {
                    // The end comes at the next poll.
                    slot.next = Some(Ok(None));
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                slot.ended = true;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                slot.ended = true;
                Poll::Ready(Some(Err(e.into())))
            }
            None if slot.ended => Poll::Ready(None),
            None => {
                slot.waker = Some(cx.waker().clone());
                if !std::mem::replace(&mut slot.asked, true) {
                    feed.wanted.notify_one();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
