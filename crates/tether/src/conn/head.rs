//! Reading a request head: into the read buffer, parsed as soon as it may be complete,
//! bounded by the header timeout and the head size limit.

use crate::conn::buffers::compact;
use crate::conn::host::Host;
use crate::conn::keepalive;
use crate::conn::stream::Park;
use crate::conn::timed_io::{deadline, read_some, Read};
use crate::conn::transport::Transport;
use crate::conn::{Conn, BODY_WINDOW};
use crate::lifecycle::CloseReason;
use crate::proto::encode;
use crate::proto::parse::{parse_head, Limits};
use crate::proto::status::Status;

impl<W: Host, T: Transport + Park> Conn<'_, W, T> {
    fn limits(&self) -> Limits {
        let cfg = self.w.config();
        Limits {
            max_head_size: cfg.max_head_size,
            max_headers: cfg.max_headers,
            max_uri_len: cfg.max_uri_len,
            max_body_size: cfg.max_body_size,
        }
    }

    /// Queues an error response; the close that follows flushes it.
    fn reject(&mut self, status: Status) {
        let (start, end) = (self.start, self.end);
        let b = self.bufs();
        // The head may not have parsed, but a HEAD request line is enough to omit the body.
        let is_head = b.read[start..end].starts_with(b"HEAD ");
        encode::error_response(&mut b.write, status, is_head);
    }

    /// Reads until `bufs.read[start..]` holds a complete head; returns its length.
    pub(super) async fn read_head(&mut self) -> Result<usize, CloseReason> {
        let limits = self.limits();
        let cfg = self.w.config();
        let mut head_deadline = None;
        // How many bytes from `start` hold no line end that could complete the head (an
        // offset from `start`, which moving the input to the front keeps valid); none are
        // known at first, so that a head that came in one read is parsed at once.
        let mut scanned = None;
        self.bufs();
        loop {
            if self.start < self.end {
                let b = self.bufs.as_mut().expect("buffers taken above");
                let new = &b.read[self.start + scanned.unwrap_or(0)..self.end];
                if scanned.is_none()
                    || new.contains(&b'\n')
                    || self.end - self.start >= limits.max_head_size
                {
                    match parse_head(&b.read[self.start..self.end], &limits, &mut self.head) {
                        Ok(Some(n)) => return Ok(n),
                        Ok(None) => {}
                        Err(rej) => {
                            tracing::debug!(peer = %self.peer, why = rej.why, "request rejected");
                            self.reject(rej.status);
                            return Err(CloseReason::ProtocolError);
                        }
                    }
                }
                scanned = Some(self.end - self.start);
                if head_deadline.is_none() {
                    // Armed when the first bytes of a head turn out to be incomplete: the
                    // time from the first byte to here is one parse.
                    head_deadline = Some(deadline(cfg.header_timeout));
                }
            }
            self.make_room(limits.max_head_size + BODY_WINDOW);
            if self.end == self.bufs().read.len() {
                self.reject(Status::HEADER_FIELDS_TOO_LARGE);
                return Err(CloseReason::ProtocolError);
            }
            self.flush().await?;
            let dl = if self.start < self.end {
                head_deadline.flatten()
            } else {
                self.idle_deadline
            };
            let b = self.bufs.as_mut().expect("buffers taken above");
            match read_some(&self.stream, &mut b.read[self.end..], &mut self.timer, dl).await {
                Ok(Read::Data(0)) => {
                    return Err(if self.start < self.end {
                        CloseReason::ClosedMidRequest
                    } else {
                        CloseReason::PeerClosed
                    })
                }
                Ok(Read::Data(n)) => self.end += n,
                Ok(Read::TimedOut) if self.start < self.end => {
                    self.reject(Status::REQUEST_TIMEOUT);
                    return Err(CloseReason::HeaderTimeout);
                }
                Ok(Read::TimedOut) => return Err(CloseReason::IdleTimeout),
                Err(e) => return Err(keepalive::io_reason(&e)),
            }
        }
    }

    /// Makes free space after `end`: moves unread input to the front, or grows the buffer
    /// up to `max`.
    fn make_room(&mut self, max: usize) {
        self.bufs();
        let Some(b) = self.bufs.as_mut() else {
            return;
        };
        if self.end < b.read.len() {
            return;
        }
        if self.start > 0 {
            compact(&mut b.read, &mut self.start, &mut self.end);
        } else if b.read.len() < max {
            let len = (b.read.len() * 2).min(max);
            b.read.resize(len, 0);
        }
    }
}
