//! `tether serve` over TLS, through the binary: a self-signed certificate for trying it out,
//! certificate files, their reload on SIGHUP, and files refused before anything binds.

use std::time::Duration;

use tether_test_support::client::Client;
use tether_test_support::process::{Cli, PROCESS_WAIT as WAIT};
use tether_test_support::temp::TempDir;
use tether_test_support::tls::{any_cert_client_config, client_config, TestCert};

const CLI: Cli = Cli(env!("CARGO_BIN_EXE_tether"));

fn assert_plaintext(c: &mut Client) {
    let r = c.call("GET", "/plaintext");
    assert_eq!((r.status, r.text()), (200, "Hello, World!"));
}

/// The SHA-256 fingerprint as the server logs it, computed here independently (openssl).
fn openssl_fingerprint(der: &[u8], dir: &TempDir) -> Option<String> {
    let path = dir.path().join("seen.der");
    std::fs::write(&path, der).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
        ])
        .arg(&path)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().split('=').nth(1)?.to_owned())
}

#[test]
fn a_self_signed_certificate_serves_https_and_its_fingerprint_is_logged() {
    let srv = CLI.serve(&["--tls-self-signed", "--workers", "1"]);
    assert!(
        srv.log.text().contains("listening on https://"),
        "{}",
        srv.log.text()
    );
    let line = srv
        .log
        .wait_for("sha256=", WAIT)
        .expect("the fingerprint line");
    let logged = line
        .split("sha256=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(logged.len(), 32 * 3 - 1, "{logged}");
    let mut c = Client::connect_tls(srv.addr, any_cert_client_config());
    for _ in 0..3 {
        assert_plaintext(&mut c);
    }
    let seen = c.tls().unwrap().peer_certificates().unwrap()[0].to_vec();
    let dir = TempDir::new("tls-fingerprint");
    if let Some(expected) = openssl_fingerprint(&seen, &dir) {
        assert_eq!(logged, expected);
    }
    let metrics = c.call("GET", "/metrics");
    assert!(
        metrics
            .text()
            .contains("tether_tls_handshakes_total{result=\"full\"} 1"),
        "{}",
        metrics.text()
    );
}

#[test]
fn certificate_files_serve_https_and_sighup_reloads_them() {
    let dir = TempDir::new("tls-files");
    let (first, second) = (TestCert::localhost(), TestCert::localhost());
    let (cert, key) = first.write_pem(dir.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let srv = CLI.serve(&["--tls-cert", cert, "--tls-key", key, "--workers", "1"]);
    let mut old = Client::connect_tls(srv.addr, client_config(&first));
    assert_plaintext(&mut old);

    second.write_pem(dir.path());
    srv.signal(libc::SIGHUP);
    srv.log
        .wait_for("TLS certificate reloaded", WAIT)
        .expect("the reload line");
    let mut new = Client::connect_tls(srv.addr, client_config(&second));
    assert_plaintext(&mut new);
    assert!(Client::try_connect_tls(srv.addr, client_config(&first)).is_err());
    // The connection made before the reload goes on.
    assert_plaintext(&mut old);

    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    srv.signal(libc::SIGHUP);
    let line = srv
        .log
        .wait_for("not reloaded", WAIT)
        .expect("the refusal line");
    assert!(line.contains("key.pem"), "{line}");
    assert_plaintext(&mut Client::connect_tls(srv.addr, client_config(&second)));
    // And the server still answers its first clients, and stops cleanly.
    assert_plaintext(&mut old);
    assert!(srv.log.count("panicked") == 0);
}

#[test]
fn bad_certificate_files_are_refused_before_anything_binds() {
    let dir = TempDir::new("tls-bad");
    let (first, other) = (TestCert::localhost(), TestCert::localhost());
    let (cert, _) = first.write_pem(dir.path());
    let other_key = dir.path().join("other.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let missing = dir.path().join("missing.pem");
    for (cert, key, says) in [
        (&cert, &missing, "missing.pem"),
        (&cert, &other_key, "other.pem"),
    ] {
        let (status, err) = CLI.serve_to_exit(&[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        assert!(!status.success());
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("listening"), "{err}");
    }
    // A certificate needs its key.
    let (status, err) = CLI.serve_to_exit(&["--tls-cert", cert.to_str().unwrap()]);
    assert!(!status.success());
    assert!(err.contains("--tls-key"), "{err}");
}

#[test]
fn the_handshake_timeout_is_a_flag() {
    let srv = CLI.serve(&["--tls-self-signed", "--handshake-timeout", "200ms"]);
    let mut tcp = std::net::TcpStream::connect(srv.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut tcp, &mut rest);
    assert!(rest.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}
