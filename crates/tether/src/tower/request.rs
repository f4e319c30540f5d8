//! The `http::Request` a service receives, built from the engine's parsed head.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};

use crate::conn::request::Request;
use crate::proto::parse::{BodyFraming, Version};
use crate::proto::status::Status;
use crate::tower::body::{Body, Feed};
use crate::tower::scratch::Scratch;

/// Builds the request for the service, and the feed of its body when it has one. The head
/// is copied once, into the worker's arena; the URI and every header value are slices of
/// that copy.
///
/// # Errors
/// `400` for a head the engine accepted but the `http` types refuse (a target or a header
/// value outside their grammar).
pub(crate) fn build(
    req: &mut Request<'_>,
    scratch: &Scratch,
) -> Result<(http::Request<Body>, Option<Arc<Feed>>), Status> {
    let (head, bytes) = (req.head, req.bytes);
    let shared = scratch.copy(bytes);
    let range = |r: &[u8]| {
        let start = r.as_ptr() as usize - bytes.as_ptr() as usize;
        shared.slice(start..start + r.len())
    };
    let method = http::Method::from_bytes(head.method(bytes)).map_err(|_| Status::BAD_REQUEST)?;
    let uri =
        http::Uri::from_maybe_shared(range(head.target(bytes))).map_err(|_| Status::BAD_REQUEST)?;
    let mut headers = http::HeaderMap::with_capacity(head.fields.len());
    for i in 0..head.fields.len() {
        let (name, value) = head.field(bytes, i);
        let name = HeaderName::from_bytes(name).map_err(|_| Status::BAD_REQUEST)?;
        let value =
            HeaderValue::from_maybe_shared(range(value)).map_err(|_| Status::BAD_REQUEST)?;
        headers.append(name, value);
    }
    let (body, feed) = match head.framing {
        BodyFraming::Empty => (Body::empty(), None),
        framing => {
            let feed = scratch.feed();
            let length = match framing {
                BodyFraming::Length(n) => Some(n),
                _ => None,
            };
            (Body::fed(feed.clone(), length), Some(feed))
        }
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = match head.version {
        Version::Http10 => http::Version::HTTP_10,
        Version::Http11 => http::Version::HTTP_11,
    };
    *request.headers_mut() = headers;
    Ok((request, feed))
}

/// The trailer fields of a chunked request (its field lines, as the body reader kept them),
/// or `None` when they do not parse.
pub(crate) fn trailers(lines: &[u8]) -> Option<http::HeaderMap> {
    let mut block = Vec::with_capacity(lines.len() + 2);
    block.extend_from_slice(lines);
    block.extend_from_slice(b"\r\n");
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let httparse::Status::Complete((_, fields)) =
        httparse::parse_headers(&block, &mut fields).ok()?
    else {
        return None;
    };
    let mut map = http::HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(f.value).ok()?;
        map.append(name, value);
    }
    Some(map)
}
