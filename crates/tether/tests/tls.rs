//! TLS over the engine, on real loopback sockets: keep-alive reuse and pipelining through a
//! rustls client, resumption, the handshake's counters and its failures by class, and the
//! replacement of the certificate while the server runs.
#![cfg(feature = "tls")]

use std::io::Read;
use std::time::{Duration, Instant};

use tether::{CloseReason, ConnState, HandshakeFailure};
use tether_test_support::client::Client;
use tether_test_support::events::Events;
use tether_test_support::request::get;
use tether_test_support::server::{builder, start};
use tether_test_support::tls::{client_config, client_config_alpn, TestCert};
use tether_test_support::wait::eventually;

fn assert_plaintext(c: &mut Client) {
    let r = c.request(&get("/plaintext"));
    assert_eq!((r.status, r.text()), (200, "Hello, World!"));
}

#[test]
fn keep_alive_and_pipelining_over_tls() {
    let cert = TestCert::localhost();
    let srv = start(builder().tls(cert.server_config()));
    let mut c = Client::connect_tls(srv.local_addr(), client_config(&cert));
    assert_eq!(c.tls().unwrap().alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..50 {
        assert_plaintext(&mut c);
    }
    c.send(&get("/plaintext").repeat(16));
    for _ in 0..16 {
        let r = c.reply();
        assert_eq!((r.status, r.text()), (200, "Hello, World!"));
    }
    let s = srv.stats();
    assert_eq!((s.accepted, s.requests), (1, 66));
    assert_eq!((s.tls_full, s.tls_resumed, s.tls_failed()), (1, 0, 0));
}

#[test]
fn a_returning_client_resumes_and_the_handshakes_are_counted_and_timed() {
    let cert = TestCert::localhost();
    // The engine's own configuration: tickets and the session cache from the settings.
    let srv = start(builder().tls_certificate(cert.tether()));
    let client = client_config(&cert);
    for _ in 0..4 {
        let mut c = Client::connect_tls(srv.local_addr(), client.clone());
        assert_plaintext(&mut c);
    }
    let s = srv.stats();
    assert_eq!((s.tls_full, s.tls_resumed), (1, 3));
    assert_eq!(s.tls_handshake_time.iter().sum::<u64>(), 4);
    assert!(s.tls_handshake_micros_sum > 0);
    let text = s.to_prometheus();
    assert!(
        text.contains("tether_tls_handshakes_total{result=\"resumed\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("tether_tls_handshake_seconds_count 4"),
        "{text}"
    );
}

#[test]
fn resumption_can_be_turned_off() {
    let cert = TestCert::localhost();
    let srv = start(
        builder()
            .tls_tickets(false)
            .tls_session_cache(0)
            .tls_certificate(cert.tether()),
    );
    let client = client_config(&cert);
    for _ in 0..3 {
        let mut c = Client::connect_tls(srv.local_addr(), client.clone());
        assert_plaintext(&mut c);
    }
    let s = srv.stats();
    assert_eq!((s.tls_full, s.tls_resumed), (3, 0));
}

#[test]
fn tls12_clients_resume_from_the_session_cache() {
    let cert = TestCert::localhost();
    let srv = start(builder().tls_certificate(cert.tether()));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let client = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for _ in 0..3 {
        let mut c = Client::connect_tls(srv.local_addr(), client.clone());
        assert_eq!(
            c.tls().unwrap().protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        assert_plaintext(&mut c);
    }
    let s = srv.stats();
    assert_eq!((s.tls_full, s.tls_resumed), (1, 2));
}

#[test]
fn a_client_that_stalls_in_the_handshake_is_closed_for_it() {
    let cert = TestCert::localhost();
    let events = Events::default();
    let timeout = Duration::from_millis(300);
    let srv = start(
        events.on(builder()
            .tls(cert.server_config())
            .handshake_timeout(timeout)),
    );
    let since = Instant::now();
    let mut tcp = std::net::TcpStream::connect(srv.local_addr()).unwrap();
    let (at, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::HandshakeTimeout));
    assert!(at - since >= timeout, "closed after {:?}", at - since);
    let mut rest = Vec::new();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = tcp.read_to_end(&mut rest);
    let s = srv.stats();
    assert_eq!(s.closed_for(CloseReason::HandshakeTimeout), 1);
    assert_eq!(s.tls_failed_for(HandshakeFailure::Timeout), 1);
}

/// Sends `bytes` in clear on a new connection and returns what came back before the close.
fn send_clear(srv: &tether::Running, bytes: &[u8]) -> Vec<u8> {
    let mut c = Client::connect(srv.local_addr());
    c.send(bytes);
    c.read_to_close().unwrap_or_default()
}

#[test]
fn plain_http_on_the_tls_port_is_closed_without_an_http_answer() {
    let cert = TestCert::localhost();
    let events = Events::default();
    let srv = start(events.on(builder().tls(cert.server_config())));
    let rest = send_clear(&srv, &get("/plaintext"));
    assert!(
        !rest.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let (_, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::HandshakeFailed));
    assert_eq!(srv.stats().tls_failed_for(HandshakeFailure::NotTls), 1);
}

#[test]
fn a_garbage_client_hello_fails_as_malformed() {
    let cert = TestCert::localhost();
    let srv = start(builder().tls(cert.server_config()));
    // A handshake record whose ClientHello is noise.
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c];
    hello.extend((0..60u8).map(|i| i.wrapping_mul(37)));
    send_clear(&srv, &hello);
    eventually("the failure counted", || srv.stats().tls_failed() == 1);
    let s = srv.stats();
    assert_eq!(s.tls_failed_for(HandshakeFailure::Malformed), 1, "{s:?}");
    assert_eq!(s.closed_for(CloseReason::HandshakeFailed), 1);
    assert_eq!(s.open(), 0);
}

#[test]
fn a_client_offering_only_h2_is_refused_for_no_common_protocol() {
    let cert = TestCert::localhost();
    let srv = start(builder().tls_certificate(cert.tether()));
    let c = Client::try_connect_tls(srv.local_addr(), client_config_alpn(&cert, &[b"h2"]));
    assert!(c.is_err(), "the handshake succeeded");
    eventually("the failure counted", || srv.stats().tls_failed() == 1);
    assert_eq!(
        srv.stats()
            .tls_failed_for(HandshakeFailure::NoCommonProtocol),
        1
    );
    // A client with no ALPN at all is served.
    let mut c = Client::connect_tls(srv.local_addr(), client_config_alpn(&cert, &[]));
    assert_plaintext(&mut c);
}

#[test]
fn clients_refusing_the_certificate_are_counted_as_their_alert() {
    let srv_cert = TestCert::expired();
    let srv = start(builder().tls_certificate(srv_cert.tether()));
    // One client trusts the certificate but it has expired; another trusts another one;
    // a third asks for another name.
    let other = TestCert::localhost();
    let wrong_name = TestCert::for_names(&["example.org"]);
    let wrong_name_srv = start(builder().tls_certificate(wrong_name.tether()));
    assert!(Client::try_connect_tls(srv.local_addr(), client_config(&srv_cert)).is_err());
    assert!(Client::try_connect_tls(srv.local_addr(), client_config(&other)).is_err());
    assert!(
        Client::try_connect_tls(wrong_name_srv.local_addr(), client_config(&wrong_name)).is_err()
    );
    eventually("the failures counted", || {
        srv.stats().tls_failed() == 2 && wrong_name_srv.stats().tls_failed() == 1
    });
    assert_eq!(srv.stats().tls_failed_for(HandshakeFailure::ClientAlert), 2);
    assert_eq!(
        wrong_name_srv
            .stats()
            .tls_failed_for(HandshakeFailure::ClientAlert),
        1
    );
    assert_eq!(srv.stats().open() + wrong_name_srv.stats().open(), 0);
}

#[test]
fn a_replaced_certificate_serves_new_handshakes_and_spares_open_connections() {
    let (first, second) = (TestCert::localhost(), TestCert::localhost());
    let cert = first.tether();
    let srv = start(builder().tls_certificate(cert.clone()));
    let mut old = Client::connect_tls(srv.local_addr(), client_config(&first));
    assert_plaintext(&mut old);
    cert.replace(vec![second.der.clone()], second.key())
        .unwrap();
    assert_eq!(cert.end_entity(), second.der);
    // New handshakes present the new certificate: only a client trusting it connects.
    let mut new = Client::connect_tls(srv.local_addr(), client_config(&second));
    assert_plaintext(&mut new);
    assert!(Client::try_connect_tls(srv.local_addr(), client_config(&first)).is_err());
    // The connection made before goes on.
    assert_plaintext(&mut old);
    // A key that is not the certificate's is refused, and the certificate stays.
    assert!(cert.replace(vec![first.der.clone()], second.key()).is_err());
    assert_eq!(cert.end_entity(), second.der);
}

#[test]
fn a_certificate_reloads_from_its_files_and_a_bad_file_leaves_it_in_place() {
    let dir = tether_test_support::temp::TempDir::new("tls-reload");
    let (first, second) = (TestCert::localhost(), TestCert::localhost());
    let (cert_path, key_path) = first.write_pem(dir.path());
    let cert = tether::TlsCertificate::from_pem_files(&cert_path, &key_path).unwrap();
    let srv = start(builder().tls_certificate(cert.clone()));
    assert_plaintext(&mut Client::connect_tls(
        srv.local_addr(),
        client_config(&first),
    ));
    second.write_pem(dir.path());
    cert.reload().unwrap();
    assert_plaintext(&mut Client::connect_tls(
        srv.local_addr(),
        client_config(&second),
    ));
    std::fs::write(&key_path, "not a key").unwrap();
    let e = cert.reload().unwrap_err();
    assert!(e.to_string().contains("key.pem"), "{e}");
    assert_plaintext(&mut Client::connect_tls(
        srv.local_addr(),
        client_config(&second),
    ));
}

#[test]
fn an_idle_tls_connection_parks_and_resumes_with_its_session() {
    let cert = TestCert::localhost();
    let srv = start(
        builder()
            .park_after(Duration::from_millis(50))
            .tls_certificate(cert.tether()),
    );
    let mut c = Client::connect_tls(srv.local_addr(), client_config(&cert));
    for round in 0..3 {
        assert_plaintext(&mut c);
        eventually("the connection parked", || srv.stats().parked == 1);
        assert_eq!(srv.stats().states, [0, 0, 1, 0], "round {round}");
    }
    // Pipelined requests on the resumed session, then a close by the client.
    c.send(&get("/plaintext").repeat(4));
    for _ in 0..4 {
        assert_eq!(c.reply().status, 200);
    }
    let s = srv.stats();
    assert_eq!(
        (s.accepted, s.requests, s.tls_full, s.tls_resumed),
        (1, 7, 1, 0)
    );
    c.shutdown_write();
    eventually("the connection closed", || srv.stats().closed == 1);
    assert_eq!(srv.stats().closed_for(CloseReason::PeerClosed), 1);
}

#[test]
fn a_parked_tls_connection_times_out_and_drains_like_any() {
    let cert = TestCert::localhost();
    let events = Events::default();
    let srv = start(
        events.on(builder()
            .park_after(Duration::from_millis(50))
            .idle_timeout(Duration::from_millis(400))
            .idle_grace(Duration::ZERO)
            .tls_certificate(cert.tether())),
    );
    let mut c = Client::connect_tls(srv.local_addr(), client_config(&cert));
    assert_plaintext(&mut c);
    eventually("the connection parked", || srv.stats().parked == 1);
    let (_, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::IdleTimeout));
    assert!(c.read_to_close().unwrap().is_empty());
    assert_eq!(srv.stats().parked, 0);
}

