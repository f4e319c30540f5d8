//! The URL under load: `http[s]://host[:port][/path][?query]`, resolved once to a socket
//! address.

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
    /// `https`: TLS over every connection.
    pub tls: bool,
    /// The host without port or brackets: over https, the TLS server name (sent as SNI
    /// unless it is an IP address) that the certificate must match.
    pub server_name: String,
}

impl Target {
    /// Parses and resolves an `http://` or `https://` URL (`http` when the scheme is left
    /// out).
    pub fn parse(url: &str) -> Result<Target, String> {
        let (rest, tls) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, false),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (rest, true),
            Some((scheme, _)) => {
                return Err(format!(
                    "unsupported scheme {scheme:?}: only http and https"
                ))
            }
            None => (url, false),
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
        let (host, port) = split_port(authority, if tls { 443 } else { 80 })?;
        if tls {
            crate::tls::server_name(host).map_err(|e| format!("{url}: {e}"))?;
        }
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        Ok(Target {
            addr,
            host: authority.to_owned(),
            path,
            tls,
            server_name: host.to_owned(),
        })
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]` into the host (without brackets) and the
/// port (`default` when absent).
fn split_port(authority: &str, default: u16) -> Result<(&str, u16), String> {
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
        None => default,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{authority}: bad port {p:?}"))?,
    };
    Ok((host, port))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host, self.path)
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
        assert!(!t.tls);
        assert_eq!(t.server_name, "::1");

        let t = Target::parse("HTTPS://127.0.0.1/x").expect("https");
        assert!(t.tls);
        assert_eq!(t.addr.port(), 443);
        assert_eq!(t.server_name, "127.0.0.1");
        assert_eq!(t.to_string(), "https://127.0.0.1/x");
        let t = Target::parse("https://[::1]:8443").expect("https v6");
        assert_eq!((t.addr.port(), t.server_name.as_str()), (8443, "::1"));
    }

    #[test]
    fn refusals() {
        for bad in [
            "ftp://127.0.0.1/",
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
