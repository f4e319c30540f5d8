//! Request body framing: the chunked decoder (RFC 9112 section 7.1).
//!
//! The decoder is a byte-level state machine over borrowed input: it never copies, and it
//! yields ranges of chunk data inside the input it was given. It accepts only CRLF line ends
//! in framing, and chunk-size lines only as RFC 9112 section 7.1.1 writes them (no bytes
//! skipped after the size), so that no two parsers can disagree about where a chunk ends.

use std::ops::Range;

/// Why a chunked body was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk size that is not hex, is empty or overflows, or that is followed by anything
    /// but CRLF or `;` (whitespace is allowed only before a `;`).
    BadSize,
    /// A chunk extension that does not follow `*( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
    /// chunk-ext-val ] )`.
    BadExtension,
    /// A CR not followed by LF, or data not followed by CRLF.
    BadLineEnd,
    /// Chunk extensions or trailers longer than allowed.
    TooLong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` counts them.
    Size { digits: u8 },
    /// Whitespace (BWS) after the size, which only `;` may follow.
    SizeWs,
    /// Whitespace (BWS) after an extension value, which only `;` may follow.
    ExtWs,
    /// After `;`: BWS, then the extension name.
    ExtSemi,
    /// Inside an extension name.
    ExtName,
    /// Whitespace after an extension name, which only `=` or `;` may follow.
    ExtNameWs,
    /// After `=`: BWS, then the value.
    ExtEq,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash inside a quoted-string.
    ExtQuotedPair,
    /// After the closing quote of a value.
    ExtQuotedEnd,
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
    /// Bytes of trailer field lines (each with its CRLF) consumed, as a range of the input:
    /// a caller that keeps them, step after step, has the trailer section once the body is
    /// done.
    pub trailer: Option<Range<usize>>,
}

/// Counts input byte `i` in the trailer lines of a step.
fn trailer_byte(trailer: &mut Option<(usize, usize)>, i: usize) {
    trailer.get_or_insert((i, i)).1 = i + 1;
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
        // The trailer field lines met in this step, as a range of the input.
        let mut trailer: Option<(usize, usize)> = None;
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
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b';' {
                        self.meta()?;
                        self.state = State::ExtSemi;
                    } else if is_ws(b) {
                        self.meta()?;
                        self.state = State::SizeWs;
                    } else {
                        return Err(ChunkError::BadSize);
                    }
                }
                State::SizeWs => {
                    self.meta()?;
                    if b == b';' {
                        self.state = State::ExtSemi;
                    } else if !is_ws(b) {
                        return Err(ChunkError::BadSize);
                    }
                }
                State::ExtWs => {
                    self.meta()?;
                    if b == b';' {
                        self.state = State::ExtSemi;
                    } else if !is_ws(b) {
                        return Err(ext_error(b));
                    }
                }
                State::ExtSemi => {
                    self.meta()?;
                    if is_tchar(b) {
                        self.state = State::ExtName;
                    } else if !is_ws(b) {
                        return Err(ext_error(b));
                    }
                }
                State::ExtName => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else {
                        self.meta()?;
                        self.state = match b {
                            _ if is_tchar(b) => State::ExtName,
                            b';' => State::ExtSemi,
                            b'=' => State::ExtEq,
                            b' ' | b'\t' => State::ExtNameWs,
                            _ => return Err(ext_error(b)),
                        };
                    }
                }
                State::ExtNameWs => {
                    self.meta()?;
                    self.state = match b {
                        b';' => State::ExtSemi,
                        b'=' => State::ExtEq,
                        b' ' | b'\t' => State::ExtNameWs,
                        _ => return Err(ext_error(b)),
                    };
                }
                State::ExtEq => {
                    self.meta()?;
                    self.state = match b {
                        b'"' => State::ExtQuoted,
                        b' ' | b'\t' => State::ExtEq,
                        _ if is_tchar(b) => State::ExtToken,
                        _ => return Err(ext_error(b)),
                    };
                }
                State::ExtToken | State::ExtQuotedEnd => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else {
                        self.meta()?;
                        self.state = match b {
                            _ if is_tchar(b) && self.state == State::ExtToken => State::ExtToken,
                            b';' => State::ExtSemi,
                            b' ' | b'\t' => State::ExtWs,
                            _ => return Err(ext_error(b)),
                        };
                    }
                }
                State::ExtQuoted => {
                    self.meta()?;
                    // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                    self.state = match b {
                        b'"' => State::ExtQuotedEnd,
                        b'\\' => State::ExtQuotedPair,
                        b'\t' | b' '..=b'~' | 0x80.. => State::ExtQuoted,
                        _ => return Err(ext_error(b)),
                    };
                }
                State::ExtQuotedPair => {
                    self.meta()?;
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    self.state = match b {
                        b'\t' | b' '..=b'~' | 0x80.. => State::ExtQuoted,
                        _ => return Err(ext_error(b)),
                    };
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
                        trailer_byte(&mut trailer, i);
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
                    trailer_byte(&mut trailer, i);
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::TrailerStart;
                    trailer_byte(&mut trailer, i);
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Done;
                    return Ok(Step {
                        consumed: i + 1,
                        data: None,
                        trailer: trailer.map(|(a, b)| a..b),
                    });
                }
                State::Done => {
                    return Ok(Step {
                        consumed: i,
                        data: None,
                        trailer: trailer.map(|(a, b)| a..b),
                    })
                }
            }
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: None,
            trailer: trailer.map(|(a, b)| a..b),
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
            trailer: None,
        }
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `tchar` (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// The error for byte `b` out of place in a chunk extension: a bare LF is a bad line end,
/// anything else a bad extension.
fn ext_error(b: u8) -> ChunkError {
    if b == b'\n' {
        ChunkError::BadLineEnd
    } else {
        ChunkError::BadExtension
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

    /// Decodes `size_line` (CRLF included) with a 3-byte chunk, then the last chunk.
    fn chunk_line(size_line: &[u8]) -> Result<Vec<u8>, ChunkError> {
        let input = [size_line, b"abc\r\n0\r\n\r\n"].concat();
        let whole = decode(&input, input.len()).map(|(body, _)| body);
        assert_eq!(whole, decode(&input, 1).map(|(body, _)| body), "bytewise");
        whole
    }

    #[test]
    fn chunk_lines_per_the_grammar_are_accepted() {
        for line in [
            &b"3\r\n"[..],
            b"03\r\n",
            b"3;name\r\n",
            b"3;name=value\r\n",
            b"3;a=1;b;c=\"q\"\r\n",
            b"3 ;ext\r\n",
            b"3\t;ext\r\n",
            b"3 \t ; ext\r\n",
            b"3;ext ;b\r\n",
            b"3;name = value\r\n",
            b"3;name\t=\tvalue ; x\r\n",
            b"3;n=\"\"\r\n",
            b"3;n=\"a b;c=d\\\"e\\\\\"\r\n",
            b"3;n=\"\t\x80\xff\"\r\n",
            b"3;n=\"a\" ;m\r\n",
            b"3;n=\"a\";m=b\r\n",
            b"3;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\n",
        ] {
            assert_eq!(
                chunk_line(line),
                Ok(b"abc".to_vec()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn junk_after_the_size_is_rejected() {
        for line in [
            &b"3x\r\n"[..],
            b"3 \r\n",
            b"3\t\r\n",
            b"3 x\r\n",
            b"3 3\r\n",
            b"3,ext\r\n",
            b"3=1\r\n",
            b"3\"x\"\r\n",
            b"3\x00\r\n",
            b"3\x0b\r\n",
            b"0x3\r\n",
            b"+3\r\n",
            b"-3\r\n",
            b" 3\r\n",
            b";ext\r\n",
            b"\r\n",
            b"3\n",
            b"3 \n",
            b"11111111111111111\r\n",
            b"00000000000000003\r\n",
        ] {
            assert_eq!(
                chunk_line(line),
                Err(ChunkError::BadSize),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn malformed_extensions_are_rejected() {
        for line in [
            &b"3;\r\n"[..],
            b"3; \r\n",
            b"3;;\r\n",
            b"3;=v\r\n",
            b"3;name=\r\n",
            b"3;name= \r\n",
            b"3;name \r\n",
            b"3;name=value \r\n",
            b"3;name=\"v\" \r\n",
            b"3;na me\r\n",
            b"3;name=va lue\r\n",
            b"3;name==v\r\n",
            b"3;name=\"v\"x\r\n",
            b"3;name=\"v\r\n",
            b"3;name=\"v\x01\"\r\n",
            b"3;name=\"v\x7f\"\r\n",
            b"3;name=\"\\\x01\"\r\n",
            b"3;name=v\"\r\n",
            b"3;n(x)\r\n",
            b"3;n\x00\r\n",
            b"3;n\x0c\r\n",
            b"3;n=\x7f\r\n",
            b"3;n=v\x80\r\n",
            b"3;n\rx\r\n",
        ] {
            let got = chunk_line(line);
            assert!(
                matches!(got, Err(ChunkError::BadExtension | ChunkError::BadLineEnd)),
                "{:?}: {got:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(chunk_line(b"3;na me\r\n"), Err(ChunkError::BadExtension));
        assert_eq!(chunk_line(b"3;n=v \r\n"), Err(ChunkError::BadExtension));
        // A CR not followed by LF, and a bare LF, are bad line ends.
        assert_eq!(chunk_line(b"3;n\rx\r\n"), Err(ChunkError::BadLineEnd));
        assert_eq!(chunk_line(b"3;n\n"), Err(ChunkError::BadLineEnd));
        assert_eq!(chunk_line(b"3;n=v\n"), Err(ChunkError::BadLineEnd));
        assert_eq!(chunk_line(b"3;n=\"v\"\n"), Err(ChunkError::BadLineEnd));
        assert_eq!(chunk_line(b"3; \n"), Err(ChunkError::BadLineEnd));
    }

    #[test]
    fn extension_bytes_count_against_the_limit() {
        // 64 bytes of metadata are allowed: `;` and 63 more fit, one more does not.
        let fits = [b"3;".as_slice(), &[b'a'; 63], b"\r\n"].concat();
        assert_eq!(chunk_line(&fits), Ok(b"abc".to_vec()));
        let over = [b"3;".as_slice(), &[b'a'; 64], b"\r\n"].concat();
        assert_eq!(chunk_line(&over), Err(ChunkError::TooLong));
        let spaces = [b"3".as_slice(), &[b' '; 80], b";a\r\n"].concat();
        assert_eq!(chunk_line(&spaces), Err(ChunkError::TooLong));
        let quoted = [b"3;a=\"".as_slice(), &[b'q'; 80], b"\"\r\n"].concat();
        assert_eq!(chunk_line(&quoted), Err(ChunkError::TooLong));
    }

    #[test]
    fn trailer_lines_are_reported_whole_or_split() {
        let input = b"5\r\nhello\r\n0\r\nA: 1\r\nB-2: two\r\n\r\n";
        for split in [input.len(), 1, 3, 7] {
            let mut d = ChunkedDecoder::new(1024);
            let (mut data, mut trailers) = (Vec::new(), Vec::new());
            for piece in input.chunks(split) {
                let mut at = 0;
                while at < piece.len() && !d.is_done() {
                    let step = d.step(&piece[at..]).unwrap();
                    if let Some(r) = step.data {
                        data.extend_from_slice(&piece[at + r.start..at + r.end]);
                    }
                    if let Some(r) = step.trailer {
                        trailers.extend_from_slice(&piece[at + r.start..at + r.end]);
                    }
                    at += step.consumed;
                }
            }
            assert!(d.is_done());
            assert_eq!(data, b"hello");
            assert_eq!(trailers, b"A: 1\r\nB-2: two\r\n", "split {split}");
        }
        let mut d = ChunkedDecoder::new(1024);
        let step = d.step(b"0\r\n\r\n").unwrap();
        assert!(d.is_done() && step.trailer.is_none());
    }
}
