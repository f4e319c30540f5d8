//! RFC 9112 parsing strictness over real loopback sockets: malformed request lines (400),
//! well-formed versions other than HTTP/1.x (505), Host values outside their grammar (400)
//! and chunk-size lines with anything but extensions after the size (400). Each rejection is
//! one response with `Connection: close`, then the end of the connection; valid requests on
//! the same server are still served.

use std::net::SocketAddr;
use std::time::Duration;

use tether::Running;
use tether_test_support::client::{Client, Reply};
use tether_test_support::handler::PLAINTEXT;
use tether_test_support::request::{chunked_head, get_with, head_bytes, HOST};
use tether_test_support::server::{builder, start};

/// How long the server may take to answer a rejection and close.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// Sends `request` on a new connection and reads its response, then the end of the
/// connection (panicking when either does not come within [`CLOSE_WITHIN`]), after checking
/// that nothing but one response came before the end.
fn rejected(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut c = Client::connect(addr);
    c.set_read_timeout(CLOSE_WITHIN);
    c.send(request);
    let r = c.reply();
    assert!(
        !r.close_delimited || r.body.is_empty(),
        "more than one response before the close: {r:?}"
    );
    c.expect_closed();
    r
}

/// Asserts that `request` is answered with exactly `status_line`, `Connection: close`, and
/// the end of the connection.
fn assert_rejected(srv: &Running, request: &[u8], status_line: &str) {
    let r = rejected(srv.local_addr(), request);
    let sent = String::from_utf8_lossy(request);
    assert_eq!(r.status_line, status_line, "for {sent:?}");
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close")),
        "no Connection: close in {:?} for {sent:?}",
        r.headers
    );
}

const BAD_REQUEST: &str = "HTTP/1.1 400 Bad Request";
const VERSION_NOT_SUPPORTED: &str = "HTTP/1.1 505 HTTP Version Not Supported";

/// Asserts that `/plaintext` is served on a new connection to `srv`, which stays open.
fn assert_served(srv: &Running) {
    let mut c = Client::connect(srv.local_addr());
    let r = c.request(&get_with("/plaintext", &[]));
    assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT));
    assert!(!r.closes(), "{r:?}");
}

/// `GET /plaintext` with the request line `line` and a Host.
fn with_line(line: &str) -> Vec<u8> {
    head_bytes(line, &[HOST])
}

// ---------------------------------------------------------------------------------------
// Request line
// ---------------------------------------------------------------------------------------

#[test]
fn malformed_request_lines_get_400_and_close() {
    let srv = start(builder());
    for line in [
        "GET /plain text HTTP/1.1",
        "GET /plain text HTTP/2.0",
        "GET  /plaintext HTTP/1.1",
        "GET /plaintext  HTTP/1.1",
        "GET /plaintext  HTTP/2.0",
        "GET /plaintext HTTP/1.1 ",
        "GET /plaintext HTTP/2.0 ",
        "GET /plaintext http/1.1",
        "GET /plaintext HTTP/1.10",
        "GET /plaintext HTTP/11.1",
        "GET /plaintext HTTP/2",
        "GET /plaintext HTTP/1.1x",
        "GET /plaintext",
        " GET /plaintext HTTP/1.1",
    ] {
        assert_rejected(&srv, &with_line(line), BAD_REQUEST);
    }
    assert_served(&srv);
}

#[test]
fn well_formed_other_versions_get_505_and_close() {
    let srv = start(builder());
    for line in [
        "GET /plaintext HTTP/2.0",
        "GET /plaintext HTTP/3.0",
        "GET /plaintext HTTP/0.9",
    ] {
        assert_rejected(&srv, &with_line(line), VERSION_NOT_SUPPORTED);
    }
    assert_served(&srv);
}

#[test]
fn other_version_sent_bytewise_gets_505() {
    // The version arrives a byte at a time: the server waits for the end of the line
    // instead of judging a prefix such as `HTTP/2`.
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    c.send_bytewise(&with_line("GET /plaintext HTTP/2.0"));
    let r = c.reply();
    assert_eq!(r.status, 505, "{r:?}");
    assert!(r.closes(), "{r:?}");
    c.set_read_timeout(CLOSE_WITHIN);
    c.expect_closed();
}

