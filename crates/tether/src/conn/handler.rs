//! The handler trait: what the application plugs into the server.

use std::io;

use crate::conn::request::Request;
use crate::conn::response::Response;

/// Answers requests. One handler value lives on each worker thread (it need not be `Send`),
/// made by the factory given to [`crate::Server::spawn`] or [`crate::Server::run_until`].
///
/// The future of `call` is awaited in place by the connection, never boxed, so a handler that
/// answers from static or borrowed data causes no heap allocation.
///
/// ```
/// use tether::{Handler, Request, Response, Status};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> std::io::Result<()> {
///         match req.path() {
///             "/" => res.content_type("text/plain").body_static(b"Hello, World!"),
///             _ => res.status(Status::NOT_FOUND),
///         };
///         Ok(())
///     }
/// }
/// ```
///
/// Returning an error before the response is streamed sends `500` and closes the
/// connection; after, it closes the connection so that the client sees an incomplete body.
pub trait Handler: 'static {
    /// Handles one request.
    #[allow(async_fn_in_trait)] // handlers run on one thread; no `Send` bound is wanted
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()>;
}
