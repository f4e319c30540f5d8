//! Request heads: `parse_head` must never panic, and what it reports must be consistent.
//!
//! The first input byte picks the limits (so that the 414, 431 and too-many-headers paths are
//! reached with small inputs); the rest is the head.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::parse::{parse_head, BodyFraming, Head, Limits};

fn limits(sel: u8) -> Limits {
    if sel == 0xff {
        // The server's defaults.
        return Limits {
            max_head_size: 16 * 1024,
            max_headers: 100,
            max_uri_len: 8 * 1024,
            max_body_size: 1024 * 1024,
        };
    }
    Limits {
        max_head_size: 64 + usize::from(sel & 0x0f) * 256,
        max_headers: 1 + usize::from(sel >> 4) * 4,
        max_uri_len: 1 + usize::from(sel) * 8,
        max_body_size: u64::from(sel) * 1000,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let limits = limits(sel);
    let mut head = Head::default();
    match parse_head(input, &limits, &mut head) {
        Ok(Some(len)) => {
            assert!(
                len <= input.len(),
                "complete head of {len} bytes in {} bytes",
                input.len()
            );
            assert!(
                len <= limits.max_head_size,
                "head of {len} bytes over {limits:?}"
            );
            let target = head.target_range();
            assert!(
                target.start < target.end && target.end <= len,
                "target {target:?} outside the head ({len})"
            );
            assert!(
                target.len() <= limits.max_uri_len,
                "target of {} bytes over {limits:?}",
                target.len()
            );
            if let BodyFraming::Length(n) = head.framing {
                assert!(
                    n > 0 && n <= limits.max_body_size,
                    "body length {n} with {limits:?}"
                );
            }
            if head.framing == BodyFraming::Empty {
                assert!(!head.expect_continue, "100-continue without a body");
            }
            // The head alone parses the same, into a reused `Head` (as on a persistent
            // connection): nothing after it, nor left from before, changes the result.
            let first = (
                head.version,
                head.framing,
                head.conn_close,
                head.conn_keep_alive,
                head.expect_continue,
                head.is_head,
                head.target_range(),
            );
            let again = parse_head(&input[..len], &limits, &mut head);
            assert_eq!(again, Ok(Some(len)), "the head alone parses differently");
            let second = (
                head.version,
                head.framing,
                head.conn_close,
                head.conn_keep_alive,
                head.expect_continue,
                head.is_head,
                head.target_range(),
            );
            assert_eq!(first, second, "the head alone parses differently");
        }
        Ok(None) => {
            assert!(
                input.len() < limits.max_head_size,
                "partial head of {} bytes over {limits:?}",
                input.len()
            );
        }
        Err(rej) => {
            assert!(
                (400..=599).contains(&rej.status.0),
                "rejected with {:?}",
                rej.status
            );
        }
    }
});
