//! ETag and Last-Modified for a file, and ETag comparison (RFC 9110 §8.8).

use std::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a file's validators are made of: a change to the content almost always changes one
/// of them, and replacing the file (a new inode) always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The inode number (0 where the platform has none).
    pub inode: u64,
    /// The length in bytes.
    pub len: u64,
    /// The modification time in nanoseconds since the epoch (0 before the epoch).
    pub mtime_nanos: u128,
}

impl Stamp {
    /// The stamp of a file from its metadata.
    pub fn from_metadata(meta: &Metadata) -> Stamp {
        let mtime_nanos = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Stamp {
            inode: inode(meta),
            len: meta.len(),
            mtime_nanos,
        }
    }

    /// The modification time in whole seconds, the precision of Last-Modified.
    pub fn mtime_secs(&self) -> u64 {
        u64::try_from(self.mtime_nanos / 1_000_000_000).unwrap_or(u64::MAX)
    }

    /// The strong ETag, see [`etag`].
    pub fn etag(&self) -> String {
        etag(self.inode, self.len, self.mtime_nanos)
    }

    /// The Last-Modified value, see [`last_modified`].
    pub fn last_modified(&self) -> String {
        last_modified(self.mtime_secs())
    }
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &Metadata) -> u64 {
    0
}

/// A strong ETag, quotes included: `"<inode>-<len>-<mtime ns>"` in lowercase hex.
///
/// Strong because nanosecond mtimes and the inode make two different contents with the
/// same tag unlikely enough for byte ranges to be stitched together.
pub fn etag(inode: u64, len: u64, mtime_nanos: u128) -> String {
    format!("\"{inode:x}-{len:x}-{mtime_nanos:x}\"")
}

/// Last-Modified as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn last_modified(mtime_secs: u64) -> String {
    httpdate::fmt_http_date(system_time(mtime_secs))
}

/// An HTTP-date (any of the three forms RFC 9110 accepts) in seconds since the epoch, or
/// `None` when unparsable or before the epoch.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let time = httpdate::parse_http_date(text.trim_matches([' ', '\t'])).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn system_time(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}

/// One entity tag: its opaque part (between the quotes) and whether it is weak (`W/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// `W/` was present.
    pub weak: bool,
    /// The characters between the quotes.
    pub opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parses one `[W/]"opaque"` with nothing around it but optional whitespace.
    pub fn parse(value: &'a [u8]) -> Option<EntityTag<'a>> {
        match parse_one(crate::quality::trim(value))? {
            (tag, []) => Some(tag),
            _ => None,
        }
    }

    /// Strong comparison: both strong and the same opaque part.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque part, weak or not.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// The value of `If-Match` or `If-None-Match`: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagList<'a> {
    /// `*`: any current representation.
    Any,
    /// The listed tags, in order (empty when no field line had any).
    Tags(Vec<EntityTag<'a>>),
}

/// The list is not `*` nor a comma-separated list of entity tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedEtags;

impl<'a> EtagList<'a> {
    /// Parses every field line of one list header as one list.
    ///
    /// # Errors
    /// [`MalformedEtags`] when a member is not an entity tag (an unquoted tag, a missing
    /// comma), or `*` is mixed with tags; the caller then treats the condition as failing to
    /// match, the cautious reading for both headers.
    pub fn parse<I>(values: I) -> Result<EtagList<'a>, MalformedEtags>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut tags = Vec::new();
        let mut star = false;
        for value in values {
            let mut rest = value;
            loop {
                rest = skip_separators(rest);
                if rest.is_empty() {
                    break;
                }
                if let [b'*', after @ ..] = rest {
                    star = true;
                    rest = after;
                } else {
                    let (tag, after) = parse_one(rest).ok_or(MalformedEtags)?;
                    tags.push(tag);
                    rest = after;
                }
                // A member ends at a comma (after optional whitespace) or at the end.
                rest = crate::quality::trim(rest);
                match rest {
                    [] => break,
                    [b',', ..] => {}
                    _ => return Err(MalformedEtags),
                }
            }
        }
        match (star, tags.is_empty()) {
            (true, true) => Ok(EtagList::Any),
            (true, false) => Err(MalformedEtags),
            (false, _) => Ok(EtagList::Tags(tags)),
        }
    }

    /// Whether `current` (the resource's tag) matches by strong comparison; `*` matches.
    pub fn matches_strong(&self, current: &EntityTag<'_>) -> bool {
        match self {
            EtagList::Any => true,
            EtagList::Tags(tags) => tags.iter().any(|t| t.strong_eq(current)),
        }
    }

    /// Whether `current` matches by weak comparison; `*` matches.
    pub fn matches_weak(&self, current: &EntityTag<'_>) -> bool {
        match self {
            EtagList::Any => true,
            EtagList::Tags(tags) => tags.iter().any(|t| t.weak_eq(current)),
        }
    }
}

fn skip_separators(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b',', rest @ ..] = s {
        s = rest;
    }
    s
}

