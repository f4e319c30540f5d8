//! Writing the service's `http::Response` through the engine's response.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;

use bytes::{Buf, Bytes};
use http_body::Body as _;

use crate::conn::response::Response;
use crate::proto::status::Status;
use crate::tower::body::BoxError;

/// Writes `response`: one data frame of the announced size goes out with `Content-Length`
/// (the `Bytes` handed over, not copied here); anything else streams. The answer to a
/// `HEAD` request keeps the `Content-Length` the service gave (the length of the `GET`),
/// and its body is not read.
///
/// # Errors
/// A body error (before the head is out the engine answers `500`; after, it closes the
/// connection), or a failed write.
pub(crate) async fn write<B>(
    response: http::Response<B>,
    res: &mut Response<'_>,
    is_head: bool,
    te_trailers: bool,
) -> io::Result<()>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    res.status(Status(parts.status.as_u16()));
    for (name, value) in &parts.headers {
        res.token_field(name.as_str().as_bytes(), value.as_bytes());
    }
    if is_head {
        let length = parts.headers.get(http::header::CONTENT_LENGTH);
        if let Some(n) = length.and_then(|v| v.to_str().ok()?.parse().ok()) {
            res.head_length(n);
        }
        return Ok(());
    }
    let mut body = std::pin::pin!(body);
    if body.is_end_stream() {
        return Ok(());
    }
    let exact = body.size_hint().exact();
    let Some(first) = next_frame(body.as_mut()).await? else {
        return Ok(());
    };
    let first = match first {
        Frame::Data(data) => {
            // One frame of the announced size: sent whole, unless trailers may follow that
            // the client asked for.
            let whole = exact == Some(data.len() as u64) && !te_trailers;
            if whole || body.is_end_stream() {
                res.body_bytes(data);
                return Ok(());
            }
            Frame::Data(data)
        }
        trailers => trailers,
    };
    res.start_stream().await?;
    let mut frame = Some(first);
    while let Some(f) = frame {
        match f {
            Frame::Data(data) => res.send_chunk(&data).await?,
            Frame::Trailers(fields) if te_trailers => {
                for (name, value) in &fields {
                    res.trailer(name.as_str(), value.as_bytes());
                }
            }
            Frame::Trailers(_) => {}
        }
        frame = next_frame(body.as_mut()).await?;
    }
    Ok(())
}

/// A frame of a response body, its data as `Bytes`.
enum Frame {
    Data(Bytes),
    Trailers(http::HeaderMap),
}

/// The next frame of `body` (empty data frames skipped), or `None` at its end.
async fn next_frame<B>(mut body: Pin<&mut B>) -> io::Result<Option<Frame>>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    loop {
        let frame = poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        let frame = match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(io::Error::other(e.into())),
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(mut data) => {
                let n = data.remaining();
                if n > 0 {
                    return Ok(Some(Frame::Data(data.copy_to_bytes(n))));
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    return Ok(Some(Frame::Trailers(trailers)));
                }
            }
        }
    }
}
