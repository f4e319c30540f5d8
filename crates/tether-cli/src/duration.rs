//! Durations on the command line: `500ms`, `2s`, `1m 30s` (humantime), or a bare `0`.

use std::time::Duration;

/// Parses a flag value such as `500ms`, `2s` or `1m`; a bare `0` is zero (which disables a
/// timeout). Used as a clap value parser, so the error names the flag.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 500ms, 2s or 1m, or 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_zero() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1m 15s"), Ok(Duration::from_secs(75)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_junk() {
        assert!(parse("5parsecs").is_err());
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
        assert!(
            parse("10").is_err(),
            "a bare number other than 0 needs a unit"
        );
    }
}
