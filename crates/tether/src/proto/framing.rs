//! Request body framing: the chunked decoder (RFC 9112 section 7.1).
//!
//! The decoder is a byte-level state machine over borrowed input: it never copies, and it
//! yields ranges of chunk data inside the input it was given. It accepts only CRLF line ends
//! in framing, so that no two parsers can disagree about where a chunk ends.

use std::ops::Range;

/// Why a chunked body was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk size that is not hex, is empty or overflows.
    BadSize,
    /// A CR not followed by LF, or data not followed by CRLF.
    BadLineEnd,
    /// Chunk extensions or trailers longer than allowed.
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` counts them.
    Size { digits: u8 },
    /// Inside `;ext`, until CR.
    Ext,
    /// Saw CR after the size line, want LF.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After chunk data, want CR.
    DataCr,
    /// After chunk data, want LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line, until CR.
    Trailer,
    /// Saw CR ending a trailer line, want LF.
    TrailerLf,
    /// Saw CR of the final empty line, want LF.
    EndLf,
    /// The body is complete.
    Done,
}

/// One step of decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of input consumed (framing and data).
    pub consumed: usize,
    /// Chunk data found, as a range of the input.
    pub data: Option<Range<usize>>,
}

/// Incremental chunked-body decoder.
///
/// ```
/// use tether::framing::ChunkedDecoder;
/// let mut d = ChunkedDecoder::new(1024);
/// let input = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n";
/// let mut at = 0;
/// let mut body = Vec::new();
/// while !d.is_done() {
///     let step = d.step(&input[at..]).unwrap();
///     if let Some(r) = step.data { body.extend_from_slice(&input[at..][r]); }
///     at += step.consumed;
/// }
/// assert_eq!(body, b"hello");
/// assert_eq!(at, input.len());
/// ```
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    /// Bytes of extensions and trailers seen, bounded by `max_meta`.
    meta: usize,
    max_meta: usize,
}

impl ChunkedDecoder {
    /// A decoder that allows `max_meta` bytes of chunk extensions and trailers in all.
    pub fn new(max_meta: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            meta: 0,
            max_meta,
        }
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes still due in the current chunk (0 between chunks).
    pub fn chunk_remaining(&self) -> u64 {
        if self.state == State::Data {
            self.size
        } else {
            0
        }
    }

    /// Puts back the last `n` data bytes returned, which the caller did not use.
    pub(crate) fn unread(&mut self, n: u64) {
        self.size += n;
        self.state = State::Data;
    }

    fn meta(&mut self) -> Result<(), ChunkError> {
        self.meta += 1;
        if self.meta > self.max_meta {
            Err(ChunkError::TooLong)
        } else {
            Ok(())
        }
    }

    /// Consumes framing bytes from `input` until it finds chunk data, the end of the body, or
    /// the end of the input.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => {
                    if let Some(v) = hex(b) {
                        if digits >= 16 || self.size > (u64::MAX >> 4) {
                            return Err(ChunkError::BadSize);
                        }
                        self.size = (self.size << 4) | u64::from(v);
                        self.state = State::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(ChunkError::BadSize);
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.meta()?;
                        self.state = State::Ext;
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else {
                        return Err(ChunkError::BadSize);
                    }
                }
                State::Ext => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.meta()?;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        self.state = State::Data;
                        i += 1;
                        let n =
                            (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                        return Ok(self.data(i, n));
                    }
                }
                State::Data => {
                    let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    return Ok(self.data(i, n));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Size { digits: 0 };
                    self.size = 0;
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else if b == b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.meta()?;
                        self.state = State::Trailer;
                    }
                }
                State::Trailer => {
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if b == b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.meta()?;
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Done;
                    return Ok(Step {
                        consumed: i + 1,
                        data: None,
                    });
                }
                State::Done => {
                    return Ok(Step {
                        consumed: i,
                        data: None,
                    })
                }
            }
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: None,
        })
    }

    fn data(&mut self, at: usize, n: usize) -> Step {
        self.size -= n as u64;
        if self.size == 0 {
            self.state = State::DataCr;
        }
        Step {
            consumed: at + n,
            data: (n > 0).then_some(at..at + n),
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::new(64);
        let mut out = Vec::new();
        let mut at = 0;
        let mut avail = piece.min(input.len());
        while !d.is_done() {
            let step = d.step(&input[at..avail])?;
            if let Some(r) = step.data {
                out.extend_from_slice(&input[at..avail][r]);
            }
            at += step.consumed;
            if at == avail {
                if avail == input.len() {
                    break;
                }
                avail = (avail + piece).min(input.len());
            }
        }
        assert!(d.is_done(), "incomplete");
        Ok((out, at))
    }

    #[test]
    fn decodes_in_any_split() {
        let input =
            b"5\r\nhello\r\n6;name=val\r\n world\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for piece in 1..input.len() {
            let (body, used) = decode(input, piece).unwrap();
            assert_eq!(body, b"hello world0123456789");
            assert_eq!(&input[used..], b"NEXT");
        }
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(decode(b"x\r\n", 8).unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode(b"\r\n", 8).unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode(b"5\nhello\r\n", 8).unwrap_err(), ChunkError::BadSize);
        assert_eq!(
            decode(b"5\r\nhelloXX", 16).unwrap_err(),
            ChunkError::BadLineEnd
        );
        assert_eq!(
            decode(b"11111111111111111\r\n", 32).unwrap_err(),
            ChunkError::BadSize
        );
        let long_ext = [b"1;".as_slice(), &[b'a'; 100], b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(decode(&long_ext, 200).unwrap_err(), ChunkError::TooLong);
        assert_eq!(
            decode(b"0\r\nX: 1\n\r\n", 16).unwrap_err(),
            ChunkError::BadLineEnd
        );
    }

    #[test]
    fn large_sizes_are_tracked() {
        let mut d = ChunkedDecoder::new(16);
        let step = d.step(b"FFFFFFFF\r\nabc").unwrap();
        assert_eq!(step.data, Some(10..13));
        assert_eq!(d.chunk_remaining(), 0xFFFF_FFFF - 3);
    }
}
