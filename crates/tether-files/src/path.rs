//! From the raw request path to a safe relative path, or a named reason to refuse it.
//!
//! Percent-escapes are decoded exactly once, segment by segment, and anything that could
//! mean something else to the file system is rejected rather than rewritten: a server that
//! "cleans" `/a/../b` into `/b` has to be right about every encoding of `..`, one that
//! refuses has only to notice it. See [`Rejected`] for the full list.

use std::fmt;
use std::path::PathBuf;

/// A request path that is safe to join to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    segments: Vec<String>,
    trailing_slash: bool,
    hidden: bool,
}

impl Mapped {
    /// The decoded segments, none empty, none `.` or `..`; empty for `/`.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The segments as a relative path (empty for `/`).
    pub fn relative(&self) -> PathBuf {
        self.segments.iter().collect()
    }

    /// Whether the request path ended with `/` (always true for `/`): a folder asked for
    /// without it is redirected by the caller, so that relative links in a listing work.
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// Whether a segment starts with `.` (a dotfile or a file in a dot-folder): refused
    /// (as not found) unless the server was told to serve dotfiles.
    pub fn hidden(&self) -> bool {
        self.hidden
    }

    /// Whether this is the root, `/`.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }
}

/// Why a request path was refused; the caller answers 404 (or 400) and may log the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The path does not start with `/` (`*`, `a/b`, an absolute URI the caller kept).
    NotAbsolute,
    /// A `%` not followed by two hex digits: `%`, `%2`, `%zz`.
    MalformedEscape,
    /// After one decode a segment still holds `%` and two hex digits (`%252e`): whoever
    /// decodes again downstream would see another path.
    DoubleEncoded,
    /// A `..` segment, in any encoding: `..`, `%2e%2e`, `.%2e`, `%2E.`.
    DotDot,
    /// A `.` segment (`/a/./b`), in any encoding.
    Dot,
    /// An empty segment in the middle (`/a//b`).
    EmptySegment,
    /// A `\`, raw or `%5c`: a separator on Windows.
    Backslash,
    /// A `/` inside a segment, from `%2f`: it would add a level the router never saw.
    EncodedSlash,
    /// A NUL (`%00`) or another control byte (0x01-0x1f, 0x7f), raw or encoded.
    ControlByte,
    /// The decoded segment is not UTF-8.
    InvalidUtf8,
    /// A segment starting with a drive letter and `:` (`C:`, `c:foo`).
    DriveLetter,
    /// A Windows device name as a segment (`CON`, `nul.txt`, `com1`), case-insensitive.
    DeviceName,
}

impl Rejected {
    /// A short stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Rejected::NotAbsolute => "not-absolute",
            Rejected::MalformedEscape => "malformed-escape",
            Rejected::DoubleEncoded => "double-encoded",
            Rejected::DotDot => "dot-dot",
            Rejected::Dot => "dot",
            Rejected::EmptySegment => "empty-segment",
            Rejected::Backslash => "backslash",
            Rejected::EncodedSlash => "encoded-slash",
            Rejected::ControlByte => "control-byte",
            Rejected::InvalidUtf8 => "invalid-utf8",
            Rejected::DriveLetter => "drive-letter",
            Rejected::DeviceName => "device-name",
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Rejected {}

/// The path part of a request target: everything before the first `?`.
pub fn strip_query(target: &[u8]) -> &[u8] {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => target.split_at(q).0,
        None => target,
    }
}

/// Maps a raw request path (query already removed, see [`strip_query`]) to a [`Mapped`].
///
/// # Errors
/// A [`Rejected`] naming the first reason found, segment by segment from the left.
pub fn map(raw: &[u8]) -> Result<Mapped, Rejected> {
    let rest = match raw {
        [b'/', rest @ ..] => rest,
        _ => return Err(Rejected::NotAbsolute),
    };
    if rest.is_empty() {
        return Ok(Mapped {
            segments: Vec::new(),
            trailing_slash: true,
            hidden: false,
        });
    }
    let (body, trailing_slash) = match rest.strip_suffix(b"/") {
        Some(body) => (body, true),
        None => (rest, false),
    };
    let mut segments = Vec::new();
    let mut hidden = false;
    // `//` leaves an empty body, which splits into one empty segment and is refused.
    for raw_segment in body.split(|&b| b == b'/') {
        let segment = decode(raw_segment)?;
        check_segment(&segment)?;
        hidden |= segment.starts_with('.');
        segments.push(segment);
    }
    Ok(Mapped {
        segments,
        trailing_slash,
        hidden,
    })
}

/// Decodes one raw segment once and checks its bytes before they become a `String`.
fn decode(raw: &[u8]) -> Result<String, Rejected> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'%' {
            let hi = raw.get(i + 1).and_then(|&h| hex(h));
            let lo = raw.get(i + 2).and_then(|&l| hex(l));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(Rejected::MalformedEscape),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if out.contains(&b'/') {
        return Err(Rejected::EncodedSlash);
    }
    if out.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(Rejected::ControlByte);
    }
    String::from_utf8(out).map_err(|_| Rejected::InvalidUtf8)
}

