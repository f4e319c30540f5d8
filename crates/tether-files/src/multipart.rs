//! The body of a multipart/byteranges 206 (RFC 9110 §14.6), laid out up front so that its
//! exact length is known and the response needs no chunked coding.

use crate::range::content_range;

/// One part: its header bytes, then the file bytes `start..=end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `\r\n--BOUNDARY\r\nContent-Type: ...\r\nContent-Range: bytes a-b/len\r\n\r\n`.
    pub header: Vec<u8>,
    /// The first byte of the range.
    pub start: u64,
    /// The last byte of the range (inclusive).
    pub end: u64,
}

/// The layout of a multipart/byteranges body: each part's header then its file range, and
/// the closing delimiter last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    boundary: String,
    parts: Vec<Part>,
    closing: Vec<u8>,
    content_length: u64,
}

/// A boundary from `seed` (a per-worker counter mixed with the ETag, say): `tether-` and 16
/// hex digits, 23 characters, within RFC 2046's 1-70 of safe characters.
///
/// It needs to be unlikely to occur in the file, not secret; a file crafted to contain the
/// boundary line confuses only the client that asked for it (nginx makes the same bargain
/// with a counter).
pub fn boundary(seed: u64) -> String {
    // splitmix64: consecutive seeds give unrelated-looking boundaries.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("tether-{z:016x}")
}

impl Multipart {
    /// Lays out a body for `ranges` (inclusive, within `len`) of a representation of type
    /// `content_type` and length `len`.
    pub fn new(boundary: &str, content_type: &str, ranges: &[(u64, u64)], len: u64) -> Multipart {
        let parts: Vec<Part> = ranges
            .iter()
            .map(|&(start, end)| Part {
                header: format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                    content_range(start, end, len)
                )
                .into_bytes(),
                start,
                end,
            })
            .collect();
        let closing = format!("\r\n--{boundary}--\r\n").into_bytes();
        let content_length = parts.iter().fold(closing.len() as u64, |total, part| {
            total
                .saturating_add(part.header.len() as u64)
                .saturating_add(part.end.saturating_sub(part.start).saturating_add(1))
        });
        Multipart {
            boundary: boundary.to_owned(),
            parts,
            closing,
            content_length,
        }
    }

    /// The response's `Content-Type`: `multipart/byteranges; boundary=...`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The parts, in the order of the ranges.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The bytes after the last part: `\r\n--BOUNDARY--\r\n`.
    pub fn closing(&self) -> &[u8] {
        &self.closing
    }

    /// The exact length of the whole body.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a multipart/byteranges body back into (content-type, content-range, data).
    fn parse_body(body: &[u8], boundary: &str) -> Vec<(String, String, Vec<u8>)> {
        let delimiter = format!("\r\n--{boundary}");
        let text = body.to_vec();
        let mut parts = Vec::new();
        let mut pos = 0;
        loop {
            assert!(
                text[pos..].starts_with(delimiter.as_bytes()),
                "delimiter at {pos}"
            );
            pos += delimiter.len();
            if text[pos..] == *b"--\r\n" {
                return parts;
            }
            assert!(text[pos..].starts_with(b"\r\n"));
            pos += 2;
            let head_end = find(&text[pos..], b"\r\n\r\n").unwrap() + pos;
            let head = std::str::from_utf8(&text[pos..head_end]).unwrap();
            let mut ct = String::new();
            let mut cr = String::new();
            for line in head.split("\r\n") {
                let (name, value) = line.split_once(": ").unwrap();
                match name {
                    "Content-Type" => ct = value.to_owned(),
                    "Content-Range" => cr = value.to_owned(),
                    other => panic!("unexpected header {other}"),
                }
            }
            pos = head_end + 4;
            // The data runs to the next delimiter; the range says how long it must be.
            let data_end = find(&text[pos..], delimiter.as_bytes()).unwrap() + pos;
            parts.push((ct, cr, text[pos..data_end].to_vec()));
            pos = data_end;
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn assemble(m: &Multipart, file: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for part in m.parts() {
            body.extend_from_slice(&part.header);
            body.extend_from_slice(&file[part.start as usize..=part.end as usize]);
        }
        body.extend_from_slice(m.closing());
        body
    }

    #[test]
    fn body_length_matches_and_parses_back() {
        let file: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let ranges = [(0, 0), (10, 19), (990, 999), (500, 749)];
        let b = boundary(42);
        let m = Multipart::new(&b, "text/plain; charset=utf-8", &ranges, file.len() as u64);
        let body = assemble(&m, &file);
        assert_eq!(body.len() as u64, m.content_length());
        let parts = parse_body(&body, &b);
        assert_eq!(parts.len(), ranges.len());
        for ((ct, cr, data), &(start, end)) in parts.iter().zip(&ranges) {
            assert_eq!(ct, "text/plain; charset=utf-8");
            assert_eq!(*cr, format!("bytes {start}-{end}/1000"));
            assert_eq!(data.as_slice(), &file[start as usize..=end as usize]);
        }
    }

    #[test]
    fn exact_bytes_of_a_two_part_body() {
        let m = Multipart::new("B", "text/plain", &[(0, 1), (4, 4)], 5);
        let body = assemble(&m, b"abcde");
        assert_eq!(
            body,
            b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/5\r\n\r\nab\
              \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 4-4/5\r\n\r\ne\
              \r\n--B--\r\n"
                .to_vec()
        );
        assert_eq!(m.content_length(), body.len() as u64);
        assert_eq!(m.content_type(), "multipart/byteranges; boundary=B");
    }

    #[test]
    fn boundaries_are_valid_and_differ() {
        let a = boundary(1);
        let b = boundary(2);
        assert_ne!(a, b);
        for x in [&a, &b, &boundary(0), &boundary(u64::MAX)] {
            assert!((1..=70).contains(&x.len()));
            assert!(x.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
        }
        assert_eq!(boundary(7), boundary(7));
    }
}
