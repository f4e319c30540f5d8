//! Weighted lists: the `token;q=0.5, other` syntax shared by `Accept-Encoding` and `Accept`.
//!
//! A field may be sent as several field lines; the caller hands every value in order and
//! they are read as one comma-separated list (RFC 9110 §5.3).

/// One list member: its token (as sent, compare it case-insensitively) and its weight in
/// thousandths (`q=1` is 1000, an absent `q` is 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weighted<'a> {
    /// The member before any `;` parameter, without surrounding whitespace.
    pub token: &'a [u8],
    /// The weight in thousandths, 0..=1000.
    pub q: u16,
}

/// The members of a weighted list spread over `values`, in order.
///
/// Empty members (`a,,b`) are skipped, as RFC 9110 §5.6.1 asks. A member whose `q` is not a
/// valid qvalue is dropped whole rather than guessed at: an unreadable weight is neither a
/// preference nor a refusal.
pub fn members<'a, I>(values: I) -> impl Iterator<Item = Weighted<'a>>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    values
        .into_iter()
        .flat_map(|value| value.split(|&b| b == b','))
        .filter_map(member)
}

/// The weight a list gives `token`: its own member's (case-insensitive) when listed, else
/// `None`. The first member naming it wins.
pub fn weight_of<'a, I>(values: I, token: &[u8]) -> Option<u16>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    members(values)
        .find(|m| m.token.eq_ignore_ascii_case(token))
        .map(|m| m.q)
}

fn member(raw: &[u8]) -> Option<Weighted<'_>> {
    let mut params = raw.split(|&b| b == b';');
    let token = trim(params.next()?);
    if token.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in params {
        let param = trim(param);
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (trim(&param[..eq]), trim(&param[eq + 1..]));
        if name.eq_ignore_ascii_case(b"q") {
            q = qvalue(value)?;
        }
    }
    Some(Weighted { token, q })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
pub fn qvalue(v: &[u8]) -> Option<u16> {
    let (whole, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, d) in frac.iter().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Without the optional whitespace (space and tab) around a list member or parameter.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&'static str]) -> Vec<(String, u16)> {
        members(values.iter().map(|v| v.as_bytes()))
            .map(|m| (String::from_utf8(m.token.to_vec()).unwrap(), m.q))
            .collect()
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"0."), Some(0));
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0.05"), Some(50));
        assert_eq!(qvalue(b"0.123"), Some(123));
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"1.001"), None);
        assert_eq!(qvalue(b"0.1234"), None);
        assert_eq!(qvalue(b"2"), None);
        assert_eq!(qvalue(b""), None);
        assert_eq!(qvalue(b".5"), None);
        assert_eq!(qvalue(b"0.x"), None);
        assert_eq!(qvalue(b"-0"), None);
    }

    #[test]
    fn members_across_lines_with_whitespace_and_empty_elements() {
        assert_eq!(
            list(&["gzip ;  q=0.5 ,, br", "\tzstd;Q=0 ", "x;level=1;q=1"]),
            vec![
                ("gzip".into(), 500),
                ("br".into(), 1000),
                ("zstd".into(), 0),
                ("x".into(), 1000)
            ]
        );
    }

    #[test]
    fn member_with_bad_q_is_dropped() {
        assert_eq!(
            list(&["gzip;q=abc, br;q=1.5, zstd"]),
            vec![("zstd".into(), 1000)]
        );
    }

    #[test]
    fn weight_of_is_case_insensitive_and_first_wins() {
        let v: [&[u8]; 1] = [b"GZip;q=0.2, gzip;q=0.9"];
        assert_eq!(weight_of(v, b"gzip"), Some(200));
        assert_eq!(weight_of(v, b"br"), None);
    }
}
