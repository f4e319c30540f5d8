//! A byte-level decoder of chunked framing that only finds where the body ends: chunk data
//! is skipped, not copied.

/// Where the decoder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size; `digits` so far.
    Size { size: u64, digits: u8 },
    /// Skipping a chunk extension up to the end of the line; the size read.
    Ext(u64),
    /// After the CR that ends the size line; the size read.
    SizeLf(u64),
    /// Skipping chunk data; bytes left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the empty line that ends the body).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// After the CR of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Finds the end of a chunked body fed in pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked {
    state: State,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size { size: 0, digits: 0 },
        }
    }
}

/// Malformed chunked framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl Chunked {
    /// Consumes framing and data from `input`; returns how many bytes belong to the body and
    /// whether the body ended there (the rest of `input` is the next response).
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data(left) = self.state {
                let take = left.min((input.len() - i) as u64);
                i += take as usize;
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data(left - take)
                };
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                State::Size { size, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        State::Size {
                            size: size * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(ChunkError("chunk size missing")),
                    b';' | b' ' | b'\t' => State::Ext(size),
                    b'\r' => State::SizeLf(size),
                    b'\n' => after_size(size),
                    _ => return Err(ChunkError("bad character in chunk size")),
                },
                State::Ext(size) => match b {
                    b'\n' => after_size(size),
                    _ => State::Ext(size),
                },
                State::SizeLf(size) => match b {
                    b'\n' => after_size(size),
                    _ => return Err(ChunkError("CR without LF after chunk size")),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    b'\n' => State::Size { size: 0, digits: 0 },
                    _ => return Err(ChunkError("chunk data longer than its size")),
                },
                State::DataLf => match b {
                    b'\n' => State::Size { size: 0, digits: 0 },
                    _ => return Err(ChunkError("CR without LF after chunk data")),
                },
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    b'\n' => State::Done,
                    _ => State::TrailerLine,
                },
                State::TrailerLine => match b {
                    b'\n' => State::TrailerStart,
                    _ => State::TrailerLine,
                },
                State::EndLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(ChunkError("CR without LF at the end of the body")),
                },
                State::Data(_) | State::Done => unreachable_state(),
            };
            if self.state == State::Done {
                return Ok((i, true));
            }
        }
        Ok((i, self.state == State::Done))
    }
}

fn after_size(size: u64) -> State {
    if size == 0 {
        State::TrailerStart
    } else {
        State::Data(size)
    }
}

fn unreachable_state() -> State {
    // `Data` is handled before the byte match and `feed` returns at `Done`.
    State::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body length when it ends.
    fn run(input: &[u8], step: usize) -> Result<Option<usize>, ChunkError> {
        let mut c = Chunked::default();
        let mut at = 0;
        while at < input.len() {
            let end = (at + step).min(input.len());
            let (n, done) = c.feed(&input[at..end])?;
            at += n;
            if done {
                return Ok(Some(at));
            }
            assert_eq!(at, end, "consumes everything until done");
        }
        Ok(None)
    }

    #[test]
    fn whole_and_in_pieces() {
        let body = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            assert_eq!(run(body, step), Ok(Some(body.len() - 4)), "step {step}");
        }
        assert_eq!(run(b"0\r\n\r\n", 100), Ok(Some(5)));
        assert_eq!(run(b"0\n\n", 100), Ok(Some(3)), "bare LF tolerated");
        assert_eq!(run(b"5\r\nhel", 100), Ok(None));
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5\r\nhelloX",
            b"5\rX",
            b"1000000000000000\r\n",
            b"0\r\n\rX",
        ] {
            assert!(run(bad, 100).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
