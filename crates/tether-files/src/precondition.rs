//! Conditional requests: RFC 9110 §13.2.2's order of evaluation, and If-Range (§13.1.5).
//!
//! Evaluate only for a representation that exists and would otherwise be answered 200 (RFC
//! 9110 §13.2.1 has preconditions ignored for any other answer): a missing file is a 404
//! whatever its preconditions say.

use crate::validators::{parse_http_date, EntityTag, EtagList};

/// What to answer after the preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the representation; honour the `Range` header only when `range_applies`.
    Proceed {
        /// The method is GET, a `Range` header is present and `If-Range` (if any) holds.
        range_applies: bool,
    },
    /// 304 Not Modified (GET and HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// The validators of the selected representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The strong ETag as sent in the `ETag` header, quotes included.
    pub etag: &'a str,
    /// The Last-Modified time in seconds since the epoch.
    pub last_modified: u64,
}

/// Evaluates the conditional headers of a request.
///
/// `fields(name)` gives the values of every field line named `name` in order; names are
/// asked for in lowercase (`if-match`, `if-none-match`, `if-modified-since`,
/// `if-unmodified-since`, `if-range`, `range`) and the lookup must ignore case. `now` is the
/// current time in seconds since the epoch: an If-Modified-Since later than it cannot be a
/// date the client got from us (a clock in the future, or a guess), so it is ignored as RFC
/// 9110 §13.1.3 suggests. The two date headers are ignored too when unparsable or sent as
/// more than one field line. Last-Modified is compared in whole seconds and "not modified
/// True when the field holds one value, exactly `etag` (a strong tag): what a client that
/// revalidates sends back. It matches under both comparisons, without parsing a list.
fn names_exactly<'a>(values: impl IntoIterator<Item = &'a [u8]>, etag: &str) -> bool {
    let mut values = values.into_iter();
    let first = values.next();
    !etag.starts_with("W/")
        && values.next().is_none()
        && first.is_some_and(|v| v.trim_ascii() == etag.as_bytes())
}