/// The checks on one decoded segment, shared with the listing (which hides the names that
/// could not be asked for).
pub(crate) fn check_segment(segment: &str) -> Result<(), Rejected> {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return Err(Rejected::EmptySegment);
    }
    if segment == "." {
        return Err(Rejected::Dot);
    }
    if segment == ".." {
        return Err(Rejected::DotDot);
    }
    if bytes.contains(&b'\\') {
        return Err(Rejected::Backslash);
    }
    if bytes.contains(&b'/') {
        return Err(Rejected::EncodedSlash);
    }
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(Rejected::ControlByte);
    }
    if bytes
        .windows(3)
        .any(|w| matches!(w, [b'%', h, l] if hex(*h).is_some() && hex(*l).is_some()))
    {
        return Err(Rejected::DoubleEncoded);
    }
    if let [letter, b':', ..] = bytes {
        if letter.is_ascii_alphabetic() {
            return Err(Rejected::DriveLetter);
        }
    }
    if is_device_name(segment) {
        return Err(Rejected::DeviceName);
    }
    Ok(())
}

/// Windows opens the device whatever the extension (`nul.txt`) and ignores trailing spaces
/// before it (`con .txt`); `COM¹`-`COM³` are devices too.
fn is_device_name(segment: &str) -> bool {
    let stem = segment
        .split('.')
        .next()
        .unwrap_or(segment)
        .trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let (head, tail) = (upper.get(..3), upper.get(3..));
            match (head, tail) {
                (Some("COM" | "LPT"), Some(n)) => {
                    matches!(n, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9")
                        || matches!(n, "\u{b9}" | "\u{b2}" | "\u{b3}")
                }
                _ => false,
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Mapped {
        map(raw.as_bytes()).unwrap()
    }

    fn err(raw: &[u8]) -> Rejected {
        map(raw).unwrap_err()
    }

    #[test]
    fn root() {
        let m = ok("/");
        assert!(m.is_root());
        assert!(m.trailing_slash());
        assert!(!m.hidden());
        assert_eq!(m.relative(), PathBuf::new());
    }

    #[test]
    fn plain_file_and_folder() {
        let m = ok("/a/b.txt");
        assert_eq!(m.segments(), ["a", "b.txt"]);
        assert_eq!(m.relative(), PathBuf::from("a/b.txt"));
        assert!(!m.trailing_slash());
        let m = ok("/a/b/");
        assert_eq!(m.segments(), ["a", "b"]);
        assert!(m.trailing_slash());
    }

    #[test]
    fn decodes_once() {
        let m = ok("/caf%C3%A9/a%20b%23c%3F");
        assert_eq!(m.segments(), ["café", "a b#c?"]);
        // A literal percent sign not followed by two hex digits after decoding is a name.
        assert_eq!(ok("/100%25").segments(), ["100%"]);
        assert_eq!(ok("/100%25x").segments(), ["100%x"]);
        // Raw UTF-8 is accepted as it is.
        assert_eq!(ok("/café").segments(), ["café"]);
    }

    #[test]
    fn strip_query_cuts_at_first_question_mark() {
        assert_eq!(strip_query(b"/a/b?x=1?y"), b"/a/b");
        assert_eq!(strip_query(b"/a/b"), b"/a/b");
        assert_eq!(strip_query(b"/?"), b"/");
    }

    #[test]
    fn rejects_not_absolute() {
        assert_eq!(err(b""), Rejected::NotAbsolute);
        assert_eq!(err(b"a/b"), Rejected::NotAbsolute);
        assert_eq!(err(b"*"), Rejected::NotAbsolute);
        assert_eq!(err(b"http://x/a"), Rejected::NotAbsolute);
    }

    #[test]
    fn rejects_dot_dot_raw() {
        assert_eq!(err(b"/.."), Rejected::DotDot);
        assert_eq!(err(b"/a/../b"), Rejected::DotDot);
        assert_eq!(err(b"/a/.."), Rejected::DotDot);
        assert_eq!(err(b"/a/../"), Rejected::DotDot);
    }

    #[test]
    fn rejects_dot_dot_fully_encoded() {
        assert_eq!(err(b"/%2e%2e/etc/passwd"), Rejected::DotDot);
        assert_eq!(err(b"/a/%2E%2E/b"), Rejected::DotDot);
    }

    #[test]
    fn rejects_dot_dot_second_dot_encoded() {
        assert_eq!(err(b"/.%2e/x"), Rejected::DotDot);
        assert_eq!(err(b"/a/.%2E"), Rejected::DotDot);
    }

    #[test]
    fn rejects_dot_dot_first_dot_encoded() {
        assert_eq!(err(b"/%2E./x"), Rejected::DotDot);
        assert_eq!(err(b"/a/%2e./"), Rejected::DotDot);
    }

    #[test]
    fn rejects_double_encoded() {
        assert_eq!(err(b"/%252e%252e/x"), Rejected::DoubleEncoded);
        assert_eq!(err(b"/a%252fb"), Rejected::DoubleEncoded);
        assert_eq!(err(b"/%255c"), Rejected::DoubleEncoded);
        // A raw `%` plus hex is a malformed escape before it can be double anything.
        assert_eq!(err(b"/%%32%65"), Rejected::MalformedEscape);
    }

    #[test]
    fn rejects_backslash_raw() {
        assert_eq!(err(b"/a\\..\\b"), Rejected::Backslash);
    }

    #[test]
    fn rejects_backslash_encoded() {
        assert_eq!(err(b"/a%5c..%5Cb"), Rejected::Backslash);
    }

    #[test]
    fn rejects_encoded_slash() {
        assert_eq!(err(b"/a%2fb"), Rejected::EncodedSlash);
        assert_eq!(err(b"/..%2F..%2Fetc"), Rejected::EncodedSlash);
    }

    #[test]
    fn rejects_nul() {
        assert_eq!(err(b"/a%00.txt"), Rejected::ControlByte);
        assert_eq!(err(b"/a\0.txt"), Rejected::ControlByte);
    }

    #[test]
    fn rejects_other_control_bytes() {
        assert_eq!(err(b"/a%0d%0aSet-Cookie"), Rejected::ControlByte);
        assert_eq!(err(b"/a%1fb"), Rejected::ControlByte);
        assert_eq!(err(b"/a%7Fb"), Rejected::ControlByte);
        assert_eq!(err(b"/a\tb"), Rejected::ControlByte);
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert_eq!(err(b"/%ff"), Rejected::InvalidUtf8);
        assert_eq!(err(b"/%C3"), Rejected::InvalidUtf8);
        assert_eq!(err(b"/a\xc3("), Rejected::InvalidUtf8);
    }

    #[test]
    fn rejects_lone_percent() {
        assert_eq!(err(b"/%"), Rejected::MalformedEscape);
        assert_eq!(err(b"/a%/b"), Rejected::MalformedEscape);
    }

    #[test]
    fn rejects_short_escape() {
        assert_eq!(err(b"/%2"), Rejected::MalformedEscape);
        assert_eq!(err(b"/a%2/b"), Rejected::MalformedEscape);
    }

    #[test]
    fn rejects_non_hex_escape() {
        assert_eq!(err(b"/%zz"), Rejected::MalformedEscape);
        assert_eq!(err(b"/%g0"), Rejected::MalformedEscape);
        assert_eq!(err(b"/%0g"), Rejected::MalformedEscape);
    }

    #[test]
    fn rejects_drive_letters() {
        assert_eq!(err(b"/C:"), Rejected::DriveLetter);
        assert_eq!(err(b"/c:foo"), Rejected::DriveLetter);
        assert_eq!(err(b"/a/Z%3a/b"), Rejected::DriveLetter);
        // A colon elsewhere is an ordinary character on Unix.
        assert_eq!(ok("/ab:c").segments(), ["ab:c"]);
        assert_eq!(ok("/1:x").segments(), ["1:x"]);
    }

    #[test]
    fn rejects_device_names() {
        for name in [
            "CON",
            "con",
            "Prn",
            "aux",
            "NUL",
            "com1",
            "COM9",
            "lpt1",
            "LpT9",
            "nul.txt",
            "CON.tar.gz",
            "con .txt",
            "com%C2%B9",
            "nul%20",
        ] {
            let raw = format!("/docs/{name}");
            assert_eq!(err(raw.as_bytes()), Rejected::DeviceName, "{name}");
        }
        for name in [
            "com0",
            "com10",
            "lpt",
            "console",
            "nullish",
            "auxiliary.txt",
            "xcon",
        ] {
            assert!(map(format!("/{name}").as_bytes()).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_dot_segment() {
        assert_eq!(err(b"/a/./b"), Rejected::Dot);
        assert_eq!(err(b"/."), Rejected::Dot);
        assert_eq!(err(b"/%2e/"), Rejected::Dot);
    }

    #[test]
    fn rejects_empty_segment() {
        assert_eq!(err(b"//"), Rejected::EmptySegment);
        assert_eq!(err(b"//etc/passwd"), Rejected::EmptySegment);
        assert_eq!(err(b"/a//b"), Rejected::EmptySegment);
        assert_eq!(err(b"/a//"), Rejected::EmptySegment);
    }

    #[test]
    fn dotfiles_are_hidden_not_rejected() {
        let m = ok("/.env");
        assert!(m.hidden());
        assert_eq!(m.segments(), [".env"]);
        assert!(ok("/.git/config").hidden());
        assert!(ok("/a/.well-known/").hidden());
        assert!(ok("/%2egit/HEAD").hidden());
        assert!(ok("/...").hidden());
        assert!(!ok("/a.b/c.").hidden());
    }

    #[test]
    fn first_reason_from_the_left_wins() {
        assert_eq!(err(b"/%zz/.."), Rejected::MalformedEscape);
        assert_eq!(err(b"/../%zz"), Rejected::DotDot);
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(Rejected::DoubleEncoded.to_string(), "double-encoded");
        assert_eq!(Rejected::DeviceName.name(), "device-name");
    }
}
