//! The URL under load: `http://host[:port][/path][?query]`, resolved once to a socket address.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Where requests go: the address to connect to, the `Host` header and the request target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The address connections are opened to (the first the host resolves to).
    pub addr: SocketAddr,
    /// The value of the `Host` header (`host` or `host:port` as written in the URL).
    pub host: String,
    /// The request target in origin form: the path and query, `/` when the URL has none.
    pub path: String,
}

impl Target {
    /// Parses and resolves an `http://` URL. `https` is refused: the tool measures HTTP/1.1
    /// connection handling, not TLS.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(format!("unsupported scheme {scheme:?}: only http")),
            None => url,
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let path = match path.split_once('#') {
            Some((p, _)) => p.to_owned(),
            None => path,
        };
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        if authority.contains('@') {
            return Err(format!("{url}: user information is not supported"));
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("{url}: the path has spaces or control characters"));
        }
        let (host, port) = split_port(authority)?;
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        Ok(Target {
            addr,
            host: authority.to_owned(),
            path,
        })
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]` into the host (without brackets) and the
/// port (80 when absent).
fn split_port(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{authority}: unclosed '['"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{authority}: junk after ']'")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{authority}: no host"));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{authority}: bad port {p:?}"))?,
    };
    Ok((host, port))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let t = Target::parse("http://127.0.0.1:8080/plaintext?x=1").expect("valid");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/plaintext?x=1");

        let t = Target::parse("127.0.0.1:9").expect("scheme optional");
        assert_eq!(t.path, "/");
        let t = Target::parse("http://127.0.0.1?q").expect("query only");
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/?q"));
        let t = Target::parse("http://[::1]:81/a#frag").expect("v6");
        assert_eq!(t.addr, "[::1]:81".parse().expect("addr"));
        assert_eq!(t.path, "/a");
        assert_eq!(t.to_string(), "http://[::1]:81/a");
    }

    #[test]
    fn refusals() {
        for bad in [
            "https://127.0.0.1/",
            "http:///x",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:x/",
            "http://u@127.0.0.1/",
            "http://[::1/",
            "http://127.0.0.1/a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