/// since" means not later than the date (RFC's reading; nginx's default wants equality).
pub fn evaluate<'a, F, I>(method: &str, resource: &Resource<'_>, now: u64, fields: F) -> Outcome
where
    F: Fn(&'static str) -> I,
    I: IntoIterator<Item = &'a [u8]>,
{
    let current = EntityTag::parse(resource.etag.as_bytes()).unwrap_or(EntityTag {
        weak: false,
        opaque: resource.etag.as_bytes(),
    });
    let get_or_head = method == "GET" || method == "HEAD";

    // Step 1 and 2: If-Match, else If-Unmodified-Since.
    let mut if_match = fields("if-match").into_iter().peekable();
    if if_match.peek().is_some() {
        let holds = names_exactly(fields("if-match"), resource.etag)
            || EtagList::parse(if_match).is_ok_and(|l| l.matches_strong(&current));
        if !holds {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(date) = single_date(fields("if-unmodified-since")) {
        if resource.last_modified > date {
            return Outcome::PreconditionFailed;
        }
    }

    // Step 3 and 4: If-None-Match, else If-Modified-Since for GET and HEAD.
    let mut if_none_match = fields("if-none-match").into_iter().peekable();
    if if_none_match.peek().is_some() {
        let matched = names_exactly(fields("if-none-match"), resource.etag)
            || EtagList::parse(if_none_match).is_ok_and(|l| l.matches_weak(&current));
        if matched {
            return if get_or_head {
                Outcome::NotModified
            } else {
                Outcome::PreconditionFailed
            };
        }
    } else if get_or_head {
        if let Some(date) = single_date(fields("if-modified-since")) {
            if date <= now && resource.last_modified <= date {
                return Outcome::NotModified;
            }
        }
    }

    // Step 5: Range, under If-Range. Range is defined for GET only (RFC 9110 §14.2).
    let range_present = fields("range").into_iter().next().is_some();
    let range_applies =
        method == "GET" && range_present && if_range_holds(resource, &current, &fields);
    Outcome::Proceed { range_applies }
}

/// RFC 9110 §13.1.5: absent, or a strong tag matching strongly, or the exact Last-Modified
/// date. A weak tag, a malformed value or several field lines never match.
fn if_range_holds<'a, F, I>(resource: &Resource<'_>, current: &EntityTag<'_>, fields: &F) -> bool
where
    F: Fn(&'static str) -> I,
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = fields("if-range").into_iter();
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    let value = crate::quality::trim(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        EntityTag::parse(value).is_some_and(|t| t.strong_eq(current))
    } else {
        parse_http_date(value) == Some(resource.last_modified)
    }
}

/// The date of a header sent as exactly one field line, when it parses.
fn single_date<'a, I>(values: I) -> Option<u64>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validators::last_modified;

    const ETAG: &str = "\"1-2-3\"";
    const LM: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
    const NOW: u64 = LM + 1_000_000;

    fn date(secs: u64) -> String {
        last_modified(secs)
    }

    fn run(method: &str, headers: &[(&str, String)]) -> Outcome {
        let resource = Resource {
            etag: ETAG,
            last_modified: LM,
        };
        evaluate(method, &resource, NOW, |name| {
            headers
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        })
    }

    fn h(name: &'static str, value: &str) -> (&'static str, String) {
        (name, value.to_owned())
    }

    const PROCEED: Outcome = Outcome::Proceed {
        range_applies: false,
    };
    const RANGE: Outcome = Outcome::Proceed {
        range_applies: true,
    };
    const FAILED: Outcome = Outcome::PreconditionFailed;
    const NOT_MODIFIED: Outcome = Outcome::NotModified;

    // One row per line reads as a table; rustfmt would spread each over six.
    #[rustfmt::skip]
    #[test]
    fn table() {
        let before = date(LM - 1);
        let at = date(LM);
        let after = date(LM + 1);
        let future = date(NOW + 10);
        type Row = (&'static str, &'static str, Vec<(&'static str, String)>, Outcome);
        let rows: Vec<Row> = vec![
            ("no conditions", "GET", vec![], PROCEED),
            // If-Match
            ("if-match same", "GET", vec![h("If-Match", ETAG)], PROCEED),
            ("if-match star", "PUT", vec![h("If-Match", "*")], PROCEED),
            ("if-match other", "GET", vec![h("If-Match", "\"x\"")], FAILED),
            ("if-match weak is not strong", "GET", vec![h("If-Match", "W/\"1-2-3\"")], FAILED),
            ("if-match in a list", "GET", vec![h("If-Match", "\"x\", \"1-2-3\"")], PROCEED),
            ("if-match on a second line", "GET", vec![h("If-Match", "\"x\""), h("if-match", ETAG)], PROCEED),
            ("if-match malformed", "GET", vec![h("If-Match", "1-2-3")], FAILED),
            // If-Unmodified-Since
            ("ius after lm", "GET", vec![h("If-Unmodified-Since", &after)], PROCEED),
            ("ius at lm", "GET", vec![h("If-Unmodified-Since", &at)], PROCEED),
            ("ius before lm", "GET", vec![h("If-Unmodified-Since", &before)], FAILED),
            ("ius unparsable", "GET", vec![h("If-Unmodified-Since", "soon")], PROCEED),
            ("ius on two lines", "GET", vec![h("If-Unmodified-Since", &before), h("If-Unmodified-Since", &before)], PROCEED),
            ("if-match wins over ius", "GET", vec![h("If-Match", ETAG), h("If-Unmodified-Since", &before)], PROCEED),
            // If-None-Match
            ("inm match get", "GET", vec![h("If-None-Match", ETAG)], NOT_MODIFIED),
            ("inm match head", "HEAD", vec![h("If-None-Match", ETAG)], NOT_MODIFIED),
            ("inm match post", "POST", vec![h("If-None-Match", ETAG)], FAILED),
            ("inm weak matches", "GET", vec![h("If-None-Match", "W/\"1-2-3\"")], NOT_MODIFIED),
            ("inm star", "GET", vec![h("If-None-Match", "*")], NOT_MODIFIED),
            ("inm other", "GET", vec![h("If-None-Match", "\"x\"")], PROCEED),
            ("inm malformed", "GET", vec![h("If-None-Match", "garbage")], PROCEED),
            ("inm second line", "GET", vec![h("If-None-Match", "\"x\""), h("If-None-Match", "W/\"1-2-3\"")], NOT_MODIFIED),
            // If-Modified-Since
            ("ims at lm", "GET", vec![h("If-Modified-Since", &at)], NOT_MODIFIED),
            ("ims after lm", "HEAD", vec![h("If-Modified-Since", &after)], NOT_MODIFIED),
            ("ims before lm", "GET", vec![h("If-Modified-Since", &before)], PROCEED),
            ("ims in the future", "GET", vec![h("If-Modified-Since", &future)], PROCEED),
            ("ims unparsable", "GET", vec![h("If-Modified-Since", "Sun, 06 Nov")], PROCEED),
            ("ims on two lines", "GET", vec![h("If-Modified-Since", &at), h("If-Modified-Since", &at)], PROCEED),
            ("ims ignored for post", "POST", vec![h("If-Modified-Since", &at)], PROCEED),
            ("inm non-match beats ims", "GET", vec![h("If-None-Match", "\"x\""), h("If-Modified-Since", &at)], PROCEED),
            // Order: a failed If-Match is a 412 even when If-None-Match would give 304.
            ("if-match before inm", "GET", vec![h("If-Match", "\"x\""), h("If-None-Match", ETAG)], FAILED),
            ("ius before ims", "GET", vec![h("If-Unmodified-Since", &before), h("If-Modified-Since", &at)], FAILED),
            // Range and If-Range
            ("range alone", "GET", vec![h("Range", "bytes=0-1")], RANGE),
            ("range on head", "HEAD", vec![h("Range", "bytes=0-1")], PROCEED),
            ("range on post", "POST", vec![h("Range", "bytes=0-1")], PROCEED),
            ("if-range without range", "GET", vec![h("If-Range", ETAG)], PROCEED),
            ("if-range strong match", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", ETAG)], RANGE),
            ("if-range other tag", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", "\"x\"")], PROCEED),
            ("if-range weak never", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", "W/\"1-2-3\"")], PROCEED),
            ("if-range exact date", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", &at)], RANGE),
            ("if-range later date", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", &after)], PROCEED),
            ("if-range earlier date", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", &before)], PROCEED),
            ("if-range garbage", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", "whenever")], PROCEED),
            ("if-range two lines", "GET", vec![h("Range", "bytes=0-1"), h("If-Range", ETAG), h("If-Range", ETAG)], PROCEED),
            ("304 before range", "GET", vec![h("Range", "bytes=0-1"), h("If-None-Match", ETAG)], NOT_MODIFIED),
            ("if-match then range", "GET", vec![h("Range", "bytes=0-1"), h("If-Match", ETAG)], RANGE),
        ];
        for (name, method, headers, expected) in rows {
            assert_eq!(run(method, &headers), expected, "{name}");
        }
    }

    #[test]
    fn unquoted_resource_etag_still_compares() {
        let resource = Resource {
            etag: "abc",
            last_modified: LM,
        };
        let out = evaluate("GET", &resource, NOW, |name: &'static str| {
            (name == "if-none-match").then_some(&b"\"abc\""[..])
        });
        assert_eq!(out, Outcome::NotModified);
    }
}
