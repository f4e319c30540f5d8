//! The `Range` header for a representation of known length (RFC 9110 §14), with nginx's
//! guards against abusive range sets.

/// At most this many range specs are read; a header with more is ignored whole (200, the
/// full file), as serving hundreds of tiny parts costs far more than the file itself.
pub const MAX_RANGES: usize = 100;

/// What to send for a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// 200 with the whole representation: no header, another unit, a syntax error, too many
    /// ranges, or overlapping ranges adding up to more than the file.
    Full,
    /// 206 with one range, both ends inclusive.
    Single(u64, u64),
    /// 206 multipart/byteranges with these ranges, in request order, both ends inclusive.
    Multi(Vec<(u64, u64)>),
    /// 416 with `Content-Range: bytes */len`: no range overlaps the representation.
    Unsatisfiable,
}

/// Reads every field line of `Range`: exactly one is expected, several are ignored (serve
/// the whole representation) as an invalid field.
pub fn parse_fields<'a, I>(values: I, len: u64) -> Ranges
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (Some(value), None) => parse(value, len),
        _ => Ranges::Full,
    }
}

/// Parses one `Range` value against a representation of `len` bytes.
///
/// Only `bytes` is understood (case-insensitively). `first-last` with `last < first` is
/// a syntax error, so the header is ignored (RFC 9110 calls it invalid). A suffix of 0
/// (`-0`) and a `first` at or past `len` are unsatisfiable and dropped; a suffix longer
/// than the file is the whole file; a `last` past the end is clamped. Numbers too large for
/// a u64 saturate, which gives the same answers as exact arithmetic would. On an empty
/// file a suffix range is served as the (empty) whole, and any other range is unsatisfiable.
pub fn parse(value: &[u8], len: u64) -> Ranges {
    let value = crate::quality::trim(value);
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return Ranges::Full;
    };
    let (unit, set) = value.split_at(eq);
    if !crate::quality::trim(unit).eq_ignore_ascii_case(b"bytes") {
        return Ranges::Full;
    }
    let set = set.get(1..).unwrap_or_default();

    let mut satisfiable = Vec::new();
    let mut specs = 0usize;
    let mut total: u64 = 0;
    let mut suffix_on_empty = false;
    for spec in set.split(|&b| b == b',') {
        let spec = crate::quality::trim(spec);
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Full;
        }
        let Some(spec) = Spec::parse(spec) else {
            return Ranges::Full;
        };
        if len == 0 {
            suffix_on_empty |= matches!(spec, Spec::Suffix(n) if n > 0);
            continue;
        }
        let Some((start, end)) = spec.bounds(len) else {
            continue;
        };
        // end < len, so `end - start + 1` fits; the sum is checked, as two ranges of a
        // file near u64::MAX bytes could wrap it.
        total = match total.checked_add(end - start + 1) {
            Some(t) if t <= len => t,
            _ => return Ranges::Full,
        };
        satisfiable.push((start, end));
    }
    if specs == 0 || suffix_on_empty {
        return Ranges::Full;
    }
    match satisfiable.as_slice() {
        [] => Ranges::Unsatisfiable,
        [(start, end)] => Ranges::Single(*start, *end),
        _ => Ranges::Multi(satisfiable),
    }
}

enum Spec {
    From(u64, Option<u64>),
    Suffix(u64),
}

impl Spec {
    fn parse(spec: &[u8]) -> Option<Spec> {
        let dash = spec.iter().position(|&b| b == b'-')?;
        let (first, last) = spec.split_at(dash);
        let last = last.get(1..).unwrap_or_default();
        match (number(first), number(last)) {
            (None, Some(n)) if first.is_empty() => Some(Spec::Suffix(n)),
            (Some(first), None) if last.is_empty() => Some(Spec::From(first, None)),
            (Some(first), Some(last)) if last >= first => Some(Spec::From(first, Some(last))),
            _ => None,
        }
    }

