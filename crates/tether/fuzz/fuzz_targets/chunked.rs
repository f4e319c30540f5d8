//! Chunked bodies: `ChunkedDecoder` must never panic, must stay within its input, and must
//! decode the same whether the input comes at once, in two pieces split at a fuzzer-chosen
//! point, or one byte at a time.
//!
//! Input: byte 0 is the extension/trailer budget, bytes 1..3 pick the split, the rest is the
//! body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::framing::{ChunkError, ChunkedDecoder};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    done: bool,
    error: Option<ChunkError>,
    /// Input consumed when no error stopped the decoding.
    consumed: Option<usize>,
}

fn decode(max_meta: usize, pieces: &[&[u8]]) -> Outcome {
    let mut d = ChunkedDecoder::new(max_meta);
    let mut data = Vec::new();
    let mut consumed = 0;
    for piece in pieces {
        let mut at = 0;
        while at < piece.len() && !d.is_done() {
            let rest = &piece[at..];
            let step = match d.step(rest) {
                Ok(step) => step,
                Err(e) => {
                    return Outcome {
                        data,
                        done: d.is_done(),
                        error: Some(e),
                        consumed: None,
                    }
                }
            };
            assert!(
                step.consumed <= rest.len(),
                "consumed {} of {} bytes",
                step.consumed,
                rest.len()
            );
            assert!(step.consumed > 0, "no progress on {} bytes", rest.len());
            if let Some(r) = step.data.clone() {
                assert!(
                    r.start < r.end && r.end <= step.consumed,
                    "data {r:?} outside consumed {}",
                    step.consumed
                );
                data.extend_from_slice(&rest[r]);
            }
            at += step.consumed;
        }
        consumed += at;
        if d.is_done() {
            break;
        }
    }
    Outcome {
        data,
        done: d.is_done(),
        error: None,
        consumed: Some(consumed),
    }
}

fuzz_target!(|input: &[u8]| {
    let [meta, a, b, body @ ..] = input else {
        return;
    };
    let max_meta = usize::from(*meta);
    let split = usize::from(u16::from_le_bytes([*a, *b])) % (body.len() + 1);

    let whole = decode(max_meta, &[body]);
    let halves = decode(max_meta, &[&body[..split], &body[split..]]);
    assert_eq!(whole, halves, "split at {split}");
    if body.len() <= 4096 {
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(whole, decode(max_meta, &bytes), "byte at a time");
    }
    if let Some(n) = whole.consumed {
        assert!(n <= body.len());
        assert!(whole.data.len() <= n);
    }
});
