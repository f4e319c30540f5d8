//! The request, encoded once before the run: every send writes a slice of these bytes.

use crate::config::{is_token, Config, ConnMode};

/// `depth` copies of the encoded request back to back, so that any number of pipelined
/// requests up to the depth go out as one slice in one write.
#[derive(Debug)]
pub struct RequestBytes {
    batch: Vec<u8>,
    one: usize,
}

impl RequestBytes {
    /// Encodes the request `config` describes, repeated `config.pipeline` times.
    pub fn new(config: &Config) -> RequestBytes {
        let one = encode(config);
        let batch = one.repeat(config.pipeline.max(1));
        RequestBytes {
            batch,
            one: one.len(),
        }
    }

    /// The bytes of `n` requests (`n` at most the pipeline depth).
    #[inline]
    pub fn first(&self, n: usize) -> &[u8] {
        &self.batch[..self.one * n]
    }

    /// The length of one request.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.one
    }
}

/// Checks a `Name: value` header line given on the command line.
pub fn check_header(line: &str) -> Result<(), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header {line:?} is not 'Name: value'"))?;
    if name.is_empty() || !name.bytes().all(is_token) {
        return Err(format!("header name {name:?} is not an HTTP token"));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!(
            "header {name} has a line break or NUL in its value"
        ));
    }
    Ok(())
}

fn encode(config: &Config) -> Vec<u8> {
    let version = if config.http10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut out = format!("{} {} {}\r\n", config.method, config.target.path, version);
    let given = |name: &str| {
        config.headers.iter().any(|h| {
            h.split(':')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    };
    if !given("host") {
        out.push_str(&format!("Host: {}\r\n", config.target.host));
    }
    if !given("user-agent") {
        out.push_str("User-Agent: tether-load\r\n");
    }
    for h in &config.headers {
        let (name, value) = h.split_once(':').unwrap_or((h, ""));
        out.push_str(&format!("{}: {}\r\n", name, value.trim()));
    }
    let has_body =
        !config.body.is_empty() || matches!(config.method.as_str(), "POST" | "PUT" | "PATCH");
    if has_body && !given("content-length") {
        out.push_str(&format!("Content-Length: {}\r\n", config.body.len()));
    }
    if !given("connection") {
        match (config.mode, config.http10) {
            (ConnMode::PerRequest, false) => out.push_str("Connection: close\r\n"),
            (ConnMode::PerRequest, true) => {}
            (_, true) => out.push_str("Connection: keep-alive\r\n"),
            (_, false) => {}
        }
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&config.body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;

    fn config() -> Config {
        Config::new(Target::parse("http://127.0.0.1:8080/p?q=1").expect("target"))
    }

    fn text(c: &Config) -> String {
        String::from_utf8(RequestBytes::new(c).first(1).to_vec()).expect("ascii")
    }

    #[test]
    fn modes() {
        let mut c = config();
        assert_eq!(
            text(&c),
            "GET /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: tether-load\r\n\r\n"
        );
        c.mode = ConnMode::PerRequest;
        assert!(text(&c).ends_with("Connection: close\r\n\r\n"));
        c.http10 = true;
        assert!(text(&c).starts_with("GET /p?q=1 HTTP/1.0\r\n"));
        assert!(!text(&c).contains("Connection"));
        c.mode = ConnMode::Persistent;
        assert!(text(&c).ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn headers_body_and_batches() {
        let mut c = config();
        c.method = "POST".into();
        c.headers = vec!["host: example".into(), "X-A:  1 ".into()];
        c.body = b"abc".to_vec();
        c.pipeline = 3;
        let r = RequestBytes::new(&c);
        let one = String::from_utf8(r.first(1).to_vec()).expect("ascii");
        assert_eq!(
            one,
            "POST /p?q=1 HTTP/1.1\r\nUser-Agent: tether-load\r\nhost: example\r\nX-A: 1\r\n\
             Content-Length: 3\r\n\r\nabc"
        );
        assert_eq!(r.first(3).len(), 3 * r.len());
        assert_eq!(&r.first(3)[r.len()..2 * r.len()], r.first(1));
    }

    #[test]
    fn header_checks() {
        assert!(check_header("X-A: b").is_ok());
        assert!(check_header("X-A b").is_err());
        assert!(check_header(": b").is_err());
        assert!(check_header("X A: b").is_err());
        assert!(check_header("X-A: b\r\nEvil: 1").is_err());
    }
}
