//! The protocol in bytes: request-head parsing and the RFC 9112 framing rules, the chunked
//! decoder, response-head encoding, the `Date` line and status codes. Pure functions over
//! byte slices; nothing here knows about sockets, tasks or the runtime.

pub(crate) mod date;
pub mod encode;
pub mod framing;
pub mod parse;
pub mod status;