#[test]
fn a_parked_tls_connection_is_drained_with_close_notify() {
    let cert = TestCert::localhost();
    let events = Events::default();
    let srv = start(
        events.on(builder()
            .park_after(Duration::from_millis(50))
            .min_idle_age(Duration::ZERO)
            .linger_timeout(Duration::from_millis(200))
            .tls_certificate(cert.tether())),
    );
    let mut c = Client::connect_tls(srv.local_addr(), client_config(&cert));
    assert_plaintext(&mut c);
    std::thread::sleep(Duration::from_millis(300));
    eprintln!("parked {}", srv.stats().parked);
    let shutdown = std::thread::spawn(move || srv.shutdown().unwrap());
    assert!(c.read_to_close().unwrap().is_empty());
    assert!(c.got_close_notify(), "closed without close_notify");
    let (_, closed) = events.first_in(ConnState::Closed);
    assert_eq!(closed.reason, Some(CloseReason::Shutdown));
    let stopped = shutdown.join().unwrap();
    assert_eq!(stopped.drain.connections_cut, 0);
}

#[test]
fn large_request_bodies_cross_many_tls_records() {
    let cert = TestCert::localhost();
    let srv = start(builder().tls_certificate(cert.tether()));
    let mut c = Client::connect_tls(srv.local_addr(), client_config(&cert));
    for len in [17_000, 30_000, 50_000, 400_000] {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let r = c
            .exchange("POST", "/echo", &[], Some(&body))
            .unwrap_or_else(|e| panic!("{len} bytes: {e}"));
        assert_eq!(r.status, 200, "{len} bytes");
        assert!(r.body == body, "{len} bytes came back different");
    }
}
