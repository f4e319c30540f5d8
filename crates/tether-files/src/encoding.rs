//! Choosing a precompressed sibling (`file.br`, `file.zst`, `file.gz`) from
//! `Accept-Encoding`, as nginx's `gzip_static` and `brotli_static` do.
//!
//! The response then carries `Content-Encoding` and, whether a sibling was chosen or not,
//! `Vary: Accept-Encoding` (the caller adds both), with the Content-Type of the original.

use crate::quality::{members, Weighted};

/// A content coding with a precompressed sibling file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Brotli, `.br`.
    Br,
    /// Zstandard, `.zst`.
    Zstd,
    /// Gzip, `.gz`.
    Gzip,
}

impl Encoding {
    /// In order of preference at equal weight: the smallest files first.
    pub const PREFERENCE: [Encoding; 3] = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The suffix of the sibling file, dot included.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Br => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }

    fn names(self, token: &[u8]) -> bool {
        token.eq_ignore_ascii_case(self.token().as_bytes())
            || (self == Encoding::Gzip && token.eq_ignore_ascii_case(b"x-gzip"))
    }
}

/// The best coding the client accepts and a sibling exists for, or `None` to send the file
/// as it is.
///
/// `values` are every `Accept-Encoding` field line in order; none at all means the client
/// did not ask for a coding, so none is chosen. A coding's weight is its own member's `q`,
/// else the `*` member's, else 0; `q=0` refuses it. The highest weight wins, ties go by
/// [`Encoding::PREFERENCE`], and a coding weighted below an explicit `identity` loses to
/// the plain file. `exists` is asked only about acceptable codings, best first. When even
/// `identity` is refused and no sibling exists the plain file is still the answer: a 406 for
/// a static file helps nobody.
pub fn choose<'a, I, F>(values: I, mut exists: F) -> Option<Encoding>
where
    I: IntoIterator<Item = &'a [u8]>,
    F: FnMut(Encoding) -> bool,
{
    let list: Vec<Weighted<'a>> = members(values).collect();
    if list.is_empty() {
        return None;
    }
    let first_weight =
        |pred: &dyn Fn(&[u8]) -> bool| list.iter().find(|m| pred(m.token)).map(|m| m.q);
    let star = first_weight(&|t| t == b"*");
    let identity = first_weight(&|t| t.eq_ignore_ascii_case(b"identity"));

    let mut candidates: Vec<(u16, Encoding)> = Encoding::PREFERENCE
        .iter()
        .filter_map(|&e| {
            let q = first_weight(&|t| e.names(t)).or(star).unwrap_or(0);
            (q > 0 && identity.is_none_or(|i| q >= i)).then_some((q, e))
        })
        .collect();
    // Stable: equal weights keep the order of preference.
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    candidates.into_iter().map(|(_, e)| e).find(|&e| exists(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(values: &[&str], present: &[Encoding]) -> Option<Encoding> {
        choose(values.iter().map(|v| v.as_bytes()), |e| {
            present.contains(&e)
        })
    }

    const ALL: [Encoding; 3] = Encoding::PREFERENCE;
    use Encoding::{Br, Gzip, Zstd};

    #[test]
    fn tokens_and_suffixes() {
        assert_eq!((Br.token(), Br.suffix()), ("br", ".br"));
        assert_eq!((Zstd.token(), Zstd.suffix()), ("zstd", ".zst"));
        assert_eq!((Gzip.token(), Gzip.suffix()), ("gzip", ".gz"));
    }

    #[test]
    fn no_header_means_no_coding() {
        assert_eq!(pick(&[], &ALL), None);
        assert_eq!(pick(&[""], &ALL), None);
    }

    #[test]
    fn preference_at_equal_weight() {
        assert_eq!(pick(&["gzip, deflate, br, zstd"], &ALL), Some(Br));
        assert_eq!(pick(&["gzip, zstd"], &ALL), Some(Zstd));
        assert_eq!(pick(&["gzip, br, zstd"], &[Gzip, Zstd]), Some(Zstd));
        assert_eq!(pick(&["gzip, br, zstd"], &[Gzip]), Some(Gzip));
        assert_eq!(pick(&["gzip, br, zstd"], &[]), None);
    }

    #[test]
    fn higher_weight_wins() {
        assert_eq!(pick(&["br;q=0.5, gzip;q=0.9"], &ALL), Some(Gzip));
        assert_eq!(pick(&["br;q=0.5, gzip;q=0.9"], &[Br]), Some(Br));
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(pick(&["br;q=0, gzip"], &ALL), Some(Gzip));
        assert_eq!(pick(&["br;q=0, gzip;q=0.000"], &[Br, Gzip]), None);
    }

    #[test]
    fn star_covers_the_unlisted() {
        assert_eq!(pick(&["*"], &ALL), Some(Br));
        assert_eq!(pick(&["br;q=0, *;q=0.5"], &ALL), Some(Zstd));
        assert_eq!(pick(&["gzip, *;q=0"], &ALL), Some(Gzip));
        assert_eq!(pick(&["*;q=0"], &ALL), None);
    }

    #[test]
    fn identity_preferred_over_a_weaker_coding() {
        assert_eq!(pick(&["gzip;q=0.5, identity"], &ALL), None);
        assert_eq!(pick(&["gzip;q=0.5, identity;q=0.5"], &ALL), Some(Gzip));
        assert_eq!(pick(&["gzip, identity;q=0"], &[]), None);
        assert_eq!(pick(&["identity"], &ALL), None);
    }

    #[test]
    fn case_insensitive_and_aliases() {
        assert_eq!(pick(&["GZIP"], &ALL), Some(Gzip));
        assert_eq!(pick(&["x-gzip"], &ALL), Some(Gzip));
        assert_eq!(pick(&["Br;Q=1"], &ALL), Some(Br));
    }

    #[test]
    fn several_field_lines() {
        assert_eq!(pick(&["gzip", "br;q=0.1", "zstd;q=0.2"], &ALL), Some(Gzip));
        assert_eq!(pick(&["gzip;q=0.1", "zstd"], &ALL), Some(Zstd));
    }

    #[test]
    fn exists_is_asked_best_first_and_only_for_acceptable() {
        let mut asked = Vec::new();
        let got = choose([&b"gzip;q=0.8, br;q=0, zstd"[..]], |e| {
            asked.push(e);
            false
        });
        assert_eq!(got, None);
        assert_eq!(asked, vec![Zstd, Gzip]);
    }
}
