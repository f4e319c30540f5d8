//! The hot path allocates nothing per request: a counting global allocator sees the whole
//! process (the load generator and the tether server it loads, which allocates nothing per
//! request on a reused connection itself) while runs of different lengths go through the
//! same connections; the difference is the cost per request.
//!
//! One test function only, so that no other test allocates while it counts.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by a run of `requests` requests over 2 connections.
fn allocations(mut config: tether_load::Config, requests: u64) -> u64 {
    config.bounds.requests = Some(requests);
    config.bounds.duration = Duration::from_secs(20);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let r = run(&config);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(r.requests.ok, requests, "{:?}", r.errors);
    after - before
}

#[test]
fn no_allocation_per_request() {
    let server = tether(|b| b.max_requests(0));
    let mut c = config(server.local_addr(), "/plaintext");
    c.connections = 2;
    for (name, pipeline, interval) in [
        ("sequential", 1, Duration::ZERO),
        ("pipelined x8", 8, Duration::ZERO),
        ("with a 100 µs pause", 1, Duration::from_micros(100)),
    ] {
        c.pipeline = pipeline;
        c.interval = interval;
        // The first run warms up whatever the process allocates once.
        allocations(c.clone(), 1_000);
        let short = allocations(c.clone(), 1_000);
        let long = allocations(c.clone(), 5_000);
        let per_request = long.saturating_sub(short) as f64 / 4_000.0;
        println!("{name}: {short} allocations for 1,000 requests, {long} for 5,000");
        assert!(
            per_request < 0.01,
            "{name}: {per_request} allocations per request ({short} for 1,000, {long} for 5,000)"
        );
    }
    server.shutdown().expect("shutdown");
}