    /// The inclusive bounds within a non-empty representation, or `None` if unsatisfiable.
    fn bounds(&self, len: u64) -> Option<(u64, u64)> {
        let last_byte = len.checked_sub(1)?;
        match *self {
            Spec::Suffix(0) => None,
            Spec::Suffix(n) => Some((len.saturating_sub(n), last_byte)),
            Spec::From(first, _) if first >= len => None,
            Spec::From(first, last) => Some((first, last.map_or(last_byte, |l| l.min(last_byte)))),
        }
    }
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// The `Content-Range` value of a 206 part: `bytes start-end/len`.
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// The `Content-Range` value of a 416: `bytes */len`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(value: &str, len: u64) -> Ranges {
        parse(value.as_bytes(), len)
    }

    #[test]
    fn single_forms() {
        assert_eq!(p("bytes=0-499", 1000), Ranges::Single(0, 499));
        assert_eq!(p("bytes=500-999", 1000), Ranges::Single(500, 999));
        assert_eq!(p("bytes=500-", 1000), Ranges::Single(500, 999));
        assert_eq!(p("bytes=-500", 1000), Ranges::Single(500, 999));
        assert_eq!(p("bytes=0-0", 1000), Ranges::Single(0, 0));
        assert_eq!(p("bytes=999-999", 1000), Ranges::Single(999, 999));
        assert_eq!(p("bytes=-1", 1000), Ranges::Single(999, 999));
    }

    #[test]
    fn unit_is_case_insensitive_and_whitespace_is_allowed() {
        assert_eq!(p(" Bytes=0-1 ", 10), Ranges::Single(0, 1));
        assert_eq!(
            p("bytes= 0-1 ,\t 3-4 , ", 10),
            Ranges::Multi(vec![(0, 1), (3, 4)])
        );
    }

    #[test]
    fn other_units_and_syntax_errors_are_ignored() {
        for v in [
            "items=0-1",
            "bytes",
            "bytes 0-1",
            "bytes=",
            "bytes=,",
            "bytes=abc",
            "bytes=1",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=5-4",
            "bytes=0-1,x",
            "bytes=0 - 1",
            "",
        ] {
            assert_eq!(p(v, 100), Ranges::Full, "{v}");
        }
    }

    #[test]
    fn suffix_zero_is_unsatisfiable() {
        assert_eq!(p("bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-0,0-1", 100), Ranges::Single(0, 1));
    }

    #[test]
    fn suffix_longer_than_file_is_whole_file() {
        assert_eq!(p("bytes=-500", 100), Ranges::Single(0, 99));
    }

    #[test]
    fn last_is_clamped() {
        assert_eq!(p("bytes=50-5000", 100), Ranges::Single(50, 99));
    }

    #[test]
    fn first_past_end_is_dropped() {
        assert_eq!(p("bytes=100-200", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=0-9,100-200", 100), Ranges::Single(0, 9));
        assert_eq!(p("bytes=200-300,100-", 100), Ranges::Unsatisfiable);
    }

    #[test]
    fn multi_keeps_request_order() {
        assert_eq!(
            p("bytes=50-59,0-9,-10", 100),
            Ranges::Multi(vec![(50, 59), (0, 9), (90, 99)])
        );
    }

    #[test]
    fn overlap_beyond_length_is_full() {
        // 60 + 60 > 100: nginx serves the whole file rather than repeat bytes.
        assert_eq!(p("bytes=0-59,40-99", 100), Ranges::Full);
        // Exactly the length is still fine.
        assert_eq!(
            p("bytes=0-49,50-99", 100),
            Ranges::Multi(vec![(0, 49), (50, 99)])
        );
        assert_eq!(p("bytes=0-,0-", 100), Ranges::Full);
        assert_eq!(p("bytes=-100,-1", 100), Ranges::Full);
    }

    #[test]
    fn too_many_ranges_is_full() {
        let spec = |n: usize| {
            let parts: Vec<String> = (0..n).map(|i| format!("{i}-{i}")).collect();
            format!("bytes={}", parts.join(","))
        };
        match p(&spec(MAX_RANGES), 1000) {
            Ranges::Multi(r) => assert_eq!(r.len(), MAX_RANGES),
            other => panic!("{other:?}"),
        }
        assert_eq!(p(&spec(MAX_RANGES + 1), 1000), Ranges::Full);
    }

    #[test]
    fn huge_numbers_never_overflow() {
        assert_eq!(
            p("bytes=99999999999999999999999-", 100),
            Ranges::Unsatisfiable
        );
        assert_eq!(
            p("bytes=0-18446744073709551615", 100),
            Ranges::Single(0, 99)
        );
        assert_eq!(p("bytes=18446744073709551615-", 100), Ranges::Unsatisfiable);
        assert_eq!(
            p("bytes=0-99999999999999999999999999", 100),
            Ranges::Single(0, 99)
        );
        assert_eq!(
            p("bytes=-99999999999999999999999", 100),
            Ranges::Single(0, 99)
        );
        assert_eq!(
            p("bytes=0-18446744073709551615", u64::MAX),
            Ranges::Single(0, u64::MAX - 1)
        );
        assert_eq!(
            p("bytes=18446744073709551614-", u64::MAX),
            Ranges::Single(u64::MAX - 1, u64::MAX - 1)
        );
        assert_eq!(
            p("bytes=0-,1-", u64::MAX),
            Ranges::Full,
            "the sum is checked instead of wrapping"
        );
        assert_eq!(
            p("bytes=18446744073709551615-18446744073709551614", 100),
            Ranges::Full
        );
    }

    #[test]
    fn empty_file() {
        assert_eq!(p("bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=0-0", 0), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-0", 0), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), Ranges::Full);
    }

    #[test]
    fn several_field_lines_are_ignored() {
        let one: [&[u8]; 1] = [b"bytes=0-1"];
        assert_eq!(parse_fields(one, 10), Ranges::Single(0, 1));
        let two: [&[u8]; 2] = [b"bytes=0-1", b"bytes=2-3"];
        assert_eq!(parse_fields(two, 10), Ranges::Full);
        assert_eq!(parse_fields(Vec::<&[u8]>::new(), 10), Ranges::Full);
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(0, 499, 1234), "bytes 0-499/1234");
        assert_eq!(unsatisfied_range(1234), "bytes */1234");
    }
}
