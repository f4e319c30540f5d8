//! TLS over the engine, on real loopback sockets: keep-alive reuse and pipelining through a
//! rustls client, and the handshake's own close reasons.
#![cfg(feature = "tls")]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether::{CloseReason, ConnState};
use tether_test_support::events::Events;
use tether_test_support::server::{builder, start};

/// A self-signed certificate for `localhost`: the server's configuration and a client's.
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

fn connect(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> Tls {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads one `/plaintext` response (its head and its 13-byte body).
fn read_plaintext(tls: &mut Tls, pending: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            if pending.len() >= at + 4 + 13 {
                let head = String::from_utf8_lossy(&pending[..at]).into_owned();
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                assert_eq!(&pending[at + 4..at + 17], b"Hello, World!");
                pending.drain(..at + 17);
                return;
            }
        }
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "closed");
        pending.extend_from_slice(&buf[..n]);
    }
}

const GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn keep_alive_and_pipelining_over_tls() {
    let (server_cfg, client_cfg) = configs();
    let srv = start(builder().tls(server_cfg));
    let mut tls = connect(srv.local_addr(), client_cfg);
    let mut pending = Vec::new();
    for _ in 0..50 {
        tls.write_all(GET).unwrap();
        read_plaintext(&mut tls, &mut pending);
    }
    tls.write_all(&GET.repeat(16)).unwrap();
    for _ in 0..16 {
        read_plaintext(&mut tls, &mut pending);
    }
    assert_eq!(srv.stats().accepted, 1);
    assert_eq!(srv.stats().requests, 66);
}

#[test]
fn a_client_that_stalls_in_the_handshake_is_closed_for_it() {
    let (server_cfg, _) = configs();
    let events = Events::default();
    let timeout = Duration::from_millis(300);
    let srv = start(events.on(builder().tls(server_cfg).handshake_timeout(timeout)));
    let since = Instant::now();
    let mut tcp = std::net::TcpStream::connect(srv.local_addr()).unwrap();
    let (at, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::HandshakeTimeout));
    assert!(at - since >= timeout, "closed after {:?}", at - since);
    let mut rest = Vec::new();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = tcp.read_to_end(&mut rest);
    assert_eq!(srv.stats().closed_for(CloseReason::HandshakeTimeout), 1);
}

#[test]
fn plain_http_on_the_tls_port_is_closed_without_an_http_answer() {
    let (server_cfg, _) = configs();
    let events = Events::default();
    let srv = start(events.on(builder().tls(server_cfg)));
    let mut tcp = std::net::TcpStream::connect(srv.local_addr()).unwrap();
    tcp.write_all(GET).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(
        !rest.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let (_, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::HandshakeFailed));
}
