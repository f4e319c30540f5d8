//! The server: binding, workers and their accept loops, admission and eviction, the
//! registry of live connections, parking, counters and the two-phase drain.

pub(crate) mod admission;
pub(crate) mod builder;
pub(crate) mod drain;
pub(crate) mod park;
pub(crate) mod registry;
pub(crate) mod stats;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod worker;