// ---------------------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------------------

const BAD_HOSTS: [&str; 12] = [
    "Host: exa mple.com",
    "Host: user@example.com",
    "Host: example.com/path",
    "Host: example.com?q",
    "Host: example.com#f",
    "Host: [::1",
    "Host: [::1]x",
    "Host: [::1]:8x",
    "Host: example.com:80:80",
    "Host: example.com:http",
    "Host: :80",
    "Host: a\"b",
];

#[test]
fn malformed_host_gets_400_and_close() {
    let srv = start(builder());
    for host in BAD_HOSTS {
        assert_rejected(
            &srv,
            &head_bytes("GET /plaintext HTTP/1.1", &[host]),
            BAD_REQUEST,
        );
    }
    assert_served(&srv);
}

#[test]
fn malformed_host_on_http10_gets_400_and_close() {
    let srv = start(builder());
    for host in BAD_HOSTS {
        assert_rejected(
            &srv,
            &head_bytes("GET /plaintext HTTP/1.0", &[host]),
            BAD_REQUEST,
        );
    }
    assert_served(&srv);
}

#[test]
fn hosts_in_the_grammar_are_served_on_one_connection() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    for host in [
        "Host: example.com",
        "Host: 127.0.0.1:8080",
        "Host: [::1]:8080",
        "Host: [::1]",
        "Host: [2001:db8::1]:443",
        "Host: [v1.fe80::a+en1]",
        "Host: ex%41mple.com:",
        "Host: sub_domain.example~!$&'()*+,;=",
        "Host:",
    ] {
        let r = c.request(&head_bytes("GET /plaintext HTTP/1.1", &[host]));
        assert_eq!((r.status, r.body.as_slice()), (200, PLAINTEXT), "{host}");
        assert!(!r.closes(), "{host}: {r:?}");
    }
    let r = c.request(&head_bytes(
        "GET /plaintext HTTP/1.0",
        &["Host: [::1]:8080", "Connection: keep-alive"],
    ));
    assert_eq!(r.status, 200);
    assert!(!r.closes(), "{r:?}");
    assert_eq!(srv.stats().accepted, 1);
}

// ---------------------------------------------------------------------------------------
// Chunk-size lines
// ---------------------------------------------------------------------------------------

/// A chunked POST to `/echo` whose single chunk of `hello` has the size line `size_line`.
fn chunked_echo(size_line: &str) -> Vec<u8> {
    let mut out = chunked_head("/echo");
    out.extend_from_slice(size_line.as_bytes());
    out.extend_from_slice(b"hello\r\n0\r\n\r\n");
    out
}

#[test]
fn junk_after_the_chunk_size_gets_400_and_close() {
    let srv = start(builder());
    for size_line in [
        "5x\r\n",
        "5 \r\n",
        "5\t\r\n",
        "5 5\r\n",
        "5,ext\r\n",
        "5\"x\"\r\n",
        "0x5\r\n",
        "5\n",
        ";ext\r\n",
        "5;\r\n",
        "5;name=\r\n",
        "5;na me\r\n",
        "5;name=value \r\n",
        "5;name=\"unclosed\r\n",
        "5;name=\"ctl\x01\"\r\n",
    ] {
        assert_rejected(&srv, &chunked_echo(size_line), BAD_REQUEST);
    }
    assert_served(&srv);
}

#[test]
fn chunk_lines_in_the_grammar_are_served_on_one_connection() {
    let srv = start(builder());
    let mut c = Client::connect(srv.local_addr());
    for size_line in [
        "5\r\n",
        "5;name=value\r\n",
        "5;name\r\n",
        "5 ;name=value\r\n",
        "5\t; name = \"quoted; value \\\" \"\r\n",
        "5;a=1;b;c=\"\"\r\n",
        "005\r\n",
    ] {
        let r = c.request(&chunked_echo(size_line));
        assert_eq!((r.status, r.text()), (200, "hello"), "{size_line:?}");
        assert!(!r.closes(), "{size_line:?}: {r:?}");
    }
    assert_eq!(srv.stats().accepted, 1);
}
