//! # tether-files
//!
//! Static files for tether, with nginx's file semantics: the socket-free logic of a static
//! file server, one job per module, for a handler to wire to the engine's responses.
//!
//! A request flows through the modules in this order:
//!
//! 1. [`path`]: the raw path becomes a [`Mapped`] relative path, or a [`Rejected`] reason.
//! 2. [`cache`] (or [`resolve`] directly): the path is walked under the [`Root`] without
//!    following a symlink out of it, and the file opened; the ETag ([`validators`]), the
//!    Last-Modified and the Content-Type ([`mime`]) come precomputed.
//! 3. [`precondition`]: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since,
//!    If-Range in RFC 9110's order give 304, 412 or "proceed".
//! 4. [`encoding`]: a precompressed sibling (`.br`, `.zst`, `.gz`) is picked from
//!    Accept-Encoding.
//! 5. [`range`] and [`multipart`]: a 206 with one range or a multipart/byteranges body of
//!    known length, or a 416.
//! 6. [`listing`]: a folder without an index is listed as HTML or JSON.
//!
//! [`Files`] ([`handler`]) puts them together as a [`tether::Handler`].
//!
//! ## What is refused
//! Paths are decoded once and anything ambiguous is refused, not rewritten: `..` and `.`
//! segments in any encoding, empty segments (`//`), double encoding (`%252e`), backslashes,
//! encoded slashes, control bytes, malformed escapes, invalid UTF-8, drive letters and
//! Windows device names (see [`Rejected`]). Dotfiles and dot-folders are not refused by the
//! mapping but flagged ([`Mapped::hidden`]), so the caller can serve them when configured
//! to and answer 404 otherwise. Symlinks are followed only to targets inside the root
//! ([`Refused::Escapes`]); FIFOs, sockets and devices are never opened. The caller answers
//! every refusal with a 404 (a 400 for a path that is not even well-formed is fine too), so
//! a client learns nothing about what exists outside the root.

pub mod cache;
pub mod encoding;
pub mod handler;
pub mod listing;
pub mod mime;
pub mod multipart;
pub mod path;
pub mod precondition;
pub mod quality;
pub mod range;
pub mod resolve;
pub mod validators;

pub use cache::{CacheConfig, OpenFileCache, Opened};
pub use encoding::Encoding;
pub use handler::{Files, Options};
pub use listing::Entry;
pub use multipart::Multipart;
pub use path::{map, strip_query, Mapped, Rejected};
pub use precondition::{Outcome, Resource};
pub use range::Ranges;
pub use resolve::{Refused, Resolved, Root};
pub use validators::{EntityTag, EtagList, Stamp};