/// `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE` at the start of `s`, and what follows.
/// `etagc` is `!` / `#`-`~` / obs-text: anything visible but a double quote (a comma
/// included, which is why lists are not split on commas first).
fn parse_one(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, s) = match s {
        [b'W', b'/', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    let [b'"', s @ ..] = s else {
        return None;
    };
    let end = s.iter().position(|&b| b == b'"')?;
    let (opaque, rest) = s.split_at(end);
    if !opaque
        .iter()
        .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
    {
        return None;
    }
    Some((
        EntityTag { weak, opaque },
        rest.get(1..).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> EntityTag<'_> {
        EntityTag::parse(s.as_bytes()).unwrap()
    }

    fn list<'a>(values: &[&'a str]) -> Result<EtagList<'a>, MalformedEtags> {
        EtagList::parse(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn etag_format() {
        assert_eq!(etag(0x1a2b, 1024, 1_700_000_000_123_456_789), {
            format!("\"1a2b-400-{:x}\"", 1_700_000_000_123_456_789u128)
        });
        assert_eq!(etag(0, 0, 0), "\"0-0-0\"");
        let t = etag(1, 2, 3);
        assert!(!EntityTag::parse(t.as_bytes()).unwrap().weak);
    }

    #[test]
    fn stamp_changes_with_any_part() {
        let a = Stamp {
            inode: 1,
            len: 2,
            mtime_nanos: 3_000_000_001,
        };
        assert_eq!(a.mtime_secs(), 3);
        assert_ne!(a.etag(), Stamp { inode: 9, ..a }.etag());
        assert_ne!(a.etag(), Stamp { len: 9, ..a }.etag());
        // A change within the same second still changes the tag.
        assert_ne!(
            a.etag(),
            Stamp {
                mtime_nanos: 3_000_000_002,
                ..a
            }
            .etag()
        );
        assert_eq!(a.last_modified(), "Thu, 01 Jan 1970 00:00:03 GMT");
    }

    #[test]
    fn stamp_from_real_file() {
        let dir = crate::resolve::tests::TempDir::new("validators");
        let path = dir.0.join("f.txt");
        std::fs::write(&path, "12345").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let s = Stamp::from_metadata(&meta);
        assert_eq!(s.len, 5);
        assert_ne!(s.inode, 0);
        assert!(s.mtime_secs() > 1_600_000_000);
    }

    #[test]
    fn last_modified_is_imf_fixdate() {
        assert_eq!(last_modified(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(last_modified(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            " Sun, 06 Nov 1994 08:49:37 GMT\t",
        ] {
            assert_eq!(
                parse_http_date(form.as_bytes()),
                Some(784_111_777),
                "{form}"
            );
        }
        assert_eq!(parse_http_date(b"yesterday"), None);
        assert_eq!(parse_http_date(b"\xff"), None);
        assert_eq!(parse_http_date(b""), None);
    }

    #[test]
    fn parse_single_tags() {
        assert_eq!(
            tag("\"abc\""),
            EntityTag {
                weak: false,
                opaque: b"abc"
            }
        );
        assert_eq!(
            tag(" W/\"a,b\" "),
            EntityTag {
                weak: true,
                opaque: b"a,b"
            }
        );
        assert_eq!(tag("\"\"").opaque, b"");
        assert!(EntityTag::parse(b"abc").is_none());
        assert!(EntityTag::parse(b"\"abc").is_none());
        assert!(EntityTag::parse(b"w/\"abc\"").is_none());
        assert!(EntityTag::parse(b"\"a\" x").is_none());
        assert!(EntityTag::parse(b"\"a b\"").is_none());
    }

    #[test]
    fn comparison_table_of_rfc_9110() {
        // RFC 9110 §8.8.3.2: ETag 1, ETag 2, strong, weak.
        let rows = [
            ("W/\"1\"", "W/\"1\"", false, true),
            ("W/\"1\"", "W/\"2\"", false, false),
            ("W/\"1\"", "\"1\"", false, true),
            ("\"1\"", "\"1\"", true, true),
        ];
        for (a, b, strong, weak) in rows {
            assert_eq!(tag(a).strong_eq(&tag(b)), strong, "{a} {b}");
            assert_eq!(tag(a).weak_eq(&tag(b)), weak, "{a} {b}");
            assert_eq!(tag(b).strong_eq(&tag(a)), strong, "{b} {a}");
        }
    }

    #[test]
    fn parse_lists() {
        assert_eq!(list(&["*"]), Ok(EtagList::Any));
        assert_eq!(list(&[" * "]), Ok(EtagList::Any));
        let l = list(&["\"a\", W/\"b\"", "\"c,d\""]).unwrap();
        assert_eq!(
            l,
            EtagList::Tags(vec![
                EntityTag {
                    weak: false,
                    opaque: b"a"
                },
                EntityTag {
                    weak: true,
                    opaque: b"b"
                },
                EntityTag {
                    weak: false,
                    opaque: b"c,d"
                },
            ])
        );
        assert_eq!(
            list(&[",\"a\",,"]).unwrap(),
            EtagList::Tags(vec![tag("\"a\"")])
        );
        assert_eq!(list(&[]), Ok(EtagList::Tags(vec![])));
        assert_eq!(list(&["\"a\" \"b\""]), Err(MalformedEtags));
        assert_eq!(list(&["a"]), Err(MalformedEtags));
        assert_eq!(list(&["\"a\", *"]), Err(MalformedEtags));
        assert_eq!(list(&["\"a"]), Err(MalformedEtags));
    }

    #[test]
    fn list_matching() {
        let current = tag("\"v1\"");
        let l = list(&["W/\"v1\", \"other\""]).unwrap();
        assert!(!l.matches_strong(&current));
        assert!(l.matches_weak(&current));
        let l = list(&["\"other\"", "\"v1\""]).unwrap();
        assert!(l.matches_strong(&current));
        assert!(EtagList::Any.matches_strong(&current));
        assert!(EtagList::Any.matches_weak(&current));
        assert!(!EtagList::Tags(vec![]).matches_weak(&current));
    }
}
