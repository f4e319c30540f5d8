//! Helpers shared by the integration tests of `tether`, `tether-cli` and `tether-load`.
//!
//! | module | what |
//! |---|---|
//! | [`client`] | a raw HTTP/1.1 client on a blocking socket, and a paced background writer |
//! | [`request`] | request bytes: heads, GET, POST, chunked bodies |
//! | [`events`] | a recorder of the connection events of `Builder::on_conn_state` |
//! | [`wait`] | `eventually`, and a value to wait on with a deadline |
//! | [`handler`] | [`handler::TestHandler`], the routes the engine's tests call |
//! | [`server`] | an in-process tether server on `127.0.0.1:0` |
//! | [`process`] | the `tether` binary as a child process, with its log |
//! | [`raw`] | raw servers that misbehave on purpose |
//! | [`external`] | finding external programs, or skipping tests without them |
//! | [`nginx`] | nginx in front of a server under test |
//! | [`temp`] | scratch folders removed when dropped |
//! | [`browser`] | headless Chromium: finding it, and the DOM of a page after it ran |
//! | [`tls`] | certificates made on the spot, and the configurations that use them |
//!
//! Every wait has a short deadline and fails the test when it passes.

#![warn(missing_docs)]

pub mod browser;
pub mod client;
pub mod events;
pub mod external;
pub mod handler;
pub mod nginx;
pub mod process;
pub mod raw;
pub mod request;
pub mod server;
pub mod temp;
pub mod tls;
pub mod wait;
